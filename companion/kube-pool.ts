// Kubernetes discovery with @kubernetes/client-node informers (list, then watch from the list's
// resourceVersion). Two modes: follow an InferencePool (and re-select pods when its selector or ports
// change), or a fixed label selector with fixed target ports.
//
// client-node's ListWatch relists by itself after 410 Gone and re-watches when a stream ends cleanly, but
// after any other error (connection refused, a dropped stream, a failed list) it stops and only reports
// the error. We restart it then, with exponential backoff, resuming from its last resourceVersion.
// client-node's Watch prepares a request's credentials (kc.applyToFetchOptions: exec plugins, token files)
// outside its error handling, so a credential failure rejects the watch call instead of reporting an error:
// ListWatch.start() then rejects, and a re-watch after a clean end rejects a promise nobody holds. Both are
// turned into the same restart (SafeWatch and the catch on start()); an unhandled rejection would end the
// process.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  ListWatch,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { ConfigError } from "./config-fields";
import { parseInferencePool, podTargets, selectorString, type PodLike, type PoolSpec } from "./inference-pool";
import type { Logger } from "./log";
import { POOL_GROUPS, byAddress, type PoolGroup, type PoolSource, type PoolTarget } from "./types";
import { POD_ROLE_DECODE, POD_ROLE_ENCODE, POD_ROLE_LABELED, POD_ROLE_PREFILL } from "./snapshot";

/** llm-d's pod role label (prefill/decode disaggregation); static endpoints give it in their file's labels. */
export const ROLE_LABEL = "llm-d.ai/role";

/** llm-d-router's role values (pkg/.../filter/bylabel/roles.go) as the snapshot's role bits. */
const ROLE_VALUES: Readonly<Record<string, number>> = {
  prefill: POD_ROLE_PREFILL,
  decode: POD_ROLE_DECODE,
  encode: POD_ROLE_ENCODE,
  "prefill-decode": POD_ROLE_PREFILL | POD_ROLE_DECODE,
  both: POD_ROLE_PREFILL | POD_ROLE_DECODE, // deprecated alias of prefill-decode
  "encode-prefill": POD_ROLE_ENCODE | POD_ROLE_PREFILL,
  "encode-prefill-decode": POD_ROLE_ENCODE | POD_ROLE_PREFILL | POD_ROLE_DECODE,
};

/**
 * A pod's role bits from its labels: 0 without the label (llm-d-router's decode-filter keeps such a pod, its
 * prefill-filter drops it); a value llm-d does not know is labeled with no stage (both role filters drop it,
 * as llm-d-router's do) and reported through `unknown`.
 */
export function podRole(labels: Readonly<Record<string, string>>): { role: number; unknown: string | null } {
  const value = labels[ROLE_LABEL];
  if (value === undefined) return { role: 0, unknown: null };
  const bits = ROLE_VALUES[value.trim()];
  return bits === undefined
    ? { role: POD_ROLE_LABELED, unknown: value }
    : { role: POD_ROLE_LABELED | bits, unknown: null };
}

const IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/** `--kubeconfig`, else the client's defaults ($KUBECONFIG, ~/.kube/config, in-cluster); refuses to guess. */
export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) {
      kc.loadFromFile(path);
    } else {
      const haveFile = Boolean(env.KUBECONFIG) || existsSync(join(homedir(), ".kube", "config"));
      if (!haveFile && !env.KUBERNETES_SERVICE_HOST) {
        throw new ConfigError(
          "no Kubernetes configuration: not in a cluster, no $KUBECONFIG, no ~/.kube/config (give --kubeconfig, or use --endpoints)",
        );
      }
      kc.loadFromDefault();
    }
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`kubeconfig${path ? ` ${path}` : ""}: ${(e as Error).message}`);
  }
  if (!kc.getCurrentCluster()) throw new ConfigError(`kubeconfig${path ? ` ${path}` : ""}: no current cluster`);
  return kc;
}

/**
 * --pool-namespace, else $POD_NAMESPACE, $NAMESPACE (what GIE's EPP reads; its chart sets it from the pod's
 * namespace), the in-cluster namespace, the kubeconfig context's, "default".
 */
export function defaultNamespace(
  kc: KubeConfig,
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (flag) return flag;
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  if (env.NAMESPACE) return env.NAMESPACE;
  try {
    const ns = readFileSync(IN_CLUSTER_NAMESPACE_FILE, "utf8").trim();
    if (ns) return ns;
  } catch {
    // not in a cluster
  }
  return kc.getContextObject(kc.getCurrentContext())?.namespace || "default";
}

export type KubePoolMode =
  | { kind: "inference-pool"; name: string; group: PoolGroup }
  | { kind: "selector"; selector: Record<string, string>; targetPorts: number[] };

