// Wires discovery, configuration, scraping, endpoint state, snapshots and the HTTP API into one service
// (and the one-shot `--once` run). main.ts only handles the process around it.
import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import type { CompanionOptions } from "./cli";
import { ConfigError } from "./config-fields";
import { ConfigFileWatcher } from "./config-watcher";
import { EndpointStore, type EndpointView } from "./endpoint-state";
import { ApiServer } from "./http-server";
import { KubePool, defaultNamespace, loadKubeConfig } from "./kube-pool";
import type { Logger } from "./log";
import { loadPickerConfig, type PickerConfig } from "./picker-config";
import type { PoolSource, PoolTarget } from "./pool";
import { Scraper, type ScrapeOutcome } from "./scraper";
import { SelfMetrics } from "./self-metrics";
import { SnapshotPublisher } from "./snapshot-publisher";
import { StaticPool } from "./static-pool";

/** How long `--once` waits for a Kubernetes pool to be listed. */
export const ONCE_SYNC_TIMEOUT_MS = 30_000;

async function readConfigText(options: CompanionOptions): Promise<string | null> {
  if (options.configText !== undefined) return options.configText;
  if (options.configFile === undefined) return null;
  try {
    return await readFile(options.configFile, "utf8");
  } catch (e) {
    throw new ConfigError(`--config-file ${options.configFile}: ${(e as Error).message}`);
  }
}

function configSource(options: CompanionOptions): string {
  return options.configFile !== undefined ? `config file ${options.configFile}` : "--config-text";
}

/** Loads the picker config; ConfigErrors name the source. */
function loadConfig(text: string | null, options: CompanionOptions): PickerConfig {
  try {
    return loadPickerConfig(text, options.engineFlags);
  } catch (e) {
    if (e instanceof ConfigError && text !== null && !e.message.startsWith("--")) throw new ConfigError(`${configSource(options)}: ${e.message}`);
    throw e;
  }
}

export function createPoolSource(options: CompanionOptions, log: Logger, metrics?: SelfMetrics): PoolSource {
  const pool = options.pool;
  if (pool.kind === "static") return new StaticPool(pool.endpoints, pool.file);
  const kubeConfig = loadKubeConfig(options.kubeconfig);
  const namespace = defaultNamespace(kubeConfig, pool.namespace);
  return new KubePool({
    kubeConfig, namespace, log,
    mode: pool.kind === "inference-pool" ? { kind: "inference-pool", name: pool.name, group: pool.group } : { kind: "selector", selector: pool.selector, targetPorts: pool.targetPorts },
    onWatchRestart: (resource) => metrics?.watchRestarts.inc({ resource }),
  });
}

export class Companion {
  private config: PickerConfig;
  readonly metrics = new SelfMetrics();
  readonly store: EndpointStore;
  readonly publisher: SnapshotPublisher;
  private readonly scraper: Scraper;
  private readonly pool: PoolSource;
  private server: ApiServer | null = null;
  private watcher: ConfigFileWatcher | null = null;
  private poolSynced = false;
  private firstRoundDone = false;
  private lastStatus = new Map<string, string>();

  private constructor(private readonly options: CompanionOptions, private readonly log: Logger, private readonly configText: string | null) {
    this.config = loadConfig(configText, options);
    for (const note of this.config.notes) log.info(note);
    this.store = new EndpointStore(this.config.engines, options.stalenessThresholdMs);
    this.publisher = new SnapshotPublisher((now) => ({ profile: this.config.profile, endpoints: this.store.snapshotEndpoints(now), baseModels: this.store.baseModels() }), {
      minIntervalMs: options.refreshIntervalMs,
      nextChangeAt: (now) => this.store.nextStaleAt(now),
      onError: (e) => log.error("snapshot rebuild failed; serving the previous snapshot", { error: e.message }),
      onPublish: (s) => {
        this.metrics.snapshotVersion.set(Number(s.version));
        this.metrics.snapshotBytes.set(s.blob.length);
        this.metrics.snapshotVersions.inc();
      },
    });
    this.store.onChange(() => this.publisher.requestUpdate());
    this.metrics.poolState = () => ({ endpoints: this.store.size, stale: this.store.staleCount(Date.now()), errors: this.store.errorCount() });
    this.scraper = new Scraper(
      { intervalMs: options.refreshIntervalMs, timeoutMs: options.scrapeTimeoutMs, maxBackoffMs: options.maxBackoffMs, maxPageBytes: options.maxPageBytes, metricsPort: options.metricsPort, metricsPath: options.metricsPath },
      { engines: () => this.config.engines, scrape: () => this.config.scrape },
      (target, outcome) => this.record(target, outcome),
      log,
    );
    this.pool = createPoolSource(options, log, this.metrics);
  }

  /** Reads the configuration; throws ConfigError (exit 1) for anything wrong with it. */
  static async create(options: CompanionOptions, log: Logger): Promise<Companion> {
    return new Companion(options, log, await readConfigText(options));
  }

  get profile() {
    return this.config.profile;
  }

