import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { FamilySelector, PageError, parseSelectedFamilies } from "../../companion/prom-parser";
import { vllmPage, sglangPage, tritonPage, trtllmServePage } from "./fixtures/pages";

const page = (text: string): Buffer => Buffer.from(text, "utf8");
const select = (...names: string[]) => new FamilySelector(names);
const values = (parsed: ReturnType<typeof parseSelectedFamilies>, name: string) =>
  (parsed.samples.get(name) ?? []).map((s) => [s.labels, s.value]);

/** The well-known general parser, for cross-checking what we extract (text format only). */
function general(text: string, name: string): Array<[Record<string, string>, number]> {
  const fam = parsePrometheusTextFormat(text).find((f) => f.name === name);
  return (fam?.metrics ?? []).map((m) => [m.labels ?? {}, Number(m.value)]);
}

test("vLLM V1 page (2 data-parallel engines): the wanted families, same values as a general parser", () => {
  const text = vllmPage({
    version: "v1",
    engines: [
      { waiting: 3, running: 7, kv: 0.25 },
      { waiting: 1, running: 5, kv: 0.75 },
    ],
    cache: { blockSize: 16, numGpuBlocks: 9000 },
    lora: { maxLora: 4, history: [{ running: ["a"], waiting: ["b", "c"], timestamp: 1718309200.5 }] },
  });
  const names = [
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:lora_requests_info",
    "vllm:cache_config_info",
  ];
  const parsed = parseSelectedFamilies(page(text), select(...names));
  assert.deepEqual(values(parsed, "vllm:num_requests_waiting"), [
    [{ model_name: "meta-llama/Llama-3.1-8B-Instruct", engine: "0" }, 3],
    [{ model_name: "meta-llama/Llama-3.1-8B-Instruct", engine: "1" }, 1],
  ]);
  for (const name of names) assert.deepEqual(values(parsed, name), general(text, name), name);
  assert.equal(parsed.samples.get("vllm:cache_config_info")![1].labels.num_gpu_blocks, "9000");
  assert.equal(parsed.samples.get("vllm:lora_requests_info")![0].value, 1718309200.5);
  assert.equal(
    parsed.samples.has("vllm:time_to_first_token_seconds_bucket"),
    false,
    "only wanted families are extracted",
  );
});

