// Decoder for the companion's snapshot (docs/SNAPSHOT.md, format 2). Never traps: every read is
// bounds-checked and a bad blob yields null with `lastError` set. The decoded form is column arrays that
// point into the blob (no per-endpoint strings), so the per-request path can copy an address straight into a
// header and compare adapter names with the request's model bytes without allocating. Sections, endpoint
// records and plugin entries carry their length: what this decoder does not know, it skips.
import {
  FlowConfig,
  BandConfig,
  FAIRNESS_ROUND_ROBIN,
  FAIRNESS_PROGRAM_AWARE,
  FAIRNESS_GLOBAL_STRICT,
  ORDERING_EDF,
  ORDERING_SLO_DEADLINE,
  ORDERING_FCFS,
  insertAt,
} from "./flow-control";
import { fnv1a32 } from "./hash";
import { nextU64 } from "./rng";
import { PluginEntry, Params, Profile } from "./scoring/plugin";
import { buildProfile } from "./scoring/registry";
import { PdConfig, DECIDER_ALWAYS } from "./pd";

export const FORMAT: u16 = 2;
const SECTION_PROFILE: u16 = 1;
const SECTION_ENDPOINTS: u16 = 2;
const SECTION_BASE_MODELS: u16 = 3;
const SECTION_OBJECTIVES: u16 = 4;
const SECTION_MODEL_REWRITES: u16 = 5;
const SECTION_FLOW_CONTROL: u16 = 6;
const SECTION_ROLES: u16 = 7;
const SECTION_DISAGGREGATION: u16 = 8;
/** A model name the filter matches or writes: at most the bytes the body scanner keeps (body.ts). */
const MAX_REWRITE_NAME: i32 = 256;
const PARAM_NUMBER: u8 = 0;
const PARAM_STRING: u8 = 1;

export const FLAG_STALE: u8 = 1;
export const FLAG_ERROR: u8 = 2;
export const FLAG_QUEUE: u8 = 4;
export const FLAG_RUNNING: u8 = 8;
export const FLAG_KV: u8 = 16;
export const FLAG_LORA: u8 = 32;
/** The pod refused the metrics connection: probably gone (used only when no other endpoint is left). */
export const FLAG_UNREACHABLE: u8 = 64;
const KNOWN_FLAGS: u8 = 127;
/** Pod role bits (section 7, the `llm-d.ai/role` label); 0: no label. */
export const POD_ROLE_PREFILL: u8 = 1;
export const POD_ROLE_DECODE: u8 = 2;
export const POD_ROLE_ENCODE: u8 = 4;
/** Not on the wire: set by the decoder for an address that cannot go into a header (never picked). */
export const FLAG_UNUSABLE: u8 = 128;

const HEADER_SIZE: i32 = 32;
/** The smallest endpoint record with its length field: flags, counts, kv, loraMax, an address, two lists. */
const MIN_RECORD: i32 = 4 + 1 + 4 + 4 + 4 + 2 + 2 + 2 + 2;

export class Snapshot {
  version: u64 = 0;
  generatedAtMs: u64 = 0;
  /** The scheduling profile the snapshot carries, built from its plugin entries. */
  profile: Profile = new Profile();
  entries: PluginEntry[] = [];
  count: i32 = 0;
  /** The blob as received; every offset below points into it. */
  blob: ArrayBuffer = new ArrayBuffer(0);
  addrOff: StaticArray<i32> = new StaticArray<i32>(0);
  addrLen: StaticArray<i32> = new StaticArray<i32>(0);
  addrHash: StaticArray<u32> = new StaticArray<u32>(0);
  flags: StaticArray<u8> = new StaticArray<u8>(0);
  queued: StaticArray<f64> = new StaticArray<f64>(0);
  running: StaticArray<f64> = new StaticArray<f64>(0);
  kv: StaticArray<f64> = new StaticArray<f64>(0);
  loraMax: StaticArray<i32> = new StaticArray<i32>(0);
  /** Adapters of endpoint i: running ones at [runStart[i], runStart[i] + runCount[i]) of adapterOff/Len, waiting ones after them. */
  runStart: StaticArray<i32> = new StaticArray<i32>(0);
  runCount: StaticArray<i32> = new StaticArray<i32>(0);
  waitCount: StaticArray<i32> = new StaticArray<i32>(0);
  adapterOff: StaticArray<i32> = new StaticArray<i32>(0);
  adapterLen: StaticArray<i32> = new StaticArray<i32>(0);
  /** FNV-1a of each adapter name, so a request's model is compared by hash first. */
  adapterHash: StaticArray<u32> = new StaticArray<u32>(0);
  /** Some endpoint reports LoRA state (FLAG_LORA). */
  anyLora: bool = false;
  /** Endpoints whose metrics cannot be read (error, stale or unreachable): routed by the proxy's own counts. */
  degraded: i32 = 0;
  /** Every adapter hash any endpoint lists, sorted, for `isAdapter`. */
  adapterSet: StaticArray<u32> = new StaticArray<u32>(0);
  /** Role bits per endpoint (section 7); empty when no pod has a role label. */
  roles: StaticArray<u8> = new StaticArray<u8>(0);
  /** Prefill/decode disaggregation (section 8): the decider and the prefill profile; null: one profile. */
  pd: PdConfig | null = null;
  /** Flow control (section 6), when the companion's config turns it on; null: off. */
  flow: FlowConfig | null = null;
  /** InferenceObjectives (section 4): FNV-1a of each name and its priority, in the snapshot's order. */
  objectiveHash: StaticArray<u32> = new StaticArray<u32>(0);
  objectivePriority: StaticArray<i32> = new StaticArray<i32>(0);

