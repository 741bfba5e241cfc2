// Flow control's queues (filter/flow-control.ts) and its snapshot section: strict priority between bands,
// fairness between flows, order within a flow, limits, TTLs across an empty pool.
import { decodeSnapshot, Snapshot } from "../../filter/snapshot";
import {
  FlowControl,
  FlowConfig,
  Waiter,
  ADMITTED,
  OVER_CAPACITY,
  FAIRNESS_ROUND_ROBIN,
  FAIRNESS_PROGRAM_AWARE,
  ORDERING_SLO_DEADLINE,
} from "../../filter/flow-control";
import { buildBlobWith, TestEndpoint, TestProfile, TestFlow } from "./blob";

// Metric stubs: ids by name, gauges summed here.
let names: string[] = [];
let values: i64[] = [];
function define(_kind: i32, name: string): u32 {
  const at = names.indexOf(name);
  if (at >= 0) return <u32>at + 1;
  names.push(name);
  values.push(0);
  return <u32>names.length;
}
function add(id: u32, by: i64): void {
  values[id - 1] += by;
}
function gauge(name: string): i64 {
  const at = names.indexOf(name);
  return at < 0 ? -1 : values[at];
}

function snapWith(eps: TestEndpoint[], flow: TestFlow): Snapshot {
  return decodeSnapshot(buildBlobWith(1, eps, new TestProfile(), null, null, flow))!;
}

function ep(address: string, queued: u32, kv: f32, flags: u8 = 4 | 8 | 16): TestEndpoint {
  return new TestEndpoint(address, flags, queued, kv);
}

function control(cfg: FlowConfig): FlowControl {
  const fc = new FlowControl(define, add);
  fc.configure(cfg, []);
  return fc;
}

let nextId: u32 = 1;
function waiter(priority: i32, flow: u32 = 0, slo: u64 = u64.MAX_VALUE): Waiter {
  const w = new Waiter(nextId++, priority, flow, flow == 0 ? "default-flow" : "tenant-" + flow.toString(), slo);
  w.bytes = 100;
  return w;
}

function order(fc: FlowControl): u32[] {
  const out: u32[] = [];
  for (let w = fc.takeNext(); w != null; w = fc.takeNext()) out.push(w.contextId);
  return out;
}

