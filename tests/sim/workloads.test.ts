import { test } from "node:test";
import assert from "node:assert/strict";
import { makeProfile } from "./profile";
import { SCENARIO_C, atRate, makeWorkload, multiRound, prepare, shareGpt, sharedPrefix } from "./workloads";

const profile = makeProfile();
const opts = { count: 2000, ratePerSec: 10, model: profile.model };

test("the same seed gives the same requests; another seed other ones", () => {
  const a = makeWorkload("prefix-c", { ...opts, seed: 3 }).requests;
  const b = makeWorkload("prefix-c", { ...opts, seed: 3 }).requests;
  const c = makeWorkload("prefix-c", { ...opts, seed: 4 }).requests;
  assert.deepEqual(a, b);
  assert.notDeepEqual(
    a.map((r) => r.bodyText),
    c.map((r) => r.bodyText),
  );
});

test("ShareGPT-like lengths: means near 230 prompt and 200 output tokens, long tails, no shared prefixes", () => {
  const w = shareGpt({ ...opts, seed: 1 });
  const prepared = w.requests.map((r) => prepare(r, profile));
  const prompt = prepared.map((p) => p.seq.promptTokens);
  const output = prepared.map((p) => p.parsed.outputTokens);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(Math.abs(mean(prompt) - 230) < 30, `prompt mean ${mean(prompt)}`);
  assert.ok(Math.abs(mean(output) - 200) < 30, `output mean ${mean(output)}`);
  assert.ok(Math.max(...prompt) > 900 && Math.min(...prompt) < 40, "a long right tail and short prompts");
  assert.equal(
    new Set(w.requests.map((r) => JSON.parse(r.bodyText).messages[0].content.slice(0, 64))).size,
    w.requests.length,
  );
});

test("shared prefix: every prompt is one of the group system prompts plus a question", () => {
  const w = sharedPrefix({ ...opts, seed: 1 }, SCENARIO_C, "prefix-c");
  const bodies = w.requests.map((r) => JSON.parse(r.bodyText));
  const systems = new Set(bodies.map((b) => b.messages[0].content));
  assert.equal(systems.size, SCENARIO_C.groups);
  const sys = prepare({ ...w.requests[0], bodyText: JSON.stringify({ messages: [bodies[0].messages[0]] }) }, profile)
    .seq.promptTokens;
  // The system message with its template wrapper, plus the conversation's begin and assistant headers (~16).
  assert.ok(
    Math.abs(sys - 16 - SCENARIO_C.systemTokens) <= 2,
    `system prompt ~${SCENARIO_C.systemTokens} tokens (got ${sys})`,
  );
  assert.ok(bodies.every((b) => b.ignore_eos === true && b.max_tokens > 0 && b.stream === true));
});

test("multi-round: each round's prompt extends the last one with the engine's answer, so cached blocks carry over", () => {
  const w = multiRound({ ...opts, count: 20, seed: 1 });
  const first = w.requests[0];
  const p1 = prepare(first, profile);
  const second = w.next!(first, 5_000, p1.seq.answer)!;
  assert.equal(second.session!.round, 1);
  assert.ok(second.arrivalMs > 5_000, "after the answer and some think time");
  const p2 = prepare(second, profile);
  assert.ok(p2.parsed.promptText.startsWith(p1.parsed.promptText + p1.seq.answer));
  const shared = Math.floor((p1.seq.promptTokens + p1.parsed.outputTokens) / 16);
  for (let k = 0; k < shared; k++) assert.equal(p2.seq.blockHash(16, k), p1.seq.blockHash(16, k));
  assert.equal(w.followUps!(second), 3);
});

test("atRate replays the same requests with arrival times scaled to the new rate", () => {
  const w = makeWorkload("sharegpt", { ...opts, seed: 1 });
  const fast = atRate(w, 40);
  assert.deepEqual(
    fast.requests.map((r) => r.bodyText),
    w.requests.map((r) => r.bodyText),
  );
  const span = (x: typeof w) => x.requests[x.requests.length - 1].arrivalMs;
  assert.ok(Math.abs(span(w) / span(fast) - 4) < 1e-9);
  assert.ok(Math.abs(span(w) / 1000 - 2000 / 10) < 20, "Poisson arrivals at the requested mean rate");
});

test("multi-LoRA: requests spread over 12 adapters, the first ones hottest", () => {
  const w = makeWorkload("multi-lora", { ...opts, seed: 1 });
  const counts = new Map<string, number>();
  for (const r of w.requests) {
    const m = JSON.parse(r.bodyText).model;
    counts.set(m, (counts.get(m) ?? 0) + 1);
  }
  assert.equal(counts.size, 12);
  assert.ok(counts.get("adapter-00")! > 3 * counts.get("adapter-11")!);
  assert.deepEqual(w.adapters.length, 12);
});
