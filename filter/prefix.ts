// Prefix-cache affinity: chained hashes over fixed-size blocks of the prompt, and the shared table that
// remembers which endpoint served which chain.
//
// Chain: h_0 = hash(model), h_k = hash(h_{k-1}, block k). Equal h_k means an equal first k blocks (up to
// 32-bit collisions), so "how long a prefix do two chains share" is a binary search, not a walk.
//
// Table: PREFIX_BUCKETS shared-data keys, `endpoint-picker.prefix.<i>`, chosen by h_1. Every chain that
// starts with the same first block lives in one bucket, so one read finds the longest match of every
// endpoint and one compare-and-swap write records a pick. A bucket holds records
//   u32 endpointHash, u32 lastUsedMs, u16 blocks, u16 stored, u32 hashes[stored]
// after an 8-byte header (u32 magic, u32 record count). A record keeps h_k for every k <= 16, then two
// levels per octave further on (k divisible by 2^(floor(log2 k) - 3)), and always its last level: a long
// chain costs about 1/5 of its blocks, and a match is known to within 1/8 of its length.
// Records are evicted least-recently-used first (records of endpoints no longer in the snapshot before any)
// when a bucket outgrows its byte budget.
import { blockHash } from "./hash";
import { Snapshot } from "./snapshot";

export const PREFIX_BUCKETS: i32 = 512;
const MAGIC: u32 = 0x31585045; // "EPX1"
const HEADER: i32 = 8;
const RECORD_HEADER: i32 = 12;
/** A record is not rewritten just to refresh its use time more often than this. */
export const TOUCH_INTERVAL_MS: u32 = 2000;

/** Canonical stored levels, ascending, for every chain length a u16 block count allows (about 110). */
const LEVELS = buildLevels(65535);
const LEVEL_COUNT = LEVELS.length;
function buildLevels(upTo: i32): StaticArray<i32> {
  const out = new Array<i32>();
  for (let k = 1; k <= upTo; k++) {
    if (k <= 16 || k % (1 << (31 - clz(k) - 3)) == 0) out.push(k);
  }
  return StaticArray.fromArray(out);
}

