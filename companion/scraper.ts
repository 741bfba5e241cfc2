// Scrapes every endpoint's metrics page on its own loop: concurrently, every refresh interval with jitter,
// one request at a time per endpoint, a per-scrape timeout, a page-size cap, keep-alive connections, and
// exponential backoff while an endpoint keeps failing.
import http from "node:http";
import https from "node:https";
import { gunzip } from "node:zlib";
import type { EngineMapping, EngineRegistry } from "./engines";
import { familiesOf } from "./engines";
import { ExtractError, extractMetrics, type EndpointMetrics } from "./extract";
import type { Logger } from "./log";
import type { ScrapeSettings } from "./picker-config";
import { FamilySelector, PageError, parseSelectedFamilies } from "./prom-parser";
import type { PoolTarget } from "./types";

export interface ScraperOptions {
  intervalMs: number;
  timeoutMs: number;
  maxBackoffMs: number;
  maxPageBytes: number;
  /** Fraction of the interval by which each wait varies (spreads scrapes of many endpoints). */
  jitter?: number;
  /** --model-server-metrics-port / --model-server-metrics-path. */
  metricsPort?: number;
  metricsPath?: string;
}

/** What the scraper reads its engines and data source settings from (swapped on config reload). */
export interface ScrapeConfigSource {
  engines(): EngineRegistry;
  scrape(): ScrapeSettings;
}

export type ScrapeOutcome =
  | { ok: true; engine: string; metrics: EndpointMetrics; durationMs: number }
  | { ok: false; engine: string; error: string; reason: ScrapeFailureReason; durationMs: number };

export type ScrapeFailureReason =
  "timeout" | "refused" | "connect" | "http_status" | "too_large" | "content_type" | "parse" | "metrics" | "internal";

export interface ScrapeListener {
  (target: PoolTarget, outcome: ScrapeOutcome): void;
}

/**
 * Wait before the next scrape: the interval while healthy, doubling per consecutive failure up to the
 * maximum backoff; ± `jitter` of that, from `random` in [0, 1).
 */
export function nextDelayMs(
  intervalMs: number,
  maxBackoffMs: number,
  jitter: number,
  failures: number,
  random: number,
): number {
  const base = failures === 0 ? intervalMs : Math.min(maxBackoffMs, intervalMs * 2 ** Math.min(failures, 30));
  return Math.max(0, base * (1 + jitter * (2 * random - 1)));
}

class ScrapeFailure extends Error {
  constructor(
    readonly reason: ScrapeFailureReason,
    message: string,
  ) {
    super(message);
  }
}

const ACCEPT = "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1";

interface Loop {
  target: PoolTarget;
  stopped: boolean;
  failures: number;
  timer: NodeJS.Timeout | null;
  request: http.ClientRequest | null;
  /** Ports this loop has connected to (the endpoint's own, or a metrics port): its kept-alive sockets. */
  ports: Set<number>;
}

export class Scraper {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgents = new Map<boolean, https.Agent>();
  private loops = new Map<string, Loop>();
  private selectors = new WeakMap<EngineMapping, FamilySelector>();
  /** Address -> unknown engine labels already warned about (pruned when the endpoint leaves). */
  private warnedLabels = new Map<string, Set<string>>();
  private readonly jitter: number;

