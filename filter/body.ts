// Finds `model` and the prompt in an OpenAI-style JSON request body as it arrives, chunk by chunk, without
// buffering or decoding it: a resumable scanner over the top-level object that copies out only the `model`
// string and the first `promptCap` bytes of the prompt value (raw JSON, which is what prefix hashing needs).
// Each byte is looked at once however the body is split. Malformed input ends the scan; it never traps.

/** Which top-level key holds the prompt, from the request path. */
export const PROMPT_ANY: i32 = 0; // unknown path: the first of messages, prompt, input
export const PROMPT_PROMPT: i32 = 1; // /v1/completions
export const PROMPT_MESSAGES: i32 = 2; // /v1/chat/completions
export const PROMPT_INPUT: i32 = 3; // /v1/embeddings, /v1/responses

/** Scan outcome. */
export const SCAN_NEED_MORE: i32 = 0; // inside the object: more body may tell more
export const SCAN_DONE: i32 = 1; // the whole top-level object was read
export const SCAN_INVALID: i32 = 2; // not a JSON object (or broken JSON): decide without the body

export const MAX_MODEL_BYTES: i32 = 256;

// Positions in the top-level object.
const AT_START: i32 = 0; // before '{'
const AT_MEMBER: i32 = 1; // after '{' or ',': a key (or '}' right after '{')
const IN_KEY: i32 = 2;
const AT_COLON: i32 = 3;
const AT_VALUE: i32 = 4; // before a member's value
const IN_VALUE: i32 = 5;
const AFTER_VALUE: i32 = 6; // ',' or '}'

const ROLE_OTHER: i32 = 0;
const ROLE_MODEL: i32 = 1;
const ROLE_PROMPT: i32 = 2;

const KEY_CAP: i32 = 8; // longest key we look for: "messages"

@inline function isWs(c: u32): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
}

/** Classifies a `:path` value (query ignored) by its suffix, so prefixed routes (/openai/v1/...) work too. */
export function promptKindForPath(ptr: usize, len: i32): i32 {
  let end = 0;
  while (end < len && load<u8>(ptr + <usize>end) != 0x3f /* ? */) end++;
  while (end > 1 && load<u8>(ptr + <usize>(end - 1)) == 0x2f /* trailing / */) end--;
  if (endsWith(ptr, end, "/chat/completions")) return PROMPT_MESSAGES;
  if (endsWith(ptr, end, "/completions")) return PROMPT_PROMPT;
  if (endsWith(ptr, end, "/embeddings") || endsWith(ptr, end, "/responses")) return PROMPT_INPUT;
  return PROMPT_ANY;
}

function endsWith(ptr: usize, len: i32, suffix: string): bool {
  const n = suffix.length;
  if (len < n) return false;
  for (let i = 0; i < n; i++) {
    if (<i32>load<u8>(ptr + <usize>(len - n + i)) != suffix.charCodeAt(i)) return false;
  }
  return true;
}

export class BodyScanner {
  state: i32 = SCAN_NEED_MORE;
  /** Body bytes consumed so far. */
  consumed: i32 = 0;
  /** The `model` string's bytes (unescaped JSON only; a model with escapes or over 256 bytes counts as absent). */
  model: StaticArray<u8> = new StaticArray<u8>(MAX_MODEL_BYTES);
  modelLen: i32 = 0;
  hasModel: bool = false;
  /** Body offset of the `model` string's first byte (after its opening quote), valid when hasModel. */
  modelStart: i32 = -1;
  /** The prompt value's first bytes, raw JSON (quotes and brackets included). */
  prompt: StaticArray<u8> = new StaticArray<u8>(0);
  promptLen: i32 = 0;
  promptSeen: bool = false;
  promptComplete: bool = false;

