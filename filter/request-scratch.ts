// Per-request working memory a worker VM reuses: a VM runs one callback at a time, so the request being
// decided borrows the facts and the prefix chain, and body scanners come from a small pool (a request
// allocates none of these).
import { RequestFacts } from "./scoring/plugin";
import { PrefixChain } from "./prefix";
import { BodyScanner, MAX_MODEL_BYTES } from "./body";

/** Prompt bytes a request reserves before its body arrives, and a pooled scanner may keep. */
export const PROMPT_RESERVE_MAX: i32 = 16384;
/** A rewritten body's buffer a VM keeps for the next one at most. */
const OUT_KEEP_MAX: i32 = 262144;

export class RequestScratch {
  /** The facts of the request being decided. */
  facts: RequestFacts = new RequestFacts();
  /** The prefix chain of the request being decided (and recorded after its pick). */
  chain: PrefixChain = new PrefixChain();
  private scanners: BodyScanner[] = [];
  /** Where a rewritten body is assembled (model rewrites: docs/FILTER.md), reused up to OUT_KEEP_MAX bytes. */
  private out: StaticArray<u8> = new StaticArray<u8>(0);

  private modelCopies: StaticArray<u8>[] = [];

  /** A buffer of MAX_MODEL_BYTES for a rewritten request's client model, held until the stream ends. */
  takeModelCopy(): StaticArray<u8> {
    return this.modelCopies.length > 0 ? this.modelCopies.pop() : new StaticArray<u8>(MAX_MODEL_BYTES);
  }

  giveBackModelCopy(b: StaticArray<u8>): void {
    if (this.modelCopies.length < 256) this.modelCopies.push(b);
  }

  /** A buffer of at least `n` bytes for a rewritten body: the VM's reused one, or a one-off when `n` is large. */
  outBuffer(n: i32): StaticArray<u8> {
    if (n > OUT_KEEP_MAX) return new StaticArray<u8>(n);
    if (this.out.length < n) this.out = new StaticArray<u8>(max(n, max(this.out.length * 2, 1024)));
    return this.out;
  }

  /** A body scanner from the pool (their buffers are reused). */
  takeScanner(kind: i32, cap: i32, expected: i32): BodyScanner {
    if (this.scanners.length == 0) return new BodyScanner(kind, cap, expected);
    const s = this.scanners.pop();
    s.reset(kind, cap, expected);
    return s;
  }

  /** Returns a scanner to the pool (a few, with small buffers: a rare huge prompt does not stay resident). */
  giveBack(s: BodyScanner): void {
    if (this.scanners.length < 64 && s.largestBuffer <= PROMPT_RESERVE_MAX) this.scanners.push(s);
  }
}
