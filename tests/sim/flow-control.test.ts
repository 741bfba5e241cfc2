// Flow control on the virtual-time fleet (issue 12): the fleet's held requests and joining pods, the
// flow-control workloads and figures, and the acceptance checks against the real filter (build/filter.wasm)
// on a smaller fleet than the benchmark's: 4 pods, a 10 s overload window.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { measureCapacity } from "./capacity";
import { runFleet } from "./fleet";
import { type FlowRun, runFlow } from "./flow-runs";
import { endedVisibly, flowReport, jainIndex, maxMinShares } from "./flow-results";
import { BAND_MIX, BANDS, FAIRNESS_HEADER, OBJECTIVE_HEADER, makeFlowWorkload } from "./flow-workloads";
import { leastRequestPicker } from "./pickers/basic";
import { defaultFilterWasm } from "./pickers/filter";
import type { Pick, Picker } from "./pickers/picker";
import { loadProfile } from "./profile";
import { atRate, makeWorkload } from "./workloads";

const profile = loadProfile("bench-scaled");
const PODS = 4;
const wasm = defaultFilterWasm();
const hasFilter = existsSync(wasm);
/** A filter with flow control writes llm-d-router's reason header; one without has no such string (UTF-16 in AssemblyScript's data). */
const REASON = "x-llm-d-request-dropped-reason";
const hasFlowControl =
  hasFilter &&
  (() => {
    const bytes = readFileSync(wasm);
    return bytes.includes(Buffer.from(REASON, "utf16le")) || bytes.includes(REASON);
  })();
const noFilter = !hasFilter && "build/filter.wasm not built";
const noFlowControl = noFilter || (!hasFlowControl && "build/filter.wasm has no flow control yet");
let capacityMemo = 0;
const capacity = () =>
  (capacityMemo ||= measureCapacity({
    pods: PODS,
    profile,
    workload: makeWorkload("sharegpt", { count: 2000, ratePerSec: 1, model: profile.model, seed: 3 }),
    seed: 3,
  }).requestsPerSec);
const TIMING = { beforeMs: 20_000, windowMs: 10_000, afterMs: 10_000 };

/** Holds every request `delayMs`, then places it on pod 0 or rejects it (odd ids): a picker that decides later. */
function delayedPicker(delayMs: number): Picker {
  let n = 0;
  return {
    name: "delayed",
    start() {},
    pick(_req, _p, ctx, later) {
      const i = n++;
      ctx.clock.at(ctx.clock.now() + delayMs, () =>
        later(i % 2 === 1 ? { reject: 429, reason: "test-reason" } : ({ pod: 0 } as Pick)),
      );
      return { held: true };
    },
  };
}

test("fleet: a held request is decided later, on the fleet's clock; the timeline counts it held meanwhile", () => {
  const w = atRate(makeWorkload("sharegpt", { count: 40, ratePerSec: 1, model: profile.model, seed: 1 }), 20);
  const r = runFleet({ pods: 2, profile, picker: delayedPicker(700), workload: w, timelineMs: 100 });
  assert.equal(r.records.length, 40);
  for (const [i, x] of r.records.entries()) {
    assert.ok(Math.abs(x.dispatchMs - x.arrivalMs - 700) < 1e-6, `${x.id} decided at ${x.dispatchMs}`);
    if (i % 2 === 1) assert.deepEqual([x.status, x.httpStatus, x.reason, x.pod], ["rejected", 429, "test-reason", -1]);
    else assert.ok(x.status === "ok" && x.pod === 0 && x.firstTokenMs > x.dispatchMs);
  }
  const peak = Math.max(...r.timeline.map((s) => s.held.all ?? 0));
  assert.ok(peak >= 8 && peak <= 25, `peak held ${peak}`); // ~20/s x 0.7 s
  assert.equal(r.timeline.at(-1)!.held.all ?? 0, 0);
});

