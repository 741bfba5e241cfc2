// The decision: which endpoints may serve the request, how each scores under the snapshot's profile, and
// which one the picker takes. Pure computation over the snapshot and the request's facts (no host calls),
// so the specs can drive it directly. The plugins live one per file in this folder; the per-request loop
// stays one fused pass over the candidates, with the built-in scorers' terms inlined from their files.
import { Snapshot, FLAG_STALE, FLAG_KV } from "../snapshot";
import { InFlight } from "../inflight";
import { DecisionState, RequestFacts, Profile, EXCLUDED } from "./plugin";
import { usableEndpoints } from "./usable-endpoints-filter";
import { queueSlope, queueTerm, LOAD_SPAN_FLOOR } from "./queue-scorer";
import { GATEWAY_SPREAD } from "../inflight";
import { runningTerm } from "./running-requests-size-scorer";
import { prefixTerm, lengthCredit } from "./prefix-cache-scorer";
import { LoraAffinity } from "./lora-affinity-scorer";
import { pickMaxScore } from "./max-score-picker";

export const OUTCOME_PICKED: i32 = 0;
export const OUTCOME_SHED: i32 = 1; // every endpoint saturated and the request is sheddable: 429
export const OUTCOME_NO_ENDPOINT: i32 = 2; // nothing can serve: 503
export const OUTCOME_DENIED: i32 = 3; // an admission plugin refused the request: 429

export class Decision extends DecisionState {
  /** The pick and the ordered fallbacks (endpoint indices). */
  primary: i32 = -1;
  fallbacks: i32[] = [];

  // Per snapshot (computed once per version): the candidates and the sum of the snapshot-only scorers.
  private prepared: Snapshot | null = null;
  private snapshotTerms: StaticArray<f64> = new StaticArray<f64>(0);
  /** Per request: the sum of the per-request scorers the loop does not inline (when the profile has any). */
  private requestTerms: StaticArray<f64> = new StaticArray<f64>(0);
  private taken: StaticArray<bool> = new StaticArray<bool>(0);
  private lora: LoraAffinity = new LoraAffinity();
  /** The snapshot's usable endpoints (per version); `candidates` is them less the ejected ones, per request. */
  private usable: StaticArray<i32> = new StaticArray<i32>(0);
  private usableCount: i32 = 0;
  private live: StaticArray<i32> = new StaticArray<i32>(0);

  private prepare(snap: Snapshot, profile: Profile): void {
    this.prepared = snap;
    const n = snap.count;
    this.scores = new StaticArray<f64>(n);
    this.waiting = new StaticArray<f64>(n);
    this.running = new StaticArray<f64>(n);
    this.outstanding = new StaticArray<f64>(n);
    this.snapshotTerms = new StaticArray<f64>(n);
    this.requestTerms = new StaticArray<f64>(n);
    this.tied = new StaticArray<i32>(n);
    this.taken = new StaticArray<bool>(n);
    this.usable = new StaticArray<i32>(n);
    this.usableCount = usableEndpoints(snap, this.usable);
    if (profile.filters.length > 0) this.applyFilters(snap, profile);
    this.candidates = this.usable;
    this.candidateCount = this.usableCount;
    this.lora.reset(snap);
    const scorers = profile.snapshotScorers;
    for (let s = 0; s < scorers.length; s++) {
      const scorer = scorers[s];
      for (let k = 0; k < this.usableCount; k++) {
        const i = unchecked(this.usable[k]);
        unchecked((this.snapshotTerms[i] += scorer.weight * scorer.scoreEndpoint(snap, i)));
      }
    }
  }

