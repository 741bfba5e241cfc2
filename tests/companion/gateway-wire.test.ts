// The gateway exchange's wire formats (docs/GATEWAYS.md): byte layouts as the tables give them, round trips,
// and every refusal of the decoders, each with its reason.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_COUNT,
  MAX_REPORT_RECORDS,
  MAX_VIEW_RECORDS,
  decodeRelay,
  decodeReport,
  decodeView,
  encodeRelay,
  encodeReport,
  encodeView,
  nameHash,
  peekGatewayId,
  storedLevelCount,
  type ChainRecord,
  type GatewayReport,
  type GatewayView,
} from "../../companion/gateway-wire";

function chain(endpointHash: number, blocks: number, salt = 0): ChainRecord {
  const c = storedLevelCount(blocks);
  return { endpointHash, blocks, levels: Uint32Array.from({ length: c }, (_, j) => (salt * 1000 + j + 1) >>> 0) };
}

const report: GatewayReport = {
  gatewayId: 0x0123_4567_89ab_cdefn,
  reportSeq: 42n,
  cursors: [
    { companionId: 0xffff_ffff_ffff_fff1n, cursor: 7n },
    { companionId: 5n, cursor: 0n },
  ],
  inflight: [
    { addressHash: nameHash("10.0.0.5:8000"), count: 3 },
    { addressHash: 0xffffffff, count: MAX_COUNT },
  ],
  adapters: [{ addressHash: nameHash("10.0.0.5:8000"), adapterHash: nameHash("sql-lora"), count: 2 }],
  records: [chain(nameHash("10.0.0.5:8000"), 1), chain(7, 9, 1), chain(8, 256, 2), chain(9, 65535, 3)],
};

const view: GatewayView = {
  companionId: 0xfeed_beef_0000_0001n,
  cursor: 123_456_789_012n,
  gatewayCount: 3,
  inflight: [{ addressHash: 1, count: 5 }],
  adapters: [
    { addressHash: 1, adapterHash: 2, count: 4 },
    { addressHash: 1, adapterHash: 3, count: 1 },
  ],
  records: [chain(1, 17, 4)],
};

const le = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

test("levels per chain length follow the filter's prefix.ts (every k <= 8, then four per doubling)", () => {
  assert.deepEqual(
    [0, 1, 8, 9, 10, 16, 17, 256, 257, 65535].map(storedLevelCount),
    // 9 blocks: 1..8 and 9; 10: 1..8, 10; 16: 1..8, 10, 12, 14, 16; 256: ... 28 levels (prefix.ts's comment)
    [0, 1, 8, 9, 9, 12, 13, 28, 29, 60],
  );
  assert.equal(nameHash(""), 0x811c9dc5, "FNV-1a 32 offset basis");
  assert.equal(nameHash("a"), 0xe40c292c);
});

test("report: the byte layout of docs/GATEWAYS.md, and a round trip", () => {
  const bytes = encodeReport(report);
  const dv = le(bytes);
  assert.equal(Buffer.from(bytes.subarray(0, 4)).toString("latin1"), "EPG1");
  assert.equal(dv.getUint16(4, true), 1, "format");
  assert.equal(dv.getUint16(6, true), 0, "reserved");
  assert.equal(dv.getBigUint64(8, true), report.gatewayId);
  assert.equal(dv.getBigUint64(16, true), 42n);
  assert.equal(dv.getUint16(24, true), 2, "cursorCount");
  assert.equal(dv.getBigUint64(26, true), 0xffff_ffff_ffff_fff1n);
  assert.equal(dv.getBigUint64(34, true), 7n);
  let at = 26 + 2 * 16;
  assert.equal(dv.getUint32(at, true), 2, "inflightCount");
  assert.equal(dv.getUint32(at + 4, true), nameHash("10.0.0.5:8000"));
  assert.equal(dv.getUint32(at + 8, true), 3);
  at += 4 + 2 * 8;
  assert.equal(dv.getUint32(at, true), 1, "adapterCount");
  assert.equal(dv.getUint32(at + 8, true), nameHash("sql-lora"));
  at += 4 + 12;
  assert.equal(dv.getUint32(at, true), 4, "recordCount");
  assert.deepEqual(
    [dv.getUint32(at + 4, true), dv.getUint32(at + 8, true), dv.getUint32(at + 12, true)],
    [nameHash("10.0.0.5:8000"), 1, 1],
  );
  assert.equal(dv.getUint32(at + 16, true), 1, "the one level hash");
  assert.deepEqual(decodeReport(bytes), report);
  assert.equal(peekGatewayId(bytes), report.gatewayId);
  assert.deepEqual(
    decodeReport(encodeReport({ ...report, cursors: [], inflight: [], adapters: [], records: [] })).records,
    [],
    "an empty report",
  );
});