  private record(target: PoolTarget, outcome: ScrapeOutcome): void {
    this.metrics.scrapeDuration.observe({ result: outcome.ok ? "ok" : "error" }, outcome.durationMs / 1000);
    const current = outcome.ok
      ? this.store.recordSuccess(target.address, outcome.engine, outcome.metrics, Date.now())
      : this.store.recordFailure(target.address, outcome.engine, outcome.error);
    // An outcome for an engine the endpoint no longer has (relabelled or reloaded mid-scrape) is dropped.
    if (!current) return;
    if (!outcome.ok) this.metrics.scrapeError(target.address, outcome.reason);
    // Log transitions only: a failing endpoint scraped every few seconds must not flood the log.
    const status = outcome.ok ? "ok" : outcome.error;
    const before = this.lastStatus.get(target.address);
    if (status !== before) {
      this.lastStatus.set(target.address, status);
      if (!outcome.ok) this.log.warn("scrape failed", { endpoint: target.address, pod: target.pod, engine: outcome.engine, reason: outcome.reason, error: outcome.error });
      else if (before !== undefined) this.log.info("scrape recovered", { endpoint: target.address, pod: target.pod, engine: outcome.engine });
    }
    this.checkFirstRound();
  }

  private checkFirstRound(): void {
    if (!this.firstRoundDone && this.poolSynced && this.store.allAttempted()) {
      this.firstRoundDone = true;
      this.log.info("first scrape round done", { endpoints: this.store.size });
    }
  }

  notReadyReason(): string | null {
    if (!this.poolSynced) return "pool not listed yet";
    const problem = this.pool.problem?.() ?? null;
    if (problem) return problem;
    if (!this.firstRoundDone) return "first scrape round not finished";
    return null;
  }

  private setTargets(targets: PoolTarget[]): void {
    this.store.setTargets(targets);
    this.scraper.setTargets(targets);
    const addresses = new Set(targets.map((t) => t.address));
    this.metrics.forgetEndpointsExcept(addresses);
    for (const a of this.lastStatus.keys()) if (!addresses.has(a)) this.lastStatus.delete(a);
    this.log.info("pool changed", { endpoints: targets.length });
    this.checkFirstRound();
  }

  /** Applies a new config file text; a broken one is logged and the running config kept. */
  private reload(text: string): void {
    let next: PickerConfig;
    try {
      next = loadConfig(text, this.options);
    } catch (e) {
      this.metrics.configReloads.inc({ result: "failure" });
      this.log.error("config reload failed; keeping the previous configuration", { error: (e as Error).message });
      return;
    }
    this.config = next;
    for (const note of next.notes) this.log.info(note);
    this.store.setEngines(next.engines); // requests a snapshot rebuild (the profile is part of it)
    this.metrics.configReloads.inc({ result: "success" });
    this.log.info("config reloaded", { defaultEngine: next.engines.defaultEngine, engines: [...next.engines.engines.keys()], profile: next.profile });
  }

  /** Serves the API, then discovers the pool and scrapes it until stop(). */
  async start(): Promise<AddressInfo> {
    this.server = new ApiServer({
      publisher: this.publisher, metrics: this.metrics, views: () => this.store.views(Date.now()), profile: () => this.config.profile,
      notReadyReason: () => this.notReadyReason(), pool: this.pool.description,
    }, { host: this.options.host, port: this.options.port, longPollTimeoutMs: this.options.longPollTimeoutMs, apiToken: this.options.apiToken }, this.log);
    const address = await this.server.listen();
    if (this.options.configFile !== undefined) {
      this.watcher = new ConfigFileWatcher(this.options.configFile, this.configText ?? "", (text) => this.reload(text), this.log);
      this.watcher.start();
    }
    this.log.info("companion started", { pool: this.pool.description, defaultEngine: this.config.engines.defaultEngine, profile: this.config.profile });
    return address;
  }

  /** Resolves once the pool is listed; rejects on a configuration error (e.g. a bad --endpoints-file). */
  async discover(): Promise<void> {
    await this.pool.start((targets) => this.setTargets(targets));
    this.poolSynced = true;
    this.log.info("pool listed", { pool: this.pool.description, endpoints: this.store.size });
    this.checkFirstRound();
    this.publisher.requestUpdate();
  }

  /** `--once`: list the pool, scrape every endpoint once, return the states. */
  async once(): Promise<{ pool: string; profile: PickerConfig["profile"]; endpoints: EndpointView[] }> {
    let targets: PoolTarget[] = [];
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ConfigError(`${this.pool.description}: not listed within ${ONCE_SYNC_TIMEOUT_MS / 1000}s (see the log for the errors)`)), ONCE_SYNC_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.pool.start((t) => (targets = t)), deadline]);
    } finally {
      clearTimeout(timer);
      await this.pool.stop();
    }
    const problem = this.pool.problem?.() ?? null;
    if (problem) throw new ConfigError(problem);
    this.store.setTargets(targets);
    await Promise.all(targets.map(async (t) => this.record(t, await this.scraper.scrape(t))));
    this.scraper.stop();
    return { pool: this.pool.description, profile: this.config.profile, endpoints: this.store.views(Date.now()) };
  }

  async stop(): Promise<void> {
    this.watcher?.stop();
    this.scraper.stop();
    this.publisher.stop(); // held long polls are answered (304) ...
    await new Promise((r) => setImmediate(r)); // ... and flushed before the connections close
    await this.pool.stop();
    await this.server?.close();
  }
}