  /**
   * Model rewrite rules (section 5), in precedence order. Rule r's exact matches are
   * [rwMatchStart[r], + rwMatchCount[r]) of the rwMatch* columns (none: it matches every model), its targets
   * [rwTargetStart[r], + rwTargetCount[r]) of the rwTarget* columns, whose weights sum to rwTotal[r]. Names
   * point into the blob.
   */
  rewriteCount: i32 = 0;
  rwMatchStart: StaticArray<i32> = new StaticArray<i32>(0);
  rwMatchCount: StaticArray<i32> = new StaticArray<i32>(0);
  rwTargetStart: StaticArray<i32> = new StaticArray<i32>(0);
  rwTargetCount: StaticArray<i32> = new StaticArray<i32>(0);
  rwTotal: StaticArray<u64> = new StaticArray<u64>(0);
  rwMatchOff: StaticArray<i32> = new StaticArray<i32>(0);
  rwMatchLen: StaticArray<i32> = new StaticArray<i32>(0);
  rwMatchHash: StaticArray<u32> = new StaticArray<u32>(0);
  rwTargetOff: StaticArray<i32> = new StaticArray<i32>(0);
  rwTargetLen: StaticArray<i32> = new StaticArray<i32>(0);
  rwTargetHash: StaticArray<u32> = new StaticArray<u32>(0);
  rwTargetWeight: StaticArray<u32> = new StaticArray<u32>(0);

  /** The first rewrite rule matching the model (`len` bytes at `ptr`, FNV-1a `h`), or -1. */
  rewriteRuleFor(h: u32, ptr: usize, len: i32): i32 {
    const base = this.base;
    for (let r = 0; r < this.rewriteCount; r++) {
      const n = unchecked(this.rwMatchCount[r]);
      if (n == 0) return r;
      const start = unchecked(this.rwMatchStart[r]);
      for (let k = start; k < start + n; k++) {
        if (
          unchecked(this.rwMatchHash[k]) == h &&
          unchecked(this.rwMatchLen[k]) == len &&
          memory.compare(base + <usize>unchecked(this.rwMatchOff[k]), ptr, <usize>len) == 0
        )
          return r;
      }
    }
    return -1;
  }

  /** A target of rule `r` drawn by weight with the filter's PRNG (its index in the rwTarget* columns), or -1 when the rule has none. */
  drawRewriteTarget(r: i32): i32 {
    const total = unchecked(this.rwTotal[r]);
    if (total == 0) return -1;
    let x = nextU64() % total;
    const start = unchecked(this.rwTargetStart[r]);
    const end = start + unchecked(this.rwTargetCount[r]);
    for (let t = start; t < end; t++) {
      const w = <u64>unchecked(this.rwTargetWeight[t]);
      if (x < w) return t;
      x -= w;
    }
    return -1; // not reached: the weights sum to the total
  }

  /** The priority of the objective whose name hashes to `h`; `fallback` when the snapshot has none such. */
  priorityOf(h: u32, fallback: i32): i32 {
    for (let k = 0; k < this.objectiveHash.length; k++)
      if (unchecked(this.objectiveHash[k]) == h) return unchecked(this.objectivePriority[k]);
    return fallback;
  }

