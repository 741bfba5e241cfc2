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

/** route.retry_policy (envoy.config.route.v3.RetryPolicy), as the router applies it. */
export interface RetryPolicy {
  /** The retry_on tokens Envoy knows, as given (Envoy ignores tokens it does not know). */
  retryOn: Set<string>;
  /** Default 1 when a retry_policy is present (RetryPolicyImpl). */
  numRetries: number;
  /** 0 = none. */
  perTryTimeoutMs: number;
  /** envoy.retry_host_predicates.previous_hosts configured. */
  previousHosts: boolean;
  /** host_selection_retry_max_attempts: extra picks on a retry while a predicate rejects the host (Envoy's default 1). */
  hostSelectionRetryMaxAttempts: number;
  retriableStatusCodes: number[];
  /** retry_back_off: base 25 ms by default, max 10 x base. */
  baseIntervalMs: number;
  maxIntervalMs: number;
}

export interface Route {
  prefix?: string;
  path?: string;
  headers: HeaderMatch[];
  cluster?: string;
  /** Envoy's route timeout in ms; 0 = none. Default 15 s as in Envoy. */
  timeoutMs: number;
  retryPolicy: RetryPolicy | null;
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
  /** per_connection_buffer_limit_bytes (default 1 MiB): the router buffers at most this much for retries. */
  bufferLimitBytes: number;
  /** HCM http_protocol_options (Http1ProtocolOptions). */
  http1: { allowAbsoluteUrl: boolean; enableTrailers: boolean };
}

export type LbPolicy = "ROUND_ROBIN" | "LEAST_REQUEST" | "RANDOM" | "CLUSTER_PROVIDED";

/** A cluster's load balancer: the legacy lb_policy or a load_balancing_policy extension. */
export type LbConfig =
  | { kind: "round_robin" }
  | { kind: "least_request"; choiceCount: number }
  | { kind: "random" }
  /** envoy.load_balancing_policies.override_host: hosts named by request headers, else the fallback. */
  | { kind: "override_host"; headers: string[]; fallback: LbConfig };

/** envoy.config.cluster.v3.OutlierDetection, the consecutive-error detectors (times in ms). */
export interface OutlierConfig {
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionTimeMs: number;
  maxEjectionTimeJitterMs: number;
  maxEjectionPercent: number;
  consecutive5xx: number;
  consecutiveGatewayFailure: number;
  consecutiveLocalOriginFailure: number;
  enforcingConsecutive5xx: number;
  enforcingConsecutiveGatewayFailure: number;
  enforcingConsecutiveLocalOriginFailure: number;
  splitExternalLocalOriginErrors: boolean;
  alwaysEjectOneHost: boolean;
}

/** Envoy's defaults (source/common/upstream/outlier_detection_impl.h), overridden by `given`. */
export function outlierConfig(given: Partial<OutlierConfig> = {}): OutlierConfig {
  const base = given.baseEjectionTimeMs ?? 30_000;
  return {
    intervalMs: 10_000,
    baseEjectionTimeMs: base,
    maxEjectionTimeMs: Math.max(300_000, base),
    maxEjectionTimeJitterMs: 0,
    maxEjectionPercent: 10,
    consecutive5xx: 5,
    consecutiveGatewayFailure: 5,
    consecutiveLocalOriginFailure: 5,
    enforcingConsecutive5xx: 100,
    enforcingConsecutiveGatewayFailure: 0,
    enforcingConsecutiveLocalOriginFailure: 100,
    splitExternalLocalOriginErrors: false,
    alwaysEjectOneHost: false,
    ...given,
  };
}

