// Finds `model` and the prompt in a JSON request body as it arrives, chunk by chunk, without buffering or
// decoding it: a resumable scanner over the top-level object that copies out only the `model` string and the
// first bytes of the values an engine's prompt is made of (raw JSON, which is what prefix hashing needs).
// Each byte is looked at once however the body is split. Malformed input ends the scan; it never traps.
//
// An engine renders tools, then the system prompt, then the conversation (the chat template), so the bytes
// hashed are those values in that order, whatever order the body's keys come in: `tools`, then `system`
// (Anthropic) or `instructions` (Responses API), then `messages`, `input` or `prompt` (docs/FILTER.md,
// "Request formats"). Each is copied to its own buffer as it comes and joined at the end of the scan.

/** Which top-level keys hold the prompt, from the request path. */
export const PROMPT_ANY: i32 = 0; // unknown path: tools; system or instructions; the first of messages, prompt, input
export const PROMPT_PROMPT: i32 = 1; // /v1/completions: prompt
export const PROMPT_MESSAGES: i32 = 2; // /v1/chat/completions: tools, messages
export const PROMPT_INPUT: i32 = 3; // /v1/embeddings: input
export const PROMPT_ANTHROPIC: i32 = 4; // /v1/messages: tools, system, messages
export const PROMPT_RESPONSES: i32 = 5; // /v1/responses: tools, instructions, input

/** Scan outcome. */
export const SCAN_NEED_MORE: i32 = 0; // inside the object: more body may tell more
export const SCAN_DONE: i32 = 1; // the whole top-level object was read
export const SCAN_INVALID: i32 = 2; // not a JSON object (or broken JSON): decide without the body

export const MAX_MODEL_BYTES: i32 = 256;

/** The prompt's parts, in the order they are hashed (the chat template's order). */
export const PART_TOOLS: i32 = 0;
export const PART_SYSTEM: i32 = 1;
export const PART_PROMPT: i32 = 2;
const PARTS: i32 = 3;

// Positions in the top-level object.
const AT_START: i32 = 0; // before '{'
const AT_MEMBER: i32 = 1; // after '{' or ',': a key (or '}' right after '{')
const IN_KEY: i32 = 2;
const AT_COLON: i32 = 3;
const AT_VALUE: i32 = 4; // before a member's value
const IN_VALUE: i32 = 5;
const AFTER_VALUE: i32 = 6; // ',' or '}'

const ROLE_OTHER: i32 = -2;
const ROLE_MODEL: i32 = -1;
// A role >= 0 is a part being copied (PART_*).

const KEY_CAP: i32 = 12; // longest key we look for: "instructions"

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
  if (endsWith(ptr, end, "/embeddings")) return PROMPT_INPUT;
  if (endsWith(ptr, end, "/responses")) return PROMPT_RESPONSES;
  if (endsWith(ptr, end, "/messages")) return PROMPT_ANTHROPIC;
  return PROMPT_ANY;
}

