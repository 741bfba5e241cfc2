// Session affinity's table: session id (its 64-bit hash) -> the endpoint (address hash) that served the
// session last, per worker VM, bounded, least recently used out first, unused bindings ignored after the
// session-affinity-scorer's evictionTtlSeconds. The worker VMs share their bindings as the prefix index
// does: each VM publishes the bindings it made during the last two ticks under its own shared-data key
// (filter/session-exchange.ts), and every VM applies the others' on its tick, so a session whose requests
// arrive on several connections (several workers) keeps one pod. No request writes shared data. Pure: the
// specs drive it directly.
//
// A binding is one u64: the endpoint's address hash in the high 32 bits, when it was made or last used in the
// low 32 (proxy ms / 16, compared with wrap-around), so the newer binding of two VMs wins everywhere (ties:
// the higher hash) and the VMs agree after a tick. Journal: u32 magic, u32 records, records of u64 session
// hash, u64 binding.

const MAGIC: u32 = 0x31535045; // "EPS1"
const HEADER_BYTES: i32 = 8;
const RECORD_BYTES: i32 = 16;
/** Bindings a VM publishes per tick at most (64 KiB): beyond it, other VMs miss them (only affinity is lost). */
const MAX_RECORDS_PER_TICK: i32 = 4096;
/** Stamps count 16 ms: wrap-around comparisons hold over 397 days, so a TTL is capped below that. */
const STAMP_SHIFT: u64 = 4;
export const MAX_TTL_MS: u64 = 25_920_000_000; // 300 days

// @ts-ignore: decorator
@inline function stampOf(nowMs: u64): u32 {
  return <u32>(nowMs >> STAMP_SHIFT);
}

/** Whether binding `a` is newer than binding `b` (then `a` replaces `b`). */
function newer(a: u64, b: u64): bool {
  const d = <i32>(<u32>a - <u32>b);
  if (d != 0) return d > 0;
  return a >> 32 > b >> 32;
}

export class SessionTable {
  /** Bindings per generation: the table holds between one and two generations' worth. */
  readonly capacity: i32;
  private current: Map<u64, u64> = new Map();
  private previous: Map<u64, u64> = new Map();
  private pending: u64[] = [];
  private lastTick: u64[] = [];
  private publishedEmpty: bool = true;

  constructor(capacity: i32 = 8192) {
    this.capacity = max(capacity, 1);
  }

  get size(): i32 {
    return this.current.size + this.previous.size;
  }

  /** The endpoint (address hash) session `key` is bound to, or 0: none, or unused for longer than `ttlMs`. */
  lookup(key: u64, nowMs: u64, ttlMs: u64): u32 {
    const b = this.raw(key);
    if (b == 0) return 0;
    // A rebinding may stamp a little ahead of the clock (bind): a negative age is no age.
    const d = <i32>(stampOf(nowMs) - <u32>b);
    const age = d > 0 ? (<u64>d) << STAMP_SHIFT : 0;
    if (age > min(ttlMs, MAX_TTL_MS)) return 0;
    return <u32>(b >> 32);
  }

  /** Binds session `key` to endpoint `ep` now (a new binding or a refresh), and notes it for the other VMs. */
  bind(key: u64, ep: u32, nowMs: u64): void {
    if (key == 0 || ep == 0) return;
    // A new pod for the session is newer than the binding it replaces, even within one stamp (16 ms), so
    // that VMs that learnt the old binding take the new one rather than breaking the tie by hash.
    let stamp = stampOf(nowMs);
    const old = this.raw(key);
    if (old != 0 && <i32>(stamp - <u32>old) <= 0) stamp = <u32>(old >> 32) == ep ? <u32>old : <u32>old + 1;
    const b = ((<u64>ep) << 32) | (<u64>stamp);
    this.put(key, b);
    if (this.pending.length < MAX_RECORDS_PER_TICK * 2) {
      this.pending.push(key);
      this.pending.push(b);
    }
  }

  /**
   * This VM's journal for the other VMs: the bindings of this tick and the last one (a reader whose tick ran
   * late still sees them); an empty journal once, when it goes idle; null when there is nothing new.
   */
  publish(): ArrayBuffer | null {
    const pending = this.pending,
      last = this.lastTick;
    if (pending.length == 0 && last.length == 0) {
      if (this.publishedEmpty) return null;
      this.publishedEmpty = true;
      return journal(pending, last);
    }
    const out = journal(last, pending);
    last.length = 0;
    this.lastTick = pending;
    this.pending = last;
    this.publishedEmpty = false;
    return out;
  }

  /** Applies another VM's journal: each binding newer than this VM's replaces it. Bad bytes are ignored. */
  apply(j: ArrayBuffer | null): void {
    if (j == null || j.byteLength < HEADER_BYTES) return;
    const p = changetype<usize>(j);
    if (load<u32>(p) != MAGIC) return;
    const n = <i32>load<u32>(p + 4);
    if (n < 0 || n > (j.byteLength - HEADER_BYTES) / RECORD_BYTES) return;
    for (let r = 0; r < n; r++) {
      const at = p + <usize>(HEADER_BYTES + r * RECORD_BYTES);
      const key = load<u64>(at);
      const b = load<u64>(at + 8);
      if (key == 0 || b >> 32 == 0) continue;
      const mine = this.raw(key);
      if (mine == 0 || newer(b, mine)) this.put(key, b);
    }
  }

  /** The binding of `key` in either generation (0: none). */
  private raw(key: u64): u64 {
    if (this.current.has(key)) return this.current.get(key);
    if (this.previous.has(key)) return this.previous.get(key);
    return 0;
  }

  private put(key: u64, b: u64): void {
    if (!this.current.has(key) && this.current.size >= this.capacity) {
      // The current generation is full: the older one goes (least recently used out first).
      const old = this.previous;
      old.clear();
      this.previous = this.current;
      this.current = old;
    }
    this.current.set(key, b);
  }
}

function journal(a: u64[], b: u64[]): ArrayBuffer {
  const records = (a.length + b.length) >> 1;
  const out = new ArrayBuffer(HEADER_BYTES + records * RECORD_BYTES);
  const p = changetype<usize>(out);
  store<u32>(p, MAGIC);
  store<u32>(p + 4, <u32>records);
  let at = p + <usize>HEADER_BYTES;
  for (let k = 0; k < a.length; k++, at += 8) store<u64>(at, unchecked(a[k]));
  for (let k = 0; k < b.length; k++, at += 8) store<u64>(at, unchecked(b[k]));
  return out;
}
