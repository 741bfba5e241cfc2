import { test } from "node:test";
import assert from "node:assert/strict";
import { makeProfile } from "./profile";
import { SCENARIO_C, atRate, makeWorkload, multiRound, prepare, shareGpt, sharedPrefix } from "./workloads";
import { type Session, type Step, agentBody, agentWorkload } from "./agent-workload";

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

test("agent: sessions in the three request formats, the same seed the same requests", () => {
  const a = agentWorkload({ ...opts, seed: 3 });
  const b = agentWorkload({ ...opts, seed: 3 });
  assert.deepEqual(a.requests, b.requests);
  const apis = new Map<string, number>();
  for (const r of a.requests) apis.set(r.api, (apis.get(r.api) ?? 0) + 1);
  const n = a.requests.length;
  assert.ok(Math.abs(apis.get("messages")! / n - 0.4) < 0.1, `Anthropic share ${apis.get("messages")! / n}`);
  assert.ok(Math.abs(apis.get("chat")! / n - 0.4) < 0.1, `chat share ${apis.get("chat")! / n}`);
  assert.ok(Math.abs(apis.get("responses")! / n - 0.2) < 0.1, `responses share ${apis.get("responses")! / n}`);
  // count / 7 sessions of 4-10 turns.
  assert.ok(Math.abs(a.total - opts.count) < 0.1 * opts.count, `total ${a.total}`);
  const followUps = a.requests.reduce((s, r) => s + a.followUps!(r), 0);
  assert.equal(followUps + a.requests.length, a.total);
});

test("agent: every format renders tools, then the system prompt, then the conversation; the shared part fits the default hash window", () => {
  const w = agentWorkload({ ...opts, seed: 1 });
  for (const api of ["messages", "chat", "responses"]) {
    const r = w.requests.find((x) => x.api === api)!;
    const p = prepare(r, profile).parsed.promptText;
    assert.ok(p.startsWith("<|begin_of_text|><|start_header_id|>tools<|end_header_id|>\n\n{"), api);
    const system = p.indexOf("<|start_header_id|>system<|end_header_id|>");
    const user = p.indexOf("<|start_header_id|>user<|end_header_id|>");
    assert.ok(system > 0 && user > system, `${api}: tools, system, user`);
    // Several thousand tokens of system prompt and tools before the session's own task.
    assert.ok(user / 4 > 2800 && user / 4 < 4000, `${api}: ${user / 4} tokens before the task`);
    // The JSON of tools and system (what the filter hashes first) stays under 16 KiB (GIE's 64 x 256 bytes),
    // so the session's task is inside the hashed window.
    const body = JSON.parse(r.bodyText);
    const shared =
      api === "chat"
        ? JSON.stringify(body.tools) + JSON.stringify(body.messages[0])
        : JSON.stringify(body.tools) + JSON.stringify(api === "messages" ? body.system : body.instructions);
    assert.ok(shared.length < 16384 - 1024, `${api}: ${shared.length} bytes of tools and system`);
  }
});

test("agent: one conversation is the same engine prompt in every format, and each turn extends the last", () => {
  const w = agentWorkload({ ...opts, seed: 2 });
  const first = w.requests[0];
  // The first session's turns in its own format, answered as the engine answers.
  let req = first;
  let prev = prepare(req, profile);
  for (let turn = 1; turn < 4; turn++) {
    const next = w.next!(req, 1_000 * turn, prev.seq.answer);
    assert.ok(next, `turn ${turn}`);
    assert.equal(next.session!.round, turn);
    const p = prepare(next, profile);
    assert.ok(
      p.parsed.promptText.startsWith(prev.parsed.promptText + prev.seq.answer),
      `turn ${turn} extends the last`,
    );
    assert.ok(p.parsed.promptText.includes("<|start_header_id|>tool<|end_header_id|>"), "a tool result");
    req = next;
    prev = p;
  }
  // The same conversation in the other formats: the same template input.
  const session = (api: Session["api"]): Session => ({ ...sessionOf(req.bodyText, first.api), api });
  const steps = stepsOf(req);
  const texts = (["messages", "chat", "responses"] as const).map(
    (api) =>
      prepare({ ...req, api, bodyText: agentBody(profile.model, session(api), steps, 400) }, profile).parsed.promptText,
  );
  assert.equal(texts[1], texts[0]);
  assert.equal(texts[2], texts[0]);
  assert.equal(texts[0], prev.parsed.promptText);
});

/** The session behind a request, read back from its body (tools, system, task). */
function sessionOf(bodyText: string, api: string): Session {
  const b = JSON.parse(bodyText);
  const tools =
    api === "messages"
      ? b.tools.map((t: any) => ({ name: t.name, description: t.description, schema: t.input_schema }))
      : api === "chat"
        ? b.tools.map((t: any) => ({
            name: t.function.name,
            description: t.function.description,
            schema: t.function.parameters,
          }))
        : b.tools.map((t: any) => ({ name: t.name, description: t.description, schema: t.parameters }));
  const system = api === "messages" ? b.system[0].text : api === "chat" ? b.messages[0].content : b.instructions;
  const task =
    api === "messages" ? b.messages[0].content : api === "chat" ? b.messages[1].content : b.input[0].content[0].text;
  return { id: 0, agent: { system, tools }, api: api as Session["api"], task, turns: 10, steps: [] };
}

/** A request's steps (answers, tool calls, results), read back from its Anthropic, chat or Responses body. */
function stepsOf(req: { api: string; bodyText: string }): Step[] {
  const b = JSON.parse(req.bodyText);
  const steps: Step[] = [];
  if (req.api === "messages") {
    for (let i = 1; i + 1 < b.messages.length; i += 2) {
      const [text, call] = b.messages[i].content;
      steps.push({
        answer: text.text,
        tool: call.name,
        args: call.input,
        result: b.messages[i + 1].content[0].content,
      });
    }
  } else if (req.api === "chat") {
    for (let i = 2; i + 1 < b.messages.length; i += 2) {
      const m = b.messages[i];
      const f = m.tool_calls[0].function;
      steps.push({ answer: m.content, tool: f.name, args: JSON.parse(f.arguments), result: b.messages[i + 1].content });
    }
  } else {
    for (let i = 1; i + 2 < b.input.length; i += 3) {
      const call = b.input[i + 1];
      steps.push({
        answer: b.input[i].content[0].text,
        tool: call.name,
        args: JSON.parse(call.arguments),
        result: b.input[i + 2].output,
      });
    }
  }
  return steps;
}