  /**
   * Decides for one request; returns an OUTCOME_* and sets `primary`/`fallbacks` when PICKED. `ejected` (per
   * snapshot endpoint, 1 = ejected by the outlier detector, filter/outliers.ts) removes endpoints from the
   * candidates, unless that would leave none.
   */
  decide(
    snap: Snapshot,
    profile: Profile,
    inflight: InFlight,
    req: RequestFacts,
    ejected: StaticArray<u8> | null = null,
  ): i32 {
    if (this.prepared !== snap || this.profile !== profile) {
      this.profile = profile;
      this.prepare(snap, profile);
    }
    this.candidates = this.usable;
    this.candidateCount = this.usableCount;
    if (ejected != null && ejected.length == snap.count) this.skipEjected(ejected);
    this.snapshot = snap;
    this.facts = req;
    this.primary = -1;
    this.fallbacks.length = 0;
    this.tiedCount = 0;
    const p = profile;
    const count = this.candidateCount;
    if (count == 0) return OUTCOME_NO_ENDPOINT;

    // Load pass. Waiting requests as best known: the scraped queue, or more if this proxy has sent more
    // requests than the endpoint reported running (its metrics have not caught up yet); running likewise.
    // Outstanding (what the queue-scorer ranks) counts the proxy's own requests in full and half of what the
    // metrics show beyond them (another gateway's, or stale). The saturation detector's check rides along.
    // Loops over every candidate read and write columns through raw pointers: a managed reference used in a
    // loop is spilled to the GC's shadow stack at every use, which cost more than the arithmetic.
    const listP = changetype<usize>(this.candidates);
    const localP = changetype<usize>(inflight.local),
      remoteP = changetype<usize>(inflight.remote);
    const flagsP = changetype<usize>(snap.flags),
      queuedP = changetype<usize>(snap.queued);
    const runningColP = changetype<usize>(snap.running),
      kvP = changetype<usize>(snap.kv);
    const waitingP = changetype<usize>(this.waiting),
      runningP = changetype<usize>(this.running);
    const outstandingP = changetype<usize>(this.outstanding);
    // With other gateways, this gateway's own preference among near-equal endpoints (InFlight.spread).
    const spreadP =
      inflight.gateways > 1 && inflight.spread.length == snap.count ? changetype<usize>(inflight.spread) : 0;
    // minW/maxW: the outstanding load; minQ/maxQ: the same with this gateway's preferences, which only the
    // queue-scorer ranks by (the prefix and LoRA slacks measure how busy an endpoint really is).
    let minQ = f64.MAX_VALUE,
      maxQ = -f64.MAX_VALUE,
      total = 0.0;
    let minW = f64.MAX_VALUE,
      maxW = -f64.MAX_VALUE,
      minR = f64.MAX_VALUE,
      maxR = -f64.MAX_VALUE;
    let saturated = 0;
    const satQ = p.saturationQueue,
      satKv = p.saturationKv;
    for (let k = 0; k < count; k++) {
      const i = <usize>load<i32>(listP + ((<usize>k) << 2));
      const sent = <f64>(load<i32>(localP + (i << 2)) + load<i32>(remoteP + (i << 2)));
      const run = load<f64>(runningColP + (i << 3)); // the decoder zeroes counts whose metric is absent
      const queued = load<f64>(queuedP + (i << 3));
      const w = max(queued, sent - run);
      const r = max(run, sent - queued);
      const outstandingNow = sent + 0.5 * max(0.0, queued + run - sent);
      total += outstandingNow;
      store<f64>(waitingP + (i << 3), w);
      store<f64>(runningP + (i << 3), r);
      store<f64>(outstandingP + (i << 3), outstandingNow);
      minW = min(minW, outstandingNow);
      maxW = max(maxW, outstandingNow);
      minR = min(minR, r);
      maxR = max(maxR, r);
      const f = load<u8>(flagsP + i);
      if (
        satQ != Infinity &&
        ((f & FLAG_STALE) != 0 || w >= satQ || ((f & FLAG_KV) != 0 && load<f64>(kvP + (i << 3)) >= satKv))
      )
        saturated++;
    }
    this.minOutstanding = minW;
    // This gateway's preferences weigh up to GATEWAY_SPREAD of the mean load, more the more gateways there
    // are (1 - 2/G: none for two, whose own skews would not average out): enough to keep gateways apart
    // while the others' counts are in transit, never enough to matter between idle endpoints.
    const gateways = <f64>inflight.gateways;
    const spreadScale =
      spreadP != 0 ? GATEWAY_SPREAD * (1.0 - 2.0 / gateways) * max(total / <f64>count, LOAD_SPAN_FLOOR) : 0.0;
    if (spreadP != 0) {
      for (let k = 0; k < count; k++) {
        const i = <usize>load<i32>(listP + ((<usize>k) << 2));
        const ranked = load<f64>(outstandingP + (i << 3)) + spreadScale * load<f64>(spreadP + (i << 3));
        minQ = min(minQ, ranked);
        maxQ = max(maxQ, ranked);
      }
    } else {
      minQ = minW;
      maxQ = maxW;
    }
    if (req.sheddable && saturated == count) return OUTCOME_SHED;
    // Admission plugins (llm-d-router's run after its saturation check, before the scheduling).
    if (req.negativePriority)
      for (let a = 0; a < p.admitters.length; a++) if (!p.admitters[a].admits(this)) return OUTCOME_DENIED;

    const lora = this.lora;
    lora.apply(this);
    const loraTerms = lora.terms;
    const requestScorers = p.requestScorers;
    if (requestScorers.length > 0) {
      memory.fill(changetype<usize>(this.requestTerms), 0, <usize>(snap.count << 3));
      for (let s = 0; s < requestScorers.length; s++) requestScorers[s].scoreRequest(this, this.requestTerms);
    }

    // The fused scoring pass: every term of the profile for each candidate, and the ties for the best score.
    const prefixOn = p.prefixWeight > 0 && req.chainBlocks > 0 && req.matched.length == snap.count;
    const wq = p.queueWeight,
      wr = p.runningWeight;
    const qSlope = queueSlope(wq, minQ, maxQ);
    const prefixScale = prefixOn ? p.prefixWeight / <f64>req.chainBlocks : 0;
    // llm-d-router's match-length term (off unless its weight is above 0): per matched block, its share of the scale.
    const lengthW = prefixOn ? p.prefixLengthWeight : 0;
    const lengthPerBlock = lengthW > 0 ? <f64>p.prefixBlockChars / p.prefixLengthScaleChars : 0;
    const matchedP = changetype<usize>(req.matched),
      termsP = changetype<usize>(this.snapshotTerms);
    const scoresP = changetype<usize>(this.scores),
      tiedP = changetype<usize>(this.tied);
    const loraP = changetype<usize>(loraTerms),
      extraP = requestScorers.length > 0 ? changetype<usize>(this.requestTerms) : 0;
    let minMatched = i32.MAX_VALUE;
    if (prefixOn)
      for (let k = 0; k < count; k++)
        minMatched = min(minMatched, load<i32>(matchedP + ((<usize>load<i32>(listP + ((<usize>k) << 2))) << 2)));
    let best = -f64.MAX_VALUE,
      ties = 0;
    for (let k = 0; k < count; k++) {
      const i = load<i32>(listP + ((<usize>k) << 2));
      const at = (<usize>i) << 3;
      const busy = load<f64>(outstandingP + at);
      if (loraP != 0 && lora.excludes(load<f64>(loraP + at), busy, minW)) {
        store<f64>(scoresP + at, EXCLUDED);
        continue;
      }
      let s = load<f64>(termsP + at);
      if (wq != 0)
        s += queueTerm(wq, qSlope, minQ, busy + (spreadP != 0 ? spreadScale * load<f64>(spreadP + at) : 0.0));
      if (wr != 0) s += runningTerm(wr, minR, maxR, load<f64>(runningP + at));
      if (prefixOn) {
        const m = <f64>load<i32>(matchedP + ((<usize>i) << 2));
        const credit =
          lengthW > 0
            ? lengthCredit(p.prefixWeight, lengthW, lengthPerBlock, m, <f64>req.chainBlocks)
            : prefixScale * m;
        s += prefixTerm(credit, m, <f64>minMatched, busy - minW, minW);
      }
      if (loraP != 0) s += load<f64>(loraP + at);
      if (extraP != 0) s += load<f64>(extraP + at);
      store<f64>(scoresP + at, s);
      if (s > best + 1e-9) {
        best = s;
        store<i32>(tiedP, i);
        ties = 1;
      } else if (s >= best - 1e-9) store<i32>(tiedP + ((<usize>(ties++)) << 2), i);
    }
    this.tiedCount = ties;
    const picker = p.picker;
    this.primary = picker != null ? picker.pick(this) : pickMaxScore(this);
    if (this.primary < 0) return OUTCOME_NO_ENDPOINT;
    for (let s = 0; s < requestScorers.length; s++) requestScorers[s].picked(this, this.primary);
    if (p.fallbackCount > 0) this.rankFallbacks(p.fallbackCount);
    return OUTCOME_PICKED;
  }