test("view: the byte layout, and a round trip", () => {
  const bytes = encodeView(view);
  const dv = le(bytes);
  assert.equal(Buffer.from(bytes.subarray(0, 4)).toString("latin1"), "EPG1");
  assert.equal(dv.getUint16(4, true), 1);
  assert.equal(dv.getBigUint64(8, true), view.companionId);
  assert.equal(dv.getBigUint64(16, true), view.cursor);
  assert.equal(dv.getUint32(24, true), 3, "gatewayCount");
  assert.equal(dv.getUint32(28, true), 1, "inflightCount");
  assert.equal(dv.getUint32(28 + 12, true), 2, "adapterCount");
  assert.equal(dv.getUint32(28 + 12 + 4 + 24, true), 1, "recordCount");
  assert.equal(bytes.length, 28 + 12 + 4 + 24 + 4 + 12 + 4 * 13);
  assert.deepEqual(decodeView(bytes), view);
});

test("relay: u64 companionId, then {u64 receivedAtMs, u32 length, bytes} to the end; a round trip", () => {
  const r1 = encodeReport(report);
  const r2 = encodeReport({ ...report, reportSeq: 43n });
  const bytes = encodeRelay({
    companionId: 9n,
    reports: [
      { receivedAtMs: 1_700_000_000_123, report: r1 },
      { receivedAtMs: 1_700_000_000_173, report: r2 },
    ],
  });
  const dv = le(bytes);
  assert.equal(dv.getBigUint64(0, true), 9n);
  assert.equal(dv.getBigUint64(8, true), 1_700_000_000_123n);
  assert.equal(dv.getUint32(16, true), r1.length);
  assert.equal(bytes.length, 8 + 12 + r1.length + 12 + r2.length);
  const back = decodeRelay(bytes);
  assert.equal(back.companionId, 9n);
  assert.deepEqual(
    back.reports.map((r) => [r.receivedAtMs, decodeReport(r.report).reportSeq]),
    [
      [1_700_000_000_123, 42n],
      [1_700_000_000_173, 43n],
    ],
  );
  assert.deepEqual(decodeRelay(encodeRelay({ companionId: 9n, reports: [] })).reports, [], "an empty relay");
});

/** Copies `bytes` and applies `edit` to a DataView of the copy. */
function patched(bytes: Uint8Array, edit: (dv: DataView, b: Uint8Array) => void): Uint8Array {
  const b = bytes.slice();
  edit(le(b), b);
  return b;
}

