import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { extractMetrics } from "../../companion/extract";
import { familiesOf, type EngineMapping } from "../../companion/engines";
import { loadPickerConfig } from "../../companion/picker-config";
import { FamilySelector, parseSelectedFamilies } from "../../companion/prom-parser";
import { sglangPage, trtllmServePage, tritonPage, vllmPage } from "./fixtures/pages";

const engines = loadPickerConfig(null).engines;
const engine = (name: string): EngineMapping => engines.engines.get(name)!;
const read = (text: string | Buffer, mapping: EngineMapping, openMetrics = false) =>
  extractMetrics(
    parseSelectedFamilies(
      Buffer.isBuffer(text) ? text : Buffer.from(text),
      new FamilySelector(familiesOf(mapping)),
      openMetrics,
    ),
    mapping,
  );

test("vLLM V1 data-parallel: counts summed over engines, KV cache the mean, cache blocks summed", () => {
  const text = vllmPage({
    version: "v1",
    engines: [
      { waiting: 3, running: 7, kv: 0.25 },
      { waiting: 1, running: 5, kv: 0.75 },
      { waiting: 0, running: 0, kv: 0.2 },
    ],
    cache: { blockSize: 16, numGpuBlocks: 9000 },
  });
  const m = read(text, engine("vllm"));
  assert.equal(m.queued, 4);
  assert.equal(m.running, 12);
  assert.ok(Math.abs(m.kvUsage! - 0.4) < 1e-12, `mean of 0.25, 0.75, 0.2 is 0.4, got ${m.kvUsage}`);
  assert.deepEqual(m.cache, { blockSize: 16, numBlocks: 27000 });
  assert.equal(m.lora, null, "no LoRA family on the page -> null");
  assert.deepEqual(m.models, ["meta-llama/Llama-3.1-8B-Instruct"], "the served model, once for all ranks");
});

test("vLLM V0: the KV cache falls back to vllm:gpu_cache_usage_perc; V1 pages use the V1 name", () => {
  const v0 = read(
    vllmPage({
      version: "v0",
      engines: [{ waiting: 2, running: 9, kv: 0.5 }],
      cache: { blockSize: 32, numGpuBlocks: 2000 },
    }),
    engine("vllm"),
  );
  assert.deepEqual(v0, {
    queued: 2,
    running: 9,
    kvUsage: 0.5,
    lora: null,
    cache: { blockSize: 32, numBlocks: 2000 },
    models: ["meta-llama/Llama-3.1-8B-Instruct"],
  });
  // A V1 page carries both names; the V1 gauge wins even where the deprecated one says otherwise.
  const v1 = vllmPage({ version: "v1", engines: [{ waiting: 0, running: 0, kv: 0.3 }] }).replace(
    /^(vllm:gpu_cache_usage_perc\{[^}]*\}) .*$/m,
    "$1 0.9",
  );
  assert.equal(read(v1, engine("vllm")).kvUsage, 0.3);
});

test("LoRA info: the series with the largest value (last update) wins; adapters split on commas", () => {
  const text = vllmPage({
    version: "v1",
    engines: [{ waiting: 0, running: 1, kv: 0.1 }],
    lora: {
      maxLora: 4,
      history: [
        { running: ["old"], waiting: [], timestamp: 1718309100 },
        { running: ["sql-lora", "tweet-lora"], waiting: ["chat-lora"], timestamp: 1718309300.25 },
        { running: [], waiting: [], timestamp: 1718309200 },
      ],
    },
  });
  assert.deepEqual(read(text, engine("vllm")).lora, {
    running: ["sql-lora", "tweet-lora"],
    waiting: ["chat-lora"],
    max: 4,
  });
  const om = read(readFileSync("tests/companion/fixtures/openmetrics-edge.txt"), engine("vllm"), true);
  assert.deepEqual(om.lora, { running: ["sql-lora", "tweet-lora"], waiting: ["ça-lora"], max: 2 });
  assert.equal(om.queued, 5);
  assert.equal(om.kvUsage, 0.375);
});

test("SGLang: dp ranks summed, token usage averaged, page_size/num_pages cache info", () => {
  const m = read(
    sglangPage({
      ranks: [
        { waiting: 4, running: 2, kv: 0.3 },
        { waiting: 1, running: 6, kv: 0.1 },
      ],
      cache: { pageSize: 1, numPages: 500000 },
    }),
    engine("sglang"),
  );
  assert.equal(m.queued, 5);
  assert.equal(m.running, 8);
  assert.ok(Math.abs(m.kvUsage! - 0.2) < 1e-12);
  assert.deepEqual(m.cache, { blockSize: 1, numBlocks: 1000000 });
  assert.equal(m.lora, null);
});

