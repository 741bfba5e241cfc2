// Every example of ../shared/reference/supported-model-servers.md, verbatim (fixtures/reference/, checked
// against the excerpt committed in tests/fixtures/), loads and gives the engine mapping the document describes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import YAML from "yaml";
import { parseCli } from "../../companion/cli";
import { loadPickerConfig } from "../../companion/picker-config";
import { formatMetricSpec } from "../../companion/metric-spec";
import type { EngineMapping } from "../../companion/engines";
import { DEFAULT_PROFILE } from "../../companion/profile-config";
import { REFERENCE_EXCERPT, REFERENCE_LIVE, SHARED_DIR, codeBlocks, referenceExcerpt } from "../helpers/reference-doc";

const fixture = (name: string): string => readFileSync(`tests/companion/fixtures/reference/${name}`, "utf8");

/** A mapping as the spec strings it reads, for readable assertions. */
function specs(m: EngineMapping): Record<string, string> {
  return {
    queued: formatMetricSpec(m.queued),
    running: formatMetricSpec(m.running),
    kvUsage: formatMetricSpec(m.kvUsage),
    kvFallback: formatMetricSpec(m.kvUsage?.fallback ?? null),
    lora: formatMetricSpec(m.lora),
    cacheInfo: formatMetricSpec(m.cacheInfo),
    cacheBlockSize: formatMetricSpec(m.cacheBlockSize),
    cacheNumBlocks: formatMetricSpec(m.cacheNumBlocks),
  };
}

const VLLM = {
  queued: "vllm:num_requests_waiting",
  running: "vllm:num_requests_running",
  kvUsage: "vllm:kv_cache_usage_perc",
  kvFallback: "vllm:gpu_cache_usage_perc",
  lora: "vllm:lora_requests_info",
  cacheInfo: "vllm:cache_config_info",
  cacheBlockSize: "",
  cacheNumBlocks: "",
};
const SGLANG = {
  queued: "sglang:num_queue_reqs",
  running: "sglang:num_running_reqs",
  kvUsage: "sglang:token_usage",
  kvFallback: "",
  lora: "",
  cacheInfo: "sglang:cache_config_info",
  cacheBlockSize: "",
  cacheNumBlocks: "",
};
const TRITON = {
  queued: "nv_trt_llm_request_metrics{request_type=waiting}",
  running: "nv_trt_llm_request_metrics{request_type=scheduled}",
  kvUsage: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}",
  kvFallback: "",
  lora: "",
  cacheInfo: "",
  cacheBlockSize: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=tokens_per}",
  cacheNumBlocks: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=max}",
};

/** The reference's Helm `flags` entries (`- name=X value="Y"`) as the `--X=Y` arguments the chart renders. */
function helmFlags(block: string): string[] {
  const items = YAML.parse(block) as string[];
  return items.map((item) => {
    const m = /^name=(\S+)\s+value="(.*)"$/.exec(item);
    assert.ok(m, `unexpected flags entry ${item}`);
    return `--${m[1]}=${m[2]}`;
  });
}

function flagsOf(args: string[]) {
  const r = parseCli(["--endpoints", "10.0.0.1:8000", ...args], {});
  assert.equal(r.kind, "run");
  return r.kind === "run" ? r.options.engineFlags : {};
}

const FIXTURES = [
  "triton-flags.txt",
  "sglang-flags.txt",
  "pod-labels.yaml",
  "default-engine-sglang.yaml",
  "custom-engines.yaml",
];

test("the fixtures are the reference document's code blocks, verbatim (committed excerpt)", () => {
  assert.deepEqual(codeBlocks(referenceExcerpt()), FIXTURES.map(fixture));
});

test("the committed excerpt is the live reference document's text, and holds all its code blocks", (t) => {
  if (!existsSync(SHARED_DIR))
    return t.skip(`${SHARED_DIR} is not beside this checkout: the excerpt was not compared with ${REFERENCE_LIVE}`);
  const live = readFileSync(REFERENCE_LIVE, "utf8");
  assert.ok(
    live.includes(referenceExcerpt()),
    `${REFERENCE_EXCERPT} is no longer a verbatim slice of ${REFERENCE_LIVE}: copy it again`,
  );
  assert.deepEqual(
    codeBlocks(live),
    FIXTURES.map(fixture),
    `the code blocks of ${REFERENCE_LIVE} are no longer the fixtures`,
  );
});

test("no configuration: vLLM is the default, all five engines built in, GIE's default profile", () => {
  const cfg = loadPickerConfig(null);
  assert.equal(cfg.engines.defaultEngine, "vllm");
  assert.deepEqual(specs(cfg.engines.unlabelled), VLLM);
  assert.deepEqual([...cfg.engines.engines.keys()].sort(), [
    "sglang",
    "triton",
    "triton-tensorrt-llm",
    "trtllm-serve",
    "vllm",
  ]);
  assert.deepEqual(specs(cfg.engines.engines.get("triton-tensorrt-llm")!), TRITON);
  assert.equal(cfg.engines.engines.get("trtllm-serve")!.metricsPath, "/prometheus/metrics");
  assert.deepEqual(cfg.profile, DEFAULT_PROFILE);
});

