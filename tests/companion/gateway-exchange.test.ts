// The merged view (companion/gateway-exchange.ts) on injected time: sums without the asking gateway, expiry,
// cursors per companion, the 4,096-record answer, the no-cursor window, refusals that leave the view as it
// was, and the relay between two exchanges.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DEFAULT_MAX_RECORDS,
  GATEWAY_EXPIRY_MS,
  GatewayExchange,
  RECORD_WINDOW_MS,
} from "../../companion/gateway-exchange";
import {
  MAX_VIEW_RECORDS,
  decodeRelay,
  decodeReport,
  decodeView,
  encodeRelay,
  encodeReport,
  storedLevelCount,
  type AdapterEntry,
  type ChainRecord,
  type CompanionCursor,
  type GatewayView,
  type InflightEntry,
} from "../../companion/gateway-wire";

const A = 0xa,
  B = 0xb,
  C = 0xc; // address hashes
const LORA = 0x10;
const T0 = 1_700_000_000_000;

/** A one-block chain to endpoint `ep` whose level hash `tag` identifies it in answers. */
function rec(ep: number, tag: number): ChainRecord {
  return { endpointHash: ep, blocks: 1, levels: Uint32Array.of(tag) };
}

interface Parts {
  inflight?: Array<[number, number]>;
  adapters?: AdapterEntry[];
  records?: ChainRecord[];
  cursors?: CompanionCursor[];
}

function report(gatewayId: bigint, seq: bigint, p: Parts = {}): Uint8Array {
  return encodeReport({
    gatewayId,
    reportSeq: seq,
    cursors: p.cursors ?? [],
    inflight: (p.inflight ?? []).map(([addressHash, count]): InflightEntry => ({ addressHash, count })),
    adapters: p.adapters ?? [],
    records: p.records ?? [],
  });
}

/** A gateway: reports with increasing seqs and its cursor for each companion, as the filter keeps them. */
class Gateway {
  seq = 0n;
  cursors = new Map<bigint, bigint>();
  constructor(readonly id: bigint) {}
  send(ex: GatewayExchange, now: number, p: Omit<Parts, "cursors"> = {}): GatewayView {
    const cursors = [...this.cursors].map(([companionId, cursor]) => ({ companionId, cursor }));
    const view = decodeView(ex.receive(report(this.id, ++this.seq, { ...p, cursors }), now));
    this.cursors.set(view.companionId, view.cursor);
    return view;
  }
}

const counts = (v: GatewayView) =>
  Object.fromEntries(v.inflight.map((e) => [e.addressHash, e.count]).sort((x, y) => x[0] - y[0]));
const tags = (v: GatewayView) => v.records.map((r) => r.levels[0]);

test("companion ids: random, never 0, or given", () => {
  const a = new GatewayExchange(),
    b = new GatewayExchange();
  assert.notEqual(a.companionId, 0n);
  assert.notEqual(a.companionId, b.companionId);
  assert.equal(new GatewayExchange({ companionId: 77n }).companionId, 77n);
  assert.throws(() => new GatewayExchange({ companionId: 0n }), /must not be 0/);
});

test("the answer sums the other live gateways' counts, never the asking gateway's own", () => {
  const ex = new GatewayExchange({ companionId: 1n });
  const g1 = new Gateway(101n),
    g2 = new Gateway(102n),
    g3 = new Gateway(103n);
  const first = g1.send(ex, T0, {
    inflight: [
      [A, 3],
      [B, 1],
    ],
    adapters: [{ addressHash: A, adapterHash: LORA, count: 2 }],
  });
  assert.deepEqual([first.gatewayCount, first.inflight, first.adapters], [1, [], []], "alone: nothing from others");
  const v2 = g2.send(ex, T0 + 10, {
    inflight: [
      [A, 2],
      [C, 5],
    ],
    adapters: [{ addressHash: A, adapterHash: LORA, count: 1 }],
  });
  assert.equal(v2.gatewayCount, 2);
  assert.deepEqual(counts(v2), { [A]: 3, [B]: 1 });
  assert.deepEqual(v2.adapters, [{ addressHash: A, adapterHash: LORA, count: 2 }]);
  const v3 = g3.send(ex, T0 + 20);
  assert.equal(v3.gatewayCount, 3);
  assert.deepEqual(counts(v3), { [A]: 5, [B]: 1, [C]: 5 });
  assert.deepEqual(v3.adapters, [{ addressHash: A, adapterHash: LORA, count: 3 }]);
  const v1 = g1.send(ex, T0 + 30, { inflight: [[A, 4]] }); // g1's new counts replace its old ones
  assert.deepEqual(counts(v1), { [A]: 2, [C]: 5 });
  assert.deepEqual(v1.adapters, [{ addressHash: A, adapterHash: LORA, count: 1 }]);
  assert.deepEqual(counts(g3.send(ex, T0 + 40)), { [A]: 6, [C]: 5 }, "g1's old B count is gone");
  assert.deepEqual(counts(g2.send(ex, T0 + 50, { inflight: [[A, 1]] })), { [A]: 4 }, "own counts never included");
});