test("Triton TensorRT-LLM: request_type and kv_cache_block_type series, gauge-style cache info, several models", () => {
  const m = read(
    tritonPage({
      models: [
        { name: "llama", waiting: 2, running: 3, kv: 0.4, tokensPerBlock: 64, maxBlocks: 6000 },
        { name: "mistral", waiting: 1, running: 4, kv: 0.6, tokensPerBlock: 64, maxBlocks: 4000 },
      ],
    }),
    engine("triton-tensorrt-llm"),
  );
  assert.equal(m.queued, 3);
  assert.equal(m.running, 7);
  assert.ok(Math.abs(m.kvUsage! - 0.5) < 1e-12);
  assert.deepEqual(m.cache, { blockSize: 64, numBlocks: 10000 });
  assert.deepEqual(
    m.models,
    [],
    "Triton's `model` label names its own model repository entries, not what clients send",
  );
});

test("trtllm-serve", () => {
  const m = read(
    trtllmServePage({ load: { waiting: 5, running: 8, kv: 0.6 }, tokensPerBlock: 32, maxBlocks: 4000 }),
    engine("trtllm-serve"),
  );
  assert.deepEqual(m, {
    queued: 5,
    running: 8,
    kvUsage: 0.6,
    lora: null,
    cache: { blockSize: 32, numBlocks: 4000 },
    models: ["meta-llama/Llama-3.1-8B-Instruct"],
  });
});

test("disabled or absent metrics are null; a page without any of the engine's metrics is an error", () => {
  const triton = loadPickerConfig(null, {
    modelServerType: "triton-tensorrt-llm",
    loraInfoMetric: "",
    kvCacheUsagePercentageMetric: "",
  }).engines.unlabelled;
  const m = read(
    tritonPage({ models: [{ name: "t", waiting: 2, running: 3, kv: 0.4, tokensPerBlock: 64, maxBlocks: 10 }] }),
    triton,
  );
  assert.equal(m.kvUsage, null);
  assert.equal(m.queued, 2);
  assert.throws(() => read(sglangPage({ ranks: [{ waiting: 1, running: 1, kv: 0.1 }] }), engine("vllm")), {
    message:
      "none of engine vllm's metrics are on the page (looked for vllm:num_requests_waiting, vllm:num_requests_running, vllm:kv_cache_usage_perc, vllm:lora_requests_info, vllm:cache_config_info)",
  });
});

test("values that would be silently wrong are errors", () => {
  const vllm = engine("vllm");
  const cases: Array<[string, string]> = [
    ["vllm:num_requests_waiting NaN\n", "vllm:num_requests_waiting: value NaN is not a finite number"],
    ["vllm:num_requests_running +Inf\n", "vllm:num_requests_running: value Infinity is not a finite number"],
    ["vllm:num_requests_waiting -2\n", "vllm:num_requests_waiting: negative count -2"],
    ["vllm:kv_cache_usage_perc 45\n", "vllm:kv_cache_usage_perc: utilisation 45 is outside 0..1"],
    ["vllm:kv_cache_usage_perc NaN\n", "vllm:kv_cache_usage_perc: utilisation NaN is not a finite number"],
    [
      'vllm:lora_requests_info{max_lora="four",running_lora_adapters="",waiting_lora_adapters=""} 1\n',
      'vllm:lora_requests_info: max_lora "four" is not a whole number',
    ],
    [
      'vllm:cache_config_info{block_size="16",engine="0"} 1\nvllm:cache_config_info{block_size="32",engine="1"} 1\n',
      "vllm:cache_config_info: ranks disagree on the cache block size (16 and 32)",
    ],
  ];
  const many = Array.from({ length: 1025 }, (_, i) => `a${i}`).join(",");
  cases.push([
    `vllm:lora_requests_info{max_lora="1",running_lora_adapters="${many}",waiting_lora_adapters=""} 1\n`,
    "vllm:lora_requests_info: 1025 adapters in running_lora_adapters (more than 1024)",
  ]);
  cases.push([
    `vllm:lora_requests_info{max_lora="1",running_lora_adapters="",waiting_lora_adapters="${"x".repeat(1025)}"} 1\n`,
    "vllm:lora_requests_info: an adapter name in waiting_lora_adapters is longer than 1024 bytes",
  ]);
  for (const [text, message] of cases) assert.throws(() => read(text, vllm), { message }, text.slice(0, 80));
  assert.equal(read("vllm:kv_cache_usage_perc 1.0000000001\n", vllm).kvUsage, 1, "float noise above 1 is clamped");
  assert.deepEqual(
    read('vllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1\n', vllm).cache,
    { blockSize: 16, numBlocks: 0 },
    "vLLM's None = unknown",
  );
});

test("spec labels select series", () => {
  const mapping = loadPickerConfig(null, { totalQueuedRequestsMetric: 'vllm:num_requests_waiting{model_name="b"}' })
    .engines.unlabelled;
  const text = 'vllm:num_requests_waiting{model_name="a"} 4\nvllm:num_requests_waiting{model_name="b"} 6\n';
  assert.equal(read(text, mapping).queued, 6);
});