export interface KubePoolOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  mode: KubePoolMode;
  log: Logger;
  onWatchRestart?: (resource: string) => void;
  retryInitialMs?: number;
  retryMaxMs?: number;
}

/** A Watch whose failures before the request (credentials) reach `done` like any other watch error. */
class SafeWatch extends Watch {
  override async watch(...[path, queryParams, callback, done]: Parameters<Watch["watch"]>): Promise<AbortController> {
    try {
      return await super.watch(path, queryParams, callback, done);
    } catch (e) {
      done(e);
      return new AbortController();
    }
  }
}

/** One ListWatch kept alive across errors. */
export class ResilientInformer<T extends KubernetesObject> {
  private informer: ListWatch<T>;
  private stopped = false;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private listedOnce = false;
  private firstList: Promise<void>;
  private resolveFirstList!: () => void;

  constructor(
    private readonly resource: string,
    kc: KubeConfig,
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
    labelSelector: string | undefined,
    fieldSelector: string | undefined,
    onChange: () => void,
    private readonly opts: {
      log: Logger;
      retryInitialMs: number;
      retryMaxMs: number;
      onRestart?: (resource: string) => void;
    },
  ) {
    this.retryMs = opts.retryInitialMs;
    this.firstList = new Promise((resolve) => (this.resolveFirstList = resolve));
    const listAndMark = async () => {
      const result = await list();
      this.retryMs = opts.retryInitialMs;
      if (!this.listedOnce) {
        this.listedOnce = true;
        // The informer fills its cache in the continuation of this promise; report after that has run.
        setImmediate(() => {
          onChange();
          this.resolveFirstList();
        });
      }
      return result;
    };
    this.informer = new ListWatch<T>(path, new SafeWatch(kc), listAndMark, false, labelSelector, fieldSelector);
    const changed = () => {
      this.retryMs = opts.retryInitialMs;
      onChange();
    };
    this.informer.on("add", changed);
    this.informer.on("update", changed);
    this.informer.on("delete", changed);
    this.informer.on("error", (err: unknown) => this.restartLater(err));
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.retryTimer) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.opts.retryMaxMs, this.retryMs * 2);
    const e = err as { message?: string; statusCode?: number; code?: unknown };
    const status = e?.statusCode ?? (typeof e?.code === "number" ? e.code : undefined);
    const hint =
      status === 404 && this.resource === "inferencepools"
        ? "the cluster does not serve this InferencePool API version (CRD not installed? see --pool-group)"
        : status === 401 || status === 403
          ? "check the service account's RBAC (get, list, watch)"
          : undefined;
    this.opts.log.warn("kubernetes list/watch failed; restarting", {
      resource: this.resource,
      error: e?.message ?? String(err),
      status,
      hint,
      retryInMs: delay,
    });
    this.opts.onRestart?.(this.resource);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.startInformer();
    }, delay);
  }

  private startInformer(): void {
    this.informer.start().catch((e: unknown) => this.restartLater(e));
  }

  /** Starts listing and watching; resolves after the first successful list (retrying until then). */
  async start(): Promise<void> {
    this.startInformer();
    await this.firstList;
  }

  get synced(): boolean {
    return this.listedOnce;
  }

  list(): readonly T[] {
    return this.informer.list();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    void this.informer.stop();
    this.resolveFirstList();
  }
}

export class KubePool implements PoolSource {
  readonly description: string;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private poolInformer: ResilientInformer<KubernetesObject> | null = null;
  private podInformer: ResilientInformer<KubernetesObject> | null = null;
  private spec: PoolSpec | null = null;
  /** Why the InferencePool's current spec is not usable (null when it is, or when there is no pool). */
  private specError: string | null = null;
  private onChange: (targets: PoolTarget[]) => void = () => {};
  private lastEmitted = "";
  private stopped = false;
  private applying: Promise<void> = Promise.resolve();
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;

  constructor(private readonly opts: KubePoolOptions) {
    const kc = opts.kubeConfig;
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.retryInitialMs = opts.retryInitialMs ?? 500;
    this.retryMaxMs = opts.retryMaxMs ?? 30_000;
    const m = opts.mode;
    this.description =
      m.kind === "inference-pool"
        ? `InferencePool ${opts.namespace}/${m.name} (${m.group}/${POOL_GROUPS[m.group]})`
        : `pods ${selectorString(m.selector)} in ${opts.namespace}, ports ${m.targetPorts.join(",")}`;
  }

