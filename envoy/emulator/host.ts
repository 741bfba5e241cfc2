// The in-process proxy-wasm host: N worker VMs of one module (like Envoy's --concurrency workers), one
// shared-data/queue store per "process", streams driven synchronously without sockets, ticks on real or
// virtual time, http calls over loopback or to an in-process handler, metrics and logs readable from JS.
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { WasmResult, LOG_LEVEL_NAMES, parseLogLevel } from "./abi";
import { checkLinkable } from "./wasm-imports";
import { SharedStore, SharedDataView } from "./shared-store";
import { Stats, MetricsSnapshot } from "./stats";
import { RealScheduler, VirtualScheduler, Scheduler } from "./scheduler";
import { WorkerVm, VmEnv, HttpCallOutcome, HttpCallRequest } from "./vm";
import { HttpStream, StreamSink, PropertyValue } from "./stream";
import { Endpoint, sendHttpCall, TIMEOUT_REPLY, PendingHttpCall } from "./http-call";
import { LbConfig, OutlierConfig } from "./bootstrap";
import { ClusterManager, staticCluster } from "./upstream";

/**
 * Compile wasm as Envoy's V8 does: proxy-wasm-cpp-host turns Liftoff (V8's baseline compiler) off, so every
 * function is optimised by TurboFan before it first runs. Node's default is Liftoff first, then tier-up of
 * hot functions partway through a run, which would make the filter's timings here neither Envoy's nor stable.
 * The flag is process-wide and only affects modules compiled after it is set.
 */
let tiersSet = false;
function useEnvoyWasmTiers(): void {
  if (tiersSet) return;
  tiersSet = true;
  setFlagsFromString("--no-liftoff");
}

/** One Envoy process: shared data, queues and stats shared by every host created with it. */

export class EnvoyProcess {
  readonly store = new SharedStore();
  readonly stats = new Stats();
}

export interface HttpCallContext extends HttpCallRequest {
  worker: number;
  /** For handlers that answer later (e.g. on virtual time): deliver the outcome once. */
  respond(outcome: HttpCallOutcome): void;
}

/** Returns the outcome now, a promise of it, or undefined to answer later through `respond` (or time out). */
export type HttpCallHandler = (call: HttpCallContext) => HttpCallOutcome | Promise<HttpCallOutcome> | undefined | void;

export interface ClusterSpec {
  endpoints: Endpoint[];
  /** Load balancer (default round robin). */
  lb?: LbConfig;
  /** Envoy's outlier detection for the cluster (see `outlierConfig` in bootstrap.ts for the defaults). */
  outlierDetection?: OutlierConfig;
  connectTimeoutMs?: number;
}

export interface HostOptions {
  wasm: Uint8Array | string;
  rootId: string;
  vmId?: string;
  /** Plugin name (Envoy's `config.name`); defaults to rootId. */
  name?: string;
  configuration?: string | Uint8Array;
  vmConfiguration?: string | Uint8Array;
  concurrency?: number;
  failOpen?: boolean;
  /** Envoy PluginConfig allow_on_headers_stop_iteration (default false, as in Envoy). */
  allowOnHeadersStopIteration?: boolean;
  logLevel?: string | number;
  onLog?: (level: string, message: string, worker: number) => void;
  /** Wall clock for get_current_time_nanoseconds, in ns. */
  clock?: () => bigint;
  /** Bytes for WASI random_get (default: Math.random); tests and the simulator pass a seeded source. */
  random?: () => number;
  /** Ticks and http-call timeouts run on virtual time, moved by host.advance(ms). */
  manualTicks?: boolean;
  clusters?: Record<string, ClusterSpec>;
  /**
   * The upstream clusters of the Envoy process (the gateway passes its own, so http calls and routed requests
   * share hosts and outlier detection); built from `clusters` when absent.
   */
  clusterManager?: ClusterManager;
  /** In-process answers for http calls, per cluster name ("*" for any cluster). */
  httpCallHandlers?: Record<string, HttpCallHandler>;
  /** Shorthand for httpCallHandlers["*"]: answers calls to clusters not listed in `clusters`. */
  httpCallHandler?: HttpCallHandler;
  process?: EnvoyProcess;
}

export interface OpenStreamOptions {
  worker?: number;
  sink?: StreamSink;
  properties?: Record<string, PropertyValue>;
}

