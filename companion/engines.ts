// Engines: which metric names a model server exposes, and how a pod is matched to its engine.
// Built-in names follow GIE's model-server-protocol table and llm-d-router's built-in engine configs
// (docs/COMPANION.md lists them with sources).
import { parseMetricSpec, type MetricSpec } from "./metric-spec";

/** GIE's pod label naming the engine; llm-d-router still reads it after its own (LLMD_ENGINE_LABEL_KEY). */
export const DEFAULT_ENGINE_LABEL_KEY = "inference.networking.k8s.io/engine-type";
/** llm-d-router's pod label naming the engine (its default `engineLabelKey`). */
export const LLMD_ENGINE_LABEL_KEY = "llm-d.ai/engine-type";
/**
 * The label keys read, first non-empty value wins, for an `engineLabelKey` (undefined = not configured): the
 * configured key (default llm-d-router's), then GIE's, as llm-d-router's extractor reads them.
 */
export function engineLabelKeys(configured: string | undefined): string[] {
  const first = configured ?? LLMD_ENGINE_LABEL_KEY;
  return first === DEFAULT_ENGINE_LABEL_KEY ? [first] : [first, DEFAULT_ENGINE_LABEL_KEY];
}
export const DEFAULT_ENGINE = "vllm";
/** GIE registers the mapping for unlabelled pods under this name, so no engine may use it. */
export const RESERVED_ENGINE_NAME = "default";
export const MODEL_SERVER_TYPES = ["vllm", "sglang", "triton-tensorrt-llm", "trtllm-serve", "triton"] as const;
export type ModelServerType = (typeof MODEL_SERVER_TYPES)[number];

/**
 * One `engineConfigs` entry as written (GIE field names; `metricsPath`/`metricsPort` are ours; llm-d-router's
 * `customMetrics` is validated and ignored in engine-config.ts).
 */
export interface EngineConfigEntry {
  name: string;
  queuedRequestsSpec?: string;
  runningRequestsSpec?: string;
  kvUsageSpec?: string;
  loraSpec?: string;
  cacheInfoSpec?: string;
  cacheBlockSizeLabelName?: string;
  cacheNumBlocksLabelName?: string;
  cacheBlockSizeSpec?: string;
  cacheNumBlocksSpec?: string;
  metricsPath?: string;
  metricsPort?: number;
}

export const ENGINE_SPEC_FIELDS = [
  "queuedRequestsSpec",
  "runningRequestsSpec",
  "kvUsageSpec",
  "loraSpec",
  "cacheInfoSpec",
  "cacheBlockSizeSpec",
  "cacheNumBlocksSpec",
] as const;
export type EngineSpecField = (typeof ENGINE_SPEC_FIELDS)[number];

/** A parsed, ready-to-scrape engine mapping. A null spec means the metric is disabled. */
export interface EngineMapping {
  name: string;
  queued: MetricSpec | null;
  running: MetricSpec | null;
  kvUsage: MetricSpec | null;
  lora: MetricSpec | null;
  /** Info-style gauge whose labels carry the block size and block count (vLLM, SGLang). */
  cacheInfo: MetricSpec | null;
  cacheBlockSizeLabel: string;
  cacheNumBlocksLabel: string;
  /** Gauges whose values are the block size and block count (Triton, trtllm-serve). */
  cacheBlockSize: MetricSpec | null;
  cacheNumBlocks: MetricSpec | null;
  /** Overrides of where to scrape; null = the data source default path / the endpoint's own port. */
  metricsPath: string | null;
  metricsPort: number | null;
}

export const BUILTIN_ENGINES: readonly EngineConfigEntry[] = [
  {
    name: "vllm",
    queuedRequestsSpec: "vllm:num_requests_waiting",
    runningRequestsSpec: "vllm:num_requests_running",
    kvUsageSpec: "vllm:kv_cache_usage_perc",
    loraSpec: "vllm:lora_requests_info",
    cacheInfoSpec: "vllm:cache_config_info",
  },
  {
    name: "sglang",
    queuedRequestsSpec: "sglang:num_queue_reqs",
    runningRequestsSpec: "sglang:num_running_reqs",
    kvUsageSpec: "sglang:token_usage",
    cacheInfoSpec: "sglang:cache_config_info",
    cacheBlockSizeLabelName: "page_size",
    cacheNumBlocksLabelName: "num_pages",
  },
  {
    name: "triton-tensorrt-llm",
    queuedRequestsSpec: "nv_trt_llm_request_metrics{request_type=waiting}",
    runningRequestsSpec: "nv_trt_llm_request_metrics{request_type=scheduled}",
    kvUsageSpec: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}",
    cacheBlockSizeSpec: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=tokens_per}",
    cacheNumBlocksSpec: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=max}",
  },
  {
    name: "trtllm-serve",
    queuedRequestsSpec: "trtllm_num_requests_waiting",
    runningRequestsSpec: "trtllm_num_requests_running",
    kvUsageSpec: "trtllm_kv_cache_utilization",
    cacheBlockSizeSpec: "trtllm_kv_cache_tokens_per_block",
    cacheNumBlocksSpec: "trtllm_kv_cache_max_blocks",
    // trtllm-serve answers /metrics with JSON iteration stats; its Prometheus page is mounted here.
    metricsPath: "/prometheus/metrics",
  },
  {
    // llm-d-router's built-in for Triton Inference Server's own metrics (non-LLM backends): pending requests
    // as the queue, and, as llm-d-router reads it, the execution counter as "running"; no KV cache, no LoRA.
    name: "triton",
    queuedRequestsSpec: "nv_inference_pending_request_count",
    runningRequestsSpec: "nv_inference_exec_count",
  },
];

