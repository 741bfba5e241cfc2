// Envoy's router filter for one stream (source/common/router/router.cc), over real HTTP/1.1 upstream
// connections: the host from the cluster's load balancer, the request streamed to it (and buffered for
// retries while a retry policy is in force, up to the buffer limit), the route timeout from the end of the
// request, the per-try timeout, retries on the route's retry_on conditions with the jittered back-off,
// outlier-detection results for every attempt, and Envoy's local replies, response flags and response code
// details when an attempt fails. The gateway uses it for routed requests, host.ts for proxy_http_call
// (Envoy's AsyncClient runs the same router).
import http from "node:http";
import { Socket } from "node:net";
import { RetryPolicy } from "./bootstrap";
import { Pairs } from "./pairs";
import { RESET_REASON_TEXT, ResetReason, RetryState } from "./retry";
import { Scheduler, Timer } from "./scheduler";
import { CodeDetails, ResponseFlag, StreamInfo, detailsText } from "./stream-info";
import { LbContext, UpstreamCluster, UpstreamHost } from "./upstream";

/** What the router sends back towards the client (through the filters' response path). */
export interface RouterDownstream {
  readonly info: StreamInfo;
  encodeHeaders(headers: Pairs, endOfStream: boolean): void;
  encodeData(chunk: Uint8Array, endOfStream: boolean): void;
  encodeTrailers(trailers: Pairs): void;
  /** Envoy's sendLocalReply (details already in StreamInfo form); after the response started, a reset. */
  sendLocalReply(status: number, body: string, details: string): void;
  /** Reset the downstream stream: an upstream failure after the response started. */
  resetStream(): void;
}

export interface RouterOptions {
  timeoutMs: number;
  retryPolicy: RetryPolicy | null;
  cluster: UpstreamCluster;
  agent: http.Agent;
  /** Route, per-try and back-off timers (real or virtual time). */
  scheduler: Scheduler;
  /** The decoder buffer limit: more request body than this and retries are given up. */
  bufferLimitBytes: number;
  random?: () => number;
  /** The AsyncClient's router adds no x-envoy-* response headers. */
  suppressEnvoyHeaders?: boolean;
}

/** Error texts Envoy puts after "delayed connect error: " (strerror of the socket error). */
const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: "Connection refused",
  EHOSTUNREACH: "No route to host",
  ENETUNREACH: "Network is unreachable",
  ECONNRESET: "Connection reset by peer",
  EADDRNOTAVAIL: "Cannot assign requested address",
  ETIMEDOUT: "Connection timed out",
};

const RESET_FLAG: Record<ResetReason, number> = {
  local_connection_failure: ResponseFlag.UpstreamConnectionFailure,
  remote_connection_failure: ResponseFlag.UpstreamConnectionFailure,
  connection_timeout: ResponseFlag.UpstreamConnectionFailure,
  connection_termination: ResponseFlag.UpstreamConnectionTermination,
  local_reset: ResponseFlag.LocalReset,
  remote_reset: ResponseFlag.UpstreamRemoteReset,
  remote_refused_stream_reset: ResponseFlag.UpstreamRemoteReset,
  protocol_error: ResponseFlag.UpstreamProtocolError,
  overflow: ResponseFlag.UpstreamOverflow,
};

/** One upstream attempt (Envoy's UpstreamRequest). */
class Attempt {
  req: http.ClientRequest | null = null;
  /** Connected and the request headers handed to the connection (first upstream byte sent). */
  connected = false;
  awaitingHeaders = true;
  done = false;
  perTryTimer: Timer | null = null;
  connectTimer: NodeJS.Timeout | null = null;
  connectTimedOut = false;
  timeoutRecorded = false;
  constructor(readonly host: UpstreamHost) {}
  write(chunk: Uint8Array, end: boolean): void {
    if (this.done || !this.req) return;
    if (chunk.length) this.req.write(chunk);
    if (end) this.req.end();
  }
}

export class RouterFilter {
  private headers: Pairs = [];
  private readonly lb: LbContext = { headers: [] };
  private retry: RetryState | null = null;
  private attempt: Attempt | null = null;
  private attemptCount = 0;
  private isRetry = false;
  /** Some attempt sent bytes upstream (Envoy's upstream_request_started_, kept across attempts). */
  private requestStarted = false;
  private downstreamEnd = false;
  private requestCompleteMs: number | null = null;
  private responseStarted = false;
  private buffered: Uint8Array[] = [];
  private bufferedBytes = 0;
  private retryTimer: Timer | null = null;
  private routeTimer: Timer | null = null;
  private finished = false;
  private readonly random: () => number;

