// no-hit-lru-scorer (llm-d-router): a cold request (no candidate holds any of its prefix blocks) prefers the
// endpoints that least recently received a cold request, so new prompts, which grow KV caches most, spread
// evenly: candidates never given one first (1, then falling by 1 / (n - 1) in candidate order), then the
// others by recency, the least recent highest; a request that hits somewhere scores 0.5 everywhere. Each cold
// request's pick becomes the most recent. The recency list outlives the profile, which is rebuilt on every
// snapshot version: it is this worker VM's (module state), like llm-d-router's is its EPP replica's.
import { ScorerPlugin, Params, DecisionState } from "./plugin";

/** Address hashes of the endpoints picked for cold requests, least recent first. */
class ColdPicks {
  order: Array<u32> = new Array<u32>();
  capacity: i32 = 1024;

  /** Makes `h` the most recent, dropping the least recent beyond the capacity. */
  touch(h: u32): void {
    const order = this.order;
    let at = order.indexOf(h);
    if (at < 0 && order.length < this.capacity) {
      order.push(h);
      return;
    }
    if (at < 0) at = 0; // full: the least recent goes
    for (let j = at; j < order.length - 1; j++) unchecked((order[j] = order[j + 1]));
    unchecked((order[order.length - 1] = h));
    while (order.length > this.capacity) order.shift();
  }
}

const coldPicks = new ColdPicks();

/** Forgets every cold pick (specs start from a clean list). */
export function resetColdPicks(): void {
  coldPicks.order.length = 0;
}

export class NoHitLruScorer extends ScorerPlugin {
  private cold: bool = false;
  /** Per snapshot endpoint: its place in the recency list (-1: never given a cold request). */
  private place: StaticArray<i32> = new StaticArray<i32>(0);

  configure(params: Params): string {
    const size = params.number("lruSize");
    if (!(size >= 1)) return "lruSize missing or below 1";
    coldPicks.capacity = <i32>min(size, <f64>i32.MAX_VALUE);
    return "";
  }

  scoreRequest(d: DecisionState, out: StaticArray<f64>): void {
    const snap = d.snapshot!;
    const facts = d.facts;
    const n = d.candidateCount;
    let cold = true;
    if (facts.chainBlocks > 0 && facts.matched.length == snap.count)
      for (let k = 0; k < n && cold; k++) cold = unchecked(facts.matched[unchecked(d.candidates[k])]) == 0;
    this.cold = cold;
    const w = this.weight;
    if (!cold || n == 1) {
      const s = cold ? 1.0 : 0.5;
      for (let k = 0; k < n; k++) unchecked((out[unchecked(d.candidates[k])] += w * s));
      return;
    }
    if (this.place.length != snap.count) this.place = new StaticArray<i32>(snap.count);
    const place = this.place;
    for (let i = 0; i < snap.count; i++) unchecked((place[i] = -1));
    const order = coldPicks.order;
    for (let p = 0; p < order.length; p++) {
      const i = snap.indexOfHash(unchecked(order[p]));
      if (i >= 0) unchecked((place[i] = p));
    }
    const span = <f64>(n - 1);
    let never = 0;
    for (let k = 0; k < n; k++) {
      const i = unchecked(d.candidates[k]);
      if (unchecked(place[i]) >= 0) continue;
      unchecked((out[i] += w * (1.0 - <f64>never / span)));
      never++;
    }
    for (let k = 0; k < n; k++) {
      const i = unchecked(d.candidates[k]);
      const p = unchecked(place[i]);
      if (p >= 0) unchecked((out[i] += w * max(0.0, 1.0 - <f64>(never + p) / span)));
    }
  }

  picked(d: DecisionState, i: i32): void {
    if (this.cold) coldPicks.touch(unchecked(d.snapshot!.addrHash[i]));
  }
}
