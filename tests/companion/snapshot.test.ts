import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeSnapshot, decodeSnapshot, DEFAULT_PROFILE, type Snapshot } from "../../companion/snapshot";

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
};

test("a snapshot survives encode and decode", () => {
  assert.deepEqual(decodeSnapshot(encodeSnapshot(sample)), sample);
});

test("a truncated or corrupted snapshot is refused with a reason", () => {
  const blob = encodeSnapshot(sample);
  assert.throws(() => decodeSnapshot(blob.subarray(0, blob.length - 1)), /totalSize/);
  const corrupt = Buffer.from(blob);
  corrupt[corrupt.length - 5] ^= 0xff;
  assert.throws(() => decodeSnapshot(corrupt), /checksum/);
  assert.throws(() => decodeSnapshot(blob.subarray(0, 10)), /truncated/);
});