  constructor(
    private readonly opts: RouterOptions,
    private readonly down: RouterDownstream,
  ) {
    this.random = opts.random ?? Math.random;
  }

  private get info(): StreamInfo {
    return this.down.info;
  }
  private get cluster(): UpstreamCluster {
    return this.opts.cluster;
  }

  /** False when no host could be picked (the local reply is on its way). */
  decodeHeaders(headers: Pairs, endOfStream: boolean): boolean {
    this.headers = headers;
    this.lb.headers = headers;
    this.retry = RetryState.create(this.opts.retryPolicy, this.random);
    this.lb.shouldSelectAnotherHost = (h) => this.isRetry && !!this.retry && this.retry.shouldSelectAnotherHost(h);
    const host = this.pickHost();
    if (!host) {
      this.noHealthyUpstream();
      return false;
    }
    this.attemptCount = 1;
    this.info.attemptCount = 1;
    if (endOfStream) this.markRequestComplete();
    this.startAttempt(host);
    if (endOfStream) this.armRequestTimers();
    return true;
  }

  decodeData(chunk: Uint8Array, endOfStream: boolean): void {
    if (this.finished) return;
    if (this.retry && this.bufferedBytes + chunk.length > this.opts.bufferLimitBytes) {
      // Over the buffer limit: no retry for this request (retry_or_shadow_abandoned).
      this.retry = null;
      this.buffered = [];
      this.bufferedBytes = 0;
      if (!this.attempt) {
        this.cleanup();
        this.down.sendLocalReply(
          507,
          "exceeded request buffer limit while retrying upstream",
          CodeDetails.RequestPayloadExceededRetryBufferLimit,
        );
        return;
      }
    }
    if (this.retry) {
      this.buffered.push(chunk);
      this.bufferedBytes += chunk.length;
    }
    this.attempt?.write(chunk, endOfStream);
    if (endOfStream) this.onRequestComplete();
  }

  /** HTTP/1 upstreams get no trailers (Envoy's codec drops them unless the cluster enables trailers). */
  decodeTrailers(): void {
    if (this.finished) return;
    this.attempt?.write(new Uint8Array(0), true);
    this.onRequestComplete();
  }

  /** The downstream stream is gone: reset the attempt, stop the timers. */
  onDestroy(): void {
    if (this.attempt) this.endAttempt(this.attempt);
    this.cleanup();
  }

  // ---------------- attempts ----------------

  private pickHost(): UpstreamHost | null {
    this.lb.hostSelectionRetryCount = this.isRetry && this.retry ? this.retry.hostSelectionRetryCount : 1;
    return this.cluster.chooseHost(this.lb);
  }

  private noHealthyUpstream(): void {
    this.info.responseFlags |= ResponseFlag.NoHealthyUpstream;
    this.cleanup();
    this.down.sendLocalReply(503, "no healthy upstream", CodeDetails.NoHealthyUpstream);
  }

