// The simulator against the published figures in shared/reference/simulation-facts.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import { measureCapacity } from "./capacity";
import { VirtualClock } from "./clock";
import { Engine, type RequestResult } from "./engine";
import { runFleet } from "./fleet";
import { decodeMs, prefillMs } from "./latency";
import { createPicker } from "./pickers/index";
import { loadProfile, makeProfile } from "./profile";
import { Rng } from "./rng";
import { TokenSequence, answerText, synthText } from "./text";
import { atRate, makeWorkload } from "./workloads";

const near = (actual: number, expected: number, tolerance: number, what: string) =>
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${what}: ${actual.toFixed(2)} (expected ${expected} +- ${tolerance})`,
  );

test("Dynamo mocker fit: prefill 1k tokens ~32 ms, 8k ~165 ms; decode 5.7 ms idle, ~26 ms at 50% KV, ~34 ms full", () => {
  const p = makeProfile();
  near(prefillMs(p, 1000), 32, 0.5, "prefill 1k");
  near(prefillMs(p, 8000), 165, 1, "prefill 8k");
  const decode = (u: number) => decodeMs(p, { prefillTokens: 0, decodeRequests: 1, kvUsage: u, batchSize: 1 }, null);
  near(decode(0), 5.74, 0.01, "decode idle");
  near(decode(0.5), 26, 0.5, "decode at 50%");
  near(decode(1), 34, 0.1, "decode full");
});

test("llm-d-inference-sim profile: TTFT 30 ms + 0.25 ms per uncached token, ITL 12 +- 2 ms, max-num-seqs 16", () => {
  const p = loadProfile("llm-d-sim-8b-h100");
  assert.equal(p.scheduler.maxNumSeqs, 16);
  const clock = new VirtualClock();
  const engine = new Engine("vllm-v1", p, clock);
  const prompt = synthText(new Rng("llmd"), 1000);
  let result: RequestResult | null = null;
  engine.submit({
    id: "x",
    seq: new TokenSequence(prompt, answerText(prompt, p.model, 101), p.model),
    maxTokens: 101,
    finishReason: "length",
    adapter: null,
    maxTokensParam: 101,
    onFinish: (r) => {
      result = r;
    },
  });
  clock.run();
  const r = result as unknown as RequestResult;
  near(r.firstTokenMs, 30 + 0.25 * 1000, 0.01, "TTFT of 1000 tokens");
  near((r.finishedMs - r.firstTokenMs) / 100, 12, 0.5, "mean ITL");
});

const bench = loadProfile("bench-scaled");

test("shared prefix (scenario C, scaled): prefix-aware routing beats load-only routing at 80% load", () => {
  const workload = makeWorkload("prefix-c", { count: 800, ratePerSec: 1, model: bench.model, seed: 2 });
  const capacity = measureCapacity({ pods: 8, profile: bench, workload, seed: 2 }).requestsPerSec;
  assert.ok(capacity > 5 && capacity < 100, `capacity ${capacity}`);
  const run = (name: "least-request" | "oracle" | "gie") =>
    runFleet({
      pods: 8,
      profile: bench,
      picker: createPicker(name),
      workload: atRate(workload, 0.8 * capacity),
      seed: 2,
    }).summary;
  const lr = run("least-request"),
    oracle = run("oracle"),
    gie = run("gie");
  assert.ok(
    oracle.prefixHitRate > 0.8 && lr.prefixHitRate < 0.5,
    `hit rates oracle ${oracle.prefixHitRate}, least-request ${lr.prefixHitRate}`,
  );
  assert.ok(
    oracle.ttftP99Ms < lr.ttftP99Ms * 0.8,
    `p99 TTFT oracle ${oracle.ttftP99Ms} vs least-request ${lr.ttftP99Ms}`,
  );
  assert.ok(gie.ttftP50Ms < lr.ttftP50Ms, `p50 TTFT gie ${gie.ttftP50Ms} vs least-request ${lr.ttftP50Ms}`);
});

test("ShareGPT-like lengths: little prefix sharing, so routing barely changes throughput", () => {
  const workload = makeWorkload("sharegpt", { count: 1200, ratePerSec: 1, model: bench.model, seed: 2 });
  const capacity = measureCapacity({ pods: 8, profile: bench, workload, seed: 2 }).requestsPerSec;
  const run = (name: "least-request" | "oracle") =>
    runFleet({
      pods: 8,
      profile: bench,
      picker: createPicker(name),
      workload: atRate(workload, 0.8 * capacity),
      seed: 2,
    }).summary;
  const lr = run("least-request"),
    oracle = run("oracle");
  assert.ok(
    lr.prefixHitRate < 0.05 && oracle.prefixHitRate < 0.05,
    `hit rates ${lr.prefixHitRate} ${oracle.prefixHitRate}`,
  );
  assert.ok(
    Math.abs(oracle.outputTokPerSec / lr.outputTokPerSec - 1) < 0.05,
    `throughput ${oracle.outputTokPerSec} vs ${lr.outputTokPerSec}`,
  );
});