  /** Keeps the usable endpoints every filter of the profile keeps (per snapshot: the filters read only it). */
  private applyFilters(snap: Snapshot, profile: Profile): void {
    const filters = profile.filters;
    let n = 0;
    for (let k = 0; k < this.usableCount; k++) {
      const i = unchecked(this.usable[k]);
      let keep = true;
      for (let f = 0; f < filters.length && keep; f++) keep = filters[f].keeps(snap, i);
      if (keep) unchecked((this.usable[n++] = i));
    }
    this.usableCount = n;
  }

  /** Candidates without the ejected endpoints (into a per-request list; the usable list stays as it is). */
  private skipEjected(ejected: StaticArray<u8>): void {
    let live = this.live;
    if (live.length != this.usable.length) {
      live = new StaticArray<i32>(this.usable.length);
      this.live = live;
    }
    let n = 0;
    for (let k = 0; k < this.usableCount; k++) {
      const i = unchecked(this.usable[k]);
      if (unchecked(ejected[i]) == 0) unchecked((live[n++] = i));
    }
    if (n == 0) return; // everything usable is ejected: better a failing endpoint than none
    this.candidates = live;
    this.candidateCount = n;
  }

  /** The next best candidates after the primary, best first (selection of k out of n, one pass each). */
  private rankFallbacks(want: i32): void {
    const list = this.candidates,
      count = this.candidateCount,
      taken = this.taken,
      scores = this.scores;
    unchecked((taken[this.primary] = true));
    for (let round = 0; round < want; round++) {
      let best = -1;
      for (let k = 0; k < count; k++) {
        const i = unchecked(list[k]);
        if (unchecked(taken[i]) || unchecked(scores[i]) == EXCLUDED) continue;
        if (best < 0 || unchecked(scores[i]) > unchecked(scores[best])) best = i;
      }
      if (best < 0) break;
      unchecked((taken[best] = true));
      this.fallbacks.push(best);
    }
    unchecked((taken[this.primary] = false));
    for (let k = 0; k < this.fallbacks.length; k++) unchecked((taken[unchecked(this.fallbacks[k])] = false));
  }
}
