// The path of the metrics from the model servers to the filter, in one place:
//
//   pool targets --setTargets()--> EndpointStore (the entries) and Scraper (one loop per endpoint)
//   Scraper outcome --record()--> EndpointStore.recordSuccess / recordFailure   (+ scrape metrics, logs)
//   EndpointStore change --> SnapshotPublisher.requestUpdate()   (coalesced to one rebuild per interval)
//   SnapshotPublisher rebuild: the profile and flow control (from the config) + the store's endpoints and base
//   models (+ the InferenceObjectives and InferenceModelRewrite rules discovery set); a new version only when
//   the content changed (+ snapshot metrics); the next staleness expiry re-arms a rebuild by itself.
//
// It also tracks the first scrape round (readiness). The process around it (config load and reload, pool
// discovery, the HTTP API, `--once`) is Companion's (companion.ts).
import type { CompanionOptions } from "./cli";
import { EndpointStore, type EndpointView } from "./endpoint-state";
import type { EngineRegistry } from "./engines";
import type { Logger } from "./log";
import type { PickerConfig } from "./picker-config";
import { Scraper, type ScrapeOutcome } from "./scraper";
import type { SelfMetrics } from "./self-metrics";
import { SnapshotPublisher } from "./snapshot-publisher";
import type { ModelRewriteRule } from "./snapshot";
import type { PoolTarget } from "./types";

export type PipelineSettings = Pick<
  CompanionOptions,
  | "refreshIntervalMs"
  | "scrapeTimeoutMs"
  | "maxBackoffMs"
  | "maxPageBytes"
  | "metricsPort"
  | "metricsPath"
  | "metricsNameFilter"
  | "stalenessThresholdMs"
>;

export class ScrapeToSnapshotPipeline {
  private readonly store: EndpointStore;
  readonly publisher: SnapshotPublisher;
  private readonly scraper: Scraper;
  private listed = false;
  private firstRound = false;
  /** Address -> "ok" or the last error: scrape results are logged on transitions only. */
  private lastStatus = new Map<string, string>();
  /** InferenceObjective priorities (companion/objectives.ts), carried in the snapshot. */
  private objectives: Array<{ name: string; priority: number }> = [];
  /** InferenceModelRewrite rules in precedence order (companion/model-rewrites.ts), carried in the snapshot. */
  private modelRewrites: ModelRewriteRule[] = [];

  /** `config` is read on every use: a reload swaps it (engines then go through setEngines()). */
  constructor(
    settings: PipelineSettings,
    config: () => PickerConfig,
    private readonly metrics: SelfMetrics,
    private readonly log: Logger,
  ) {
    this.store = new EndpointStore(config().engines, settings.stalenessThresholdMs);
    this.publisher = new SnapshotPublisher(
      (now) => ({
        profile: config().profile,
        endpoints: this.store.snapshotEndpoints(now),
        baseModels: this.store.baseModels(),
        objectives: this.objectives,
        modelRewrites: this.modelRewrites,
        flowControl: config().flowControl,
      }),
      {
        minIntervalMs: settings.refreshIntervalMs,
        nextChangeAt: (now) => this.store.nextStaleAt(now),
        onError: (e) => log.error("snapshot rebuild failed; serving the previous snapshot", { error: e.message }),
        onPublish: (s) => {
          metrics.snapshotVersion.set(Number(s.version));
          metrics.snapshotBytes.set(s.blob.length);
          metrics.snapshotVersions.inc();
        },
      },
    );
    this.store.onChange(() => this.publisher.requestUpdate());
    metrics.poolState = () => ({
      endpoints: this.store.size,
      stale: this.store.staleCount(Date.now()),
      errors: this.store.errorCount(),
    });
    this.scraper = new Scraper(
      {
        intervalMs: settings.refreshIntervalMs,
        timeoutMs: settings.scrapeTimeoutMs,
        maxBackoffMs: settings.maxBackoffMs,
        maxPageBytes: settings.maxPageBytes,
        metricsPort: settings.metricsPort,
        metricsPath: settings.metricsPath,
        nameFilter: settings.metricsNameFilter,
      },
      { engines: () => config().engines, scrape: () => config().scrape },
      (target, outcome) => this.record(target, outcome),
      log,
    );
    metrics.pageModes = () => this.scraper.pageModes();
  }