  /** Hashes of the base models the pool serves (the snapshot's trailing section), sorted; empty when unknown. */
  baseSet: StaticArray<u32> = new StaticArray<u32>(0);

  /** Some endpoint lists the adapter with this hash (running or waiting). */
  isAdapter(h: u32): bool {
    return sortedHas(this.adapterSet, h);
  }

  /**
   * A request naming this model asks for a LoRA adapter: some endpoint lists it, or the pool reports LoRA
   * state and knows its base models and this is none of them (an adapter no endpoint runs yet).
   */
  namesAdapter(h: u32): bool {
    return this.isAdapter(h) || (this.anyLora && this.baseSet.length > 0 && !sortedHas(this.baseSet, h));
  }

  /** The pool serves the base model with this hash (the snapshot's base-model section). */
  isBaseModel(h: u32): bool {
    return sortedHas(this.baseSet, h);
  }

  /** Endpoint `i` lists the adapter with this hash (running or waiting). */
  listsAdapter(i: i32, h: u32): bool {
    const start = unchecked(this.runStart[i]);
    const end = start + unchecked(this.runCount[i]) + unchecked(this.waitCount[i]);
    for (let a = start; a < end; a++) if (unchecked(this.adapterHash[a]) == h) return true;
    return false;
  }
  /** Open-addressed index addrHash -> endpoint index + 1 (0 = empty), for the shared tables keyed by address. */
  private byHash: StaticArray<i32> = new StaticArray<i32>(0);

  /** Endpoint i's role bits (0: no role label, or no roles in the snapshot). */
  roleOf(i: i32): u8 {
    return i < this.roles.length ? unchecked(this.roles[i]) : 0;
  }

  get base(): usize {
    return changetype<usize>(this.blob);
  }
  has(i: i32, flag: u8): bool {
    return (unchecked(this.flags[i]) & flag) != 0;
  }
  address(i: i32): string {
    return this.text(this.addrOff[i], this.addrLen[i]);
  }
  runningAdapter(i: i32, k: i32): string {
    const a = this.runStart[i] + k;
    return this.text(this.adapterOff[a], this.adapterLen[a]);
  }
  waitingAdapter(i: i32, k: i32): string {
    const a = this.runStart[i] + this.runCount[i] + k;
    return this.text(this.adapterOff[a], this.adapterLen[a]);
  }
  private text(off: i32, len: i32): string {
    return String.UTF8.decodeUnsafe(this.base + <usize>off, <usize>len);
  }

  /** Index of the endpoint whose address hashes to `h`, or -1. */
  indexOfHash(h: u32): i32 {
    const mask = this.byHash.length - 1;
    if (mask < 0) return -1;
    // Raw pointers in the probe loop: managed references used in a loop are spilled to the GC's shadow stack.
    const byHash = changetype<usize>(this.byHash),
      addrHash = changetype<usize>(this.addrHash);
    let s = <i32>(h & (<u32>mask));
    for (let n = 0; n <= mask; n++) {
      const v = load<i32>(byHash + ((<usize>s) << 2));
      if (v == 0) return -1;
      if (load<u32>(addrHash + ((<usize>(v - 1)) << 2)) == h) return v - 1;
      s = (s + 1) & mask;
    }
    return -1;
  }

  /**
   * Builds the address-hash index. A later endpoint with the same address (or a 32-bit hash collision) is
   * marked unusable: counts and prefix records are keyed by address hash, so two endpoints may not share one.
   */
  buildIndex(): void {
    let size = 16;
    while (size < this.count * 2) size <<= 1;
    const t = new StaticArray<i32>(size);
    const mask = size - 1;
    for (let i = 0; i < this.count; i++) {
      const h = unchecked(this.addrHash[i]);
      let s = <i32>(h & (<u32>mask));
      let duplicate = false;
      while (unchecked(t[s]) != 0) {
        if (unchecked(this.addrHash[unchecked(t[s]) - 1]) == h) {
          duplicate = true;
          break;
        }
        s = (s + 1) & mask;
      }
      if (duplicate) unchecked((this.flags[i] |= FLAG_UNUSABLE));
      else unchecked((t[s] = i + 1));
    }
    this.byHash = t;
  }
}

