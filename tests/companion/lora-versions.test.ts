// vllm:lora_requests_info as each vLLM generation fills it, and the adapter lists the companion hands the
// filter: disjoint, every adapter once, an adapter in both labels counted as running. The filter's
// lora-affinity-scorer counts running + waiting against max_lora, so a list pair that names an adapter twice
// would count it twice.
//
// What each version writes (the gauge's value is always the time of its last update; the newest series is
// current):
// - V0 (vllm/engine/llm_engine.py `_get_stats`, vllm/engine/metrics.py; vLLM 0.6.4 to 0.10): running = the
//   LoRA names of `scheduler.running`, waiting = those of `scheduler.waiting`; an adapter with requests in
//   both queues is in both labels. max_lora is "0" without --enable-lora (the gauge is always there).
// - V1 up to vLLM PR #26801 (vllm/v1/metrics/stats.py `LoRARequestStates.update_iteration_stats`): the same
//   two sets, each written only when non-empty. The gauge exists only with a LoRA config.
// - V1 since PR #26801 (`LoRARequestStates.update_scheduler_stats`, joined by vllm/v1/metrics/loggers.py):
//   both labels are the keys of one dict, every adapter with a request in flight, running or queued.
// The two V1 readings cannot be told apart from a page in which every adapter is in both labels; reading
// an adapter in both as running is right for the current one and for the older ones alike. Except when
// more adapters are listed than max_lora: no version runs that many, so it is current V1's in-flight set
// with some adapters only queued, which ones unknown; then none is reported running, all waiting.
import { test } from "node:test";
import assert from "node:assert/strict";
import { extractMetrics, normaliseLora } from "../../companion/extract";
import { familiesOf, type EngineMapping } from "../../companion/engines";
import { loadPickerConfig } from "../../companion/picker-config";
import { FamilySelector, parseSelectedFamilies } from "../../companion/prom-parser";
import { vllmPage } from "./fixtures/pages";

const vllm: EngineMapping = loadPickerConfig(null).engines.engines.get("vllm")!;
const read = (text: string) =>
  extractMetrics(parseSelectedFamilies(Buffer.from(text), new FamilySelector(familiesOf(vllm))), vllm);

/** The real free-slot arithmetic of the filter (filter/scoring/lora-affinity-scorer.ts loraScore). */
const freeSlot = (l: { running: string[]; waiting: string[]; max: number }) =>
  l.running.length + l.waiting.length < l.max;

// The head of a real vLLM V0 page (Qwen/Qwen2.5-Coder-1.5B-Instruct, served without --enable-lora), as
// vllm-project/aibrix docs/source/features/runtime.rst (e3e10f9e) shows it.
const V0_REAL = `# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",calculate_kv_scales="False",cpu_offload_gb="0",enable_prefix_caching="False",gpu_memory_utilization="0.9",is_attention_free="False",num_cpu_blocks="9362",num_gpu_blocks="81767",num_gpu_blocks_override="None",sliding_window="None",swap_space_bytes="4294967296"} 1.0
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="Qwen/Qwen2.5-Coder-1.5B-Instruct"} 0.0
# HELP vllm:num_requests_swapped Number of requests swapped to CPU.
# TYPE vllm:num_requests_swapped gauge
vllm:num_requests_swapped{model_name="Qwen/Qwen2.5-Coder-1.5B-Instruct"} 0.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="Qwen/Qwen2.5-Coder-1.5B-Instruct"} 0.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="Qwen/Qwen2.5-Coder-1.5B-Instruct"} 0.0
# HELP vllm:cpu_cache_usage_perc CPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:cpu_cache_usage_perc gauge
vllm:cpu_cache_usage_perc{model_name="Qwen/Qwen2.5-Coder-1.5B-Instruct"} 0.0
# HELP vllm:cpu_prefix_cache_hit_rate CPU prefix cache block hit rate.
# TYPE vllm:cpu_prefix_cache_hit_rate gauge
vllm:cpu_prefix_cache_hit_rate{model_name="Qwen/Qwen2.5-Coder-1.5B-Instruct"} -1.0
# HELP vllm:gpu_prefix_cache_hit_rate GPU prefix cache block hit rate.
# TYPE vllm:gpu_prefix_cache_hit_rate gauge
vllm:gpu_prefix_cache_hit_rate{model_name="Qwen/Qwen2.5-Coder-1.5B-Instruct"} -1.0
# HELP vllm:lora_requests_info Running stats on lora requests.
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="0",running_lora_adapters="",waiting_lora_adapters=""} 1.7382173358407154e+09
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{model_name="Qwen/Qwen2.5-Coder-1.5B-Instruct"} 0.0
`;

// Real V0 series with an adapter (max_lora 1), from vLLM PR #13303's description (February 2025, before
// V1 had the gauge): the series of all label sets ever set, each holding its last update time.
const V0_TEST_LORA = [
  'vllm:lora_requests_info{max_lora="1",running_lora_adapters="",waiting_lora_adapters=""} 1.7395575657589855e+09',
  'vllm:lora_requests_info{max_lora="1",running_lora_adapters="test-lora",waiting_lora_adapters=""} 1.7395575723949368e+09',
  'vllm:lora_requests_info{max_lora="1",running_lora_adapters="test-lora",waiting_lora_adapters="test-lora"} 1.7395575717647147e+09',
];

