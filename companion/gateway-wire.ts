// The gateway exchange's wire formats (docs/GATEWAYS.md): the report a gateway's filter posts, the answer
// (the merged view of the other gateways) the companion sends back, and the relay between companions.
// Encoders for the companion, the tests and the simulator; decoders that check every count and length
// against the body before use and throw an Error naming what is wrong (never a RangeError from a read).
import { randomBytes } from "node:crypto";

/** ASCII `EPG1`, little-endian u32 of the first four bytes. */
export const GATEWAY_MAGIC = "EPG1";
export const GATEWAY_FORMAT = 1;
export const REPORT_CONTENT_TYPE = "application/vnd.endpoint-picker.gateway-report";
export const VIEW_CONTENT_TYPE = "application/vnd.endpoint-picker.gateway-view";
export const RELAY_CONTENT_TYPE = "application/vnd.endpoint-picker.gateway-relay";

/** A count (requests in flight) above this in one entry is refused as malformed. */
export const MAX_COUNT = 1_000_000;
/** Entries of one kind in one report or answer, at most (far above any pool; the body limit binds first). */
export const MAX_INFLIGHT_ENTRIES = 65_536;
export const MAX_ADAPTER_ENTRIES = 1_048_576;
/** Chain records in one report, at most (the companion holds no more than this many in all by default). */
export const MAX_REPORT_RECORDS = 65_536;
/** Chain records in one answer, at most; the rest come with the next answer. */
export const MAX_VIEW_RECORDS = 4096;
/** A chain's block count: 1..65535 (u16 on the filter's side). */
export const MAX_BLOCKS = 65_535;
/** Queue entries (priorities) in a report's tail, at most (its count is a u16). */
export const MAX_QUEUE_ENTRIES = 65_535;

/** Fixed part of a report up to cursorCount (magic, format, reserved, gatewayId, reportSeq, cursorCount). */
const REPORT_HEAD = 4 + 2 + 2 + 8 + 8 + 2;
/** Fixed part of an answer up to gatewayCount. */
const VIEW_HEAD = 4 + 2 + 2 + 8 + 8 + 4;
const CURSOR_SIZE = 16;
const INFLIGHT_SIZE = 8;
const ADAPTER_SIZE = 12;
/** A queue entry of the report's tail: i32 priority, u32 queued. */
const QUEUE_ENTRY_SIZE = 8;
/** A record without its level hashes: endpointHash, blocks, levels. */
const RECORD_HEAD = 12;
/** A relay's u64 companionId; each report after it: u64 receivedAtMs, u32 length. */
export const RELAY_HEAD = 8;
export const RELAY_ENTRY_HEAD = 12;

/** A prefix chain a gateway sent to an endpoint: the level hashes the filter stores for `blocks` blocks. */
export interface ChainRecord {
  endpointHash: number;
  blocks: number;
  /** storedLevelCount(blocks) hashes, shallowest level first (as the filter's journals carry them). */
  levels: ArrayLike<number>;
}

export interface InflightEntry {
  addressHash: number;
  count: number;
}

export interface AdapterEntry {
  addressHash: number;
  adapterHash: number;
  count: number;
}

/** Requests a gateway holds in its flow-control queues at one priority (every worker VM summed). */
export interface QueueEntry {
  priority: number;
  queued: number;
}

export interface CompanionCursor {
  companionId: bigint;
  cursor: bigint;
}

export interface GatewayReport {
  gatewayId: bigint;
  reportSeq: bigint;
  cursors: CompanionCursor[];
  inflight: InflightEntry[];
  adapters: AdapterEntry[];
  records: ChainRecord[];
  /**
   * The optional tail (flow control, docs/GATEWAYS.md): requests held per priority. Absent: the report has no
   * tail (nothing queued, or a filter that predates it); the decoder sets it only when the tail is there.
   */
  queue?: QueueEntry[];
}

export interface GatewayView {
  companionId: bigint;
  cursor: bigint;
  gatewayCount: number;
  inflight: InflightEntry[];
  adapters: AdapterEntry[];
  records: ChainRecord[];
}

export interface RelayedReport {
  /** The relaying companion's receive time, Unix ms. */
  receivedAtMs: number;
  /** The report's bytes as the gateway sent them. */
  report: Uint8Array;
}

export interface Relay {
  companionId: bigint;
  reports: RelayedReport[];
}

// ---- levels (the filter's prefix.ts: every k <= 8, then four per doubling, and the chain's last level) ----

const LEVELS: number[] = [];
for (let k = 1; k <= MAX_BLOCKS; k++) {
  if (k <= 8 || k % (1 << (31 - Math.clz32(k) - 2)) === 0) LEVELS.push(k);
}

