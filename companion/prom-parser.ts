// Fast reader for Prometheus text (0.0.4) and OpenMetrics pages that extracts only the sample lines of the
// families an engine's specs name. It walks the page as bytes: at each line start it compares the bytes
// against the wanted names (dispatched on the first byte) and otherwise jumps to the next newline without
// decoding anything. Only wanted lines are parsed (labels with escapes, value, optional timestamp and
// exemplar) and turned into strings and numbers.
//
// Validation: every line must start like an exposition line (a metric name, `#`, `{` or blank; blank lines
// may end in CR), the first sample line is parsed in full, the page must end with a newline (Prometheus
// text) or `# EOF` (OpenMetrics), and nothing may follow `# EOF`. Lines of other families are not checked
// beyond their first byte. An empty Prometheus text page is valid (no samples), as for Prometheus's own
// parser; an empty OpenMetrics page lacks its `# EOF`.

export interface Sample {
  /** Shared between samples and scrapes with the same label set (LabelSetCache): frozen. */
  labels: Readonly<Record<string, string>>;
  /** As written: NaN and ±Inf included; callers decide what they accept. */
  value: number;
}

export interface ParsedPage {
  /** Wanted family name -> its samples, in page order. Families absent from the page are absent here. */
  samples: Map<string, Sample[]>;
  sawEof: boolean;
  /** The page had no bytes: a valid Prometheus text page without metrics (whether that is fine: extract.ts). */
  empty: boolean;
  /**
   * Sample lines of other series: a server asked for some families only (`name[]`) that answers more
   * ignores the restriction.
   */
  otherSamples: number;
}

export class PageError extends Error {}

const LF = 10,
  CR = 13,
  SP = 32,
  TAB = 9,
  HASH = 35,
  LBRACE = 123,
  RBRACE = 125,
  QUOTE = 34,
  BSLASH = 92,
  EQ = 61,
  COMMA = 44;

const NAME_START = new Uint8Array(256);
const NAME_CHAR = new Uint8Array(256);
const LABEL_START = new Uint8Array(256);
const LABEL_CHAR = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c);
  LABEL_START[c] = /[a-zA-Z_]/.test(ch) ? 1 : 0;
  LABEL_CHAR[c] = /[a-zA-Z0-9_]/.test(ch) ? 1 : 0;
  NAME_START[c] = /[a-zA-Z_:]/.test(ch) ? 1 : 0;
  NAME_CHAR[c] = /[a-zA-Z0-9_:]/.test(ch) ? 1 : 0;
}

interface Wanted {
  name: string;
  bytes: Uint8Array;
}

/** The set of family names to extract, compiled once per engine mapping. */
export class FamilySelector {
  readonly names: readonly string[];
  /** First byte -> candidate names starting with it. */
  readonly byFirstByte: Array<Wanted[] | undefined> = new Array(256);

  constructor(names: Iterable<string>) {
    this.names = [...new Set(names)];
    for (const name of this.names) {
      const bytes = Buffer.from(name, "latin1");
      if (bytes.length === 0 || !NAME_START[bytes[0]] || !bytes.every((b) => NAME_CHAR[b]))
        throw new Error(`not a metric name: ${JSON.stringify(name)}`);
      (this.byFirstByte[bytes[0]] ??= []).push({ name, bytes });
    }
  }
}

/** 1-based line number of byte offset `at` (only computed for error messages). */
function lineOf(page: Uint8Array, at: number): number {
  let line = 1;
  for (let i = 0; i < at && i < page.length; i++) if (page[i] === LF) line++;
  return line;
}

/**
 * Values found again by the bytes they were read from: a hash of the bytes, then a byte-for-byte check.
 * Bounded; cleared when full.
 */
class BytesTable<T> {
  private readonly table = new Map<number, Array<{ bytes: Buffer; value: T }>>();
  private size = 0;
  constructor(private readonly limit = 4096) {}

  find(page: Buffer, start: number, end: number, hash: number): T | undefined {
    const bucket = this.table.get(hash);
    if (bucket === undefined) return undefined;
    const len = end - start;
    for (const e of bucket) {
      const b = e.bytes;
      if (b.length !== len) continue;
      let k = 0;
      while (k < len && b[k] === page[start + k]) k++;
      if (k === len) return e.value;
    }
    return undefined;
  }

