// The service around the scrape -> endpoint store -> snapshot path (pipeline.ts): configuration and its
// live reload, pool discovery, the HTTP API's lifecycle, readiness, and the one-shot `--once` run. main.ts
// only handles the process around it.
import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { startupWarnings, type CompanionOptions } from "./cli";
import { ConfigError } from "./config-fields";
import { ConfigFileWatcher } from "./config-watcher";
import type { EndpointView } from "./endpoint-state";
import { GatewayExchange } from "./gateway-exchange";
import { hex64 } from "./gateway-wire";
import { ApiServer } from "./http-server";
import { KubePool, defaultNamespace, loadKubeConfig } from "./kube-pool";
import type { Logger } from "./log";
import { PeerRelay } from "./peers";
import { loadPickerConfig, type PickerConfig } from "./picker-config";
import { ScrapeToSnapshotPipeline } from "./pipeline";
import { ObjectiveWatcher, type Objective } from "./objectives";
import { ModelRewriteWatcher, type ModelRewriteRule } from "./model-rewrites";
import { SelfMetrics } from "./self-metrics";
import { StaticPool } from "./static-pool";
import type { PoolSource, PoolTarget } from "./types";

/** How long `--once` waits for a Kubernetes pool to be listed. */
const ONCE_SYNC_TIMEOUT_MS = 30_000;

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
    if (e instanceof ConfigError && text !== null && !e.message.startsWith("--"))
      throw new ConfigError(`${configSource(options)}: ${e.message}`);
    throw e;
  }
}

function createPoolSource(
  options: CompanionOptions,
  log: Logger,
  metrics: SelfMetrics,
  onObjectives: (objectives: Objective[]) => void,
  onModelRewrites: (rules: ModelRewriteRule[]) => void,
): { pool: PoolSource; objectives: ObjectiveWatcher | null; modelRewrites: ModelRewriteWatcher | null } {
  const pool = options.pool;
  if (pool.kind === "static")
    return { pool: new StaticPool(pool.endpoints, pool.file), objectives: null, modelRewrites: null };
  const kubeConfig = loadKubeConfig(options.kubeconfig);
  const namespace = defaultNamespace(kubeConfig, pool.namespace);
  // InferenceObjectives and InferenceModelRewrites name their InferencePool: with a selector there is no
  // pool for them to name.
  const objectives =
    pool.kind === "inference-pool" ? new ObjectiveWatcher(kubeConfig, namespace, pool.name, log, onObjectives) : null;
  const modelRewrites =
    pool.kind === "inference-pool"
      ? new ModelRewriteWatcher(kubeConfig, namespace, pool.name, pool.group, log, onModelRewrites)
      : null;
  const source = new KubePool({
    kubeConfig,
    namespace,
    log,
    mode:
      pool.kind === "inference-pool"
        ? { kind: "inference-pool", name: pool.name, group: pool.group }
        : { kind: "selector", selector: pool.selector, targetPorts: pool.targetPorts },
    onWatchRestart: (resource) => metrics.watchRestarts.inc({ resource }),
  });
  return { pool: source, objectives, modelRewrites };
}

export class Companion {
  private config: PickerConfig;
  private readonly metrics = new SelfMetrics();
  /** Scrapes the pool into the endpoint store and publishes its snapshots. */
  readonly pipeline: ScrapeToSnapshotPipeline;
  private readonly pool: PoolSource;
  private readonly objectives: ObjectiveWatcher | null;
  private readonly modelRewrites: ModelRewriteWatcher | null;
  private server: ApiServer | null = null;
  private watcher: ConfigFileWatcher | null = null;
  /** The gateways' merged view (docs/GATEWAYS.md), and the relay of its reports to the peer companions. */
  readonly exchange: GatewayExchange;
  private peers: PeerRelay | null = null;

  private constructor(
    private readonly options: CompanionOptions,
    private readonly log: Logger,
    private readonly configText: string | null,
  ) {
    this.config = loadConfig(configText, options);
    for (const note of this.config.notes)
      if (this.config.warnings.includes(note)) log.warn(note);
      else log.info(note);
    this.pipeline = new ScrapeToSnapshotPipeline(options, () => this.config, this.metrics, log);
    const source = createPoolSource(
      options,
      log,
      this.metrics,
      (o) => this.pipeline.setObjectives(o),
      (r) => this.pipeline.setModelRewrites(r),
    );
    this.pool = source.pool;
    this.objectives = source.objectives;
    this.modelRewrites = source.modelRewrites;
    this.exchange = new GatewayExchange({
      maxRecords: options.exchangeRecords,
      maxReportBytes: options.maxReportBytes,
      relay: PeerRelay.configured({ peers: options.peers, dns: options.peersDns }),
    });
    this.metrics.gatewayState = () => {
      const s = this.exchange.stats(Date.now());
      return { liveGateways: s.liveGateways, records: s.records, peers: this.peers?.count ?? 0 };
    };
    // The gateways' flow-control queues (the report's tail), pool-wide: the queue-depth metric KEDA scales on.
    const poolName = options.pool.kind === "inference-pool" ? options.pool.name : "";
    this.metrics.flowControlQueue = () => ({ pool: poolName, sizes: this.exchange.queueSizes(Date.now()) });
  }

