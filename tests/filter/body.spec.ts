import {
  BodyScanner,
  promptKindForPath,
  PROMPT_ANY,
  PROMPT_PROMPT,
  PROMPT_MESSAGES,
  PROMPT_INPUT,
  SCAN_DONE,
  SCAN_INVALID,
  SCAN_NEED_MORE,
} from "../../filter/body";

function kindOf(path: string): i32 {
  const b = String.UTF8.encode(path);
  return promptKindForPath(changetype<usize>(b), b.byteLength);
}

/** Feeds `body` in chunks of `chunk` bytes. */
function scan(body: string, kind: i32, cap: i32 = 1000, chunk: i32 = 1 << 30): BodyScanner {
  const s = new BodyScanner(kind, cap);
  const b = String.UTF8.encode(body);
  for (let at = 0; at < b.byteLength; at += chunk) {
    const n = min(chunk, b.byteLength - at);
    s.feed(changetype<usize>(b) + <usize>at, n);
  }
  return s;
}

function model(s: BodyScanner): string {
  return s.hasModel ? String.UTF8.decodeUnsafe(changetype<usize>(s.model), s.modelLen) : "<none>";
}
function prompt(s: BodyScanner): string {
  return String.UTF8.decodeUnsafe(changetype<usize>(s.prompt), s.promptLen);
}

describe("request body scanning", () => {
  it("classifies OpenAI paths by suffix, ignoring the query", () => {
    expect(kindOf("/v1/chat/completions")).toBe(PROMPT_MESSAGES);
    expect(kindOf("/openai/v1/chat/completions/?x=1")).toBe(PROMPT_MESSAGES);
    expect(kindOf("/v1/completions")).toBe(PROMPT_PROMPT);
    expect(kindOf("/v1/embeddings")).toBe(PROMPT_INPUT);
    expect(kindOf("/v1/responses")).toBe(PROMPT_INPUT);
    expect(kindOf("/generate")).toBe(PROMPT_ANY);
  });

  it("finds model and prompt in a completions body", () => {
    const s = scan('{"model":"llama","prompt":"hello world","max_tokens":5}', PROMPT_PROMPT);
    expect(s.state).toBe(SCAN_DONE);
    expect(model(s)).toBe("llama");
    expect(prompt(s)).toBe('"hello world"');
    expect(s.promptComplete).toBe(true);
  });

  it("gives the same answer however the body is split", () => {
    const body =
      '{ "messages" : [{"role":"system","content":"be \\"brief\\" {not a brace}"},{"role":"user","content":"hi"}],\n "model": "sql-lora", "stream": true }';
    const whole = scan(body, PROMPT_MESSAGES);
    for (let chunk = 1; chunk < 12; chunk++) {
      const s = scan(body, PROMPT_MESSAGES, 1000, chunk);
      expect(s.state).toBe(SCAN_DONE);
      expect(model(s)).toBe("sql-lora");
      expect(prompt(s)).toBe(prompt(whole));
      expect(s.consumed).toBe(String.UTF8.byteLength(body));
    }
    expect(prompt(whole).startsWith('[{"role":"system"')).toBe(true);
    expect(prompt(whole).endsWith('"hi"}]')).toBe(true);
  });

  it("knows where the model string's bytes are in the body, however the body is split (model rewrites)", () => {
    const body =
      '{ "messages" : [{"role":"user","content":"a \\"model\\": \\"x\\""}],\n "model" :  "sql-lora", "n": 1 }';
    const at = body.indexOf('"sql-lora"') + 1;
    for (let chunk = 1; chunk < 14; chunk++) {
      const s = scan(body, PROMPT_MESSAGES, 1000, chunk);
      expect(model(s)).toBe("sql-lora");
      expect(s.modelStart).toBe(at);
    }
    expect(scan('{"model":"m"}', PROMPT_ANY).modelStart).toBe(10);
  });

  it("keeps only the first promptCap bytes of the prompt and is settled once model and cap are known", () => {
    const s = scan('{"model":"m","prompt":"' + "x".repeat(500) + '"', PROMPT_PROMPT, 64);
    expect(s.promptLen).toBe(64);
    expect(s.state).toBe(SCAN_NEED_MORE);
    expect(s.settled).toBe(true);
  });

  it("is not settled while the model may still come after the prompt", () => {
    const s = scan('{"messages":[{"content":"' + "y".repeat(200) + '"}],', PROMPT_MESSAGES, 64);
    expect(s.settled).toBe(false);
    s.finish();
    expect(s.state).toBe(SCAN_DONE);
    expect(s.hasModel).toBe(false);
  });

  it("treats a non-string or escaped model as absent", () => {
    expect(model(scan('{"model":42,"prompt":"p"}', PROMPT_PROMPT))).toBe("<none>");
    expect(model(scan('{"model":"a\\/b","prompt":"p"}', PROMPT_PROMPT))).toBe("<none>");
    expect(model(scan('{"model":"","prompt":"p"}', PROMPT_PROMPT))).toBe("<none>");
    expect(model(scan('{"model":"' + "m".repeat(300) + '"}', PROMPT_PROMPT))).toBe("<none>");
    expect(model(scan('{"model":null,"model":"second"}', PROMPT_PROMPT))).toBe("second");
  });

  it("ignores keys that only look like ours", () => {
    const s = scan(
      '{"metadata":{"model":"inner","prompt":"x"},"modelx":"no","model":"yes","prompt":["a","b"]}',
      PROMPT_PROMPT,
    );
    expect(model(s)).toBe("yes");
    expect(prompt(s)).toBe('["a","b"]');
  });

  it("reads the prompt key of the path, or the first of messages/prompt/input for other paths", () => {
    expect(prompt(scan('{"prompt":"p","messages":[1]}', PROMPT_MESSAGES))).toBe("[1]");
    expect(prompt(scan('{"input":"i","model":"e"}', PROMPT_INPUT))).toBe('"i"');
    expect(prompt(scan('{"input":"i","prompt":"p"}', PROMPT_ANY))).toBe('"i"');
  });

  it("stops on anything that is not a JSON object, without trapping", () => {
    expect(scan("[1,2]", PROMPT_ANY).state).toBe(SCAN_INVALID);
    expect(scan("model=x", PROMPT_ANY).state).toBe(SCAN_INVALID);
    expect(scan('{"model" "x"}', PROMPT_ANY).state).toBe(SCAN_INVALID);
    expect(scan('{"model":"x" "y":1}', PROMPT_ANY).state).toBe(SCAN_INVALID);
    expect(scan('{"a":@}', PROMPT_ANY).state).toBe(SCAN_INVALID);
    expect(scan("{}", PROMPT_ANY).state).toBe(SCAN_DONE);
    expect(scan("", PROMPT_ANY).state).toBe(SCAN_NEED_MORE);
    const empty = scan("   ", PROMPT_ANY);
    empty.finish();
    expect(empty.state).toBe(SCAN_INVALID);
  });

  it("never traps on random bytes", () => {
    let seed: u32 = 99;
    for (let round = 0; round < 300; round++) {
      const b = new Uint8Array(64);
      for (let i = 0; i < 64; i++) {
        seed = seed * 1103515245 + 12345;
        b[i] = <u8>(seed >> 24);
      }
      b[0] = 0x7b;
      const s = new BodyScanner(PROMPT_ANY, 16);
      s.feed(b.dataStart, 64);
      s.finish();
      expect(s.state).not.toBe(SCAN_NEED_MORE);
      expect(s.promptLen).toBeLessThanOrEqual(16);
    }
  });
});