  private startAttempt(host: UpstreamHost): void {
    const a = new Attempt(host);
    this.attempt = a;
    host.active++;
    this.info.upstreamAddress = host.key;
    this.retry?.onHostAttempted(host);
    // Port 0 is a host for Envoy, and connecting to it is refused. (Node would take it as port 80.)
    if (host.port === 0) {
      setImmediate(() => this.onReset(a, "remote_connection_failure", "delayed connect error: Connection refused"));
      return;
    }
    const out: Record<string, string | string[]> = {};
    let method = "GET",
      path = "/",
      authority = "";
    for (const [k, v] of this.headers) {
      if (k === ":method") method = v;
      else if (k === ":path") path = v;
      else if (k === ":authority") authority = v;
      else if (!k.startsWith(":")) {
        const cur = out[k];
        out[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
      }
    }
    out.host = authority;
    let req: http.ClientRequest;
    try {
      req = http.request({ host: host.address, port: host.port, method, path, headers: out, agent: this.opts.agent });
    } catch {
      // Headers Node will not write (Envoy's codec would have refused them earlier): a local reset.
      setImmediate(() => this.onReset(a, "local_reset", ""));
      return;
    }
    a.req = req;
    req.on("socket", (s: Socket) => {
      if (a.done) return;
      if (!s.connecting) return this.onPoolReady(a);
      a.connectTimer = setTimeout(() => {
        a.connectTimedOut = true;
        req.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" }));
      }, this.cluster.connectTimeoutMs);
      s.once("connect", () => {
        if (a.connectTimer) clearTimeout(a.connectTimer);
        a.connectTimer = null;
        this.onPoolReady(a);
      });
    });
    req.on("response", (res) => this.onUpstreamHeaders(a, res));
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (a.done) return;
      if (!a.connected) {
        if (a.connectTimedOut) return this.onReset(a, "connection_timeout", "");
        const text = ERRNO_TEXT[e.code ?? ""] ?? e.message;
        return this.onReset(a, "remote_connection_failure", `delayed connect error: ${text}`);
      }
      this.onReset(a, e.code?.startsWith("HPE_") ? "protocol_error" : "connection_termination", "");
    });
    // Replay what was buffered (a retry), then keep streaming; the headers go out at once, as Envoy's.
    for (const c of this.buffered) req.write(c);
    if (this.downstreamEnd) req.end();
    else req.flushHeaders();
  }

  private onPoolReady(a: Attempt): void {
    if (a.done || a.connected) return;
    a.connected = true;
    this.cluster.outlier?.putResult(a.host, "connect_success");
    if (this.downstreamEnd) this.setupPerTryTimeout(a);
  }

  private setupPerTryTimeout(a: Attempt): void {
    const perTry = this.opts.retryPolicy?.perTryTimeoutMs ?? 0;
    // FilterUtility::finalTimeout: a per-try timeout not below the route timeout is dropped.
    if (perTry <= 0 || a.perTryTimer || (this.opts.timeoutMs > 0 && perTry >= this.opts.timeoutMs)) return;
    a.perTryTimer = this.opts.scheduler.after(perTry, () => this.onPerTryTimeout(a));
  }

  private onRequestComplete(): void {
    if (this.downstreamEnd) return;
    this.markRequestComplete();
    this.armRequestTimers();
  }

  private markRequestComplete(): void {
    this.downstreamEnd = true;
    this.requestCompleteMs = this.opts.scheduler.nowMs();
  }

  /** As Envoy: the route timeout starts when the request is complete, if an attempt is under way then. */
  private armRequestTimers(): void {
    if (!this.attempt) return;
    if (this.opts.timeoutMs > 0)
      this.routeTimer = this.opts.scheduler.after(this.opts.timeoutMs, () => this.onResponseTimeout());
    if (this.attempt.connected) this.setupPerTryTimeout(this.attempt);
  }

  private endAttempt(a: Attempt): void {
    if (a.done) return;
    a.done = true;
    a.host.active--;
    a.perTryTimer?.cancel();
    a.perTryTimer = null;
    if (a.connectTimer) clearTimeout(a.connectTimer);
    a.connectTimer = null;
    if (a.req && !a.req.destroyed) a.req.destroy();
    if (this.attempt === a) this.attempt = null;
  }

  private cleanup(): void {
    this.finished = true;
    this.retry = null;
    this.retryTimer?.cancel();
    this.retryTimer = null;
    this.routeTimer?.cancel();
    this.routeTimer = null;
  }

  // ---------------- upstream events ----------------

  private onUpstreamHeaders(a: Attempt, res: http.IncomingMessage): void {
    if (a.done) {
      res.resume();
      return;
    }
    a.awaitingHeaders = false;
    a.perTryTimer?.cancel();
    a.perTryTimer = null;
    const status = res.statusCode ?? 502;
    this.cluster.outlier?.putHttpResponseCode(a.host, status);
    const headers: Pairs = [[":status", String(status)]];
    for (let i = 0; i < res.rawHeaders.length; i += 2)
      headers.push([res.rawHeaders[i].toLowerCase(), res.rawHeaders[i + 1]]);
    if (this.retry) {
      const st = this.retry.shouldRetry(this.retry.wouldRetryFromHeaders(status, headers));
      if (st === "yes") {
        res.resume();
        this.endAttempt(a);
        this.scheduleRetry();
        return;
      }
      if (st === "limit_exceeded") this.info.responseFlags |= ResponseFlag.UpstreamRetryLimitExceeded;
    }
    this.retry = null;
    if (!this.opts.suppressEnvoyHeaders && this.requestCompleteMs !== null)
      headers.push([
        "x-envoy-upstream-service-time",
        String(Math.round(this.opts.scheduler.nowMs() - this.requestCompleteMs)),
      ]);
    this.info.responseCodeDetails = CodeDetails.ViaUpstream;
    this.responseStarted = true;
    let ended = false;
    res.on("data", (c: Buffer) => {
      if (!a.done) this.down.encodeData(c, false);
    });
    res.on("end", () => {
      if (a.done) return;
      ended = true;
      const trailers: Pairs = [];
      for (let i = 0; i < res.rawTrailers.length; i += 2)
        trailers.push([res.rawTrailers[i].toLowerCase(), res.rawTrailers[i + 1]]);
      this.onUpstreamComplete(a);
      if (trailers.length) this.down.encodeTrailers(trailers);
      else this.down.encodeData(new Uint8Array(0), true);
    });
    const broken = () => {
      if (!ended && !a.done && !res.complete) this.onReset(a, "connection_termination", "");
    };
    res.on("close", broken);
    res.on("error", broken);
    this.down.encodeHeaders(headers, false);
  }

  private onUpstreamComplete(a: Attempt): void {
    // A response complete before the request was: Envoy resets the upstream stream.
    const keep = this.downstreamEnd;
    a.done = true;
    a.host.active--;
    a.perTryTimer?.cancel();
    if (!keep && a.req && !a.req.destroyed) a.req.destroy();
    if (this.attempt === a) this.attempt = null;
    this.cleanup();
  }

  private onReset(a: Attempt, reason: ResetReason, transportFailure: string): void {
    if (a.done) return;
    this.endAttempt(a);
    // Any upstream reset but an overflow counts for outlier detection as a local-origin connect failure.
    if (reason !== "overflow") this.cluster.outlier?.putResult(a.host, "connect_failed");
    if (this.maybeRetryReset(reason, a)) return;
    this.info.responseFlags |= RESET_FLAG[reason];
    const text = RESET_REASON_TEXT[reason];
    const detail = `{${text}${transportFailure ? `,${transportFailure}` : ""}}`;
    this.cleanup();
    if (this.responseStarted) {
      this.info.responseCodeDetails = detailsText(CodeDetails.LateUpstreamReset + detail);
      this.down.resetStream();
      return;
    }
    const body =
      "upstream connect error or disconnect/reset before headers. " +
      (this.isRetry ? "retried and the latest " : "") +
      `reset reason: ${text}` +
      (transportFailure ? `, transport failure reason: ${transportFailure}` : "");
    this.down.sendLocalReply(
      reason === "protocol_error" ? 502 : 503,
      body,
      detailsText(CodeDetails.EarlyUpstreamReset + detail),
    );
  }

  private maybeRetryReset(reason: ResetReason, a: Attempt): boolean {
    if (this.responseStarted || !this.retry) return false;
    this.requestStarted ||= a.connected;
    const st = this.retry.shouldRetry(this.retry.wouldRetryFromReset(reason, this.requestStarted));
    if (st === "yes") {
      this.scheduleRetry();
      return true;
    }
    if (st === "limit_exceeded") this.info.responseFlags |= ResponseFlag.UpstreamRetryLimitExceeded;
    return false;
  }

  private scheduleRetry(): void {
    const ms = this.retry!.backoffMs();
    this.retryTimer = this.opts.scheduler.after(ms, () => this.doRetry());
  }

  private doRetry(): void {
    this.retryTimer = null;
    if (this.finished) return;
    this.isRetry = true;
    this.attemptCount++;
    this.info.attemptCount = this.attemptCount;
    const host = this.pickHost();
    if (!host) return this.noHealthyUpstream();
    this.startAttempt(host);
  }

  private onPerTryTimeout(a: Attempt): void {
    a.perTryTimer = null;
    if (a.done || this.responseStarted) return;
    this.endAttempt(a);
    this.cluster.outlier?.putResult(a.host, "timeout", 504);
    a.timeoutRecorded = true;
    if (this.maybeRetryReset("local_reset", a)) return;
    this.info.responseFlags |= ResponseFlag.UpstreamRequestTimeout;
    this.cleanup();
    this.down.sendLocalReply(504, "upstream request timeout", CodeDetails.UpstreamPerTryTimeout);
  }

  private onResponseTimeout(): void {
    this.routeTimer = null;
    const a = this.attempt;
    if (a) {
      if (a.awaitingHeaders && !a.timeoutRecorded) this.cluster.outlier?.putResult(a.host, "timeout", 504);
      this.endAttempt(a);
    }
    this.info.responseFlags |= ResponseFlag.UpstreamRequestTimeout;
    this.cleanup();
    if (this.responseStarted) {
      this.info.responseCodeDetails = CodeDetails.ResponseTimeout;
      this.down.resetStream();
    } else this.down.sendLocalReply(504, "upstream request timeout", CodeDetails.ResponseTimeout);
  }
}