  private kind: i32 = PROMPT_ANY;
  private promptCap: i32 = 0;
  private at: i32 = AT_START;
  private first: bool = true;
  private key: StaticArray<u8> = new StaticArray<u8>(KEY_CAP);
  private keyLen: i32 = 0; // KEY_CAP + 1: longer than any key we look for
  private keyEscape: bool = false;
  private role: i32 = ROLE_OTHER;
  // Skipping a value: a string (inString at depth 0), a container (depth > 0) or a bare literal.
  private depth: i32 = 0;
  private inString: bool = false;
  private escape: bool = false;
  private literal: bool = false;
  private modelOk: bool = false;

  /** `expectedPrompt`: bytes to reserve for the prompt copy up front (grown as needed, never past promptCap). */
  constructor(kind: i32, promptCap: i32, expectedPrompt: i32 = 256) {
    this.reset(kind, promptCap, expectedPrompt);
  }

  /** Makes the scanner new again for another body, keeping its buffers (scanners are pooled per VM). */
  reset(kind: i32, promptCap: i32, expectedPrompt: i32 = 256): void {
    this.kind = kind;
    this.promptCap = promptCap < 0 ? 0 : promptCap;
    const want = min(max(expectedPrompt, 0), this.promptCap);
    if (this.prompt.length < want) this.prompt = new StaticArray<u8>(want);
    this.state = SCAN_NEED_MORE;
    this.consumed = 0;
    this.modelLen = 0;
    this.hasModel = false;
    this.modelStart = -1;
    this.promptLen = 0;
    this.promptSeen = false;
    this.promptComplete = false;
    this.at = AT_START;
    this.first = true;
    this.keyLen = 0;
    this.keyEscape = false;
    this.role = ROLE_OTHER;
    this.depth = 0;
    this.inString = false;
    this.escape = false;
    this.literal = false;
    this.modelOk = false;
  }

  /** True once model and enough prompt are known, or nothing more can be learnt. */
  get settled(): bool {
    if (this.state != SCAN_NEED_MORE) return true;
    return this.hasModel && this.promptSeen && (this.promptComplete || this.promptLen >= this.promptCap);
  }

  /** Scans the next `len` bytes of the body at `ptr`. */
  feed(ptr: usize, len: i32): void {
    let p = 0;
    while (p < len && this.state == SCAN_NEED_MORE) {
      if (this.at == IN_VALUE) {
        p = this.skipValue(ptr, len, p);
        if (this.role == ROLE_PROMPT && this.settled) break; // the rest of the body can tell nothing more
        continue;
      }
      const c = <u32>load<u8>(ptr + <usize>p);
      if (this.at == IN_KEY) {
        p++;
        if (this.keyEscape) {
          this.keyEscape = false;
          this.keyLen = KEY_CAP + 1;
          continue;
        }
        if (c == 0x5c) {
          this.keyEscape = true;
          continue;
        }
        if (c == 0x22) {
          this.at = AT_COLON;
          continue;
        }
        if (this.keyLen < KEY_CAP) unchecked((this.key[this.keyLen] = <u8>c));
        if (this.keyLen <= KEY_CAP) this.keyLen++;
        continue;
      }
      p++;
      if (isWs(c)) continue;
      if (this.at == AT_START) {
        if (c != 0x7b) {
          this.state = SCAN_INVALID;
          break;
        }
        this.at = AT_MEMBER;
      } else if (this.at == AT_MEMBER) {
        if (c == 0x7d && this.first) {
          this.state = SCAN_DONE;
          break;
        }
        if (c != 0x22) {
          this.state = SCAN_INVALID;
          break;
        }
        this.first = false;
        this.keyLen = 0;
        this.at = IN_KEY;
      } else if (this.at == AT_COLON) {
        if (c != 0x3a) {
          this.state = SCAN_INVALID;
          break;
        }
        this.at = AT_VALUE;
      } else if (this.at == AT_VALUE) {
        this.startValue(c);
        if (this.state != SCAN_NEED_MORE) break;
        if (this.literal) {
          p--;
          continue;
        } // the literal's first byte is scanned with the rest of it
        if (this.role == ROLE_PROMPT) this.appendPrompt(ptr + <usize>(p - 1), 1);
        else if (this.role == ROLE_MODEL) this.modelStart = this.consumed + p;
        if (c == 0x22) this.inString = true;
        else this.depth = 1;
      } else {
        // AFTER_VALUE
        if (c == 0x7d) {
          this.state = SCAN_DONE;
          break;
        }
        if (c != 0x2c) {
          this.state = SCAN_INVALID;
          break;
        }
        this.at = AT_MEMBER;
      }
    }
    this.consumed += p;
  }