test("vLLM V0 page: the old KV-cache name, no engine label", () => {
  const text = vllmPage({
    version: "v0",
    engines: [{ waiting: 2, running: 9, kv: 0.5 }],
    cache: { blockSize: 16, numGpuBlocks: 2000 },
  });
  const parsed = parseSelectedFamilies(
    page(text),
    select("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "vllm:num_requests_running"),
  );
  assert.equal(parsed.samples.has("vllm:kv_cache_usage_perc"), false);
  assert.deepEqual(values(parsed, "vllm:gpu_cache_usage_perc"), [
    [{ model_name: "meta-llama/Llama-3.1-8B-Instruct" }, 0.5],
  ]);
  assert.deepEqual(values(parsed, "vllm:num_requests_running"), general(text, "vllm:num_requests_running"));
});

test("SGLang, Triton and trtllm-serve pages", () => {
  const sg = sglangPage({
    ranks: [
      { waiting: 4, running: 2, kv: 0.3 },
      { waiting: 0, running: 6, kv: 0.1 },
    ],
    cache: { pageSize: 1, numPages: 500000 },
  });
  const sgParsed = parseSelectedFamilies(
    page(sg),
    select("sglang:num_queue_reqs", "sglang:token_usage", "sglang:cache_config_info"),
  );
  assert.deepEqual(
    sgParsed.samples.get("sglang:num_queue_reqs")!.map((s) => [s.labels.dp_rank, s.value]),
    [
      ["0", 4],
      ["1", 0],
    ],
  );
  assert.deepEqual(values(sgParsed, "sglang:token_usage"), general(sg, "sglang:token_usage"));

  const tr = tritonPage({
    models: [{ name: "tensorrt_llm", waiting: 2, running: 3, kv: 0.4875, tokensPerBlock: 64, maxBlocks: 6239 }],
  });
  const trParsed = parseSelectedFamilies(
    page(tr),
    select("nv_trt_llm_request_metrics", "nv_trt_llm_kv_cache_block_metrics"),
  );
  assert.deepEqual(
    values(trParsed, "nv_trt_llm_kv_cache_block_metrics"),
    general(tr, "nv_trt_llm_kv_cache_block_metrics"),
  );
  assert.equal(
    trParsed.samples.get("nv_trt_llm_request_metrics")!.find((s) => s.labels.request_type === "waiting")!.value,
    2,
  );

  const ts = trtllmServePage({ load: { waiting: 5, running: 8, kv: 0.6 }, tokensPerBlock: 32, maxBlocks: 4000 });
  const tsParsed = parseSelectedFamilies(
    page(ts),
    select("trtllm_num_requests_waiting", "trtllm_kv_cache_utilization", "trtllm_kv_cache_tokens_per_block"),
  );
  assert.deepEqual(values(tsParsed, "trtllm_num_requests_waiting"), [
    [{ model_name: "meta-llama/Llama-3.1-8B-Instruct", engine_type: "trtllm" }, 5],
  ]);
  assert.equal(tsParsed.samples.get("trtllm_kv_cache_tokens_per_block")![0].value, 32);
});

test("OpenMetrics: # EOF, escaped label values, timestamps, exemplars, UNIT lines, exponents", () => {
  const text = readFileSync("tests/companion/fixtures/openmetrics-edge.txt");
  const parsed = parseSelectedFamilies(
    text,
    select(
      "vllm:num_requests_waiting",
      "vllm:num_requests_running",
      "vllm:prompt_tokens_total",
      "vllm:kv_cache_usage_perc",
      "vllm:lora_requests_info",
    ),
    true,
  );
  assert.equal(parsed.sawEof, true);
  assert.deepEqual(values(parsed, "vllm:num_requests_waiting"), [
    [{ model_name: 'a "quoted" model', engine: "0" }, 2],
    [{ engine: "1", model_name: "path\\with\\backslashes" }, 3],
  ]);
  assert.deepEqual(values(parsed, "vllm:num_requests_running"), [[{ model_name: "multi\nline", engine: "0" }, 4]]);
  assert.deepEqual(values(parsed, "vllm:prompt_tokens_total"), [[{ model_name: "m", engine: "0" }, 17]]);
  assert.deepEqual(
    values(parsed, "vllm:kv_cache_usage_perc").map(([, v]) => v),
    [0.5, 0.25],
  );
  assert.deepEqual(parsed.samples.get("vllm:lora_requests_info")![1].labels, {
    max_lora: "2",
    running_lora_adapters: "sql-lora,tweet-lora",
    waiting_lora_adapters: "ça-lora",
  });
  assert.throws(
    () => parseSelectedFamilies(text.subarray(0, text.indexOf("# EOF")), select("vllm:num_requests_waiting"), true),
    { message: "page truncated: OpenMetrics page without # EOF" },
  );
  const om = vllmPage({ version: "v1", openMetrics: true, engines: [{ waiting: 6, running: 1, kv: 0.5 }] });
  assert.deepEqual(
    values(parseSelectedFamilies(page(om), select("vllm:num_requests_waiting"), true), "vllm:num_requests_waiting").map(
      ([, v]) => v,
    ),
    [6],
  );
});

test("text format quirks: CRLF, blank lines, blanks around labels, trailing comma, timestamps, comments naming a family", () => {
  const parsed = parseSelectedFamilies(
    readFileSync("tests/companion/fixtures/text-edge.prom"),
    select("sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage"),
  );
  assert.deepEqual(values(parsed, "sglang:num_queue_reqs"), [[{ model_name: "m" }, 5]]);
  assert.deepEqual(values(parsed, "sglang:num_running_reqs"), [[{ model_name: "m" }, 7]]);
  assert.deepEqual(
    values(parsed, "sglang:token_usage"),
    [
      [{ model_name: "m" }, 0.125],
      [{ model_name: "n" }, Infinity],
    ],
    "prefix-sharing names and comments are not samples",
  );
});

test("CRLF pages: blank lines (empty, or blanks then CR) are skipped", () => {
  const sel = select("vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc");
  const pages = [
    '# TYPE vllm:num_requests_waiting gauge\r\nvllm:num_requests_waiting{model_name="m"} 1.0\r\n\r\nvllm:gpu_cache_usage_perc{model_name="m"} 0.3\r\n',
    '# TYPE vllm:num_requests_waiting gauge\r\nvllm:num_requests_waiting{model_name="m"} 1.0\r\n \t \r\nvllm:gpu_cache_usage_perc{model_name="m"} 0.3\r\n',
    '\r\nvllm:num_requests_waiting{model_name="m"} 1.0\r\n\r\n\r\nvllm:gpu_cache_usage_perc{model_name="m"} 0.3\r\n\r\n',
  ];
  for (const text of pages) {
    const parsed = parseSelectedFamilies(page(text), sel);
    assert.deepEqual(values(parsed, "vllm:num_requests_waiting"), [[{ model_name: "m" }, 1]], JSON.stringify(text));
    assert.deepEqual(values(parsed, "vllm:gpu_cache_usage_perc"), [[{ model_name: "m" }, 0.3]], JSON.stringify(text));
  }
  // A CR that does not end a line is still not an exposition line.
  assert.throws(() => parseSelectedFamilies(page("vllm:num_requests_waiting 1\n\rx\n"), sel), {
    message: 'line 2: not a metrics exposition line: "\\rx"',
  });
});

test("special values in any case, as Go's ParseFloat (and so Prometheus) reads them", () => {
  const sel = select("a");
  const read = (v: string) => parseSelectedFamilies(page(`a ${v}\n`), sel).samples.get("a")![0].value;
  for (const v of ["NaN", "nan", "NAN", "nAn"]) assert.ok(Number.isNaN(read(v)), v);
  for (const v of ["+Inf", "Inf", "inf", "+inf", "INF", "infinity", "+Infinity"]) assert.equal(read(v), Infinity, v);
  for (const v of ["-Inf", "-inf", "-INF", "-infinity"]) assert.equal(read(v), -Infinity, v);
  for (const v of ["-nan", "+nan", "infin", "nann", "in"]) {
    assert.throws(
      () => read(v),
      { message: `line 1, column 3: bad value ${JSON.stringify(v)} in ${JSON.stringify(`a ${v}`)}` },
      v,
    );
  }
});

test("bad pages give a clear error, never a crash", () => {
  const sel = select("vllm:num_requests_waiting");
  const cases: Array<[string, string]> = [
    [
      "<html><body>502 Bad Gateway</body></html>\n",
      'line 1: not a metrics exposition line: "<html><body>502 Bad Gateway</body></html>"',
    ],
    ['[{"numActiveRequests": 2}]\n', 'line 1: not a metrics exposition line: "[{\\"numActiveRequests\\": 2}]"'],
    ["Internal Server Error\n", 'line 1, column 10: bad value "Server" in "Internal Server Error"'],
    ["# HELP x y\nvllm:num_requests_waiting 3", "page truncated: line 2 has no newline"],
    ['vllm:num_requests_waiting{model_name="m"', "page truncated: line 1 has no newline"],
    [
      'vllm:num_requests_waiting{model_name="m"\n',
      'line 1, column 41: expected "," or "}" after the value of label model_name in "vllm:num_requests_waiting{model_name=\\"m\\""',
    ],
    [
      "vllm:num_requests_waiting{model_name=m} 1\n",
      'line 1, column 38: expected a quoted value for label model_name in "vllm:num_requests_waiting{model_name=m} 1"',
    ],
    ["vllm:num_requests_waiting 0x10\n", 'line 1, column 27: bad value "0x10" in "vllm:num_requests_waiting 0x10"'],
    [
      "vllm:num_requests_waiting\n",
      'line 1, column 26: expected a blank before the value in "vllm:num_requests_waiting"',
    ],
    [
      "vllm:num_requests_waiting 1 2 3\n",
      'line 1, column 31: unexpected text after the value in "vllm:num_requests_waiting 1 2 3"',
    ],
    [
      "vllm:num_requests_waiting 1 abc\n",
      'line 1, column 29: bad timestamp "abc" in "vllm:num_requests_waiting 1 abc"',
    ],
    [
      'vllm:num_requests_waiting{a="\\q"} 1\n',
      'line 1, column 30: invalid escape \\q in "vllm:num_requests_waiting{a=\\"\\\\q\\"} 1"',
    ],
    ["other 1\n# EOF\nvllm:num_requests_waiting 1\n", "line 3: content after # EOF"],
    ["other 1\n\u0000\u0001\u0002\n", 'line 2: not a metrics exposition line: "\\u0000\\u0001\\u0002"'],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseSelectedFamilies(page(text), sel),
      (e: unknown) => e instanceof PageError && e.message === message,
      `${JSON.stringify(text)} -> ${message}`,
    );
  }
  // NaN is a value the parser reports; whether it is acceptable is the extractor's decision.
  assert.ok(
    Number.isNaN(
      parseSelectedFamilies(page("vllm:num_requests_waiting NaN\n"), sel).samples.get("vllm:num_requests_waiting")![0]
        .value,
    ),
  );
});

