import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { VirtualClock } from "./clock";
import { Engine } from "./engine";
import { createExposition } from "./exposition/index";
import { ENGINE_KINDS, type EngineKind, makeProfile } from "./profile";
import { Rng } from "./rng";
import { TokenSequence, answerText, synthText } from "./text";
import { extractMetrics } from "../../companion/extract";
import { familiesOf } from "../../companion/engines";
import { loadPickerConfig } from "../../companion/picker-config";
import { FamilySelector, parseSelectedFamilies } from "../../companion/prom-parser";

interface Family {
  name: string;
  type: string;
  help: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string> }[];
}
const parsePrometheus = createRequire(import.meta.url)("parse-prometheus-text-format") as (text: string) => Family[];

/** An engine of `kind` mid-run: 12 requests arrived, some done, some running, some queued. */
function busyEngine(kind: EngineKind) {
  const profile = makeProfile({
    scheduler: { maxNumSeqs: 4 },
    metricsLagMs: 0,
    lora: { adapters: ["sql-lora", "chat-lora"], maxLoras: 2 },
  });
  const clock = new VirtualClock();
  const engine = new Engine(kind, profile, clock, 3);
  const exposition = createExposition(engine, { modelName: profile.model });
  for (let i = 0; i < 12; i++) {
    const adapter = i % 3 === 0 ? "sql-lora" : null;
    const prompt = synthText(new Rng(`e${i}`), 300);
    clock.at(i * 50, () =>
      engine.submit({
        id: `r${i}`,
        seq: new TokenSequence(prompt, answerText(prompt, adapter ?? profile.model, 400), adapter ?? profile.model),
        maxTokens: i < 4 ? 20 : 400,
        finishReason: "length",
        adapter,
        maxTokensParam: 400,
        onFinish: () => {},
      }),
    );
  }
  clock.run(2_000);
  return { engine, exposition, profile };
}

const CORE: Record<EngineKind, [string, string][]> = {
  "vllm-v1": [
    ["vllm:num_requests_waiting", "GAUGE"],
    ["vllm:num_requests_running", "GAUGE"],
    ["vllm:kv_cache_usage_perc", "GAUGE"],
    ["vllm:lora_requests_info", "GAUGE"],
    ["vllm:cache_config_info", "GAUGE"],
    ["vllm:time_to_first_token_seconds", "HISTOGRAM"],
    ["vllm:prompt_tokens_total", "COUNTER"],
    ["vllm:prefix_cache_hits_total", "COUNTER"],
  ],
  "vllm-v0": [
    ["vllm:num_requests_waiting", "GAUGE"],
    ["vllm:num_requests_running", "GAUGE"],
    ["vllm:gpu_cache_usage_perc", "GAUGE"],
    ["vllm:lora_requests_info", "GAUGE"],
    ["vllm:cache_config_info", "GAUGE"],
    ["vllm:e2e_request_latency_seconds", "HISTOGRAM"],
  ],
  sglang: [
    ["sglang:num_queue_reqs", "GAUGE"],
    ["sglang:num_running_reqs", "GAUGE"],
    ["sglang:token_usage", "GAUGE"],
    ["sglang:cache_config_info", "GAUGE"],
    ["sglang:time_to_first_token_seconds", "HISTOGRAM"],
  ],
  "triton-trtllm": [
    ["nv_trt_llm_request_metrics", "GAUGE"],
    ["nv_trt_llm_kv_cache_block_metrics", "GAUGE"],
    ["nv_inference_request_success", "COUNTER"],
    ["nv_llm_output_token_len", "HISTOGRAM"],
  ],
  "trtllm-serve": [
    ["trtllm_num_requests_waiting", "GAUGE"],
    ["trtllm_num_requests_running", "GAUGE"],
    ["trtllm_kv_cache_utilization", "GAUGE"],
    ["trtllm_kv_cache_tokens_per_block", "GAUGE"],
    ["trtllm_time_to_first_token_seconds", "HISTOGRAM"],
    ["trtllm_request_success_total", "COUNTER"],
  ],
};

