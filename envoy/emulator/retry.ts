// Envoy's per-request retry state (source/common/router/retry_state_impl.cc) for a route's retry_policy:
// which resets and responses are retried, how many times, the jittered exponential back-off between
// attempts, and the previous_hosts predicate the load balancer consults when picking the next host.
import { RetryPolicy } from "./bootstrap";
import { Pairs } from "./pairs";
import type { UpstreamHost } from "./upstream";

/** Http::StreamResetReason values an HTTP/1 upstream can produce here. */
export type ResetReason =
  | "local_connection_failure"
  | "remote_connection_failure"
  | "connection_timeout"
  | "connection_termination"
  | "local_reset"
  | "remote_reset"
  | "remote_refused_stream_reset"
  | "protocol_error"
  | "overflow";

/** Http::Utility::resetReasonToString. */
export const RESET_REASON_TEXT: Record<ResetReason, string> = {
  local_connection_failure: "local connection failure",
  remote_connection_failure: "remote connection failure",
  connection_timeout: "connection timeout",
  connection_termination: "connection termination",
  local_reset: "local reset",
  remote_reset: "remote reset",
  remote_refused_stream_reset: "remote refused stream reset",
  protocol_error: "protocol error",
  overflow: "overflow",
};

export type RetryStatus = "yes" | "no" | "limit_exceeded";

const GRPC_RETRY: Record<string, number> = {
  cancelled: 1,
  "deadline-exceeded": 4,
  "resource-exhausted": 8,
  internal: 13,
  unavailable: 14,
};

export class RetryState {
  private retriesRemaining: number;
  private nextIntervalMs: number;
  private readonly attempted: UpstreamHost[] = [];

  constructor(
    readonly policy: RetryPolicy,
    private readonly random: () => number = Math.random,
  ) {
    this.retriesRemaining = policy.numRetries;
    this.nextIntervalMs = policy.baseIntervalMs;
  }

  /** Envoy creates a retry state only when retry_on names something. */
  static create(policy: RetryPolicy | null, random?: () => number): RetryState | null {
    return policy && policy.retryOn.size > 0 ? new RetryState(policy, random) : null;
  }

  private on(token: string): boolean {
    return this.policy.retryOn.has(token);
  }

  /**
   * wouldRetryFromReset. `requestStarted`: some attempt of this request already sent bytes upstream (the
   * router keeps that across attempts), which is what reset-before-request looks at.
   */
  wouldRetryFromReset(reason: ResetReason, requestStarted: boolean): boolean {
    if (reason === "overflow") return false;
    if (
      (reason === "local_connection_failure" ||
        reason === "remote_connection_failure" ||
        reason === "connection_timeout") &&
      this.on("connect-failure")
    )
      return true;
    if (this.on("reset-before-request") && !requestStarted) return true;
    if (this.on("reset")) return true;
    if (this.on("5xx") || this.on("gateway-error")) return true;
    return this.on("refused-stream") && reason === "remote_refused_stream_reset";
  }

  wouldRetryFromHeaders(status: number, headers: Pairs): boolean {
    const has = (n: string) => headers.some(([k]) => k === n);
    if (has("x-envoy-ratelimited")) return this.on("envoy-ratelimited");
    if (this.on("5xx") && status >= 500 && status < 600) return true;
    if (this.on("gateway-error") && status >= 502 && status <= 504) return true;
    if (this.on("retriable-4xx") && status === 409) return true;
    if (this.on("retriable-status-codes") && this.policy.retriableStatusCodes.includes(status)) return true;
    const grpc = headers.find(([k]) => k === "grpc-status")?.[1];
    if (grpc !== undefined && /^\d+$/.test(grpc)) {
      for (const [token, code] of Object.entries(GRPC_RETRY)) if (this.on(token) && Number(grpc) === code) return true;
    }
    return false;
  }

  /** shouldRetry: consumes one retry when it says yes. */
  shouldRetry(wouldRetry: boolean): RetryStatus {
    if (!wouldRetry) return "no";
    if (this.retriesRemaining === 0) return "limit_exceeded";
    this.retriesRemaining--;
    return "yes";
  }

  /** JitteredExponentialBackOffStrategy: uniform in [0, interval), the interval doubling up to max_interval. */
  backoffMs(): number {
    const interval = this.nextIntervalMs;
    const max = this.policy.maxIntervalMs;
    this.nextIntervalMs = interval < Math.floor(max / 2) ? interval * 2 : max;
    return Math.floor(this.random() * interval);
  }

  onHostAttempted(host: UpstreamHost): void {
    this.attempted.push(host);
  }

  /** The previous_hosts predicate: a host already attempted by this request is picked again. */
  shouldSelectAnotherHost(host: UpstreamHost): boolean {
    return this.policy.previousHosts && this.attempted.some((h) => h.key === host.key);
  }

  get hostSelectionRetryCount(): number {
    return this.policy.hostSelectionRetryMaxAttempts;
  }
}