  add(page: Buffer, start: number, end: number, hash: number, value: T): T {
    if (this.size >= this.limit) {
      this.table.clear();
      this.size = 0;
    }
    const entry = { bytes: Buffer.from(page.subarray(start, end)), value };
    const bucket = this.table.get(hash);
    if (bucket !== undefined) bucket.push(entry);
    else this.table.set(hash, [entry]);
    this.size++;
    return value;
  }
}

/**
 * Label names and values repeat from scrape to scrape (model names, engine indexes, block sizes): decoded
 * once and reused.
 */
class StringCache {
  private readonly table = new BytesTable<string>();
  constructor(private readonly encoding: "latin1" | "utf8") {}

  get(page: Buffer, start: number, end: number): string {
    const len = end - start;
    if (len > 128) return page.toString(this.encoding, start, end);
    let h = len;
    for (let i = start; i < end; i++) h = Math.imul(h ^ page[i], 16777619);
    return (
      this.table.find(page, start, end, h) ??
      this.table.add(page, start, end, h, page.toString(this.encoding, start, end))
    );
  }
}
const labelNames = new StringCache("latin1");
const labelValues = new StringCache("utf8");

/**
 * Whole label sets repeat too: a page's `{engine="0",model_name="m"}` or the twenty labels of
 * cache_config_info are the same bytes every scrape. A set found byte for byte is the parsed object of last
 * time (frozen), at the cost of one scan to its `}`.
 */
class LabelSetCache {
  private readonly table = new BytesTable<Readonly<Record<string, string>>>();
  /** Set by `find`: the hash and the index of the `}` of the set it scanned. */
  hash = 0;
  close = -1;

  /** The cached labels of the set starting after `{` at `start`, or null (then `close` is -1 if unterminated). */
  find(page: Buffer, start: number, end: number): Readonly<Record<string, string>> | null {
    let h = 0,
      i = start,
      quoted = false;
    for (; i < end; i++) {
      const c = page[i];
      h = Math.imul(h ^ c, 16777619);
      if (quoted) {
        if (c === BSLASH) {
          if (++i < end) h = Math.imul(h ^ page[i], 16777619);
        } else if (c === QUOTE) quoted = false;
      } else if (c === QUOTE) quoted = true;
      else if (c === RBRACE) break;
    }
    this.hash = h;
    this.close = i < end ? i : -1;
    if (this.close < 0) return null;
    return this.table.find(page, start, i, h) ?? null;
  }

  /** Keeps `labels` for the set `find` last scanned (`start` to its `}`). */
  keep(page: Buffer, start: number, labels: Record<string, string>): Readonly<Record<string, string>> {
    return this.table.add(page, start, this.close, this.hash, Object.freeze(labels));
  }
}
const labelSets = new LabelSetCache();

const DIGIT0 = 48,
  DOT = 46;
/** Powers of ten that are exact doubles. */
const EXACT_POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);

/**
 * A plain decimal (`12`, `0.25`, `3.0`) of at most 15 digits, read from the bytes: the integer of its digits
 * divided by an exact power of ten is the correctly rounded value, as Number() would give. Anything else
 * (signs, exponents, NaN, Inf, long numbers) returns null for the general path.
 */