export interface Cluster {
  name: string;
  type: "STATIC" | "STRICT_DNS" | "LOGICAL_DNS" | "ORIGINAL_DST";
  /** The legacy lb_policy as written (ignored by Envoy when load_balancing_policy is set). */
  lbPolicy: LbPolicy;
  /** The load balancer in effect; null for ORIGINAL_DST (the host comes from originalDstHeader). */
  lb: LbConfig | null;
  connectTimeoutMs: number;
  endpoints: SocketAddress[];
  originalDstHeader: string | null;
  outlierDetection: OutlierConfig | null;
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

/**
 * Checks an Envoy proto message: a key the message does not have is refused as unknown (naming the message);
 * a field Envoy has that the emulator does not model is refused as not supported; `ignored` ones are accepted.
 */
function fields(
  o: Obj,
  path: string,
  message: string,
  all: string[],
  supported: string[],
  ignored: string[] = [],
): void {
  for (const k of Object.keys(o)) {
    if (!all.includes(k)) fail(`${path}.${k}`, `unknown field (${message} has no field ${k})`);
    if (!supported.includes(k) && !ignored.includes(k)) fail(`${path}.${k}`, "not supported by the emulator");
  }
}
/** google.protobuf.UInt32Value (a number, or {value}) or a plain uint32. */
function u32(v: unknown, path: string, min = 0, max = 0xffffffff): number {
  const raw = v && typeof v === "object" && !Array.isArray(v) ? (v as Obj).value : v;
  const n = typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max)
    fail(path, `must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return n;
}
function positiveDurationMs(v: unknown, path: string): number {
  const ms = durationMs(v, path);
  if (!(ms > 0)) fail(path, "must be greater than 0s");
  return ms;
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
    retryPolicy: null,
  };
  if (r.route !== undefined) {
    const a = obj(r.route, `${path}.route`);
    only(a, `${path}.route`, ["cluster", "timeout", "retry_policy"], ["idle_timeout"]);
    out.cluster = str(a.cluster, `${path}.route.cluster`);
    if (a.timeout !== undefined) out.timeoutMs = durationMs(a.timeout, `${path}.route.timeout`);
    if (a.retry_policy !== undefined) out.retryPolicy = retryPolicy(a.retry_policy, `${path}.route.retry_policy`);
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

/** Every retry_on token Envoy's RetryStateImpl::parseRetryOn and parseRetryGrpcOn know. */
export const RETRY_ON_TOKENS = [
  "5xx",
  "gateway-error",
  "connect-failure",
  "envoy-ratelimited",
  "retriable-4xx",
  "refused-stream",
  "retriable-status-codes",
  "retriable-headers",
  "reset",
  "reset-before-request",
  "http3-post-connect-failure",
  "cancelled",
  "deadline-exceeded",
  "resource-exhausted",
  "unavailable",
  "internal",
];
const RETRY_POLICY_FIELDS = [
  "retry_on",
  "num_retries",
  "per_try_timeout",
  "per_try_idle_timeout",
  "retry_priority",
  "retry_host_predicate",
  "retry_options_predicates",
  "host_selection_retry_max_attempts",
  "retriable_status_codes",
  "retry_back_off",
  "rate_limited_retry_back_off",
  "retriable_headers",
  "retriable_request_headers",
];
const PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts";
const PREVIOUS_HOSTS_TYPE = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";
const OTHER_HOST_PREDICATES = [
  "envoy.retry_host_predicates.omit_canary_hosts",
  "envoy.retry_host_predicates.omit_host_metadata",
];

function retryPolicy(v: unknown, path: string): RetryPolicy {
  const o = obj(v, path);
  fields(o, path, "envoy.config.route.v3.RetryPolicy", RETRY_POLICY_FIELDS, [
    "retry_on",
    "num_retries",
    "per_try_timeout",
    "retry_host_predicate",
    "host_selection_retry_max_attempts",
    "retriable_status_codes",
    "retry_back_off",
  ]);
  // Envoy splits on ",", trims, drops empty tokens and ignores the ones it does not know (RetryPolicyImpl
  // keeps only parseRetryOn's bits; the all_fields_valid flag is checked for request headers only).
  const retryOn = new Set<string>();
  if (o.retry_on !== undefined) {
    if (typeof o.retry_on !== "string") fail(`${path}.retry_on`, "must be a string");
    for (const t of o.retry_on.split(",").map((x) => x.trim())) if (t && RETRY_ON_TOKENS.includes(t)) retryOn.add(t);
  }
  let previousHosts = false;
  if (o.retry_host_predicate !== undefined) {
    arr(o.retry_host_predicate, `${path}.retry_host_predicate`).forEach((p, i) => {
      const pp = `${path}.retry_host_predicate[${i}]`;
      const po = obj(p, pp);
      fields(
        po,
        pp,
        "envoy.config.route.v3.RetryPolicy.RetryHostPredicate",
        ["name", "typed_config"],
        ["name", "typed_config"],
      );
      const name = str(po.name, `${pp}.name`);
      if (OTHER_HOST_PREDICATES.includes(name)) fail(`${pp}.name`, `${name} is not supported by the emulator`);
      if (name !== PREVIOUS_HOSTS) fail(`${pp}.name`, `Didn't find a registered implementation for name: '${name}'`);
      if (po.typed_config !== undefined) {
        const tc = obj(po.typed_config, `${pp}.typed_config`);
        if (tc["@type"] !== PREVIOUS_HOSTS_TYPE) fail(`${pp}.typed_config.@type`, `must be ${PREVIOUS_HOSTS_TYPE}`);
        fields(
          tc,
          `${pp}.typed_config`,
          "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
          ["@type"],
          ["@type"],
        );
      }
      previousHosts = true;
    });
  }
  let hostSelectionRetryMaxAttempts = 1; // RetryPolicyImpl: host_selection_attempts_{1}, replaced when non-zero
  if (o.host_selection_retry_max_attempts !== undefined) {
    const h = o.host_selection_retry_max_attempts;
    const n = typeof h === "string" && /^-?\d+$/.test(h) ? Number(h) : h;
    if (typeof n !== "number" || !Number.isInteger(n))
      fail(`${path}.host_selection_retry_max_attempts`, "must be an integer (int64)");
    if (n !== 0) hostSelectionRetryMaxAttempts = n > 0 && n <= 0xffffffff ? n : n >>> 0 || 1;
  }
  let baseIntervalMs = 25;
  let maxIntervalMs = 250;
  if (o.retry_back_off !== undefined) {
    const bp = `${path}.retry_back_off`;
    const b = obj(o.retry_back_off, bp);
    fields(
      b,
      bp,
      "envoy.config.route.v3.RetryPolicy.RetryBackOff",
      ["base_interval", "max_interval"],
      ["base_interval", "max_interval"],
    );
    if (b.base_interval === undefined) fail(`${bp}.base_interval`, "is required");
    baseIntervalMs = Math.max(1, positiveDurationMs(b.base_interval, `${bp}.base_interval`));
    maxIntervalMs = baseIntervalMs * 10;
    if (b.max_interval !== undefined) {
      maxIntervalMs = Math.max(1, positiveDurationMs(b.max_interval, `${bp}.max_interval`));
      if (maxIntervalMs < baseIntervalMs)
        fail(`${bp}.max_interval`, "retry_policy.max_interval must greater than or equal to the base_interval");
    }
  }
  return {
    retryOn,
    numRetries: o.num_retries === undefined ? 1 : u32(o.num_retries, `${path}.num_retries`),
    perTryTimeoutMs: o.per_try_timeout === undefined ? 0 : durationMs(o.per_try_timeout, `${path}.per_try_timeout`),
    previousHosts,
    hostSelectionRetryMaxAttempts,
    retriableStatusCodes:
      o.retriable_status_codes === undefined
        ? []
        : arr(o.retriable_status_codes, `${path}.retriable_status_codes`).map((c, i) =>
            u32(c, `${path}.retriable_status_codes[${i}]`),
          ),
    baseIntervalMs,
    maxIntervalMs,
  };
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
  only(l, path, ["name", "address", "filter_chains", "per_connection_buffer_limit_bytes"]);
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
    ["@type", "stat_prefix", "route_config", "http_filters", "codec_type", "http_protocol_options"],
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
    bufferLimitBytes:
      l.per_connection_buffer_limit_bytes === undefined
        ? 1024 * 1024
        : u32(l.per_connection_buffer_limit_bytes, `${path}.per_connection_buffer_limit_bytes`),
    http1: http1Options(hcm.http_protocol_options, `${hp}.http_protocol_options`),
  };
}

