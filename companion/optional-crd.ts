// A watch of an optional custom resource served under several API groups (llm-d-router's llm-d.ai and
// GIE's inference.networking.x-k8s.io), for the InferenceObjective and InferenceModelRewrite watchers.
// Either CRD may be absent: a list answered 404 is checked again every `recheckMs` with one log line, and
// never holds up the pool's discovery; any other failure is the informer's to retry and log.
import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { ResilientInformer } from "./kube-pool";
import type { Logger } from "./log";

const CRD_RECHECK_MS = 60_000;

export interface OptionalCrd {
  /** e.g. "InferenceObjective" (log lines). */
  kind: string;
  /** e.g. "inferenceobjectives". */
  plural: string;
  /** The API groups and versions, in precedence order. */
  groups: ReadonlyArray<{ group: string; version: string }>;
}

export interface OptionalCrdOptions {
  retryInitialMs: number;
  retryMaxMs: number;
  recheckMs?: number;
}

export class OptionalCrdWatch<T extends KubernetesObject, R> {
  private informers: Array<ResilientInformer<T> | null>;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private readonly custom: CustomObjectsApi;
  private last = "";

  /**
   * `compute` turns the objects of each group (in the groups' order) into the result; `onChange` gets the
   * result whenever it differs from the last one.
   */
  constructor(
    private readonly crd: OptionalCrd,
    private readonly kc: KubeConfig,
    private readonly namespace: string,
    private readonly log: Logger,
    private readonly compute: (byGroup: ReadonlyArray<readonly T[]>) => R,
    private readonly onChange: (result: R) => void,
    private readonly opts: OptionalCrdOptions = { retryInitialMs: 500, retryMaxMs: 30_000 },
  ) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.informers = crd.groups.map(() => null);
  }

  /** Starts watching; returns at once (results arrive through onChange). */
  start(): void {
    this.crd.groups.forEach((_, i) => void this.probe(i, true));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const inf of this.informers) inf?.stop();
  }

  /** The result for the objects listed now. */
  current(): R {
    return this.compute(this.informers.map((inf) => (inf ? inf.list() : [])));
  }

  private list(i: number) {
    const { group, version } = this.crd.groups[i];
    return this.custom.listNamespacedCustomObject({
      group,
      version,
      namespace: this.namespace,
      plural: this.crd.plural,
    }) as Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
  }

  /** Lists once: a 404 (CRD not installed) is checked again later; anything else starts the informer. */
  private async probe(i: number, first: boolean): Promise<void> {
    if (this.stopped) return;
    const { group, version } = this.crd.groups[i];
    const recheckMs = this.opts.recheckMs ?? CRD_RECHECK_MS;
    try {
      await this.list(i);
    } catch (e) {
      const status = (e as { code?: unknown; statusCode?: number }).statusCode ?? (e as { code?: unknown }).code;
      if (status === 404) {
        if (first)
          this.log.info(`${this.crd.kind} API not served; its resources are unused until it is`, {
            apiVersion: `${group}/${version}`,
            recheckMs,
          });
        this.timers.push(setTimeout(() => void this.probe(i, false), recheckMs));
        return;
      }
      // Another failure (RBAC, the API server away): the informer retries and logs it.
    }
    if (this.stopped) return;
    const inf = new ResilientInformer<T>(
      this.crd.plural,
      this.kc,
      `/apis/${group}/${version}/namespaces/${this.namespace}/${this.crd.plural}`,
      () => this.list(i) as never,
      undefined,
      undefined,
      () => this.changed(),
      { log: this.log, retryInitialMs: this.opts.retryInitialMs, retryMaxMs: this.opts.retryMaxMs },
    );
    this.informers[i] = inf;
    void inf.start();
  }

  private changed(): void {
    const now = this.current();
    const key = JSON.stringify(now);
    if (key === this.last) return;
    this.last = key;
    this.log.info(`${this.crd.kind} resources changed`, { count: Array.isArray(now) ? now.length : undefined });
    this.onChange(now);
  }
}