/** Reads the version without decoding or checking the rest. */
export function peekVersion(buf: ArrayBuffer): u64 {
  if (buf.byteLength < HEADER_SIZE) return 0;
  return load<u64>(changetype<usize>(buf) + 8);
}

export let lastError: string = "";

class Reader {
  pos: i32;
  ok: bool = true;
  constructor(
    public base: usize,
    public end: i32,
    start: i32,
  ) {
    this.pos = start;
  }

  need(n: i32): bool {
    if (!this.ok || n < 0 || this.pos > this.end - n) {
      if (this.ok) lastError = "truncated at byte " + this.pos.toString();
      this.ok = false;
      return false;
    }
    return true;
  }
  u8(): u8 {
    if (!this.need(1)) return 0;
    const v = load<u8>(this.base + <usize>this.pos);
    this.pos += 1;
    return v;
  }
  u16(): u16 {
    if (!this.need(2)) return 0;
    const v = load<u16>(this.base + <usize>this.pos);
    this.pos += 2;
    return v;
  }
  u32(): u32 {
    if (!this.need(4)) return 0;
    const v = load<u32>(this.base + <usize>this.pos);
    this.pos += 4;
    return v;
  }
  f32(): f64 {
    if (!this.need(4)) return 0;
    const v = load<f32>(this.base + <usize>this.pos);
    this.pos += 4;
    return <f64>v;
  }
  f64(): f64 {
    if (!this.need(8)) return 0;
    const v = load<f64>(this.base + <usize>this.pos);
    this.pos += 8;
    return v;
  }
  /** Skips a `str`, returning its offset (its length is in `lastLen`). */
  lastLen: i32 = 0;
  str(): i32 {
    const n = <i32>this.u16();
    if (!this.need(n)) return 0;
    const at = this.pos;
    this.lastLen = n;
    this.pos += n;
    return at;
  }
  text(): string {
    const at = this.str();
    return this.ok ? String.UTF8.decodeUnsafe(this.base + <usize>at, <usize>this.lastLen) : "";
  }
  /** A u32 length, then the end of that many bytes (this reader is not moved past them). */
  sized(): i32 {
    const n = this.u32();
    if (!this.ok) return this.pos;
    if (n > <u32>(this.end - this.pos)) {
      lastError = "length " + n.toString() + " at byte " + (this.pos - 4).toString() + " runs past its container";
      this.ok = false;
      return this.pos;
    }
    return this.pos + <i32>n;
  }
  /** A reader over [pos, end) of the same blob. */
  sub(end: i32): Reader {
    return new Reader(this.base, end, this.pos);
  }
}

/** An address goes into a header verbatim: refuse empty ones and bytes a header value cannot carry. */
function usableAddress(base: usize, off: i32, len: i32): bool {
  if (len == 0 || len > 255) return false;
  for (let i = 0; i < len; i++) {
    const c = load<u8>(base + <usize>(off + i));
    if (c <= 0x20 || c == 0x2c || c >= 0x7f) return false; // no controls, spaces, commas (fallback list separator) or non-ASCII
  }
  return true;
}