/** HCM http_protocol_options (Http1ProtocolOptions): allow_absolute_url (default true), enable_trailers. */
function http1Options(v: unknown, path: string): Listener["http1"] {
  if (v === undefined) return { allowAbsoluteUrl: true, enableTrailers: false };
  const o = obj(v, path);
  fields(
    o,
    path,
    "envoy.config.core.v3.Http1ProtocolOptions",
    [
      "allow_absolute_url",
      "accept_http_10",
      "default_host_for_http_10",
      "header_key_format",
      "enable_trailers",
      "allow_chunked_length",
      "override_stream_error_on_invalid_http_message",
      "send_fully_qualified_url",
      "use_balsa_parser",
      "allow_custom_methods",
      "ignore_http_11_upgrade",
    ],
    ["allow_absolute_url", "enable_trailers"],
  );
  return {
    allowAbsoluteUrl:
      o.allow_absolute_url === undefined ? true : bool(o.allow_absolute_url, `${path}.allow_absolute_url`),
    enableTrailers: o.enable_trailers === undefined ? false : bool(o.enable_trailers, `${path}.enable_trailers`),
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
    [
      "name",
      "type",
      "lb_policy",
      "load_balancing_policy",
      "connect_timeout",
      "load_assignment",
      "original_dst_lb_config",
      "outlier_detection",
    ],
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
  // Envoy ignores lb_policy when load_balancing_policy is set.
  let lbConfig: LbConfig | null = null;
  if (c.load_balancing_policy !== undefined) {
    if (type === "ORIGINAL_DST")
      fail(
        `${path}.load_balancing_policy`,
        "not supported by the emulator for ORIGINAL_DST clusters (use lb_policy CLUSTER_PROVIDED)",
      );
    lbConfig = loadBalancingPolicy(c.load_balancing_policy, `${path}.load_balancing_policy`);
  } else {
    if (type === "ORIGINAL_DST" && lb !== "CLUSTER_PROVIDED")
      fail(`${path}.lb_policy`, "ORIGINAL_DST clusters need lb_policy CLUSTER_PROVIDED (Envoy refuses anything else)");
    if (type !== "ORIGINAL_DST" && lb === "CLUSTER_PROVIDED")
      fail(`${path}.lb_policy`, "CLUSTER_PROVIDED is only valid for ORIGINAL_DST clusters");
    if (type !== "ORIGINAL_DST")
      lbConfig =
        lb === "LEAST_REQUEST"
          ? { kind: "least_request", choiceCount: 2 }
          : lb === "RANDOM"
            ? { kind: "random" }
            : { kind: "round_robin" };
  }
  let outlier: OutlierConfig | null = null;
  if (c.outlier_detection !== undefined) {
    if (type === "ORIGINAL_DST")
      fail(`${path}.outlier_detection`, "not supported by the emulator for ORIGINAL_DST clusters");
    outlier = outlierDetection(c.outlier_detection, `${path}.outlier_detection`);
  }
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
    lb: lbConfig,
    connectTimeoutMs: c.connect_timeout === undefined ? 5000 : durationMs(c.connect_timeout, `${path}.connect_timeout`),
    endpoints,
    originalDstHeader,
    outlierDetection: outlier,
  };
}