export class Host {
  readonly workers: WorkerVm[] = [];
  readonly process: EnvoyProcess;
  readonly sharedData: SharedDataView;
  readonly vmId: string;
  readonly rootId: string;
  readonly failOpen: boolean;
  readonly allowOnHeadersStopIteration: boolean;
  private scheduler: Scheduler;
  private virtual: VirtualScheduler | null;
  private depth = 0;
  private deferred: (() => void)[] = [];
  private nextWorker = 0;
  private level: number;
  private clusters: Record<string, ClusterSpec>;
  private upstreams: ClusterManager;
  private ownUpstreams: boolean;
  private closed = false;
  private pendingCancels = new Set<() => void>();
  private readonly clockFn: () => bigint;
  private readonly virtualBaseNs = BigInt(Date.now()) * 1_000_000n;

  readonly options: HostOptions;

  constructor(options: HostOptions) {
    if (options.httpCallHandler)
      options = { ...options, httpCallHandlers: { "*": options.httpCallHandler, ...options.httpCallHandlers } };
    this.options = options;
    const bytes = typeof options.wasm === "string" ? new Uint8Array(readFileSync(options.wasm)) : options.wasm;
    useEnvoyWasmTiers();
    const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
    checkLinkable(bytes, module);
    this.process = options.process ?? new EnvoyProcess();
    this.vmId = options.vmId ?? "";
    this.rootId = options.rootId;
    this.failOpen = options.failOpen ?? false;
    this.allowOnHeadersStopIteration = options.allowOnHeadersStopIteration ?? false;
    this.sharedData = new SharedDataView(this.process.store, this.vmId);
    this.virtual = options.manualTicks ? new VirtualScheduler() : null;
    this.scheduler = this.virtual ?? new RealScheduler();
    this.level = typeof options.logLevel === "number" ? options.logLevel : parseLogLevel(options.logLevel ?? "info");
    this.clusters = options.clusters ?? {};
    this.ownUpstreams = !options.clusterManager;
    this.upstreams = options.clusterManager ?? new ClusterManager(this.scheduler);
    if (this.ownUpstreams)
      for (const [name, spec] of Object.entries(this.clusters))
        this.upstreams.add(
          staticCluster(
            name,
            spec.endpoints.map((e) => ({ address: e.host, port: e.port })),
            { lb: spec.lb, outlierDetection: spec.outlierDetection, connectTimeoutMs: spec.connectTimeoutMs },
          ),
        );
    this.clockFn =
      options.clock ??
      (this.virtual
        ? () => this.virtualBaseNs + BigInt(Math.round(this.virtual!.nowMs() * 1e6))
        : () => process.hrtime.bigint() - HR_BASE + WALL_BASE);
    const enc = new TextEncoder();
    const asBytes = (v: string | Uint8Array | undefined) =>
      typeof v === "string" ? enc.encode(v) : (v ?? new Uint8Array(0));
    const env: VmEnv = {
      vmId: this.vmId,
      rootId: this.rootId,
      pluginName: options.name ?? options.rootId,
      configuration: asBytes(options.configuration),
      vmConfiguration: asBytes(options.vmConfiguration),
      store: this.process.store,
      stats: this.process.stats,
      scheduler: this.scheduler,
      logLevel: () => this.level,
      log: (level, msg, worker) => this.emitLog(level, msg, worker),
      nowNs: () => this.clockFn(),
      random: options.random ?? Math.random,
      startHttpCall: (req, worker, deliver) => this.startHttpCall(req, worker, deliver),
      defer: (fn) => {
        this.deferred.push(fn);
        if (this.depth === 0) this.drain();
      },
      enter: () => {
        this.depth++;
      },
      leave: () => {
        if (--this.depth === 0) this.drain();
      },
      knownCluster: (name) =>
        name in this.clusters ||
        this.upstreams.has(name) ||
        name in (options.httpCallHandlers ?? {}) ||
        "*" in (options.httpCallHandlers ?? {}),
    };
    const n = Math.max(1, options.concurrency ?? 1);
    for (let i = 0; i < n; i++) this.workers.push(new WorkerVm(module, env, i));
    for (const w of this.workers) w.start();
  }

  get concurrency(): number {
    return this.workers.length;
  }

  private drain(): void {
    while (this.deferred.length > 0 && this.depth === 0) this.deferred.shift()!();
  }

  private emitLog(level: number, msg: string, worker: number): void {
    const name = LOG_LEVEL_NAMES[level] ?? "critical";
    if (this.options.onLog) this.options.onLog(name, msg, worker);
    else process.stderr.write(`[${name}][wasm][worker ${worker}] ${msg}\n`);
  }

  setLogLevel(level: string | number): void {
    this.level = typeof level === "number" ? level : parseLogLevel(level);
  }

