// Prefix-cache affinity: chained hashes over fixed-size blocks of the prompt, and the index that remembers
// which endpoint was sent which chain.
//
// Chain: h_0 = hash(model), h_k = hash(h_{k-1}, block k). Equal h_k means an equal first k blocks (up to
// 32-bit collisions), so an index of (h_k, endpoint) pairs answers "how long a prefix of this prompt was
// each endpoint sent" by walking the levels of the chain until no endpoint has one.
//
// Levels: every k <= 8, then four per doubling (k divisible by 2^(floor(log2 k) - 2)), and the chain's
// last level: a 256-block chain costs 28 entries, and a match is known to within 1/4 of its length (a
// prefix score off by a few percent, for half the lookups of denser sampling).
//
// Index: per worker VM, in wasm memory, like GIE's in-process index: an open-addressed table of
// (h_k, endpoint hash) pairs in two generations. Inserts go to the current one; when it is full the older
// generation is dropped and the current one becomes the older: least-recently-used eviction at the cost of
// one pointer swap, and an entry used again moves to the current generation. Capacity follows the
// profile's blocks per endpoint. Worker VMs exchange what they recorded through journals (journal.ts).
import { blockHash } from "./hash";
import { Snapshot } from "./snapshot";

/** Canonical levels, ascending, for every chain length a u16 block count allows (about 60). */
const LEVELS = buildLevels(65535);
const LEVEL_COUNT = LEVELS.length;
function buildLevels(upTo: i32): StaticArray<i32> {
  const out = new Array<i32>();
  for (let k = 1; k <= upTo; k++) {
    if (k <= 8 || k % (1 << (31 - clz(k) - 2)) == 0) out.push(k);
  }
  return StaticArray.fromArray(out);
}

/** Number of canonical levels strictly below `n`. */
function levelsBelow(n: i32): i32 {
  let lo = 0, hi = LEVEL_COUNT;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (unchecked(LEVELS[mid]) < n) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** How many levels an n-block chain has (canonical levels below n, plus n itself). */
export function storedCount(n: i32): i32 { return n <= 0 ? 0 : levelsBelow(n) + 1; }

/** The level (block count) of entry i of an n-block chain that has c levels. */
@inline export function levelOf(i: i32, c: i32, n: i32): i32 { return i < c - 1 ? unchecked(LEVELS[i]) : n; }

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

  /** The hash at level entry i (of `storedCount(count)`). */
  @inline levelHash(i: i32, c: i32): u32 { return unchecked(this.hashes[levelOf(i, c, this.count) - 1]); }
}

/** One generation: open addressing with linear probing over (key, endpoint) pairs; key 0 = empty. */
class Generation {
  keys: StaticArray<u32>;
  eps: StaticArray<u32>;
  used: i32 = 0;
  mask: i32;
  limit: i32;

  constructor(capacity: i32) {
    let size = 16;
    while (size < capacity * 2) size <<= 1; // at most half full: short probe runs
    this.keys = new StaticArray<u32>(size);
    this.eps = new StaticArray<u32>(size);
    this.mask = size - 1;
    this.limit = capacity;
  }

  clear(): void {
    memory.fill(changetype<usize>(this.keys), 0, <usize>(this.keys.length << 2));
    this.used = 0;
  }

  @inline slotOf(key: u32): i32 { return <i32>((key ^ (key >> 16)) * 0x45d9f3b) & this.mask; }

  has(key: u32, ep: u32): bool {
    let s = this.slotOf(key);
    while (true) {
      const k = unchecked(this.keys[s]);
      if (k == 0) return false;
      if (k == key && unchecked(this.eps[s]) == ep) return true;
      s = (s + 1) & this.mask;
    }
  }

  /** Adds the pair (the caller checked it is absent and that the generation is not full). */
  add(key: u32, ep: u32): void {
    let s = this.slotOf(key);
    while (unchecked(this.keys[s]) != 0) s = (s + 1) & this.mask;
    unchecked(this.keys[s] = key);
    unchecked(this.eps[s] = ep);
    this.used++;
  }

  /**
   * Marks in `matched` (indexed like `snap`) every endpoint holding `key` with `level`, and in `also` when
   * given; returns how many.
   */
  mark(key: u32, level: i32, snap: Snapshot, matched: StaticArray<i32>, also: StaticArray<i32> | null): i32 {
    let s = this.slotOf(key);
    let found = 0;
    while (true) {
      const k = unchecked(this.keys[s]);
      if (k == 0) return found;
      if (k == key) {
        const i = snap.indexOfHash(unchecked(this.eps[s]));
        if (i >= 0 && i < matched.length) {
          if (unchecked(matched[i]) < level) unchecked(matched[i] = level);
          if (also != null && unchecked(also[i]) < level) unchecked(also[i] = level);
          found++;
        }
      }
      s = (s + 1) & this.mask;
    }
  }
}

export class PrefixIndex {
  private cur: Generation;
  private prev: Generation;
  capacity: i32;

  constructor(capacity: i32) {
    this.capacity = capacity;
    this.cur = new Generation(capacity);
    this.prev = new Generation(capacity);
  }

  /**
   * Sets, per endpoint of `snap`, the longest prefix of `chain` it was sent (in blocks, to `matched`) and the
   * longest the current generation holds (to `current`, what `record` may skip); the caller zeroes both.
   * Returns the longest match. Stops at the first level no endpoint has.
   */
  lookup(chain: PrefixChain, snap: Snapshot, matched: StaticArray<i32>, current: StaticArray<i32>): i32 {
    const c = storedCount(chain.count);
    let best = 0;
    for (let j = 0; j < c; j++) {
      const key = chain.levelHash(j, c);
      const level = levelOf(j, c, chain.count);
      if (this.cur.mark(key, level, snap, matched, current) + this.prev.mark(key, level, snap, matched, null) == 0) break;
      best = level;
    }
    return best;
  }

  /**
   * Records that endpoint `ep` (address hash) was sent `chain`. Levels up to `known` (what a lookup just
   * found it holds in the current generation) are skipped: inserting a popular prefix again would scan its
   * long run of holders. Levels found only in the older generation are inserted, which is what keeps a
   * prefix in use from ageing out (least-recently-used).
   */
  record(chain: PrefixChain, ep: u32, known: i32 = 0): void {
    const c = storedCount(chain.count);
    for (let j = 0; j < c; j++) {
      if (levelOf(j, c, chain.count) <= known) continue;
      this.insert(chain.levelHash(j, c), ep);
    }
  }

  /** Records one (level hash, endpoint) pair, e.g. from another VM's journal. */
  insert(key: u32, ep: u32): void {
    if (key == 0 || this.cur.has(key, ep)) return;
    if (this.cur.used >= this.cur.limit) {
      const old = this.prev;
      this.prev = this.cur;
      old.clear();
      this.cur = old;
    }
    this.cur.add(key, ep);
  }

  get size(): i32 { return this.cur.used + this.prev.used; }
}

/** Entries per generation for a profile: GIE's blocks per endpoint x endpoints, over the ~5x level sampling. */
export function indexCapacity(lruPerEndpoint: i32, endpoints: i32): i32 {
  const want = <i64>max(lruPerEndpoint, 1) * <i64>max(endpoints, 1) / 4;
  if (want < 4096) return 4096;
  if (want > 262144) return 262144;
  return <i32>want;
}
