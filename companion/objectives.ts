// InferenceObjective resources: the priorities of the objectives a request names in its
// x-llm-d-inference-objective (or x-gateway-inference-objective) header. Both API groups are watched: GIE's
// inference.networking.x-k8s.io/v1alpha2 and llm-d-router's llm-d.ai/v1alpha2 (where the EPP moved them in
// 2026); an objective counts for this pool when its spec.poolRef names the pool. The filter reads the
// priorities from the snapshot; a negative priority makes a request sheddable (docs/FILTER.md).
//
// Either CRD may be absent: a list answered 404 is checked again every CRD_RECHECK_MS with one log line,
// and never holds up the pool's discovery.
import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { ResilientInformer } from "./kube-pool";
import type { Logger } from "./log";

/** The groups InferenceObjective is served in, with their version; the first wins for a name in both. */
export const OBJECTIVE_GROUPS = [
  { group: "llm-d.ai", version: "v1alpha2" },
  { group: "inference.networking.x-k8s.io", version: "v1alpha2" },
] as const;
const CRD_RECHECK_MS = 60_000;

export interface Objective {
  name: string;
  priority: number;
}

interface ObjectiveObject extends KubernetesObject {
  spec?: { priority?: unknown; poolRef?: { name?: unknown; group?: unknown; kind?: unknown } };
}

/**
 * The objectives of `objects` for pool `pool`: priority an integer (absent: 0, as GIE and llm-d-router);
 * others are skipped with `skipped` called once per object.
 */
export function objectivesOf(
  objects: readonly ObjectiveObject[],
  pool: string,
  skipped: (name: string, why: string) => void = () => {},
): Objective[] {
  const out: Objective[] = [];
  for (const o of objects) {
    const name = o.metadata?.name;
    if (!name) continue;
    const ref = o.spec?.poolRef;
    if (!ref || ref.name !== pool) continue;
    if (ref.kind !== undefined && ref.kind !== "InferencePool") continue;
    const p = o.spec?.priority ?? 0;
    if (typeof p !== "number" || !Number.isInteger(p) || p < -2147483648 || p > 2147483647) {
      skipped(name, `spec.priority ${JSON.stringify(p)} is not a 32-bit integer`);
      continue;
    }
    out.push({ name, priority: p });
  }
  return out;
}

export class ObjectiveWatcher {
  private informers: Array<ResilientInformer<ObjectiveObject> | null> = OBJECTIVE_GROUPS.map(() => null);
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private readonly custom: CustomObjectsApi;
  private last = "";

  constructor(
    private readonly kc: KubeConfig,
    private readonly namespace: string,
    private readonly pool: string,
    private readonly log: Logger,
    private readonly onChange: (objectives: Objective[]) => void,
    private readonly opts: { retryInitialMs: number; retryMaxMs: number; recheckMs?: number } = {
      retryInitialMs: 500,
      retryMaxMs: 30_000,
    },
  ) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  /** Starts watching; returns at once (objectives arrive through onChange). */
  start(): void {
    OBJECTIVE_GROUPS.forEach((_, i) => void this.probe(i, true));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const inf of this.informers) inf?.stop();
  }

  /** The merged objectives now, sorted by name (what the snapshot carries). */
  objectives(): Objective[] {
    const byName = new Map<string, Objective>();
    this.informers.forEach((inf) => {
      if (!inf) return;
      for (const o of objectivesOf(inf.list(), this.pool, (name, why) => this.skip(name, why)))
        if (!byName.has(o.name)) byName.set(o.name, o);
    });
    return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private skipLogged = new Set<string>();
  private skip(name: string, why: string): void {
    const key = `${name}: ${why}`;
    if (this.skipLogged.has(key)) return;
    this.skipLogged.add(key);
    this.log.warn("InferenceObjective skipped", { objective: name, reason: why });
  }

  private list(i: number) {
    const { group, version } = OBJECTIVE_GROUPS[i];
    return this.custom.listNamespacedCustomObject({
      group,
      version,
      namespace: this.namespace,
      plural: "inferenceobjectives",
    }) as Promise<{ items: ObjectiveObject[]; metadata?: { resourceVersion?: string } }>;
  }

  /** Lists once: a 404 (CRD not installed) is checked again later; anything else starts the informer. */
  private async probe(i: number, first: boolean): Promise<void> {
    if (this.stopped) return;
    const { group, version } = OBJECTIVE_GROUPS[i];
    try {
      await this.list(i);
    } catch (e) {
      const status = (e as { code?: unknown; statusCode?: number }).statusCode ?? (e as { code?: unknown }).code;
      if (status === 404) {
        if (first)
          this.log.info("InferenceObjective API not served; its objectives are unused until it is", {
            apiVersion: `${group}/${version}`,
            recheckMs: this.opts.recheckMs ?? CRD_RECHECK_MS,
          });
        this.timers.push(setTimeout(() => void this.probe(i, false), this.opts.recheckMs ?? CRD_RECHECK_MS));
        return;
      }
      // Another failure (RBAC, the API server away): the informer retries and logs it.
    }
    if (this.stopped) return;
    const inf = new ResilientInformer<ObjectiveObject>(
      "inferenceobjectives",
      this.kc,
      `/apis/${group}/${version}/namespaces/${this.namespace}/inferenceobjectives`,
      () => this.list(i) as never,
      undefined,
      undefined,
      () => this.changed(),
      { log: this.log, ...this.opts },
    );
    this.informers[i] = inf;
    void inf.start();
  }

  private changed(): void {
    const now = this.objectives();
    const key = JSON.stringify(now);
    if (key === this.last) return;
    this.last = key;
    this.log.info("inference objectives", { objectives: now.length });
    this.onChange(now);
  }
}
