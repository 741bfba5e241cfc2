// Strict JSON syntax check (RFC 8259) before the text reaches assemblyscript-json, which aborts the VM on
// malformed input: a typo in the plugin configuration must be an error message, not a trap.

const MAX_DEPTH = 64;

/** Empty when `text` is one well-formed JSON value; otherwise what is wrong and at which byte. */
export function jsonSyntaxError(text: string): string {
  const buf = String.UTF8.encode(text);
  const c = new Checker(changetype<usize>(buf), buf.byteLength);
  c.ws();
  if (!c.value(0)) return c.error;
  c.ws();
  if (c.pos < c.len) return "unexpected text after the value at byte " + c.pos.toString();
  return "";
}

class Checker {
  pos: i32 = 0;
  error: string = "";
  constructor(
    public ptr: usize,
    public len: i32,
  ) {}

  peek(): i32 {
    return this.pos < this.len ? <i32>load<u8>(this.ptr + <usize>this.pos) : -1;
  }
  fail(what: string): bool {
    this.error = this.pos < this.len ? what + " at byte " + this.pos.toString() : "unexpected end of JSON";
    return false;
  }
  ws(): void {
    while (true) {
      const c = this.peek();
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) return;
      this.pos++;
    }
  }
  literal(word: string): bool {
    for (let i = 0; i < word.length; i++) {
      if (this.peek() != word.charCodeAt(i)) return this.fail("invalid literal");
      this.pos++;
    }
    return true;
  }

  value(depth: i32): bool {
    if (depth > MAX_DEPTH) return this.fail("nesting too deep");
    const c = this.peek();
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) return this.string();
    if (c == 0x74) return this.literal("true");
    if (c == 0x66) return this.literal("false");
    if (c == 0x6e) return this.literal("null");
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    return this.fail("expected a value");
  }

  object(depth: i32): bool {
    this.pos++;
    this.ws();
    if (this.peek() == 0x7d) {
      this.pos++;
      return true;
    }
    while (true) {
      this.ws();
      if (this.peek() != 0x22) return this.fail("expected a key");
      if (!this.string()) return false;
      this.ws();
      if (this.peek() != 0x3a) return this.fail("expected ':'");
      this.pos++;
      this.ws();
      if (!this.value(depth + 1)) return false;
      this.ws();
      const c = this.peek();
      this.pos++;
      if (c == 0x7d) return true;
      if (c != 0x2c) {
        this.pos--;
        return this.fail("expected ',' or '}'");
      }
    }
  }

  array(depth: i32): bool {
    this.pos++;
    this.ws();
    if (this.peek() == 0x5d) {
      this.pos++;
      return true;
    }
    while (true) {
      this.ws();
      if (!this.value(depth + 1)) return false;
      this.ws();
      const c = this.peek();
      this.pos++;
      if (c == 0x5d) return true;
      if (c != 0x2c) {
        this.pos--;
        return this.fail("expected ',' or ']'");
      }
    }
  }

  string(): bool {
    this.pos++;
    while (true) {
      const c = this.peek();
      if (c < 0) return this.fail("unterminated string");
      if (c < 0x20) return this.fail("control character in string");
      this.pos++;
      if (c == 0x22) return true;
      if (c != 0x5c) continue;
      const e = this.peek();
      this.pos++;
      if (e == 0x75) {
        for (let i = 0; i < 4; i++) {
          const h = this.peek();
          if (!((h >= 0x30 && h <= 0x39) || (h >= 0x41 && h <= 0x46) || (h >= 0x61 && h <= 0x66)))
            return this.fail("bad \\u escape");
          this.pos++;
        }
      } else if (e != 0x22 && e != 0x5c && e != 0x2f && e != 0x62 && e != 0x66 && e != 0x6e && e != 0x72 && e != 0x74) {
        this.pos--;
        return this.fail("bad escape");
      }
    }
  }

  digits(): i32 {
    let n = 0;
    while (this.peek() >= 0x30 && this.peek() <= 0x39) {
      this.pos++;
      n++;
    }
    return n;
  }

  number(): bool {
    if (this.peek() == 0x2d) this.pos++;
    if (this.peek() == 0x30) this.pos++;
    else if (this.digits() == 0) return this.fail("bad number");
    if (this.peek() == 0x2e) {
      this.pos++;
      if (this.digits() == 0) return this.fail("bad number");
    }
    if (this.peek() == 0x65 || this.peek() == 0x45) {
      this.pos++;
      if (this.peek() == 0x2b || this.peek() == 0x2d) this.pos++;
      if (this.digits() == 0) return this.fail("bad number");
    }
    return true;
  }
}
