// The decision: which endpoints may serve the request, how each scores under the snapshot's scheduling
// profile, and which one the picker takes. Pure computation over the snapshot and the request's facts
// (no host calls), so the specs can drive it directly.
import {
  Snapshot, FLAG_ERROR, FLAG_UNUSABLE, FLAG_STALE, FLAG_QUEUE, FLAG_RUNNING, FLAG_KV, FLAG_LORA,
  PICKER_RANDOM, PICKER_WEIGHTED_RANDOM,
} from "./snapshot";
import { InFlight } from "./inflight";
import { nextFloat, nextBelow } from "./rng";
import { AdapterLoad } from "./adapters";

export const OUTCOME_PICKED: i32 = 0;
export const OUTCOME_SHED: i32 = 1; // every endpoint saturated and the request is sheddable: 429
export const OUTCOME_NO_ENDPOINT: i32 = 2; // nothing can serve: 503

// LoRA affinity scores (GIE's lora-affinity-scorer, checked in this order).
export const LORA_ACTIVE: f64 = 1.0;
export const LORA_FREE_SLOT: f64 = 0.8;
export const LORA_WAITING: f64 = 0.6;
/** An endpoint whose engine reports no LoRA state is assumed able to load the adapter. */
export const LORA_UNKNOWN: f64 = LORA_FREE_SLOT;
/** KV usage assumed for an endpoint whose engine reports none (neither attractive nor repellent). */
const KV_UNKNOWN: f64 = 0.5;

/** What the filter knows of one request. */
export class RequestFacts {
  /** The `model` bytes (in wasm memory) and their FNV-1a hash; modelLen 0 = no model. */
  modelPtr: usize = 0;
  modelLen: i32 = 0;
  modelHash: u32 = 0;
  /** Prefix blocks of the request's prompt (0 = no prefix scoring) and, per endpoint, how many it matched. */
  chainBlocks: i32 = 0;
  matched: StaticArray<i32> = new StaticArray<i32>(0);
  /** Per endpoint, the prefix blocks the prefix index's current generation holds (what recording may skip). */
  matchedCurrent: StaticArray<i32> = new StaticArray<i32>(0);
  sheddable: bool = false;
  /** The proxy's requests in flight per (endpoint, adapter): slot use the metrics do not show yet. */
  adapters: AdapterLoad | null = null;
  nowMs: u64 = 0;
}

const MAX_CACHED_MODELS = 64;
/** Outstanding requests above the least busy endpoint that keep full prefix affinity: absolute + relative. */
const PREFIX_SLACK_ABS: f64 = 2;
const PREFIX_SLACK_REL: f64 = 0.25;
const PREFIX_SLACK_PER_BLOCK: f64 = 0.15;
const LOAD_SPAN_FLOOR: f64 = 4;
/** Outstanding requests above the least busy endpoint within which an endpoint running the adapter comes first. */
const LORA_SLACK_ABS: f64 = 8;
const LORA_SLACK_REL: f64 = 0.25;
/** The score of an endpoint a LoRA filter excludes (never picked while another is admitted). */
const EXCLUDED: f64 = -f64.MAX_VALUE;

export class Scorer {
  /** Per endpoint of the current snapshot; valid after `decide`. */
  scores: StaticArray<f64> = new StaticArray<f64>(0);
  waiting: StaticArray<f64> = new StaticArray<f64>(0);
  running: StaticArray<f64> = new StaticArray<f64>(0);
  outstanding: StaticArray<f64> = new StaticArray<f64>(0);
  /** The pick and the ordered fallbacks (endpoint indices). */
  primary: i32 = -1;
  fallbacks: i32[] = [];

  // Per snapshot (computed once per version): the candidates, and each one's KV term (static per snapshot).
  private prepared: Snapshot | null = null;
  private candidates: StaticArray<i32> = new StaticArray<i32>(0);
  private candidateCount: i32 = 0;
  private kvTerm: StaticArray<f64> = new StaticArray<f64>(0);
  private tied: StaticArray<i32> = new StaticArray<i32>(0);
  private loraNow: StaticArray<f64> = new StaticArray<f64>(0);
  private taken: StaticArray<bool> = new StaticArray<bool>(0);
  /** LoRA affinity per endpoint, by model hash, for the prepared snapshot (few models, many requests). */
  private loraByModel: Map<u32, StaticArray<f64>> = new Map();

