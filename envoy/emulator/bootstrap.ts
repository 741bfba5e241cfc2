// Reads the subset of Envoy's v3 bootstrap that the gateway serves. Anything outside the subset is a
// startup error naming the field path, never silently ignored (except fields listed as ignored below,
// which do not change how a request is routed or filtered).
import { parse } from "yaml";
import { readFileSync } from "node:fs";

export interface SocketAddress {
  address: string;
  port: number;
}

export type HeaderMatch =
  | { name: string; kind: "present"; present: boolean; invert: boolean }
  | { name: string; kind: "exact" | "prefix" | "suffix" | "contains"; value: string; invert: boolean };

export interface Route {
  prefix?: string;
  path?: string;
  headers: HeaderMatch[];
  cluster?: string;
  /** Envoy's route timeout in ms; 0 = none. Default 15 s as in Envoy. */
  timeoutMs: number;
  direct?: { status: number; body: string };
}

export interface VirtualHost {
  name: string;
  domains: string[];
  routes: Route[];
}

export interface WasmFilterConfig {
  name: string;
  rootId: string;
  vmId: string;
  filename: string;
  configuration: string;
  vmConfiguration: string;
  failOpen: boolean;
  allowOnHeadersStopIteration: boolean;
}

export interface Listener {
  name: string;
  address: SocketAddress;
  statPrefix: string;
  virtualHosts: VirtualHost[];
  wasm: WasmFilterConfig | null;
  /** Request headers removed by header_mutation filters placed before the wasm filter. */
  removeRequestHeaders: string[];
}

export type LbPolicy = "ROUND_ROBIN" | "LEAST_REQUEST" | "RANDOM" | "CLUSTER_PROVIDED";

export interface Cluster {
  name: string;
  type: "STATIC" | "STRICT_DNS" | "LOGICAL_DNS" | "ORIGINAL_DST";
  lbPolicy: LbPolicy;
  connectTimeoutMs: number;
  endpoints: SocketAddress[];
  originalDstHeader: string | null;
}

export interface Bootstrap {
  listeners: Listener[];
  clusters: Map<string, Cluster>;
}

export class BootstrapError extends Error {}

type Obj = Record<string, unknown>;

function fail(path: string, msg: string): never {
  throw new BootstrapError(`${path}: ${msg}`);
}

function obj(v: unknown, path: string): Obj {
  if (v === null || typeof v !== "object" || Array.isArray(v)) fail(path, "must be an object");
  return v as Obj;
}
function arr(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, "must be a list");
  return v;
}
function str(v: unknown, path: string): string {
  if (typeof v !== "string" || v.length === 0) fail(path, "must be a non-empty string");
  return v;
}
function bool(v: unknown, path: string): boolean {
  if (typeof v === "boolean") return v;
  if (v && typeof v === "object" && typeof (v as Obj).value === "boolean") return (v as Obj).value as boolean;
  fail(path, "must be true or false");
}
function port(v: unknown, path: string): number {
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 65535)
    fail(path, `must be a port number, got ${JSON.stringify(v)}`);
  return n;
}
/** Protobuf Duration as YAML: "1s", "0.25s", "500ms" is not valid proto JSON, but seconds strings are. */
function durationMs(v: unknown, path: string): number {
  if (typeof v === "string") {
    const m = /^(\d+(?:\.\d+)?)s$/.exec(v.trim());
    if (m) return Math.round(Number(m[1]) * 1000);
  }
  if (v && typeof v === "object") {
    const o = v as Obj;
    return Number(o.seconds ?? 0) * 1000 + Math.round(Number(o.nanos ?? 0) / 1e6);
  }
  fail(path, `must be a duration like "1s" or "0.25s", got ${JSON.stringify(v)}`);
}
/** Rejects any key not in `known`; keys in `ignored` are accepted and have no effect here. */
function only(o: Obj, path: string, known: string[], ignored: string[] = []): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k) && !ignored.includes(k)) fail(`${path}.${k}`, "not supported by the emulator");
  }
}

const HCM_TYPE =
  "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const HEADER_MUTATION_TYPE = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation";
const ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue";