test("a gateway silent for 3 s stops counting; a new report brings it back", () => {
  const ex = new GatewayExchange({ companionId: 1n });
  const g1 = new Gateway(1n),
    g2 = new Gateway(2n);
  g1.send(ex, T0, { inflight: [[A, 7]] });
  assert.deepEqual(counts(g2.send(ex, T0 + GATEWAY_EXPIRY_MS - 1)), { [A]: 7 }, "2999 ms: still counts");
  assert.equal(ex.gatewayCount(T0 + GATEWAY_EXPIRY_MS - 1), 2);
  const late = g2.send(ex, T0 + GATEWAY_EXPIRY_MS);
  assert.deepEqual([late.gatewayCount, counts(late)], [1, {}], "3000 ms: expired");
  assert.equal(ex.stats(T0 + GATEWAY_EXPIRY_MS).liveGateways, 1);
  g1.send(ex, T0 + 4000, { inflight: [[A, 2]] });
  assert.deepEqual(counts(g2.send(ex, T0 + 4001)), { [A]: 2 });
  assert.equal(ex.gatewayCount(T0 + 4000 + 2 * GATEWAY_EXPIRY_MS), 0);
});

test("records: other gateways' chains after the cursor, per companion, never the gateway's own", () => {
  const ex = new GatewayExchange({ companionId: 1n });
  const g1 = new Gateway(1n),
    g2 = new Gateway(2n);
  const a = g1.send(ex, T0, { records: [rec(A, 1), rec(B, 2)] });
  assert.deepEqual([tags(a), a.cursor], [[], 2n], "its own chains are not sent back; the cursor covers them");
  const b = g2.send(ex, T0 + 1, { records: [rec(A, 3)] });
  assert.deepEqual([tags(b), b.cursor], [[1, 2], 3n], "no cursor yet: the last 10 s");
  assert.deepEqual(b.records[0], rec(A, 1));
  const b2 = g2.send(ex, T0 + 2);
  assert.deepEqual([tags(b2), b2.cursor], [[], 3n], "nothing new after cursor 3");
  const a2 = g1.send(ex, T0 + 3, { records: [rec(C, 4)] });
  assert.deepEqual([tags(a2), a2.cursor], [[3], 4n], "g1's cursor 2: g2's chain 3; its own 4 skipped");
  assert.deepEqual(tags(g2.send(ex, T0 + 4)), [4]);

  // A cursor for another companion is not this companion's cursor: the window again.
  const g3 = new Gateway(3n);
  g3.cursors.set(999n, 4n);
  assert.deepEqual(tags(g3.send(ex, T0 + 5)), [1, 2, 3, 4]);
  // A cursor this companion never handed out (ahead of its newest record) counts as none.
  const g4 = new Gateway(4n);
  g4.cursors.set(1n, 1_000_000n);
  const v4 = g4.send(ex, T0 + 6);
  assert.deepEqual([tags(v4), v4.cursor], [[1, 2, 3, 4], 4n]);
  // An empty log answers cursor 0, and a gateway holding cursor 0 gets every record after it.
  const empty = new GatewayExchange({ companionId: 9n });
  const g5 = new Gateway(5n);
  assert.equal(g5.send(empty, T0).cursor, 0n);
  new Gateway(6n).send(empty, T0, { records: [rec(A, 60)] });
  assert.deepEqual(tags(g5.send(empty, T0 + 1)), [60]);
});

test("at most 4,096 records per answer; the next answer continues after the last one included", () => {
  const ex = new GatewayExchange({ companionId: 1n });
  const g1 = new Gateway(1n),
    g2 = new Gateway(2n);
  g2.send(ex, T0);
  // 5000 chains from g1, with 100 of g2's own in the middle.
  g1.send(ex, T0 + 1, { records: Array.from({ length: 3000 }, (_, i) => rec(A, i)) });
  ex.receive(report(2n, 99n, { records: Array.from({ length: 100 }, (_, i) => rec(B, 100_000 + i)) }), T0 + 1);
  g1.send(ex, T0 + 2, { records: Array.from({ length: 2000 }, (_, i) => rec(A, 3000 + i)) });
  const first = g2.send(ex, T0 + 3);
  assert.equal(first.records.length, MAX_VIEW_RECORDS);
  assert.deepEqual(tags(first).slice(0, 2), [0, 1]);
  assert.equal(tags(first)[MAX_VIEW_RECORDS - 1], 4095);
  assert.equal(first.cursor, BigInt(4096 + 100), "seq of the last included record (g2's 100 were skipped)");
  const rest = g2.send(ex, T0 + 4);
  assert.deepEqual(
    tags(rest),
    Array.from({ length: 904 }, (_, i) => 4096 + i),
  );
  assert.equal(rest.cursor, 5100n);
  assert.equal(g2.send(ex, T0 + 5).records.length, 0);
});