/** vLLM V1 renamed the KV-cache gauge; V0 servers only have the old name, with the same meaning. */
const V1_KV_NAME = "vllm:kv_cache_usage_perc";
const V0_KV_NAME = "vllm:gpu_cache_usage_perc";

/** Adds the V0 name as fallback to a spec naming the V1 KV-cache gauge (same labels). */
export function withVllmV0Fallback(spec: MetricSpec | null): MetricSpec | null {
  if (!spec || spec.name !== V1_KV_NAME) return spec;
  return { ...spec, fallback: { name: V0_KV_NAME, labels: spec.labels } };
}

/**
 * Builds a mapping from an entry whose spec strings were already validated (parseMetricSpec throws
 * MetricSpecError otherwise; callers add the field path).
 */
export function buildMapping(
  entry: EngineConfigEntry,
  parse: (field: EngineSpecField, text: string) => MetricSpec | null = (_f, t) => parseMetricSpec(t),
): EngineMapping {
  const spec = (field: EngineSpecField): MetricSpec | null => parse(field, entry[field] ?? "");
  return {
    name: entry.name,
    queued: spec("queuedRequestsSpec"),
    running: spec("runningRequestsSpec"),
    kvUsage: withVllmV0Fallback(spec("kvUsageSpec")),
    lora: spec("loraSpec"),
    cacheInfo: spec("cacheInfoSpec"),
    cacheBlockSizeLabel: entry.cacheBlockSizeLabelName || "block_size",
    cacheNumBlocksLabel: entry.cacheNumBlocksLabelName || "num_gpu_blocks",
    cacheBlockSize: spec("cacheBlockSizeSpec"),
    cacheNumBlocks: spec("cacheNumBlocksSpec"),
    metricsPath: entry.metricsPath ?? null,
    metricsPort: entry.metricsPort ?? null,
  };
}

/** Every metric family name a mapping reads (fallbacks included): what the parser must extract. */
export function familiesOf(mapping: EngineMapping): string[] {
  const names = new Set<string>();
  for (const s of [
    mapping.queued,
    mapping.running,
    mapping.kvUsage,
    mapping.lora,
    mapping.cacheInfo,
    mapping.cacheBlockSize,
    mapping.cacheNumBlocks,
  ]) {
    for (let x: MetricSpec | undefined = s ?? undefined; x; x = x.fallback) names.add(x.name);
  }
  return [...names];
}

/** The resolved engine set: what every pod is scraped with. */
export class EngineRegistry {
  /** The pod label keys naming the engine, in precedence order (the first non-empty value counts). */
  readonly engineLabelKeys: readonly string[];

  constructor(
    /** The first label key read (`engineLabelKey`); `fallbackLabelKeys` are read when it is absent or empty. */
    readonly engineLabelKey: string,
    readonly defaultEngine: string,
    readonly engines: ReadonlyMap<string, EngineMapping>,
    /** Mapping for pods without the label: the default engine's, with the Helm-style metric flags applied. */
    readonly unlabelled: EngineMapping,
    fallbackLabelKeys: readonly string[] = [],
  ) {
    this.engineLabelKeys = [...new Set([engineLabelKey, ...fallbackLabelKeys])];
  }

  /**
   * The mapping for a pod's labels. A label naming no known engine falls back to the unlabelled mapping,
   * as GIE does; `unknownLabel` reports it so the caller can warn.
   */
  resolve(labels: Readonly<Record<string, string>>): { mapping: EngineMapping; unknownLabel: string | null } {
    let value: string | undefined;
    for (const key of this.engineLabelKeys) if ((value = labels[key])) break;
    if (!value) return { mapping: this.unlabelled, unknownLabel: null };
    const mapping = this.engines.get(value);
    return mapping ? { mapping, unknownLabel: null } : { mapping: this.unlabelled, unknownLabel: value };
  }
}
