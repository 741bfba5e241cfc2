// The body scanner skips string contents 16 bytes at a time (filter/body.ts): long strings full of quotes,
// backslashes and escaped quotes, at every alignment and however the body is split, must leave it exactly
// where a byte-by-byte scan would. Observed through the real filter: a model rewrite rule for the `model`
// that comes after the strings (the rewrite needs the model's bytes and where they are in the body), and the
// prefix index (the same prompt, split differently, is the same chain).
import { test } from "node:test";
import assert from "node:assert/strict";
import { PickerHost, destination, header } from "./harness";
import { agentBody, chatBody, CHUNK_BYTES, MAX_BODY_BYTES } from "./large-bodies";
import type { HttpStream } from "../../envoy/emulator/host";

const MODEL = "base-model";
const TARGET = "base-model-v2";

function host(maxBodyBytes?: number): PickerHost {
  const h = new PickerHost({ config: maxBodyBytes ? { maxBodyBytes } : {} });
  h.publish(
    [{ address: "10.0.0.1:8000" }, { address: "10.0.0.2:8000" }, { address: "10.0.0.3:8000" }],
    { prefixWeight: 10 },
    [],
    [],
    [{ matches: [MODEL], targets: [{ model: TARGET, weight: 1 }] }],
  );
  return h;
}

function send(h: PickerHost, body: Uint8Array, chunk: number, path = "/v1/chat/completions"): HttpStream {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < body.length; at += chunk) chunks.push(body.subarray(at, at + chunk));
  return h.send({
    path,
    headers: [["content-length", String(body.length)]],
    chunks,
  });
}

/** The body the upstream got: the client's, with only the model rewritten, and a content-length to match. */
function assertRewritten(s: HttpStream, body: Uint8Array, what: string): void {
  const sent = Buffer.concat(s.forwarded.requestBody);
  const parsed = JSON.parse(sent.toString());
  assert.equal(parsed.model, TARGET, `${what}: the model after the strings was found`);
  assert.deepEqual({ ...parsed, model: MODEL }, JSON.parse(Buffer.from(body).toString()), what);
  assert.deepEqual(header(s.forwarded.requestHeaders, "content-length"), [String(sent.length)], what);
}

/** Strings whose quotes and backslashes fall on every offset of a 16-byte block. */
function trickyContent(lead: number): string {
  const pieces = ['"', "\\", '\\"', '"\\', "\\\\", "{", "}", "[", "]", ",", "é", "東"];
  let out = "x".repeat(lead);
  for (let k = 0; k < 40; k++) out += "a".repeat(k % 19) + pieces[k % pieces.length];
  return out + '"model": "not-this-one"' + "z".repeat(lead);
}

test("the model after long strings with quotes and backslashes at every alignment is found, however split", () => {
  const h = host();
  const chunks = [1, 3, 7, 8, 9, 15, 16, 17, 31, 64, CHUNK_BYTES];
  for (let lead = 0; lead < 17; lead++) {
    const body = new Uint8Array(
      Buffer.from(
        JSON.stringify({
          messages: [
            { role: "system", content: trickyContent(lead) },
            { role: "user", content: trickyContent(lead + 5).repeat(3) },
          ],
          max_tokens: 8,
          model: MODEL,
        }),
      ),
    );
    for (const chunk of chunks) {
      const s = send(h, body, chunk);
      assertRewritten(s, body, `lead ${lead}, chunks of ${chunk}`);
      s.finish();
    }
  }
  assert.equal(h.counter("endpoint_picker.model_rewrites"), 17 * chunks.length);
  assert.deepEqual(h.host.failedWorkers(), []);
});

test("a completions prompt string at depth 0, and a model with an escape, scan as before", () => {
  const h = host();
  for (let lead = 0; lead < 17; lead++) {
    const prompt = trickyContent(lead);
    const body = new Uint8Array(Buffer.from(JSON.stringify({ prompt, model: MODEL })));
    for (const chunk of [1, 8, 13, 16, 1024]) {
      const s = send(h, body, chunk);
      assertRewritten(s, body, `prompt lead ${lead}, chunks of ${chunk}`);
      s.finish();
    }
  }
  // An escape in the model string: the model counts as absent, nothing is rewritten.
  const escaped = new Uint8Array(Buffer.from('{"prompt":"' + "p".repeat(40) + '","model":"base\\u002dmodel"}'));
  const s = send(h, escaped, 16);
  assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), Buffer.from(escaped).toString());
  assert.deepEqual(h.host.failedWorkers(), []);
});

