// Numeric constants of the proxy-wasm ABI 0.2.x as proxy-wasm-cpp-host and Envoy use them.

/** WasmResult, returned by every host function. */
export const WasmResult = {
  Ok: 0,
  NotFound: 1,
  BadArgument: 2,
  SerializationFailure: 3,
  ParseFailure: 4,
  BadExpression: 5,
  InvalidMemoryAccess: 6,
  Empty: 7,
  CasMismatch: 8,
  ResultMismatch: 9,
  InternalFailure: 10,
  BrokenConnection: 11,
  Unimplemented: 12,
} as const;

export const HeaderMapType = {
  RequestHeaders: 0,
  RequestTrailers: 1,
  ResponseHeaders: 2,
  ResponseTrailers: 3,
  GrpcReceiveInitialMetadata: 4,
  GrpcReceiveTrailingMetadata: 5,
  HttpCallResponseHeaders: 6,
  HttpCallResponseTrailers: 7,
} as const;
export const HEADER_MAP_MAX = 7;

export const BufferType = {
  HttpRequestBody: 0,
  HttpResponseBody: 1,
  NetworkDownstreamData: 2,
  NetworkUpstreamData: 3,
  HttpCallResponseBody: 4,
  GrpcReceiveBuffer: 5,
  VmConfiguration: 6,
  PluginConfiguration: 7,
  CallData: 8,
} as const;
export const BUFFER_MAX = 8;

/** Return values of proxy_on_request_headers / proxy_on_response_headers. */
export const FilterHeadersStatus = {
  Continue: 0,
  StopIteration: 1,
  ContinueAndEndStream: 2,
  StopAllIterationAndBuffer: 3,
  StopAllIterationAndWatermark: 4,
} as const;

/** Return values of proxy_on_*_body. */
export const FilterDataStatus = {
  Continue: 0,
  StopIterationAndBuffer: 1,
  StopIterationAndWatermark: 2,
  StopIterationNoBuffer: 3,
} as const;

export const StreamType = { Request: 0, Response: 1, Downstream: 2, Upstream: 3 } as const;

export const MetricType = { Counter: 0, Gauge: 1, Histogram: 2 } as const;
/** Envoy encodes the metric type in the low 2 bits of a metric id and steps ids by 4. */
export const METRIC_TYPE_MASK = 0x3;
export const METRIC_ID_INCREMENT = 0x4;
/** Envoy prefixes every metric a plugin defines with this namespace (custom_stat_namespace_). */
export const CUSTOM_STAT_NAMESPACE = "wasmcustom";

export const LogLevel = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, critical: 5 } as const;
export type LogLevelName = keyof typeof LogLevel;
export const LOG_LEVEL_NAMES: LogLevelName[] = ["trace", "debug", "info", "warn", "error", "critical"];

export function parseLogLevel(name: string): number {
  const n = name.toLowerCase() === "warning" ? "warn" : name.toLowerCase();
  if (n === "off") return 6;
  const v = (LogLevel as Record<string, number>)[n];
  if (v === undefined) throw new Error(`unknown log level "${name}" (trace, debug, info, warn, error, critical, off)`);
  return v;
}