/** Decodes a whole snapshot; returns null (and sets lastError) on any inconsistency. */
export function decodeSnapshot(buf: ArrayBuffer): Snapshot | null {
  const len = buf.byteLength;
  const base = changetype<usize>(buf);
  if (len < HEADER_SIZE) {
    lastError = "shorter than the header";
    return null;
  }
  if (load<u8>(base) != 0x45 || load<u8>(base, 1) != 0x50 || load<u8>(base, 2) != 0x53 || load<u8>(base, 3) != 0x31) {
    lastError = "bad magic";
    return null;
  }
  const format = load<u16>(base, 4);
  if (format != FORMAT) {
    lastError =
      "unsupported format " +
      format.toString() +
      (format < FORMAT
        ? " (the companion is older than this filter: upgrade it)"
        : " (the companion is newer than this filter)");
    return null;
  }
  const headerSize = <i32>load<u16>(base, 6);
  const totalSize = load<u32>(base, 24);
  if (totalSize != <u32>len) {
    lastError = "size mismatch";
    return null;
  }
  if (headerSize < HEADER_SIZE || headerSize > len) {
    lastError = "bad header size";
    return null;
  }
  if (fnv1a32(base + <usize>headerSize, len - headerSize) != load<u32>(base, 28)) {
    lastError = "checksum mismatch";
    return null;
  }

  const snap = new Snapshot();
  snap.blob = buf;
  snap.version = load<u64>(base, 8);
  snap.generatedAtMs = load<u64>(base, 16);
  const r = new Reader(base, len, headerSize);
  let sawProfile = false,
    sawEndpoints = false;
  while (r.ok && r.pos < len) {
    const id = r.u16();
    const end = r.sized();
    if (!r.ok) return null;
    const body = r.sub(end);
    if (id == SECTION_PROFILE) {
      sawProfile = true;
      if (!readProfile(body, snap)) return null;
    } else if (id == SECTION_ENDPOINTS) {
      sawEndpoints = true;
      if (!readEndpoints(body, snap)) return null;
    } else if (id == SECTION_BASE_MODELS) {
      if (!readBaseModels(body, snap)) return null;
    } else if (id == SECTION_OBJECTIVES) {
      if (!readObjectives(body, snap)) return null;
    } else if (id == SECTION_MODEL_REWRITES) {
      if (!readModelRewrites(body, snap)) return null;
    } else if (id == SECTION_FLOW_CONTROL) {
      if (!readFlowControl(body, snap)) return null;
    } else if (id == SECTION_ROLES) {
      if (!readRoles(body, snap)) return null;
    } else if (id == SECTION_DISAGGREGATION) {
      if (!readDisaggregation(body, snap)) return null;
    }
    r.pos = end; // a section of a later revision, or bytes a known section gained: skipped
  }
  if (!r.ok) return null;
  if (!sawProfile) {
    lastError = "no profile section";
    return null;
  }
  if (!sawEndpoints) {
    lastError = "no endpoints section";
    return null;
  }
  for (let i = 0; i < snap.count; i++) {
    const f = unchecked(snap.flags[i]);
    if ((f & FLAG_LORA) != 0) snap.anyLora = true;
    if ((f & (FLAG_ERROR | FLAG_STALE | FLAG_UNREACHABLE)) != 0) snap.degraded++;
  }
  snap.adapterSet = sortedUnique(snap.adapterHash);
  if (snap.roles.length > 0 && snap.roles.length != snap.count) {
    lastError = snap.roles.length.toString() + " roles for " + snap.count.toString() + " endpoints";
    return null;
  }
  snap.profile = buildProfile(snap.entries);
  const pd = snap.pd;
  if (pd != null) pd.prefill = buildProfile(pd.entries);
  snap.buildIndex();
  lastError = "";
  return snap;
}

function readProfile(r: Reader, snap: Snapshot): bool {
  return readEntries(r, snap.entries);
}

/** Section 7: one role byte per endpoint, in the endpoints section's order. */
function readRoles(r: Reader, snap: Snapshot): bool {
  const n = <i32>r.u32();
  if (!r.ok || n < 0 || n > r.end - r.pos) {
    lastError = "bad role count";
    return false;
  }
  const roles = new StaticArray<u8>(n);
  for (let k = 0; k < n; k++) unchecked((roles[k] = r.u8()));
  snap.roles = roles;
  return r.ok;
}

/** Section 8: the prefill decider and the prefill profile's entries (built with the profile). */
function readDisaggregation(r: Reader, snap: Snapshot): bool {
  const pd = new PdConfig();
  const decider = r.u8();
  pd.decider = decider <= DECIDER_ALWAYS ? decider : 0; // a decider of a later revision: never prefill
  pd.nonCachedTokens = <i64>r.u32();
  pd.promptTokens = <i64>r.u32();
  pd.bytesPerToken = <i64>r.u16();
  if (!r.ok || !readEntries(r, pd.entries)) return false;
  snap.pd = pd;
  return true;
}

function readEntries(r: Reader, entries: PluginEntry[]): bool {
  const n = <i32>r.u16();
  for (let k = 0; k < n && r.ok; k++) {
    const end = r.sized();
    if (!r.ok) break;
    const e = r.sub(end);
    const role = e.u8();
    const type = e.text();
    const weight = e.f32();
    const params = new Params();
    const count = <i32>e.u16();
    for (let j = 0; j < count && e.ok; j++) {
      params.names.push(e.text());
      const kind = e.u8();
      if (kind == PARAM_NUMBER) {
        params.numbers.push(e.f64());
        params.strings.push(null);
      } else if (kind == PARAM_STRING) {
        params.numbers.push(NaN);
        params.strings.push(e.text());
      } else {
        lastError = "plugin " + type + ": unknown parameter kind " + kind.toString();
        return false;
      }
    }
    if (!e.ok) {
      r.ok = false;
      return false;
    }
    entries.push(new PluginEntry(role, type, weight, params));
    r.pos = end;
  }
  return r.ok;
}