test("fleet: a picker answering through later() inside pick() is a bug the fleet reports", () => {
  const bad: Picker = {
    name: "bad",
    start() {},
    pick(_r, _p, _c, later) {
      later({ pod: 0 });
      return { held: true };
    },
  };
  const w = atRate(makeWorkload("sharegpt", { count: 2, ratePerSec: 1, model: profile.model, seed: 1 }), 5);
  assert.throws(() => runFleet({ pods: 1, profile, picker: bad, workload: w }), /inside pick/);
});

test("fleet: pods join at their time; before, least-request answers 503 no_healthy_upstream", () => {
  const w = atRate(makeWorkload("sharegpt", { count: 60, ratePerSec: 1, model: profile.model, seed: 2 }), 20);
  const joinAt = 1500;
  const r = runFleet({
    pods: 0,
    joins: [{ atMs: joinAt, pods: 2 }],
    profile,
    picker: leastRequestPicker(),
    workload: w,
  });
  for (const x of r.records) {
    if (x.arrivalMs < joinAt)
      assert.deepEqual([x.status, x.httpStatus, x.reason], ["rejected", 503, "no_healthy_upstream"]);
    else assert.ok(x.status === "ok" && (x.pod === 0 || x.pod === 1), JSON.stringify(x));
  }
  assert.ok(r.records.some((x) => x.arrivalMs < joinAt) && r.records.some((x) => x.arrivalMs >= joinAt));
  assert.deepEqual(
    r.timeline.map((s) => s.pods),
    r.timeline.map((s) => (s.tMs >= joinAt ? 2 : 0)),
  );
});

test("flow workloads: tenants, bands and scale-from-zero have their rates, headers and pods", () => {
  const C = 100;
  const t = makeFlowWorkload("tenants", { capacityPerSec: C, pods: 8, model: "m", seed: 1 });
  const count = (cls: string, from: number, to: number) =>
    t.requests.filter((r) => r.tenant === cls && r.arrivalMs >= from && r.arrivalMs < to).length;
  // tenant-a 0.3 C throughout; tenant-b 0.3 C calm, 1.5 C (3x its fair share of 0.5 C) in the window.
  assert.ok(Math.abs(count("tenant-a", 30_000, 60_000) / 30 - 30) < 4);
  assert.ok(Math.abs(count("tenant-b", 30_000, 60_000) / 30 - 150) < 10);
  assert.ok(Math.abs(count("tenant-b", 0, 30_000) / 30 - 30) < 4);
  assert.ok(t.requests.every((r) => r.headers?.some(([k, v]) => k === FAIRNESS_HEADER && v === r.tenant)));
  assert.ok(t.requests.every((r, i) => i === 0 || r.arrivalMs >= t.requests[i - 1].arrivalMs));
  assert.deepEqual(t.window, { fromMs: 30_000, toMs: 60_000 });

  const b = makeFlowWorkload("bands", { capacityPerSec: C, pods: 8, model: "m", seed: 1 });
  for (const band of BANDS) {
    const n = (from: number, to: number) =>
      b.requests.filter((r) => r.objective === band && r.arrivalMs >= from && r.arrivalMs < to).length / 30;
    assert.ok(Math.abs(n(0, 30_000) - 70 * BAND_MIX[band]) < 4 + 0.1 * 70 * BAND_MIX[band], `${band} steady`);
    assert.ok(Math.abs(n(30_000, 60_000) - 200 * BAND_MIX[band]) < 6 + 0.1 * 200 * BAND_MIX[band], `${band} burst`);
  }
  assert.ok(b.requests.every((r) => r.headers?.some(([k, v]) => k === OBJECTIVE_HEADER && v === r.objective)));
  const calm = makeFlowWorkload("bands", { capacityPerSec: C, pods: 8, model: "m", seed: 1, overload: false });
  assert.ok(calm.requests.length < b.requests.length * 0.75);

  const z = makeFlowWorkload("scale-from-zero", { capacityPerSec: C, pods: 8, model: "m", seed: 1 });
  assert.equal(z.pods, 0);
  assert.deepEqual(z.joins, [{ atMs: z.requests[0].arrivalMs + 20_000, pods: 8 }]);
  assert.deepEqual(makeFlowWorkload("bands", { capacityPerSec: C, pods: 8, model: "m", seed: 1 }).requests, b.requests);
});

