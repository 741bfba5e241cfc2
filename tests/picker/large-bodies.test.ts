// The body scanner skips string contents 16 bytes at a time (filter/body.ts): long strings full of quotes,
// backslashes and escaped quotes, at every alignment and however the body is split, must leave it exactly
// where a byte-by-byte scan would. Observed through the real filter: a model rewrite rule for the `model`
// that comes after the strings (the rewrite needs the model's bytes and where they are in the body), and the
// prefix index (the same prompt, split differently, is the same chain).
import { test } from "node:test";
import assert from "node:assert/strict";
import { PickerHost, header } from "./harness";
import { chatBody, CHUNK_BYTES, MAX_BODY_BYTES } from "./large-bodies";
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

function send(h: PickerHost, body: Uint8Array, chunk: number): HttpStream {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < body.length; at += chunk) chunks.push(body.subarray(at, at + chunk));
  return h.send({
    path: "/v1/chat/completions",
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