function plainDecimal(page: Buffer, start: number, end: number): number | null {
  let m = 0,
    digits = 0,
    fraction = -1;
  for (let i = start; i < end; i++) {
    const c = page[i];
    if (c === DOT) {
      if (fraction >= 0) return null;
      fraction = 0;
      continue;
    }
    const d = c - DIGIT0;
    if (d < 0 || d > 9) return null;
    m = m * 10 + d;
    digits++;
    if (fraction >= 0) fraction++;
  }
  if (digits === 0 || digits > 15) return null;
  return fraction > 0 ? m / EXACT_POW10[fraction] : m;
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Go's strconv.ParseFloat, as Prometheus uses it: decimal numbers, and NaN / [+-]Inf / [+-]Infinity in any case. */
function parseNumber(text: string): number | null {
  if (NUMBER.test(text)) return Number(text);
  switch (text.length > 9 ? "" : text.toLowerCase()) {
    case "nan":
      return NaN;
    case "inf":
    case "+inf":
    case "infinity":
    case "+infinity":
      return Infinity;
    case "-inf":
    case "-infinity":
      return -Infinity;
  }
  return null;
}

/** `# EOF` possibly followed by blanks/CR. */
function isEofLine(page: Uint8Array, start: number, end: number): boolean {
  if (
    end - start < 5 ||
    page[start + 1] !== SP ||
    page[start + 2] !== 69 ||
    page[start + 3] !== 79 ||
    page[start + 4] !== 70
  )
    return false;
  for (let i = start + 5; i < end; i++) if (page[i] !== SP && page[i] !== TAB && page[i] !== CR) return false;
  return true;
}

const EMPTY_LABELS: Readonly<Record<string, string>> = Object.freeze({});

class LineParser {
  constructor(
    private readonly page: Buffer,
    private readonly lineStart: number,
    private readonly end: number,
  ) {}

  private fail(problem: string, at: number): never {
    const p = this.page;
    const shown = p.toString("utf8", this.lineStart, Math.min(this.end, this.lineStart + 200)).replace(/\r$/, "");
    throw new PageError(
      `line ${lineOf(p, this.lineStart)}, column ${at - this.lineStart + 1}: ${problem} in ${JSON.stringify(shown)}`,
    );
  }

  private skipBlanks(i: number): number {
    const p = this.page;
    while (i < this.end && (p[i] === SP || p[i] === TAB)) i++;
    return i;
  }

  /** Parses `{...} value [timestamp] [# exemplar]` starting at `i` (just after the metric name). */
  sample(i: number): Sample {
    const p = this.page;
    let labels: Readonly<Record<string, string>> = EMPTY_LABELS;
    const afterName = this.skipBlanks(i);
    if (afterName < this.end && p[afterName] === LBRACE) {
      const known = labelSets.find(p, afterName + 1, this.end);
      if (known !== null) {
        labels = known;
        i = labelSets.close + 1;
      } else {
        const parsed: Record<string, string> = {};
        i = this.labels(afterName + 1, parsed);
        labels = labelSets.keep(p, afterName + 1, parsed);
      }
      i = this.skipBlanks(i); // blanks are optional around the label set
    } else {
      if (afterName === i) this.fail("expected a blank before the value", i);
      i = afterName;
    }
    const valueStart = i;
    while (i < this.end && p[i] !== SP && p[i] !== TAB && p[i] !== CR) i++;
    let value = plainDecimal(p, valueStart, i);
    if (value === null) {
      const valueText = p.toString("latin1", valueStart, i);
      value = parseNumber(valueText);
      if (value === null) this.fail(valueText ? `bad value ${JSON.stringify(valueText)}` : "missing value", valueStart);
    }
    i = this.skipBlanks(i);
    if (i < this.end && p[i] !== HASH && p[i] !== CR) {
      const tsStart = i;
      while (i < this.end && p[i] !== SP && p[i] !== TAB && p[i] !== CR) i++;
      const ts = p.toString("latin1", tsStart, i);
      const tsValue = parseNumber(ts);
      if (tsValue === null || !Number.isFinite(tsValue)) this.fail(`bad timestamp ${JSON.stringify(ts)}`, tsStart);
      i = this.skipBlanks(i);
    }
    if (i < this.end && p[i] === HASH) {
      // OpenMetrics exemplar: `# {labels} value [timestamp]`; checked for shape, not kept.
      const j = this.skipBlanks(i + 1);
      if (j >= this.end || p[j] !== LBRACE) this.fail("expected an exemplar label set after #", j);
      this.labels(j + 1, {});
      return { labels, value };
    }
    if (i < this.end && !(p[i] === CR && i === this.end - 1)) this.fail("unexpected text after the value", i);
    return { labels, value };
  }

  /** Parses a label set after `{`; returns the index after `}`. */
  private labels(i: number, out: Record<string, string>): number {
    const p = this.page;
    for (;;) {
      i = this.skipBlanks(i);
      if (i >= this.end) this.fail("unterminated label set", i);
      if (p[i] === RBRACE) return i + 1;
      if (!LABEL_START[p[i]]) this.fail("expected a label name", i);
      const nameStart = i;
      while (i < this.end && LABEL_CHAR[p[i]]) i++;
      const name = labelNames.get(p, nameStart, i);
      i = this.skipBlanks(i);
      if (p[i] !== EQ) this.fail(`expected "=" after label ${name}`, i);
      i = this.skipBlanks(i + 1);
      if (p[i] !== QUOTE) this.fail(`expected a quoted value for label ${name}`, i);
      i++;
      const valueStart = i;
      let escaped = false;
      while (i < this.end && p[i] !== QUOTE) {
        if (p[i] === BSLASH) {
          escaped = true;
          i++;
        }
        i++;
      }
      if (i >= this.end) this.fail(`unterminated value of label ${name}`, valueStart);
      out[name] = escaped ? this.unescape(valueStart, i) : labelValues.get(p, valueStart, i);
      i = this.skipBlanks(i + 1);
      if (p[i] === COMMA) {
        i++;
        continue;
      }
      if (p[i] === RBRACE) return i + 1;
      this.fail(`expected "," or "}" after the value of label ${name}`, i);
    }
  }

  private unescape(start: number, end: number): string {
    const p = this.page;
    const parts: Buffer[] = [];
    let from = start;
    for (let i = start; i < end; i++) {
      if (p[i] !== BSLASH) continue;
      parts.push(p.subarray(from, i));
      const e = p[i + 1];
      if (e === BSLASH) parts.push(Buffer.from("\\"));
      else if (e === QUOTE) parts.push(Buffer.from('"'));
      else if (e === 110 /* n */) parts.push(Buffer.from("\n"));
      else this.fail(`invalid escape \\${String.fromCharCode(e)}`, i);
      i++;
      from = i + 1;
    }
    parts.push(p.subarray(from, end));
    return Buffer.concat(parts).toString("utf8");
  }
}

/**
 * Extracts the samples of the selector's families. `openMetrics` (from the response content type) makes
 * `# EOF` mandatory. Throws PageError with a line number for pages that are not exposition text,
 * truncated, or malformed on a line we read.
 */
export function parseSelectedFamilies(page: Buffer, selector: FamilySelector, openMetrics = false): ParsedPage {
  const n = page.length;
  const samples = new Map<string, Sample[]>();
  const table = selector.byFirstByte;
  let pos = 0;
  let sawEof = false;
  let checkedFirstSample = false;
  let otherSamples = 0;
  while (pos < n) {
    let c = page[pos];
    while (c === SP || c === TAB) c = page[++pos];
    if (pos >= n) break;
    if (c === LF) {
      pos++;
      continue;
    }
    if (c === CR && page[pos + 1] === LF) {
      pos += 2;
      continue;
    } // a blank line of a CRLF page
    let eol = page.indexOf(LF, pos);
    const lastLine = eol < 0;
    if (lastLine) eol = n;
    if (c === HASH) {
      if (isEofLine(page, pos, eol)) {
        for (let i = eol; i < n; i++) {
          if (page[i] !== LF && page[i] !== CR && page[i] !== SP && page[i] !== TAB)
            throw new PageError(`line ${lineOf(page, i)}: content after # EOF`);
        }
        sawEof = true;
        break;
      }
    } else if (NAME_START[c]) {
      if (lastLine) throw new PageError(`page truncated: line ${lineOf(page, pos)} has no newline`);
      const candidates = table[c];
      let matched = false;
      if (candidates !== undefined) {
        for (let k = 0; k < candidates.length; k++) {
          const w = candidates[k].bytes;
          const len = w.length;
          const after = page[pos + len];
          if (pos + len >= eol || (after !== LBRACE && after !== SP && after !== TAB)) continue;
          let j = len - 1;
          while (j > 0 && page[pos + j] === w[j]) j--;
          if (j !== 0) continue;
          const s = new LineParser(page, pos, eol).sample(pos + len);
          const list = samples.get(candidates[k].name);
          if (list) list.push(s);
          else samples.set(candidates[k].name, [s]);
          matched = true;
          break;
        }
      }
      if (!matched) otherSamples++;
      if (!checkedFirstSample) {
        // Parse the first sample line in full whatever its family, so non-exposition text that happens to
        // start with a letter (an error message, say) is refused.
        if (!matched) {
          let i = pos;
          while (i < eol && NAME_CHAR[page[i]]) i++;
          new LineParser(page, pos, eol).sample(i);
        }
        checkedFirstSample = true;
      }
    } else if (c === LBRACE) {
      otherSamples++;
    } else {
      const shown = page.toString("utf8", pos, Math.min(eol, pos + 60));
      throw new PageError(`line ${lineOf(page, pos)}: not a metrics exposition line: ${JSON.stringify(shown)}`);
    }
    // (`{` starts a line whose metric name is quoted, Prometheus 3 UTF-8 names: never one of ours.)
    if (lastLine) throw new PageError(`page truncated: line ${lineOf(page, pos)} has no newline`);
    pos = eol + 1;
  }
  if (openMetrics && !sawEof) throw new PageError("page truncated: OpenMetrics page without # EOF");
  return { samples, sawEof, empty: n === 0, otherSamples };
}
