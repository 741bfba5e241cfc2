// InferenceObjective resources: the priorities of the objectives a request names in its
// x-llm-d-inference-objective (or x-gateway-inference-objective) header. Both API groups are watched: GIE's
// inference.networking.x-k8s.io/v1alpha2 and llm-d-router's llm-d.ai/v1alpha2 (where the EPP moved them in
// 2026); an objective counts for this pool when its spec.poolRef names the pool. The filter reads the
// priorities from the snapshot; a negative priority makes a request sheddable (docs/FILTER.md).
// Either CRD may be absent (companion/optional-crd.ts).
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "./log";
import { OptionalCrdWatch, type OptionalCrdOptions } from "./optional-crd";

/** The groups InferenceObjective is served in, with their version; the first wins for a name in both. */
export const OBJECTIVE_GROUPS = [
  { group: "llm-d.ai", version: "v1alpha2" },
  { group: "inference.networking.x-k8s.io", version: "v1alpha2" },
] as const;

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
  private readonly watch: OptionalCrdWatch<ObjectiveObject, Objective[]>;
  private skipLogged = new Set<string>();

  constructor(
    kc: KubeConfig,
    namespace: string,
    private readonly pool: string,
    private readonly log: Logger,
    onChange: (objectives: Objective[]) => void,
    opts?: OptionalCrdOptions,
  ) {
    this.watch = new OptionalCrdWatch(
      { kind: "InferenceObjective", plural: "inferenceobjectives", groups: OBJECTIVE_GROUPS },
      kc,
      namespace,
      log,
      (byGroup) => this.merge(byGroup),
      onChange,
      opts,
    );
  }

  /** Starts watching; returns at once (objectives arrive through onChange). */
  start(): void {
    this.watch.start();
  }

  stop(): void {
    this.watch.stop();
  }

  /** The merged objectives now, sorted by name (what the snapshot carries). */
  objectives(): Objective[] {
    return this.watch.current();
  }

  /** This pool's objectives of each group; the first group wins a name. */
  private merge(byGroup: ReadonlyArray<readonly ObjectiveObject[]>): Objective[] {
    const byName = new Map<string, Objective>();
    for (const objects of byGroup)
      for (const o of objectivesOf(objects, this.pool, (name, why) => this.skip(name, why)))
        if (!byName.has(o.name)) byName.set(o.name, o);
    return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private skip(name: string, why: string): void {
    const key = `${name}: ${why}`;
    if (this.skipLogged.has(key)) return;
    this.skipLogged.add(key);
    this.log.warn("InferenceObjective skipped", { objective: name, reason: why });
  }
}
