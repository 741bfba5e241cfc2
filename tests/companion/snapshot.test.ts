import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeSnapshot, decodeSnapshot, fnv1a, DEFAULT_PROFILE, HEADER_SIZE, type Snapshot } from "../../companion/snapshot";

const sample: Snapshot = {
  version: 1234567890123n,
  generatedAtMs: 1700000000000,
  // f32 fields: use values that survive single precision so the round trip is exact.
  profile: { ...DEFAULT_PROFILE, saturationKv: Math.fround(0.8), loraWeight: 1, fallbackCount: 2, picker: "weighted-random-picker" },
  endpoints: [
    { address: "10.0.0.1:8000", engine: "vllm", stale: false, error: false, queued: 3, running: 7, kvUsage: 0.5, ageMs: 40,
      lora: { running: ["sql-lora"], waiting: ["tweet-lora"], max: 4 }, cache: { blockSize: 16, numBlocks: 9000 } },
    { address: "[fd00::1]:8000", engine: "sglang", stale: true, error: false, queued: 0, running: null, kvUsage: null, ageMs: 2500,
      lora: null, cache: null },
  ],
  baseModels: ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct"],
};

test("a snapshot survives encode and decode", () => {
  assert.deepEqual(decodeSnapshot(encodeSnapshot(sample)), sample);
});

test("the base-model section trails the endpoints: a blob without it decodes with none", () => {
  const withNone = encodeSnapshot({ ...sample, baseModels: [] });
  const withTwo = encodeSnapshot(sample);
  assert.equal(withTwo.length - withNone.length, 2 * 2 + "meta-llama/Llama-3.1-8B-Instruct".length + "Qwen/Qwen2.5-7B-Instruct".length);
  // What a companion without the section sent: the same blob two bytes shorter, size and checksum redone.
  const old = Buffer.from(withNone.subarray(0, withNone.length - 2));
  old.writeUInt32LE(old.length, 24);
  old.writeUInt32LE(fnv1a(old, HEADER_SIZE, old.length), 28);
  assert.deepEqual(decodeSnapshot(old).baseModels, []);
  assert.deepEqual(decodeSnapshot(old).endpoints, sample.endpoints);
});

test("a truncated or corrupted snapshot is refused with a reason", () => {
  const blob = encodeSnapshot(sample);
  assert.throws(() => decodeSnapshot(blob.subarray(0, blob.length - 1)), /totalSize/);
  const corrupt = Buffer.from(blob);
  corrupt[corrupt.length - 5] ^= 0xff;
  assert.throws(() => decodeSnapshot(corrupt), /checksum/);
  assert.throws(() => decodeSnapshot(blob.subarray(0, 10)), /truncated/);
});