  /** Candidates: never an endpoint in error or with an unusable address; stale ones only if nothing is fresh. */
  private prepare(snap: Snapshot): void {
    this.prepared = snap;
    const n = snap.count;
    this.scores = new StaticArray<f64>(n);
    this.waiting = new StaticArray<f64>(n);
    this.running = new StaticArray<f64>(n);
    this.outstanding = new StaticArray<f64>(n);
    this.kvTerm = new StaticArray<f64>(n);
    this.tied = new StaticArray<i32>(n);
    this.loraNow = new StaticArray<f64>(n);
    this.taken = new StaticArray<bool>(n);
    this.loraByModel.clear();
    const list = new StaticArray<i32>(n);
    let fresh = 0;
    for (let i = 0; i < n; i++) if ((unchecked(snap.flags[i]) & (FLAG_ERROR | FLAG_UNUSABLE | FLAG_STALE)) == 0) fresh++;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const f = unchecked(snap.flags[i]);
      if ((f & (FLAG_ERROR | FLAG_UNUSABLE)) != 0) continue;
      if (fresh > 0 && (f & FLAG_STALE) != 0) continue;
      unchecked(list[count++] = i);
      unchecked(this.kvTerm[i] = snap.profile.kvWeight * (1.0 - ((f & FLAG_KV) != 0 ? unchecked(snap.kv[i]) : KV_UNKNOWN)));
    }
    this.candidates = list;
    this.candidateCount = count;
  }

  private loraScores(snap: Snapshot, req: RequestFacts): StaticArray<f64> {
    if (this.loraByModel.has(req.modelHash)) return this.loraByModel.get(req.modelHash);
    const out = new StaticArray<f64>(snap.count);
    for (let k = 0; k < this.candidateCount; k++) {
      const i = unchecked(this.candidates[k]);
      unchecked(out[i] = snap.profile.loraWeight * loraScore(snap, i, req));
    }
    if (this.loraByModel.size >= MAX_CACHED_MODELS) this.loraByModel.clear();
    this.loraByModel.set(req.modelHash, out);
    return out;
  }

  /** Decides for one request; returns an OUTCOME_* and sets `primary`/`fallbacks` when PICKED. */
  decide(snap: Snapshot, inflight: InFlight, req: RequestFacts): i32 {
    if (this.prepared !== snap) this.prepare(snap);
    this.primary = -1;
    this.fallbacks.length = 0;
    const p = snap.profile;
    const count = this.candidateCount;
    if (count == 0) return OUTCOME_NO_ENDPOINT;
    const list = this.candidates;

    // Waiting requests as best known: the scraped queue, or more if this proxy has sent more requests than
    // the endpoint reported running (its metrics have not caught up yet). Running likewise.
    // The loops over every candidate read and write columns through raw pointers: a managed reference used
    // in a loop is spilled to the GC's shadow stack at every use, which cost more than the arithmetic.
    const listP = changetype<usize>(list);
    const localP = changetype<usize>(inflight.local), remoteP = changetype<usize>(inflight.remote);
    const flagsP = changetype<usize>(snap.flags), queuedP = changetype<usize>(snap.queued);
    const runningColP = changetype<usize>(snap.running), kvP = changetype<usize>(snap.kv);
    const waitingP = changetype<usize>(this.waiting), runningP = changetype<usize>(this.running);
    const outstandingP = changetype<usize>(this.outstanding);
    let minW = f64.MAX_VALUE, maxW = -f64.MAX_VALUE, minR = f64.MAX_VALUE, maxR = -f64.MAX_VALUE;
    let saturated = 0;
    const satQ = p.saturationQueue, satKv = p.saturationKv;
    for (let k = 0; k < count; k++) {
      const i = <usize>load<i32>(listP + (<usize>k << 2));
      const sent = <f64>(load<i32>(localP + (i << 2)) + load<i32>(remoteP + (i << 2)));
      const run = load<f64>(runningColP + (i << 3)); // the decoder zeroes counts whose metric is absent
      const queued = load<f64>(queuedP + (i << 3));
      const w = max(queued, sent - run);
      const r = max(run, sent - queued);
      const outstandingNow = sent + 0.5 * max(0.0, queued + run - sent);
      store<f64>(waitingP + (i << 3), w);
      store<f64>(runningP + (i << 3), r);
      store<f64>(outstandingP + (i << 3), outstandingNow);
      minW = min(minW, outstandingNow);
      maxW = max(maxW, outstandingNow);
      minR = min(minR, r);
      maxR = max(maxR, r);
      const f = load<u8>(flagsP + i);
      if ((f & FLAG_STALE) != 0 || w >= satQ || ((f & FLAG_KV) != 0 && load<f64>(kvP + (i << 3)) >= satKv)) saturated++;
    }
    if (req.sheddable && saturated == count) return OUTCOME_SHED;

    // LoRA affinity for requests naming an adapter (Snapshot.namesAdapter): the base model is served by
    // every endpoint alike, and GIE's slot rule would only add noise there.
    const lora: StaticArray<f64> | null = p.loraWeight > 0 && snap.anyLora && req.modelLen > 0 && snap.namesAdapter(req.modelHash)
      ? this.loraScores(snap, req) : null;
    const prefixOn = p.prefixWeight > 0 && req.chainBlocks > 0 && req.matched.length == snap.count;
    const wq = p.queueWeight, wr = p.runningWeight;
    // Min-max normalisation as GIE's scorers do; all equal scores 1.
    // The load score falls from 1 (least loaded) over the spread of loads, but never over less than
    // LOAD_SPAN_FLOOR requests: between nearly idle endpoints half a request of difference is noise, and
    // min-max alone would turn it into the whole weight and drown prefix and LoRA affinity.
    const span = max(maxW - minW, LOAD_SPAN_FLOOR);
    const qScale = wq / span, qConst = wq - qScale * (maxW - minW);
    const rScale = maxR == minR ? 0 : wr / (maxR - minR), rConst = maxR == minR ? wr : 0;
    const prefixScale = prefixOn ? p.prefixWeight / <f64>req.chainBlocks : 0;
    const matched = req.matched, kvTerm = this.kvTerm, scores = this.scores;
    // The proxy's own adapter requests in flight correct the (lagged) LoRA terms of the endpoints they went to.
    let loraNow = lora;
    const adapters = lora != null ? req.adapters : null;
    if (lora != null && adapters != null && adapters.touched.length > 0) {
      loraNow = this.loraNow;
      memory.copy(changetype<usize>(loraNow), changetype<usize>(lora), <usize>(lora.length << 3));
      for (let t = 0; t < adapters.touched.length; t++) {
        const i = unchecked(adapters.touched[t]);
        if (i < loraNow.length) unchecked(loraNow[i] = this.currentLora(snap, i, req, unchecked(lora[i])));
      }
    }
    // LoRA filters, before scoring (as GIE's LoRA affinity filter did): an endpoint where the adapter would
    // wait for a slot (every slot held by other adapters in use) is no choice while another can run it, and
    // endpoints already running it, within a load slack of the least busy, come before any that would have
    // to load it. Weights alone let load spread an adapter over every free slot until none is left for the
    // next one, whose requests then wait for a busy adapter to drain.
    // Running-first applies to adapters some endpoint lists; a name known only as "not a base model" may be
    // an alias of the base model (vLLM labels its metrics with the first --served-model-name only), and
    // concentrating those requests would only pile them onto one pod.
    let admitRunning = false, admitLoadable = false;
    const activeScore = p.loraWeight * LORA_ACTIVE;
    const loraSlack = LORA_SLACK_ABS + LORA_SLACK_REL * minW;
    const listed = loraNow != null && snap.isAdapter(req.modelHash);
    if (loraNow != null) {
      for (let k = 0; k < count; k++) {
        const i = unchecked(list[k]);
        const l = unchecked(loraNow[i]);
        if (l > 0) admitLoadable = true;
        if (listed && l >= activeScore && unchecked(this.outstanding[i]) - minW <= loraSlack) { admitRunning = true; break; }
      }
    }
    const matchedP = changetype<usize>(matched), kvTermP = changetype<usize>(kvTerm), scoresP = changetype<usize>(scores);
    const loraP = changetype<usize>(loraNow), tiedP = changetype<usize>(this.tied);
    let minMatched = i32.MAX_VALUE;
    if (prefixOn) for (let k = 0; k < count; k++) minMatched = min(minMatched, load<i32>(matchedP + (<usize>load<i32>(listP + (<usize>k << 2)) << 2)));
    const maxScore = p.picker != PICKER_RANDOM && p.picker != PICKER_WEIGHTED_RANDOM;
    let best = -f64.MAX_VALUE, ties = 0;
    for (let k = 0; k < count; k++) {
      const i = load<i32>(listP + (<usize>k << 2));
      const at = <usize>i << 3;
      const busy = load<f64>(outstandingP + at);
      if (admitLoadable) {
        const l = load<f64>(loraP + at);
        if (admitRunning ? l < activeScore || busy - minW > loraSlack : l <= 0) { store<f64>(scoresP + at, EXCLUDED); continue; }
      }
      let s = load<f64>(kvTermP + at) + qConst + rConst;
      if (qScale != 0) s += qScale * (maxW - busy);
      if (rScale != 0) s += rScale * (maxR - load<f64>(runningP + at));
      if (prefixOn) {
        // Prefix affinity yields to load: an endpoint busier than the least busy one keeps its prefix credit
        // only within a slack that grows with the load and with how much more of the prompt it holds than
        // the least-matching candidate (a long cached prefix is worth more waiting than a short one).
        const m = <f64>load<i32>(matchedP + (<usize>i << 2));
        const excess = busy - minW;
        const allowed = PREFIX_SLACK_ABS + PREFIX_SLACK_REL * minW + PREFIX_SLACK_PER_BLOCK * (m - <f64>minMatched);
        const damp = excess <= allowed ? 1.0 : max(0.0, 1.0 - (excess - allowed) / allowed);
        s += prefixScale * m * damp;
      }
      if (loraP != 0) s += load<f64>(loraP + at);
      store<f64>(scoresP + at, s);
      if (maxScore) { // max-score: remember every endpoint tied with the best so far
        if (s > best + 1e-9) { best = s; store<i32>(tiedP, i); ties = 1; }
        else if (s >= best - 1e-9) store<i32>(tiedP + (<usize>(ties++) << 2), i);
      }
    }
    const tied = this.tied;
    // Ties are broken uniformly at random.
    this.primary = maxScore ? (ties == 0 ? -1 : unchecked(tied[ties == 1 ? 0 : nextBelow(ties)])) : this.pickRandomly(p.picker);
    if (this.primary < 0) return OUTCOME_NO_ENDPOINT;
    if (p.fallbackCount > 0) this.rankFallbacks(p.fallbackCount);
    return OUTCOME_PICKED;
  }

  /**
   * The LoRA term corrected by the proxy's requests in flight: the adapter in flight there = active;
   * other adapters in flight there that the metrics do not list yet hold slots too.
   */
  private currentLora(snap: Snapshot, i: i32, req: RequestFacts, cached: f64): f64 {
    if ((unchecked(snap.flags[i]) & FLAG_LORA) == 0) return cached;
    const w = snap.profile.loraWeight;
    const adapters = req.adapters!;
    if (adapters.busy(i, req.modelHash)) return w * LORA_ACTIVE;
    if (unchecked(snap.loraMax[i]) <= 0) return cached; // slots unknown: nothing to count them against
    if (cached != w * LORA_FREE_SLOT) return cached;
    const used = unchecked(snap.runCount[i]) + unchecked(snap.waitCount[i]) + adapters.unlisted(i, snap);
    if (used < unchecked(snap.loraMax[i])) return cached;
    return snap.listsAdapter(i, req.modelHash) ? w * LORA_WAITING : 0;
  }

  private pickRandomly(picker: u8): i32 {
    const list = this.candidates, count = this.candidateCount;
    if (picker == PICKER_WEIGHTED_RANDOM) {
      let total: f64 = 0;
      for (let k = 0; k < count; k++) total += max(unchecked(this.scores[unchecked(list[k])]), 0);
      if (total > 0) {
        let r = nextFloat() * total;
        let last = -1;
        for (let k = 0; k < count; k++) {
          const i = unchecked(list[k]);
          const s = max(unchecked(this.scores[i]), 0);
          if (s <= 0) continue;
          last = i;
          if (r < s) return i;
          r -= s;
        }
        return last; // rounding left r just above the last weight
      }
    }
    // Uniform over the endpoints no LoRA filter excluded.
    let admitted = 0;
    for (let k = 0; k < count; k++) if (unchecked(this.scores[unchecked(list[k])]) != EXCLUDED) admitted++;
    if (admitted == 0) return -1;
    let r = nextBelow(admitted);
    for (let k = 0; k < count; k++) {
      const i = unchecked(list[k]);
      if (unchecked(this.scores[i]) != EXCLUDED && r-- == 0) return i;
    }
    return -1;
  }

  /** The next best candidates after the primary, best first (selection of k out of n, one pass each). */
  private rankFallbacks(want: i32): void {
    const list = this.candidates, count = this.candidateCount, taken = this.taken, scores = this.scores;
    unchecked(taken[this.primary] = true);
    for (let round = 0; round < want; round++) {
      let best = -1;
      for (let k = 0; k < count; k++) {
        const i = unchecked(list[k]);
        if (unchecked(taken[i]) || unchecked(scores[i]) == EXCLUDED) continue;
        if (best < 0 || unchecked(scores[i]) > unchecked(scores[best])) best = i;
      }
      if (best < 0) break;
      unchecked(taken[best] = true);
      this.fallbacks.push(best);
    }
    unchecked(taken[this.primary] = false);
    for (let k = 0; k < this.fallbacks.length; k++) unchecked(taken[unchecked(this.fallbacks[k])] = false);
  }
}

/** GIE's LoRA affinity for endpoint `i`: adapter active 1.0, a free adapter slot 0.8, adapter waiting 0.6, else 0. */
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
