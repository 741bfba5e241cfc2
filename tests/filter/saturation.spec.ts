// The pool saturation flow control waits on (filter/saturation.ts): llm-d-router's utilization detector over
// what the endpoints hold now, with the gauges' lag taken out by the proxy's own requests in flight.
import { decodeSnapshot, Snapshot, POD_ROLE_PREFILL, POD_ROLE_DECODE } from "../../filter/snapshot";
import { InFlight } from "../../filter/inflight";
import { SaturationEstimate } from "../../filter/saturation";
import { buildBlobWith, TestEndpoint, TestProfile } from "./blob";

function snapWith(eps: TestEndpoint[]): Snapshot {
  return decodeSnapshot(buildBlobWith(1, eps, new TestProfile(), null, null, null))!;
}

function ep(address: string, queued: u32, running: u32, kv: f32, flags: u8 = 4 | 8 | 16): TestEndpoint {
  const e = new TestEndpoint(address, flags, queued, kv);
  e.running = running;
  return e;
}

function tracked(snap: Snapshot): InFlight {
  const f = new InFlight();
  f.rebase(snap);
  return f;
}

describe("pool saturation", () => {
  test("no requests in flight known: the gauges, as llm-d-router's detector reads them", () => {
    const snap = snapWith([ep("10.0.0.1:8000", 5, 0, 0.2), ep("10.0.0.2:8000", 0, 0, 0.4)]);
    // 5/5 = 1.0 and 0.4/0.8 = 0.5: mean 0.75 (nothing running: no ratio to scale by)
    expect(new SaturationEstimate().pool(snap, tracked(snap), 5, 0.8)).toBeCloseTo(0.75);
  });

  test("KV scales with the requests in flight now: the gauges' per-request usage times what is out", () => {
    // The gauges (lagging) say 4 running at 0.4 of the KV: 0.1 per request.
    const snap = snapWith([ep("10.0.0.1:8000", 0, 4, 0.4)]);
    const inflight = tracked(snap);
    const est = new SaturationEstimate();
    for (let k = 0; k < 4; k++) inflight.started(0);
    expect(est.pool(snap, inflight, 5, 0.8)).toBeCloseTo(0.5);
    // Four more sent since: 0.8 of the KV, saturated, before any gauge moves.
    for (let k = 0; k < 4; k++) inflight.started(0);
    expect(est.pool(snap, inflight, 5, 0.8)).toBeCloseTo(1.0);
    // All finished, the gauges still at 0.4: nothing out, nothing held.
    for (let k = 0; k < 8; k++) inflight.finished(snap.addrHash[0]);
    expect(est.pool(snap, inflight, 5, 0.8)).toBeCloseTo(0.0);
  });

  test("waiting: the scraped queue until the engine is seen full, then in flight beyond its capacity", () => {
    const est = new SaturationEstimate();
    // KV not reported (flags: queue and running only): the queue term alone. Threshold 5.
    const snap = (queued: u32, running: u32): Snapshot => snapWith([ep("10.0.0.1:8000", queued, running, 0.0, 4 | 8)]);
    const first = snap(6, 10);
    const inflight = tracked(first);
    for (let k = 0; k < 30; k++) inflight.started(0);
    // One snapshot with a queue is not "full" yet (a ramp, or requests waiting for the next engine step).
    expect(est.pool(first, inflight, 5, 0.8)).toBeCloseTo(6.0 / 5.0);
    // Admitting more while queued (10 -> 12 running): still a ramp.
    const ramp = snap(6, 12);
    inflight.rebase(ramp);
    expect(est.pool(ramp, inflight, 5, 0.8)).toBeCloseTo(6.0 / 5.0);
    expect(est.capacityOf(ramp, 0)).toBe(-1.0);
    // Queued again and running no more: full at 12. 30 out: 18 beyond it.
    const full = snap(7, 12);
    inflight.rebase(full);
    expect(est.pool(full, inflight, 5, 0.8)).toBeCloseTo(18.0 / 5.0);
    expect(est.capacityOf(full, 0)).toBe(12.0);
    // A queue below the threshold teaches nothing; running 20 raises the capacity.
    const more = snap(3, 20);
    inflight.rebase(more);
    expect(est.pool(more, inflight, 5, 0.8)).toBeCloseTo(10.0 / 5.0);
    // An endpoint that leaves the pool is forgotten.
    est.learn(snapWith([ep("10.0.0.2:8000", 0, 20, 0.0)]));
    est.learn(more);
    expect(est.capacityOf(more, 0)).toBe(-1.0);
  });

  test("stale counts 1, unreachable ones are left out while others remain, an empty pool is 1", () => {
    const est = new SaturationEstimate();
    const stale = snapWith([ep("10.0.0.1:8000", 0, 0, 0.0, 1 | 4 | 8 | 16), ep("10.0.0.2:8000", 0, 0, 0.0)]);
    expect(est.pool(stale, tracked(stale), 5, 0.8)).toBeCloseTo(0.5);
    // flag 64: unreachable (docs/SNAPSHOT.md)
    const gone = snapWith([ep("10.0.0.1:8000", 9, 0, 0.9, 4 | 8 | 16 | 64), ep("10.0.0.2:8000", 0, 0, 0.4)]);
    expect(est.pool(gone, tracked(gone), 5, 0.8)).toBeCloseTo(0.5);
    const none = snapWith([]);
    expect(est.pool(none, tracked(none), 5, 0.8)).toBe(1.0);
    // No detector in the profile: never saturated.
    expect(est.pool(gone, tracked(gone), Infinity, Infinity)).toBe(0.0);
  });

  test("P/D roles: the pool is as saturated as its more saturated stage (prefill; decode and unlabeled)", () => {
    const est = new SaturationEstimate();
    const snap = snapWith([
      ep("10.0.0.1:8000", 5, 0, 0.0, 4 | 8),
      ep("10.0.0.2:8000", 0, 0, 0.0, 4 | 8),
      ep("10.0.0.3:8000", 0, 0, 0.0, 4 | 8),
    ]);
    expect(est.pool(snap, tracked(snap), 5, 0.8)).toBeCloseTo(1.0 / 3.0);
    const roles = new StaticArray<u8>(3);
    roles[0] = POD_ROLE_PREFILL;
    roles[1] = POD_ROLE_DECODE;
    roles[2] = 0; // unlabeled: decode stage
    snap.roles = roles;
    expect(est.pool(snap, tracked(snap), 5, 0.8)).toBeCloseTo(1.0);
    roles[0] = POD_ROLE_PREFILL | POD_ROLE_DECODE; // both stages: prefill 1.0, decode (1 + 0 + 0) / 3
    expect(est.pool(snap, tracked(snap), 5, 0.8)).toBeCloseTo(1.0);
  });
});