  /** Marks the scan finished by the end of the body (or the byte limit): whatever is open stays unknown. */
  finish(): void {
    if (this.state == SCAN_NEED_MORE) this.state = this.at == AT_START ? SCAN_INVALID : SCAN_DONE;
  }

  private keyIs(name: string): bool {
    if (this.keyLen != name.length) return false;
    for (let i = 0; i < this.keyLen; i++) {
      if (<i32>unchecked(this.key[i]) != name.charCodeAt(i)) return false;
    }
    return true;
  }

  private isPromptKey(): bool {
    const k = this.kind;
    if (k == PROMPT_PROMPT) return this.keyIs("prompt");
    if (k == PROMPT_MESSAGES) return this.keyIs("messages");
    if (k == PROMPT_INPUT) return this.keyIs("input");
    return this.keyIs("messages") || this.keyIs("prompt") || this.keyIs("input");
  }

  private startValue(c: u32): void {
    this.role = ROLE_OTHER;
    if (!this.hasModel && !this.modelOk && this.keyIs("model")) {
      this.role = ROLE_MODEL;
      this.modelOk = c == 0x22;
      this.modelLen = 0;
    } else if (!this.promptSeen && this.isPromptKey()) {
      this.role = ROLE_PROMPT;
      this.promptSeen = true;
      this.promptLen = 0;
    }
    this.depth = 0;
    this.inString = false;
    this.escape = false;
    this.literal = c != 0x22 && c != 0x7b && c != 0x5b;
    if (this.literal && !isLiteralByte(c)) {
      this.state = SCAN_INVALID;
      return;
    }
    this.at = IN_VALUE;
  }

  /** Appends up to `n` bytes at `src` to the prompt copy, within promptCap. */
  private appendPrompt(src: usize, n: i32): void {
    const take = min(n, this.promptCap - this.promptLen);
    if (take <= 0) return;
    const need = this.promptLen + take;
    if (need > this.prompt.length) {
      let cap = max(this.prompt.length * 2, 256);
      while (cap < need) cap *= 2;
      if (cap > this.promptCap) cap = this.promptCap;
      const grown = new StaticArray<u8>(cap);
      memory.copy(changetype<usize>(grown), changetype<usize>(this.prompt), <usize>this.promptLen);
      this.prompt = grown;
    }
    memory.copy(changetype<usize>(this.prompt) + <usize>this.promptLen, src, <usize>take);
    this.promptLen = need;
  }

  private endValue(): void {
    if (this.role == ROLE_MODEL && this.modelOk && this.modelLen > 0) this.hasModel = true;
    if (this.role == ROLE_MODEL) this.modelOk = false;
    if (this.role == ROLE_PROMPT) this.promptComplete = true;
    this.role = ROLE_OTHER;
    this.at = AFTER_VALUE;
  }