function socketAddress(v: unknown, path: string): SocketAddress {
  const a = obj(obj(v, path).socket_address, `${path}.socket_address`);
  only(a, `${path}.socket_address`, ["address", "port_value"], ["protocol"]);
  if (a.protocol !== undefined && a.protocol !== "TCP") fail(`${path}.socket_address.protocol`, "only TCP");
  return {
    address: str(a.address, `${path}.socket_address.address`),
    port: port(a.port_value, `${path}.socket_address.port_value`),
  };
}

function headerMatcher(v: unknown, path: string): HeaderMatch {
  const h = obj(v, path);
  only(h, path, [
    "name",
    "present_match",
    "exact_match",
    "prefix_match",
    "suffix_match",
    "contains_match",
    "string_match",
    "invert_match",
  ]);
  const name = str(h.name, `${path}.name`).toLowerCase();
  const invert = h.invert_match === undefined ? false : bool(h.invert_match, `${path}.invert_match`);
  if (h.present_match !== undefined)
    return { name, kind: "present", present: bool(h.present_match, `${path}.present_match`), invert };
  for (const k of ["exact", "prefix", "suffix", "contains"] as const) {
    if (h[`${k}_match`] !== undefined) return { name, kind: k, value: String(h[`${k}_match`]), invert };
  }
  if (h.string_match !== undefined) {
    const sm = obj(h.string_match, `${path}.string_match`);
    only(sm, `${path}.string_match`, ["exact", "prefix", "suffix", "contains"]);
    for (const k of ["exact", "prefix", "suffix", "contains"] as const) {
      if (sm[k] !== undefined) return { name, kind: k, value: String(sm[k]), invert };
    }
  }
  // Envoy: a matcher with no match specifier matches when the header is present.
  return { name, kind: "present", present: true, invert };
}

function route(v: unknown, path: string): Route {
  const r = obj(v, path);
  only(r, path, ["match", "route", "direct_response", "name"], ["decorator", "metadata"]);
  const m = obj(r.match, `${path}.match`);
  only(m, `${path}.match`, ["prefix", "path", "headers"]);
  if ((m.prefix === undefined) === (m.path === undefined)) fail(`${path}.match`, "needs exactly one of prefix or path");
  const out: Route = {
    prefix: m.prefix === undefined ? undefined : String(m.prefix),
    path: m.path === undefined ? undefined : String(m.path),
    headers:
      m.headers === undefined
        ? []
        : arr(m.headers, `${path}.match.headers`).map((h, i) => headerMatcher(h, `${path}.match.headers[${i}]`)),
    timeoutMs: 15000,
  };
  if (r.route !== undefined) {
    const a = obj(r.route, `${path}.route`);
    only(a, `${path}.route`, ["cluster", "timeout"], ["idle_timeout", "retry_policy_disabled"]);
    out.cluster = str(a.cluster, `${path}.route.cluster`);
    if (a.timeout !== undefined) out.timeoutMs = durationMs(a.timeout, `${path}.route.timeout`);
  } else if (r.direct_response !== undefined) {
    const d = obj(r.direct_response, `${path}.direct_response`);
    only(d, `${path}.direct_response`, ["status", "body"]);
    const body = d.body === undefined ? "" : String(obj(d.body, `${path}.direct_response.body`).inline_string ?? "");
    out.direct = { status: port(d.status, `${path}.direct_response.status`), body };
  } else {
    fail(path, "needs route or direct_response");
  }
  return out;
}

function stringValue(v: unknown, path: string): string {
  if (typeof v === "string") return v;
  const o = obj(v, path);
  if (o["@type"] !== STRING_VALUE)
    fail(`${path}.@type`, `only ${STRING_VALUE} is supported, got ${JSON.stringify(o["@type"])}`);
  only(o, path, ["@type", "value"]);
  return o.value === undefined ? "" : String(o.value);
}

