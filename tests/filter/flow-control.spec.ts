// Flow control's queues (filter/flow-control.ts) and its snapshot section: strict priority between bands,
// fairness between flows, order within a flow, limits, TTLs across an empty pool, and the saturation the
// dispatch waits on.
import { decodeSnapshot, Snapshot } from "../../filter/snapshot";
import { InFlight } from "../../filter/inflight";
import {
  FlowControl,
  FlowConfig,
  Waiter,
  poolSaturation,
  ADMITTED,
  OVER_CAPACITY,
  FAIRNESS_ROUND_ROBIN,
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

  test("saturation: mean of max(waiting / queue threshold, KV / KV threshold); stale 1; empty pool 1", () => {
    const f = new TestFlow();
    const snap = snapWith([ep("10.0.0.1:8000", 5, 0.2), ep("10.0.0.2:8000", 0, 0.4)], f);
    const inflight = new InFlight();
    inflight.rebase(snap);
    // 5/5 = 1.0 and max(0, 0.4/0.8) = 0.5: mean 0.75
    expect(poolSaturation(snap, inflight, 5, 0.8)).toBeCloseTo(0.75);
    // The proxy's own requests beyond what an endpoint runs count as waiting at once.
    for (let k = 0; k < 10; k++) inflight.started(1);
    expect(poolSaturation(snap, inflight, 5, 0.8)).toBeCloseTo((1.0 + 2.0) / 2);
    const stale = snapWith([ep("10.0.0.1:8000", 0, 0.0, 1 | 4 | 8 | 16), ep("10.0.0.2:8000", 0, 0.0)], f);
    const fresh = new InFlight();
    fresh.rebase(stale);
    expect(poolSaturation(stale, fresh, 5, 0.8)).toBeCloseTo(0.5);
    const none = snapWith([], f);
    const empty = new InFlight();
    empty.rebase(none);
    expect(poolSaturation(none, empty, 5, 0.8)).toBe(1.0);
  });
});