const LB_PREFIX = "type.googleapis.com/envoy.extensions.load_balancing_policies.";
const ROUND_ROBIN_TYPE = `${LB_PREFIX}round_robin.v3.RoundRobin`;
const LEAST_REQUEST_TYPE = `${LB_PREFIX}least_request.v3.LeastRequest`;
const RANDOM_TYPE = `${LB_PREFIX}random.v3.Random`;
const OVERRIDE_HOST_TYPE = `${LB_PREFIX}override_host.v3.OverrideHost`;
/** Load balancer extensions Envoy registers that the emulator does not model. */
const OTHER_ENVOY_LBS = [
  "client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin",
  "cluster_provided.v3.ClusterProvided",
  "maglev.v3.Maglev",
  "pick_first.v3.PickFirst",
  "random_subsetting.v3.RandomSubsetting",
  "ring_hash.v3.RingHash",
  "subset.v3.Subset",
  "wrr_locality.v3.WrrLocality",
].map((t) => LB_PREFIX + t);

/**
 * envoy.config.cluster.v3.LoadBalancingPolicy: as Envoy, the first policy whose extension is registered is
 * used (by the type of its typed_config); policies Envoy does not know are skipped, and none left is an error.
 */
function loadBalancingPolicy(v: unknown, path: string): LbConfig {
  const o = obj(v, path);
  fields(o, path, "envoy.config.cluster.v3.LoadBalancingPolicy", ["policies"], ["policies"]);
  const missing: string[] = [];
  const policies = arr(o.policies ?? [], `${path}.policies`);
  for (let i = 0; i < policies.length; i++) {
    const pp = `${path}.policies[${i}]`;
    const po = obj(policies[i], pp);
    fields(
      po,
      pp,
      "envoy.config.cluster.v3.LoadBalancingPolicy.Policy",
      ["typed_extension_config"],
      ["typed_extension_config"],
    );
    const tp = `${pp}.typed_extension_config`;
    const te = obj(po.typed_extension_config, tp);
    fields(te, tp, "envoy.config.core.v3.TypedExtensionConfig", ["name", "typed_config"], ["name", "typed_config"]);
    const name = str(te.name, `${tp}.name`);
    const tc = obj(te.typed_config, `${tp}.typed_config`);
    const t = tc["@type"];
    const cp = `${tp}.typed_config`;
    if (t === ROUND_ROBIN_TYPE) {
      fields(
        tc,
        cp,
        "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
        ["@type", "slow_start_config", "locality_lb_config"],
        ["@type"],
      );
      return { kind: "round_robin" };
    }
    if (t === RANDOM_TYPE) {
      fields(
        tc,
        cp,
        "envoy.extensions.load_balancing_policies.random.v3.Random",
        ["@type", "locality_lb_config"],
        ["@type"],
      );
      return { kind: "random" };
    }
    if (t === LEAST_REQUEST_TYPE) {
      fields(
        tc,
        cp,
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
        [
          "@type",
          "choice_count",
          "active_request_bias",
          "slow_start_config",
          "locality_lb_config",
          "enable_full_scan",
          "selection_method",
        ],
        ["@type", "choice_count"],
      );
      return {
        kind: "least_request",
        choiceCount: tc.choice_count === undefined ? 2 : u32(tc.choice_count, `${cp}.choice_count`, 2),
      };
    }
    if (t === OVERRIDE_HOST_TYPE) return overrideHost(tc, cp);
    if (OTHER_ENVOY_LBS.includes(String(t))) fail(`${cp}.@type`, `${String(t)} is not supported by the emulator`);
    missing.push(name);
  }
  fail(
    `${path}.policies`,
    `didn't find a registered load balancer factory implementation with names from ${missing.join(", ") || "(none)"}`,
  );
}