/** How many level hashes the filter stores for an n-block chain (its `storedCount`); 0 for n <= 0. */
export function storedLevelCount(blocks: number): number {
  if (blocks <= 0) return 0;
  let lo = 0,
    hi = LEVELS.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (LEVELS[mid] < blocks) lo = mid + 1;
    else hi = mid;
  }
  return lo + 1;
}

/** FNV-1a 32 of a string's UTF-8 bytes: the filter's address and adapter hashes. */
export function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name, "utf8")) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Unsigned 64-bit ids and cursors as 16 hex digits (logs). */
export function hex64(v: bigint): string {
  return v.toString(16).padStart(16, "0");
}

// ---- encoding ----

function recordSize(r: ChainRecord): number {
  return RECORD_HEAD + 4 * r.levels.length;
}

class Out {
  readonly bytes: Uint8Array<ArrayBuffer>;
  private readonly dv: DataView;
  at = 0;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
  }
  u16(v: number): void {
    this.dv.setUint16(this.at, v, true);
    this.at += 2;
  }
  u32(v: number): void {
    this.dv.setUint32(this.at, v >>> 0, true);
    this.at += 4;
  }
  u64(v: bigint): void {
    this.dv.setBigUint64(this.at, BigInt.asUintN(64, v), true);
    this.at += 8;
  }
  raw(b: Uint8Array): void {
    this.bytes.set(b, this.at);
    this.at += b.length;
  }
  head(): void {
    for (let i = 0; i < 4; i++) this.bytes[this.at + i] = GATEWAY_MAGIC.charCodeAt(i);
    this.at += 4;
    this.u16(GATEWAY_FORMAT);
    this.u16(0);
  }
  counts(inflight: readonly InflightEntry[], adapters: readonly AdapterEntry[]): void {
    this.u32(inflight.length);
    for (const e of inflight) {
      this.u32(e.addressHash);
      this.u32(e.count);
    }
    this.u32(adapters.length);
    for (const e of adapters) {
      this.u32(e.addressHash);
      this.u32(e.adapterHash);
      this.u32(e.count);
    }
  }
  records(records: readonly ChainRecord[]): void {
    this.u32(records.length);
    for (const r of records) {
      this.u32(r.endpointHash);
      this.u32(r.blocks);
      this.u32(r.levels.length);
      for (let j = 0; j < r.levels.length; j++) this.u32(r.levels[j]);
    }
  }
}

function countsSize(inflight: readonly InflightEntry[], adapters: readonly AdapterEntry[]): number {
  return 4 + INFLIGHT_SIZE * inflight.length + 4 + ADAPTER_SIZE * adapters.length;
}

function recordsSize(records: readonly ChainRecord[]): number {
  let n = 4;
  for (const r of records) n += recordSize(r);
  return n;
}

/**
 * A report as the filter sends it, with the queue tail when `queue` is given (even empty). Writes what it is
 * given (the level count is `levels.length`), so tests can build reports the decoder refuses.
 */
export function encodeReport(r: GatewayReport): Uint8Array<ArrayBuffer> {
  const out = new Out(
    REPORT_HEAD +
      CURSOR_SIZE * r.cursors.length +
      countsSize(r.inflight, r.adapters) +
      recordsSize(r.records) +
      (r.queue ? 2 + QUEUE_ENTRY_SIZE * r.queue.length : 0),
  );
  out.head();
  out.u64(r.gatewayId);
  out.u64(r.reportSeq);
  out.u16(r.cursors.length);
  for (const c of r.cursors) {
    out.u64(c.companionId);
    out.u64(c.cursor);
  }
  out.counts(r.inflight, r.adapters);
  out.records(r.records);
  if (r.queue) {
    out.u16(r.queue.length);
    for (const e of r.queue) {
      out.u32(e.priority >>> 0); // an i32, two's complement
      out.u32(e.queued);
    }
  }
  return out.bytes;
}

/** The answer to a report: the merged view of the other gateways. */
export function encodeView(v: GatewayView): Uint8Array<ArrayBuffer> {
  const out = new Out(VIEW_HEAD + countsSize(v.inflight, v.adapters) + recordsSize(v.records));
  out.head();
  out.u64(v.companionId);
  out.u64(v.cursor);
  out.u32(v.gatewayCount);
  out.counts(v.inflight, v.adapters);
  out.records(v.records);
  return out.bytes;
}

/** The size of a relay body holding reports of these byte lengths. */
export function relaySize(reportLengths: readonly number[]): number {
  let n = RELAY_HEAD;
  for (const l of reportLengths) n += RELAY_ENTRY_HEAD + l;
  return n;
}

