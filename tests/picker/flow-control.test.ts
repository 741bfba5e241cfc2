// Flow control in the real filter (build/filter.wasm) through the emulator's host, on virtual time: a
// saturated pool holds requests paused and resumes them as capacity frees, highest priority first; a TTL
// answers 429 (503 while the pool is empty) with llm-d-router's reason header; a client that goes while
// held leaves the queue; an empty pool holds requests until endpoints appear.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { SnapshotFlowControl, FlowBand } from "../../companion/snapshot";
import type { HttpStream } from "../../envoy/emulator/host";
import { PickerHost, header, destination, completion } from "./harness";

const A = "10.0.0.1:8000";
const REASON = "x-llm-d-request-dropped-reason";
const QUEUED = (p: string) => `endpoint_picker.flow_control.priority_${p}.queue_size`;

function band(priority: number, over: Partial<FlowBand> = {}): FlowBand {
  return { priority, maxRequests: 5000, maxBytes: 1e9, fairness: "global-strict", ordering: "fcfs", ...over };
}

function flow(over: Partial<SnapshotFlowControl> = {}): SnapshotFlowControl {
  return {
    defaultRequestTtlMs: 60_000,
    noEndpointRequestTtlMs: 60_000,
    maxRequests: 0,
    maxBytes: 0,
    usageLimit: 1.0,
    defaultBand: band(0),
    defaultNegativeBand: band(0),
    bands: [],
    ...over,
  };
}

/**
 * One endpoint whose gauges show 1 request running on 0.4 of its KV cache: each of the filter's own requests
 * in flight counts 0.4 (filter/saturation.ts), so two of them reach the KV threshold 0.8 and saturate it.
 */
function saturatedHost(fc: SnapshotFlowControl, config: Record<string, unknown> = {}) {
  const h = new PickerHost({ config: { objectivePriorities: { critical: 10, batch: -1 }, ...config } });
  h.publish([{ address: A, queued: 0, running: 1, kvUsage: 0.4 }], { saturationKv: 0.8 }, [], [], [], fc);
  const running: HttpStream[] = [];
  for (let i = 0; i < 2; i++) {
    const { stream, dest } = h.pick({ body: completion("m", `busy ${i}`) });
    assert.equal(dest, A, "below the limit: straight through");
    running.push(stream);
  }
  return { h, running };
}

const waiting = (s: HttpStream) => s.forwarded.requestHeaders === null && s.localReply === null;

test("a held request resumes when a request ends, with its pick; its fairness headers never reach the upstream", () => {
  const { h, running } = saturatedHost(flow());
  const held = h.send({
    headers: [
      ["x-llm-d-inference-fairness-id", "tenant-a"],
      ["x-gateway-inference-fairness-id", "tenant-a"],
    ],
    body: completion("m", "waits"),
  });
  assert.ok(waiting(held), "saturated: held, neither forwarded nor answered");
  assert.equal(h.gauge(QUEUED("0")), 1);
  h.advance(100); // ticks: still saturated
  assert.ok(waiting(held));
  running[0].finish(); // a request ends: room for one
  assert.equal(destination(held), A);
  assert.equal(h.gauge(QUEUED("0")), 0);
  assert.deepEqual(header(held.forwarded.requestHeaders, "x-llm-d-inference-fairness-id"), []);
  assert.deepEqual(header(held.forwarded.requestHeaders, "x-gateway-inference-fairness-id"), []);
  assert.equal(h.counter("endpoint_picker.flow_control.dispatched"), 1);
});

test("strict priority: the critical request goes before the earlier batch one", () => {
  const { h, running } = saturatedHost(flow());
  const batch = h.send({ headers: [["x-gateway-inference-objective", "batch"]], body: completion("m", "b") });
  const critical = h.send({ headers: [["x-gateway-inference-objective", "critical"]], body: completion("m", "c") });
  assert.ok(waiting(batch) && waiting(critical));
  assert.equal(h.gauge(QUEUED("10")), 1);
  assert.equal(h.gauge(QUEUED("minus_1")), 1);
  running[0].finish();
  assert.equal(destination(critical), A);
  assert.ok(waiting(batch), "the batch request still waits");
  running[1].finish();
  assert.equal(destination(batch), A);
});

test("a request waiting past defaultRequestTTL gets 429 rejected-ttl-expired", () => {
  const { h } = saturatedHost(flow({ defaultRequestTtlMs: 1000 }));
  const held = h.send({ body: completion("m", "too long") });
  h.advance(900);
  assert.ok(waiting(held));
  h.advance(200);
  assert.equal(held.localReply?.status, 429);
  assert.deepEqual(header(held.localReply!.headers, REASON), ["rejected-ttl-expired"]);
  assert.match(
    Buffer.from(held.localReply!.body).toString(),
    /^inference error: ResourceExhausted - request timed out in queue/,
  );
  assert.equal(h.gauge(QUEUED("0")), 0);
  assert.equal(h.counter("endpoint_picker.flow_control.rejected_ttl_expired"), 1);
});

test("a client that disconnects while held leaves the queue at once", () => {
  const { h, running } = saturatedHost(flow());
  const gone = h.send({ body: completion("m", "bye") });
  const stays = h.send({ body: completion("m", "stays") });
  assert.equal(h.gauge(QUEUED("0")), 2);
  gone.finish(); // the downstream went away: on_delete
  assert.equal(h.gauge(QUEUED("0")), 1);
  assert.equal(h.counter("endpoint_picker.flow_control.cancelled"), 1);
  running[0].finish();
  assert.equal(destination(stays), A, "the next in line, not the departed one");
});

test("a full band answers 429 rejected-saturated at once", () => {
  const { h } = saturatedHost(flow({ defaultBand: band(0, { maxRequests: 1 }) }));
  const first = h.send({ body: completion("m", "1") });
  const second = h.send({ body: completion("m", "2") });
  assert.ok(waiting(first));
  assert.equal(second.localReply?.status, 429);
  assert.deepEqual(header(second.localReply!.headers, REASON), ["rejected-saturated"]);
});

test("an empty pool holds requests until endpoints appear, or answers 503 rejected-no-endpoints at noEndpointRequestTTL", () => {
  const fc = flow({ noEndpointRequestTtlMs: 5000 });
  const h = new PickerHost();
  h.publish([], {}, [], [], [], fc);
  const early = h.send({ body: completion("m", "scale me up") });
  assert.ok(waiting(early), "held while there is no endpoint");
  h.advance(3000);
  h.publish([{ address: A }], {}, [], [], [], fc); // a pod became ready
  h.advance(20);
  assert.equal(destination(early), A);

  h.publish([], {}, [], [], [], fc);
  h.advance(20);
  const late = h.send({ body: completion("m", "nobody") });
  h.advance(5100);
  assert.equal(late.localReply?.status, 503);
  assert.deepEqual(header(late.localReply!.headers, REASON), ["rejected-no-endpoints"]);
});

test("without the section the filter does not hold: a saturated pool serves (and sheds sheddable requests)", () => {
  const h = new PickerHost({ config: { objectivePriorities: { batch: -1 } } });
  h.publish([{ address: A, queued: 9 }], { saturationQueue: 2 });
  assert.equal(h.pick({ body: completion("m", "x") }).dest, A);
  const shed = h.send({ headers: [["x-gateway-inference-objective", "batch"]], body: completion("m", "y") });
  assert.equal(shed.localReply?.status, 429);
  assert.deepEqual(header(shed.localReply!.headers, REASON), []);
});