function overrideHost(tc: Obj, path: string): LbConfig {
  const M = "envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost";
  fields(
    tc,
    path,
    M,
    ["@type", "override_host_sources", "fallback_policy"],
    ["@type", "override_host_sources", "fallback_policy"],
  );
  const sources = arr(tc.override_host_sources ?? [], `${path}.override_host_sources`);
  if (sources.length === 0) fail(`${path}.override_host_sources`, "value must contain at least 1 item(s)");
  const headers = sources.map((s, i) => {
    const sp = `${path}.override_host_sources[${i}]`;
    const so = obj(s, sp);
    fields(so, sp, `${M}.OverrideHostSource`, ["header", "metadata"], ["header", "metadata"]);
    const hasHeader = typeof so.header === "string" && so.header.length > 0;
    if (hasHeader && so.metadata !== undefined) fail(sp, "Only one override source must be set");
    if (so.metadata !== undefined)
      fail(`${sp}.metadata`, "not supported by the emulator (no filter sets dynamic metadata here; use header)");
    if (!hasHeader) fail(sp, "Empty override source");
    const h = String(so.header);
    if (/[\0\r\n]/.test(h)) fail(`${sp}.header`, "must be a valid HTTP header value");
    return h.toLowerCase();
  });
  if (tc.fallback_policy === undefined) fail(`${path}.fallback_policy`, "value is required");
  return {
    kind: "override_host",
    headers,
    fallback: loadBalancingPolicy(tc.fallback_policy, `${path}.fallback_policy`),
  };
}

const OUTLIER_FIELDS = [
  "consecutive_5xx",
  "interval",
  "base_ejection_time",
  "max_ejection_percent",
  "enforcing_consecutive_5xx",
  "enforcing_success_rate",
  "success_rate_minimum_hosts",
  "success_rate_request_volume",
  "success_rate_stdev_factor",
  "consecutive_gateway_failure",
  "enforcing_consecutive_gateway_failure",
  "split_external_local_origin_errors",
  "consecutive_local_origin_failure",
  "enforcing_consecutive_local_origin_failure",
  "enforcing_local_origin_success_rate",
  "failure_percentage_threshold",
  "enforcing_failure_percentage",
  "enforcing_failure_percentage_local_origin",
  "failure_percentage_minimum_hosts",
  "failure_percentage_request_volume",
  "max_ejection_time",
  "max_ejection_time_jitter",
  "successful_active_health_check_uneject_host",
  "monitors",
  "always_eject_one_host",
];
/** Enforcement knobs of the success-rate and failure-percentage detectors: accepted at 0 only (not modelled). */
const UNMODELLED_ENFORCING = [
  "enforcing_success_rate",
  "enforcing_local_origin_success_rate",
  "enforcing_failure_percentage",
  "enforcing_failure_percentage_local_origin",
];

