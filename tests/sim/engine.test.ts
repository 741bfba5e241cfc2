import { test } from "node:test";
import assert from "node:assert/strict";
import { VirtualClock } from "./clock";
import { Engine, type RequestResult } from "./engine";
import { makeProfile, type EngineProfile } from "./profile";
import { Rng } from "./rng";
import { TokenSequence, answerText, synthText } from "./text";

function run(profile: EngineProfile, jobs: { at: number; prompt: string; maxTokens: number; adapter?: string }[]) {
  const clock = new VirtualClock();
  const engine = new Engine("vllm-v1", profile, clock, 1);
  const results: RequestResult[] = [];
  jobs.forEach((j, i) =>
    clock.at(j.at, () =>
      engine.submit({
        id: `r${i}`,
        seq: new TokenSequence(
          j.prompt,
          answerText(j.prompt, j.adapter ?? profile.model, j.maxTokens),
          j.adapter ?? profile.model,
        ),
        maxTokens: j.maxTokens,
        finishReason: "length",
        adapter: j.adapter ?? null,
        maxTokensParam: j.maxTokens,
        onFinish: (r) => results.push(r),
      }),
    ),
  );
  return { clock, engine, results };
}

const text = (seed: string, tokens: number) => synthText(new Rng(seed), tokens);
const byId = (rs: RequestResult[]) => Object.fromEntries(rs.map((r) => [r.id, r]));

test("prefill of 1k uncached tokens takes ~32 ms and 8k ~165 ms (Dynamo mocker fit)", () => {
  const { clock, results } = run(makeProfile(), [
    { at: 0, prompt: text("a", 1000), maxTokens: 2 },
    { at: 10_000, prompt: text("b", 8000), maxTokens: 2 },
  ]);
  clock.run();
  const r = byId(results);
  assert.ok(Math.abs(r.r0.firstTokenMs - 32.1) < 0.5, `1k TTFT ${r.r0.firstTokenMs}`);
  assert.ok(Math.abs(r.r1.firstTokenMs - 10_000 - 164.9) < 1, `8k TTFT ${r.r1.firstTokenMs - 10_000}`);
});

test("decode steps take ~5.7 ms on an idle engine and grow with KV usage", () => {
  const idle = run(makeProfile(), [{ at: 0, prompt: text("a", 100), maxTokens: 51 }]);
  idle.clock.run();
  const r = idle.results[0];
  const itl = (r.finishedMs - r.firstTokenMs) / 50;
  assert.ok(itl > 5.7 && itl < 6.0, `idle ITL ${itl}`);
  // Half the cache in use: ~26 ms a step.
  const half = run(makeProfile({ kv: { cacheTokens: 40_000 } }), [{ at: 0, prompt: text("b", 20_000), maxTokens: 11 }]);
  half.clock.run();
  const h = half.results[0];
  const itlHalf = (h.finishedMs - h.firstTokenMs) / 10;
  assert.ok(itlHalf > 24 && itlHalf < 28, `ITL at 50% KV ${itlHalf}`);
});

test("a repeated prefix is served from the prefix cache and makes prefill cheaper", () => {
  const system = text("system", 1600);
  const { clock, results } = run(makeProfile(), [
    { at: 0, prompt: system + text("q1", 400), maxTokens: 4 },
    { at: 5_000, prompt: system + text("q2", 400), maxTokens: 4 },
    { at: 10_000, prompt: text("other", 2000), maxTokens: 4 },
  ]);
  clock.run();
  const r = byId(results);
  assert.equal(r.r0.cachedTokens, 0);
  assert.equal(r.r1.cachedTokens, 1600, "whole 16-token blocks of the shared 1600-token prefix");
  assert.equal(r.r2.cachedTokens, 0);
  const ttft1 = r.r1.firstTokenMs - 5_000,
    ttft2 = r.r2.firstTokenMs - 10_000;
  assert.ok(ttft1 < ttft2 / 2, `cached ${ttft1} ms vs uncached ${ttft2} ms`);
});

test("requests beyond max-num-seqs wait in the queue", () => {
  const { clock, engine } = run(
    makeProfile({ scheduler: { maxNumSeqs: 4 } }),
    Array.from({ length: 10 }, (_, i) => ({ at: 0, prompt: text(`p${i}`, 50), maxTokens: 200 })),
  );
  clock.run(100);
  assert.equal(engine.numRunning, 4);
  assert.equal(engine.numWaiting, 6);
  clock.run();
  assert.equal(engine.numRunning + engine.numWaiting, 0);
});