test("the benchmark's bodies: the model is found first and last at 220 KiB and 2 MiB in 16 KiB chunks", () => {
  const h = host(MAX_BODY_BYTES);
  for (const bytes of [220 * 1024, 2 * 1024 * 1024]) {
    for (const modelLast of [false, true]) {
      const body = new Uint8Array(
        Buffer.from(
          Buffer.from(chatBody(bytes, modelLast, 5))
            .toString()
            .replace(/meta-llama\/[^"]+/, MODEL),
        ),
      );
      const s = send(h, body, CHUNK_BYTES);
      assertRewritten(s, body, `${bytes} bytes, model ${modelLast ? "last" : "first"}`);
      s.finish();
    }
  }
  assert.deepEqual(h.host.failedWorkers(), []);
});

test("the same prompt split differently is the same prefix chain", () => {
  const h = host();
  const body = chatBody(24 * 1024, true, 9);
  let hits = 0;
  for (const chunk of [CHUNK_BYTES, 1000, 8, 17, 65536]) {
    const s = send(h, body, chunk);
    s.finish();
    const now = h.counter("endpoint_picker.prefix_hits");
    if (chunk !== CHUNK_BYTES) assert.equal(now, hits + 1, `chunks of ${chunk}: a prefix hit`);
    hits = now;
  }
});

test("the agent bodies of the benchmark: the model is found first and last at 220 KiB in 16 KiB chunks", () => {
  const h = host(MAX_BODY_BYTES);
  for (const modelLast of [false, true]) {
    const body = new Uint8Array(
      Buffer.from(
        Buffer.from(agentBody(220 * 1024, modelLast, 5))
          .toString()
          .replace(/meta-llama\/[^"]+/, MODEL),
      ),
    );
    const s = send(h, body, CHUNK_BYTES, "/v1/messages");
    assertRewritten(s, body, `agent body, model ${modelLast ? "last" : "first"}`);
    s.finish();
  }
  assert.deepEqual(h.host.failedWorkers(), []);
});

/** JSON text with its keys in the given order (the values as given). */
const ordered = (o: Record<string, unknown>, keys: string[]) =>
  new Uint8Array(Buffer.from("{" + keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(o[k])}`).join(",") + "}"));

test("an agent request's prefix chain is tools, system, messages, whatever the key order and chunks", () => {
  const h = host();
  const long = (tag: string, n: number) => `${tag} `.repeat(n);
  const tools = [{ name: "read", description: long("reads a file", 60), input_schema: { type: "object" } }];
  const system = [{ type: "text", text: long("You are a coding agent.", 80), cache_control: { type: "ephemeral" } }];
  const messages = [{ role: "user", content: long("Fix the failing test in parser.ts.", 120) }];
  const a = { model: MODEL, max_tokens: 512, tools, system, messages };
  const hits = () => h.counter("endpoint_picker.prefix_hits");
  const first = send(h, ordered(a, ["messages", "system", "tools", "max_tokens", "model"]), 1000, "/v1/messages");
  const dest = destination(first);
  first.finish();
  assert.ok(dest);
  assert.equal(hits(), 0);
  // The same request, keys in another order, split otherwise: the same chain.
  const again = send(h, ordered(a, ["model", "tools", "system", "messages", "max_tokens"]), 17, "/v1/messages");
  assert.equal(destination(again), dest);
  assert.equal(hits(), 1, "the same chain, whatever the key order");
  again.finish();
  // Other tools and system prompt, the same messages: the chain starts elsewhere (tools first), no match.
  const other = {
    ...a,
    tools: [{ name: "write", description: long("writes a file", 60), input_schema: { type: "object" } }],
    system: "Another agent. ".repeat(90),
  };
  send(h, ordered(other, ["model", "messages", "tools", "system"]), CHUNK_BYTES, "/v1/messages").finish();
  assert.equal(hits(), 1, "messages alone are not the start of the engine's prompt");
  // The next turn: a tool call and its result appended; the previous chain is its prefix.
  const next = {
    ...a,
    messages: [
      ...messages,
      { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "read", input: { path: "parser.ts" } }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: long("export function", 50) }] },
    ],
  };
  const turn2 = send(h, ordered(next, ["system", "messages", "model", "tools"]), 4096, "/v1/messages");
  assert.equal(destination(turn2), dest, "the next turn goes where the conversation is cached");
  assert.equal(hits(), 2);
  turn2.finish();
  assert.deepEqual(h.host.failedWorkers(), []);
});

test("OpenAI chat tools after the messages hash as tools before them", () => {
  const h = host();
  const tools = [{ type: "function", function: { name: "search", description: "x ".repeat(400), parameters: {} } }];
  const messages = [
    { role: "system", content: "You are helpful. ".repeat(100) },
    { role: "user", content: "Find the bug. ".repeat(50) },
  ];
  const c = { model: MODEL, messages, tools, tool_choice: "auto" };
  const first = send(h, ordered(c, ["messages", "model", "tool_choice", "tools"]), 1000);
  const dest = destination(first);
  first.finish();
  const second = send(h, ordered(c, ["model", "tools", "messages", "tool_choice"]), 333);
  assert.equal(destination(second), dest);
  assert.equal(h.counter("endpoint_picker.prefix_hits"), 1);
  second.finish();
  // Without the tools the chain is another one (the engine's prompt differs from its start).
  send(h, ordered({ model: MODEL, messages }, ["model", "messages"]), 1000).finish();
  assert.equal(h.counter("endpoint_picker.prefix_hits"), 1);
});

test("a completions prompt of token ids: a longer prompt extends the shorter one's chain", () => {
  const h = host();
  const ids = Array.from({ length: 3000 }, (_, i) => (i * 7919) % 128000);
  const first = send(
    h,
    new Uint8Array(Buffer.from(JSON.stringify({ model: MODEL, prompt: ids }))),
    1000,
    "/v1/completions",
  );
  const dest = destination(first);
  first.finish();
  const longer = { model: MODEL, prompt: [...ids, 1, 2, 3, 4, 5] };
  const second = send(h, new Uint8Array(Buffer.from(JSON.stringify(longer))), 777, "/v1/completions");
  assert.equal(destination(second), dest);
  assert.equal(h.counter("endpoint_picker.prefix_hits"), 1);
  second.finish();
});

test("a broken agent body is picked by load, never an error", () => {
  const h = host();
  const broken = new Uint8Array(
    Buffer.from('{"model":"base-model","system":"s","messages":[{"role":"user"}] "tools":[]}'),
  );
  const s = send(h, broken, 8, "/v1/messages");
  assert.ok(destination(s), "picked");
  // Forwarded as sent, but for the model rewrite rule of this host (the model itself was readable).
  assert.equal(
    Buffer.concat(s.forwarded.requestBody).toString(),
    Buffer.from(broken).toString().replace(MODEL, TARGET),
  );
  assert.equal(h.counter("endpoint_picker.prefix_hits"), 0);
  s.finish();
  assert.deepEqual(h.host.failedWorkers(), []);
});
