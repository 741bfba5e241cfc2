// The decision: which endpoints may serve the request, how each scores under the snapshot's scheduling
// profile, and which one the picker takes. Pure computation over the snapshot and the request's facts
// (no host calls), so the specs can drive it directly.
import {
  Snapshot, FLAG_ERROR, FLAG_UNUSABLE, FLAG_STALE, FLAG_QUEUE, FLAG_RUNNING, FLAG_KV, FLAG_LORA,
  PICKER_RANDOM, PICKER_WEIGHTED_RANDOM,
} from "./snapshot";
import { InFlight } from "./inflight";
import { nextFloat, nextBelow } from "./rng";

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
  sheddable: bool = false;
}

export class Scorer {
  /** Per endpoint of the current snapshot; valid after `decide`. */
  scores: StaticArray<f64> = new StaticArray<f64>(0);
  waiting: StaticArray<f64> = new StaticArray<f64>(0);
  candidate: StaticArray<bool> = new StaticArray<bool>(0);
  /** The pick and the ordered fallbacks (endpoint indices). */
  primary: i32 = -1;
  fallbacks: i32[] = [];

  private ensure(n: i32): void {
    if (this.scores.length == n) return;
    this.scores = new StaticArray<f64>(n);
    this.waiting = new StaticArray<f64>(n);
    this.candidate = new StaticArray<bool>(n);
  }

  /** Decides for one request; returns an OUTCOME_* and sets `primary`/`fallbacks` when PICKED. */
  decide(snap: Snapshot, inflight: InFlight, req: RequestFacts): i32 {
    const n = snap.count;
    this.ensure(n);
    this.primary = -1;
    this.fallbacks.length = 0;
    const p = snap.profile;

    // Candidates: never an endpoint in error or with an unusable address; stale ones only if nothing is fresh.
    let fresh = 0, usable = 0;
    for (let i = 0; i < n; i++) {
      const f = unchecked(snap.flags[i]);
      const ok = (f & (FLAG_ERROR | FLAG_UNUSABLE)) == 0;
      unchecked(this.candidate[i] = ok);
      if (ok) { usable++; if ((f & FLAG_STALE) == 0) fresh++; }
    }
    if (usable == 0) return OUTCOME_NO_ENDPOINT;
    if (fresh > 0 && fresh < usable) {
      for (let i = 0; i < n; i++) if ((unchecked(snap.flags[i]) & FLAG_STALE) != 0) unchecked(this.candidate[i] = false);
    }

    // Waiting requests as best known: the scraped queue, or more if this proxy has sent more requests than
    // the endpoint reported running and queued together (its metrics have not caught up yet).
    let minW = f64.MAX_VALUE, maxW = -f64.MAX_VALUE, minR = f64.MAX_VALUE, maxR = -f64.MAX_VALUE;
    let saturated = 0, candidates = 0;
    for (let i = 0; i < n; i++) {
      if (!unchecked(this.candidate[i])) continue;
      candidates++;
      const f = unchecked(snap.flags[i]);
      const sent = <f64>inflight.total(i);
      const running = (f & FLAG_RUNNING) != 0 ? unchecked(snap.running[i]) : 0;
      const queued = (f & FLAG_QUEUE) != 0 ? unchecked(snap.queued[i]) : 0;
      const w = max(queued, sent - running);
      unchecked(this.waiting[i] = w);
      const r = max(running, sent - queued);
      if (w < minW) minW = w;
      if (w > maxW) maxW = w;
      if (r < minR) minR = r;
      if (r > maxR) maxR = r;
      const kv = unchecked(snap.kv[i]);
      if ((f & FLAG_STALE) != 0 || w >= p.saturationQueue || ((f & FLAG_KV) != 0 && kv >= p.saturationKv)) saturated++;
    }
    if (req.sheddable && saturated == candidates) return OUTCOME_SHED;

    const loraOn = p.loraWeight > 0 && snap.anyLora && req.modelLen > 0;
    const prefixOn = p.prefixWeight > 0 && req.chainBlocks > 0 && req.matched.length == n;
    for (let i = 0; i < n; i++) {
      if (!unchecked(this.candidate[i])) continue;
      const f = unchecked(snap.flags[i]);
      let s: f64 = 0;
      if (p.queueWeight > 0) {
        const w = unchecked(this.waiting[i]);
        s += p.queueWeight * (maxW == minW ? 1.0 : (maxW - w) / (maxW - minW));
      }
      if (p.kvWeight > 0) s += p.kvWeight * (1.0 - ((f & FLAG_KV) != 0 ? unchecked(snap.kv[i]) : KV_UNKNOWN));
      if (p.runningWeight > 0) {
        const sent = <f64>inflight.total(i);
        const running = (f & FLAG_RUNNING) != 0 ? unchecked(snap.running[i]) : 0;
        const queued = (f & FLAG_QUEUE) != 0 ? unchecked(snap.queued[i]) : 0;
        const r = max(running, sent - queued);
        s += p.runningWeight * (maxR == minR ? 1.0 : (maxR - r) / (maxR - minR));
      }
      if (prefixOn) s += p.prefixWeight * <f64>unchecked(req.matched[i]) / <f64>req.chainBlocks;
      if (loraOn) s += p.loraWeight * loraScore(snap, i, req);
      unchecked(this.scores[i] = s);
    }

    this.primary = this.pick(snap, p.picker);
    if (this.primary < 0) return OUTCOME_NO_ENDPOINT;
    if (p.fallbackCount > 0) this.rankFallbacks(n, p.fallbackCount);
    return OUTCOME_PICKED;
  }

