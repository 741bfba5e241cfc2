import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { once } from "node:events";
import { type PodSet, startPods } from "./pods";
import { makeProfile } from "./profile";
import { applyChatTemplate, tokensOf } from "./text";

const parsePrometheus = createRequire(import.meta.url)("parse-prometheus-text-format") as (
  text: string,
) => { name: string; type: string }[];
const profile = makeProfile({ lora: { adapters: ["sql-lora"], maxLoras: 2, loadDelayMs: 100 } });
let set: PodSet;
let vllm: string, sglang: string, trtllm: string;

before(async () => {
  set = await startPods({ pods: 3, engines: ["vllm-v1", "sglang", "trtllm-serve"], profile, timeScale: 50 });
  [vllm, sglang, trtllm] = set.pods.map((p) => `http://${p.address}`);
});
after(() => set.close());

const post = (base: string, path: string, body: unknown) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

test("chat streaming: role chunk, one chunk per token, finish_reason, usage chunk, [DONE]", async () => {
  const messages = [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Name three colours of the sea at dusk." },
  ];
  const res = await post(vllm, "/v1/chat/completions", {
    model: profile.model,
    messages,
    max_tokens: 12,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
  assert.equal(res.headers.get("x-sim-pod"), "sim-0");
  const text = await res.text();
  const events = text.split("\n\n").filter(Boolean);
  assert.ok(
    events.every((e) => e.startsWith("data: ")),
    "every event is a data line",
  );
  assert.equal(events[events.length - 1], "data: [DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
  assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
  const content = chunks
    .slice(1, -1)
    .map((c) => c.choices[0].delta.content)
    .join("");
  assert.equal(chunks.slice(1, -1).length, 12, "one chunk per token");
  assert.equal(content.length, 48, "4 characters a token");
  assert.equal(chunks[chunks.length - 2].choices[0].finish_reason, "length");
  const usage = chunks[chunks.length - 1];
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, 12);
  assert.equal(usage.usage.prompt_tokens, tokensOf(applyChatTemplate(messages)));
  assert.equal(usage.usage.total_tokens, usage.usage.prompt_tokens + 12);
});

test("completions without streaming: text, usage and finish_reason; a LoRA adapter is a valid model", async () => {
  const res = await post(sglang, "/v1/completions", {
    model: "sql-lora",
    prompt: "SELECT the answer FROM everything",
    max_tokens: 7,
    ignore_eos: true,
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-sim-address"), set.pods[1].address);
  const body = await res.json();
  assert.equal(body.object, "text_completion");
  assert.equal(body.model, "sql-lora");
  assert.equal(body.choices[0].text.length, 28);
  assert.equal(body.choices[0].finish_reason, "length");
  assert.deepEqual(
    [body.usage.prompt_tokens, body.usage.completion_tokens],
    [tokensOf("SELECT the answer FROM everything"), 7],
  );
  // Without ignore_eos the model stops by itself, at most at max_tokens.
  const free = await (await post(sglang, "/v1/completions", { prompt: "Tell me a story", max_tokens: 3000 })).json();
  assert.equal(free.choices[0].finish_reason, "stop");
  assert.ok(free.usage.completion_tokens >= 1 && free.usage.completion_tokens < 3000);
});

test("errors as vLLM answers them: bad JSON 400, unknown model 404, context too long 400", async () => {
  const bad = await post(vllm, "/v1/chat/completions", "{not json");
  assert.equal(bad.status, 400);
  const badBody = await bad.json();
  assert.equal(badBody.object, "error");
  assert.equal(badBody.type, "BadRequestError");
  assert.equal(badBody.code, 400);
  const unknown = await post(vllm, "/v1/completions", { model: "gpt-17", prompt: "hi" });
  assert.equal(unknown.status, 404);
  assert.deepEqual(await unknown.json(), {
    object: "error",
    message: "The model `gpt-17` does not exist.",
    type: "NotFoundError",
    param: null,
    code: 404,
  });
  const noMessages = await post(vllm, "/v1/chat/completions", { model: profile.model });
  assert.equal(noMessages.status, 400);
  const tooLong = await post(vllm, "/v1/completions", { prompt: "x", max_tokens: profile.maxModelLen });
  assert.equal(tooLong.status, 400);
  assert.match((await tooLong.json()).message, /maximum context length is 32768 tokens/);
  assert.equal((await fetch(`${vllm}/v1/completions`)).status, 405);
  assert.equal((await fetch(`${vllm}/nope`)).status, 404);
});

test("/v1/models, /health and /metrics (trtllm-serve: Prometheus at /prometheus/metrics, JSON at /metrics)", async () => {
  const models = await (await fetch(`${vllm}/v1/models`)).json();
  assert.deepEqual(
    models.data.map((m: { id: string }) => m.id),
    [profile.model, "sql-lora"],
  );
  assert.equal(models.data[1].parent, profile.model);
  assert.equal((await fetch(`${vllm}/health`)).status, 200);
  const page = await (await fetch(`${vllm}/metrics`)).text();
  const names = new Set(parsePrometheus(page).map((f) => f.name));
  assert.ok(names.has("vllm:num_requests_waiting") && names.has("http_requests_total"));
  assert.match(page, /http_requests_total\{handler="\/v1\/chat\/completions",method="POST",status="2xx"\} [1-9]/);
  const trt = await fetch(`${trtllm}/prometheus/metrics`);
  assert.ok(parsePrometheus(await trt.text()).some((f) => f.name === "trtllm_kv_cache_utilization"));
  const stats = await (await fetch(`${trtllm}/metrics`)).json();
  assert.ok(Array.isArray(stats) && typeof stats[0].kvCacheStats.maxNumBlocks === "number");
});

test("a client that goes away mid-stream frees its request on the engine", async () => {
  const res = await post(vllm, "/v1/completions", {
    prompt: "a long story please",
    max_tokens: 5000,
    ignore_eos: true,
    stream: true,
  }).catch(() => null);
  assert.ok(res);
  const reader = res.body!.getReader();
  await reader.read();
  await reader.cancel();
  const engine = set.pods[0].engine;
  for (let i = 0; i < 100 && engine.numRunning + engine.numWaiting > 0; i++)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(engine.numRunning + engine.numWaiting, 0);
  assert.ok(engine.counters.finished.abort >= 1);
});

test(
  "CLI: one line per pod, serves, exits 0 on SIGTERM",
  { skip: !existsSync("build/sim.mjs") && "build/sim.mjs not built" },
  async () => {
    const child = spawn(
      process.execPath,
      ["build/sim.mjs", "--pods", "2", "--engines", "vllm-v1,triton-trtllm", "--time-scale", "20"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    for (let i = 0; i < 100 && out.split("\n").length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    const lines = out.trim().split("\n");
    assert.equal(lines.length, 2);
    const m = lines.map((l) => /^sim pod (\S+) (\S+) listening on (127\.0\.0\.1:\d+)$/.exec(l));
    assert.ok(m.every(Boolean), out);
    assert.deepEqual(
      m.map((x) => x![2]),
      ["vllm-v1", "triton-trtllm"],
    );
    const body = await (
      await post(`http://${m[1]![3]}`, "/v1/completions", { prompt: "hello", max_tokens: 3, ignore_eos: true })
    ).json();
    assert.equal(body.usage.completion_tokens, 3);
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    assert.equal(code, 0);
  },
);
