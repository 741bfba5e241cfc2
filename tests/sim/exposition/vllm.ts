// vLLM's /metrics, V1 (vllm/v1/metrics/loggers.py, v0.10 era: labels model_name and engine, *_created series)
// and V0 (vllm/engine/metrics.py, v0.6 era: label model_name, created series disabled), plus the Python
// process collectors and the API server's HTTP metrics. Gauges come from the engine's lagged view.
// vllm:lora_requests_info as each generation fills it (vllmLoraLabels): V1 as current vLLM, every adapter
// with a request in flight in both adapter labels; V0 the adapters of running and of waiting requests.
import type { Engine, RequestResult } from "../engine";
import type { EngineKind } from "../profile";
import {
  type Exposition,
  type ExpositionOptions,
  epochSeconds,
  observeTokens,
  timings,
  FINISH_REASONS,
} from "./exposition";
import { HttpInstrumentation, writePythonProcess } from "./process";
import { Histogram, type Labels, PromWriter, buckets125 } from "./prom-text";

const V1_TTFT = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0,
  640.0, 2560.0,
];
const V1_TPOT = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
const V1_LATENCY = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0,
  7680.0,
];
const V1_ITERATION = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
const V1_PREFILL_PER_TOKEN = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];
const V0_TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
const V0_TPOT = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5];
const V0_LATENCY = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0];
const V0_ITERATION = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8096];
const V0_FORWARD_MS = [1, 2, 3, 5, 8, 10, 20, 30, 50, 80, 100, 200, 300, 500, 800, 1000, 2000, 3000];

/**
 * The adapter labels of vllm:lora_requests_info for the engine's adapters with running and with waiting
 * requests. V0 (`LLMEngine._get_stats`: the LoRA names of `scheduler.running` and of `scheduler.waiting`)
 * lists each set in its own label, so an adapter with requests in both is in both. Current V1
 * (`LoRARequestStates.update_scheduler_stats` in vllm/v1/metrics/stats.py, since vLLM PR #26801) writes every
 * adapter with a request in flight, running or waiting, into both labels: one key set rendered twice.
 * (V1 before that PR listed the two sets apart, as V0 does; the simulator's V1 is the current one.)
 */
export function vllmLoraLabels(
  version: "v1" | "v0",
  running: readonly string[],
  waiting: readonly string[],
): { running: string[]; waiting: string[] } {
  if (version === "v0") return { running: [...running], waiting: [...waiting] };
  const inFlight = [...new Set([...running, ...waiting])];
  return { running: inFlight, waiting: [...inFlight] };
}

/** The adapter lists a scrape of a pod of this kind shows (other engines: the engine's own lists). */
export function scrapedLoraLists(
  kind: EngineKind,
  running: readonly string[],
  waiting: readonly string[],
): { running: string[]; waiting: string[] } {
  if (kind === "vllm-v1") return vllmLoraLabels("v1", running, waiting);
  return vllmLoraLabels("v0", running, waiting);
}

/** Most label sets of vllm:lora_requests_info kept (prometheus_client keeps every one ever set). */
const LORA_SERIES_KEPT = 32;

export class VllmExposition implements Exposition {
  readonly metricsPath = "/metrics";
  readonly http = new HttpInstrumentation();
  private readonly h: Record<string, Histogram>;
  private readonly loraSeries = new Map<string, { labels: Labels; value: number }>();
  private readonly startEpochS: number;

  constructor(
    private readonly engine: Engine,
    private readonly opts: ExpositionOptions,
    readonly version: "v1" | "v0",
  ) {
    const v1 = version === "v1";
    const lengths = buckets125(engine.profile.maxModelLen);
    this.h = {
      ttft: new Histogram(v1 ? V1_TTFT : V0_TTFT),
      tpot: new Histogram(v1 ? V1_TPOT : V0_TPOT),
      e2e: new Histogram(v1 ? V1_LATENCY : V0_LATENCY),
      queue: new Histogram(v1 ? V1_LATENCY : V0_LATENCY),
      inference: new Histogram(v1 ? V1_LATENCY : V0_LATENCY),
      prefill: new Histogram(v1 ? V1_LATENCY : V0_LATENCY),
      decode: new Histogram(v1 ? V1_LATENCY : V0_LATENCY),
      timeInQueue: new Histogram(V0_LATENCY),
      prefillPerToken: new Histogram(V1_PREFILL_PER_TOKEN),
      promptTokens: new Histogram(lengths),
      generationTokens: new Histogram(lengths),
      maxGeneration: new Histogram(lengths),
      maxTokens: new Histogram(lengths),
      n: new Histogram([1, 2, 5, 10, 20]),
      iteration: new Histogram(v1 ? V1_ITERATION : V0_ITERATION),
      forward: new Histogram(V0_FORWARD_MS),
      execute: new Histogram(V0_FORWARD_MS),
    };
    this.startEpochS = engine.clock.epochMs / 1000;
    engine.observer = {
      iteration: (p, g, ms) => {
        this.h.iteration.observe(p + g);
        this.h.forward.observe(ms * 0.92);
        this.h.execute.observe(ms);
      },
      finished: (r) => this.observe(r),
    };
  }