  constructor(
    private readonly opts: ScraperOptions,
    private readonly config: ScrapeConfigSource,
    private readonly onOutcome: ScrapeListener,
    private readonly log: Logger,
  ) {
    this.jitter = opts.jitter ?? 0.1;
    // One kept-alive connection per endpoint is all a sequential loop needs; a spare covers a slow close.
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 2, maxFreeSockets: 1, scheduling: "lifo" });
  }

  private agentFor(scheme: "http" | "https", insecure: boolean): http.Agent {
    if (scheme === "http") return this.httpAgent;
    let agent = this.httpsAgents.get(insecure);
    if (!agent)
      this.httpsAgents.set(
        insecure,
        (agent = new https.Agent({ keepAlive: true, maxSockets: 2, maxFreeSockets: 1, rejectUnauthorized: !insecure })),
      );
    return agent;
  }

  private selectorFor(mapping: EngineMapping): FamilySelector {
    let s = this.selectors.get(mapping);
    if (!s) this.selectors.set(mapping, (s = new FamilySelector(familiesOf(mapping))));
    return s;
  }

  /** Starts loops for new endpoints, stops those of removed ones. Label changes apply on the next scrape. */
  setTargets(targets: readonly PoolTarget[]): void {
    const next = new Map<string, Loop>();
    for (const t of targets) {
      const loop = this.loops.get(t.address);
      if (loop) {
        loop.target = t;
        next.set(t.address, loop);
      } else {
        const fresh: Loop = { target: t, stopped: false, failures: 0, timer: null, request: null, ports: new Set() };
        next.set(t.address, fresh);
        // A random first delay spreads the first round over one interval instead of one burst.
        this.schedule(fresh, Math.random() * Math.min(this.opts.intervalMs, 1000));
      }
    }
    const removed = [...this.loops.values()].filter((loop) => !next.has(loop.target.address));
    this.loops = next;
    for (const loop of removed) this.stopLoop(loop);
    for (const address of this.warnedLabels.keys()) if (!next.has(address)) this.warnedLabels.delete(address);
    if (removed.length > 0) this.closeIdleSockets(removed);
  }

  /**
   * Closes the kept-alive idle connections to endpoints that left the pool (a pod that is gone would
   * otherwise hold a socket until its server or the kernel gives up), except those a remaining endpoint
   * uses too (two target ports of one pod scraped on one metrics port).
   */
  private closeIdleSockets(removed: readonly Loop[]): void {
    const inUse = new Set<string>();
    for (const loop of this.loops.values()) for (const port of loop.ports) inUse.add(`${loop.target.ip}:${port}:`);
    const prefixes: string[] = [];
    for (const loop of removed) {
      for (const port of loop.ports) {
        const prefix = `${loop.target.ip}:${port}:`; // how node:http's Agent names a host's pool (getName)
        if (!inUse.has(prefix)) prefixes.push(prefix);
      }
    }
    if (prefixes.length === 0) return;
    for (const agent of [this.httpAgent, ...this.httpsAgents.values()]) {
      for (const [name, sockets] of Object.entries(agent.freeSockets)) {
        if (!prefixes.some((p) => name.startsWith(p))) continue;
        for (const socket of sockets ?? []) socket.destroy();
      }
    }
  }

  private stopLoop(loop: Loop): void {
    loop.stopped = true;
    if (loop.timer) clearTimeout(loop.timer);
    loop.request?.destroy();
  }

  stop(): void {
    for (const loop of this.loops.values()) this.stopLoop(loop);
    this.loops.clear();
    this.httpAgent.destroy();
    for (const a of this.httpsAgents.values()) a.destroy();
  }

  private schedule(loop: Loop, delayMs: number): void {
    loop.timer = setTimeout(() => {
      loop.timer = null;
      void this.runOnce(loop);
    }, delayMs);
  }

  private async runOnce(loop: Loop): Promise<void> {
    if (loop.stopped) return;
    const outcome = await this.scrape(loop.target, (req, port) => {
      loop.request = req;
      loop.ports.add(port);
    });
    loop.request = null;
    if (loop.stopped) return;
    this.onOutcome(loop.target, outcome);
    loop.failures = outcome.ok ? 0 : loop.failures + 1;
    this.schedule(
      loop,
      nextDelayMs(this.opts.intervalMs, this.opts.maxBackoffMs, this.jitter, loop.failures, Math.random()),
    );
  }

  /** One scrape of one endpoint (also what `--once` uses). Never throws. */
  async scrape(
    target: PoolTarget,
    onRequest: (req: http.ClientRequest, port: number) => void = () => {},
  ): Promise<ScrapeOutcome> {
    const started = performance.now();
    const { mapping, unknownLabel } = this.config.engines().resolve(target.labels);
    if (unknownLabel !== null && !this.warnedLabels.get(target.address)?.has(unknownLabel)) {
      let warned = this.warnedLabels.get(target.address);
      if (!warned) this.warnedLabels.set(target.address, (warned = new Set()));
      warned.add(unknownLabel);
      this.log.warn("engine label names no configured engine; using the default engine's metrics", {
        endpoint: target.address,
        pod: target.pod,
        label: unknownLabel,
        engine: mapping.name,
      });
    }
    try {
      const { body, openMetrics } = await this.fetchPage(target, mapping, onRequest);
      const page = parseSelectedFamilies(body, this.selectorFor(mapping), openMetrics);
      const metrics = extractMetrics(page, mapping);
      return { ok: true, engine: mapping.name, metrics, durationMs: performance.now() - started };
    } catch (e) {
      const reason: ScrapeFailureReason =
        e instanceof ScrapeFailure
          ? e.reason
          : e instanceof PageError
            ? "parse"
            : e instanceof ExtractError
              ? "metrics"
              : "internal";
      const prefix = reason === "parse" ? "bad metrics page: " : "";
      return {
        ok: false,
        engine: mapping.name,
        error: prefix + (e as Error).message,
        reason,
        durationMs: performance.now() - started,
      };
    }
  }

  private fetchPage(
    target: PoolTarget,
    mapping: EngineMapping,
    onRequest: (req: http.ClientRequest, port: number) => void,
  ): Promise<{ body: Buffer; openMetrics: boolean }> {
    const settings = this.config.scrape();
    const port = mapping.metricsPort ?? this.opts.metricsPort ?? target.port;
    const path = mapping.metricsPath ?? this.opts.metricsPath ?? settings.path;
    const lib = settings.scheme === "https" ? https : http;
    const max = this.opts.maxPageBytes;
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err: Error | null, value?: { body: Buffer; openMetrics: boolean }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          req.destroy();
          reject(err);
        } else resolve(value!);
      };
      const req = lib.request(
        {
          host: target.ip,
          port,
          path,
          method: "GET",
          agent: this.agentFor(settings.scheme, settings.insecureSkipVerify),
          headers: { accept: ACCEPT, "user-agent": "endpoint-picker-companion" },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const type = String(res.headers["content-type"] ?? "").toLowerCase();
          if (status !== 200) {
            res.resume();
            return done(new ScrapeFailure("http_status", `GET ${path} answered HTTP ${status}`));
          }
          if (type.startsWith("application/json") || type.startsWith("text/html")) {
            res.resume();
            return done(
              new ScrapeFailure("content_type", `GET ${path} answered ${type.split(";")[0]}, not a metrics page`),
            );
          }
          const declared = Number(res.headers["content-length"]);
          if (Number.isFinite(declared) && declared > max) {
            res.resume();
            return done(
              new ScrapeFailure("too_large", `metrics page of ${declared} bytes is over the ${max}-byte limit`),
            );
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > max) done(new ScrapeFailure("too_large", `metrics page is over the ${max}-byte limit`));
            else chunks.push(chunk);
          });
          res.on("error", (err) => done(new ScrapeFailure("connect", `reading the page: ${err.message}`)));
          res.on("end", () => {
            if (!res.complete)
              return done(new ScrapeFailure("connect", "connection closed before the page was complete"));
            const raw = Buffer.concat(chunks, size);
            const openMetrics = type.startsWith("application/openmetrics-text");
            const encoding = String(res.headers["content-encoding"] ?? "identity").toLowerCase();
            if (encoding === "identity") return done(null, { body: raw, openMetrics });
            if (encoding !== "gzip")
              return done(new ScrapeFailure("content_type", `unsupported content-encoding ${encoding}`));
            gunzip(raw, { maxOutputLength: max }, (err, body) => {
              if (err)
                done(
                  new ScrapeFailure(
                    (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" ? "too_large" : "parse",
                    `gzip page: ${err.message}`,
                  ),
                );
              else done(null, { body, openMetrics });
            });
          });
        },
      );
      onRequest(req, port);
      const timer = setTimeout(
        () => done(new ScrapeFailure("timeout", `no complete page within ${this.opts.timeoutMs}ms`)),
        this.opts.timeoutMs,
      );
      req.on("error", (err) => {
        // Refused or unreachable: nothing listens there (the pod is probably gone), unlike a page that fails.
        const code = (err as NodeJS.ErrnoException).code ?? "";
        const refused = code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENETUNREACH";
        done(new ScrapeFailure(refused ? "refused" : "connect", `GET ${path}: ${err.message}`));
      });
      req.end();
    });
  }
}
