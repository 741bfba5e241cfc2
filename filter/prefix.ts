// Prefix-cache affinity: chained hashes over fixed-size blocks of the prompt, and the index that remembers
// which endpoint was sent which chain.
//
// Chain: h_0 = hash(model), h_k = hash(h_{k-1}, block k). Equal h_k means an equal first k blocks (up to
// 32-bit collisions), so an index of (h_k, endpoint) pairs answers "how long a prefix of this prompt was
// each endpoint sent" from the deepest level anyone holds downwards (PrefixIndex.lookup).
//
// Levels: every k <= 8, then four per doubling (k divisible by 2^(floor(log2 k) - 2)), and the chain's
// last level: a 256-block chain costs 28 entries, and a match is known to within 1/4 of its length (a
// prefix score off by a few percent, for half the lookups of denser sampling).
//
// Index: per worker VM, in wasm memory, like GIE's in-process index: (h_k, endpoint hash) pairs, listed by
// h_k, in two generations. Inserts go to the current one; when it is full the older
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
  let lo = 0,
    hi = LEVEL_COUNT;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (unchecked(LEVELS[mid]) < n) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** How many levels an n-block chain has (canonical levels below n, plus n itself). */
export function storedCount(n: i32): i32 {
  return n <= 0 ? 0 : levelsBelow(n) + 1;
}

/** The level (block count) of entry i of an n-block chain that has c levels. */
@inline export function levelOf(i: i32, c: i32, n: i32): i32 {
  return i < c - 1 ? unchecked(LEVELS[i]) : n;
}

export function modelSeed(ptr: usize, len: i32): u32 {
  return blockHash(0x5eed, ptr, len);
}

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
      unchecked((this.hashes[k] = h));
    }
    this.count = n;
  }

  /** The hash at level entry i (of `storedCount(count)`). */
  @inline levelHash(i: i32, c: i32): u32 {
    return unchecked(this.hashes[levelOf(i, c, this.count) - 1]);
  }
}

/**
 * One generation: a table of distinct keys, each heading a list of the endpoints recorded with it, and a set
 * of pair fingerprints for "is this pair here already". A popular prefix has hundreds of holders; keeping
 * them in one linear-probing table put them in one run per key, the runs of neighbouring keys merged, and
 * finding one key's holders meant scanning thousands of others' slots. Here a key's holders are its list.
 */
class Generation {
  /**
   * Distinct keys, each slot two words: the key (0 = empty) and the head of its holder list (an index into
   * the entries). Side by side, so finding a key and its list costs one cache miss, not two.
   */
  keys: StaticArray<u32>;
  keyMask: i32;
  /** Holder entries: endpoint hash and the next entry of the same key (-1 ends the list). */
  eps: StaticArray<u32>;
  next: StaticArray<i32>;
  used: i32 = 0;
  limit: i32;
  /**
   * Fingerprints of the (key, endpoint) pairs present (0 = empty). A new pair whose 32-bit fingerprint
   * equals one present looks present and goes unrecorded: about used / 2^32 of inserts (1 in 16,000 in a
   * full 262,144-pair generation). It costs that endpoint one level of one prompt until the pair is
   * recorded again after the next swap; the lookup still finds the levels around it.
   */
  pairs: StaticArray<u32>;
  pairMask: i32;

  constructor(capacity: i32) {
    let size = 16;
    while (size < capacity * 2) size <<= 1; // at most half full: short probe runs
    this.keys = new StaticArray<u32>(size * 2);
    this.keyMask = size - 1;
    this.pairs = new StaticArray<u32>(size);
    this.pairMask = size - 1;
    this.eps = new StaticArray<u32>(capacity);
    this.next = new StaticArray<i32>(capacity);
    this.limit = capacity;
  }

  clear(): void {
    memory.fill(changetype<usize>(this.keys), 0, <usize>(this.keys.length << 2));
    memory.fill(changetype<usize>(this.pairs), 0, <usize>(this.pairs.length << 2));
    this.used = 0;
  }

  @inline private static mix(h: u32): u32 {
    h ^= h >> 16;
    h *= 0x45d9f3b;
    return h ^ (h >> 16);
  }

  @inline private static fingerprint(key: u32, ep: u32): u32 {
    const f = Generation.mix(key ^ Generation.mix(ep + 0x9e3779b9));
    return f == 0 ? 1 : f;
  }

  // Probe loops use raw pointers: managed references used in a loop are spilled to the GC's shadow stack.

  /** The head of the key's holder list, or -1 when no endpoint was recorded with it. */
  private headOf(key: u32): i32 {
    const keys = changetype<usize>(this.keys),
      mask = <usize>this.keyMask;
    let s = (<usize>Generation.mix(key)) & mask;
    while (true) {
      const k = load<u32>(keys + (s << 3));
      if (k == key) return load<i32>(keys + (s << 3), 4);
      if (k == 0) return -1;
      s = (s + 1) & mask;
    }
  }

  /** Some endpoint was recorded with `key`. */
  holds(key: u32): bool {
    return this.headOf(key) >= 0;
  }

  has(key: u32, ep: u32): bool {
    const f = Generation.fingerprint(key, ep);
    const pairs = changetype<usize>(this.pairs),
      mask = <usize>this.pairMask;
    let s = (<usize>f) & mask;
    while (true) {
      const k = load<u32>(pairs + (s << 2));
      if (k == f) return true;
      if (k == 0) return false;
      s = (s + 1) & mask;
    }
  }

