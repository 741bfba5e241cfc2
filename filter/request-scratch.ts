// Per-request working memory a worker VM reuses: a VM runs one callback at a time, so the request being
// decided borrows the facts and the prefix chain, and body scanners come from a small pool (a request
// allocates none of these).
import { RequestFacts } from "./scoring/plugin";
import { PrefixChain } from "./prefix";
import { BodyScanner } from "./body";

/** Prompt bytes a request reserves before its body arrives, and a pooled scanner may keep. */
export const PROMPT_RESERVE_MAX: i32 = 16384;

export class RequestScratch {
  /** The facts of the request being decided. */
  facts: RequestFacts = new RequestFacts();
  /** The prefix chain of the request being decided (and recorded after its pick). */
  chain: PrefixChain = new PrefixChain();
  private scanners: BodyScanner[] = [];

  /** A body scanner from the pool (their buffers are reused). */
  takeScanner(kind: i32, cap: i32, expected: i32): BodyScanner {
    if (this.scanners.length == 0) return new BodyScanner(kind, cap, expected);
    const s = this.scanners.pop();
    s.reset(kind, cap, expected);
    return s;
  }

  /** Returns a scanner to the pool (a few, with small buffers: a rare huge prompt does not stay resident). */
  giveBack(s: BodyScanner): void {
    if (this.scanners.length < 64 && s.prompt.length <= PROMPT_RESERVE_MAX) this.scanners.push(s);
  }
}
