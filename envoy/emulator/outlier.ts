// Envoy's outlier detection, the consecutive-error detectors (source/common/upstream/outlier_detection_impl.cc):
// - every response code the router or an http call gets is counted per host: 5xx adds to consecutive_5xx,
//   502/503/504 also to consecutive_gateway_failure, anything else resets both;
// - without split_external_local_origin_errors, a connection failure or reset counts as a 503 and a timeout
//   as a 504; with it they count as local-origin failures (consecutive_local_origin_failure) instead;
// - reaching a threshold ejects the host if the ejection is enforced (enforcing_* percent, gateway failure
//   0 by default!) and (ejected + 1) / hosts <= max_ejection_percent (always_eject_one_host lets the first
//   one through); the counter of that detector is reset either way;
// - an ejected host stays out for min(base_ejection_time x backoff, max_ejection_time) + jitter, where the
//   backoff grows by one per ejection and shrinks by one per interval the host spends healthy; hosts come
//   back only when the interval timer runs (every `interval`), which also resets their counters.
// Envoy posts ejections to its main thread; here they happen at once.
import { OutlierConfig } from "./bootstrap";
import { Scheduler, Timer } from "./scheduler";
import type { UpstreamHost } from "./upstream";

export type OutlierResult = "connect_failed" | "timeout" | "connect_success";
type Detector = "5xx" | "gateway" | "local_origin";

interface Monitor {
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveLocalOrigin: number;
  backoff: number;
  numEjections: number;
  lastEjectionMs: number | null;
  lastUnejectionMs: number | null;
  jitterMs: number;
}

export class OutlierDetector {
  private readonly monitors = new Map<UpstreamHost, Monitor>();
  private timer: Timer | null = null;
  private closed = false;
  /** Ejections that happened (enforced), for tests and logs. */
  ejections = 0;

  constructor(
    readonly config: OutlierConfig,
    private readonly hosts: UpstreamHost[],
    private readonly scheduler: Scheduler,
    private readonly random: () => number,
  ) {
    for (const h of hosts)
      this.monitors.set(h, {
        consecutive5xx: 0,
        consecutiveGateway: 0,
        consecutiveLocalOrigin: 0,
        backoff: 0,
        numEjections: 0,
        lastEjectionMs: null,
        lastUnejectionMs: null,
        jitterMs: 0,
      });
    this.arm();
  }

  /** An HTTP response code from the host (also the router's 504 on a response timeout). */
  putHttpResponseCode(host: UpstreamHost, code: number): void {
    const m = this.monitors.get(host);
    if (!m) return;
    if (code >= 500 && code < 600) {
      if (code === 502 || code === 503 || code === 504) {
        if (++m.consecutiveGateway === this.config.consecutiveGatewayFailure) this.onConsecutive(host, "gateway");
      } else m.consecutiveGateway = 0;
      if (++m.consecutive5xx === this.config.consecutive5xx) this.onConsecutive(host, "5xx");
    } else {
      m.consecutive5xx = 0;
      m.consecutiveGateway = 0;
    }
  }

  /** A local-origin event: connection failed or reset (a 503), timed out (a 504), or connected. */
  putResult(host: UpstreamHost, result: OutlierResult, code?: number): void {
    const m = this.monitors.get(host);
    if (!m) return;
    if (!this.config.splitExternalLocalOriginErrors) {
      if (code !== undefined) this.putHttpResponseCode(host, code);
      else if (result === "connect_failed") this.putHttpResponseCode(host, 503);
      else if (result === "timeout") this.putHttpResponseCode(host, 504);
      return;
    }
    if (result === "connect_success") m.consecutiveLocalOrigin = 0;
    else if (++m.consecutiveLocalOrigin === this.config.consecutiveLocalOriginFailure)
      this.onConsecutive(host, "local_origin");
  }

  ejectedCount(): number {
    let n = 0;
    for (const h of this.hosts) if (h.ejected) n++;
    return n;
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private onConsecutive(host: UpstreamHost, type: Detector): void {
    const m = this.monitors.get(host)!;
    if (host.ejected) return;
    this.eject(host, m, type);
    if (type === "5xx") m.consecutive5xx = 0;
    else if (type === "gateway") m.consecutiveGateway = 0;
    else m.consecutiveLocalOrigin = 0;
  }

  private eject(host: UpstreamHost, m: Monitor, type: Detector): void {
    const c = this.config;
    const active = this.ejectedCount();
    let allowed = (100 * (active + 1)) / this.hosts.length <= Math.min(100, c.maxEjectionPercent);
    if (c.alwaysEjectOneHost) allowed = active === 0 || allowed;
    if (!allowed) return; // ejections_overflow
    const enforcing =
      type === "5xx"
        ? c.enforcingConsecutive5xx
        : type === "gateway"
          ? c.enforcingConsecutiveGatewayFailure
          : c.enforcingConsecutiveLocalOriginFailure;
    if (!(this.random() * 100 < enforcing)) return; // detected, not enforced
    host.ejected = true;
    m.numEjections++;
    this.ejections++;
    m.lastEjectionMs = this.scheduler.nowMs();
    m.jitterMs = Math.floor(this.random() * (c.maxEjectionTimeJitterMs + 1));
    if (m.backoff * c.baseEjectionTimeMs < c.maxEjectionTimeMs + c.baseEjectionTimeMs) m.backoff++;
  }

  private arm(): void {
    if (this.closed) return;
    this.timer = this.scheduler.after(this.config.intervalMs, () => this.onInterval());
  }

  private onInterval(): void {
    const c = this.config;
    const now = this.scheduler.nowMs();
    for (const [host, m] of this.monitors) {
      if (!host.ejected) continue;
      const out = Math.min(c.baseEjectionTimeMs * m.backoff, c.maxEjectionTimeMs) + m.jitterMs;
      if (out <= now - m.lastEjectionMs!) {
        host.ejected = false;
        m.consecutive5xx = 0;
        m.consecutiveGateway = 0;
        m.consecutiveLocalOrigin = 0;
        m.lastUnejectionMs = now;
      }
    }
    // A host healthy for a whole interval since it came back has its backoff lowered by one.
    for (const [host, m] of this.monitors) {
      if (host.ejected || m.lastUnejectionMs === null) continue;
      if (now - m.lastUnejectionMs >= c.intervalMs && m.backoff !== 0) m.backoff--;
    }
    this.arm();
  }
}
