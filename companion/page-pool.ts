// Reused buffers for metrics pages. A fresh 86 KB buffer costs about 30 µs in page faults when it is first
// written, against 1 µs to copy into one already touched: a fifth of a full-page scrape
// (docs/COMPANION.md "The HTTP client"). Capacities are powers of two, so a returned buffer fits the next page
// of that endpoint and its neighbours.

const MIN_CAPACITY = 16 * 1024;

export class PagePool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Buffers this pool handed out and not yet taken back (only those come back in). */
  private readonly lent = new WeakSet<ArrayBuffer>();
  private pooledBytes = 0;

  /** `maxPooledBytes`: what the free lists may hold at most; more is left to the garbage collector. */
  constructor(private readonly maxPooledBytes = 16 * 1024 * 1024) {}

  /** A buffer of `length` bytes (its content is whatever was there before). */
  take(length: number): Buffer {
    let capacity = MIN_CAPACITY;
    while (capacity < length) capacity *= 2;
    const list = this.free.get(capacity);
    let store = list?.pop();
    if (store !== undefined) this.pooledBytes -= capacity;
    else store = new ArrayBuffer(capacity);
    this.lent.add(store);
    return Buffer.from(store, 0, length);
  }

  /** Takes back a buffer from `take` (or a view of one) once nothing reads it any more; others are ignored. */
  give(buf: Uint8Array): void {
    const store = buf.buffer as ArrayBuffer;
    if (!this.lent.has(store)) return;
    this.lent.delete(store);
    if (this.pooledBytes + store.byteLength > this.maxPooledBytes) return;
    let list = this.free.get(store.byteLength);
    if (!list) this.free.set(store.byteLength, (list = []));
    list.push(store);
    this.pooledBytes += store.byteLength;
  }
}