test("figures: Jain's index, max-min fair shares, and the report's loss check", () => {
  assert.equal(jainIndex([1, 1, 1]), 1);
  assert.ok(Math.abs(jainIndex([1, 0]) - 0.5) < 1e-12);
  assert.deepEqual(maxMinShares([30, 150], 100), [30, 70]);
  assert.deepEqual(maxMinShares([80, 150], 100), [50, 50]);
  const base = {
    pod: 0,
    arrivalMs: 0,
    dispatchMs: 0,
    firstTokenMs: 10,
    finishedMs: 20,
    promptTokens: 1,
    outputTokens: 1,
    cachedTokens: 0,
    fallback: false,
    gateway: 0,
    tenant: "",
    objective: "",
  };
  const recs = [
    { ...base, id: "a", status: "ok" as const, httpStatus: 200, reason: "" },
    { ...base, id: "b", status: "rejected" as const, httpStatus: 429, reason: "rejected-ttl-expired" },
    { ...base, id: "c", status: "rejected" as const, httpStatus: 429, reason: "" },
    { ...base, id: "d", status: "unfinished" as const, httpStatus: 0, reason: "" },
  ];
  assert.deepEqual(recs.map(endedVisibly), [true, true, false, false]);
  const rep = flowReport(recs, ["all"], { fromMs: 0, toMs: 1 });
  assert.equal(rep.lost, 2);
  assert.deepEqual(rep.rejections, { "429 rejected-ttl-expired": 1, "429 (no reason)": 1 });
});

const runs = new Map<string, FlowRun>();
/** One run per (workload, picker, overload), shared by the tests below. */
function run(
  kind: "tenants" | "bands" | "scale-from-zero",
  picker: "flow-control" | "filter",
  overload = true,
  ttlMs = 15_000,
): FlowRun {
  const key = `${kind}/${picker}/${overload}/${ttlMs}`;
  let r = runs.get(key);
  if (!r) {
    r = runFlow(kind, picker, {
      profile,
      pods: PODS,
      capacityPerSec: capacity(),
      seed: 3,
      overload,
      ...TIMING,
      flowControl: { defaultRequestTtlMs: ttlMs, noEndpointRequestTtlMs: ttlMs },
      wasm,
    });
    runs.set(key, r);
  }
  return r;
}
const cls = (r: FlowRun, name: string) => r.report.classes.find((c) => c.class === name)!;

test(
  "filter without flow control (plumbing): every request ends visibly; only sheddable requests are shed",
  { skip: noFilter },
  () => {
    const r = run("bands", "filter");
    assert.equal(r.report.lost, 0, r.report.lostExamples.join("; "));
    assert.equal(r.result.pickerStats.held, 0, "nothing is held without the flow-control section");
    assert.equal(cls(r, "critical").all.rejected + cls(r, "standard").all.rejected, 0);
    assert.ok(cls(r, "sheddable").all.rejected > 0, "the 2x burst saturates the pool: sheddable requests get 429");
    for (const x of r.result.records.filter((y) => y.status === "rejected")) assert.equal(x.httpStatus, 429);
    const z = run("scale-from-zero", "filter");
    assert.equal(z.report.lost, 0, z.report.lostExamples.join("; "));
    const joinAt = z.workload.joins[0].atMs;
    for (const x of z.result.records)
      if (x.arrivalMs < joinAt - 200) assert.equal(x.httpStatus, 503, `${x.id} arrived at ${x.arrivalMs}`);
  },
);

const FC_REASONS = ["rejected-saturated", "rejected-ttl-expired", "rejected-no-endpoints"];

