// EPS1 snapshot encoding (docs/SNAPSHOT.md): the one contract between the companion and the filter.

export type PickerKind = "max-score-picker" | "random-picker" | "weighted-random-picker";

export interface SchedulingProfile {
  queueWeight: number;
  kvWeight: number;
  prefixWeight: number;
  loraWeight: number;
  runningWeight: number;
  picker: PickerKind;
  fallbackCount: number;
  prefixBlockChars: number;
  prefixMaxBlocks: number;
  prefixLruPerEndpoint: number;
  saturationQueue: number;
  saturationKv: number;
}

export interface SnapshotEndpoint {
  address: string;
  engine: string;
  stale: boolean;
  error: boolean;
  queued: number | null;
  running: number | null;
  kvUsage: number | null;
  ageMs: number;
  lora: { running: string[]; waiting: string[]; max: number } | null;
  cache: { blockSize: number; numBlocks: number } | null;
}

export interface Snapshot {
  version: bigint;
  generatedAtMs: number;
  profile: SchedulingProfile;
  endpoints: SnapshotEndpoint[];
  /** Base models the pool serves; a request naming another model is for a LoRA adapter (none: unknown). */
  baseModels?: string[];
}

/** Base model names a snapshot carries at most. */
export const MAX_BASE_MODELS = 64;

/** GIE's default profile: queue 2, kv 2, prefix 3, max-score picker. */
export const DEFAULT_PROFILE: SchedulingProfile = {
  queueWeight: 2,
  kvWeight: 2,
  prefixWeight: 3,
  loraWeight: 0,
  runningWeight: 0,
  picker: "max-score-picker",
  fallbackCount: 0,
  prefixBlockChars: 64,
  prefixMaxBlocks: 256,
  prefixLruPerEndpoint: 31250,
  saturationQueue: 5,
  saturationKv: 0.8,
};

export const MAGIC = "EPS1";
export const FORMAT = 1;
export const HEADER_SIZE = 32;
const PICKERS: PickerKind[] = ["max-score-picker", "random-picker", "weighted-random-picker"];

const FLAG_STALE = 1, FLAG_ERROR = 2, FLAG_QUEUE = 4, FLAG_RUNNING = 8, FLAG_KV = 16, FLAG_LORA = 32;

export function fnv1a(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

class Writer {
  private buf = Buffer.alloc(4096);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): void { this.ensure(1); this.buf.writeUInt8(v, this.len); this.len += 1; }
  u16(v: number): void { this.ensure(2); this.buf.writeUInt16LE(v, this.len); this.len += 2; }
  u32(v: number): void { this.ensure(4); this.buf.writeUInt32LE(v >>> 0, this.len); this.len += 4; }
  u64(v: bigint): void { this.ensure(8); this.buf.writeBigUInt64LE(v, this.len); this.len += 8; }
  f32(v: number): void { this.ensure(4); this.buf.writeFloatLE(v, this.len); this.len += 4; }
  str(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    if (bytes.length > 0xffff) throw new Error(`snapshot string too long (${bytes.length} bytes)`);
    this.u16(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.len);
    this.len += bytes.length;
  }
  patchU16(at: number, v: number): void { this.buf.writeUInt16LE(v, at); }
  patchU32(at: number, v: number): void { this.buf.writeUInt32LE(v >>> 0, at); }
  finish(): Buffer { return this.buf.subarray(0, this.len); }
}

const clampU32 = (v: number | null): number => (v === null || !Number.isFinite(v) ? 0 : Math.min(0xffffffff, Math.max(0, Math.round(v))));
const clampU16 = (v: number): number => Math.min(0xffff, Math.max(0, Math.round(v)));

