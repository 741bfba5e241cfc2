// The companion's HTTP API (node:http): the snapshot with long polling, the gateway exchange's report and
// relay (docs/GATEWAYS.md), the operators' JSON view, probes and Prometheus metrics.
import http from "node:http";
import { timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { EndpointView } from "./endpoint-state";
import { relayBodyLimit, type GatewayExchange } from "./gateway-exchange";
import { VIEW_CONTENT_TYPE, hex64, peekGatewayId } from "./gateway-wire";
import type { Logger } from "./log";
import type { SelfMetrics } from "./self-metrics";
import type { PublishedSnapshot, SnapshotPublisher } from "./snapshot-publisher";
import type { SchedulingProfile, SnapshotFlowControl } from "./snapshot";

const SNAPSHOT_CONTENT_TYPE = "application/vnd.endpoint-picker.snapshot";
const VERSION_HEADER = "x-snapshot-version";

/** `accept` naming the snapshot media type with no `format` parameter: a filter released before format 2. */
export function isFormat1Request(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(",").some((range) => {
    const [type, ...params] = range.split(";").map((p) => p.trim().toLowerCase());
    return type === SNAPSHOT_CONTENT_TYPE && !params.some((p) => p.startsWith("format="));
  });
}

export interface ApiState {
  publisher: SnapshotPublisher;
  metrics: SelfMetrics;
  views(): EndpointView[];
  profile(): SchedulingProfile;
  /** Flow control as the snapshot carries it (null: off). */
  flowControl?(): SnapshotFlowControl | null;
  /** null when ready, else why not. */
  notReadyReason(): string | null;
  pool: string;
  /** The gateways' merged view: POST /v1/gateway-report and /v1/gateway-relay. */
  exchange: GatewayExchange;
  /** The clock of the exchange (Unix ms). */
  now(): number;
}

export interface ApiOptions {
  host: string;
  port: number;
  longPollTimeoutMs: number;
  apiToken: string | undefined;
  /** A report body larger than this is refused with 413 (a relay may carry one such report and its framing). */
  maxReportBytes: number;
}

const REPORT_PATH = "/v1/gateway-report";
const RELAY_PATH = "/v1/gateway-relay";

type BodyOutcome = { ok: true; body: Buffer } | { ok: false; declared: number | null };

/**
 * Reads a request body of at most `limit` bytes. A larger declared content-length is refused before any of
 * the body is read, a larger body as soon as it passes the limit; the rest is never read (the answer closes
 * the connection). Calls `done` once, or never when the client goes away.
 */
function readBody(req: http.IncomingMessage, limit: number, done: (outcome: BodyOutcome) => void): void {
  const declaredText = req.headers["content-length"];
  const declared = declaredText === undefined ? null : Number(declaredText);
  if (declared !== null && declared > limit) return done({ ok: false, declared });
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const onData = (chunk: Buffer): void => {
    if (finished) return;
    size += chunk.length;
    if (size > limit) {
      finished = true;
      req.off("data", onData);
      req.pause();
      return done({ ok: false, declared });
    }
    chunks.push(chunk);
  };
  req.on("data", onData);
  req.on("end", () => {
    if (finished) return;
    finished = true;
    done({ ok: true, body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size) });
  });
  req.on("error", () => {
    finished = true; // the client went away; nothing to answer
  });
}

/** `Bearer TOKEN`; the scheme is case-insensitive and may be followed by several spaces (RFC 7235 section 2.1). */
function authorised(req: http.IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const m = /^bearer +(.*)$/is.exec(req.headers.authorization ?? "");
  if (!m) return false;
  const expected = Buffer.from(token);
  const given = Buffer.from(m[1]);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function text(res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
  res
    .writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers })
    .end(body);
}

export class ApiServer {
  private readonly server: http.Server;