function wasmFilter(v: unknown, path: string): WasmFilterConfig {
  const tc = obj(v, path);
  only(tc, path, ["@type", "config"]);
  const c = obj(tc.config, `${path}.config`);
  only(c, `${path}.config`, [
    "name",
    "root_id",
    "vm_config",
    "configuration",
    "fail_open",
    "failure_policy",
    "allow_on_headers_stop_iteration",
  ]);
  const vc = obj(c.vm_config, `${path}.config.vm_config`);
  only(
    vc,
    `${path}.config.vm_config`,
    ["vm_id", "runtime", "code", "configuration"],
    ["allow_precompiled", "nack_on_code_cache_miss"],
  );
  const runtime = str(vc.runtime, `${path}.config.vm_config.runtime`);
  if (runtime !== "envoy.wasm.runtime.v8")
    fail(`${path}.config.vm_config.runtime`, `only envoy.wasm.runtime.v8 (Node is V8), got ${runtime}`);
  const code = obj(vc.code, `${path}.config.vm_config.code`);
  only(code, `${path}.config.vm_config.code`, ["local"]);
  const local = obj(code.local, `${path}.config.vm_config.code.local`);
  only(local, `${path}.config.vm_config.code.local`, ["filename"]);
  let failOpen = c.fail_open === undefined ? false : bool(c.fail_open, `${path}.config.fail_open`);
  if (c.failure_policy !== undefined) {
    const p = String(c.failure_policy);
    if (p === "FAIL_OPEN") failOpen = true;
    else if (p === "FAIL_CLOSED" || p === "UNSPECIFIED") failOpen = false;
    else fail(`${path}.config.failure_policy`, `${p} is not supported (FAIL_CLOSED or FAIL_OPEN)`);
  }
  const rootId = c.root_id === undefined ? "" : String(c.root_id);
  return {
    name: c.name === undefined ? rootId : String(c.name),
    rootId,
    vmId: vc.vm_id === undefined ? "" : String(vc.vm_id),
    filename: str(local.filename, `${path}.config.vm_config.code.local.filename`),
    configuration: c.configuration === undefined ? "" : stringValue(c.configuration, `${path}.config.configuration`),
    vmConfiguration:
      vc.configuration === undefined ? "" : stringValue(vc.configuration, `${path}.config.vm_config.configuration`),
    failOpen,
    allowOnHeadersStopIteration:
      c.allow_on_headers_stop_iteration === undefined
        ? false
        : bool(c.allow_on_headers_stop_iteration, `${path}.config.allow_on_headers_stop_iteration`),
  };
}

function listener(v: unknown, path: string): Listener {
  const l = obj(v, path);
  only(l, path, ["name", "address", "filter_chains"], ["per_connection_buffer_limit_bytes"]);
  const chains = arr(l.filter_chains, `${path}.filter_chains`);
  if (chains.length !== 1) fail(`${path}.filter_chains`, "exactly one filter chain is supported");
  const chain = obj(chains[0], `${path}.filter_chains[0]`);
  only(chain, `${path}.filter_chains[0]`, ["filters"]);
  const filters = arr(chain.filters, `${path}.filter_chains[0].filters`);
  if (filters.length !== 1)
    fail(`${path}.filter_chains[0].filters`, "exactly one network filter (the http_connection_manager) is supported");
  const fp = `${path}.filter_chains[0].filters[0]`;
  const f = obj(filters[0], fp);
  only(f, fp, ["name", "typed_config"]);
  const hcm = obj(f.typed_config, `${fp}.typed_config`);
  if (hcm["@type"] !== HCM_TYPE)
    fail(`${fp}.typed_config.@type`, `only ${HCM_TYPE}, got ${JSON.stringify(hcm["@type"])}`);
  const hp = `${fp}.typed_config`;
  only(
    hcm,
    hp,
    ["@type", "stat_prefix", "route_config", "http_filters", "codec_type"],
    [
      "stream_idle_timeout",
      "request_timeout",
      "use_remote_address",
      "generate_request_id",
      "normalize_path",
      "merge_slashes",
      "server_name",
      "access_log",
      "common_http_protocol_options",
    ],
  );
  if (hcm.codec_type !== undefined && !["AUTO", "HTTP1"].includes(String(hcm.codec_type)))
    fail(`${hp}.codec_type`, "only AUTO or HTTP1 (the emulator speaks HTTP/1.1)");
  const rc = obj(hcm.route_config, `${hp}.route_config`);
  only(rc, `${hp}.route_config`, ["name", "virtual_hosts"]);
  const vhosts = arr(rc.virtual_hosts, `${hp}.route_config.virtual_hosts`).map((vh, i) => {
    const p = `${hp}.route_config.virtual_hosts[${i}]`;
    const o = obj(vh, p);
    only(o, p, ["name", "domains", "routes"]);
    return {
      name: str(o.name, `${p}.name`),
      domains: arr(o.domains, `${p}.domains`).map((d) => String(d).toLowerCase()),
      routes: arr(o.routes, `${p}.routes`).map((r, j) => route(r, `${p}.routes[${j}]`)),
    };
  });
  const hf = arr(hcm.http_filters, `${hp}.http_filters`);
  let wasm: WasmFilterConfig | null = null;
  const removeRequestHeaders: string[] = [];
  hf.forEach((x, i) => {
    const p = `${hp}.http_filters[${i}]`;
    const o = obj(x, p);
    only(o, p, ["name", "typed_config"]);
    const name = str(o.name, `${p}.name`);
    const t = o.typed_config === undefined ? undefined : obj(o.typed_config, `${p}.typed_config`)["@type"];
    if (name === "envoy.filters.http.router" || t === ROUTER_TYPE) {
      if (i !== hf.length - 1) fail(p, "the router must be the last HTTP filter");
      return;
    }
    if (name === "envoy.filters.http.wasm" || t === WASM_TYPE) {
      if (t !== WASM_TYPE) fail(`${p}.typed_config.@type`, `must be ${WASM_TYPE}`);
      if (wasm) fail(p, "only one wasm filter per listener is supported");
      wasm = wasmFilter(o.typed_config, `${p}.typed_config`);
      return;
    }
    if (name === "envoy.filters.http.header_mutation" || t === HEADER_MUTATION_TYPE) {
      if (t !== HEADER_MUTATION_TYPE) fail(`${p}.typed_config.@type`, `must be ${HEADER_MUTATION_TYPE}`);
      if (wasm) fail(p, "header_mutation is supported before the wasm filter only");
      removeRequestHeaders.push(...headerRemovals(o.typed_config, `${p}.typed_config`));
      return;
    }
    fail(
      `${p}.name`,
      `HTTP filter ${name} is not supported (only envoy.filters.http.header_mutation, envoy.filters.http.wasm and envoy.filters.http.router)`,
    );
  });
  const last = hf.length ? obj(hf[hf.length - 1], `${hp}.http_filters[${hf.length - 1}]`).name : undefined;
  if (last !== "envoy.filters.http.router") fail(`${hp}.http_filters`, "must end with envoy.filters.http.router");
  return {
    name: l.name === undefined ? "" : String(l.name),
    address: socketAddress(l.address, `${path}.address`),
    statPrefix: str(hcm.stat_prefix, `${hp}.stat_prefix`),
    virtualHosts: vhosts,
    wasm,
    removeRequestHeaders,
  };
}