test("an empty page is a valid Prometheus text page with no samples; an empty OpenMetrics page lacks # EOF", () => {
  const sel = select("vllm:num_requests_waiting");
  const parsed = parseSelectedFamilies(page(""), sel);
  assert.equal(parsed.samples.size, 0);
  assert.equal(parsed.empty, true);
  assert.equal(parseSelectedFamilies(page("\n# HELP x y\n"), sel).empty, false);
  assert.throws(() => parseSelectedFamilies(page(""), sel, true), {
    message: "page truncated: OpenMetrics page without # EOF",
  });
});

test("random garbage never escapes as anything but a PageError", () => {
  const sel = select("vllm:num_requests_waiting", "a", "vllm:kv_cache_usage_perc");
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const base = Buffer.from(vllmPage({ version: "v1", engines: [{ waiting: 1, running: 1, kv: 0.1 }] }));
  for (let round = 0; round < 300; round++) {
    const mutated = Buffer.from(base);
    for (let k = 0; k < 5; k++) mutated[Math.floor(rand() * mutated.length)] = Math.floor(rand() * 256);
    const cut = rand() < 0.3 ? mutated.subarray(0, Math.floor(rand() * mutated.length)) : mutated;
    try {
      parseSelectedFamilies(cut, sel, rand() < 0.5);
    } catch (e) {
      assert.ok(e instanceof PageError, `round ${round}: ${(e as Error).stack}`);
    }
  }
});

