// Validation against the upstream API definitions in ../shared/upstream-schemas (SOURCES.json names their
// commits), when that folder is beside the checkout:
//   crds.json        Istio's and GIE's CustomResourceDefinitions: the openAPIV3Schema of each version, with
//                    the CEL rules (x-kubernetes-validations) the API server evaluates;
//   k8s-openapi.json Kubernetes' OpenAPI definitions of the core kinds;
//   envoy-api.json   Envoy's protos as field tables (name, type, JSON name, oneof, PGV rules).
// Every object schema is closed (an unknown field fails, as with kubectl's default strict field validation),
// and every CEL rule must be one this file knows: an unknown rule fails rather than passing unchecked.
import { Ajv, type ValidateFunction } from "ajv";
import { existsSync, readFileSync } from "node:fs";

export const UPSTREAM_DIR = "../shared/upstream-schemas";
export const upstreamAvailable = (): boolean => existsSync(`${UPSTREAM_DIR}/crds.json`);

type Obj = Record<string, any>;
const load = (f: string): Obj => JSON.parse(readFileSync(`${UPSTREAM_DIR}/${f}`, "utf8"));
let crds: Obj | undefined;
let k8s: Obj | undefined;
let envoy: Obj | undefined;

// ---------------------------------------------------------------------------------------------------------
// Go durations (CEL's duration() takes the same syntax): "0", "1.5s", "100ms", "1h2m".
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
export function goDurationMs(text: unknown): number {
  if (typeof text !== "string") throw new Error(`duration: ${JSON.stringify(text)} is not a string`);
  if (text === "0") return 0;
  const m = /^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|ms|s|m|h))+)$/.exec(text);
  if (!m) throw new Error(`duration: "${text}" is not a Go duration`);
  let ms = 0;
  for (const [, n, u] of m[2].matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * UNIT_MS[u];
  return m[1] === "-" ? -ms : ms;
}

const has = (o: unknown, k: string) => o !== null && typeof o === "object" && (o as Obj)[k] !== undefined;
const presentCount = (rule: string, self: unknown) =>
  [...rule.matchAll(/has\(self\.(\w+)\)/g)].filter(([, k]) => has(self, k)).length;
const keysOrItems = (self: unknown): string[] =>
  Array.isArray(self) ? self.map(String) : Object.keys((self ?? {}) as object);

/** The CEL rules of the CRDs in crds.json, by their exact text, as JavaScript. */
const CEL_RULES: Array<[RegExp | string, (self: any, rule: string) => boolean]> = [
  ["duration(self) >= duration('1ms')", (self) => goDurationMs(self) >= 1],
  ['!self.contains("*")', (self) => !String(self).includes("*")],
  ['self.all(key, !key.contains("*"))', (self) => keysOrItems(self).every((k) => !k.includes("*"))],
  ["self.all(key, key.size() != 0)", (self) => keysOrItems(self).every((k) => k.length !== 0)],
  ["self.size() == 0", (self) => (Array.isArray(self) ? self.length : Object.keys(self ?? {}).length) === 0],
  [/^(?:\(has\(self\.\w+\) \? 1 : 0\)(?: \+ )?)+ <= 1$/, (self, rule) => presentCount(rule, self) <= 1],
  ["self.kind != 'Service' || has(self.port)", (self) => self.kind !== "Service" || has(self, "port")],
  [
    '(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)',
    (self) => self.valueFrom !== "HOST" || !has(self, "value"),
  ],
  [
    'has(self.context) ? ((self.context == "WAYPOINT") ? has(self.waypoint) : !has(self.waypoint)) : !has(self.waypoint)',
    (self) => (self.context === "WAYPOINT" ? has(self, "waypoint") : !has(self, "waypoint")),
  ],
  ["0 < self && self <= 65535", (self) => self > 0 && self <= 65535],
  [
    "self.all(p1, self.exists_one(p2, p1.number==p2.number))",
    (self: Obj[]) => self.every((p1) => self.filter((p2) => p1.number === p2.number).length === 1),
  ],
  [
    /^isURL\(self\) \? \(url\(self\)\.getScheme\(\) in \["", "http", "https", "oci", "file"\]\)/,
    (self) => {
      const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(String(self))?.[1]?.toLowerCase() ?? "";
      return ["", "http", "https", "oci", "file"].includes(scheme);
    },
  ],
];