  constructor(
    private readonly state: ApiState,
    private readonly opts: ApiOptions,
    private readonly log: Logger,
  ) {
    this.server = http.createServer((req, res) => {
      try {
        this.handle(req, res);
      } catch (e) {
        log.error("request handler failed", { url: req.url, error: (e as Error).message });
        if (!res.headersSent) text(res, 500, "internal error\n");
        else res.destroy();
      }
    });
    // Long polls hold requests for seconds; keep idle keep-alive connections longer than Envoy's reuse window.
    this.server.keepAliveTimeout = 65_000;
    this.server.headersTimeout = 66_000;
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off("error", reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://companion");
    const path = url.pathname;
    const gateway = path === REPORT_PATH || path === RELAY_PATH;
    if (gateway && req.method !== "POST") return text(res, 405, "only POST\n", { allow: "POST" });
    if (!gateway && req.method !== "GET" && req.method !== "HEAD")
      return text(res, 405, "only GET\n", { allow: "GET, HEAD" });
    if (path.startsWith("/v1/") && !authorised(req, this.opts.apiToken)) {
      if (gateway) this.refused(path, "unauthorized", null, "missing or wrong bearer token");
      return text(res, 401, "missing or wrong bearer token\n", {
        "www-authenticate": 'Bearer realm="endpoint-picker-companion"',
        ...(gateway ? { connection: "close" } : {}), // its body is not read
      });
    }
    switch (path) {
      case REPORT_PATH:
        return this.report(req, res);
      case RELAY_PATH:
        return this.relay(req, res);
      case "/v1/snapshot":
        return this.snapshot(url, req, res);
      case "/v1/endpoints":
        return this.endpoints(res);
      case "/healthz":
        return text(res, 200, "ok\n");
      case "/readyz": {
        const reason = this.state.notReadyReason();
        return reason === null ? text(res, 200, "ready\n") : text(res, 503, `not ready: ${reason}\n`);
      }
      case "/metrics":
        void this.state.metrics.registry.metrics().then(
          (body) => res.writeHead(200, { "content-type": this.state.metrics.registry.contentType }).end(body),
          (e: Error) => text(res, 500, `metrics: ${e.message}\n`),
        );
        return;
      default:
        return text(res, 404, "not found\n");
    }
  }

  private snapshot(url: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
    // Filters that predate format 2 ask for the media type without a format: they get format 1.
    const format1 = isFormat1Request(req.headers.accept);
    const send = (s: PublishedSnapshot): void => {
      const blob = format1 ? s.format1() : s.blob;
      res
        .writeHead(200, {
          "content-type": format1 ? SNAPSHOT_CONTENT_TYPE : `${SNAPSHOT_CONTENT_TYPE}; format=2`,
          [VERSION_HEADER]: String(s.version),
          "content-length": blob.length,
          "cache-control": "no-store",
        })
        .end(blob);
    };
    const afterText = url.searchParams.get("after");
    if (afterText === null) return send(this.state.publisher.current);
    if (!/^\d{1,20}$/.test(afterText) || BigInt(afterText) > 0xffffffffffffffffn)
      return text(res, 400, `after: "${afterText}" is not a snapshot version\n`);
    const wait = this.state.publisher.waitForNewer(BigInt(afterText), this.opts.longPollTimeoutMs);
    this.state.metrics.longPollWaiters.set(this.state.publisher.waiting);
    // The client giving up (Envoy's call timeout, a closed connection) frees the held request at once.
    res.on("close", () => {
      if (!res.writableFinished) wait.cancel();
      this.state.metrics.longPollWaiters.set(this.state.publisher.waiting);
    });
    void wait.result.then((s) => {
      this.state.metrics.longPollWaiters.set(this.state.publisher.waiting);
      if (res.destroyed || res.writableEnded) return;
      if (s) send(s);
      else
        res
          .writeHead(304, {
            [VERSION_HEADER]: String(this.state.publisher.current.version),
            "cache-control": "no-store",
          })
          .end();
    });
  }

  /** Counts and logs (one warn line) a refused gateway report or relay. */
  private refused(path: string, result: string, id: bigint | null, reason: string): void {
    const metrics = this.state.metrics;
    if (path === REPORT_PATH) {
      metrics.gatewayReports.inc({ result });
      this.log.warn("gateway report refused", { gateway: id === null ? null : hex64(id), result, reason });
    } else {
      metrics.gatewayRelaysReceived.inc({ result });
      this.log.warn("gateway relay refused", { peer: id === null ? null : hex64(id), result, reason });
    }
  }

  private tooLarge(path: string, res: http.ServerResponse, limit: number, declared: number | null): void {
    const reason =
      declared !== null && declared > limit
        ? `content-length ${declared} is over the limit of ${limit} bytes`
        : `body over the limit of ${limit} bytes`;
    this.refused(path, "too_large", null, reason);
    // The rest of the body is not read: the connection closes after the answer.
    text(res, 413, `${reason}\n`, { connection: "close" });
  }

  /** POST /v1/gateway-report: apply the report, answer with the merged view of the other gateways. */
  private report(req: http.IncomingMessage, res: http.ServerResponse): void {
    const limit = this.opts.maxReportBytes;
    readBody(req, limit, (outcome) => {
      if (!outcome.ok) return this.tooLarge(REPORT_PATH, res, limit, outcome.declared);
      let answer: Uint8Array;
      try {
        answer = this.state.exchange.receive(outcome.body, this.state.now());
      } catch (e) {
        const reason = (e as Error).message;
        this.refused(REPORT_PATH, "malformed", peekGatewayId(outcome.body), reason);
        return text(res, 400, `${reason}\n`);
      }
      this.state.metrics.gatewayReports.inc({ result: "ok" });
      this.state.metrics.gatewayAnswerBytes.inc(answer.length);
      res
        .writeHead(200, {
          "content-type": VIEW_CONTENT_TYPE,
          "content-length": answer.length,
          "cache-control": "no-store",
        })
        .end(answer);
    });
  }

  /** POST /v1/gateway-relay: a peer companion's reports, applied as if received here. 204, or 409 from itself. */
  private relay(req: http.IncomingMessage, res: http.ServerResponse): void {
    const limit = relayBodyLimit(this.opts.maxReportBytes);
    readBody(req, limit, (outcome) => {
      if (!outcome.ok) return this.tooLarge(RELAY_PATH, res, limit, outcome.declared);
      const body = outcome.body;
      const peer = body.length >= 8 ? body.readBigUInt64LE(0) : null;
      const metrics = this.state.metrics;
      let result;
      try {
        result = this.state.exchange.acceptRelay(body, this.state.now());
      } catch (e) {
        const reason = (e as Error).message;
        this.refused(RELAY_PATH, "malformed", peer, reason);
        return text(res, 400, `${reason}\n`);
      }
      if (result.self) {
        metrics.gatewayRelaysReceived.inc({ result: "self" });
        return text(res, 409, `relay from this companion itself (${hex64(result.from)})\n`);
      }
      metrics.gatewayRelaysReceived.inc({ result: "ok" });
      if (result.applied) metrics.gatewayRelayedReports.inc({ result: "applied" }, result.applied);
      if (result.duplicates) metrics.gatewayRelayedReports.inc({ result: "duplicate" }, result.duplicates);
      for (const r of result.refused) {
        metrics.gatewayRelayedReports.inc({ result: "malformed" });
        this.log.warn("relayed gateway report refused", {
          peer: hex64(result.from),
          gateway: r.gatewayId === null ? null : hex64(r.gatewayId),
          reason: r.reason,
        });
      }
      res.writeHead(204, { "cache-control": "no-store" }).end();
    });
  }

  private endpoints(res: http.ServerResponse): void {
    const current = this.state.publisher.current;
    const body = {
      pool: this.state.pool,
      version: String(current.version),
      ready: this.state.notReadyReason() === null,
      profile: this.state.profile(),
      flowControl: this.state.flowControl?.() ?? null,
      endpoints: this.state.views(),
    };
    res
      .writeHead(200, { "content-type": "application/json", "cache-control": "no-store" })
      .end(JSON.stringify(body, null, 2) + "\n");
  }
}