  private observe(r: RequestResult): void {
    const t = timings(r);
    this.h.ttft.observe(t.ttft);
    observeTokens(this.h.tpot, r);
    this.h.e2e.observe(t.e2e);
    this.h.queue.observe(t.queue);
    this.h.timeInQueue.observe(t.queue);
    this.h.inference.observe(t.inference);
    this.h.prefill.observe(t.prefill);
    this.h.decode.observe(t.decode);
    if (r.promptTokens > 0) this.h.prefillPerToken.observe(t.prefill / r.promptTokens);
    this.h.promptTokens.observe(r.promptTokens);
    this.h.generationTokens.observe(r.generationTokens);
    this.h.maxGeneration.observe(r.maxTokensParam ?? r.generationTokens);
    if (r.maxTokensParam !== null) this.h.maxTokens.observe(r.maxTokensParam);
    this.h.n.observe(1);
  }

  render(): string {
    const e = this.engine;
    const v1 = this.version === "v1";
    const now = epochSeconds(e);
    const w = new PromWriter("python", v1 ? this.startEpochS : null);
    const base: Labels = v1
      ? [
          ["engine", "0"],
          ["model_name", this.opts.modelName],
        ]
      : [["model_name", this.opts.modelName]];
    const one = (value: number) => [{ labels: base, value }];
    const hist = (name: string, help: string, h: Histogram) => w.histogram(name, help, [{ labels: base, hist: h }]);
    const g = e.gauges();
    const c = e.counters;

    writePythonProcess(w, e.clock.now() / 1000, this.startEpochS, c.requests);
    this.http.write(w);
    if (v1) {
      w.gauge("vllm:num_requests_running", "Number of requests in model execution batches.", one(g.running));
      w.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", one(g.waiting));
      w.gauge(
        "vllm:gpu_cache_usage_perc",
        "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
        one(g.kvUsage),
      );
      w.counter(
        "vllm:gpu_prefix_cache_queries",
        "GPU prefix cache queries, in terms of number of queried tokens. DEPRECATED: Use vllm:prefix_cache_queries instead.",
        one(c.prefixQueries),
      );
      w.counter(
        "vllm:gpu_prefix_cache_hits",
        "GPU prefix cache hits, in terms of number of cached tokens. DEPRECATED: Use vllm:prefix_cache_hits instead.",
        one(c.prefixHits),
      );
      w.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", one(g.kvUsage));
      w.counter(
        "vllm:prefix_cache_queries",
        "Prefix cache queries, in terms of number of queried tokens.",
        one(c.prefixQueries),
      );
      w.counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", one(c.prefixHits));
      w.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", one(c.preemptions));
      w.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", one(c.promptTokens));
      w.counter("vllm:generation_tokens", "Number of generation tokens processed.", one(c.generationTokens));
      w.counter(
        "vllm:request_success",
        "Count of successfully processed requests.",
        FINISH_REASONS.map((r) => ({ labels: [...base, ["finished_reason", r]] as Labels, value: c.finished[r] })),
      );
      hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.", this.h.promptTokens);
      hist("vllm:request_generation_tokens", "Number of generation tokens processed.", this.h.generationTokens);
      hist("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", this.h.iteration);
      hist(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        this.h.maxGeneration,
      );
      hist("vllm:request_params_n", "Histogram of the n request parameter.", this.h.n);
      hist("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", this.h.maxTokens);
      hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", this.h.ttft);
      hist("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", this.h.tpot);
      hist(
        "vllm:time_per_prefill_token_request_seconds",
        "Time spent per token during prefill  phase in seconds",
        this.h.prefillPerToken,
      );
      hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", this.h.e2e);
      hist("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", this.h.queue);
      hist(
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        this.h.inference,
      );
      hist(
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        this.h.prefill,
      );
      hist("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", this.h.decode);
      this.writeLora(w, now, g.t, g.loraRunning, g.loraWaiting, [
        "max_lora",
        "waiting_lora_adapters",
        "running_lora_adapters",
      ]);
      w.gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", [
        { labels: this.cacheInfo(true), value: 1 },
      ]);
    } else {
      w.gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", [
        { labels: this.cacheInfo(false), value: 1 },
      ]);
      w.gauge("vllm:num_requests_running", "Number of requests currently running on GPU.", one(g.running));
      w.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", one(g.waiting));
      this.writeLora(w, now, g.t, g.loraRunning, g.loraWaiting, [
        "running_lora_adapters",
        "max_lora",
        "waiting_lora_adapters",
      ]);
      w.gauge("vllm:num_requests_swapped", "Number of requests swapped to CPU.", one(0));
      w.gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", one(g.kvUsage));
      w.gauge("vllm:cpu_cache_usage_perc", "CPU KV-cache usage. 1 means 100 percent usage.", one(0));
      w.gauge("vllm:cpu_prefix_cache_hit_rate", "CPU prefix cache block hit rate.", one(-1));
      w.gauge(
        "vllm:gpu_prefix_cache_hit_rate",
        "GPU prefix cache block hit rate.",
        one(c.prefixQueries > 0 ? c.prefixHits / c.prefixQueries : 0),
      );
      w.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", one(c.preemptions));
      w.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", one(c.promptTokens));
      w.counter("vllm:generation_tokens", "Number of generation tokens processed.", one(c.generationTokens));
      w.counter(
        "vllm:tokens",
        "Number of prefill plus generation tokens processed.",
        one(c.promptTokens + c.generationTokens),
      );
      hist("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", this.h.iteration);
      hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", this.h.ttft);
      hist("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", this.h.tpot);
      hist("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", this.h.e2e);
      hist("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", this.h.queue);
      hist(
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        this.h.inference,
      );
      hist(
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        this.h.prefill,
      );
      hist("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", this.h.decode);
      hist(
        "vllm:time_in_queue_requests",
        "Histogram of time the request spent in the queue in seconds.",
        this.h.timeInQueue,
      );
      hist(
        "vllm:model_forward_time_milliseconds",
        "Histogram of time spent in the model forward pass in ms.",
        this.h.forward,
      );
      hist(
        "vllm:model_execute_time_milliseconds",
        "Histogram of time spent in the model execute function in ms.",
        this.h.execute,
      );
      hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.", this.h.promptTokens);
      hist("vllm:request_generation_tokens", "Number of generation tokens processed.", this.h.generationTokens);
      hist(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        this.h.maxGeneration,
      );
      hist("vllm:request_params_n", "Histogram of the n request parameter.", this.h.n);
      hist("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", this.h.maxTokens);
      w.counter(
        "vllm:request_success",
        "Count of successfully processed requests.",
        FINISH_REASONS.filter((r) => r !== "abort").map((r) => ({
          labels: [...base, ["finished_reason", r]] as Labels,
          value: c.finished[r],
        })),
      );
      w.gauge("vllm:spec_decode_draft_acceptance_rate", "Speulative token acceptance rate.", []);
      w.gauge("vllm:spec_decode_efficiency", "Speculative decoding system efficiency.", []);
      w.counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.", []);
      w.counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", []);
      w.counter("vllm:spec_decode_num_emitted_tokens", "Number of emitted tokens.", []);
    }
    return w.text();
  }

  /**
   * vllm:lora_requests_info: one series per label set ever reported, each holding the time it was last
   * reported (set_to_current_time), so readers take the series with the largest value.
   */
  private writeLora(
    w: PromWriter,
    nowS: number,
    stateT: number,
    running: string[],
    waiting: string[],
    order: string[],
  ): void {
    const lora = this.engine.profile.lora;
    if (lora.adapters.length === 0) return;
    const lists = vllmLoraLabels(this.version, running, waiting);
    const values: Record<string, string> = {
      max_lora: String(lora.maxLoras),
      running_lora_adapters: lists.running.join(","),
      waiting_lora_adapters: lists.waiting.join(","),
    };
    const labels: Labels = order.map((k) => [k, values[k]] as const);
    const key = JSON.stringify(labels);
    this.loraSeries.delete(key);
    this.loraSeries.set(key, { labels, value: nowS - (this.engine.clock.now() - stateT) / 1000 });
    while (this.loraSeries.size > LORA_SERIES_KEPT) this.loraSeries.delete(this.loraSeries.keys().next().value!);
    w.gauge("vllm:lora_requests_info", "Running stats on lora requests.", [...this.loraSeries.values()]);
  }

  private cacheInfo(v1: boolean): Labels {
    const e = this.engine;
    const kv = e.profile.kv;
    const fields: Record<string, string> = v1
      ? {
          block_size: String(e.blockSize),
          cache_dtype: "auto",
          calculate_kv_scales: "False",
          cpu_offload_gb: "0",
          enable_prefix_caching: kv.enablePrefixCaching ? "True" : "False",
          engine: "0",
          gpu_memory_utilization: "0.9",
          is_attention_free: "False",
          kv_sharing_fast_prefill: "False",
          mamba_page_size_padded: "None",
          num_cpu_blocks: "None",
          num_gpu_blocks: String(e.numGpuBlocks),
          num_gpu_blocks_override: "None",
          prefix_caching_hash_algo: "sha256",
          sliding_window: "None",
          swap_space: "4",
          swap_space_bytes: "4294967296",
        }
      : {
          block_size: String(e.blockSize),
          cache_dtype: "auto",
          cpu_offload_gb: "0",
          enable_prefix_caching: kv.enablePrefixCaching ? "True" : "False",
          gpu_memory_utilization: "0.9",
          is_attention_free: "False",
          num_cpu_blocks: "2048",
          num_gpu_blocks: String(e.numGpuBlocks),
          num_gpu_blocks_override: "None",
          sliding_window: "None",
          swap_space_bytes: "4294967296",
        };
    return Object.entries(fields);
  }
}
