// Agent traffic (issue 13, request formats): the simulated engine reads Anthropic, OpenAI chat-with-tools and
// Responses bodies into one chat template (tools, system, conversation), bad shapes are vLLM's 400s, and the
// acceptance: on the agent workload the real filter's prefix-cache hit rate is at least the multi-round chat
// workload's and well above least-request's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { measureCapacity } from "./capacity";
import { runFleet } from "./fleet";
import { ApiError, parseRequest } from "./openai";
import { createPicker } from "./pickers/index";
import { loadProfile, makeProfile } from "./profile";
import { type WorkloadKind, atRate, clearPrepared, makeWorkload } from "./workloads";

const profile = makeProfile();

test("agent request formats: tools first, then system, then the conversation, whatever the JSON's key order", () => {
  const tools = [{ name: "bash", description: "Runs a command", input_schema: { type: "object" } }];
  const a = parseRequest(
    "messages",
    JSON.stringify({ messages: [{ role: "user", content: "hi" }], tools, system: "sys", max_tokens: 8 }),
    profile,
  );
  const b = parseRequest(
    "messages",
    JSON.stringify({
      max_tokens: 8,
      system: [{ type: "text", text: "sys" }],
      tools,
      messages: [{ role: "user", content: "hi" }],
    }),
    profile,
  );
  assert.equal(a.promptText, b.promptText);
  const tool = '{"name":"bash","description":"Runs a command","parameters":{"type":"object"}}';
  assert.equal(
    a.promptText,
    "<|begin_of_text|>" +
      `<|start_header_id|>tools<|end_header_id|>\n\n${tool}<|eot_id|>` +
      "<|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  assert.equal(a.outputTokens <= 8, true);
  // Responses: instructions are the system prompt, max_output_tokens the cap.
  const r = parseRequest(
    "responses",
    JSON.stringify({
      input: "hi",
      instructions: "sys",
      tools: [{ type: "function", name: "bash", description: "Runs a command", parameters: { type: "object" } }],
      max_output_tokens: 5,
    }),
    profile,
  );
  assert.equal(r.promptText, a.promptText);
  assert.equal(r.maxTokensParam, 5);
  // Chat with the tools after the messages.
  const c = parseRequest(
    "chat",
    JSON.stringify({
      messages: [
        { role: "system", content: "sys" },
        { role: "user", content: "hi" },
      ],
      tools: [
        { type: "function", function: { name: "bash", description: "Runs a command", parameters: { type: "object" } } },
      ],
    }),
    profile,
  );
  assert.equal(c.promptText, a.promptText);
});

test("agent request formats: a malformed body is a 400, as vLLM answers it", () => {
  const bad: Array<[Parameters<typeof parseRequest>[0], unknown]> = [
    ["messages", { messages: [{ role: "user", content: "x" }], tools: {} }],
    ["messages", { messages: [{ role: "system", content: "x" }] }],
    ["messages", { messages: [{ role: "user", content: [{ type: "tool_use", name: "f", input: {} }] }] }],
    ["messages", { messages: [{ role: "user", content: [{ type: "image" }] }] }],
    ["messages", { system: 3, messages: [{ role: "user", content: "x" }] }],
    ["responses", { input: [{ type: "reasoning" }] }],
    ["responses", { input: [] }],
    ["responses", { input: [{ type: "function_call", name: "f", arguments: "{not json" }] }],
    ["chat", { messages: [{ role: "user", content: "x" }], tools: [{ type: "function" }] }],
    ["chat", { messages: [{ role: "assistant", content: null, tool_calls: [{ function: {} }] }] }],
  ];
  for (const [api, body] of bad) {
    assert.throws(
      () => parseRequest(api, JSON.stringify(body), profile),
      (e: unknown) => e instanceof ApiError && e.status === 400,
      `${api} ${JSON.stringify(body)}`,
    );
  }
});

// The acceptance. 8 pods of bench-scaled at 80% of each workload's capacity (routing.bench.ts's setting),
// 1000 requests per run, seeds 1-3: the hit rate is averaged over the seeds for the comparison with
// multi-round (its hit rate moves between 85% and 90% from seed to seed, the agent's stays near 89-90%).
const bench = loadProfile("bench-scaled");
const PODS = 8;
const LOAD = 0.8;
const REQUESTS = 1000;
const SEEDS = [1, 2, 3];
/**
 * "Well above least-request": the filter's hit rate at least 30 points above. Measured (this setting, seeds
 * 1-3): filter 89.1-89.6%, least-request 45.4-46.9%, 42-44 points apart; least-request hits only where an
 * agent's prefix happens to be cached, and 16 agents' prefixes do not fit every pod. 30 points leaves room
 * for changes to the engine model and still means fewer than half of least-request's cache misses.
 */
const MARGIN_OVER_LEAST_REQUEST = 0.3;

function hitRates(kind: WorkloadKind, pickers: Array<"filter" | "least-request">): Record<string, number[]> {
  clearPrepared();
  const base = makeWorkload(kind, { count: REQUESTS, ratePerSec: 1, model: bench.model, seed: 7 });
  const capacity = measureCapacity({ pods: PODS, profile: bench, workload: base, seed: 7 }).requestsPerSec;
  const out: Record<string, number[]> = {};
  for (const seed of SEEDS) {
    const w = atRate(makeWorkload(kind, { count: REQUESTS, ratePerSec: 1, model: bench.model, seed }), LOAD * capacity);
    for (const name of pickers) {
      const r = runFleet({ pods: PODS, profile: bench, picker: createPicker(name), workload: w, seed });
      assert.equal(r.summary.successRate, 1, `${kind} ${name} seed ${seed}: every request served`);
      (out[name] ??= []).push(r.summary.prefixHitRate);
    }
  }
  clearPrepared();
  return out;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const pct = (xs: number[]) => xs.map((x) => `${(100 * x).toFixed(1)}%`).join(", ");

test("acceptance: on the agent workload the filter's prefix-cache hit rate is at least multi-round chat's and well above least-request's", (t) => {
  const agent = hitRates("agent", ["filter", "least-request"]);
  const chat = hitRates("multi-round", ["filter"]);
  const detail = `agent filter ${pct(agent.filter)}, least-request ${pct(agent["least-request"])}; multi-round filter ${pct(chat.filter)}`;
  t.diagnostic(detail);
  assert.ok(mean(agent.filter) >= mean(chat.filter), `at least multi-round's: ${detail}`);
  agent.filter.forEach((hit, k) =>
    assert.ok(hit >= agent["least-request"][k] + MARGIN_OVER_LEAST_REQUEST, `well above least-request: ${detail}`),
  );
});
