// The pool's saturation as flow control sees it: llm-d-router's utilization detector (the mean over the
// endpoints of max(waiting / queueDepthThreshold, KV usage / kvCacheUtilThreshold)), with each endpoint's KV
// usage brought up to now.
//
// The gauges lag (the companion scrapes every 50 ms; an engine's own gauges can trail by a second), and a
// gate that opens and closes on lagging numbers swings: it lets a burst through, sees the load a second
// later, holds everything until the gauges fall, then releases hundreds at once. The proxy's requests in
// flight per endpoint are exact and current, so the KV term is scaled to them: the endpoint's scraped usage
// per running request (two gauges that lag alike, so their ratio stays right while both trail) times the
// requests in flight. Each dispatch and each finished request moves the estimate at once, so the gate
// admits about one request per request that ends.
// The waiting term: in flight beyond the endpoint's running capacity, once that is known; until then the
// scraped queue (in flight beyond the running count is no queue while that count lags: a ramp would read as
// one). The capacity is the running count of an engine seen full: its queue at least the detector's
// threshold in two snapshots running while it did not admit more (a queue waiting for the next engine step,
// or a ramp, admits); it rises whenever the engine runs more.
// An endpoint that runs nothing yet (no ratio) counts by its gauges alone. Load from clients that bypass the
// gateways shares the ratio but not the in-flight count: it shows only through the gauges.
import { Snapshot, FLAG_STALE, FLAG_KV, POD_ROLE_PREFILL, POD_ROLE_DECODE } from "./snapshot";
import { InFlight } from "./inflight";
import { usableEndpoints } from "./scoring/usable-endpoints-filter";

/** What the estimate remembers of an endpoint (by address hash) across snapshots. */
class EndpointMemory {
  running: f64 = 0;
  queued: f64 = 0;
  /** Running capacity seen full; -1: not known. */
  capacity: f64 = -1;
}

export class SaturationEstimate {
  private candidates: StaticArray<i32> = new StaticArray<i32>(0);
  private memory: Map<u32, EndpointMemory> = new Map<u32, EndpointMemory>();
  private learnedFrom: Snapshot | null = null;

  /** Learns the endpoints' running capacities from a new snapshot's gauges (once per snapshot). */
  learn(snap: Snapshot): void {
    if (snap === this.learnedFrom) return;
    this.learnedFrom = snap;
    const full = max(snap.profile.saturationQueue, 1.0); // Infinity (no detector): never learnt
    const next = new Map<u32, EndpointMemory>();
    for (let i = 0; i < snap.count; i++) {
      const h = unchecked(snap.addrHash[i]);
      const m = this.memory.has(h) ? this.memory.get(h) : new EndpointMemory();
      if ((unchecked(snap.flags[i]) & FLAG_STALE) == 0) {
        const running = unchecked(snap.running[i]),
          queued = unchecked(snap.queued[i]);
        if (queued >= full && m.queued >= full && running <= m.running && running >= 1.0) m.capacity = running;
        else if (m.capacity >= 0 && running > m.capacity) m.capacity = running;
        m.running = running;
        m.queued = queued;
      }
      next.set(h, m); // endpoints that left the snapshot are forgotten
    }
    this.memory = next;
  }

  /** The running capacity learnt for endpoint `i` of the snapshot last learnt from, or -1. */
  capacityOf(snap: Snapshot, i: i32): f64 {
    const h = unchecked(snap.addrHash[i]);
    return this.memory.has(h) ? this.memory.get(h).capacity : -1.0;
  }

  /**
   * The pool's saturation now over the endpoints the decision can use: 1 for an endpoint with stale
   * metrics, 1 for an empty pool, 0 with no detector in the profile (thresholds infinite).
   */
  pool(snap: Snapshot, inflight: InFlight, satQ: f64, satKv: f64): f64 {
    this.learn(snap);
    if (this.candidates.length < snap.count) this.candidates = new StaticArray<i32>(snap.count);
    const count = usableEndpoints(snap, this.candidates);
    if (count == 0) return 1.0;
    const aligned = inflight.local.length == snap.count && inflight.remote.length == snap.count;
    // With P/D roles, llm-d-router's stages: prefill (prefill-capable pods) and decode (decode-capable and
    // unlabeled pods), the pool as saturated as its more saturated stage; pods of neither count in no stage.
    const staged = snap.roles.length > 0;
    let sum = 0.0,
      prefillSum = 0.0,
      decodeSum = 0.0,
      prefillCount = 0,
      decodeCount = 0;
    for (let k = 0; k < count; k++) {
      const i = unchecked(this.candidates[k]);
      const score = this.endpointScore(snap, i, inflight, aligned, satQ, satKv);
      sum += score;
      if (!staged) continue;
      const role = snap.roleOf(i);
      if ((role & POD_ROLE_PREFILL) != 0) {
        prefillSum += score;
        prefillCount++;
      }
      if (role == 0 || (role & POD_ROLE_DECODE) != 0) {
        decodeSum += score;
        decodeCount++;
      }
    }
    if (staged && prefillCount + decodeCount > 0)
      return max(
        prefillCount > 0 ? prefillSum / <f64>prefillCount : 0.0,
        decodeCount > 0 ? decodeSum / <f64>decodeCount : 0.0,
      );
    return sum / <f64>count;
  }

  /** Endpoint i's detector score: max(waiting / satQ, KV / satKv), 1 with stale metrics. */
  private endpointScore(snap: Snapshot, i: i32, inflight: InFlight, aligned: bool, satQ: f64, satKv: f64): f64 {
    const f = unchecked(snap.flags[i]);
    if ((f & FLAG_STALE) != 0) return 1.0;
    const sent = aligned ? <f64>(unchecked(inflight.local[i]) + unchecked(inflight.remote[i])) : -1.0;
    const cap = this.capacityOf(snap, i);
    const waiting = sent >= 0 && cap >= 0 ? max(0.0, sent - cap) : unchecked(snap.queued[i]);
    let score = satQ == Infinity ? 0.0 : waiting / satQ;
    if ((f & FLAG_KV) != 0 && satKv != Infinity) {
      let kv = unchecked(snap.kv[i]);
      const running = unchecked(snap.running[i]);
      if (sent >= 0 && running >= 1.0) kv *= (cap >= 0 ? min(sent, cap) : sent) / running;
      score = max(score, kv / satKv);
    }
    return score;
  }
}