  /** Adds the pair (the caller checked it is absent and that the generation is not full). */
  add(key: u32, ep: u32): void {
    const f = Generation.fingerprint(key, ep);
    let p = (<i32>f) & this.pairMask;
    while (unchecked(this.pairs[p]) != 0) p = (p + 1) & this.pairMask;
    unchecked((this.pairs[p] = f));
    let s = (<i32>Generation.mix(key)) & this.keyMask;
    let head = -1;
    while (true) {
      const k = unchecked(this.keys[s << 1]);
      if (k == key) {
        head = <i32>unchecked(this.keys[(s << 1) + 1]);
        break;
      }
      if (k == 0) {
        unchecked((this.keys[s << 1] = key));
        break;
      }
      s = (s + 1) & this.keyMask;
    }
    const e = this.used++;
    unchecked((this.eps[e] = ep));
    unchecked((this.next[e] = head));
    unchecked((this.keys[(s << 1) + 1] = <u32>e));
  }

  /**
   * Raises to `level`, in `matched` (indexed like `snap`) and in `also` when given, every endpoint recorded
   * with `key`; returns how many of them had a match of exactly `floor` in `matched` before.
   */
  mark(
    key: u32,
    level: i32,
    floor: i32,
    snap: Snapshot,
    matched: StaticArray<i32>,
    also: StaticArray<i32> | null,
  ): i32 {
    let raised = 0;
    const eps = changetype<usize>(this.eps),
      next = changetype<usize>(this.next);
    const matchedP = changetype<usize>(matched),
      alsoP = changetype<usize>(also),
      n = matched.length;
    for (let e = this.headOf(key); e >= 0; e = load<i32>(next + ((<usize>e) << 2))) {
      const i = snap.indexOfHash(load<u32>(eps + ((<usize>e) << 2)));
      if (i < 0 || i >= n) continue;
      const at = (<usize>i) << 2;
      const m = load<i32>(matchedP + at);
      if (m < level) {
        if (m == floor) raised++;
        store<i32>(matchedP + at, level);
      }
      if (alsoP != 0 && load<i32>(alsoP + at) < level) store<i32>(alsoP + at, level);
    }
    return raised;
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
   * Returns the longest match.
   *
   * Levels are nested (whoever was sent k blocks was sent every level below k), so: a binary search finds
   * the deepest level anyone holds; the first level's holders are every endpoint with a match; then the
   * levels are walked downwards from the deepest, each endpoint taking the first (deepest) level it appears
   * at, until every first-level holder has its level. Prompts that only a few endpoints share cost a level
   * or two instead of the whole chain.
   */
  lookup(chain: PrefixChain, snap: Snapshot, matched: StaticArray<i32>, current: StaticArray<i32>): i32 {
    const c = storedCount(chain.count);
    // The deepest entry with a holder, assuming every entry above it has one (as the nesting says).
    let lo = 0,
      hi = c; // entries below lo have a holder; entries from hi on have none
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const key = chain.levelHash(mid, c);
      if (this.cur.holds(key) || this.prev.holds(key)) lo = mid + 1;
      else hi = mid;
    }
    if (lo == 0) return 0;
    const first = levelOf(0, c, chain.count);
    const key0 = chain.levelHash(0, c);
    let unsettled =
      this.cur.mark(key0, first, 0, snap, matched, current) + this.prev.mark(key0, first, 0, snap, matched, null);
    for (let j = lo - 1; j > 0 && unsettled > 0; j--) {
      const key = chain.levelHash(j, c);
      const level = levelOf(j, c, chain.count);
      unsettled -= this.cur.mark(key, level, first, snap, matched, current);
      unsettled -= this.prev.mark(key, level, first, snap, matched, null);
    }
    return levelOf(lo - 1, c, chain.count);
  }

  /**
   * Records that endpoint `ep` (address hash) was sent `chain`. Levels up to `known` (what a lookup just
   * found it holds in the current generation) are skipped. Levels found only in the older generation are
   * inserted, which is what keeps a prefix in use from ageing out (least-recently-used).
   */
  record(chain: PrefixChain, ep: u32, known: i32 = 0): void {
    const c = storedCount(chain.count);
    // A chain goes into one generation: split across a swap, its first levels would age out with the older
    // generation while its deepest, found in the current one, keep `known` from recording them again.
    if (this.cur.used + c > this.cur.limit) {
      this.swap();
      known = 0;
    }
    for (let j = 0; j < c; j++) {
      if (levelOf(j, c, chain.count) <= known) continue;
      this.insert(chain.levelHash(j, c), ep);
    }
  }

  /** Records one (level hash, endpoint) pair, e.g. from another VM's journal. */
  insert(key: u32, ep: u32): void {
    if (key == 0 || this.cur.has(key, ep)) return;
    if (this.cur.used >= this.cur.limit) this.swap();
    this.cur.add(key, ep);
  }

  /** The current generation becomes the older one; the older one is dropped and reused as the current. */
  private swap(): void {
    const old = this.prev;
    this.prev = this.cur;
    old.clear();
    this.cur = old;
  }

  get size(): i32 {
    return this.cur.used + this.prev.used;
  }
}

/** Entries per generation for a profile: GIE's blocks per endpoint x endpoints, over the ~5x level sampling. */
export function indexCapacity(lruPerEndpoint: i32, endpoints: i32): i32 {
  const want = (<i64>max(lruPerEndpoint, 1) * <i64>max(endpoints, 1)) / 4;
  if (want < 4096) return 4096;
  if (want > 262144) return 262144;
  return <i32>want;
}
