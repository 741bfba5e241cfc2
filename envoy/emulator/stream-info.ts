// What Envoy's StreamInfo holds about a stream that the plugin can read as properties: the upstream host
// of the last attempt (upstream.address), the attempt count (upstream.request_attempt_count), the response
// code details (response.code_details) and the response flags (response.flags, the legacy bitmask).

/**
 * StreamInfo::CoreResponseFlag (envoy/stream_info/stream_info.h): `response.flags` is legacyResponseFlags(),
 * bit (1 << enum value) per flag set.
 */
export const ResponseFlag = {
  FailedLocalHealthCheck: 1 << 0,
  NoHealthyUpstream: 1 << 1,
  UpstreamRequestTimeout: 1 << 2,
  LocalReset: 1 << 3,
  UpstreamRemoteReset: 1 << 4,
  UpstreamConnectionFailure: 1 << 5,
  UpstreamConnectionTermination: 1 << 6,
  UpstreamOverflow: 1 << 7,
  NoRouteFound: 1 << 8,
  DelayInjected: 1 << 9,
  FaultInjected: 1 << 10,
  RateLimited: 1 << 11,
  UnauthorizedExternalService: 1 << 12,
  RateLimitServiceError: 1 << 13,
  DownstreamConnectionTermination: 1 << 14,
  UpstreamRetryLimitExceeded: 1 << 15,
  StreamIdleTimeout: 1 << 16,
  InvalidEnvoyRequestHeaders: 1 << 17,
  DownstreamProtocolError: 1 << 18,
  UpstreamMaxStreamDurationReached: 1 << 19,
  ResponseFromCacheFilter: 1 << 20,
  NoFilterConfigFound: 1 << 21,
  DurationTimeout: 1 << 22,
  UpstreamProtocolError: 1 << 23,
  NoClusterFound: 1 << 24,
} as const;

/** StreamInfo::ResponseCodeDetailValues used here. */
export const CodeDetails = {
  ViaUpstream: "via_upstream",
  RouteNotFound: "route_not_found",
  DirectResponse: "direct_response",
  NoHealthyUpstream: "no_healthy_upstream",
  ResponseTimeout: "response_timeout",
  UpstreamPerTryTimeout: "upstream_per_try_timeout",
  EarlyUpstreamReset: "upstream_reset_before_response_started",
  LateUpstreamReset: "upstream_reset_after_response_started",
  RequestPayloadExceededRetryBufferLimit: "request_payload_exceeded_retry_buffer_limit",
  UpgradeFailed: "upgrade_failed",
} as const;

export interface StreamInfo {
  /** The host of the last attempt, "ip:port" (set when a host is chosen, connected or not). */
  upstreamAddress: string | null;
  /** Attempts so far (the router sets 1 before the first); null until the router ran. */
  attemptCount: number | null;
  responseCodeDetails: string | null;
  responseFlags: number;
}

export function newStreamInfo(): StreamInfo {
  return { upstreamAddress: null, attemptCount: null, responseCodeDetails: null, responseFlags: 0 };
}

/** StringUtil::replaceAllEmptySpace, as Envoy applies it to response code details. */
export function detailsText(s: string): string {
  return s.replace(/\s/g, "_");
}