/** The header names a header_mutation filter removes from requests (the only mutation supported). */
function headerRemovals(v: unknown, path: string): string[] {
  const o = obj(v, path);
  only(o, path, ["@type", "mutations"]);
  const m = obj(o.mutations, `${path}.mutations`);
  only(m, `${path}.mutations`, ["request_mutations"]);
  return arr(m.request_mutations, `${path}.mutations.request_mutations`).map((x, i) => {
    const rp = `${path}.mutations.request_mutations[${i}]`;
    const r = obj(x, rp);
    only(r, rp, ["remove"]);
    return str(r.remove, `${rp}.remove`).toLowerCase();
  });
}

function cluster(v: unknown, path: string): Cluster {
  const c = obj(v, path);
  only(
    c,
    path,
    ["name", "type", "lb_policy", "connect_timeout", "load_assignment", "original_dst_lb_config"],
    [
      "dns_lookup_family",
      "dns_refresh_rate",
      "respect_dns_ttl",
      "cleanup_interval",
      "per_connection_buffer_limit_bytes",
    ],
  );
  const name = str(c.name, `${path}.name`);
  const type = c.type === undefined ? "STATIC" : String(c.type);
  if (!["STATIC", "STRICT_DNS", "LOGICAL_DNS", "ORIGINAL_DST"].includes(type))
    fail(`${path}.type`, `${type} is not supported (STATIC, STRICT_DNS, LOGICAL_DNS, ORIGINAL_DST)`);
  const lb = c.lb_policy === undefined ? "ROUND_ROBIN" : String(c.lb_policy);
  if (!["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "CLUSTER_PROVIDED"].includes(lb))
    fail(`${path}.lb_policy`, `${lb} is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM, CLUSTER_PROVIDED)`);
  if (type === "ORIGINAL_DST" && lb !== "CLUSTER_PROVIDED")
    fail(`${path}.lb_policy`, "ORIGINAL_DST clusters need lb_policy CLUSTER_PROVIDED (Envoy refuses anything else)");
  if (type !== "ORIGINAL_DST" && lb === "CLUSTER_PROVIDED")
    fail(`${path}.lb_policy`, "CLUSTER_PROVIDED is only valid for ORIGINAL_DST clusters");
  const endpoints: SocketAddress[] = [];
  if (c.load_assignment !== undefined) {
    const la = obj(c.load_assignment, `${path}.load_assignment`);
    only(la, `${path}.load_assignment`, ["cluster_name", "endpoints"]);
    arr(la.endpoints ?? [], `${path}.load_assignment.endpoints`).forEach((e, i) => {
      const ep = `${path}.load_assignment.endpoints[${i}]`;
      const eo = obj(e, ep);
      only(eo, ep, ["lb_endpoints"], ["locality", "priority"]);
      arr(eo.lb_endpoints, `${ep}.lb_endpoints`).forEach((le, j) => {
        const lp = `${ep}.lb_endpoints[${j}]`;
        const lo = obj(le, lp);
        only(lo, lp, ["endpoint"], ["load_balancing_weight", "health_status"]);
        const en = obj(lo.endpoint, `${lp}.endpoint`);
        only(en, `${lp}.endpoint`, ["address"], ["hostname"]);
        endpoints.push(socketAddress(en.address, `${lp}.endpoint.address`));
      });
    });
  }
  let originalDstHeader: string | null = null;
  if (type === "ORIGINAL_DST") {
    if (endpoints.length) fail(`${path}.load_assignment`, "ORIGINAL_DST clusters take no endpoints");
    if (c.original_dst_lb_config === undefined)
      fail(
        `${path}.original_dst_lb_config`,
        "required: the emulator has no socket original destination, only use_http_header",
      );
    const o = obj(c.original_dst_lb_config, `${path}.original_dst_lb_config`);
    only(o, `${path}.original_dst_lb_config`, ["use_http_header", "http_header_name"]);
    if (!bool(o.use_http_header, `${path}.original_dst_lb_config.use_http_header`))
      fail(`${path}.original_dst_lb_config.use_http_header`, "must be true");
    originalDstHeader =
      o.http_header_name === undefined ? "x-envoy-original-dst-host" : String(o.http_header_name).toLowerCase();
  } else if (c.original_dst_lb_config !== undefined) {
    fail(`${path}.original_dst_lb_config`, "only valid for ORIGINAL_DST clusters");
  }
  return {
    name,
    type: type as Cluster["type"],
    lbPolicy: lb as LbPolicy,
    connectTimeoutMs: c.connect_timeout === undefined ? 5000 : durationMs(c.connect_timeout, `${path}.connect_timeout`),
    endpoints,
    originalDstHeader,
  };
}

export function parseBootstrap(text: string): Bootstrap {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new BootstrapError(`bootstrap: invalid YAML: ${(e as Error).message}`);
  }
  const root = obj(doc, "bootstrap");
  only(root, "bootstrap", ["static_resources"], ["admin", "node", "layered_runtime", "overload_manager"]);
  const sr = obj(root.static_resources, "static_resources");
  only(sr, "static_resources", ["listeners", "clusters"]);
  const listeners = arr(sr.listeners, "static_resources.listeners").map((l, i) =>
    listener(l, `static_resources.listeners[${i}]`),
  );
  const clusters = new Map<string, Cluster>();
  arr(sr.clusters ?? [], "static_resources.clusters").forEach((c, i) => {
    const cl = cluster(c, `static_resources.clusters[${i}]`);
    if (clusters.has(cl.name)) fail(`static_resources.clusters[${i}].name`, `duplicate cluster ${cl.name}`);
    clusters.set(cl.name, cl);
  });
  listeners.forEach((l, i) =>
    l.virtualHosts.forEach((vh, j) =>
      vh.routes.forEach((r, k) => {
        if (r.cluster && !clusters.has(r.cluster)) {
          fail(
            `static_resources.listeners[${i}]...virtual_hosts[${j}].routes[${k}].route.cluster`,
            `unknown cluster ${r.cluster}`,
          );
        }
      }),
    ),
  );
  return { listeners, clusters };
}

export function loadBootstrap(file: string): Bootstrap {
  return parseBootstrap(readFileSync(file, "utf8"));
}
