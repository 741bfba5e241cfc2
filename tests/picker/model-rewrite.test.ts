// Model rewrites (InferenceModelRewrite, snapshot section 5) in the real filter: the weighted choice, rule
// precedence, the body and content-length the upstream gets (chunked bodies, a model split across chunks, a
// model after 16 KiB of body), what is never rewritten, the rewritten model as the decision's model, and the
// response naming the client's model again (llm-d-router's semantics).
import { test } from "node:test";
import assert from "node:assert/strict";
import { PickerHost, header, destination } from "./harness";
import type { ModelRewriteRule } from "../../companion/snapshot";
import type { HttpStream } from "../../envoy/emulator/host";

const A = "10.0.0.1:8000",
  B = "10.0.0.2:8000";
const CANARY: ModelRewriteRule = {
  matches: ["food-review"],
  targets: [
    { model: "food-review-v1", weight: 90 },
    { model: "food-review-v2", weight: 10 },
  ],
};

function host(rules: ModelRewriteRule[], concurrency = 1): PickerHost {
  const h = new PickerHost({ concurrency });
  h.publish([{ address: A }, { address: B }], {}, [], [], rules);
  return h;
}

/** Sends `body` (in `chunks` pieces when given) with a content-length, unless `chunked`. */
function send(
  h: PickerHost,
  body: string,
  opts: { chunks?: string[]; chunked?: boolean; path?: string; worker?: number } = {},
): HttpStream {
  return h.send({
    worker: opts.worker,
    path: opts.path ?? "/v1/completions",
    headers: opts.chunked ? [["transfer-encoding", "chunked"]] : [["content-length", String(Buffer.byteLength(body))]],
    ...(opts.chunks ? { chunks: opts.chunks } : { body }),
  });
}

const forwardedBody = (s: HttpStream) => Buffer.concat(s.forwarded.requestBody).toString();
const forwardedModel = (s: HttpStream) => JSON.parse(forwardedBody(s)).model as string;

function assertFraming(s: HttpStream): void {
  const cl = header(s.forwarded.requestHeaders, "content-length");
  assert.deepEqual(cl, [String(Buffer.byteLength(forwardedBody(s)))], "content-length matches the body sent on");
}

test("no rules: the body and content-length go on as the client sent them, nothing counted", () => {
  const h = host([]);
  const body = JSON.stringify({ model: "food-review", prompt: "hi", max_tokens: 3 });
  const s = send(h, body);
  assert.ok(destination(s));
  assert.equal(forwardedBody(s), body);
  assert.deepEqual(header(s.forwarded.requestHeaders, "content-length"), [String(body.length)]);
  assert.equal(h.counter("endpoint_picker.model_rewrites"), 0);
});

test("a 90/10 rule splits by weight; the upstream gets the target, every other byte, and a fixed content-length", () => {
  const h = host([CANARY], 4);
  const counts = new Map<string, number>();
  const N = 4000;
  for (let i = 0; i < N; i++) {
    const body = JSON.stringify({ model: "food-review", prompt: `review ${i}`, max_tokens: 3, stream: false });
    const s = send(h, body, { worker: i % 4 });
    const sent = JSON.parse(forwardedBody(s));
    counts.set(sent.model, (counts.get(sent.model) ?? 0) + 1);
    assert.deepEqual({ ...sent, model: "food-review" }, JSON.parse(body), "only the model changes");
    assertFraming(s);
    s.finish();
  }
  assert.deepEqual([...counts.keys()].sort(), ["food-review-v1", "food-review-v2"]);
  const v1 = counts.get("food-review-v1")! / N;
  assert.ok(Math.abs(v1 - 0.9) < 0.02, `v1 share ${v1}`);
  assert.equal(h.counter("endpoint_picker.model_rewrites"), N);
  assert.deepEqual(h.host.failedWorkers(), []);
});