function readEndpoints(r: Reader, snap: Snapshot): bool {
  const count = <i32>r.u32();
  if (!r.ok || count < 0 || count > (r.end - r.pos) / MIN_RECORD) {
    lastError = "bad endpoint count";
    return false;
  }
  const base = r.base;
  snap.count = count;
  snap.addrOff = new StaticArray<i32>(count);
  snap.addrLen = new StaticArray<i32>(count);
  snap.addrHash = new StaticArray<u32>(count);
  snap.flags = new StaticArray<u8>(count);
  snap.queued = new StaticArray<f64>(count);
  snap.running = new StaticArray<f64>(count);
  snap.kv = new StaticArray<f64>(count);
  snap.loraMax = new StaticArray<i32>(count);
  snap.runStart = new StaticArray<i32>(count);
  snap.runCount = new StaticArray<i32>(count);
  snap.waitCount = new StaticArray<i32>(count);
  const adapterOff = new Array<i32>();
  const adapterLen = new Array<i32>();
  for (let i = 0; i < count; i++) {
    const end = r.sized();
    if (!r.ok) return false;
    const e = r.sub(end);
    let flags = e.u8() & KNOWN_FLAGS;
    const queued = e.u32();
    const running = e.u32();
    let kv = e.f32();
    const loraMax = e.u16();
    const ao = e.str();
    const al = e.lastLen;
    unchecked((snap.runStart[i] = adapterOff.length));
    let n = <i32>e.u16();
    for (let k = 0; k < n && e.ok; k++) {
      adapterOff.push(e.str());
      adapterLen.push(e.lastLen);
    }
    unchecked((snap.runCount[i] = n));
    n = <i32>e.u16();
    for (let k = 0; k < n && e.ok; k++) {
      adapterOff.push(e.str());
      adapterLen.push(e.lastLen);
    }
    unchecked((snap.waitCount[i] = n));
    if (!e.ok) {
      r.ok = false;
      return false;
    }
    r.pos = end; // fields a later revision appended to the record: skipped
    if (!usableAddress(base, ao, al)) flags |= FLAG_UNUSABLE;
    // Stale metrics say nothing about the endpoint now: it is scored by what the proxy knows (its in-flight
    // counts, the prefix index), like an engine that reports no such metrics.
    if ((flags & FLAG_STALE) != 0) flags &= ~(FLAG_QUEUE | FLAG_RUNNING | FLAG_KV);
    if (!isFinite(kv) || kv < 0) kv = 0;
    if (kv > 1) kv = 1;
    unchecked((snap.addrOff[i] = ao));
    unchecked((snap.addrLen[i] = al));
    unchecked((snap.addrHash[i] = fnv1a32(base + <usize>ao, al)));
    unchecked((snap.flags[i] = flags));
    unchecked((snap.queued[i] = (flags & FLAG_QUEUE) != 0 ? <f64>queued : 0));
    unchecked((snap.running[i] = (flags & FLAG_RUNNING) != 0 ? <f64>running : 0));
    unchecked((snap.kv[i] = kv));
    unchecked((snap.loraMax[i] = <i32>loraMax));
  }
  const total = adapterOff.length;
  snap.adapterOff = new StaticArray<i32>(total);
  snap.adapterLen = new StaticArray<i32>(total);
  snap.adapterHash = new StaticArray<u32>(total);
  for (let k = 0; k < total; k++) {
    unchecked((snap.adapterOff[k] = adapterOff[k]));
    unchecked((snap.adapterLen[k] = adapterLen[k]));
    unchecked((snap.adapterHash[k] = fnv1a32(base + <usize>adapterOff[k], adapterLen[k])));
  }
  return true;
}

function readBaseModels(r: Reader, snap: Snapshot): bool {
  const n = <i32>r.u16();
  const bases = new StaticArray<u32>(max(n, 0));
  for (let k = 0; k < n && r.ok; k++) {
    const off = r.str();
    if (r.ok) unchecked((bases[k] = fnv1a32(r.base + <usize>off, r.lastLen)));
  }
  if (!r.ok) return false;
  snap.baseSet = sortedUnique(bases);
  return true;
}