  /** Reads the configuration; throws ConfigError (exit 1) for anything wrong with it. */
  static async create(options: CompanionOptions, log: Logger): Promise<Companion> {
    return new Companion(options, log, await readConfigText(options));
  }

  notReadyReason(): string | null {
    if (!this.pipeline.poolListed) return "pool not listed yet";
    const problem = this.pool.problem?.() ?? null;
    if (problem) return problem;
    if (!this.pipeline.firstRoundDone) return "first scrape round not finished";
    return null;
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
    for (const note of next.notes)
      if (next.warnings.includes(note)) this.log.warn(note);
      else this.log.info(note);
    this.pipeline.setEngines(next.engines); // requests a snapshot rebuild (the profile and flow control are part of it)
    this.metrics.configReloads.inc({ result: "success" });
    this.log.info("config reloaded", {
      defaultEngine: next.engines.defaultEngine,
      engines: [...next.engines.engines.keys()],
      profile: next.profile,
      flowControl: next.flowControl,
    });
  }

  /** Serves the API, then discovers the pool and scrapes it until stop(). */
  async start(): Promise<AddressInfo> {
    this.server = new ApiServer(
      {
        publisher: this.pipeline.publisher,
        metrics: this.metrics,
        views: () => this.pipeline.views(Date.now()),
        profile: () => this.config.profile,
        flowControl: () => this.config.flowControl,
        notReadyReason: () => this.notReadyReason(),
        pool: this.pool.description,
        exchange: this.exchange,
        now: () => Date.now(),
      },
      {
        host: this.options.host,
        port: this.options.port,
        longPollTimeoutMs: this.options.longPollTimeoutMs,
        apiToken: this.options.apiToken,
        maxReportBytes: this.options.maxReportBytes,
      },
      this.log,
    );
    const address = await this.server.listen();
    if (PeerRelay.configured({ peers: this.options.peers, dns: this.options.peersDns })) {
      this.peers = new PeerRelay(
        this.exchange,
        { peers: this.options.peers, dns: this.options.peersDns, apiToken: this.options.apiToken },
        this.log,
        { onSend: (result) => this.metrics.gatewayRelaySends.inc({ result }) },
      );
      this.peers.start(address.port);
    }
    for (const w of startupWarnings(this.options)) this.log.warn(w.msg, w.fields);
    if (this.options.configFile !== undefined) {
      this.watcher = new ConfigFileWatcher(
        this.options.configFile,
        this.configText ?? "",
        (text) => this.reload(text),
        this.log,
      );
      this.watcher.start();
    }
    this.log.info("companion started", {
      pool: this.pool.description,
      defaultEngine: this.config.engines.defaultEngine,
      profile: this.config.profile,
      flowControl: this.config.flowControl,
      companionId: hex64(this.exchange.companionId),
    });
    return address;
  }

  /** Resolves once the pool is listed; rejects on a configuration error (e.g. a bad --endpoints-file). */
  async discover(): Promise<void> {
    this.objectives?.start(); // never waited for: the CRDs are optional
    this.modelRewrites?.start();
    await this.pool.start((targets) => this.pipeline.setTargets(targets));
    this.log.info("pool listed", { pool: this.pool.description, endpoints: this.pipeline.size });
    this.pipeline.markPoolListed();
  }

  /** `--once`: list the pool, scrape every endpoint once, return the states. */
  async once(): Promise<{ pool: string; profile: PickerConfig["profile"]; endpoints: EndpointView[] }> {
    let targets: PoolTarget[] = [];
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ConfigError(
              `${this.pool.description}: not listed within ${ONCE_SYNC_TIMEOUT_MS / 1000}s (see the log for the errors)`,
            ),
          ),
        ONCE_SYNC_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([this.pool.start((t) => (targets = t)), deadline]);
    } finally {
      clearTimeout(timer);
      await this.pool.stop();
    }
    const problem = this.pool.problem?.() ?? null;
    if (problem) throw new ConfigError(problem);
    const endpoints = await this.pipeline.scrapeOnce(targets);
    return { pool: this.pool.description, profile: this.config.profile, endpoints };
  }

  async stop(): Promise<void> {
    this.watcher?.stop();
    await this.peers?.stop();
    this.pipeline.stop(); // scrapers stopped, held long polls answered (304) ...
    await new Promise((r) => setImmediate(r)); // ... and flushed before the connections close
    this.objectives?.stop();
    this.modelRewrites?.stop();
    await this.pool.stop();
    await this.server?.close();
  }
}