test("precedence: the first matching rule wins (the companion puts exact matches before match-all rules)", () => {
  const h = host([
    { matches: ["a", "b"], targets: [{ model: "a-new", weight: 1 }] },
    { matches: ["b"], targets: [{ model: "never", weight: 1 }] },
    { matches: [], targets: [{ model: "everything-else", weight: 1 }] },
    { matches: ["c"], targets: [{ model: "never", weight: 1 }] },
  ]);
  const model = (m: string) => forwardedModel(send(h, JSON.stringify({ model: m, prompt: "p" })));
  assert.equal(model("a"), "a-new");
  assert.equal(model("b"), "a-new");
  assert.equal(model("c"), "everything-else");
  assert.equal(model("z"), "everything-else");
});

test("weights: a zero-weight target is never drawn; a rule without targets (or weights) leaves the model", () => {
  const h = host([
    {
      matches: ["m"],
      targets: [
        { model: "zero", weight: 0 },
        { model: "all", weight: 3 },
      ],
    },
    { matches: ["keep"], targets: [] },
    { matches: ["keep2"], targets: [{ model: "x", weight: 0 }] },
    { matches: [], targets: [{ model: "generic", weight: 1 }] },
  ]);
  for (let i = 0; i < 50; i++)
    assert.equal(forwardedModel(send(h, JSON.stringify({ model: "m", prompt: `${i}` }))), "all");
  // A matching rule that cannot rewrite still wins over the match-all rule after it.
  assert.equal(forwardedModel(send(h, JSON.stringify({ model: "keep", prompt: "p" }))), "keep");
  assert.equal(forwardedModel(send(h, JSON.stringify({ model: "keep2", prompt: "p" }))), "keep2");
  assert.equal(h.counter("endpoint_picker.model_rewrites"), 50);
});

test("a target equal to the client's model is no rewrite: body untouched, nothing counted", () => {
  const h = host([{ matches: ["same"], targets: [{ model: "same", weight: 1 }] }]);
  const body = JSON.stringify({ prompt: "p", model: "same" });
  assert.equal(forwardedBody(send(h, body)), body);
  assert.equal(h.counter("endpoint_picker.model_rewrites"), 0);
});

test("chunked bodies keep no content-length; a model split across chunks is rewritten once all of it is buffered", () => {
  const h = host([CANARY]);
  const body = JSON.stringify({ model: "food-review", prompt: "chunked", max_tokens: 2 });
  let s = send(h, body, { chunked: true, chunks: [body.slice(0, 5), body.slice(5, 17), body.slice(17)] });
  assert.match(forwardedModel(s), /^food-review-v[12]$/);
  assert.deepEqual(header(s.forwarded.requestHeaders, "content-length"), []);
  // Every split of the model value (and of the key) between two chunks.
  for (let cut = 1; cut < 24; cut++) {
    s = send(h, body, { chunks: [body.slice(0, cut), body.slice(cut)] });
    assert.match(forwardedModel(s), /^food-review-v[12]$/, `cut at ${cut}`);
    assert.deepEqual({ ...JSON.parse(forwardedBody(s)), model: "food-review" }, JSON.parse(body));
    assertFraming(s);
  }
});

test("a model after 16 KiB of messages is rewritten too (the whole prefix is written again)", () => {
  const h = host([{ matches: ["chat"], targets: [{ model: "chat-a-much-longer-target-name", weight: 1 }] }]);
  const body = JSON.stringify({
    messages: [{ role: "user", content: "x".repeat(40_000) }],
    model: "chat",
    max_tokens: 1,
  });
  const s = send(h, body, { path: "/v1/chat/completions", chunks: [body.slice(0, 20_000), body.slice(20_000)] });
  const sent = JSON.parse(forwardedBody(s));
  assert.equal(sent.model, "chat-a-much-longer-target-name");
  assert.equal(sent.messages[0].content.length, 40_000);
  assertFraming(s);
});

