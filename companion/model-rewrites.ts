// InferenceModelRewrite resources: rules that rewrite a request's `model` by weighted choice (canaries, A/B
// tests), as llm-d-router's EPP applies them. Both API groups are watched: llm-d-router's llm-d.ai/v1alpha2
// and inference.networking.x-k8s.io/v1alpha2 (older GIE releases); a rewrite counts for this pool when its
// spec.poolRef names the pool. The companion resolves what llm-d-router decides per request into one
// ordered rule list the filter walks (first match wins), carried in snapshot section 5 (docs/SNAPSHOT.md):
//
// - precedence (llm-d-router pkg/epp/datastore/modelrewritestore.go): rules with an Exact model match come
//   before rules without matches (which match every request); within each kind, the rules of the oldest
//   object (creationTimestamp) first, then the object name, then the rule's place in spec.rules;
// - weights (pkg/epp/requestcontrol/director.go, selectWeightedModel): a target is chosen with probability
//   weight / the sum of the weights set; a target without a weight counts 0 when another one has a weight;
//   when no target has a weight (or they sum to 0) every target is equally likely.
//
// Either CRD may be absent (companion/optional-crd.ts).
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "./log";
import { OptionalCrdWatch, type OptionalCrdOptions } from "./optional-crd";
import {
  MAX_REWRITE_MATCHES,
  MAX_REWRITE_RULES,
  MAX_REWRITE_TARGETS,
  MAX_REWRITE_WEIGHT,
  type ModelRewriteRule,
} from "./snapshot";

/** The groups InferenceModelRewrite is served in, with their version; the first wins for a name in both. */
export const REWRITE_GROUPS = [
  { group: "llm-d.ai", version: "v1alpha2" },
  { group: "inference.networking.x-k8s.io", version: "v1alpha2" },
] as const;
/** spec.poolRef.group when absent (the CRD's default). */
const DEFAULT_POOL_GROUP = "inference.networking.k8s.io";
/** Model names the filter can match or write: 1..256 bytes (the filter reads models of at most 256 bytes). */
export const MAX_REWRITE_NAME_BYTES = 256;

export type { ModelRewriteRule };

interface RewriteObject extends KubernetesObject {
  spec?: {
    poolRef?: { name?: unknown; group?: unknown; kind?: unknown };
    rules?: unknown;
  };
}