/** The value of the only series of `name` whose labels include `match`. */
function value(families: Family[], name: string, match: Record<string, string> = {}): number {
  const f = families.find((x) => x.name === name);
  assert.ok(f, `${name} present`);
  const series = f.metrics.filter((m) => Object.entries(match).every(([k, v]) => m.labels?.[k] === v));
  assert.equal(series.length, 1, `one ${name} series matching ${JSON.stringify(match)}`);
  return Number(series[0].value);
}

for (const kind of ENGINE_KINDS) {
  test(`${kind}: /metrics parses and carries the core families with their types`, () => {
    const { engine, exposition } = busyEngine(kind);
    const text = exposition.render();
    const families = parsePrometheus(text);
    const types = new Map(families.map((f) => [f.name, f.type]));
    for (const [name, type] of CORE[kind]) assert.equal(types.get(name), type, `${name} is a ${type}`);
    assert.ok(
      families.every((f) => f.help.length > 0),
      "every family has HELP",
    );
    assert.equal(new Set(families.map((f) => f.name)).size, families.length, "no family twice");
    assert.ok(engine.numWaiting > 0 && engine.numRunning > 0, "the engine is busy");
    const [queued, running, kv] = {
      "vllm-v1": () => [
        value(families, "vllm:num_requests_waiting"),
        value(families, "vllm:num_requests_running"),
        value(families, "vllm:kv_cache_usage_perc"),
      ],
      "vllm-v0": () => [
        value(families, "vllm:num_requests_waiting"),
        value(families, "vllm:num_requests_running"),
        value(families, "vllm:gpu_cache_usage_perc"),
      ],
      sglang: () => [
        value(families, "sglang:num_queue_reqs"),
        value(families, "sglang:num_running_reqs"),
        value(families, "sglang:token_usage"),
      ],
      "triton-trtllm": () => [
        value(families, "nv_trt_llm_request_metrics", { request_type: "waiting" }),
        value(families, "nv_trt_llm_request_metrics", { request_type: "scheduled" }),
        value(families, "nv_trt_llm_kv_cache_block_metrics", { kv_cache_block_type: "fraction" }),
      ],
      "trtllm-serve": () => [
        value(families, "trtllm_num_requests_waiting"),
        value(families, "trtllm_num_requests_running"),
        value(families, "trtllm_kv_cache_utilization"),
      ],
    }[kind]();
    assert.equal(queued, engine.numWaiting);
    assert.equal(running, engine.numRunning);
    assert.ok(Math.abs(kv - engine.kvUsage) < 0.006, `kv ${kv} vs ${engine.kvUsage}`);
  });
}

test("vllm-v1: a page is tens of KB, cache_config_info and lora_requests_info carry what routers read", () => {
  const { engine, exposition, profile } = busyEngine("vllm-v1");
  const text = exposition.render();
  assert.ok(text.length > 20_000, `page is ${text.length} bytes`);
  const families = parsePrometheus(text);
  const cache = families.find((f) => f.name === "vllm:cache_config_info")!.metrics[0].labels!;
  assert.equal(cache.block_size, "16");
  assert.equal(cache.num_gpu_blocks, String(engine.numGpuBlocks));
  const lora = families.find((f) => f.name === "vllm:lora_requests_info")!.metrics;
  const latest = lora.reduce((a, b) => (Number(b.value) > Number(a.value) ? b : a));
  assert.equal(latest.labels!.max_lora, String(profile.lora.maxLoras));
  assert.equal(latest.labels!.running_lora_adapters, "sql-lora");
  assert.ok(
    Math.abs(Number(latest.value) - (engine.clock.epochMs + engine.clock.now()) / 1000) < 1,
    "value is the last-update Unix time",
  );
  // (parse-prometheus-text-format drops _count of labelled histograms, so read the line itself.)
  const count = /^vllm:time_to_first_token_seconds_count\{[^}]*\} (\S+)$/m.exec(text);
  assert.ok(count && Number(count[1]) >= 4, "finished requests observed");
});

