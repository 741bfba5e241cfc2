// A vLLM V1-style KV block pool with prefix caching:
// - N blocks; a block referenced by a running request is pinned (ref count > 0);
// - a block whose ref count drops to 0 goes to the tail of the free queue but keeps its hash, so a later
//   request with the same prefix can take it back (a cache hit) while it has not been reused;
// - allocation takes free blocks from the head of the queue, i.e. least recently freed first, evicting
//   the hash the block held (LRU eviction);
// - a full block's hash is registered when its tokens are computed; if another block already holds that
//   hash the new one stays unregistered (vLLM keeps the first copy).
// Usage, as vLLM reports it: 1 - free / total, where free blocks include evictable cached ones.

const NONE = -1;

export class BlockPool {
  readonly numBlocks: number;
  private readonly refCount: Int32Array;
  private readonly hashOf: Float64Array;
  // Free queue as a doubly linked list over block ids, for O(1) removal on a cache hit.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly inFree: Uint8Array;
  private head = NONE;
  private tail = NONE;
  private free = 0;
  private readonly cached = new Map<number, number>();
  /** Cached blocks evicted so far (their hash dropped to make room). */
  evictions = 0;

  constructor(numBlocks: number) {
    this.numBlocks = numBlocks;
    this.refCount = new Int32Array(numBlocks);
    this.hashOf = new Float64Array(numBlocks).fill(NaN);
    this.prev = new Int32Array(numBlocks);
    this.next = new Int32Array(numBlocks);
    this.inFree = new Uint8Array(numBlocks);
    for (let b = 0; b < numBlocks; b++) this.append(b);
  }

  get freeBlocks(): number {
    return this.free;
  }
  get usedBlocks(): number {
    return this.numBlocks - this.free;
  }
  get usage(): number {
    return 1 - this.free / this.numBlocks;
  }
  get cachedBlocks(): number {
    return this.cached.size;
  }

  /** Block holding `hash`, if cached. */
  lookup(hash: number): number | undefined {
    return this.cached.get(hash);
  }

  /** Whether `hash` is cached and its block is currently free (taking it would reduce free blocks). */
  isEvictable(block: number): boolean {
    return this.inFree[block] === 1;
  }

  /** Takes a reference on a cached block (a prefix-cache hit); a free block leaves the free queue. */
  touch(block: number): void {
    if (this.inFree[block]) this.unlink(block);
    this.refCount[block]++;
  }

  /** Takes `n` blocks from the head of the free queue (evicting their hashes). Caller checks freeBlocks. */
  allocate(n: number, out: number[]): void {
    if (n > this.free) throw new Error(`KV pool: ${n} blocks requested, ${this.free} free`);
    for (let i = 0; i < n; i++) {
      const b = this.head;
      this.unlink(b);
      const h = this.hashOf[b];
      if (!Number.isNaN(h)) {
        if (this.cached.get(h) === b) this.cached.delete(h);
        this.hashOf[b] = NaN;
        this.evictions++;
      }
      this.refCount[b] = 1;
      out.push(b);
    }
  }

  /** Registers a computed full block under its hash (unless another block already holds it). */
  register(block: number, hash: number): void {
    if (!Number.isNaN(this.hashOf[block]) || this.cached.has(hash)) return;
    this.hashOf[block] = hash;
    this.cached.set(hash, block);
  }

  /** Drops one reference per block, last block first, so a sequence's tail is evicted before its prefix. */
  release(blocks: readonly number[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i];
      if (--this.refCount[b] === 0) this.append(b);
      else if (this.refCount[b] < 0) throw new Error(`KV pool: block ${b} released twice`);
    }
  }

  private append(b: number): void {
    this.prev[b] = this.tail;
    this.next[b] = NONE;
    if (this.tail !== NONE) this.next[this.tail] = b;
    else this.head = b;
    this.tail = b;
    this.inFree[b] = 1;
    this.free++;
  }

  private unlink(b: number): void {
    const p = this.prev[b],
      n = this.next[b];
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
    this.inFree[b] = 0;
    this.free--;
  }
}