export function encodeSnapshot(s: Snapshot): Buffer {
  const w = new Writer();
  for (const c of MAGIC) w.u8(c.charCodeAt(0));
  w.u16(FORMAT);
  w.u16(HEADER_SIZE);
  w.u64(s.version);
  w.u64(BigInt(Math.floor(s.generatedAtMs)));
  w.u32(0); // totalSize, patched below
  w.u32(0); // checksum, patched below

  const p = s.profile;
  const profileStart = w.len;
  w.u16(0);
  w.f32(p.queueWeight); w.f32(p.kvWeight); w.f32(p.prefixWeight); w.f32(p.loraWeight); w.f32(p.runningWeight);
  w.u8(PICKERS.indexOf(p.picker));
  w.u8(clampU16(p.fallbackCount) & 0xff);
  w.u16(clampU16(p.prefixBlockChars));
  w.u16(clampU16(p.prefixMaxBlocks));
  w.u16(clampU16(p.prefixLruPerEndpoint));
  w.f32(p.saturationQueue);
  w.f32(p.saturationKv);
  w.patchU16(profileStart, w.len - profileStart);

  w.u32(s.endpoints.length);
  for (const e of s.endpoints) {
    w.str(e.address);
    w.str(e.engine);
    let flags = 0;
    if (e.stale) flags |= FLAG_STALE;
    if (e.error) flags |= FLAG_ERROR;
    if (e.queued !== null) flags |= FLAG_QUEUE;
    if (e.running !== null) flags |= FLAG_RUNNING;
    if (e.kvUsage !== null) flags |= FLAG_KV;
    if (e.lora !== null) flags |= FLAG_LORA;
    w.u8(flags);
    w.u32(clampU32(e.queued));
    w.u32(clampU32(e.running));
    w.f32(e.kvUsage === null || !Number.isFinite(e.kvUsage) ? 0 : Math.min(1, Math.max(0, e.kvUsage)));
    w.u32(clampU32(e.ageMs));
    w.u16(clampU16(e.lora?.max ?? 0));
    const running = e.lora?.running ?? [];
    const waiting = e.lora?.waiting ?? [];
    w.u16(running.length); for (const a of running) w.str(a);
    w.u16(waiting.length); for (const a of waiting) w.str(a);
    w.u32(clampU32(e.cache?.blockSize ?? 0));
    w.u32(clampU32(e.cache?.numBlocks ?? 0));
  }
  // Base models: a trailing section, which decoders that predate it never read.
  const bases = (s.baseModels ?? []).slice(0, MAX_BASE_MODELS);
  w.u16(bases.length);
  for (const m of bases) w.str(m);
  const out = w.finish();
  out.writeUInt32LE(out.length, 24);
  out.writeUInt32LE(fnv1a(out, HEADER_SIZE, out.length), 28);
  return out;
}

/** Reference decoder (tests and the companion's JSON view); the filter has its own in AssemblyScript. */
export function decodeSnapshot(buf: Uint8Array): Snapshot {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  const need = (n: number): void => {
    if (at + n > b.length) throw new Error(`snapshot truncated at byte ${at} (need ${n}, have ${b.length - at})`);
  };
  need(HEADER_SIZE);
  if (b.toString("latin1", 0, 4) !== MAGIC) throw new Error("snapshot: bad magic");
  const format = b.readUInt16LE(4);
  if (format !== FORMAT) throw new Error(`snapshot: unsupported format ${format}`);
  const headerSize = b.readUInt16LE(6);
  const version = b.readBigUInt64LE(8);
  const generatedAtMs = Number(b.readBigUInt64LE(16));
  const totalSize = b.readUInt32LE(24);
  if (totalSize !== b.length) throw new Error(`snapshot: totalSize ${totalSize} but ${b.length} bytes`);
  if (headerSize < HEADER_SIZE || headerSize > b.length) throw new Error(`snapshot: bad headerSize ${headerSize}`);
  if (fnv1a(b, headerSize, b.length) !== b.readUInt32LE(28)) throw new Error("snapshot: checksum mismatch");
  at = headerSize;
  const u8 = (): number => { need(1); return b.readUInt8(at++); };
  const u16 = (): number => { need(2); const v = b.readUInt16LE(at); at += 2; return v; };
  const u32 = (): number => { need(4); const v = b.readUInt32LE(at); at += 4; return v; };
  const f32 = (): number => { need(4); const v = b.readFloatLE(at); at += 4; return v; };
  const str = (): string => { const n = u16(); need(n); const v = b.toString("utf8", at, at + n); at += n; return v; };

  const profileStart = at;
  const profileSize = u16();
  const profile: SchedulingProfile = {
    queueWeight: f32(), kvWeight: f32(), prefixWeight: f32(), loraWeight: f32(), runningWeight: f32(),
    picker: PICKERS[u8()] ?? "max-score-picker",
    fallbackCount: u8(),
    prefixBlockChars: u16(), prefixMaxBlocks: u16(), prefixLruPerEndpoint: u16(),
    saturationQueue: f32(), saturationKv: f32(),
  };
  at = profileStart + profileSize;
  const count = u32();
  const endpoints: SnapshotEndpoint[] = [];
  for (let i = 0; i < count; i++) {
    const address = str();
    const engine = str();
    const flags = u8();
    const queued = u32(), running = u32(), kvUsage = f32(), ageMs = u32(), loraMax = u16();
    const runningAdapters: string[] = [];
    for (let n = u16(); n > 0; n--) runningAdapters.push(str());
    const waitingAdapters: string[] = [];
    for (let n = u16(); n > 0; n--) waitingAdapters.push(str());
    const blockSize = u32(), numBlocks = u32();
    endpoints.push({
      address, engine,
      stale: (flags & FLAG_STALE) !== 0,
      error: (flags & FLAG_ERROR) !== 0,
      queued: flags & FLAG_QUEUE ? queued : null,
      running: flags & FLAG_RUNNING ? running : null,
      kvUsage: flags & FLAG_KV ? kvUsage : null,
      ageMs,
      lora: flags & FLAG_LORA ? { running: runningAdapters, waiting: waitingAdapters, max: loraMax } : null,
      cache: blockSize || numBlocks ? { blockSize, numBlocks } : null,
    });
  }
  const baseModels: string[] = [];
  if (at < b.length) for (let n = u16(); n > 0; n--) baseModels.push(str());
  return { version, generatedAtMs, profile, endpoints, baseModels };
}