/** Number of canonical levels strictly below `n`. */
function levelsBelow(n: i32): i32 {
  // Binary search: first index with LEVELS[i] >= n.
  let lo = 0, hi = LEVEL_COUNT;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (unchecked(LEVELS[mid]) < n) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** How many hashes a record of an n-block chain keeps. */
export function storedCount(n: i32): i32 { return n <= 0 ? 0 : levelsBelow(n) + 1; }

/** The level (block count) of entry i of a record of an n-block chain that keeps c entries. */
@inline function levelOf(i: i32, c: i32, n: i32): i32 { return i < c - 1 ? unchecked(LEVELS[i]) : n; }

export function modelSeed(ptr: usize, len: i32): u32 { return blockHash(0x5eed, ptr, len); }

/** The chain of one request: hashes[k-1] = h_k. Reused across requests. */
export class PrefixChain {
  hashes: StaticArray<u32> = new StaticArray<u32>(64);
  count: i32 = 0;

  /** Hashes the full blocks of `len` bytes at `ptr` (at most maxBlocks), seeded with the model's hash. */
  compute(seed: u32, ptr: usize, len: i32, blockChars: i32, maxBlocks: i32): void {
    this.count = 0;
    if (blockChars <= 0 || maxBlocks <= 0 || len < blockChars) return;
    let n = len / blockChars;
    if (n > maxBlocks) n = maxBlocks;
    if (this.hashes.length < n) {
      let cap = this.hashes.length;
      while (cap < n) cap <<= 1;
      this.hashes = new StaticArray<u32>(cap);
    }
    let h = seed;
    for (let k = 0; k < n; k++) {
      h = blockHash(h, ptr + <usize>(k * blockChars), blockChars);
      unchecked(this.hashes[k] = h);
    }
    this.count = n;
  }

  bucket(): i32 { return this.count == 0 ? -1 : <i32>(unchecked(this.hashes[0]) & <u32>(PREFIX_BUCKETS - 1)); }
}

// Scratch lists of insertIntoBucket, reused so a request allocates only the bucket it writes.
const KEEP = new Array<i32>();
const ORDER = new Array<u64>();

/** Byte budget of one bucket: the profile's blocks per endpoint, spread over the buckets, 4..32 KiB. */
export function bucketBudget(lruPerEndpoint: i32, endpoints: i32): i32 {
  const want = <i64>lruPerEndpoint * <i64>endpoints * 4 / <i64>PREFIX_BUCKETS;
  if (want < 4096) return 4096;
  if (want > 32768) return 32768;
  return <i32>want;
}

/** Checks a bucket's layout; returns its record count, or -1 for anything that is not a valid bucket. */
function recordCount(ptr: usize, len: i32): i32 {
  if (len < HEADER || load<u32>(ptr) != MAGIC) return -1;
  const count = <i32>load<u32>(ptr, 4);
  let p = HEADER;
  for (let r = 0; r < count; r++) {
    if (p > len - RECORD_HEADER) return -1;
    const c = <i32>load<u16>(ptr + <usize>p, 10);
    const n = <i32>load<u16>(ptr + <usize>p, 8);
    if (c == 0 || n == 0 || c > n || c != storedCount(n)) return -1;
    p += RECORD_HEADER + 4 * c;
    if (p > len) return -1;
  }
  return p == len ? count : -1;
}

/** Longest common prefix, in blocks, of the record at `rec` and the chain (a lower bound within the stored levels). */
function sharedBlocks(rec: usize, chain: PrefixChain): i32 {
  const n = <i32>load<u16>(rec, 8);
  const c = <i32>load<u16>(rec, 10);
  const mine = chain.count;
  // Largest i with level(i) <= mine and equal hashes; equality is monotone along the chain.
  let lo = 0, hi = c - 1, best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const level = levelOf(mid, c, n);
    if (level <= mine && load<u32>(rec + RECORD_HEADER + <usize>(mid * 4)) == unchecked(chain.hashes[level - 1])) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best < 0 ? 0 : levelOf(best, c, n);
}

/**
 * Adds, per endpoint of `snap`, the longest prefix of `chain` its records in the bucket share, to
 * `matched` (indexed like the snapshot; the caller zeroes it). Returns the longest match found.
 */
export function lookupBucket(ptr: usize, len: i32, chain: PrefixChain, snap: Snapshot, matched: StaticArray<i32>): i32 {
  const count = recordCount(ptr, len);
  if (count <= 0 || chain.count == 0) return 0;
  let best = 0;
  let p = HEADER;
  for (let r = 0; r < count; r++) {
    const rec = ptr + <usize>p;
    const c = <i32>load<u16>(rec, 10);
    p += RECORD_HEADER + 4 * c;
    const idx = snap.indexOfHash(load<u32>(rec));
    if (idx < 0) continue;
    const m = sharedBlocks(rec, chain);
    if (m > unchecked(matched[idx])) unchecked(matched[idx] = m);
    if (m > best) best = m;
  }
  return best;
}

/**
 * The bucket's new contents after `endpointHash` served `chain` at `nowMs`, or null when nothing needs
 * writing (a record already covers the chain and was used recently). `old` may be empty or invalid.
 */
export function insertIntoBucket(oldPtr: usize, oldLen: i32, chain: PrefixChain, endpointHash: u32, nowMs: u32,
  budget: i32, snap: Snapshot): ArrayBuffer | null {
  const n = chain.count;
  if (n == 0) return null;
  let count = recordCount(oldPtr, oldLen);
  if (count < 0) count = 0;
  // Offsets of the records we keep; the covering record (if any) is refreshed in place.
  const keep = KEEP;
  keep.length = 0;
  let p = HEADER;
  let covered = false;
  for (let r = 0; r < count; r++) {
    const rec = oldPtr + <usize>p;
    const recN = <i32>load<u16>(rec, 8);
    const c = <i32>load<u16>(rec, 10);
    const at = p;
    p += RECORD_HEADER + 4 * c;
    if (load<u32>(rec) == endpointHash && !covered) {
      const shared = sharedBlocks(rec, chain);
      if (shared >= n) {
        // This record already holds the whole chain: refresh its use time (rarely worth a write).
        if (nowMs - load<u32>(rec, 4) < TOUCH_INTERVAL_MS) return null;
        covered = true;
        keep.push(-at - 1); // negative: keep, with a new timestamp
        continue;
      }
      if (shared >= recN) continue; // the new chain extends this record: replace it
    }
    keep.push(at);
  }
  const newSize = covered ? 0 : RECORD_HEADER + 4 * storedCount(n);
  // Evict until the bucket fits: records of endpoints gone from the snapshot first, then the least recently used.
  let total = HEADER + newSize;
  for (let k = 0; k < keep.length; k++) total += recordSize(oldPtr, unchecked(keep[k]));
  if (total > budget && keep.length > 0) {
    const order = ORDER;
    order.length = keep.length;
    for (let k = 0; k < keep.length; k++) {
      const at = unchecked(keep[k]);
      const rec = oldPtr + <usize>(at < 0 ? -at - 1 : at);
      const gone: u64 = snap.indexOfHash(load<u32>(rec)) < 0 ? 1 : 0;
      const age: u64 = at < 0 ? 0 : <u64>(nowMs - load<u32>(rec, 4));
      unchecked(order[k] = (gone << 62) | (age << 20) | <u64>k);
    }
    // Usually one record has to go: pick the worst by a linear scan, again while the bucket is still too big.
    while (total > budget) {
      let worst = -1;
      for (let k = 0; k < order.length; k++) {
        if (unchecked(keep[k]) != 0 && (worst < 0 || unchecked(order[k]) > unchecked(order[worst]))) worst = k;
      }
      if (worst < 0) break;
      total -= recordSize(oldPtr, unchecked(keep[worst]));
      unchecked(keep[worst] = 0); // 0 is never a record offset (the header is there)
    }
  }
  const out = new ArrayBuffer(total);
  const o = changetype<usize>(out);
  let w = HEADER;
  let records = 0;
  for (let k = 0; k < keep.length; k++) {
    const at = unchecked(keep[k]);
    if (at == 0) continue;
    const src = oldPtr + <usize>(at < 0 ? -at - 1 : at);
    const size = recordSize(oldPtr, at);
    memory.copy(o + <usize>w, src, <usize>size);
    if (at < 0) store<u32>(o + <usize>w, nowMs, 4);
    w += size;
    records++;
  }
  if (!covered) {
    if (w + newSize > total) return null; // cannot happen; refuse rather than write past the end
    const c = storedCount(n);
    const rec = o + <usize>w;
    store<u32>(rec, endpointHash);
    store<u32>(rec, nowMs, 4);
    store<u16>(rec, <u16>n, 8);
    store<u16>(rec, <u16>c, 10);
    for (let i = 0; i < c; i++) store<u32>(rec + RECORD_HEADER + <usize>(i * 4), unchecked(chain.hashes[levelOf(i, c, n) - 1]));
    w += newSize;
    records++;
  }
  store<u32>(o, MAGIC);
  store<u32>(o, <u32>records, 4);
  return out;
}

function recordSize(base: usize, at: i32): i32 {
  const off = at < 0 ? -at - 1 : at;
  return RECORD_HEADER + 4 * <i32>load<u16>(base + <usize>off, 10);
}