  /** Endpoints in the pool. */
  get size(): number {
    return this.store.size;
  }

  /** What operators see (`GET /v1/endpoints`, `--once`). */
  views(now: number): EndpointView[] {
    return this.store.views(now);
  }

  /** The pool has been listed (discovery's first list is in): from now on a complete scrape round counts. */
  get poolListed(): boolean {
    return this.listed;
  }

  /** The pool has been listed and every endpoint scraped once, successfully or not. */
  get firstRoundDone(): boolean {
    return this.firstRound;
  }

  /** New InferenceObjective priorities: the next snapshot carries them. */
  setObjectives(objectives: Array<{ name: string; priority: number }>): void {
    this.objectives = objectives;
    this.publisher.requestUpdate();
  }

  /** New InferenceModelRewrite rules: the next snapshot carries them. */
  setModelRewrites(rules: ModelRewriteRule[]): void {
    this.modelRewrites = rules;
    this.publisher.requestUpdate();
  }

  /** A new full target list from discovery. */
  setTargets(targets: PoolTarget[]): void {
    this.store.setTargets(targets);
    this.scraper.setTargets(targets);
    const addresses = new Set(targets.map((t) => t.address));
    this.metrics.forgetEndpointsExcept(addresses);
    for (const a of this.lastStatus.keys()) if (!addresses.has(a)) this.lastStatus.delete(a);
    this.log.info("pool changed", { endpoints: targets.length });
    this.checkFirstRound();
  }

  /** Discovery has delivered its first list. */
  markPoolListed(): void {
    this.listed = true;
    this.checkFirstRound();
    this.publisher.requestUpdate();
  }

  /**
   * New engine definitions (config reload); requests a snapshot rebuild, which also picks up the new profile
   * and flow control.
   */
  setEngines(engines: EngineRegistry): void {
    this.store.setEngines(engines);
  }

  /** `--once`: these targets, each scraped once (no loops), then the states. */
  async scrapeOnce(targets: PoolTarget[]): Promise<EndpointView[]> {
    this.store.setTargets(targets);
    await Promise.all(targets.map(async (t) => this.record(t, await this.scraper.scrape(t))));
    this.scraper.stop();
    return this.store.views(Date.now());
  }

  private record(target: PoolTarget, outcome: ScrapeOutcome): void {
    this.metrics.scrapeDuration.observe({ result: outcome.ok ? "ok" : "error" }, outcome.durationMs / 1000);
    const current = outcome.ok
      ? this.store.recordSuccess(target.address, outcome.engine, outcome.metrics, Date.now())
      : this.store.recordFailure(target.address, outcome.engine, outcome.error, outcome.reason === "refused");
    // An outcome for an engine the endpoint no longer has (relabelled or reloaded mid-scrape) is dropped.
    if (!current) return;
    if (!outcome.ok) this.metrics.scrapeError(target.address, outcome.reason);
    // Log transitions only: a failing endpoint scraped every few seconds must not flood the log.
    const status = outcome.ok ? "ok" : outcome.error;
    const before = this.lastStatus.get(target.address);
    if (status !== before) {
      this.lastStatus.set(target.address, status);
      if (!outcome.ok)
        this.log.warn("scrape failed", {
          endpoint: target.address,
          pod: target.pod,
          engine: outcome.engine,
          reason: outcome.reason,
          error: outcome.error,
          // What the filter does with it (docs/FILTER.md, "Decision"): a metrics outage is not a traffic outage.
          routing:
            outcome.reason === "refused"
              ? "avoided while other endpoints are left (nothing listens on its metrics port)"
              : "degraded: still routed, by the proxy's own requests in flight",
        });
      else if (before !== undefined)
        this.log.info("scrape recovered", { endpoint: target.address, pod: target.pod, engine: outcome.engine });
    }
    this.checkFirstRound();
  }

  private checkFirstRound(): void {
    if (!this.firstRound && this.listed && this.store.allAttempted()) {
      this.firstRound = true;
      this.log.info("first scrape round done", { endpoints: this.store.size });
    }
  }

  /** Stops the scrape loops and answers held long polls (304). */
  stop(): void {
    this.scraper.stop();
    this.publisher.stop();
  }
}
