// Scrapes every endpoint's metrics page on its own loop: concurrently, every refresh interval with jitter,
// one request at a time per endpoint, a per-scrape timeout, a page-size cap, keep-alive connections
// (metrics-http.ts), only the wanted families where the server can (page-selection.ts), and exponential
// backoff while an endpoint keeps failing.
import type { EngineMapping, EngineRegistry } from "./engines";
import { familiesOf } from "./engines";
import { ExtractError, extractMetrics, type EndpointMetrics } from "./extract";
import type { Logger } from "./log";
import { MetricsHttp, ScrapeFailure, type MetricsOrigin, type ScrapeFailureReason } from "./metrics-http";
import { PageSelections, type PageMode, type RestrictedVerdict } from "./page-selection";
import type { ScrapeSettings } from "./picker-config";
import { FamilySelector, PageError, parseSelectedFamilies, type ParsedPage } from "./prom-parser";
import type { PoolTarget } from "./types";

export type { ScrapeFailureReason } from "./metrics-http";

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
  /** Ask servers for the wanted families only (`?name[]=`), where they honour it (default true). */
  nameFilter?: boolean;
}

/** What the scraper reads its engines and data source settings from (swapped on config reload). */
export interface ScrapeConfigSource {
  engines(): EngineRegistry;
  scrape(): ScrapeSettings;
}

export type ScrapeOutcome =
  | { ok: true; engine: string; metrics: EndpointMetrics; durationMs: number; page: PageMode }
  | { ok: false; engine: string; error: string; reason: ScrapeFailureReason; durationMs: number };

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

interface Loop {
  target: PoolTarget;
  stopped: boolean;
  failures: number;
  timer: NodeJS.Timeout | null;
  /** Cancels the scrape in flight. */
  abort: (() => void) | null;
  /** Origins this loop has scraped (the endpoint's own port, or a metrics port): its kept-alive connections. */
  origins: Set<string>;
}

export class Scraper {
  private readonly http = new MetricsHttp();
  private readonly pages: PageSelections;
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
    this.pages = new PageSelections(opts.nameFilter ?? true);
  }

  private selectorFor(mapping: EngineMapping): FamilySelector {
    let s = this.selectors.get(mapping);
    if (!s) this.selectors.set(mapping, (s = new FamilySelector(familiesOf(mapping))));
    return s;
  }

  /** How many endpoints get the full page, a restricted one, or are still to be probed. */
  pageModes(): Record<PageMode, number> {
    return this.pages.counts();
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
        const fresh: Loop = { target: t, stopped: false, failures: 0, timer: null, abort: null, origins: new Set() };
        next.set(t.address, fresh);
        // A random first delay spreads the first round over one interval instead of one burst.
        this.schedule(fresh, Math.random() * Math.min(this.opts.intervalMs, 1000));
      }
    }
    const removed = [...this.loops.values()].filter((loop) => !next.has(loop.target.address));
    this.loops = next;
    for (const loop of removed) this.stopLoop(loop);
    for (const address of this.warnedLabels.keys()) if (!next.has(address)) this.warnedLabels.delete(address);
    this.pages.retain(new Set(next.keys()));
    if (removed.length > 0) {
      // Close the connections of endpoints that left, except those a remaining endpoint uses too (two
      // target ports of one pod scraped on one metrics port).
      const inUse = new Set<string>();
      for (const loop of this.loops.values()) for (const o of loop.origins) inUse.add(o);
      this.http.closeExcept(inUse);
    }
  }

  private stopLoop(loop: Loop): void {
    loop.stopped = true;
    if (loop.timer) clearTimeout(loop.timer);
    loop.abort?.();
  }

  stop(): void {
    for (const loop of this.loops.values()) this.stopLoop(loop);
    this.loops.clear();
    this.http.stop();
  }

  private schedule(loop: Loop, delayMs: number): void {
    loop.timer = setTimeout(() => {
      loop.timer = null;
      void this.runOnce(loop);
    }, delayMs);
  }

  private async runOnce(loop: Loop): Promise<void> {
    if (loop.stopped) return;
    const outcome = await this.scrape(loop.target, (abort, origin) => {
      loop.abort = abort;
      loop.origins.add(origin);
    });
    loop.abort = null;
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
    onRequest: (abort: () => void, origin: string) => void = () => {},
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
      const { page, mode } = await this.readPage(target, mapping, onRequest);
      const metrics = extractMetrics(page, mapping);
      if (mode === "probe") this.pages.probed(target.address, mapping, this.pathFor(mapping), page);
      return { ok: true, engine: mapping.name, metrics, durationMs: performance.now() - started, page: mode };
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

  private pathFor(mapping: EngineMapping): string {
    return mapping.metricsPath ?? this.opts.metricsPath ?? this.config.scrape().path;
  }

  /**
   * The endpoint's page, parsed: restricted to the wanted families once the endpoint has shown it honours
   * that, else in full. A restricted answer that fails its check is replaced by the full page at once.
   */
  private async readPage(
    target: PoolTarget,
    mapping: EngineMapping,
    onRequest: (abort: () => void, origin: string) => void,
  ): Promise<{ page: ParsedPage; mode: PageMode }> {
    const settings = this.config.scrape();
    const origin: MetricsOrigin = {
      scheme: settings.scheme,
      ip: target.ip,
      port: mapping.metricsPort ?? this.opts.metricsPort ?? target.port,
      insecureSkipVerify: settings.insecureSkipVerify,
    };
    const path = this.pathFor(mapping);
    const selector = this.selectorFor(mapping);
    const fetchParsed = async (p: string): Promise<ParsedPage> => {
      const fetched = await this.http.get(origin, p, this.opts.timeoutMs, this.opts.maxPageBytes, (abort) =>
        onRequest(abort, this.http.key(origin)),
      );
      try {
        // The parsed page holds strings and numbers only: the buffer is free again after this.
        return parseSelectedFamilies(fetched.body, selector, fetched.openMetrics);
      } finally {
        this.http.recycle(fetched);
      }
    };
    const mode = this.pages.mode(target.address, mapping, path);
    if (mode !== "restricted") return { page: await fetchParsed(path), mode };
    let restricted: ParsedPage | null = null;
    let verdict: RestrictedVerdict;
    try {
      restricted = await fetchParsed(this.pages.restrictedPathFor(mapping, path));
      verdict = this.pages.checkRestricted(target.address, mapping, path, restricted);
    } catch (e) {
      // Transport failures say nothing about the query: they are this scrape's outcome.
      const pageFailure =
        e instanceof PageError ||
        (e instanceof ScrapeFailure && (e.reason === "http_status" || e.reason === "content_type"));
      if (!pageFailure) throw e;
      verdict = this.pages.restrictedFailed(target.address, mapping, path, (e as Error).message);
    }
    if (verdict.ok) return { page: restricted!, mode };
    this.log.info("metrics server does not honour name[]; scraping its full page from now on", {
      endpoint: target.address,
      pod: target.pod,
      engine: mapping.name,
      why:
        verdict.why === "ignored"
          ? `answered ${verdict.others} other series`
          : verdict.why === "missing"
            ? `left out ${verdict.families.join(", ")}`
            : `the restricted request failed: ${verdict.error}`,
    });
    // Its answer was the full page already: no second request.
    if (verdict.why === "ignored") return { page: restricted!, mode: "full" };
    return { page: await fetchParsed(path), mode: "full" };
  }
}