  private pick(snap: Snapshot, picker: u8): i32 {
    const n = snap.count;
    if (picker == PICKER_RANDOM) {
      let seen = 0, chosen = -1;
      for (let i = 0; i < n; i++) {
        if (!unchecked(this.candidate[i])) continue;
        seen++;
        if (nextBelow(seen) == 0) chosen = i; // reservoir sampling: uniform over candidates
      }
      return chosen;
    }
    if (picker == PICKER_WEIGHTED_RANDOM) {
      let total: f64 = 0;
      for (let i = 0; i < n; i++) if (unchecked(this.candidate[i])) total += max(unchecked(this.scores[i]), 0);
      if (total > 0) {
        let r = nextFloat() * total;
        let last = -1;
        for (let i = 0; i < n; i++) {
          if (!unchecked(this.candidate[i])) continue;
          const s = max(unchecked(this.scores[i]), 0);
          if (s <= 0) continue;
          last = i;
          if (r < s) return i;
          r -= s;
        }
        return last; // rounding left r just above the last weight
      }
      return this.pick(snap, PICKER_RANDOM);
    }
    // max-score, ties broken uniformly at random.
    let best = -f64.MAX_VALUE, chosen = -1, ties = 0;
    for (let i = 0; i < n; i++) {
      if (!unchecked(this.candidate[i])) continue;
      const s = unchecked(this.scores[i]);
      if (s > best + 1e-9) { best = s; chosen = i; ties = 1; }
      else if (s >= best - 1e-9) { ties++; if (nextBelow(ties) == 0) chosen = i; }
    }
    return chosen;
  }

  /** The next best candidates after the primary, best first (selection of k out of n). */
  private rankFallbacks(n: i32, k: i32): void {
    for (let round = 0; round < k; round++) {
      let best = -1;
      for (let i = 0; i < n; i++) {
        if (!unchecked(this.candidate[i]) || i == this.primary || this.fallbacks.includes(i)) continue;
        if (best < 0 || unchecked(this.scores[i]) > unchecked(this.scores[best])) best = i;
      }
      if (best < 0) return;
      this.fallbacks.push(best);
    }
  }
}

/** GIE's LoRA affinity for endpoint `i`: adapter active 1.0, a free adapter slot 0.8, adapter waiting 0.6, else 0. */
export function loraScore(snap: Snapshot, i: i32, req: RequestFacts): f64 {
  if ((unchecked(snap.flags[i]) & FLAG_LORA) == 0) return LORA_UNKNOWN;
  const start = unchecked(snap.runStart[i]);
  const running = unchecked(snap.runCount[i]);
  const waiting = unchecked(snap.waitCount[i]);
  for (let a = start; a < start + running; a++) if (adapterIs(snap, a, req)) return LORA_ACTIVE;
  if (running + waiting < unchecked(snap.loraMax[i])) return LORA_FREE_SLOT;
  for (let a = start + running; a < start + running + waiting; a++) if (adapterIs(snap, a, req)) return LORA_WAITING;
  return 0;
}

function adapterIs(snap: Snapshot, a: i32, req: RequestFacts): bool {
  if (unchecked(snap.adapterHash[a]) != req.modelHash || unchecked(snap.adapterLen[a]) != req.modelLen) return false;
  return memory.compare(snap.base + <usize>unchecked(snap.adapterOff[a]), req.modelPtr, <usize>req.modelLen) == 0;
}