test("vLLM V0, a real page without --enable-lora: max_lora 0 (unknown), no adapters", () => {
  const m = read(V0_REAL);
  assert.deepEqual(m.lora, { running: [], waiting: [], max: 0 });
  assert.deepEqual([m.queued, m.running, m.kvUsage], [0, 0, 0]);
  assert.deepEqual(m.cache, { blockSize: 16, numBlocks: 81767 });
  assert.deepEqual(m.models, ["Qwen/Qwen2.5-Coder-1.5B-Instruct"]);
});

test("vLLM V0 with an adapter (real series): the newest wins; running and waiting at once counts once, as running", () => {
  const family =
    "# HELP vllm:lora_requests_info Running stats on lora requests.\n# TYPE vllm:lora_requests_info gauge\n";
  const all = read(family + V0_TEST_LORA.join("\n") + "\n").lora!;
  assert.deepEqual(all, { running: ["test-lora"], waiting: [], max: 1 });
  // One scrape earlier the newest series was the one naming test-lora in both labels: the adapter had a
  // request running and another queued. It holds one slot of one; the filter must not read two.
  const earlier = read(family + V0_TEST_LORA.filter((_, i) => i !== 1).join("\n") + "\n").lora!;
  assert.deepEqual(earlier, { running: ["test-lora"], waiting: [], max: 1 });
  assert.equal(freeSlot(earlier), false, "the only slot is taken");
});

test("vLLM V0 / V1 before PR #26801: an adapter that only waits stays waiting", () => {
  for (const version of ["v0", "v1"] as const) {
    const lora = read(
      vllmPage({
        version,
        engines: [{ waiting: 3, running: 4, kv: 0.3 }],
        lora: {
          maxLora: 4,
          history: [{ running: ["a1", "a3"], waiting: ["a0", "a3"], timestamp: 1_740_000_000.5 }],
        },
      }),
    ).lora!;
    assert.deepEqual(lora, { running: ["a1", "a3"], waiting: ["a0"], max: 4 }, version);
    assert.equal(freeSlot(lora), true, "a1, a3 and a0 hold 3 of 4 slots");
  }
});

test("current vLLM V1: both labels carry the same set; each adapter counts once, as running", () => {
  // A real scrape of vLLM (v0.29 CPU image, 2026-09, --max-loras 2) during one request for adapter alpaca.
  const real = read(
    vllmPage({
      version: "v1",
      engines: [{ waiting: 0, running: 1, kv: 0.01 }],
      lora: { maxLora: 2, history: [{ running: ["alpaca"], waiting: ["alpaca"], timestamp: 1.789828498802105e9 }] },
    }),
  ).lora!;
  assert.deepEqual(real, { running: ["alpaca"], waiting: [], max: 2 });
  assert.equal(freeSlot(real), true, "alpaca holds one slot of two (not two of two)");

  const three = ["sql-lora", "chat-lora", "tweet-lora"];
  const busy = read(
    vllmPage({
      version: "v1",
      engines: [{ waiting: 5, running: 9, kv: 0.4 }],
      lora: {
        maxLora: 4,
        history: [
          { running: three, waiting: three, timestamp: 1_790_000_010.25 },
          { running: ["sql-lora"], waiting: ["sql-lora"], timestamp: 1_790_000_001 },
          { running: [], waiting: [], timestamp: 1_790_000_000 },
        ],
      },
    }),
  ).lora!;
  assert.deepEqual(busy, { running: three, waiting: [], max: 4 });
  assert.equal(freeSlot(busy), true, "3 adapters in flight, 4 slots: one is free (6 < 4 would say none)");
});

test("current vLLM V1, more adapters in flight than slots: none known to run, the pod full", () => {
  const five = ["a1", "a3", "a6", "a7", "a0"];
  const lora = read(
    vllmPage({
      version: "v1",
      engines: [{ waiting: 41, running: 62, kv: 0.63 }],
      lora: { maxLora: 4, history: [{ running: five, waiting: five, timestamp: 1_790_000_100 }] },
    }),
  ).lora!;
  assert.deepEqual(lora, { running: [], waiting: five, max: 4 });
  assert.equal(freeSlot(lora), false);
  // V0 and early V1 never list more running adapters than slots; with max_lora 0 (unknown) nothing is judged.
  assert.deepEqual(normaliseLora(["a", "b", "c"], ["d"], 0), { running: ["a", "b", "c"], waiting: ["d"], max: 0 });
  assert.deepEqual(normaliseLora(["a", "b"], ["a", "b", "c"], 2), { running: ["a", "b"], waiting: ["c"], max: 2 });
});

test("normaliseLora: disjoint, duplicates dropped, order kept", () => {
  assert.deepEqual(normaliseLora(["b", "a", "b"], ["c", "a", "c", "d"], 3), {
    running: ["b", "a"],
    waiting: ["c", "d"],
    max: 3,
  });
  assert.deepEqual(normaliseLora([], ["x", "x"], 0), { running: [], waiting: ["x"], max: 0 });
});