test("records are kept 10 s and --exchange-records at most; without a cursor the window is what is held", () => {
  const ex = new GatewayExchange({ companionId: 1n });
  const g1 = new Gateway(1n);
  g1.send(ex, T0, { records: [rec(A, 1)] });
  g1.send(ex, T0 + 5000, { records: [rec(A, 2)] });
  assert.equal(ex.stats(T0 + 5000).records, 2);
  assert.deepEqual(tags(new Gateway(2n).send(ex, T0 + RECORD_WINDOW_MS - 1)), [1, 2]);
  assert.deepEqual(tags(new Gateway(3n).send(ex, T0 + RECORD_WINDOW_MS)), [2], "10 s old: gone");
  // A cursor older than the oldest record held: from the oldest held.
  const g4 = new Gateway(4n);
  g4.cursors.set(1n, 0n);
  assert.deepEqual(tags(g4.send(ex, T0 + RECORD_WINDOW_MS + 1)), [2]);
  assert.equal(ex.stats(T0 + 5000 + RECORD_WINDOW_MS).records, 0);

  const small = new GatewayExchange({ companionId: 1n, maxRecords: 10 });
  new Gateway(1n).send(small, T0, { records: Array.from({ length: 15 }, (_, i) => rec(A, i)) });
  assert.equal(small.stats(T0).records, 10);
  const late = new Gateway(2n);
  late.cursors.set(1n, 0n);
  assert.deepEqual(tags(late.send(small, T0 + 1)), [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
  assert.equal(DEFAULT_MAX_RECORDS, 65_536);
  assert.equal(new GatewayExchange().stats(T0).records, 0);
});

test("a refused report changes nothing: counts, records, live gateways", () => {
  const ex = new GatewayExchange({ companionId: 1n });
  const g1 = new Gateway(1n),
    g2 = new Gateway(2n);
  g1.send(ex, T0, { inflight: [[A, 3]], records: [rec(A, 1)] });
  const before = ex.stats(T0 + 1);
  const bad: Array<[Uint8Array, RegExp]> = [
    [new Uint8Array([1, 2, 3]), /^report: 3 bytes is too short/],
    [report(3n, 1n, { inflight: [[B, 1_000_001]], records: [rec(B, 9)] }), /count 1000001 is above 1000000/],
    [
      report(3n, 1n, { inflight: [[B, 1]], records: [rec(B, 9), { endpointHash: B, blocks: 2, levels: [1] }] }),
      /record 1: levels 1 for 2 blocks/,
    ],
    [report(1n, 99n, { inflight: [[A, 50]], records: [rec(A, 9)] }).subarray(0, 40), /runs past the body/],
  ];
  for (const [bytes, message] of bad) assert.throws(() => ex.receive(bytes, T0 + 1), { message });
  const after = ex.stats(T0 + 1);
  assert.deepEqual({ ...after, reportsRefused: before.reportsRefused }, before, "only the refusal counter moved");
  assert.equal(after.reportsRefused, before.reportsRefused + bad.length);
  const v = g2.send(ex, T0 + 2);
  assert.deepEqual([v.gatewayCount, counts(v), tags(v)], [2, { [A]: 3 }, [1]], "gateway 3 never appeared");
  assert.equal(storedLevelCount(2), 2);
});

test("relay: direct reports go to the peer once, are applied there as if received, and are never relayed again", () => {
  const a = new GatewayExchange({ companionId: 0xaan }),
    b = new GatewayExchange({ companionId: 0xbbn });
  assert.equal(a.takeRelay(), null, "nothing received");
  const g1 = new Gateway(1n),
    g2 = new Gateway(2n);
  g1.send(a, T0, { inflight: [[A, 3]], records: [rec(A, 1)] });
  g1.send(a, T0 + 50, { inflight: [[A, 4]], records: [rec(A, 2)] });
  const relay = a.takeRelay()!;
  assert.equal(a.takeRelay(), null, "taken once");
  const framed = decodeRelay(relay);
  assert.equal(framed.companionId, 0xaan);
  assert.deepEqual(
    framed.reports.map((r) => [r.receivedAtMs, decodeReport(r.report).reportSeq]),
    [
      [T0, 1n],
      [T0 + 50, 2n],
    ],
  );
  const result = b.acceptRelay(relay, T0 + 60);
  assert.deepEqual(result, { from: 0xaan, self: false, applied: 2, duplicates: 0, refused: [] });
  const v = g2.send(b, T0 + 70);
  assert.deepEqual([v.gatewayCount, counts(v), tags(v)], [2, { [A]: 4 }, [1, 2]], "B knows g1 from A's relay");
  assert.equal(v.companionId, 0xbbn);
  const fromB = b.takeRelay()!;
  assert.deepEqual(
    decodeRelay(fromB).reports.map((r) => decodeReport(r.report).gatewayId),
    [2n],
    "B relays only what it received directly",
  );

  // The same relay again (or a report that reached B twice): applied once.
  assert.deepEqual(b.acceptRelay(relay, T0 + 80), { from: 0xaan, self: false, applied: 0, duplicates: 2, refused: [] });
  assert.deepEqual(tags(new Gateway(3n).send(b, T0 + 90)), [1, 2], "no duplicate records");
  // An older report arriving after a newer one does not replace the counts.
  b.acceptRelay(
    encodeRelay({
      companionId: 0xaan,
      reports: [{ receivedAtMs: T0 + 95, report: report(1n, 0n, { inflight: [[A, 100]] }) }],
    }),
    T0 + 95,
  );
  assert.deepEqual(counts(g2.send(b, T0 + 96)), { [A]: 4 });

  // Expiry runs from the peer's receive time; a report that was already 3 s old counts for nothing.
  assert.deepEqual(counts(g2.send(b, T0 + 50 + GATEWAY_EXPIRY_MS)), {});
  const stale = encodeRelay({
    companionId: 0xaan,
    reports: [{ receivedAtMs: T0, report: report(5n, 1n, { inflight: [[C, 9]], records: [rec(C, 5)] }) }],
  });
  b.acceptRelay(stale, T0 + GATEWAY_EXPIRY_MS + 100);
  const after = g2.send(b, T0 + GATEWAY_EXPIRY_MS + 101);
  assert.deepEqual([counts(after), tags(after)], [{}, [5]], "its chains still count");

  // A relay naming this companion is dropped; a report in a relay that does not decode is skipped.
  assert.deepEqual(b.acceptRelay(fromB, T0 + 200).self, true);
  const mixed = encodeRelay({
    companionId: 0xaan,
    reports: [
      { receivedAtMs: T0 + 300, report: new Uint8Array(5) },
      { receivedAtMs: T0 + 300, report: report(6n, 1n, { inflight: [[B, 1]] }) },
    ],
  });
  const r = b.acceptRelay(mixed, T0 + 300);
  assert.deepEqual([r.applied, r.refused.length], [1, 1]);
  assert.match(r.refused[0].reason, /^report: 5 bytes is too short/);
  assert.deepEqual(counts(g2.send(b, T0 + 301)), { [B]: 1 });
  assert.throws(() => b.acceptRelay(new Uint8Array(4), T0), { message: /^relay: companionId runs past the body/ });
  const s = b.stats(T0 + 301);
  assert.deepEqual([s.relaysAccepted, s.relaysFromSelf, s.reportsRefused], [5, 1, 1]);
});

test("relay bodies: split at the size limit, nothing kept without peers, oldest dropped on overflow", () => {
  const a = new GatewayExchange({ companionId: 1n, maxReportBytes: 1024 });
  const big = (seq: bigint) => report(1n, seq, { records: Array.from({ length: 40 }, (_, i) => rec(A, i)) });
  assert.ok(big(1n).length > 500 && big(1n).length < 1024);
  for (let s = 1n; s <= 3n; s++) a.receive(big(s), T0);
  const bodies: Uint8Array[] = [];
  for (let b = a.takeRelay(); b !== null; b = a.takeRelay()) bodies.push(b);
  assert.deepEqual(
    bodies.map((b) => decodeRelay(b).reports.length),
    [1, 1, 1],
  );
  for (const b of bodies) assert.ok(b.length <= 1024 + 20);
  a.receive(big(4n), T0);
  a.receive(big(5n), T0);
  assert.equal(decodeRelay(a.takeRelay(10_000)!).reports.length, 2, "a larger limit holds both");

  const alone = new GatewayExchange({ relay: false });
  alone.receive(big(1n), T0);
  assert.equal(alone.takeRelay(), null);

  const tight = new GatewayExchange({ maxPendingRelayBytes: 2000 });
  for (let s = 1n; s <= 5n; s++) tight.receive(big(s), T0);
  const kept = decodeRelay(tight.takeRelay(1e9)!).reports.map((r) => decodeReport(r.report).reportSeq);
  assert.deepEqual(kept, [4n, 5n]);
  assert.equal(tight.stats(T0).relayOverflow, 3);
});
