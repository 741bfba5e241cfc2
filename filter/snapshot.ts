// Decoder for the companion's EPS1 snapshot (docs/SNAPSHOT.md). Never traps: every read is bounds-checked
// and a bad blob yields a null snapshot with `lastError` set.

export const PICKER_MAX_SCORE: u8 = 0;
export const PICKER_RANDOM: u8 = 1;
export const PICKER_WEIGHTED_RANDOM: u8 = 2;

export const FLAG_STALE: u8 = 1;
export const FLAG_ERROR: u8 = 2;
export const FLAG_QUEUE: u8 = 4;
export const FLAG_RUNNING: u8 = 8;
export const FLAG_KV: u8 = 16;
export const FLAG_LORA: u8 = 32;

const HEADER_SIZE: i32 = 32;

export class Profile {
  queueWeight: f32 = 2;
  kvWeight: f32 = 2;
  prefixWeight: f32 = 3;
  loraWeight: f32 = 0;
  runningWeight: f32 = 0;
  picker: u8 = PICKER_MAX_SCORE;
  fallbackCount: u8 = 0;
  prefixBlockChars: u16 = 64;
  prefixMaxBlocks: u16 = 256;
  prefixLruPerEndpoint: u16 = 31250;
  saturationQueue: f32 = 5;
  saturationKv: f32 = 0.8;
}

export class Endpoint {
  address: string = "";
  engine: string = "";
  flags: u8 = 0;
  queued: u32 = 0;
  running: u32 = 0;
  kvUsage: f32 = 0;
  ageMs: u32 = 0;
  loraMax: u16 = 0;
  runningAdapters: string[] = [];
  waitingAdapters: string[] = [];
  cacheBlockSize: u32 = 0;
  cacheNumBlocks: u32 = 0;

  has(flag: u8): bool { return (this.flags & flag) != 0; }
}

export class Snapshot {
  version: u64 = 0;
  generatedAtMs: u64 = 0;
  profile: Profile = new Profile();
  endpoints: Endpoint[] = [];
}

export function fnv1a(data: Uint8Array, start: i32, end: i32): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= <u32>unchecked(data[i]);
    h *= 0x01000193;
  }
  return h;
}

/** Reads the version without decoding or checking the rest: the per-request "did it change?" probe. */
export function peekVersion(buf: ArrayBuffer): u64 {
  if (buf.byteLength < HEADER_SIZE) return 0;
  return load<u64>(changetype<usize>(buf) + 8);
}

export let lastError: string = "";

class Reader {
  pos: i32;
  ok: bool = true;
  constructor(public data: Uint8Array, start: i32) { this.pos = start; }

  private need(n: i32): bool {
    if (!this.ok || this.pos + n > this.data.length || n < 0) {
      if (this.ok) lastError = "truncated at byte " + this.pos.toString();
      this.ok = false;
      return false;
    }
    return true;
  }
  u8(): u8 {
    if (!this.need(1)) return 0;
    const v = unchecked(this.data[this.pos]);
    this.pos += 1;
    return v;
  }
  u16(): u16 {
    if (!this.need(2)) return 0;
    const v = load<u16>(this.data.dataStart + <usize>this.pos);
    this.pos += 2;
    return v;
  }
  u32(): u32 {
    if (!this.need(4)) return 0;
    const v = load<u32>(this.data.dataStart + <usize>this.pos);
    this.pos += 4;
    return v;
  }
  f32(): f32 {
    if (!this.need(4)) return 0;
    const v = load<f32>(this.data.dataStart + <usize>this.pos);
    this.pos += 4;
    return v;
  }
  str(): string {
    const n = <i32>this.u16();
    if (!this.need(n)) return "";
    const s = String.UTF8.decodeUnsafe(this.data.dataStart + <usize>this.pos, <usize>n);
    this.pos += n;
    return s;
  }
}

/** Decodes a whole snapshot; returns null (and sets lastError) on any inconsistency. */
export function decodeSnapshot(buf: ArrayBuffer): Snapshot | null {
  const data = Uint8Array.wrap(buf);
  const len = data.length;
  if (len < HEADER_SIZE) { lastError = "shorter than the header"; return null; }
  const base = changetype<usize>(buf);
  if (load<u8>(base) != 0x45 || load<u8>(base, 1) != 0x50 || load<u8>(base, 2) != 0x53 || load<u8>(base, 3) != 0x31) {
    lastError = "bad magic"; return null;
  }
  const format = load<u16>(base, 4);
  if (format != 1) { lastError = "unsupported format " + format.toString(); return null; }
  const headerSize = <i32>load<u16>(base, 6);
  const totalSize = <i32>load<u32>(base, 24);
  if (totalSize != len) { lastError = "size mismatch"; return null; }
  if (headerSize < HEADER_SIZE || headerSize > len) { lastError = "bad header size"; return null; }
  if (fnv1a(data, headerSize, len) != load<u32>(base, 28)) { lastError = "checksum mismatch"; return null; }

  const snap = new Snapshot();
  snap.version = load<u64>(base, 8);
  snap.generatedAtMs = load<u64>(base, 16);
  const r = new Reader(data, headerSize);
  const profileStart = r.pos;
  const profileSize = <i32>r.u16();
  const p = snap.profile;
  p.queueWeight = r.f32();
  p.kvWeight = r.f32();
  p.prefixWeight = r.f32();
  p.loraWeight = r.f32();
  p.runningWeight = r.f32();
  p.picker = r.u8();
  p.fallbackCount = r.u8();
  p.prefixBlockChars = r.u16();
  p.prefixMaxBlocks = r.u16();
  p.prefixLruPerEndpoint = r.u16();
  p.saturationQueue = r.f32();
  p.saturationKv = r.f32();
  if (!r.ok) return null;
  if (profileSize < r.pos - profileStart || profileStart + profileSize > len) { lastError = "bad profile size"; return null; }
  r.pos = profileStart + profileSize;

  const count = <i32>r.u32();
  // Each record is at least 33 bytes: refuse absurd counts before allocating.
  if (!r.ok || count < 0 || count > (len - r.pos) / 33) { lastError = "bad endpoint count"; return null; }
  const endpoints = new Array<Endpoint>(count);
  for (let i = 0; i < count; i++) {
    const e = new Endpoint();
    e.address = r.str();
    e.engine = r.str();
    e.flags = r.u8();
    e.queued = r.u32();
    e.running = r.u32();
    e.kvUsage = r.f32();
    e.ageMs = r.u32();
    e.loraMax = r.u16();
    let n = <i32>r.u16();
    for (let k = 0; k < n && r.ok; k++) e.runningAdapters.push(r.str());
    n = <i32>r.u16();
    for (let k = 0; k < n && r.ok; k++) e.waitingAdapters.push(r.str());
    e.cacheBlockSize = r.u32();
    e.cacheNumBlocks = r.u32();
    if (!r.ok) return null;
    unchecked(endpoints[i] = e);
  }
  snap.endpoints = endpoints;
  lastError = "";
  return snap;
}