function readObjectives(r: Reader, snap: Snapshot): bool {
  const n = <i32>r.u16();
  const hashes = new StaticArray<u32>(max(n, 0));
  const priorities = new StaticArray<i32>(max(n, 0));
  for (let k = 0; k < n && r.ok; k++) {
    const off = r.str();
    const p = <i32>r.u32();
    if (r.ok) {
      unchecked((hashes[k] = fnv1a32(r.base + <usize>off, r.lastLen)));
      unchecked((priorities[k] = p));
    }
  }
  if (!r.ok) return false;
  snap.objectiveHash = hashes;
  snap.objectivePriority = priorities;
  return true;
}

/** A band: i32 priority (written as 0 in the templates, whose priority is the request's), limits, policies. */
function readBand(r: Reader, template: bool): BandConfig {
  const b = new BandConfig();
  const p = <i32>r.u32();
  b.priority = template ? 0 : p;
  b.maxRequests = r.u32();
  b.maxBytes = r.f64();
  const fair = r.u8();
  b.fairness = fair == FAIRNESS_ROUND_ROBIN || fair == FAIRNESS_PROGRAM_AWARE ? fair : FAIRNESS_GLOBAL_STRICT;
  const o = r.u8();
  b.ordering = o == ORDERING_EDF || o == ORDERING_SLO_DEADLINE ? o : ORDERING_FCFS;
  if (!(b.maxBytes >= 0)) b.maxBytes = 0; // NaN or negative: no byte limit
  return b;
}

function readFlowControl(r: Reader, snap: Snapshot): bool {
  const f = new FlowConfig();
  f.defaultTtlMs = <u64>r.u32();
  f.noEndpointTtlMs = <u64>r.u32();
  f.maxRequests = r.u32();
  f.maxBytes = r.f64();
  f.usageLimit = r.f64();
  if (!(f.maxBytes >= 0)) f.maxBytes = 0;
  if (!(f.usageLimit > 0)) f.usageLimit = 1.0;
  f.defaultBand = readBand(r, true);
  f.negativeBand = readBand(r, true);
  const n = <i32>r.u16();
  for (let k = 0; k < n && r.ok; k++) {
    const b = readBand(r, false);
    let dup = false;
    for (let j = 0; j < f.bands.length; j++) if (unchecked(f.bands[j]).priority == b.priority) dup = true;
    if (dup) continue;
    let at = f.bands.length;
    while (at > 0 && unchecked(f.bands[at - 1]).priority < b.priority) at--;
    insertAt<BandConfig>(f.bands, at, b);
  }
  // Later additions (an older companion ends the section before them).
  const usagePolicy = r.ok && r.pos < r.end ? r.u8() : 0;
  if (usagePolicy == 2) f.softReflective = true;
  if (usagePolicy == 1) {
    f.holdback = true;
    f.holdbackByValue = r.u8() == 1;
    f.minCeiling = r.f64();
    f.maxCeiling = r.f64();
    if (!(f.maxCeiling > 0 && f.maxCeiling <= 1)) f.maxCeiling = 1.0;
    if (!(f.minCeiling >= 0 && f.minCeiling < f.maxCeiling)) f.minCeiling = 0;
  }
  if (r.ok && r.pos < r.end && r.u8() == 1) {
    f.lasWeightService = r.f64();
    f.lasWeightHeadWait = r.f64();
    f.lasHalfLifeS = r.f64();
    f.lasEvictionTtlS = r.f64();
    if (!(f.lasWeightService >= 0)) f.lasWeightService = 0.8;
    if (!(f.lasWeightHeadWait >= 0)) f.lasWeightHeadWait = 0.2;
    if (!(f.lasHalfLifeS >= 0)) f.lasHalfLifeS = 60;
    if (!(f.lasEvictionTtlS >= 0)) f.lasEvictionTtlS = 3600;
    if (r.ok && r.pos < r.end) {
      f.heavyFlowHeadroom = r.f64();
      if (!(f.heavyFlowHeadroom >= 0 && f.heavyFlowHeadroom < 1)) f.heavyFlowHeadroom = 0;
    }
  }
  if (!r.ok) return false;
  snap.flow = f;
  return true;
}

/** A target name the filter may write into a JSON string as it is: 1..256 bytes, nothing JSON must escape. */
function writableName(base: usize, off: i32, len: i32): bool {
  if (len <= 0 || len > MAX_REWRITE_NAME) return false;
  for (let i = 0; i < len; i++) {
    const c = load<u8>(base + <usize>(off + i));
    if (c < 0x20 || c == 0x22 || c == 0x5c) return false;
  }
  return true;
}