test(
  "acceptance: no request is lost silently; every rejection is 429/503 with llm-d-router's reason",
  { skip: noFlowControl },
  () => {
    for (const r of [
      run("bands", "flow-control"),
      run("tenants", "flow-control"),
      run("scale-from-zero", "flow-control"),
    ]) {
      assert.equal(r.report.lost, 0, `${r.workload.name}: ${r.report.lostExamples.join("; ")}`);
      for (const x of r.result.records.filter((y) => y.status === "rejected"))
        assert.ok(FC_REASONS.includes(x.reason) && (x.httpStatus === 429 || x.httpStatus === 503), JSON.stringify(x));
      assert.equal(r.result.pickerStats.heldNow, 0);
    }
  },
);

test(
  "acceptance: in a 2x burst the critical band's p99 TTFT stays within 1.5x of its unloaded p99 (priority-holdback-policy); sheddable waits or gets 429 at its TTL",
  {
    skip: noFlowControl,
  },
  () => {
    const ttl = 15_000;
    const burst = run("bands", "flow-control", true, ttl);
    // Unloaded: the same workload without the burst, routed by the filter without flow control.
    const calm = run("bands", "filter", false);
    const p99 = cls(burst, "critical").window.ttftP99Ms,
      unloaded = cls(calm, "critical").window.ttftP99Ms;
    assert.ok(
      p99 <= 1.5 * unloaded,
      `critical p99 in the burst ${p99.toFixed(0)} ms, unloaded ${unloaded.toFixed(0)} ms`,
    );
    const shed = burst.result.records.filter((x) => x.objective === "sheddable");
    const win = burst.workload.window;
    const inBurst = shed.filter((x) => x.arrivalMs >= win.fromMs && x.arrivalMs < win.toMs);
    const waited = inBurst.filter((x) => x.status === "ok" && x.dispatchMs - x.arrivalMs > 1000).length;
    const expired = shed.filter((x) => x.status === "rejected");
    assert.ok(
      waited + expired.length > inBurst.length / 4,
      `sheddable: ${waited} waited > 1 s, ${expired.length} expired`,
    );
    for (const x of expired) {
      assert.deepEqual([x.httpStatus, x.reason], [429, "rejected-ttl-expired"], x.id);
      const held = x.dispatchMs - x.arrivalMs;
      // llm-d-router sweeps expired requests every second: at the TTL, up to a sweep later.
      assert.ok(held >= ttl - 1 && held <= ttl + 1100, `${x.id} rejected after ${held.toFixed(0)} ms`);
    }
    for (const band of ["critical", "standard"]) assert.equal(cls(burst, band).all.rejected, 0, band);
  },
);

test(
  "acceptance: with tenant-b flooding at 3x its fair share, tenant-a's p99 TTFT stays within 1.5x of its value without the flood (program-aware-fairness, heavy-flow headroom)",
  {
    skip: noFlowControl,
  },
  () => {
    const flood = run("tenants", "flow-control");
    // Without the flood, and without flow control: what tenant-a sees when nobody floods.
    const calm = run("tenants", "filter", false);
    const p99 = cls(flood, "tenant-a").window.ttftP99Ms,
      ref = cls(calm, "tenant-a").window.ttftP99Ms;
    assert.ok(p99 <= 1.5 * ref, `tenant-a p99 in the flood ${p99.toFixed(0)} ms, without ${ref.toFixed(0)} ms`);
    assert.equal(cls(flood, "tenant-a").all.rejected, 0);
    assert.ok(flood.report.jain!.throughput > 0.95, `Jain ${flood.report.jain!.throughput}`);
  },
);

test(
  "acceptance: scale from zero: requests arriving while the pool is empty are served once pods appear, within their TTL",
  { skip: noFlowControl },
  () => {
    const ttl = 60_000;
    const r = run("scale-from-zero", "flow-control", true, ttl);
    const joinAt = r.workload.joins[0].atMs;
    const early = r.result.records.filter((x) => x.arrivalMs < joinAt);
    assert.ok(early.length > 100);
    for (const x of early) {
      assert.equal(x.status, "ok", JSON.stringify(x));
      assert.ok(
        x.dispatchMs >= joinAt && x.dispatchMs - x.arrivalMs < ttl,
        `${x.id}: held ${x.dispatchMs - x.arrivalMs} ms`,
      );
    }
    assert.equal(r.report.lost, 0);
  },
);