test("vllm:lora_requests_info: V1 lists every adapter in flight in both labels (current vLLM), V0 running and waiting apart", () => {
  // One slot: sql-lora's requests hold it (some run, the rest queue past max-num-seqs), chat-lora waits for it.
  const profile = makeProfile({
    scheduler: { maxNumSeqs: 2 },
    metricsLagMs: 0,
    lora: { adapters: ["sql-lora", "chat-lora"], maxLoras: 1 },
  });
  const pages = new Map<string, string>();
  for (const kind of ["vllm-v1", "vllm-v0"] as const) {
    const clock = new VirtualClock();
    const engine = new Engine(kind, profile, clock, 5);
    const exposition = createExposition(engine, { modelName: profile.model });
    ["sql-lora", "sql-lora", "sql-lora", "chat-lora"].forEach((adapter, i) => {
      const prompt = synthText(new Rng(`l${i}`), 200);
      clock.at(i * 10, () =>
        engine.submit({
          id: `r${i}`,
          seq: new TokenSequence(prompt, answerText(prompt, adapter, 2000), adapter),
          maxTokens: 2000,
          finishReason: "length",
          adapter,
          maxTokensParam: 2000,
          onFinish: () => {},
        }),
      );
    });
    clock.run(1_000);
    pages.set(kind, exposition.render());
  }
  const latest = (text: string) => {
    const lora = parsePrometheus(text).find((f) => f.name === "vllm:lora_requests_info")!.metrics;
    return lora.reduce((a, b) => (Number(b.value) > Number(a.value) ? b : a)).labels!;
  };
  assert.deepEqual(latest(pages.get("vllm-v1")!), {
    max_lora: "1",
    waiting_lora_adapters: "sql-lora,chat-lora",
    running_lora_adapters: "sql-lora,chat-lora",
  });
  assert.deepEqual(latest(pages.get("vllm-v0")!), {
    running_lora_adapters: "sql-lora",
    max_lora: "1",
    waiting_lora_adapters: "sql-lora,chat-lora",
  });
  // The companion's reading: each adapter once. V1 lists two adapters in flight for one slot, so one of them
  // only waits, which one the page does not say: none is reported running, the pod is full.
  const vllm = loadPickerConfig(null).engines.engines.get("vllm")!;
  const lora = (kind: string) =>
    extractMetrics(parseSelectedFamilies(Buffer.from(pages.get(kind)!), new FamilySelector(familiesOf(vllm))), vllm)
      .lora;
  assert.deepEqual(lora("vllm-v1"), { running: [], waiting: ["sql-lora", "chat-lora"], max: 1 });
  assert.deepEqual(lora("vllm-v0"), { running: ["sql-lora"], waiting: ["chat-lora"], max: 1 });
});

test("gauges on the page lag by metricsLagMs; counters do not", () => {
  const profile = makeProfile({ metricsLagMs: 3000, scheduler: { maxNumSeqs: 2 } });
  const clock = new VirtualClock();
  const engine = new Engine("vllm-v1", profile, clock);
  const exposition = createExposition(engine, { modelName: profile.model });
  for (let i = 0; i < 6; i++) {
    const prompt = synthText(new Rng(`l${i}`), 100);
    engine.submit({
      id: `l${i}`,
      seq: new TokenSequence(prompt, answerText(prompt, profile.model, 3000), profile.model),
      maxTokens: 3000,
      finishReason: "length",
      adapter: null,
      maxTokensParam: null,
      onFinish: () => {},
    });
  }
  clock.run(1000);
  const early = parsePrometheus(exposition.render());
  assert.equal(value(early, "vllm:num_requests_waiting"), 0, "the page still shows the idle server");
  assert.ok(value(early, "vllm:generation_tokens_total") > 0, "counters are current");
  clock.run(3500);
  assert.equal(value(parsePrometheus(exposition.render()), "vllm:num_requests_waiting"), 4);
});