export function encodeRelay(relay: Relay): Uint8Array<ArrayBuffer> {
  const out = new Out(relaySize(relay.reports.map((r) => r.report.length)));
  out.u64(relay.companionId);
  for (const r of relay.reports) {
    out.u64(BigInt(Math.max(0, Math.floor(r.receivedAtMs))));
    out.u32(r.report.length);
    out.raw(r.report);
  }
  return out.bytes;
}

// ---- decoding ----

/** Reads a body front to back; every read is checked, and errors name the message kind and the field. */
class In {
  private readonly dv: DataView;
  at = 0;
  constructor(
    readonly what: string,
    readonly bytes: Uint8Array,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get left(): number {
    return this.bytes.length - this.at;
  }
  fail(message: string): never {
    throw new Error(`${this.what}: ${message}`);
  }
  need(n: number, field: string): void {
    if (n > this.left)
      this.fail(`${field} runs past the body (needs ${n} bytes at byte ${this.at}, ${this.left} left)`);
  }
  u16(): number {
    const v = this.dv.getUint16(this.at, true);
    this.at += 2;
    return v;
  }
  u32(): number {
    const v = this.dv.getUint32(this.at, true);
    this.at += 4;
    return v;
  }
  u64(): bigint {
    const v = this.dv.getBigUint64(this.at, true);
    this.at += 8;
    return v;
  }
  head(size: number): void {
    if (this.bytes.length < 8) this.fail(`${this.bytes.length} bytes is too short for a header`);
    const magic = String.fromCharCode(...this.bytes.subarray(0, 4));
    if (magic !== GATEWAY_MAGIC) this.fail(`bad magic ${JSON.stringify(magic)} (expected "${GATEWAY_MAGIC}")`);
    this.at = 4;
    const format = this.u16();
    if (format !== GATEWAY_FORMAT) this.fail(`format ${format} is not supported (this companion reads format 1)`);
    this.at = 8; // reserved: not checked, room for a later revision of format 1
    this.need(size - 8, "header");
  }
  /** A u32 count of entries of `size` bytes (or at least `size` bytes), checked against `max` and the body. */
  count(field: string, size: number, max: number): number {
    this.need(4, field);
    const n = this.u32();
    if (n > max) this.fail(`${field} ${n} is above the limit of ${max}`);
    if (n * size > this.left)
      this.fail(`${field} ${n} runs past the body (${this.left} bytes left at byte ${this.at})`);
    return n;
  }
  end(after = "the last record"): void {
    if (this.left !== 0) this.fail(`${this.left} bytes after ${after}`);
  }
}

function readCounts(r: In): { inflight: InflightEntry[]; adapters: AdapterEntry[] } {
  const inflight: InflightEntry[] = [];
  const seen = new Set<number>();
  for (let n = r.count("inflightCount", INFLIGHT_SIZE, MAX_INFLIGHT_ENTRIES), i = 0; i < n; i++) {
    const addressHash = r.u32(),
      count = r.u32();
    if (count > MAX_COUNT) r.fail(`inflight[${i}]: count ${count} is above ${MAX_COUNT}`);
    if (seen.has(addressHash)) r.fail(`inflight[${i}]: address hash ${addressHash} appears twice`);
    seen.add(addressHash);
    inflight.push({ addressHash, count });
  }
  const adapters: AdapterEntry[] = [];
  const seenPairs = new Set<bigint>();
  for (let n = r.count("adapterCount", ADAPTER_SIZE, MAX_ADAPTER_ENTRIES), i = 0; i < n; i++) {
    const addressHash = r.u32(),
      adapterHash = r.u32(),
      count = r.u32();
    if (count > MAX_COUNT) r.fail(`adapters[${i}]: count ${count} is above ${MAX_COUNT}`);
    const key = (BigInt(addressHash) << 32n) | BigInt(adapterHash);
    if (seenPairs.has(key)) r.fail(`adapters[${i}]: (address ${addressHash}, adapter ${adapterHash}) appears twice`);
    seenPairs.add(key);
    adapters.push({ addressHash, adapterHash, count });
  }
  return { inflight, adapters };
}

function readRecords(r: In, max: number): ChainRecord[] {
  const n = r.count("recordCount", RECORD_HEAD, max);
  const records: ChainRecord[] = new Array(n);
  for (let i = 0; i < n; i++) {
    r.need(RECORD_HEAD, `record ${i}`);
    const endpointHash = r.u32(),
      blocks = r.u32(),
      c = r.u32();
    if (blocks < 1 || blocks > MAX_BLOCKS) r.fail(`record ${i}: blocks ${blocks} is outside 1..${MAX_BLOCKS}`);
    const expected = storedLevelCount(blocks);
    if (c !== expected) r.fail(`record ${i}: levels ${c} for ${blocks} blocks (the filter stores ${expected})`);
    r.need(4 * c, `record ${i}'s ${c} levels`);
    const levels = new Uint32Array(c);
    for (let j = 0; j < c; j++) levels[j] = r.u32();
    records[i] = { endpointHash, blocks, levels };
  }
  return records;
}

/** Decodes a report; throws an Error naming the first thing wrong with it. */
export function decodeReport(bytes: Uint8Array): GatewayReport {
  const r = new In("report", bytes);
  r.head(REPORT_HEAD);
  const gatewayId = r.u64();
  if (gatewayId === 0n) r.fail("gatewayId is 0");
  const reportSeq = r.u64();
  const cursors: CompanionCursor[] = [];
  const cursorCount = r.u16();
  r.need(CURSOR_SIZE * cursorCount, `cursorCount ${cursorCount}`);
  const seen = new Set<bigint>();
  for (let i = 0; i < cursorCount; i++) {
    const companionId = r.u64(),
      cursor = r.u64();
    if (seen.has(companionId)) r.fail(`cursor ${i}: companion ${hex64(companionId)} appears twice`);
    seen.add(companionId);
    cursors.push({ companionId, cursor });
  }
  const { inflight, adapters } = readCounts(r);
  const records = readRecords(r, MAX_REPORT_RECORDS);
  if (r.left === 0) return { gatewayId, reportSeq, cursors, inflight, adapters, records };
  const queue = readQueue(r);
  r.end("the queue entries");
  return { gatewayId, reportSeq, cursors, inflight, adapters, records, queue };
}

/** The report's optional tail: u16 queueEntryCount, then {i32 priority, u32 queued}. */
function readQueue(r: In): QueueEntry[] {
  r.need(2, "queueEntryCount");
  const n = r.u16();
  r.need(QUEUE_ENTRY_SIZE * n, `queueEntryCount ${n}`);
  const queue: QueueEntry[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const priority = r.u32() | 0,
      queued = r.u32();
    if (queued > MAX_COUNT) r.fail(`queue[${i}]: queued ${queued} is above ${MAX_COUNT}`);
    if (seen.has(priority)) r.fail(`queue[${i}]: priority ${priority} appears twice`);
    seen.add(priority);
    queue.push({ priority, queued });
  }
  return queue;
}

/**
 * The gateway id of a body that starts like a report, else null: for the log line of a refused report
 * (its id is known even when something later in it is wrong).
 */
export function peekGatewayId(bytes: Uint8Array): bigint | null {
  if (bytes.length < 24 || String.fromCharCode(...bytes.subarray(0, 4)) !== GATEWAY_MAGIC) return null;
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(8, true);
}

/** Decodes an answer (what the filter reads); throws an Error naming the first thing wrong with it. */
export function decodeView(bytes: Uint8Array): GatewayView {
  const r = new In("view", bytes);
  r.head(VIEW_HEAD);
  const companionId = r.u64();
  const cursor = r.u64();
  const gatewayCount = r.u32();
  const { inflight, adapters } = readCounts(r);
  const records = readRecords(r, MAX_VIEW_RECORDS);
  r.end();
  return { companionId, cursor, gatewayCount, inflight, adapters, records };
}

/**
 * Decodes a relay's framing: the sender's id and each report's bytes (views into `bytes`, not decoded: the
 * receiver decodes each one as if a gateway had sent it). Reports run to the end of the body.
 */
export function decodeRelay(bytes: Uint8Array): Relay {
  const r = new In("relay", bytes);
  r.need(RELAY_HEAD, "companionId");
  const companionId = r.u64();
  if (companionId === 0n) r.fail("companionId is 0");
  const reports: RelayedReport[] = [];
  while (r.left > 0) {
    const i = reports.length;
    r.need(RELAY_ENTRY_HEAD, `report ${i}'s header`);
    const receivedAt = r.u64();
    const length = r.u32();
    if (receivedAt > BigInt(Number.MAX_SAFE_INTEGER)) r.fail(`report ${i}: receivedAtMs ${receivedAt} is not a time`);
    r.need(length, `report ${i}'s length ${length}`);
    reports.push({ receivedAtMs: Number(receivedAt), report: bytes.subarray(r.at, r.at + length) });
    r.at += length;
  }
  return { companionId, reports };
}

/** A random u64 that is not 0 (companion ids). */
export function randomId64(): bigint {
  for (;;) {
    const id = randomBytes(8).readBigUInt64LE(0);
    if (id !== 0n) return id;
  }
}