function celRule(rule: string): (self: unknown) => boolean {
  const flat = rule.replace(/\s*\n\s*/g, " ");
  for (const [pattern, fn] of CEL_RULES) {
    if (typeof pattern === "string" ? pattern === flat : pattern.test(flat)) return (self) => fn(self, flat);
  }
  throw new Error(`upstream schema: CEL rule not implemented here: ${flat}`);
}

// ---------------------------------------------------------------------------------------------------------
// Kubernetes structural schemas (CRDs, OpenAPI definitions) as closed JSON Schemas for ajv.

function closeK8s(s: unknown, defsPrefix?: string): unknown {
  if (Array.isArray(s)) return s.map((x) => closeK8s(x, defsPrefix));
  if (s === null || typeof s !== "object") return s;
  const src = s as Obj;
  const out: Obj = {};
  for (const [k, v] of Object.entries(src)) {
    if (k === "$ref" && defsPrefix) out[k] = String(v).replace("#/definitions/", defsPrefix);
    else if (k === "properties")
      out[k] = Object.fromEntries(Object.entries(v as Obj).map(([p, x]) => [p, closeK8s(x, defsPrefix)]));
    else if (k === "x-kubernetes-validations") out["x-cel"] = (v as Obj[]).map((r) => r.rule);
    else if (k.startsWith("x-kubernetes-") || k === "description" || k === "default") continue;
    else out[k] = closeK8s(v, defsPrefix);
  }
  if (src["x-kubernetes-int-or-string"]) {
    delete out.type;
    out.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  if (src.format === "int-or-string") {
    delete out.type;
    delete out.format;
    out.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  if (src.properties && src.additionalProperties === undefined && !src["x-kubernetes-preserve-unknown-fields"])
    out.additionalProperties = false;
  return out;
}

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const int = (lo: number, hi: number) => ({
    type: "number" as const,
    validate: (n: number) => Number.isInteger(n) && n >= lo && n <= hi,
  });
  ajv.addFormat("int32", int(-(2 ** 31), 2 ** 31 - 1));
  ajv.addFormat("int64", int(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
  for (const f of ["double", "float"]) ajv.addFormat(f, { type: "number", validate: () => true });
  ajv.addFormat("byte", /^[A-Za-z0-9+/]*={0,2}$/);
  ajv.addFormat("date-time", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
  ajv.addKeyword({
    keyword: "x-cel",
    schemaType: "array",
    compile: (rules: string[]) => {
      const checks = rules.map((r) => [r, celRule(r)] as const);
      const v = (data: unknown): boolean => {
        const failed = checks.filter(([, fn]) => {
          try {
            return !fn(data);
          } catch {
            return true;
          }
        });
        (v as any).errors = failed.map(([rule]) => ({
          keyword: "x-cel",
          message: `fails CEL rule ${rule}`,
          params: {},
        }));
        return failed.length === 0;
      };
      return v;
    },
  });
  return ajv;
}

const compiled = new Map<string, ValidateFunction>();
let ajv: Ajv | undefined;

function k8sValidator(key: string): ValidateFunction | undefined {
  if (compiled.has(key)) return compiled.get(key);
  ajv ??= newAjv();
  crds ??= load("crds.json");
  k8s ??= load("k8s-openapi.json");
  let v: ValidateFunction | undefined;
  const [group, version, kind] = key.split("/");
  const crd = (crds.crds as Obj[]).find((c) => c.group === group && c.kind === kind && !/@/.test(c.source));
  const ver = crd?.versions.find((x: Obj) => x.name === version);
  if (ver) {
    const schema = closeK8s(ver.schema) as Obj;
    // The API server serves apiVersion, kind and metadata itself.
    schema.properties = {
      ...schema.properties,
      apiVersion: { type: "string" },
      kind: { type: "string" },
      metadata: { $ref: "k8s#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" },
    };
    if (!ajv.getSchema("k8s")) addK8sDefinitions(ajv, k8s);
    v = ajv.compile(schema);
  } else {
    const gvk = `${group ? group + "/" : ""}${version}/${kind}`;
    const def = (k8s.gvk as Record<string, string>)[gvk];
    if (def) {
      if (!ajv.getSchema("k8s")) addK8sDefinitions(ajv, k8s);
      v = ajv.getSchema(`k8s#/definitions/${def}`);
    }
  }
  if (v) compiled.set(key, v);
  return v;
}

function addK8sDefinitions(a: Ajv, doc: Obj): void {
  const defs = closeK8s(doc.definitions, "k8s#/definitions/") as Obj;
  // Quantities are written as strings or numbers (`cpu: 1`, `memory: 128Mi`).
  defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = { anyOf: [{ type: "string" }, { type: "number" }] };
  a.addSchema({ $id: "k8s", definitions: defs });
}

/** The `group/version/kind` key of a manifest (core group: empty group). */
function gvkKey(obj: Obj): string {
  const [group, version] = String(obj.apiVersion).includes("/")
    ? String(obj.apiVersion).split("/")
    : ["", obj.apiVersion];
  return `${group}/${version}/${obj.kind}`;
}

/** Envoy type of an EnvoyFilter patch value, by applyTo. */
const ENVOY_PATCH_TYPES: Record<string, string> = {
  CLUSTER: "envoy.config.cluster.v3.Cluster",
  EXTENSION_CONFIG: "envoy.config.core.v3.TypedExtensionConfig",
  HTTP_FILTER: "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
  HTTP_ROUTE: "envoy.config.route.v3.Route",
  LISTENER: "envoy.config.listener.v3.Listener",
  NETWORK_FILTER: "envoy.config.listener.v3.Filter",
  VIRTUAL_HOST: "envoy.config.route.v3.VirtualHost",
  ROUTE_CONFIGURATION: "envoy.config.route.v3.RouteConfiguration",
};

/**
 * Throws unless `obj` is valid for its upstream definition: the CRD (Istio, GIE) or Kubernetes' OpenAPI
 * definition; an EnvoyFilter's patch values also against Envoy's protos (a MERGE value is partial).
 */
export function validateUpstream(obj: Obj): void {
  const key = gvkKey(obj);
  const name = obj.metadata?.name;
  const v = k8sValidator(key);
  if (!v) throw new Error(`upstream schema: no definition of ${key} (${name})`);
  if (!v(obj as unknown)) {
    const errors = (v.errors ?? []).map(
      (e) =>
        `${e.instancePath || "/"} ${e.message}${e.keyword === "additionalProperties" ? ` (${(e.params as Obj).additionalProperty})` : ""}`,
    );
    throw new Error(`upstream schema: ${obj.kind} ${name}: ${errors.join("; ")}`);
  }
  if (obj.kind === "EnvoyFilter") {
    for (const [i, p] of (obj.spec?.configPatches ?? []).entries()) {
      const type = ENVOY_PATCH_TYPES[p.applyTo];
      if (p.patch?.value === undefined) continue;
      if (!type) throw new Error(`upstream schema: EnvoyFilter ${name}: no Envoy type for applyTo ${p.applyTo}`);
      validateEnvoy(type, p.patch.value, {
        partial: p.patch.operation === "MERGE",
        path: `${name}.configPatches[${i}]`,
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Envoy's protos in their JSON/YAML form: field names (proto or JSON name), types, enums by name, oneofs,
// Any by its @type, and the PGV rules envoy-api.json records for the fields present.

const WRAPPERS: Record<string, string> = {
  "google.protobuf.DoubleValue": "double",
  "google.protobuf.FloatValue": "float",
  "google.protobuf.Int64Value": "int64",
  "google.protobuf.UInt64Value": "uint64",
  "google.protobuf.Int32Value": "int32",
  "google.protobuf.UInt32Value": "uint32",
  "google.protobuf.BoolValue": "bool",
  "google.protobuf.StringValue": "string",
  "google.protobuf.BytesValue": "bytes",
};
const PROTO_DURATION = /^-?\d+(\.\d{1,9})?s$/;
const durationSeconds = (d: string) => Number(d.slice(0, -1));
const durationOf = (limit: Obj) => (limit.seconds ?? 0) + (limit.nanos ?? 0) / 1e9;

export interface EnvoyCheckOptions {
  /** A MERGE patch: fields may be missing, so PGV "required" is not checked. */
  partial?: boolean;
  path?: string;
}

/** Throws with the field path unless `value` is valid JSON for the Envoy message `typeName`. */
export function validateEnvoy(typeName: string, value: unknown, opts: EnvoyCheckOptions = {}): void {
  envoy ??= load("envoy-api.json");
  const types = envoy.types as Record<string, Obj>;
  const fail = (path: string, msg: string): never => {
    throw new Error(`Envoy ${typeName}: ${path}: ${msg}`);
  };

  const scalar = (t: string, v: unknown, path: string, rules: Obj | undefined): void => {
    switch (t) {
      case "string":
        if (typeof v !== "string") fail(path, `expected a string, got ${JSON.stringify(v)}`);
        if (rules?.string?.min_len !== undefined && (v as string).length < rules.string.min_len)
          fail(path, `shorter than ${rules.string.min_len}`);
        if (rules?.string?.in && !rules.string.in.includes(v)) fail(path, `not one of ${rules.string.in.join(", ")}`);
        return;
      case "bytes":
        if (typeof v !== "string") fail(path, "expected base64 bytes");
        return;
      case "bool":
        if (typeof v !== "boolean") fail(path, `expected a boolean, got ${JSON.stringify(v)}`);
        return;
      case "double":
      case "float":
        if (typeof v !== "number") fail(path, `expected a number, got ${JSON.stringify(v)}`);
        return;
      default: {
        const n = typeof v === "string" && /^-?\d+$/.test(v) && /64$/.test(t) ? Number(v) : v;
        if (typeof n !== "number" || !Number.isInteger(n)) fail(path, `expected an integer, got ${JSON.stringify(v)}`);
        if ((t.startsWith("uint") || t.startsWith("fixed")) && (n as number) < 0) fail(path, "must not be negative");
        const r = rules?.[t];
        if (r?.gte !== undefined && (n as number) < r.gte) fail(path, `must be >= ${r.gte}`);
        if (r?.gt !== undefined && (n as number) <= r.gt) fail(path, `must be > ${r.gt}`);
        if (r?.lte !== undefined && (n as number) > r.lte) fail(path, `must be <= ${r.lte}`);
        if (r?.lt !== undefined && (n as number) >= r.lt) fail(path, `must be < ${r.lt}`);
      }
    }
  };

  const check = (t: string, v: unknown, path: string, rules: Obj | undefined, partial: boolean): void => {
    if (!t.includes(".")) return scalar(t, v, path, rules);
    if (WRAPPERS[t]) return scalar(WRAPPERS[t], v, path, rules);
    switch (t) {
      case "google.protobuf.Duration": {
        if (typeof v !== "string" || !PROTO_DURATION.test(v))
          fail(path, `expected a duration like "1s", got ${JSON.stringify(v)}`);
        const d = rules?.duration;
        const s = durationSeconds(v as string);
        if (d?.gt && !(s > durationOf(d.gt))) fail(path, `must be longer than ${durationOf(d.gt)}s`);
        if (d?.gte && !(s >= durationOf(d.gte))) fail(path, `must be at least ${durationOf(d.gte)}s`);
        if (d?.lt && !(s < durationOf(d.lt))) fail(path, `must be shorter than ${durationOf(d.lt)}s`);
        return;
      }
      case "google.protobuf.Timestamp":
      case "google.protobuf.FieldMask":
        if (typeof v !== "string") fail(path, "expected a string");
        return;
      case "google.protobuf.Struct":
        if (v === null || typeof v !== "object" || Array.isArray(v)) fail(path, "expected an object");
        return;
      case "google.protobuf.ListValue":
        if (!Array.isArray(v)) fail(path, "expected a list");
        return;
      case "google.protobuf.Value":
        return;
      case "google.protobuf.Empty":
        if (v === null || typeof v !== "object" || Object.keys(v).length) fail(path, "expected {}");
        return;
      case "google.protobuf.Any":
        return any(v, path);
    }
    const type = types[t];
    if (!type) fail(path, `unknown type ${t}`);
    if (type.k === "e") {
      if (typeof v === "string" ? !(v in type.v) : !Object.values(type.v).includes(v))
        fail(path, `${JSON.stringify(v)} is not a value of ${t} (${Object.keys(type.v).join(", ")})`);
      return;
    }
    message(type, t, v, path, partial);
  };

  const any = (v: unknown, path: string): void => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) fail(path, "expected an Any object with @type");
    const o = v as Obj;
    const url = o["@type"];
    if (typeof url !== "string" || !url.startsWith("type.googleapis.com/"))
      fail(path, "Any without a type.googleapis.com/ @type");
    const t = (url as string).slice("type.googleapis.com/".length);
    if (!types[t] && !t.startsWith("google.protobuf.")) fail(path, `@type ${t} is not an Envoy type`);
    // Well-known types with a special JSON form keep it under "value".
    if (WRAPPERS[t] || /^google\.protobuf\.(Duration|Timestamp|FieldMask|Struct|Value|ListValue)$/.test(t)) {
      const extra = Object.keys(o).filter((k) => k !== "@type" && k !== "value");
      if (extra.length) fail(path, `unknown field ${extra[0]} of ${t}`);
      return check(t, o.value, `${path}.value`, undefined, false);
    }
    const rest = Object.fromEntries(Object.entries(o).filter(([k]) => k !== "@type"));
    // The message inside an Any is replaced whole by a merge, never merged: it must be complete.
    check(t, rest, path, undefined, false);
  };

  const message = (type: Obj, t: string, v: unknown, path: string, partial: boolean): void => {
    if (v === null || typeof v !== "object" || Array.isArray(v))
      fail(path, `expected a ${t} object, got ${JSON.stringify(v)}`);
    const fields = type.f as Record<string, Obj>;
    const byName = new Map<string, [string, Obj]>();
    for (const [name, f] of Object.entries(fields)) {
      byName.set(name, [name, f]);
      byName.set(f.j ?? name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), [name, f]);
    }
    const seen = new Set<string>();
    for (const [key, val] of Object.entries(v as Obj)) {
      const entry = byName.get(key);
      if (!entry) fail(`${path}.${key}`, `unknown field of ${t}`);
      const [name, f] = entry!;
      if (seen.has(name)) fail(`${path}.${key}`, "given twice (proto and JSON name)");
      seen.add(name);
      if (f.disallowed) fail(`${path}.${key}`, "deprecated and disallowed by default");
      const p = `${path}.${key}`;
      if (f.map) {
        if (val === null || typeof val !== "object" || Array.isArray(val)) fail(p, "expected a map");
        for (const [k, x] of Object.entries(val as Obj)) check(f.t, x, `${p}.${k}`, undefined, partial);
      } else if (f.rep) {
        if (!Array.isArray(val)) fail(p, "expected a list");
        const r = f.v?.repeated;
        if (r?.min_items !== undefined && (val as unknown[]).length < r.min_items)
          fail(p, `needs at least ${r.min_items} item(s)`);
        (val as unknown[]).forEach((x, i) => check(f.t, x, `${p}[${i}]`, r?.items, partial));
      } else check(f.t, val, p, f.v, partial);
    }
    for (const [oneof, o] of Object.entries((type.oneofs ?? {}) as Record<string, Obj>)) {
      const set = (o.members as string[]).filter((m) => seen.has(m));
      if (set.length > 1) fail(path, `oneof ${oneof}: only one of ${set.join(", ")}`);
      if (o.req && set.length === 0 && !partial)
        fail(path, `oneof ${oneof}: one of ${o.members.join(", ")} is required`);
    }
    if (!partial) {
      for (const [name, f] of Object.entries(fields)) {
        const required = f.v?.message?.required || f.v?.any?.required || f.v?.duration?.required;
        // A rule on a oneof member applies only when that member is the one set.
        if (required && !f.o && !seen.has(name)) fail(`${path}.${name}`, "required");
      }
    }
  };

  check(typeName, value, opts.path ?? "", undefined, opts.partial === true);
}

/** The extension names Envoy registers a type's factory under (envoy-api.json `ext`). */
export function envoyExtensionNames(typeName: string): string[] {
  envoy ??= load("envoy-api.json");
  return ((envoy.types as Record<string, Obj>)[typeName]?.ext as string[]) ?? [];
}