function readModelRewrites(r: Reader, snap: Snapshot): bool {
  const n = <i32>r.u16();
  // Each rule takes at least its length and two counts: a count the section cannot hold is corrupt.
  if (!r.ok || n > (r.end - r.pos) / 8) {
    lastError = "bad model rewrite count";
    return false;
  }
  const base = r.base;
  snap.rwMatchStart = new StaticArray<i32>(n);
  snap.rwMatchCount = new StaticArray<i32>(n);
  snap.rwTargetStart = new StaticArray<i32>(n);
  snap.rwTargetCount = new StaticArray<i32>(n);
  snap.rwTotal = new StaticArray<u64>(n);
  const matchOff = new Array<i32>(),
    matchLen = new Array<i32>(),
    targetOff = new Array<i32>(),
    targetLen = new Array<i32>(),
    targetWeight = new Array<u32>();
  for (let k = 0; k < n; k++) {
    const end = r.sized();
    if (!r.ok) return false;
    const e = r.sub(end);
    unchecked((snap.rwMatchStart[k] = matchOff.length));
    const matches = <i32>e.u16();
    for (let j = 0; j < matches && e.ok; j++) {
      matchOff.push(e.str());
      matchLen.push(e.lastLen);
    }
    unchecked((snap.rwMatchCount[k] = matches));
    unchecked((snap.rwTargetStart[k] = targetOff.length));
    const targets = <i32>e.u16();
    let total: u64 = 0;
    for (let j = 0; j < targets && e.ok; j++) {
      const off = e.str();
      const len = e.lastLen;
      let w = e.u32();
      if (!writableName(base, off, len)) w = 0; // never chosen: it could not be written into the body
      targetOff.push(off);
      targetLen.push(len);
      targetWeight.push(w);
      total += <u64>w;
    }
    if (!e.ok) {
      r.ok = false;
      return false;
    }
    unchecked((snap.rwTargetCount[k] = targets));
    unchecked((snap.rwTotal[k] = total));
    r.pos = end; // fields a later revision appended to the rule: skipped
  }
  snap.rwMatchOff = new StaticArray<i32>(matchOff.length);
  snap.rwMatchLen = new StaticArray<i32>(matchOff.length);
  snap.rwMatchHash = new StaticArray<u32>(matchOff.length);
  for (let k = 0; k < matchOff.length; k++) {
    unchecked((snap.rwMatchOff[k] = matchOff[k]));
    unchecked((snap.rwMatchLen[k] = matchLen[k]));
    unchecked((snap.rwMatchHash[k] = fnv1a32(base + <usize>matchOff[k], matchLen[k])));
  }
  snap.rwTargetOff = new StaticArray<i32>(targetOff.length);
  snap.rwTargetLen = new StaticArray<i32>(targetOff.length);
  snap.rwTargetHash = new StaticArray<u32>(targetOff.length);
  snap.rwTargetWeight = new StaticArray<u32>(targetOff.length);
  for (let k = 0; k < targetOff.length; k++) {
    unchecked((snap.rwTargetOff[k] = targetOff[k]));
    unchecked((snap.rwTargetLen[k] = targetLen[k]));
    unchecked((snap.rwTargetHash[k] = fnv1a32(base + <usize>targetOff[k], targetLen[k])));
    unchecked((snap.rwTargetWeight[k] = targetWeight[k]));
  }
  snap.rewriteCount = n;
  return true;
}

/** The distinct values of `hashes`, sorted (for `sortedHas`). */
function sortedUnique(hashes: StaticArray<u32>): StaticArray<u32> {
  const sorted = hashes.slice<StaticArray<u32>>(0);
  sorted.sort();
  let unique = 0;
  for (let k = 0; k < sorted.length; k++)
    if (k == 0 || unchecked(sorted[k]) != unchecked(sorted[k - 1])) unchecked((sorted[unique++] = sorted[k]));
  return sorted.slice<StaticArray<u32>>(0, unique);
}

function sortedHas(set: StaticArray<u32>, h: u32): bool {
  let lo = 0,
    hi = set.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const v = unchecked(set[mid]);
    if (v == h) return true;
    if (v < h) lo = mid + 1;
    else hi = mid;
  }
  return false;
}