  /**
   * Skips value bytes from `p0`; returns where it stopped (the value's end, `len`, or, once the model is
   * known, where the prompt copy is full). The state lives in locals inside the loop, and the bytes the
   * value's role wants are copied once per call, not per byte. String contents (nearly all of a prompt) go
   * 16 bytes at a time (`stringRun`).
   */
  private skipValue(ptr: usize, len: i32, p0: i32): i32 {
    let p = p0;
    let ended = false;
    let escaped = false; // the string value held an escape (a model with escapes counts as absent)
    if (this.literal) {
      while (p < len) {
        const c = <u32>load<u8>(ptr + <usize>p);
        if (c == 0x2c || c == 0x7d || isWs(c)) {
          ended = true;
          break;
        }
        if (!isLiteralByte(c)) {
          this.state = SCAN_INVALID;
          return p;
        }
        p++;
      }
      escaped = true;
    } else {
      let inString = this.inString,
        escape = this.escape,
        depth = this.depth;
      const end = this.role == ROLE_PROMPT && this.hasModel ? min(len, p0 + this.promptCap - this.promptLen) : len;
      while (p < end) {
        if (inString && !escape) p = stringRun(ptr, p, end);
        if (p >= end) break;
        const c = <u32>load<u8>(ptr + <usize>p);
        p++;
        if (inString) {
          if (escape) escape = false;
          else if (c == 0x5c) {
            escape = true;
            escaped = true;
          } else if (c == 0x22) {
            inString = false;
            if (depth == 0) {
              ended = true;
              break;
            }
          }
        } else if (c == 0x22) {
          inString = true;
        } else if (c == 0x7b || c == 0x5b) {
          depth++;
        } else if (c == 0x7d || c == 0x5d) {
          if (--depth == 0) {
            ended = true;
            break;
          }
        }
      }
      this.inString = inString;
      this.escape = escape;
      this.depth = depth;
    }
    const n = p - p0;
    if (this.role == ROLE_PROMPT) {
      this.appendPrompt(ptr + <usize>p0, n);
    } else if (this.role == ROLE_MODEL && this.modelOk) {
      const body = ended ? n - 1 : n; // not the closing quote
      if (escaped || this.modelLen + body > MAX_MODEL_BYTES) this.modelOk = false;
      else {
        memory.copy(changetype<usize>(this.model) + <usize>this.modelLen, ptr + <usize>p0, <usize>body);
        this.modelLen += body;
      }
    }
    if (ended) this.endValue();
    return p;
  }
}

@inline function isLiteralByte(c: u32): bool {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2b || c == 0x2e || c == 0x45;
}

// Eight bytes at a time (SWAR): `(v - ONES) & ~v & HIGHS` is non-zero when a byte of v is zero, and its
// lowest set bit marks the first zero byte (a borrow can flag only bytes above a zero byte). A byte equal to
// `"` or `\` is a zero byte of x ^ QUOTES or x ^ BACKSLASHES. Plain wasm (no SIMD), for every runtime.
const ONES: u64 = 0x0101010101010101;
const HIGHS: u64 = 0x8080808080808080;
const QUOTES: u64 = 0x2222222222222222;
const BACKSLASHES: u64 = 0x5c5c5c5c5c5c5c5c;

@inline function quoteOrBackslash(x: u64): u64 {
  const q = x ^ QUOTES,
    b = x ^ BACKSLASHES;
  return (((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
}

/**
 * Skips string bytes from `p` that are neither `"` nor `\` (inside a JSON string nothing else matters), 16
 * then 8 at a time: returns the position of the first quote or backslash, or where fewer than 8 bytes are
 * left (the caller goes on byte by byte).
 */
@inline function stringRun(ptr: usize, p: i32, len: i32): i32 {
  while (p <= len - 16) {
    const hx = quoteOrBackslash(load<u64>(ptr + <usize>p));
    const hy = quoteOrBackslash(load<u64>(ptr + <usize>p, 8));
    if ((hx | hy) != 0) return hx != 0 ? p + <i32>(ctz(hx) >> 3) : p + 8 + <i32>(ctz(hy) >> 3);
    p += 16;
  }
  if (p <= len - 8) {
    const h = quoteOrBackslash(load<u64>(ptr + <usize>p));
    return h != 0 ? p + <i32>(ctz(h) >> 3) : p + 8;
  }
  return p;
}
