// The companion's HTTP API (node:http): the snapshot with long polling, the operators' JSON view, probes and
// Prometheus metrics.
import http from "node:http";
import { timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { EndpointView } from "./endpoint-state";
import type { Logger } from "./log";
import type { SelfMetrics } from "./self-metrics";
import type { PublishedSnapshot, SnapshotPublisher } from "./snapshot-publisher";
import type { SchedulingProfile } from "./snapshot";

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
  /** null when ready, else why not. */
  notReadyReason(): string | null;
  pool: string;
}

export interface ApiOptions {
  host: string;
  port: number;
  longPollTimeoutMs: number;
  apiToken: string | undefined;
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
    log: Logger,
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
    if (req.method !== "GET" && req.method !== "HEAD") return text(res, 405, "only GET\n", { allow: "GET, HEAD" });
    if (path.startsWith("/v1/") && !authorised(req, this.opts.apiToken)) {
      return text(res, 401, "missing or wrong bearer token\n", {
        "www-authenticate": 'Bearer realm="endpoint-picker-companion"',
      });
    }
    switch (path) {
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

  private endpoints(res: http.ServerResponse): void {
    const current = this.state.publisher.current;
    const body = {
      pool: this.state.pool,
      version: String(current.version),
      ready: this.state.notReadyReason() === null,
      profile: this.state.profile(),
      endpoints: this.state.views(),
    };
    res
      .writeHead(200, { "content-type": "application/json", "cache-control": "no-store" })
      .end(JSON.stringify(body, null, 2) + "\n");
  }
}