test("label sets seen before are reused, frozen, and never confused: braces and quotes inside values, near misses", () => {
  const sel = select("m");
  const text =
    'm{a="x}",b="1"} 1\n' + // a brace inside a value does not end the set
    'm{a="x\\"}",b="1"} 2\n' + // nor an escaped quote followed by a brace
    'm{a="x\\\\",b="}"} 3\n' + // an escaped backslash ends the value; the next value holds a brace
    'm{a="x}",b="2"} 4\n' + // one byte from the first set
    'm{a="x}",b="1"} 5\n'; // the first set again
  const want = [
    [{ a: "x}", b: "1" }, 1],
    [{ a: 'x"}', b: "1" }, 2],
    [{ a: "x\\", b: "}" }, 3],
    [{ a: "x}", b: "2" }, 4],
    [{ a: "x}", b: "1" }, 5],
  ];
  for (let scrape = 0; scrape < 2; scrape++) {
    const samples = parseSelectedFamilies(page(text), sel).samples.get("m")!;
    assert.deepEqual(
      samples.map((s) => [{ ...s.labels }, s.value]),
      want,
    );
    assert.equal(samples[0].labels, samples[4].labels, "the same set is one object");
    assert.ok(Object.isFrozen(samples[0].labels));
  }
  // A set the cache has seen stays an error where the rest of the line is bad.
  assert.throws(() => parseSelectedFamilies(page('m{a="x}",b="1"} oops\n'), sel), PageError);
  assert.throws(() => parseSelectedFamilies(page('m{a="x}",b="1" 1\n'), sel), PageError);
});
