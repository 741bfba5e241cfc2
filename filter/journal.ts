// How worker VMs share their prefix records: each VM notes the chains it sent during a tick and publishes
// them, with the previous tick's (so a reader whose tick ran late still sees them), under its own
// shared-data key; every VM applies the other VMs' new records to its own index on its tick. No request
// writes shared data for prefix affinity; another VM's picks reach this VM's index within a tick or two.
//
// Journal value: u32 magic, u32 records, then per record u32 seq, u32 endpoint hash, u32 blocks n,
// u32 c = storedCount(n), c x u32 level hashes.
import { PrefixChain, PrefixIndex, storedCount } from "./prefix";
import { encode } from "./host";

/** The shared-data key of the journal of VM `vm` (PEERS_VM: the other gateways' chains). */
export function journalKey(vm: u32): ArrayBuffer {
  return encode("endpoint-picker.prefix." + vm.toString());
}

/** Takes the records a reader applies from another VM's journal (the gateway reporter's outbox). */
export abstract class RecordSink {
  abstract noteRecord(ep: u32, n: u32, c: i32, levels: usize): void;
}

const MAGIC: u32 = 0x314a5045; // "EPJ1"
/** Words of records per tick at most (256 KiB): a tick beyond it drops records (only affinity is lost). */
const MAX_WORDS: i32 = 65536;

export class JournalWriter {
  /** Words of records per tick at most (the other gateways' journal takes a whole answer: larger). */
  constructor(private maxWords: i32 = MAX_WORDS) {}

  private pending: Array<u32> = new Array<u32>();
  private previous: Array<u32> = new Array<u32>();
  private seq: u32 = 1;

  /** Notes that endpoint `ep` was sent `chain` during the current tick. */
  note(chain: PrefixChain, ep: u32): void {
    const c = storedCount(chain.count);
    if (c == 0 || this.pending.length + 4 + c > this.maxWords) return;
    this.pending.push(this.seq);
    this.pending.push(ep);
    this.pending.push(<u32>chain.count);
    this.pending.push(<u32>c);
    for (let j = 0; j < c; j++) this.pending.push(chain.levelHash(j, c));
  }

  /** Notes a record as another source gave it: endpoint `ep`, `n` blocks, `c` level hashes at `levels`. */
  noteRecord(ep: u32, n: u32, c: i32, levels: usize): void {
    if (c <= 0 || this.pending.length + 4 + c > this.maxWords) return;
    this.pending.push(this.seq);
    this.pending.push(ep);
    this.pending.push(n);
    this.pending.push(<u32>c);
    for (let j = 0; j < c; j++) this.pending.push(load<u32>(levels + <usize>(4 * j)));
  }

  /**
   * Continues the sequence of `journal` (another writer's, under the same key), so readers, which skip
   * records at or below the newest they applied, take this writer's: after its records' seqs, or after the
   * seq an empty journal carries.
   */
  continueAfter(journal: ArrayBuffer | null): void {
    if (journal == null || journal.byteLength < 8 || load<u32>(changetype<usize>(journal)) != MAGIC) return;
    const p = changetype<usize>(journal);
    const len = journal.byteLength;
    const records = <i32>load<u32>(p, 4);
    if (records == 0 && len >= 12) {
      const seq = load<u32>(p, 8);
      if (seq >= this.seq) this.seq = seq + 1;
      return;
    }
    let at = 8;
    for (let r = 0; r < records && at <= len - 16; r++) {
      const seq = load<u32>(p + <usize>at);
      if (seq >= this.seq) this.seq = seq + 1;
      const c = <i32>load<u32>(p + <usize>at, 12);
      if (c < 0 || c > (len - at - 16) / 4) break;
      at += 16 + 4 * c;
    }
  }

  /** The last journal published held records (readers still copy it every tick until it is emptied). */
  private holding: bool = false;

  /**
   * The journal to publish at this tick, or null when there is nothing new since the last one. Once idle,
   * an empty journal is published one time, so the other VMs stop copying the last one on every tick.
   */
  publish(): ArrayBuffer | null {
    if (this.pending.length == 0 && this.previous.length == 0) {
      if (!this.holding) return null;
      this.holding = false;
      // No records; the seq reached, for a writer that takes over this key (continueAfter).
      const empty = new ArrayBuffer(12);
      store<u32>(changetype<usize>(empty), MAGIC);
      store<u32>(changetype<usize>(empty), this.seq, 8);
      return empty;
    }
    this.holding = true;
    const words = this.previous.length + this.pending.length;
    const out = new ArrayBuffer(8 + 4 * words);
    const p = changetype<usize>(out);
    store<u32>(p, MAGIC);
    store<u32>(p, <u32>(countRecords(this.previous) + countRecords(this.pending)), 4);
    let w = p + 8;
    for (let k = 0; k < this.previous.length; k++, w += 4) store<u32>(w, unchecked(this.previous[k]));
    for (let k = 0; k < this.pending.length; k++, w += 4) store<u32>(w, unchecked(this.pending[k]));
    const spent = this.previous;
    this.previous = this.pending;
    spent.length = 0;
    this.pending = spent;
    this.seq++;
    return out;
  }
}

function countRecords(words: Array<u32>): i32 {
  let n = 0;
  for (let k = 0; k + 4 <= words.length; k += 4 + <i32>unchecked(words[k + 3])) n++;
  return n;
}

export class JournalReader {
  /** Newest seq applied, per VM. */
  private applied: Map<u32, u32> = new Map();

  /**
   * Applies the records of `vm`'s journal it has not applied yet, and hands each to `sink` when given;
   * ignores a malformed journal from the bad byte on.
   */
  apply(vm: u32, journal: ArrayBuffer, index: PrefixIndex, sink: RecordSink | null = null): i32 {
    const len = journal.byteLength;
    if (len < 8) return 0;
    const p = changetype<usize>(journal);
    if (load<u32>(p) != MAGIC) return 0;
    const records = <i32>load<u32>(p, 4);
    const last = this.applied.has(vm) ? this.applied.get(vm) : 0;
    let newest = last;
    let at = 8,
      done = 0;
    for (let r = 0; r < records; r++) {
      if (at > len - 16) break;
      const seq = load<u32>(p + <usize>at);
      const ep = load<u32>(p + <usize>at, 4);
      const n = <i32>load<u32>(p + <usize>at, 8);
      const c = <i32>load<u32>(p + <usize>at, 12);
      if (n <= 0 || n > 65535 || c != storedCount(n) || at + 16 + 4 * c > len) break;
      if (seq > last) {
        for (let j = 0; j < c; j++) index.insert(load<u32>(p + <usize>(at + 16 + 4 * j)), ep);
        if (sink != null) sink.noteRecord(ep, <u32>n, c, p + <usize>(at + 16));
        if (seq > newest) newest = seq;
        done++;
      }
      at += 16 + 4 * c;
    }
    this.applied.set(vm, newest);
    return done;
  }
}