test("never rewritten: an escaped or absent model, a request without a body, a request over maxBodyBytes before its model", () => {
  const h = host([{ matches: [], targets: [{ model: "rewritten", weight: 1 }] }]);
  const escaped = '{"model":"food\\u002dreview","prompt":"p"}';
  assert.equal(forwardedBody(send(h, escaped)), escaped);
  const absent = JSON.stringify({ prompt: "p" });
  assert.equal(forwardedBody(send(h, absent)), absent);
  const get = h.send({ path: "/v1/models" });
  assert.ok(destination(get), "a GET is decided in the headers callback, by load");
  assert.equal(h.counter("endpoint_picker.model_rewrites"), 0);
  const small = new PickerHost({ config: { maxBodyBytes: 64 } });
  small.publish([{ address: A }], {}, [], [], [{ matches: [], targets: [{ model: "rewritten", weight: 1 }] }]);
  const late = JSON.stringify({ prompt: "y".repeat(100), model: "m" });
  assert.equal(forwardedBody(send(small, late)), late);
  const early = JSON.stringify({ model: "m", prompt: "y".repeat(100) });
  assert.equal(forwardedModel(send(small, early)), "rewritten");
});

test("the rewritten model is the decision's: LoRA affinity follows the target, not the client's name", () => {
  const h = new PickerHost();
  h.publish(
    [
      { address: A, lora: { running: ["food-review-v1"], waiting: [], max: 1 } },
      { address: B, lora: { running: ["food-review-v2"], waiting: [], max: 1 } },
    ],
    { loraWeight: 1 },
    [],
    [],
    [{ matches: ["food-review"], targets: [{ model: "food-review-v2", weight: 1 }] }],
  );
  for (let i = 0; i < 10; i++) {
    const s = send(h, JSON.stringify({ model: "food-review", prompt: `q${i}` }));
    assert.equal(destination(s), B, "the endpoint running the target adapter");
    s.finish();
  }
});

test("the response names the client's model again (llm-d-router's semantics), in JSON and SSE, split or not", () => {
  const h = host([{ matches: ["food-review"], targets: [{ model: "food-review-v1", weight: 1 }] }]);
  // Non-streaming: content-length goes (the body's length changes), every occurrence is rewritten.
  let s = send(h, JSON.stringify({ model: "food-review", prompt: "p" }));
  const json = JSON.stringify({ id: "cmpl-1", model: "food-review-v1", choices: [{ text: "ok" }] });
  s.sendResponseHeaders(
    [
      [":status", "200"],
      ["content-type", "application/json"],
      ["content-length", String(json.length)],
    ],
    false,
  );
  s.sendResponseData(json, true);
  assert.deepEqual(header(s.forwarded.responseHeaders, "content-length"), []);
  assert.equal(
    Buffer.concat(s.forwarded.responseBody).toString(),
    JSON.stringify({ id: "cmpl-1", model: "food-review", choices: [{ text: "ok" }] }),
  );
  s.finish();
  // Streaming, with events split inside the pattern and one space after the colon.
  s = send(h, JSON.stringify({ model: "food-review", prompt: "p", stream: true }));
  s.sendResponseHeaders(
    [
      [":status", "200"],
      ["content-type", "text/event-stream"],
    ],
    false,
  );
  const events = [
    'data: {"id":"c","model":"food-review-v1","choices":[{"text":"a"}]}\n\n',
    'data: {"id":"c","model": "food-review-v1","choices":[{"text":"b"}]}\n\n',
    "data: [DONE]\n\n",
  ].join("");
  const cuts = [10, 22, 30, 77, 90, events.length];
  let at = 0;
  for (const c of cuts) {
    s.sendResponseData(events.slice(at, c), c === events.length);
    at = c;
  }
  assert.equal(Buffer.concat(s.forwarded.responseBody).toString(), events.replaceAll("food-review-v1", "food-review"));
  s.finish();
  // A request that was not rewritten: the response passes untouched, content-length kept.
  s = send(h, JSON.stringify({ model: "other", prompt: "p" }));
  s.sendResponseHeaders(
    [
      [":status", "200"],
      ["content-length", String(json.length)],
    ],
    false,
  );
  s.sendResponseData(json, true);
  assert.deepEqual(header(s.forwarded.responseHeaders, "content-length"), [String(json.length)]);
  assert.equal(Buffer.concat(s.forwarded.responseBody).toString(), json);
  s.finish();
  assert.deepEqual(h.host.failedWorkers(), []);
});
