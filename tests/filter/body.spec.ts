import {
  BodyScanner,
  promptKindForPath,
  PROMPT_ANY,
  PROMPT_PROMPT,
  PROMPT_MESSAGES,
  PROMPT_INPUT,
  PROMPT_ANTHROPIC,
  PROMPT_RESPONSES,
  PART_TOOLS,
  PART_SYSTEM,
  PART_PROMPT,
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
/** The bytes to hash, once the scan is over (the end of the body: finish()). */
function prompt(s: BodyScanner): string {
  s.finish();
  return String.UTF8.decodeUnsafe(changetype<usize>(s.prompt), s.promptLen);
}
function hashed(body: string, kind: i32, cap: i32 = 100000, chunk: i32 = 1 << 30): string {
  return prompt(scan(body, kind, cap, chunk));
}

// Random bodies for the property test: members with our keys (and others) holding strings with escapes,
// nested containers and literals, `model` somewhere or nowhere. ASCII only (so substring is bytes).
let randSeed: u32 = 7;
function rand(n: i32): i32 {
  randSeed = randSeed * 1103515245 + 12345;
  return <i32>((randSeed >> 16) % <u32>n);
}
const KEYS = ["tools", "system", "instructions", "messages", "input", "prompt", "stream", "x"];
const PIECES = ["a", "bc", '\\"', "\\\\", "{", "]", ",", " ", ":"];
const LITERALS = ["null", "12", "true", "[]", '""', "{}"];
function randomValue(depth: i32): string {
  const k = rand(depth > 1 ? 3 : 6);
  if (k == 0) return LITERALS[rand(LITERALS.length)];
  if (k <= 2) {
    let t = '"';
    for (let i = rand(12); i > 0; i--) t += PIECES[rand(PIECES.length)];
    return t + '"';
  }
  const parts = new Array<string>();
  for (let i = rand(4); i > 0; i--) parts.push(k == 3 ? randomValue(depth + 1) : '"k":' + randomValue(depth + 1));
  return k == 3 ? "[" + parts.join(",") + "]" : "{" + parts.join(",") + "}";
}
function randomBody(withModel: bool): string {
  const n = 1 + rand(6);
  const at = withModel ? rand(n + 1) : -1;
  const members = new Array<string>();
  for (let i = 0; i <= n; i++) {
    if (i == at) members.push('"model":"m"');
    if (i < n) members.push('"' + KEYS[rand(KEYS.length)] + '": ' + randomValue(0));
  }
  return "{" + members.join(", ") + "}";
}

describe("request body scanning", () => {
  it("classifies OpenAI paths by suffix, ignoring the query", () => {
    expect(kindOf("/v1/chat/completions")).toBe(PROMPT_MESSAGES);
    expect(kindOf("/openai/v1/chat/completions/?x=1")).toBe(PROMPT_MESSAGES);
    expect(kindOf("/v1/completions")).toBe(PROMPT_PROMPT);
    expect(kindOf("/v1/embeddings")).toBe(PROMPT_INPUT);
    expect(kindOf("/v1/responses")).toBe(PROMPT_RESPONSES);
    expect(kindOf("/v1/messages")).toBe(PROMPT_ANTHROPIC);
    expect(kindOf("/anthropic/v1/messages?beta=true")).toBe(PROMPT_ANTHROPIC);
    expect(kindOf("/generate")).toBe(PROMPT_ANY);
  });

  it("finds model and prompt in a completions body", () => {
    const s = scan('{"model":"llama","prompt":"hello world","max_tokens":5}', PROMPT_PROMPT);
    expect(s.settled).toBe(true);
    expect(s.consumed).toBe(39); // nothing after the prompt can tell more
    expect(model(s)).toBe("llama");
    expect(prompt(s)).toBe('"hello world"');
    expect(s.state).toBe(SCAN_DONE);
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
    expect(s.partLength(PART_PROMPT)).toBe(64);
    expect(s.state).toBe(SCAN_NEED_MORE);
    expect(s.settled).toBe(true);
    expect(s.consumed).toBeLessThan(100); // it stopped where the copy was full
    expect(prompt(s).length).toBe(64);
    expect(s.promptComplete).toBe(false);
  });

  it("is not settled while the model may still come after the prompt", () => {
    const s = scan('{"messages":[{"content":"' + "y".repeat(200) + '"}],', PROMPT_MESSAGES, 64);
    expect(s.settled).toBe(false);
    s.finish();
    expect(s.state).toBe(SCAN_DONE);
    expect(s.hasModel).toBe(false);
  });

  it("a body that ends with its JSON still open has no prompt (bodyEnded); a complete one keeps it", () => {
    const cut = scan('{"model":"m","messages":[{"role":"user","content":"hello', PROMPT_MESSAGES);
    expect(cut.settled).toBe(false);
    cut.bodyEnded();
    expect(cut.promptSeen).toBe(false);
    expect(cut.promptLen).toBe(0);
    expect(model(cut)).toBe("m"); // the model was read whole: still used
    const whole = scan('{"model":"m","messages":[{"role":"user","content":"hello"}]}', PROMPT_MESSAGES);
    whole.bodyEnded();
    expect(whole.promptSeen).toBe(true);
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
  it("hashes tools, then system, then messages for Anthropic bodies, whatever the key order and the chunks", () => {
    const tools = '[{"name":"read_file","description":"Reads a file","input_schema":{"type":"object"}}]';
    const system = '[{"type":"text","text":"You are a coding agent.","cache_control":{"type":"ephemeral"}}]';
    const messages = '[{"role":"user","content":"fix the \\"bug\\" in main.ts"}]';
    const want = tools + system + messages;
    const orders = [
      '{"model":"claude","max_tokens":1024,"system":' + system + ',"tools":' + tools + ',"messages":' + messages + "}",
      '{"messages":' + messages + ',"tools":' + tools + ',"system":' + system + ',"model":"claude"}',
      '{"tools":' + tools + ',"messages":' + messages + ',"stream":true,"system":' + system + ',"model":"claude"}',
    ];
    for (let o = 0; o < orders.length; o++) {
      for (let chunk = 1; chunk < 20; chunk += 3) {
        const s = scan(orders[o], PROMPT_ANTHROPIC, 100000, chunk);
        expect(model(s)).toBe("claude");
        expect(prompt(s)).toBe(want);
        expect(s.promptComplete).toBe(true);
      }
      // An unknown path reads the same keys.
      expect(hashed(orders[o], PROMPT_ANY)).toBe(want);
    }
    // A string system prompt is hashed as the body wrote it.
    expect(hashed('{"messages":[1],"system":"be brief"}', PROMPT_ANTHROPIC)).toBe('"be brief"[1]');
  });

  it("hashes OpenAI chat tools before the messages, wherever the body puts them", () => {
    const tools = '[{"type":"function","function":{"name":"search","parameters":{}}}]';
    const messages = '[{"role":"system","content":"sys"},{"role":"user","content":"hi"}]';
    const first = hashed('{"model":"m","tools":' + tools + ',"messages":' + messages + "}", PROMPT_MESSAGES);
    const last = hashed(
      '{"messages":' + messages + ',"model":"m","tool_choice":"auto","tools":' + tools + "}",
      PROMPT_MESSAGES,
    );
    expect(first).toBe(tools + messages);
    expect(last).toBe(first);
    // A top-level `system` is not OpenAI's: chat ignores it.
    expect(hashed('{"system":"x","messages":[1]}', PROMPT_MESSAGES)).toBe("[1]");
  });

  it("keeps the hashed bytes a prefix of the next turn's, in both shapes", () => {
    const tools = '[{"name":"bash","input_schema":{}}]';
    const turn1 = '[{"role":"user","content":"list files"}';
    const turn2 =
      turn1 +
      ',{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"bash","input":{"cmd":"ls"}}]}' +
      ',{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"a.ts b.ts"}]}';
    const anthropic = (msgs: string): string =>
      '{"model":"c","messages":' + msgs + '],"system":"agent","tools":' + tools + ',"max_tokens":64}';
    const a1 = hashed(anthropic(turn1), PROMPT_ANTHROPIC);
    const a2 = hashed(anthropic(turn2), PROMPT_ANTHROPIC);
    expect(a2.startsWith(a1.slice(0, a1.length - 1))).toBe(true);
    expect(a1.startsWith(tools + '"agent"')).toBe(true);
    const openai = (msgs: string): string => '{"model":"c","messages":' + msgs + '],"tools":' + tools + "}";
    const o1 = hashed(openai(turn1), PROMPT_MESSAGES);
    const o2 = hashed(openai(turn2), PROMPT_MESSAGES);
    expect(o2.startsWith(o1.slice(0, o1.length - 1))).toBe(true);
    expect(o1.startsWith(tools)).toBe(true);
  });

  it("reads the Responses API's tools, instructions and input", () => {
    const body =
      '{"input":[{"type":"message","role":"user","content":"go"}],"model":"gpt","instructions":"You code.","tools":[{"type":"function","name":"shell"}]}';
    expect(hashed(body, PROMPT_RESPONSES)).toBe(
      '[{"type":"function","name":"shell"}]"You code."[{"type":"message","role":"user","content":"go"}]',
    );
    expect(hashed(body, PROMPT_ANY)).toBe(hashed(body, PROMPT_RESPONSES));
    // Embeddings read `input` alone.
    expect(hashed(body, PROMPT_INPUT)).toBe('[{"type":"message","role":"user","content":"go"}]');
  });

  it("hashes token-id prompts as their JSON, a longer prompt extending a shorter one", () => {
    expect(hashed('{"model":"m","prompt":[1,2,3]}', PROMPT_PROMPT)).toBe("[1,2,3]");
    expect(hashed('{"prompt":[[101,7],[9]],"model":"m"}', PROMPT_PROMPT)).toBe("[[101,7],[9]]");
    const short = hashed('{"prompt":[128000, 882, 12, 13]}', PROMPT_PROMPT);
    const long = hashed('{"prompt":[128000, 882, 12, 13, 400, 401]}', PROMPT_PROMPT);
    expect(long.startsWith(short.slice(0, short.length - 1))).toBe(true);
    // Completions bodies hash the prompt alone: tools there are not the engine's.
    expect(hashed('{"tools":[1],"prompt":"p"}', PROMPT_PROMPT)).toBe('"p"');
  });

  it("leaves out empty tools and literal parts, and keeps the first of a repeated key", () => {
    expect(hashed('{"tools":[],"messages":[1]}', PROMPT_MESSAGES)).toBe("[1]");
    expect(hashed('{"tools":null,"system":"","messages":[1]}', PROMPT_ANTHROPIC)).toBe("[1]");
    expect(hashed('{"messages":[1],"messages":[2]}', PROMPT_MESSAGES)).toBe("[1]");
    expect(hashed('{"system":"a","instructions":"b","prompt":"p"}', PROMPT_ANY)).toBe('"a""p"');
    const none = scan('{"model":"m","messages":null}', PROMPT_MESSAGES);
    none.finish();
    expect(none.promptLen).toBe(0);
  });

  it("fills the cap in hashing order: tools first, the prompt gets what is left", () => {
    const tools = "[" + '"t",'.repeat(20) + '"t"]'; // 85 bytes
    const body = '{"messages":["' + "m".repeat(200) + '"],"tools":' + tools + ',"model":"x"}';
    const h = hashed(body, PROMPT_MESSAGES, 100);
    expect(h.length).toBe(100);
    expect(h.startsWith(tools)).toBe(true);
    expect(h.substring(85)).toBe('["' + "m".repeat(13));
    // Tools alone over the cap: nothing else is needed, so the scan settles inside them (model first).
    const big = '{"model":"x","tools":[' + '"t",'.repeat(100) + '"t"],"messages":[1]}';
    const s = scan(big, PROMPT_MESSAGES, 64);
    expect(s.settled).toBe(true);
    expect(s.consumed).toBeLessThan(100);
    expect(prompt(s).length).toBe(64);
  });

  it("waits for tools that may still come after the messages, and settles once every part is known", () => {
    const head = '{"model":"m","messages":["' + "y".repeat(300) + '"]';
    const s = scan(head, PROMPT_MESSAGES, 64);
    expect(s.partLength(PART_PROMPT)).toBe(64);
    expect(s.settled).toBe(false); // tools may come later and go first
    const tail = String.UTF8.encode(',"tools":[{"name":"f"}],"stream":true}');
    s.feed(changetype<usize>(tail), tail.byteLength);
    expect(s.partSeen(PART_TOOLS)).toBe(true);
    expect(s.settled).toBe(true);
    expect(prompt(s)).toBe('[{"name":"f"}]["' + "y".repeat(48));
    // Anthropic: tools and system first, then the scan settles within the messages once the cap is reached.
    const a = scan(
      '{"model":"m","tools":[1],"system":"s","messages":["' + "z".repeat(300) + '"]}',
      PROMPT_ANTHROPIC,
      64,
    );
    expect(a.settled).toBe(true);
    expect(a.partLength(PART_SYSTEM)).toBe(3);
    expect(a.consumed).toBeLessThan(120);
    expect(prompt(a)).toBe('[1]"s"["' + "z".repeat(56));
  });

  it("falls back to no prompt on a broken body, keeping the model", () => {
    const s = scan('{"model":"m","messages":[{"role":"user"}] "tools":[]}', PROMPT_MESSAGES);
    expect(s.state).toBe(SCAN_INVALID);
    expect(model(s)).toBe("m");
    s.finish();
    expect(s.promptSeen).toBe(false);
    expect(s.promptLen).toBe(0);
  });

  it("gives a pooled scanner's next body the same answer as a new scanner's", () => {
    const s = new BodyScanner(PROMPT_ANTHROPIC, 1000);
    const bodies = [
      '{"tools":[1],"system":"a","messages":[2],"model":"m"}',
      '{"messages":[3]}',
      '{"system":"b","messages":[4],"model":"n"}',
      '{"prompt":"p"}',
    ];
    const kinds = [PROMPT_ANTHROPIC, PROMPT_ANTHROPIC, PROMPT_ANTHROPIC, PROMPT_PROMPT];
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < bodies.length; i++) {
        s.reset(kinds[i], 1000);
        const b = String.UTF8.encode(bodies[i]);
        s.feed(changetype<usize>(b), b.byteLength);
        expect(prompt(s)).toBe(hashed(bodies[i], kinds[i], 1000));
        expect(model(s)).toBe(model(scan(bodies[i], kinds[i])));
      }
    }
  });
  it("gives every random body the same prompt however it is split, and a smaller cap a prefix of it", () => {
    const kinds = [PROMPT_ANY, PROMPT_PROMPT, PROMPT_MESSAGES, PROMPT_INPUT, PROMPT_ANTHROPIC, PROMPT_RESPONSES];
    for (let round = 0; round < 100; round++) {
      const withModel = rand(2) == 0;
      const body = randomBody(withModel);
      for (let k = 0; k < kinds.length; k++) {
        const full = hashed(body, kinds[k]);
        for (let c = 0; c < 3; c++) {
          const cap = c == 0 ? 8 : c == 1 ? 33 : 100000;
          const whole = scan(body, kinds[k], cap);
          const want = prompt(whole);
          expect(want.length).toBeLessThanOrEqual(cap);
          // Without a model the scan never stops early: a smaller cap keeps the first bytes of the same prompt.
          if (!withModel) expect(want).toBe(full.substring(0, min(cap, full.length)));
          for (let chunk = 1; chunk < 10; chunk += 4) {
            const s = scan(body, kinds[k], cap, chunk);
            expect(prompt(s)).toBe(want);
            expect(s.state).toBe(whole.state);
            expect(model(s)).toBe(withModel ? "m" : "<none>");
          }
        }
      }
    }
  });
});