test("report refusals name what is wrong", () => {
  const good = encodeReport(report);
  const base = { ...report, cursors: [], inflight: [], adapters: [] };
  // Offsets in a report without cursors, counts or adapters: inflightCount at 26, adapterCount 30, recordCount 34.
  const bare = encodeReport({ ...base, records: [] });
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["empty", new Uint8Array(0), /^report: 0 bytes is too short for a header$/],
    ["bad magic", patched(good, (_, b) => (b[3] = 0x32)), /^report: bad magic "EPG2"/],
    ["format 2", patched(good, (dv) => dv.setUint16(4, 2, true)), /^report: format 2 is not supported/],
    ["truncated header", good.subarray(0, 20), /^report: header runs past the body/],
    ["gateway 0", patched(good, (dv) => dv.setBigUint64(8, 0n, true)), /^report: gatewayId is 0$/],
    [
      "cursors past the body",
      patched(good, (dv) => dv.setUint16(24, 5000, true)),
      /^report: cursorCount 5000 runs past the body/,
    ],
    [
      "the same companion twice",
      encodeReport({
        ...base,
        records: [],
        cursors: [
          { companionId: 1n, cursor: 1n },
          { companionId: 1n, cursor: 2n },
        ],
      }),
      /^report: cursor 1: companion 0000000000000001 appears twice$/,
    ],
    ["no inflightCount", bare.subarray(0, 26), /^report: inflightCount runs past the body/],
    [
      "inflight past the body",
      patched(bare, (dv) => dv.setUint32(26, 5000, true)),
      /^report: inflightCount 5000 runs past the body/,
    ],
    [
      "inflight above the entry limit",
      patched(bare, (dv) => dv.setUint32(26, 70_000, true)),
      /^report: inflightCount 70000 is above the limit of 65536$/,
    ],
    [
      "a count above 1e6",
      encodeReport({ ...base, records: [], inflight: [{ addressHash: 1, count: MAX_COUNT + 1 }] }),
      /^report: inflight\[0\]: count 1000001 is above 1000000$/,
    ],
    [
      "an endpoint twice",
      encodeReport({
        ...base,
        records: [],
        inflight: [
          { addressHash: 1, count: 1 },
          { addressHash: 1, count: 2 },
        ],
      }),
      /^report: inflight\[1\]: address hash 1 appears twice$/,
    ],
    [
      "adapters past the body",
      patched(bare, (dv) => dv.setUint32(30, 3, true)),
      /^report: adapterCount 3 runs past the body/,
    ],
    [
      "an adapter count above 1e6",
      encodeReport({ ...base, records: [], adapters: [{ addressHash: 1, adapterHash: 2, count: 2_000_000 }] }),
      /^report: adapters\[0\]: count 2000000 is above 1000000$/,
    ],
    [
      "an (endpoint, adapter) twice",
      encodeReport({
        ...base,
        records: [],
        adapters: [
          { addressHash: 1, adapterHash: 2, count: 1 },
          { addressHash: 1, adapterHash: 2, count: 1 },
        ],
      }),
      /^report: adapters\[1\]: \(address 1, adapter 2\) appears twice$/,
    ],
    [
      "records past the body",
      patched(bare, (dv) => dv.setUint32(34, 5000, true)),
      /^report: recordCount 5000 runs past the body/,
    ],
    [
      "records above the limit",
      patched(bare, (dv) => dv.setUint32(34, MAX_REPORT_RECORDS + 1, true)),
      /^report: recordCount 65537 is above the limit of 65536$/,
    ],
    [
      "0 blocks",
      encodeReport({ ...base, records: [{ endpointHash: 1, blocks: 0, levels: [] }] }),
      /^report: record 0: blocks 0 is outside 1\.\.65535$/,
    ],
    [
      "65536 blocks",
      encodeReport({ ...base, records: [{ endpointHash: 1, blocks: 65536, levels: new Uint32Array(61) }] }),
      /^report: record 0: blocks 65536 is outside 1\.\.65535$/,
    ],
    [
      "a level count that is not the stored count",
      encodeReport({ ...base, records: [chain(1, 4), { endpointHash: 1, blocks: 16, levels: new Uint32Array(16) }] }),
      /^report: record 1: levels 16 for 16 blocks \(the filter stores 12\)$/,
    ],
    [
      "levels past the body",
      encodeReport({ ...base, records: [chain(1, 256)] }).subarray(0, 38 + 12 + 40),
      /^report: record 0's 28 levels runs past the body/,
    ],
    [
      "a record header past the body",
      patched(encodeReport({ ...base, records: [chain(1, 9)] }), (dv) => dv.setUint32(34, 2, true)),
      /^report: record 1 runs past the body/,
    ],
    // After the last record comes the optional queue tail (u16 count, entries): 3 zero bytes are an empty tail
    // and one byte more; a single byte is a truncated tail.
    ["trailing bytes", Buffer.concat([good, Buffer.alloc(3)]), /^report: 1 bytes after the queue entries$/],
    ["a truncated tail", Buffer.concat([good, Buffer.alloc(1)]), /^report: queueEntryCount runs past the body/],
  ];
  for (const [what, bytes, message] of cases) assert.throws(() => decodeReport(bytes), { message }, what);
  // Never anything but an Error with a reason: every truncation of a valid report.
  for (let n = 0; n < good.length; n++) {
    assert.throws(
      () => decodeReport(good.subarray(0, n)),
      (e: unknown) => e instanceof Error && !(e instanceof RangeError) && e.message.startsWith("report: "),
      `truncated to ${n}`,
    );
  }
  assert.equal(peekGatewayId(good.subarray(0, 23)), null);
  assert.equal(peekGatewayId(patched(good, (_, b) => (b[0] = 0))), null);
});

test("view and relay refusals", () => {
  const good = encodeView(view);
  assert.throws(() => decodeView(patched(good, (_, b) => (b[0] = 0x58))), { message: /^view: bad magic "XPG1"/ });
  assert.throws(() => decodeView(patched(good, (dv) => dv.setUint16(4, 9, true))), {
    message: /^view: format 9 is not supported/,
  });
  assert.throws(() => decodeView(good.subarray(0, 27)), { message: /^view: header runs past the body/ });
  const many = encodeView({ ...view, records: Array.from({ length: MAX_VIEW_RECORDS + 1 }, () => chain(1, 1)) });
  assert.throws(() => decodeView(many), { message: /^view: recordCount 4097 is above the limit of 4096$/ });
  assert.equal(
    decodeView(encodeView({ ...view, records: Array.from({ length: MAX_VIEW_RECORDS }, () => chain(1, 1)) })).records
      .length,
    MAX_VIEW_RECORDS,
  );
  for (let n = 0; n < good.length; n++)
    assert.throws(() => decodeView(good.subarray(0, n)), { message: /^view: / }, `truncated to ${n}`);

  const relay = encodeRelay({ companionId: 3n, reports: [{ receivedAtMs: 5, report: encodeReport(report) }] });
  assert.throws(() => decodeRelay(relay.subarray(0, 7)), { message: /^relay: companionId runs past the body/ });
  assert.throws(() => decodeRelay(patched(relay, (dv) => dv.setBigUint64(0, 0n, true))), {
    message: /^relay: companionId is 0$/,
  });
  assert.throws(() => decodeRelay(relay.subarray(0, 8 + 11)), {
    message: /^relay: report 0's header runs past the body/,
  });
  assert.throws(() => decodeRelay(relay.subarray(0, relay.length - 1)), {
    message: /^relay: report 0's length \d+ runs past the body/,
  });
  assert.throws(() => decodeRelay(patched(relay, (dv) => dv.setBigUint64(8, 1n << 60n, true))), {
    message: /^relay: report 0: receivedAtMs \d+ is not a time$/,
  });
});
