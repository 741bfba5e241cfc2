import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { runFleet } from "./fleet";
import { PICKER_NAMES, createPicker } from "./pickers/index";
import { defaultFilterWasm } from "./pickers/filter";
import { makeProfile } from "./profile";
import { atRate, makeWorkload } from "./workloads";

const profile = makeProfile({ kv: { cacheTokens: 65536 }, metricsLagMs: 500 });
const small = (kind: "prefix-c" | "sharegpt" | "multi-round" | "multi-lora", rate: number, count = 160) =>
  atRate(makeWorkload(kind, { count, ratePerSec: 1, model: profile.model, seed: 5 }), rate);
const hasFilter = existsSync(defaultFilterWasm());

for (const name of PICKER_NAMES) {
  test(
    `${name}: every request of a shared-prefix workload is placed and completes`,
    { skip: name === "filter" && !hasFilter && "build/filter.wasm not built" },
    () => {
      const r = runFleet({ pods: 4, profile, picker: createPicker(name), workload: small("prefix-c", 4) });
      assert.equal(r.records.length, 160);
      assert.ok(
        r.records.every((x) => x.status === "ok" && x.pod >= 0 && x.pod < 4),
        JSON.stringify(r.records.find((x) => x.status !== "ok")),
      );
      assert.ok(
        r.records.every((x) => x.firstTokenMs >= x.arrivalMs && x.finishedMs >= x.firstTokenMs && x.outputTokens > 0),
      );
      assert.equal(r.summary.successRate, 1);
    },
  );
}

test("the same seed gives the same run, request by request", () => {
  for (const name of ["gie", "oracle", "least-request"] as const) {
    const a = runFleet({ pods: 4, profile, picker: createPicker(name), workload: small("prefix-c", 5), seed: 9 });
    const b = runFleet({ pods: 4, profile, picker: createPicker(name), workload: small("prefix-c", 5), seed: 9 });
    assert.deepEqual(a.records, b.records, name);
  }
});

test("round-robin spreads requests evenly; least-request keeps active counts close", () => {
  const rr = runFleet({ pods: 4, profile, picker: createPicker("round-robin"), workload: small("sharegpt", 20) });
  const per = [0, 1, 2, 3].map((p) => rr.records.filter((x) => x.pod === p).length);
  assert.deepEqual(per, [40, 40, 40, 40]);
  const lr = runFleet({
    pods: 4,
    profile,
    picker: createPicker("least-request"),
    workload: small("sharegpt", 60, 400),
  });
  const lrPer = [0, 1, 2, 3].map((p) => lr.records.filter((x) => x.pod === p).length);
  assert.ok(Math.max(...lrPer) - Math.min(...lrPer) < 60, `least-request ${lrPer}`);
});

test("prefix-aware pickers keep groups together: GIE and the oracle hit the prefix cache far more than least-request", () => {
  const run = (name: "gie" | "oracle" | "least-request") =>
    runFleet({ pods: 4, profile, picker: createPicker(name), workload: small("prefix-c", 4, 300) }).summary;
  const lr = run("least-request"),
    gie = run("gie"),
    oracle = run("oracle");
  assert.ok(
    gie.prefixHitRate > lr.prefixHitRate + 0.3,
    `gie ${gie.prefixHitRate} vs least-request ${lr.prefixHitRate}`,
  );
  assert.ok(
    oracle.prefixHitRate > lr.prefixHitRate + 0.3,
    `oracle ${oracle.prefixHitRate} vs least-request ${lr.prefixHitRate}`,
  );
  assert.ok(oracle.ttftP50Ms < lr.ttftP50Ms, "cached prefixes shorten TTFT");
});

test("multi-round sessions send every round after the previous answer; multi-LoRA pods load the adapters", () => {
  const mr = runFleet({
    pods: 4,
    profile,
    picker: createPicker("round-robin"),
    workload: small("multi-round", 20, 100),
  });
  assert.equal(mr.records.length, 100);
  const byId = new Map(mr.records.map((x) => [x.id, x]));
  for (const x of mr.records) {
    const [, s, round] = x.id.split("-");
    if (round !== "0") assert.ok(x.arrivalMs > byId.get(`chat-${s}-${Number(round) - 1}`)!.finishedMs);
  }
  assert.ok(mr.summary.prefixHitRate > 0.5, "history and system prompt come from the cache");
  const lora = runFleet({ pods: 2, profile, picker: createPicker("oracle"), workload: small("multi-lora", 10, 120) });
  assert.equal(lora.summary.successRate, 1);
});

test(
  "filter: the real wasm decides through the emulator host; every pick is a snapshot endpoint",
  { skip: !hasFilter && "build/filter.wasm not built" },
  () => {
    const r = runFleet({ pods: 3, profile, picker: createPicker("filter"), workload: small("sharegpt", 10, 60) });
    const stats = r.pickerStats;
    assert.ok(Number(stats.snapshots) >= 1, "snapshots were published");
    assert.equal(stats.rejected, 0);
    assert.equal(stats.failedWorkers, 0, "no worker VM trapped");
    assert.equal(r.records.filter((x) => x.fallback).length, stats.fallbacks);
    assert.equal(r.summary.successRate, 1);
  },
);