test("freed blocks stay cached and are evicted least recently freed first", () => {
  // 64 blocks of 16 tokens; three 320-token prompts (20 blocks each) finish in order A, B, C.
  const profile = makeProfile({ maxModelLen: 1024, kv: { cacheTokens: 1024 } });
  const prompts = ["A", "B", "C", "D"].map((s) => text(s, 320));
  const { clock, engine } = run(
    profile,
    prompts.slice(0, 3).map((p, i) => ({ at: i * 1000, prompt: p, maxTokens: 1 })),
  );
  clock.run();
  const probe = (p: string) => engine.probeCachedTokens(new TokenSequence(p, "", profile.model));
  assert.deepEqual(
    prompts.slice(0, 3).map(probe),
    [304, 304, 304],
    "all three prefixes cached (last token always recomputed)",
  );
  // D needs 20 blocks; only 4 never-used blocks are free before cached ones, so A's blocks go first.
  engine.submit({
    id: "d",
    seq: new TokenSequence(prompts[3], answerText(prompts[3], profile.model, 1), profile.model),
    maxTokens: 1,
    finishReason: "length",
    adapter: null,
    maxTokensParam: 1,
    onFinish: () => {},
  });
  clock.run();
  assert.ok(probe(prompts[0]) < 304, "A (least recently freed) lost blocks");
  assert.equal(probe(prompts[2]), 304, "C (most recently freed) is intact");
  assert.ok(engine.pool.evictions > 0);
});

test("a full KV cache preempts running requests, which recompute and still finish", () => {
  const profile = makeProfile({ maxModelLen: 2048, kv: { cacheTokens: 2048 } });
  const { clock, engine, results } = run(
    profile,
    Array.from({ length: 6 }, (_, i) => ({ at: 0, prompt: text(`x${i}`, 300), maxTokens: 300 })),
  );
  clock.run();
  assert.equal(results.length, 6);
  assert.ok(engine.counters.preemptions > 0, "preemptions happened");
  assert.ok(results.every((r) => r.generationTokens === 300 && r.finishReason === "length"));
  assert.equal(engine.pool.usedBlocks, 0, "every block released");
});

test("LoRA: at most maxLoras adapters resident, a new adapter waits for its load delay", () => {
  const profile = makeProfile({ lora: { adapters: ["a1", "a2", "a3"], maxLoras: 2, loadDelayMs: 300 } });
  const { clock, engine, results } = run(profile, [
    { at: 0, prompt: text("l1", 100), maxTokens: 400, adapter: "a1" },
    { at: 0, prompt: text("l2", 100), maxTokens: 400, adapter: "a2" },
    { at: 0, prompt: text("l3", 100), maxTokens: 10, adapter: "a3" },
    { at: 0, prompt: text("base", 100), maxTokens: 10 },
  ]);
  let maxResident = 0;
  const sample = () => {
    maxResident = Math.max(maxResident, engine.lora.resident.length);
    if (clock.pending > 0) clock.at(clock.now() + 5, sample);
  };
  clock.at(0, sample);
  clock.run();
  const r = byId(results);
  assert.ok(r.r3.firstTokenMs < 300, "the base model never waits for an adapter");
  assert.ok(r.r0.firstTokenMs >= 300 && r.r1.firstTokenMs >= 300, "adapters load before their first token");
  assert.ok(r.r2.firstScheduledMs >= Math.min(r.r0.finishedMs, r.r1.finishedMs), "the third adapter waits for a slot");
  assert.ok(r.r2.firstTokenMs >= Math.min(r.r0.finishedMs, r.r1.finishedMs) + 300, "and then for its load");
  assert.equal(maxResident, 2);
  assert.equal(engine.lora.loads, 3);
});

test("gauges show the state of metricsLagMs earlier, and 0 before the lag has passed", () => {
  const profile = makeProfile({ metricsLagMs: 1000, scheduler: { maxNumSeqs: 2 } });
  const { clock, engine } = run(
    profile,
    Array.from({ length: 5 }, (_, i) => ({ at: 100, prompt: text(`g${i}`, 50), maxTokens: 2000 })),
  );
  clock.run(500);
  assert.equal(engine.numWaiting, 3);
  assert.equal(engine.gauges().waiting, 0, "at 500 ms the gauge still shows the state at -500 ms");
  clock.run(1050);
  assert.equal(engine.gauges().waiting, 0, "at 1050 ms it shows 50 ms, before the arrivals");
  clock.run(1200);
  assert.equal(engine.gauges().waiting, 3);
  assert.equal(engine.gauges().running, 2);
  assert.ok(engine.gauges().kvUsage > 0);
});

test("the same seed gives the same timings", () => {
  const jobs = Array.from({ length: 40 }, (_, i) => ({
    at: i * 37,
    prompt: text(`d${i % 7}`, 200 + (i % 5) * 90),
    maxTokens: 30 + i,
  }));
  const profile = makeProfile({ latency: { kind: "per-token" } as never, kv: { cacheTokens: 32_768 } });
  const a = run(profile, jobs);
  a.clock.run();
  const b = run(profile, jobs);
  b.clock.run();
  assert.deepEqual(a.results, b.results);
});