  async start(onChange: (targets: PoolTarget[]) => void): Promise<void> {
    this.onChange = onChange;
    const m = this.opts.mode;
    if (m.kind === "selector") {
      this.spec = { selector: m.selector, targetPorts: m.targetPorts };
      await this.watchPods(this.spec.selector);
      return;
    }
    const version = POOL_GROUPS[m.group];
    const fieldSelector = `metadata.name=${m.name}`;
    this.poolInformer = new ResilientInformer<KubernetesObject>(
      "inferencepools",
      this.opts.kubeConfig,
      `/apis/${m.group}/${version}/namespaces/${this.opts.namespace}/inferencepools`,
      () =>
        this.custom.listNamespacedCustomObject({
          group: m.group,
          version,
          namespace: this.opts.namespace,
          plural: "inferencepools",
          fieldSelector,
        }),
      undefined,
      fieldSelector,
      () => void this.poolChanged(),
      this.informerOpts(),
    );
    await this.poolInformer.start();
    // The pool's first list is in (and queued a pool change); if it names a pool, its pods' first list too.
    await this.applying;
  }

  private informerOpts() {
    return {
      log: this.opts.log,
      retryInitialMs: this.retryInitialMs,
      retryMaxMs: this.retryMaxMs,
      onRestart: this.opts.onWatchRestart,
    };
  }

  /** Pool changes are applied one at a time, in order (each may restart the pod watch). */
  private poolChanged(): Promise<void> {
    this.applying = this.applying.then(() => this.applyPool());
    return this.applying;
  }

  private async applyPool(): Promise<void> {
    if (this.stopped || this.opts.mode.kind !== "inference-pool") return;
    const mode = this.opts.mode;
    const pool = this.poolInformer?.list().find((p) => p.metadata?.name === mode.name);
    if (!pool) {
      if (this.spec)
        this.opts.log.warn("InferencePool not found; the pool is empty until it exists", {
          pool: `${this.opts.namespace}/${mode.name}`,
        });
      this.spec = null;
      this.specError = null;
      this.stopPods();
      this.emit();
      return;
    }
    let spec: PoolSpec;
    try {
      spec = parseInferencePool(pool, POOL_GROUPS[mode.group]);
    } catch (e) {
      this.specError = (e as Error).message;
      this.opts.log.error(
        this.spec
          ? "InferencePool spec is not usable; keeping the previous one"
          : "InferencePool spec is not usable; the pool is empty until it is fixed",
        { pool: `${this.opts.namespace}/${mode.name}`, error: this.specError },
      );
      return;
    }
    this.specError = null;
    const selectorChanged = !this.spec || selectorString(this.spec.selector) !== selectorString(spec.selector);
    this.spec = spec;
    if (selectorChanged) {
      this.opts.log.info("InferencePool selects pods", {
        selector: selectorString(spec.selector),
        ports: spec.targetPorts,
      });
      await this.watchPods(spec.selector);
    } else {
      this.emit(); // ports may have changed
    }
  }

  private stopPods(): void {
    this.podInformer?.stop();
    this.podInformer = null;
  }

  private async watchPods(selector: Record<string, string>): Promise<void> {
    this.stopPods();
    const labelSelector = selectorString(selector);
    const ns = this.opts.namespace;
    const informer = new ResilientInformer<KubernetesObject>(
      "pods",
      this.opts.kubeConfig,
      `/api/v1/namespaces/${ns}/pods`,
      () =>
        this.core.listNamespacedPod({ namespace: ns, labelSelector }) as Promise<
          KubernetesListObject<KubernetesObject>
        >,
      labelSelector,
      undefined,
      () => {
        if (this.podInformer === informer) this.emit();
      },
      this.informerOpts(),
    );
    this.podInformer = informer;
    await informer.start();
  }

  problem(): string | null {
    if (this.opts.mode.kind === "inference-pool" && this.poolInformer?.synced && this.spec === null) {
      const pool = `InferencePool ${this.opts.namespace}/${this.opts.mode.name}`;
      return this.specError !== null ? `${pool} has an unusable spec: ${this.specError}` : `${pool} not found`;
    }
    return null;
  }

  /** True once the pool (if any) and its pods have been listed. */
  get synced(): boolean {
    if (this.opts.mode.kind === "inference-pool" && !this.poolInformer?.synced) return false;
    return this.spec === null || Boolean(this.podInformer?.synced);
  }

  private emit(): void {
    if (this.stopped) return;
    const targets: PoolTarget[] = [];
    if (this.spec && this.podInformer?.synced) {
      for (const pod of this.podInformer.list()) targets.push(...podTargets(pod as PodLike, this.spec.targetPorts));
    }
    targets.sort(byAddress);
    const key = JSON.stringify(targets);
    if (key === this.lastEmitted) return;
    this.lastEmitted = key;
    this.onChange(targets);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.poolInformer?.stop();
    this.stopPods();
  }
}
