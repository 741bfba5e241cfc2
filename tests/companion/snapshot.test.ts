// The snapshot format against its golden sample (tests/fixtures/snapshot/): the encoder writes golden.bin
// byte for byte, the reference decoder reads it (and golden-later.bin, with fields of a later revision) back
// to golden.json. The filter's specs decode the same files (tests/filter/golden.spec.ts).
// UPDATE_GOLDEN=1 rewrites the .bin files from golden.json (then review the diff).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import {
  encodeSnapshot,
  decodeSnapshot,
  fnv1a,
  HEADER_SIZE,
  type Snapshot,
  type LaterRevision,
} from "../../companion/snapshot";

const DIR = "tests/fixtures/snapshot";
const golden: Snapshot = (() => {
  const raw = JSON.parse(readFileSync(`${DIR}/golden.json`, "utf8"));
  return { ...raw, version: BigInt(raw.version) };
})();
/** What golden-later.bin adds: 5 unknown bytes in every entry, record and section, and a section 77. */
const LATER: LaterRevision = { tail: Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x01]), sectionId: 77 };

if (process.env.UPDATE_GOLDEN) {
  writeFileSync(`${DIR}/golden.bin`, encodeSnapshot(golden));
  writeFileSync(`${DIR}/golden-later.bin`, encodeSnapshot(golden, LATER));
}

test("golden: the encoder writes golden.bin byte for byte", () => {
  assert.deepEqual(encodeSnapshot(golden), readFileSync(`${DIR}/golden.bin`));
});

test("golden: the reference decoder reads golden.bin back to golden.json", () => {
  assert.deepEqual(decodeSnapshot(readFileSync(`${DIR}/golden.bin`)), golden);
});

test("golden: fields and sections of a later revision are skipped, the known ones read intact", () => {
  const later = readFileSync(`${DIR}/golden-later.bin`);
  assert.deepEqual(later, encodeSnapshot(golden, LATER));
  assert.ok(later.length > readFileSync(`${DIR}/golden.bin`).length + 5 * 10);
  assert.deepEqual(decodeSnapshot(later), golden);
});

test("base models are optional: a snapshot without them has none", () => {
  const none = encodeSnapshot({ ...golden, baseModels: [] });
  assert.deepEqual(decodeSnapshot(none).baseModels, []);
  assert.deepEqual(decodeSnapshot(none).endpoints, golden.endpoints);
});

test("a truncated, corrupted, older or inconsistent snapshot is refused with a reason", () => {
  const blob = encodeSnapshot(golden);
  assert.throws(() => decodeSnapshot(blob.subarray(0, blob.length - 1)), /totalSize/);
  const corrupt = Buffer.from(blob);
  corrupt[corrupt.length - 5] ^= 0xff;
  assert.throws(() => decodeSnapshot(corrupt), /checksum/);
  assert.throws(() => decodeSnapshot(blob.subarray(0, 10)), /truncated/);
  const format1 = Buffer.from(blob);
  format1.writeUInt16LE(1, 4);
  assert.throws(() => decodeSnapshot(format1), /unsupported format 1/);
  // A record length running past its section: refused even though size and checksum agree.
  const lying = Buffer.from(blob);
  const firstRecord = lying.indexOf(Buffer.from("10.0.0.1:8000")) - 2 - 15 - 4; // str length, fixed fields, u32 size
  lying.writeUInt32LE(0xffff, firstRecord);
  lying.writeUInt32LE(fnv1a(lying, HEADER_SIZE, lying.length), 28);
  assert.throws(() => decodeSnapshot(lying), /runs past its container/);
});