/** envoy.config.cluster.v3.OutlierDetection: the consecutive 5xx / gateway-failure / local-origin detectors. */
function outlierDetection(v: unknown, path: string): OutlierConfig {
  const o = obj(v, path);
  const supported = [
    "consecutive_5xx",
    "interval",
    "base_ejection_time",
    "max_ejection_percent",
    "enforcing_consecutive_5xx",
    "consecutive_gateway_failure",
    "enforcing_consecutive_gateway_failure",
    "split_external_local_origin_errors",
    "consecutive_local_origin_failure",
    "enforcing_consecutive_local_origin_failure",
    "max_ejection_time",
    "max_ejection_time_jitter",
    "always_eject_one_host",
    ...UNMODELLED_ENFORCING,
  ];
  // No active health checks here, so this one cannot change anything.
  fields(o, path, "envoy.config.cluster.v3.OutlierDetection", OUTLIER_FIELDS, supported, [
    "successful_active_health_check_uneject_host",
  ]);
  for (const k of UNMODELLED_ENFORCING)
    if (o[k] !== undefined && u32(o[k], `${path}.${k}`, 0, 100) !== 0)
      fail(
        `${path}.${k}`,
        "not supported by the emulator (success-rate and failure-percentage detection are not modelled; only 0 is accepted)",
      );
  const given: Partial<OutlierConfig> = {};
  const pct = (k: string) => u32(o[k], `${path}.${k}`, 0, 100);
  const num = (k: string) => u32(o[k], `${path}.${k}`);
  if (o.interval !== undefined) given.intervalMs = positiveDurationMs(o.interval, `${path}.interval`);
  if (o.base_ejection_time !== undefined)
    given.baseEjectionTimeMs = positiveDurationMs(o.base_ejection_time, `${path}.base_ejection_time`);
  if (o.max_ejection_percent !== undefined) given.maxEjectionPercent = pct("max_ejection_percent");
  if (o.consecutive_5xx !== undefined) given.consecutive5xx = num("consecutive_5xx");
  if (o.consecutive_gateway_failure !== undefined) given.consecutiveGatewayFailure = num("consecutive_gateway_failure");
  if (o.consecutive_local_origin_failure !== undefined)
    given.consecutiveLocalOriginFailure = num("consecutive_local_origin_failure");
  if (o.enforcing_consecutive_5xx !== undefined) given.enforcingConsecutive5xx = pct("enforcing_consecutive_5xx");
  if (o.enforcing_consecutive_gateway_failure !== undefined)
    given.enforcingConsecutiveGatewayFailure = pct("enforcing_consecutive_gateway_failure");
  if (o.enforcing_consecutive_local_origin_failure !== undefined)
    given.enforcingConsecutiveLocalOriginFailure = pct("enforcing_consecutive_local_origin_failure");
  if (o.split_external_local_origin_errors !== undefined)
    given.splitExternalLocalOriginErrors = bool(
      o.split_external_local_origin_errors,
      `${path}.split_external_local_origin_errors`,
    );
  if (o.always_eject_one_host !== undefined)
    given.alwaysEjectOneHost = bool(o.always_eject_one_host, `${path}.always_eject_one_host`);
  if (o.max_ejection_time_jitter !== undefined)
    given.maxEjectionTimeJitterMs = durationMs(o.max_ejection_time_jitter, `${path}.max_ejection_time_jitter`);
  if (o.max_ejection_time !== undefined)
    given.maxEjectionTimeMs = positiveDurationMs(o.max_ejection_time, `${path}.max_ejection_time`);
  const cfg = outlierConfig(given);
  if (cfg.maxEjectionTimeMs < cfg.baseEjectionTimeMs)
    fail(`${path}.max_ejection_time`, "outlier detector's max_ejection_time cannot be smaller than base_ejection_time");
  return cfg;
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