describe("flow control", () => {
  beforeEach(() => {
    names = [];
    values = [];
    nextId = 1;
  });

  test("section 6 decodes: TTLs, limits, templates, explicit bands sorted by priority", () => {
    const f = new TestFlow();
    f.defaultTtlMs = 30000;
    f.noEndpointTtlMs = 120000;
    f.maxRequests = 7;
    f.usageLimit = 0.9;
    f.bands = [
      [-5, 10, 0, 0],
      [10, 3, FAIRNESS_ROUND_ROBIN, ORDERING_SLO_DEADLINE],
    ];
    const snap = snapWith([ep("10.0.0.1:8000", 0, 0.1)], f);
    const cfg = snap.flow!;
    expect(cfg.defaultTtlMs).toBe(30000);
    expect(cfg.noEndpointTtlMs).toBe(120000);
    expect(cfg.maxRequests).toBe(7);
    expect(cfg.usageLimit).toBe(0.9);
    expect(cfg.bands.length).toBe(2);
    expect(cfg.bands[0].priority).toBe(10);
    expect(cfg.bands[0].fairness).toBe(FAIRNESS_ROUND_ROBIN);
    expect(cfg.bands[0].ordering).toBe(ORDERING_SLO_DEADLINE);
    expect(cfg.bandFor(-5).maxRequests).toBe(10);
    expect(cfg.bandFor(3).maxRequests).toBe(5000); // the template
    expect(snapWith([ep("10.0.0.1:8000", 0, 0.1)], new TestFlow()).flow).not.toBeNull();
    expect(decodeSnapshot(buildBlobWith(1, [ep("10.0.0.1:8000", 0, 0.1)], new TestProfile()))!.flow).toBeNull();
  });

  test("strict priority between bands; first come first served within a flow", () => {
    const fc = control(new FlowConfig());
    const low1 = waiter(-1),
      mid1 = waiter(0),
      high = waiter(5),
      mid2 = waiter(0),
      low2 = waiter(-1);
    for (let k = 0; k < 5; k++) expect(fc.admit([low1, mid1, high, mid2, low2][k], 1000 + <u64>k)).toBe(ADMITTED);
    expect(fc.count).toBe(5);
    expect(fc.waitingAtOrAbove(0)).toBe(true);
    expect(fc.waitingAtOrAbove(6)).toBe(false);
    expect(order(fc)).toStrictEqual([high.contextId, mid1.contextId, mid2.contextId, low1.contextId, low2.contextId]);
    expect(fc.count).toBe(0);
    expect(gauge("endpoint_picker.flow_control.priority_0.queue_size")).toBe(0);
  });

  test("round-robin fairness serves flows in turn; global-strict serves the oldest head", () => {
    const rr = new FlowConfig();
    rr.defaultBand.fairness = FAIRNESS_ROUND_ROBIN;
    const fair = control(rr);
    // Tenant 1 floods first, tenant 2 arrives later.
    const flood: Waiter[] = [];
    for (let k = 0; k < 4; k++) flood.push(waiter(0, 1));
    const light = waiter(0, 2);
    for (let k = 0; k < 4; k++) fair.admit(flood[k], 100 + <u64>k);
    fair.admit(light, 200);
    const got = order(fair);
    expect(got.indexOf(light.contextId)).toBeLessThanOrEqual(1); // served within the first two

    const strict = control(new FlowConfig());
    const a: Waiter[] = [];
    for (let k = 0; k < 3; k++) a.push(waiter(0, 1));
    const b = waiter(0, 2);
    for (let k = 0; k < 3; k++) strict.admit(a[k], 100 + <u64>k);
    strict.admit(b, 200);
    expect(order(strict)).toStrictEqual([a[0].contextId, a[1].contextId, a[2].contextId, b.contextId]);
  });

  test("slo-deadline ordering: earliest TTFT deadline first, requests without one last", () => {
    const cfg = new FlowConfig();
    cfg.defaultBand.ordering = ORDERING_SLO_DEADLINE;
    const fc = control(cfg);
    const none = waiter(0, 0),
      late = waiter(0, 0, 5000),
      soon = waiter(0, 0, 1500);
    fc.admit(none, 1000);
    fc.admit(late, 1001);
    fc.admit(soon, 1002);
    expect(order(fc)).toStrictEqual([soon.contextId, late.contextId, none.contextId]);
  });

  test("limits: a band's maxRequests and the global maxRequests / maxBytes turn requests away", () => {
    const cfg = new FlowConfig();
    cfg.defaultBand.maxRequests = 2;
    cfg.maxBytes = 1000;
    const fc = control(cfg);
    expect(fc.admit(waiter(0), 1)).toBe(ADMITTED);
    expect(fc.admit(waiter(0), 2)).toBe(ADMITTED);
    expect(fc.admit(waiter(0), 3)).toBe(OVER_CAPACITY);
    expect(fc.admit(waiter(1), 4)).toBe(ADMITTED); // another band
    const big = waiter(2);
    big.bytes = 800;
    expect(fc.admit(big, 5)).toBe(OVER_CAPACITY); // 300 queued + 800 > 1000
    expect(fc.count).toBe(3);
    expect(gauge("endpoint_picker.flow_control.priority_0.queue_size")).toBe(2);
    expect(gauge("endpoint_picker.flow_control.priority_0.queue_bytes")).toBe(200);
  });

  test("a request that leaves (client gone) is out of its queue and the gauges", () => {
    const fc = control(new FlowConfig());
    const w = waiter(-3);
    fc.admit(w, 10);
    expect(gauge("endpoint_picker.flow_control.priority_minus_3.queue_size")).toBe(1);
    expect(fc.remove(w)).toBe(true);
    expect(fc.remove(w)).toBe(false);
    expect(gauge("endpoint_picker.flow_control.priority_minus_3.queue_size")).toBe(0);
    expect(fc.takeNext()).toBeNull();
  });

  test("TTL: defaultRequestTTL with endpoints, noEndpointRequestTTL without, each from the regime's start", () => {
    const cfg = new FlowConfig();
    cfg.defaultTtlMs = 1000;
    cfg.noEndpointTtlMs = 5000;
    const fc = control(cfg);
    const out: Waiter[] = [];
    fc.expired(100, true, out); // the pool is empty from t=100
    const w = waiter(0);
    fc.admit(w, 100);
    fc.expired(2000, true, out);
    expect(out.length).toBe(0); // 1.9 s of 5 s
    fc.expired(3000, false, out); // pods appeared at 3 s: a fresh 1 s budget
    fc.expired(3900, false, out);
    expect(out.length).toBe(0);
    fc.expired(4000, false, out);
    expect(out.length).toBe(1);
    expect(fc.poolEmpty).toBe(false);
    const out2: Waiter[] = [];
    fc.expired(4000, true, out2); // empty again at 4 s
    fc.expired(8999, true, out2);
    expect(out2.length).toBe(0);
    fc.expired(9000, true, out2);
    expect(out2.length).toBe(1);
  });

  test("usage limits: static is one limit; priority-holdback steps ceilings by rank or by value", () => {
    const f = new TestFlow();
    f.usageLimit = 0.9;
    const fixed = control(snapWith([ep("10.0.0.1:8000", 0, 0.1)], f).flow!);
    fixed.band(10);
    fixed.band(-10);
    expect(fixed.ceiling(10)).toBe(0.9);
    expect(fixed.ceiling(-10)).toBe(0.9);
    f.holdbackDomain = 0;
    f.minCeiling = 0.6;
    f.maxCeiling = 1.0;
    const cfg = snapWith([ep("10.0.0.1:8000", 0, 0.1)], f).flow!;
    expect(cfg.holdback).toBe(true);
    const byRank = control(cfg);
    expect(byRank.ceiling(0)).toBe(1.0); // one band: no holdback (work-conserving)
    byRank.band(10);
    byRank.band(-10);
    byRank.band(-1);
    // four bands 10, 0, -1, -10: 1.0, 0.8667, 0.7333, 0.6
    expect(byRank.ceiling(10)).toBeCloseTo(1.0);
    expect(byRank.ceiling(0)).toBeCloseTo(1.0 - 0.4 / 3);
    expect(byRank.ceiling(-1)).toBeCloseTo(1.0 - 0.8 / 3);
    expect(byRank.ceiling(-10)).toBeCloseTo(0.6);
    cfg.holdbackByValue = true;
    expect(byRank.ceiling(0)).toBeCloseTo(0.6 + (10.0 / 20.0) * 0.4);
    expect(byRank.ceiling(-1)).toBeCloseTo(0.6 + (9.0 / 20.0) * 0.4);
  });

  test("dispatch stops at the first band whose ceiling the saturation reaches (head-of-line, as upstream)", () => {
    const f = new TestFlow();
    f.holdbackDomain = 0;
    f.minCeiling = 0.5;
    const fc = control(snapWith([ep("10.0.0.1:8000", 0, 0.1)], f).flow!);
    const high = waiter(10),
      low = waiter(-10);
    expect(fc.admit(low, 1000)).toBe(ADMITTED);
    expect(fc.admit(high, 1001)).toBe(ADMITTED);
    // bands 10, 0, -10: ceilings 1.0, 0.75, 0.5
    expect(fc.takeNext(2000, 1.0)).toBeNull();
    expect(fc.takeNext(2000, 0.7)!.contextId).toBe(high.contextId);
    expect(fc.takeNext(2000, 0.7)).toBeNull(); // band 0 is empty but at its ceiling: the cycle stops
    expect(fc.takeNext(2000, 0.4)!.contextId).toBe(low.contextId);
  });

  test("program-aware fairness: the flow with the least attained service goes first; service decays", () => {
    const f = new TestFlow();
    f.bandFairness = FAIRNESS_PROGRAM_AWARE;
    f.lasWeightService = 0.8;
    f.lasWeightHeadWait = 0.2;
    f.lasHalfLifeS = 10;
    const cfg = snapWith([ep("10.0.0.1:8000", 0, 0.1)], f).flow!;
    expect(cfg.defaultBand.fairness).toBe(FAIRNESS_PROGRAM_AWARE);
    const fc = control(cfg);
    // Flow 1 has been served a lot, flow 2 little.
    fc.charge(1, 5000, 0, 1000);
    fc.charge(2, 500, 0, 1000);
    const a1 = waiter(0, 1),
      a2 = waiter(0, 1),
      b1 = waiter(0, 2);
    expect(fc.admit(a1, 1000)).toBe(ADMITTED);
    expect(fc.admit(a2, 1001)).toBe(ADMITTED);
    expect(fc.admit(b1, 1500)).toBe(ADMITTED);
    // flow 2: 0.8 x 1 + 0.2 x 0 beats flow 1: 0.8 x 0 + 0.2 x 1, though its head is younger
    expect(fc.takeNext(2000)!.contextId).toBe(b1.contextId);
    expect(fc.takeNext(2000)!.contextId).toBe(a1.contextId);
    // Half-life 10 s: 20 s later flow 1's 5000 is 1250.
    expect(fc.service.of(1, 21000, 10)).toBeCloseTo(1250);
    // Flows with no completion for the eviction TTL are forgotten.
    fc.service.evict(1000 + 3600 * 1000 + 1, 3600);
    expect(fc.service.size).toBe(0);
  });

  test("heavy-flow headroom: a flow served above the mean stops below the ceiling; a lighter one goes past it", () => {
    const f = new TestFlow();
    f.bandFairness = FAIRNESS_PROGRAM_AWARE;
    f.lasWeightService = 0.8;
    f.heavyFlowHeadroom = 0.1;
    const fc = control(snapWith([ep("10.0.0.1:8000", 0, 0.1)], f).flow!);
    // One active flow alone is never heavy.
    fc.charge(1, 9000, 0, 1000);
    expect(fc.flowCeiling(0, 1, 1000)).toBe(1.0);
    fc.charge(2, 1000, 0, 1000);
    expect(fc.flowCeiling(0, 1, 1000)).toBeCloseTo(0.9); // above the mean (5000)
    expect(fc.flowCeiling(0, 2, 1000)).toBe(1.0);
    // Flow 1 waits (pool at 0.95: past its ceiling); flow 2 does not queue behind it.
    const heavy = waiter(0, 1);
    expect(fc.admit(heavy, 1000)).toBe(ADMITTED);
    expect(fc.mustWait(0, 2, 1000)).toBe(false);
    expect(fc.mustWait(0, 1, 1000)).toBe(true); // its own flow waits
    expect(fc.takeNext(1000, 0.95)).toBeNull();
    expect(fc.takeNext(1000, 0.85)!.contextId).toBe(heavy.contextId);
    // Without the headroom, a band with anything waiting is first come first served.
    const plain = control(snapWith([ep("10.0.0.1:8000", 0, 0.1)], new TestFlow()).flow!);
    expect(plain.admit(waiter(0, 1), 1000)).toBe(ADMITTED);
    expect(plain.mustWait(0, 2, 1000)).toBe(true);
  });

  test("per-flow metrics: the first 16 fairness ids get their own gauge, the others share `other`", () => {
    const fc = control(new FlowConfig());
    const ws: Waiter[] = [];
    for (let k: u32 = 1; k <= 18; k++) {
      const w = waiter(0, k);
      ws.push(w);
      expect(fc.admit(w, 1000)).toBe(ADMITTED);
    }
    expect(gauge("endpoint_picker.flow_control.flow.tenant-1.queue_size")).toBe(1);
    expect(gauge("endpoint_picker.flow_control.flow.tenant-16.queue_size")).toBe(1);
    expect(gauge("endpoint_picker.flow_control.flow.tenant-17.queue_size")).toBe(-1); // never defined
    expect(gauge("endpoint_picker.flow_control.flow.other.queue_size")).toBe(2);
    fc.remove(ws[17]);
    expect(gauge("endpoint_picker.flow_control.flow.other.queue_size")).toBe(1);
    fc.remove(ws[0]);
    expect(gauge("endpoint_picker.flow_control.flow.tenant-1.queue_size")).toBe(0);
  });

  test("soft-reflective ceilings: 1 - i x s / (N - 1); top band open below 1; past its ceiling a band is duty-cycled", () => {
    const f = new TestFlow();
    f.softReflective = true;
    const cfg = snapWith([ep("10.0.0.1:8000", 0, 0.1)], f).flow!;
    expect(cfg.softReflective).toBe(true);
    const fc = control(cfg);
    fc.band(10);
    fc.band(-10); // bands 10, 0, -10
    fc.observe(0.4, false);
    expect(fc.ceiling(10)).toBe(1.0);
    expect(fc.ceiling(0)).toBeCloseTo(0.8); // 1 - 1 x 0.4 / 2
    expect(fc.ceiling(-10)).toBeCloseTo(0.6); // 1 - 2 x 0.4 / 2: still open at 0.4
    // s = 0.75: band 0's ceiling 0.625 and band -10's 0.25 are passed: open on 1 cycle in round(0.75 / 0.25) = 3.
    let open = 0;
    for (let k = 0; k < 9; k++) {
      fc.observe(0.75, true);
      if (fc.ceiling(-10) > 0.75) open++;
      expect(fc.ceiling(0) > 0.75).toBe(fc.ceiling(-10) > 0.75); // one shared tick
    }
    expect(open).toBe(3);
    fc.observe(1.0, false);
    expect(fc.ceiling(10)).toBe(1.0); // the top band stops at 1 itself (saturation >= ceiling)
    expect(fc.ceiling(0)).toBe(0.0);
  });
});