/** Why a model name cannot be used: the filter matches and writes raw JSON string bytes, without escapes. */
function badName(name: unknown): string | null {
  if (typeof name !== "string" || name === "") return "not a non-empty string";
  if (Buffer.byteLength(name) > MAX_REWRITE_NAME_BYTES) return `longer than ${MAX_REWRITE_NAME_BYTES} bytes`;
  // A JSON string needs these escaped; the filter never reads an escaped model and writes names verbatim.
  if (/["\\\u0000-\u001f]/.test(name)) return "has a character JSON must escape";
  return null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function createdMs(o: KubernetesObject): number {
  const t = o.metadata?.creationTimestamp as unknown;
  const ms = t instanceof Date ? t.getTime() : typeof t === "string" ? Date.parse(t) : NaN;
  return Number.isFinite(ms) ? ms : Number.MAX_SAFE_INTEGER; // unknown: the youngest
}

/** The targets of one rule with their weights resolved as llm-d-router's selectWeightedModel draws them. */
function resolveTargets(raw: unknown, where: string, skipped: (why: string) => void): ModelRewriteRule["targets"] {
  const list = Array.isArray(raw) ? raw : [];
  const kept: Array<{ model: string; weight: number | null }> = [];
  list.forEach((t, k) => {
    const model = isObject(t) ? t.modelRewrite : undefined;
    const bad = badName(model);
    if (bad) return skipped(`${where}.targets[${k}].modelRewrite ${JSON.stringify(model)} ${bad} (target left out)`);
    const w = isObject(t) ? t.weight : undefined;
    let weight: number | null = null;
    if (typeof w === "number" && Number.isFinite(w)) weight = Math.min(MAX_REWRITE_WEIGHT, Math.max(0, Math.floor(w)));
    else if (w !== undefined && w !== null)
      skipped(`${where}.targets[${k}].weight ${JSON.stringify(w)} is not a number (taken as unset)`);
    kept.push({ model: model as string, weight });
  });
  if (kept.length > MAX_REWRITE_TARGETS) {
    skipped(`${where}: ${kept.length} targets, only the first ${MAX_REWRITE_TARGETS} are used`);
    kept.length = MAX_REWRITE_TARGETS;
  }
  const total = kept.reduce((sum, t) => sum + (t.weight ?? 0), 0);
  // No weight set (or all 0): every target equally likely. Otherwise a target without a weight is never chosen.
  return kept.map((t) => ({ model: t.model, weight: total === 0 ? 1 : (t.weight ?? 0) }));
}

interface Ranked {
  rule: ModelRewriteRule;
  generic: boolean;
  created: number;
  name: string;
  index: number;
}

/**
 * The rewrite rules of `objects` for pool `pool` (of API group `poolGroup`), in the order the filter walks
 * them: exact-match rules, then match-all rules, each by object age, object name, place in the object.
 * What cannot be used is left out with `skipped` called (once per reason and object is the caller's job).
 */
export function rewriteRulesOf(
  objects: readonly RewriteObject[],
  pool: string,
  poolGroup: string,
  skipped: (name: string, why: string) => void = () => {},
): { rules: ModelRewriteRule[]; dropped: number } {
  const ranked: Ranked[] = [];
  for (const o of objects) {
    const name = o.metadata?.name;
    if (!name) continue;
    const ref = o.spec?.poolRef;
    if (!ref || ref.name !== pool) continue;
    if (ref.kind !== undefined && ref.kind !== "InferencePool") continue;
    const group = ref.group === undefined || ref.group === "" ? DEFAULT_POOL_GROUP : ref.group;
    if (group !== poolGroup) {
      skipped(name, `spec.poolRef.group ${JSON.stringify(group)} is not the pool's group ${poolGroup}`);
      continue;
    }
    const rules = o.spec?.rules;
    if (!Array.isArray(rules)) {
      skipped(name, "spec.rules is not a list");
      continue;
    }
    const created = createdMs(o);
    rules.forEach((r: unknown, index) => {
      const where = `spec.rules[${index}]`;
      const rawMatches = isObject(r) && Array.isArray(r.matches) ? r.matches : [];
      const matches: string[] = [];
      rawMatches.forEach((m: unknown, k) => {
        const model = isObject(m) && isObject(m.model) ? m.model : null;
        const type = model?.type ?? "Exact";
        if (type !== "Exact")
          return skipped(name, `${where}.matches[${k}]: match type ${JSON.stringify(type)} unknown`);
        const bad = badName(model?.value);
        if (bad) return skipped(name, `${where}.matches[${k}].model.value ${JSON.stringify(model?.value)} ${bad}`);
        if (!matches.includes(model!.value as string)) matches.push(model!.value as string);
      });
      if (rawMatches.length > 0 && matches.length === 0) {
        // Not a match-all rule: one whose matches are all unusable matches nothing.
        skipped(name, `${where}: no usable match (rule left out)`);
        return;
      }
      if (matches.length > MAX_REWRITE_MATCHES) {
        skipped(name, `${where}: ${matches.length} matches, only the first ${MAX_REWRITE_MATCHES} are used`);
        matches.length = MAX_REWRITE_MATCHES;
      }
      const targets = resolveTargets(isObject(r) ? r.targets : undefined, where, (why) => skipped(name, why));
      if (targets.length === 0)
        skipped(name, `${where}: no usable target (a request it matches keeps its model; llm-d-router answers 400)`);
      ranked.push({ rule: { matches, targets }, generic: matches.length === 0, created, name, index });
    });
  }
  ranked.sort(
    (a, b) =>
      Number(a.generic) - Number(b.generic) ||
      a.created - b.created ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) ||
      a.index - b.index,
  );
  const dropped = Math.max(0, ranked.length - MAX_REWRITE_RULES);
  return { rules: ranked.slice(0, MAX_REWRITE_RULES).map((r) => r.rule), dropped };
}

export class ModelRewriteWatcher {
  private readonly watch: OptionalCrdWatch<RewriteObject, ModelRewriteRule[]>;
  private skipLogged = new Set<string>();

  constructor(
    kc: KubeConfig,
    namespace: string,
    private readonly pool: string,
    private readonly poolGroup: string,
    private readonly log: Logger,
    onChange: (rules: ModelRewriteRule[]) => void,
    opts?: OptionalCrdOptions,
  ) {
    this.watch = new OptionalCrdWatch(
      { kind: "InferenceModelRewrite", plural: "inferencemodelrewrites", groups: REWRITE_GROUPS },
      kc,
      namespace,
      log,
      (byGroup) => this.merge(byGroup),
      onChange,
      opts,
    );
  }

  /** Starts watching; returns at once (rules arrive through onChange). */
  start(): void {
    this.watch.start();
  }

  stop(): void {
    this.watch.stop();
  }

  /** The merged rules now, in precedence order (what the snapshot carries). */
  rules(): ModelRewriteRule[] {
    return this.watch.current();
  }

  /** The objects of every group (the first group wins a name), resolved into ordered rules. */
  private merge(byGroup: ReadonlyArray<readonly RewriteObject[]>): ModelRewriteRule[] {
    const byName = new Map<string, RewriteObject>();
    for (const objects of byGroup)
      for (const o of objects) {
        const name = o.metadata?.name;
        if (name && !byName.has(name)) byName.set(name, o);
      }
    const { rules, dropped } = rewriteRulesOf([...byName.values()], this.pool, this.poolGroup, (name, why) =>
      this.skip(name, why),
    );
    if (dropped > 0)
      this.skip("*", `${rules.length + dropped} rules; the ${dropped} of lowest precedence are left out`);
    return rules;
  }

  private skip(name: string, why: string): void {
    const key = `${name}: ${why}`;
    if (this.skipLogged.has(key)) return;
    this.skipLogged.add(key);
    this.log.warn("InferenceModelRewrite: part left out", { rewrite: name, reason: why });
  }
}