  /** A new stream on the given worker, or the next one round-robin (as Envoy spreads connections). */
  openStream(opts: OpenStreamOptions = {}): HttpStream {
    if (this.closed) throw new Error("host is closed");
    let w = opts.worker;
    if (w === undefined) {
      w = this.nextWorker;
      this.nextWorker = (this.nextWorker + 1) % this.workers.length;
    }
    const vm = this.workers[w];
    if (!vm) throw new Error(`no worker ${w} (concurrency ${this.workers.length})`);
    return new HttpStream(
      vm,
      {
        failOpen: this.failOpen,
        allowOnHeadersStopIteration: this.allowOnHeadersStopIteration,
        defer: (fn) => {
          this.deferred.push(fn);
          if (this.depth === 0) this.drain();
        },
        nowNs: () => this.clockFn(),
      },
      opts.sink,
      opts.properties,
    );
  }

  /** Virtual time only: moves time forward by `ms`, firing due ticks and http-call timeouts in order. */
  advance(ms: number): void {
    if (!this.virtual) throw new Error("advance() needs manualTicks: true");
    this.virtual.advance(ms);
  }

  /** Virtual time in ms since the host started (manualTicks), else performance.now(). */
  nowMs(): number {
    return this.scheduler.nowMs();
  }

  /** Runs proxy_on_tick on a worker's root context now (or on every worker). */
  tick(worker?: number): void {
    for (const w of worker === undefined ? this.workers : [this.workers[worker]])
      w.call(w.rootContext, "proxy_on_tick", w.rootContext.id);
  }

  metrics(): MetricsSnapshot {
    return this.process.stats.snapshot();
  }

  /** Wasm memory in 64 KiB pages, per worker. */
  memoryPages(): number[] {
    return this.workers.map((w) => w.pages());
  }

  /** Which workers have trapped (their VM is failed, as in Envoy until the plugin is reloaded). */
  failedWorkers(): number[] {
    return this.workers.filter((w) => w.failed).map((w) => w.index);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.workers) w.stopTimers();
    for (const c of this.pendingCancels) c();
    this.pendingCancels.clear();
    if (this.ownUpstreams) this.upstreams.close();
  }

  private startHttpCall(req: HttpCallRequest, worker: number, deliver: (o: HttpCallOutcome) => void): number {
    if (this.closed) return WasmResult.InternalFailure;
    const handlers = this.options.httpCallHandlers ?? {};
    const known = req.cluster in this.clusters || this.upstreams.has(req.cluster);
    const handler = handlers[req.cluster] ?? (known ? undefined : handlers["*"]);
    let settled = false;
    let timer: { cancel(): void } | null = null;
    let io: PendingHttpCall | null = null;
    const cancelAll = () => {
      settled = true;
      timer?.cancel();
      io?.cancel();
    };
    const finish = (o: HttpCallOutcome) => {
      if (settled || this.closed) return;
      settled = true;
      timer?.cancel();
      this.pendingCancels.delete(cancelAll);
      // Delivered as a fresh event, after the VM call that started it (Envoy never answers inline).
      this.deferred.push(() => deliver(o));
      if (this.depth === 0) this.drain();
    };
    if (handler) {
      if (req.timeoutMs > 0) {
        // Envoy's router on the global timeout: a 504 local reply while the response is awaited.
        timer = this.scheduler.after(req.timeoutMs, () => finish(TIMEOUT_REPLY()));
      }
      this.pendingCancels.add(cancelAll);
      const got = handler({ ...req, worker, respond: finish });
      if (got && typeof (got as Promise<HttpCallOutcome>).then === "function") {
        (got as Promise<HttpCallOutcome>).then(finish, () => finish({ failure: "reset" }));
      } else if (got) {
        finish(got as HttpCallOutcome);
      }
      return WasmResult.Ok;
    }
    const cluster = this.upstreams.get(req.cluster);
    // No host for the call (no endpoints): Envoy's router sends its 503 "no healthy upstream" local reply
    // inline, inside AsyncClient::send, which then returns nullptr (async_client_impl.cc
    // internalStartRequest); Context::httpCall answers InternalFailure, drops the token, and the deferred
    // callback finds no handler, so the plugin never hears of this call again.
    if (!cluster) return WasmResult.InternalFailure;
    io = sendHttpCall(cluster, req, this.scheduler, finish);
    if (!io) return WasmResult.InternalFailure;
    this.pendingCancels.add(cancelAll);
    return WasmResult.Ok;
  }
}

const HR_BASE = process.hrtime.bigint();
const WALL_BASE = BigInt(Date.now()) * 1_000_000n;

export function createHost(options: HostOptions): Host {
  return new Host(options);
}

export { HttpStream } from "./stream";
export type { StreamSink, LocalReply, Forwarded, PropertyValue } from "./stream";
export type { HttpCallOutcome, HttpCallRequest } from "./vm";
export type { Pairs } from "./pairs";
export { SharedStore, SharedDataView } from "./shared-store";
export { WasmResult } from "./abi";