/** The parts a kind of request hashes, one bit per PART_*. */
function partsOf(kind: i32): i32 {
  if (kind == PROMPT_PROMPT || kind == PROMPT_INPUT) return 1 << PART_PROMPT;
  if (kind == PROMPT_MESSAGES) return (1 << PART_TOOLS) | (1 << PART_PROMPT);
  return (1 << PART_TOOLS) | (1 << PART_SYSTEM) | (1 << PART_PROMPT);
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
  /**
   * Once the scan is over (SCAN_DONE, after `finish()`): the bytes to hash, at most promptCap: the raw JSON
   * of tools, system and prompt parts, in that order, each as the body wrote it. Empty for a broken body.
   */
  prompt: StaticArray<u8> = new StaticArray<u8>(0);
  promptLen: i32 = 0;
  /** Some part of the prompt was found (valid when the scan is over). */
  promptSeen: bool = false;
  /** Every part found was read whole into `prompt` (nothing cut at promptCap or by the scan's end). */
  promptComplete: bool = false;

  private kind: i32 = PROMPT_ANY;
  private wanted: i32 = 0;
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
  // Each part's copy (raw JSON, at most what the joined prompt can use of it), its length, and whether its
  // value was found and read to its end.
  private toolsCopy: StaticArray<u8> = new StaticArray<u8>(0);
  private systemCopy: StaticArray<u8> = new StaticArray<u8>(0);
  private promptCopy: StaticArray<u8> = new StaticArray<u8>(0);
  private partLen: StaticArray<i32> = new StaticArray<i32>(PARTS);
  private seenMask: i32 = 0;
  private doneMask: i32 = 0;
  /** Where the parts are joined when more than one was found. */
  private joined: StaticArray<u8> = new StaticArray<u8>(0);
  private joinedYet: bool = false;
  private truncated: bool = false;
  /** Bytes of the part value being scanned (copied or not). */
  private valueLen: i32 = 0;

  /** `expectedPrompt`: bytes to reserve for the prompt copy up front (grown as needed, never past promptCap). */
  constructor(kind: i32, promptCap: i32, expectedPrompt: i32 = 256) {
    this.reset(kind, promptCap, expectedPrompt);
  }

  /** Makes the scanner new again for another body, keeping its buffers (scanners are pooled per VM). */
  reset(kind: i32, promptCap: i32, expectedPrompt: i32 = 256): void {
    this.kind = kind;
    this.wanted = partsOf(kind);
    this.promptCap = promptCap < 0 ? 0 : promptCap;
    const want = min(max(expectedPrompt, 0), this.promptCap);
    if (this.promptCopy.length < want) this.promptCopy = new StaticArray<u8>(want);
    this.state = SCAN_NEED_MORE;
    this.consumed = 0;
    this.modelLen = 0;
    this.hasModel = false;
    this.modelStart = -1;
    this.promptLen = 0;
    this.promptSeen = false;
    this.promptComplete = false;
    this.truncated = false;
    for (let i = 0; i < PARTS; i++) unchecked((this.partLen[i] = 0));
    this.seenMask = 0;
    this.doneMask = 0;
    this.joinedYet = false;
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

  /** The largest buffer this scanner holds (a pool keeps only scanners with small ones). */
  get largestBuffer(): i32 {
    return max(max(this.joined.length, this.promptCopy.length), max(this.toolsCopy.length, this.systemCopy.length));
  }

  private copyOf(i: i32): StaticArray<u8> {
    return i == PART_TOOLS ? this.toolsCopy : i == PART_SYSTEM ? this.systemCopy : this.promptCopy;
  }

  /** Bytes of part `i` (PART_*) copied so far. */
  partLength(i: i32): i32 {
    return i >= 0 && i < PARTS ? unchecked(this.partLen[i]) : 0;
  }

  /** Whether part `i`'s key was found. */
  partSeen(i: i32): bool {
    return (this.seenMask & (1 << i)) != 0;
  }

  /** True once model and enough prompt are known, or nothing more can be learnt. */
  get settled(): bool {
    if (this.state != SCAN_NEED_MORE) return true;
    return this.hasModel && this.partsSettled(-1);
  }

  /**
   * Whether the joined prompt is known (every part it starts with found and read, up to promptCap), taking
   * part `full` (or none: -1) as filled to the cap.
   */
  private partsSettled(full: i32): bool {
    let acc = 0;
    for (let i = 0; i < PARTS; i++) {
      if ((this.wanted & (1 << i)) == 0) continue;
      if (acc >= this.promptCap || i == full) return true;
      if ((this.seenMask & (1 << i)) == 0) return false;
      acc += unchecked(this.partLen[i]);
      if ((this.doneMask & (1 << i)) == 0 && acc < this.promptCap) return false;
    }
    return true;
  }

  /** Bytes part `i` may still take: the cap less what it and the parts hashed before it have taken. */
  private roomOf(i: i32): i32 {
    let before = 0;
    for (let j = 0; j < i; j++) before += unchecked(this.partLen[j]);
    return this.promptCap - before - unchecked(this.partLen[i]);
  }

  /**
   * Scans the next `len` bytes of the body at `ptr`: the bytes from offset `consumed`. Once settled it reads
   * nothing more (a caller that feeds on anyway gets no wrong answer from bytes it skipped).
   */
  feed(ptr: usize, len: i32): void {
    if (this.settled) return;
    let p = 0;
    while (p < len && this.state == SCAN_NEED_MORE) {
      if (this.at == IN_VALUE) {
        p = this.skipValue(ptr, len, p);
        if (this.hasModel && this.settled) break; // the rest of the body can tell nothing more
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
          this.invalid();
          break;
        }
        this.at = AT_MEMBER;
      } else if (this.at == AT_MEMBER) {
        if (c == 0x7d && this.first) {
          this.done();
          break;
        }
        if (c != 0x22) {
          this.invalid();
          break;
        }
        this.first = false;
        this.keyLen = 0;
        this.at = IN_KEY;
      } else if (this.at == AT_COLON) {
        if (c != 0x3a) {
          this.invalid();
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
        if (this.role >= 0) {
          this.valueLen = 1;
          this.appendPart(this.role, ptr + <usize>(p - 1), 1);
        } else if (this.role == ROLE_MODEL) this.modelStart = this.consumed + p;
        if (c == 0x22) this.inString = true;
        else this.depth = 1;
      } else {
        // AFTER_VALUE
        if (c == 0x7d) {
          this.done();
          break;
        }
        if (c != 0x2c) {
          this.invalid();
          break;
        }
        this.at = AT_MEMBER;
      }
    }
    this.consumed += p;
  }

  /** Marks the scan finished by the end of the body (or the byte limit): whatever is open stays unknown. */
  finish(): void {
    if (this.state != SCAN_NEED_MORE) return;
    if (this.at == AT_START) this.invalid();
    else this.done();
  }

  /** The whole body was fed and the JSON object is still open: a truncated body, no prompt. */
  bodyEnded(): void {
    if (this.state == SCAN_NEED_MORE) this.invalid();
  }

  private done(): void {
    this.state = SCAN_DONE;
    this.join();
  }

  /** A broken body: no prompt (the request is picked by load), whatever was copied before the fault. */
  private invalid(): void {
    this.state = SCAN_INVALID;
    this.promptLen = 0;
    this.promptSeen = false;
    this.promptComplete = false;
  }

  /**
   * The parts in hashing order, into `prompt`, at most promptCap bytes (an empty tools or system value took
   * no room: endValue). A lone part is used where it is (no copy).
   */
  private join(): void {
    if (this.joinedYet) return;
    this.joinedYet = true;
    this.promptSeen = this.seenMask != 0;
    this.promptComplete = this.promptSeen && !this.truncated && (this.seenMask & ~this.doneMask) == 0;
    let count = 0,
      total = 0,
      only = -1;
    for (let i = 0; i < PARTS; i++) {
      const n = unchecked(this.partLen[i]);
      if (n == 0) continue;
      count++;
      total += n;
      only = i;
    }
    if (count == 0) {
      this.promptLen = 0;
      return;
    }
    if (total > this.promptCap) this.promptComplete = false;
    total = min(total, this.promptCap);
    if (count == 1) {
      this.prompt = this.copyOf(only);
      this.promptLen = total;
      return;
    }
    if (this.joined.length < total) this.joined = new StaticArray<u8>(total);
    let at = 0;
    for (let i = 0; i < PARTS && at < total; i++) {
      const n = unchecked(this.partLen[i]);
      if (n == 0) continue;
      const take = min(n, total - at);
      memory.copy(changetype<usize>(this.joined) + <usize>at, changetype<usize>(this.copyOf(i)), <usize>take);
      at += take;
    }
    this.prompt = this.joined;
    this.promptLen = at;
  }

  private keyIs(name: string): bool {
    if (this.keyLen != name.length) return false;
    for (let i = 0; i < this.keyLen; i++) {
      if (<i32>unchecked(this.key[i]) != name.charCodeAt(i)) return false;
    }
    return true;
  }

  /** The part the current key holds for this kind of request, or -1. */
  private partOfKey(): i32 {
    const k = this.kind;
    if (k == PROMPT_PROMPT) return this.keyIs("prompt") ? PART_PROMPT : -1;
    if (k == PROMPT_INPUT) return this.keyIs("input") ? PART_PROMPT : -1;
    if (this.keyIs("tools")) return PART_TOOLS;
    if (k == PROMPT_MESSAGES) return this.keyIs("messages") ? PART_PROMPT : -1;
    if (k == PROMPT_ANTHROPIC) return this.keyIs("system") ? PART_SYSTEM : this.keyIs("messages") ? PART_PROMPT : -1;
    if (k == PROMPT_RESPONSES) return this.keyIs("instructions") ? PART_SYSTEM : this.keyIs("input") ? PART_PROMPT : -1;
    if (this.keyIs("system") || this.keyIs("instructions")) return PART_SYSTEM;
    return this.keyIs("messages") || this.keyIs("prompt") || this.keyIs("input") ? PART_PROMPT : -1;
  }

  private startValue(c: u32): void {
    this.role = ROLE_OTHER;
    this.literal = c != 0x22 && c != 0x7b && c != 0x5b;
    if (!this.hasModel && !this.modelOk && this.keyIs("model")) {
      this.role = ROLE_MODEL;
      this.modelOk = c == 0x22;
      this.modelLen = 0;
    } else if (this.keyLen <= KEY_CAP) {
      const part = this.partOfKey();
      // The first value of each part counts; a literal one (null, a number) is an empty part.
      if (part >= 0 && (this.seenMask & (1 << part)) == 0) {
        this.seenMask |= 1 << part;
        unchecked((this.partLen[part] = 0));
        if (this.literal) this.doneMask |= 1 << part;
        else this.role = part;
      }
    }
    this.depth = 0;
    this.inString = false;
    this.escape = false;
    if (this.literal && !isLiteralByte(c)) {
      this.invalid();
      return;
    }
    this.at = IN_VALUE;
  }

  /** Appends up to `n` bytes at `src` to part `i`'s copy, within the room the joined prompt leaves it. */
  private appendPart(i: i32, src: usize, n: i32): void {
    const take = min(n, this.roomOf(i));
    if (take < n) this.truncated = true;
    if (take <= 0) return;
    const len = unchecked(this.partLen[i]);
    const need = len + take;
    let buf = this.copyOf(i);
    if (need > buf.length) {
      let cap = max(buf.length * 2, 256);
      while (cap < need) cap *= 2;
      if (cap > this.promptCap) cap = this.promptCap;
      const grown = new StaticArray<u8>(cap);
      memory.copy(changetype<usize>(grown), changetype<usize>(buf), <usize>len);
      if (i == PART_TOOLS) this.toolsCopy = grown;
      else if (i == PART_SYSTEM) this.systemCopy = grown;
      else this.promptCopy = grown;
      buf = grown;
    }
    memory.copy(changetype<usize>(buf) + <usize>len, src, <usize>take);
    unchecked((this.partLen[i] = need));
  }

  private endValue(): void {
    if (this.role == ROLE_MODEL && this.modelOk && this.modelLen > 0) this.hasModel = true;
    if (this.role == ROLE_MODEL) this.modelOk = false;
    if (this.role >= 0) {
      this.doneMask |= 1 << this.role;
      // An empty tools list or system prompt (`[]`, `""`, `{}`) is the same as none: it takes no room.
      if (this.role != PART_PROMPT && this.valueLen <= 2) unchecked((this.partLen[this.role] = 0));
    }
    this.role = ROLE_OTHER;
    this.at = AFTER_VALUE;
  }

  /**
   * Skips value bytes from `p0`; returns where it stopped (the value's end, `len`, or, when the model is
   * known and this part's copy filling up settles the scan, where it is full). The state lives in locals
   * inside the loop, and the bytes the value's role wants are copied once per call, not per byte. String
   * contents (nearly all of a prompt) go 16 bytes at a time (`stringRun`).
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
          this.invalid();
          return p;
        }
        p++;
      }
      escaped = true;
    } else {
      let inString = this.inString,
        escape = this.escape,
        depth = this.depth;
      let end = len;
      if (this.role >= 0 && this.hasModel && this.partsSettled(this.role)) {
        end = min(len, p0 + max(this.roomOf(this.role), 0));
      }
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
    if (this.role >= 0) {
      this.valueLen += n;
      this.appendPart(this.role, ptr + <usize>p0, n);
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
