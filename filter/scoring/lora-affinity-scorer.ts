// lora-affinity-scorer (GIE): for a request naming a LoRA adapter, an endpoint running it scores 1.0, one
// with a free adapter slot 0.8, one where it waits for a slot 0.6, else 0. Ours on top:
// - the proxy's own adapter requests in flight (filter/adapters.ts) correct the lagging metrics;
// - a filter before scoring: an endpoint where every slot is held by other adapters in use is no choice
//   while another can run the adapter, and endpoints already running it, within a load slack of the least
//   busy, come before any that would have to load it. Weights alone let load spread an adapter over every
//   free slot until none is left for the next one, whose requests then wait for a busy adapter to drain.
// Requests for the base model get no LoRA term: every endpoint serves it alike.
import { ScorerPlugin, Profile, DecisionState, RequestFacts } from "./plugin";
import { Snapshot, FLAG_LORA } from "../snapshot";

export const LORA_ACTIVE: f64 = 1.0;
export const LORA_FREE_SLOT: f64 = 0.8;
export const LORA_WAITING: f64 = 0.6;
/** An endpoint whose engine reports no LoRA state is assumed able to load the adapter. */
export const LORA_UNKNOWN: f64 = LORA_FREE_SLOT;
/** Outstanding requests above the least busy endpoint within which an endpoint running the adapter comes first. */
const SLACK_ABS: f64 = 8;
const SLACK_REL: f64 = 0.25;
const MAX_CACHED_MODELS = 64;

export class LoraAffinityScorer extends ScorerPlugin {
  join(profile: Profile): void {
    profile.loraWeight += this.weight;
  }
}

/** GIE's LoRA affinity of endpoint `i` for the request's model. */
export function loraScore(snap: Snapshot, i: i32, req: RequestFacts): f64 {
  if ((unchecked(snap.flags[i]) & FLAG_LORA) == 0) return LORA_UNKNOWN;
  const start = unchecked(snap.runStart[i]);
  const running = unchecked(snap.runCount[i]);
  const waiting = unchecked(snap.waitCount[i]);
  for (let a = start; a < start + running; a++) if (adapterIs(snap, a, req)) return LORA_ACTIVE;
  const slots = unchecked(snap.loraMax[i]);
  if (slots <= 0) return LORA_UNKNOWN; // no max_lora label: whether a slot is free is unknown
  if (running + waiting < slots) return LORA_FREE_SLOT;
  for (let a = start + running; a < start + running + waiting; a++) if (adapterIs(snap, a, req)) return LORA_WAITING;
  return 0;
}

function adapterIs(snap: Snapshot, a: i32, req: RequestFacts): bool {
  if (unchecked(snap.adapterHash[a]) != req.modelHash || unchecked(snap.adapterLen[a]) != req.modelLen) return false;
  return memory.compare(snap.base + <usize>unchecked(snap.adapterOff[a]), req.modelPtr, <usize>req.modelLen) == 0;
}

/** The LoRA terms and filter of one decision; keeps per-model terms for the current snapshot. */
export class LoraAffinity {
  /** Weighted terms per endpoint for the current request (null: it names no adapter). */
  terms: StaticArray<f64> | null = null;
  /** The filter: some candidate can run the adapter (others are excluded) / runs it within the slack. */
  admitLoadable: bool = false;
  admitRunning: bool = false;
  slack: f64 = 0;
  activeScore: f64 = 0;
  private byModel: Map<u32, StaticArray<f64>> = new Map();
  private corrected: StaticArray<f64> = new StaticArray<f64>(0);

  /** A new snapshot: cached terms are dropped. */
  reset(snap: Snapshot): void {
    this.byModel.clear();
    this.corrected = new StaticArray<f64>(snap.count);
  }

  /** Computes `terms` and the filter for the request in `d` (after the decision's load pass). */
  apply(d: DecisionState): void {
    this.terms = null;
    this.admitLoadable = false;
    this.admitRunning = false;
    const snap = d.snapshot!,
      req = d.facts,
      w = d.profile.loraWeight;
    if (w <= 0 || !snap.anyLora || req.modelLen == 0 || !snap.namesAdapter(req.modelHash)) return;
    let terms = this.cached(d);
    const adapters = req.adapters;
    if (adapters != null && adapters.touched.length > 0) {
      const out = this.corrected;
      memory.copy(changetype<usize>(out), changetype<usize>(terms), <usize>(terms.length << 3));
      for (let t = 0; t < adapters.touched.length; t++) {
        const i = unchecked(adapters.touched[t]);
        if (i < out.length) unchecked((out[i] = this.current(snap, i, req, w, unchecked(terms[i]))));
      }
      terms = out;
    }
    this.terms = terms;
    // Running-first applies to adapters some endpoint lists; a name known only as "not a base model" may be
    // an alias of the base model (vLLM labels its metrics with the first --served-model-name only), and
    // concentrating those requests would only pile them onto one pod.
    this.activeScore = w * LORA_ACTIVE;
    this.slack = SLACK_ABS + SLACK_REL * d.minOutstanding;
    const listed = snap.isAdapter(req.modelHash);
    for (let k = 0; k < d.candidateCount; k++) {
      const i = unchecked(d.candidates[k]);
      const l = unchecked(terms[i]);
      if (l > 0) this.admitLoadable = true;
      if (listed && l >= this.activeScore && unchecked(d.outstanding[i]) - d.minOutstanding <= this.slack) {
        this.admitRunning = true;
        break;
      }
    }
  }

  /** Whether the filter excludes an endpoint with this term and outstanding load. */
  // @ts-ignore: decorator
  @inline excludes(term: f64, busy: f64, minLoad: f64): bool {
    if (!this.admitLoadable) return false;
    return this.admitRunning ? term < this.activeScore || busy - minLoad > this.slack : term <= 0;
  }

  private cached(d: DecisionState): StaticArray<f64> {
    const req = d.facts;
    if (this.byModel.has(req.modelHash)) return this.byModel.get(req.modelHash);
    const snap = d.snapshot!,
      w = d.profile.loraWeight;
    const out = new StaticArray<f64>(snap.count);
    for (let k = 0; k < d.candidateCount; k++) {
      const i = unchecked(d.candidates[k]);
      unchecked((out[i] = w * loraScore(snap, i, req)));
    }
    if (this.byModel.size >= MAX_CACHED_MODELS) this.byModel.clear();
    this.byModel.set(req.modelHash, out);
    return out;
  }

  /**
   * The term corrected by the proxy's requests in flight: the adapter in flight there = active; other
   * adapters in flight there that the metrics do not list yet hold slots too.
   */
  private current(snap: Snapshot, i: i32, req: RequestFacts, w: f64, cached: f64): f64 {
    if ((unchecked(snap.flags[i]) & FLAG_LORA) == 0) return cached;
    const adapters = req.adapters!;
    if (adapters.busy(i, req.modelHash)) return w * LORA_ACTIVE;
    if (unchecked(snap.loraMax[i]) <= 0) return cached; // slots unknown: nothing to count them against
    if (cached != w * LORA_FREE_SLOT) return cached;
    const used = unchecked(snap.runCount[i]) + unchecked(snap.waitCount[i]) + adapters.unlisted(i, snap);
    if (used < unchecked(snap.loraMax[i])) return cached;
    return snap.listsAdapter(i, req.modelHash) ? w * LORA_WAITING : 0;
  }
}
