import { test } from "node:test";
import assert from "node:assert/strict";
import { formatMetricSpec, parseMetricSpec, specMatches } from "../../companion/metric-spec";

test("specs: names, bare and quoted values, blanks, trailing comma", () => {
  assert.deepEqual(parseMetricSpec("vllm:num_requests_waiting"), { name: "vllm:num_requests_waiting", labels: [] });
  assert.deepEqual(parseMetricSpec("nv_trt_llm_request_metrics{request_type=waiting}"), {
    name: "nv_trt_llm_request_metrics",
    labels: [["request_type", "waiting"]],
  });
  assert.deepEqual(parseMetricSpec(' m { a = "x y" , b=2.5,c="q\\"\\\\\\n" , } '), {
    name: "m",
    labels: [
      ["a", "x y"],
      ["b", "2.5"],
      ["c", 'q"\\\n'],
    ],
  });
  assert.deepEqual(parseMetricSpec("m{}"), { name: "m", labels: [] });
  assert.deepEqual(parseMetricSpec('m{model="meta-llama/Llama-3.1-8B"}')!.labels, [
    ["model", "meta-llama/Llama-3.1-8B"],
  ]);
  assert.deepEqual(parseMetricSpec("m{path=/a/b:c-d.e}")!.labels, [["path", "/a/b:c-d.e"]]);
});

test('specs: "" and blanks disable the metric', () => {
  assert.equal(parseMetricSpec(""), null);
  assert.equal(parseMetricSpec("   "), null);
});

test("specs: bad input gives the exact message", () => {
  const cases: Array<[string, string]> = [
    ["{a=b}", 'invalid metric spec "{a=b}": expected a metric name, found "{" at offset 0'],
    ["9m", 'invalid metric spec "9m": expected a metric name, found "9" at offset 0'],
    ["m{a=b", 'invalid metric spec "m{a=b": missing "}" at end of spec'],
    ["m{a=b,", 'invalid metric spec "m{a=b,": missing "}" at end of spec'],
    ["m{=b}", 'invalid metric spec "m{=b}": expected a label name, found "=" at offset 2'],
    ["m{a b}", 'invalid metric spec "m{a b}": expected "=" after label "a", found "b" at offset 4'],
    ["m{a!=b}", 'invalid metric spec "m{a!=b}": only "=" matchers are supported, label "a" uses "!="'],
    ["m{a=~b}", 'invalid metric spec "m{a=~b}": only "=" matchers are supported, label "a" uses "=~"'],
    ["m{a!~b}", 'invalid metric spec "m{a!~b}": only "=" matchers are supported, label "a" uses "!~"'],
    ["m{a=}", 'invalid metric spec "m{a=}": missing value for label "a", found "}" at offset 4'],
    ['m{a="x}', 'invalid metric spec "m{a=\\"x}": unterminated quoted value for label "a"'],
    ['m{a="\\t"}', 'invalid metric spec "m{a=\\"\\\\t\\"}": invalid escape "\\t" in the value of label "a"'],
    ["m{a=1,a=2}", 'invalid metric spec "m{a=1,a=2}": label "a" appears twice'],
    [
      "m{a=1 b=2}",
      'invalid metric spec "m{a=1 b=2}": expected "," or "}" after the value of label "a", found "b" at offset 6',
    ],
    [
      "m{__name__=x}",
      'invalid metric spec "m{__name__=x}": label name "__name__" is reserved (names starting with "__")',
    ],
    ["m x", 'invalid metric spec "m x": unexpected "x" at offset 2 after the metric name'],
    ["m{a=b} x", 'invalid metric spec "m{a=b} x": unexpected "x" at offset 7 after the metric selector'],
    ["m{a=b}}", 'invalid metric spec "m{a=b}}": unexpected "}" at offset 6 after the metric selector'],
    ["m-x", 'invalid metric spec "m-x": unexpected "-" at offset 1 after the metric name'],
  ];
  for (const [spec, message] of cases) assert.throws(() => parseMetricSpec(spec), { message }, spec);
});

test("specs: formatting and matching", () => {
  const spec = parseMetricSpec('m{a=x,b="has space"}')!;
  assert.equal(formatMetricSpec(spec), 'm{a=x,b="has space"}');
  assert.deepEqual(parseMetricSpec(formatMetricSpec(spec)), spec);
  assert.equal(formatMetricSpec(null), "");
  assert.equal(specMatches(spec, { a: "x", b: "has space", c: "other" }), true);
  assert.equal(specMatches(spec, { a: "x" }), false);
  assert.equal(specMatches(spec, { a: "y", b: "has space" }), false);
  assert.equal(specMatches(parseMetricSpec("m")!, {}), true);
});