test("1. label your pods: the vLLM and SGLang deployments' labels select their engines", () => {
  const [vllmPart, sglangPart] = fixture("pod-labels.yaml").split(/\n(?=# SGLang Deployment)/);
  const engines = loadPickerConfig(null).engines;
  const vllm = YAML.parse(vllmPart).metadata.labels as Record<string, string>;
  const sglang = YAML.parse(sglangPart).metadata.labels as Record<string, string>;
  assert.equal(engines.resolve(vllm).mapping.name, "vllm");
  assert.deepEqual(specs(engines.resolve(sglang).mapping), SGLANG);
  assert.equal(engines.resolve({}).mapping.name, "vllm", "pods without the engine label use vLLM");
});

test("2. defaultEngine: sglang makes unlabelled pods use SGLang metrics", () => {
  const cfg = loadPickerConfig(fixture("default-engine-sglang.yaml"));
  assert.equal(cfg.engines.defaultEngine, "sglang");
  assert.deepEqual(specs(cfg.engines.resolve({ app: "x" }).mapping), SGLANG);
  assert.deepEqual(specs(cfg.engines.resolve({ "inference.networking.k8s.io/engine-type": "vllm" }).mapping), VLLM);
  assert.deepEqual(cfg.profile, DEFAULT_PROFILE);
});

test("3. custom engines: vllm and sglang restated, triton added, built-ins kept", () => {
  const cfg = loadPickerConfig(fixture("custom-engines.yaml"));
  const e = cfg.engines;
  assert.equal(e.engineLabelKey, "inference.networking.k8s.io/engine-type");
  assert.equal(e.defaultEngine, "vllm");
  assert.deepEqual(specs(e.engines.get("vllm")!), VLLM);
  // A built-in name is replaced entirely: the restated sglang entry has no cacheInfoSpec.
  assert.deepEqual(specs(e.engines.get("sglang")!), { ...SGLANG, cacheInfo: "" });
  assert.deepEqual(specs(e.resolve({ "inference.networking.k8s.io/engine-type": "triton" }).mapping), {
    queued: "nv_trt_llm_request_metrics{request_type=waiting}",
    running: "",
    kvUsage: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}",
    kvFallback: "",
    lora: "",
    cacheInfo: "",
    cacheBlockSize: "",
    cacheNumBlocks: "",
  });
  assert.ok(e.engines.has("triton-tensorrt-llm") && e.engines.has("trtllm-serve"), "built-ins are still included");
});

test("Triton section: --model-server-type=triton-tensorrt-llm plus the reference's flags", () => {
  const flags = flagsOf(["--model-server-type=triton-tensorrt-llm", ...helmFlags(fixture("triton-flags.txt"))]);
  assert.deepEqual(flags, {
    modelServerType: "triton-tensorrt-llm",
    totalQueuedRequestsMetric: "nv_trt_llm_request_metrics{request_type=waiting}",
    kvCacheUsagePercentageMetric: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}",
    loraInfoMetric: "",
  });
  const cfg = loadPickerConfig(null, flags);
  assert.equal(cfg.engines.defaultEngine, "triton-tensorrt-llm");
  assert.deepEqual(specs(cfg.engines.unlabelled), TRITON);
});

test("Triton section: the flags alone (chart default model server type) still read Triton's queue and KV cache", () => {
  const cfg = loadPickerConfig(null, flagsOf(helmFlags(fixture("triton-flags.txt"))));
  const m = specs(cfg.engines.unlabelled);
  assert.equal(m.queued, "nv_trt_llm_request_metrics{request_type=waiting}");
  assert.equal(m.kvUsage, "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}");
  assert.equal(m.lora, "", "an empty --lora-info-metric disables LoRA");
  assert.deepEqual(specs(cfg.engines.engines.get("vllm")!), VLLM, "pods labelled vllm keep vLLM's names");
});

test("SGLang section: the reference's flags give the SGLang queue and KV specs, LoRA off", () => {
  const cfg = loadPickerConfig(null, flagsOf(helmFlags(fixture("sglang-flags.txt"))));
  const m = specs(cfg.engines.unlabelled);
  assert.equal(m.queued, "sglang:num_queue_reqs");
  assert.equal(m.kvUsage, "sglang:token_usage");
  assert.equal(m.lora, "");
  const typed = loadPickerConfig(
    null,
    flagsOf(["--model-server-type=sglang", ...helmFlags(fixture("sglang-flags.txt"))]),
  );
  assert.deepEqual(specs(typed.engines.unlabelled), SGLANG);
});

test("the file's defaultEngine wins over --model-server-type (the chart always passes the flag)", () => {
  const cfg = loadPickerConfig(fixture("default-engine-sglang.yaml"), { modelServerType: "vllm" });
  assert.equal(cfg.engines.defaultEngine, "sglang");
  assert.match(cfg.notes.join("\n"), /defaultEngine "sglang" from the config file is used/);
});
