// trtllm-serve (tensorrt_llm/metrics/collector.py, MetricsCollector with the "trtllm_" prefix), labelled
// model_name and engine_type. trtllm-serve serves this Prometheus text at /prometheus/metrics; its /metrics
// answers JSON iteration statistics (numActiveRequests, numQueuedRequests, kvCacheStats, ...).
import type { Engine } from "../engine";
import {
  type Exposition,
  type ExpositionOptions,
  epochSeconds,
  observeTokens,
  timings,
  FINISH_REASONS,
} from "./exposition";
import { writePythonProcess } from "./process";
import { Histogram, type Labels, PromWriter } from "./prom-text";

const LATENCY = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0,
  7680.0,
];
const TTFT = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0,
  640.0, 2560.0,
];
const TPOT = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
const PREFILL = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

export class TrtllmServeExposition implements Exposition {
  readonly metricsPath = "/prometheus/metrics";
  readonly http = null;
  private readonly h = {
    e2e: new Histogram(LATENCY),
    ttft: new Histogram(TTFT),
    tpot: new Histogram(TPOT),
    queue: new Histogram(LATENCY),
    prefill: new Histogram(PREFILL),
    decode: new Histogram(LATENCY),
    inference: new Histogram(LATENCY),
  };
  private reused = 0;
  private missed = 0;
  private lastStepMs = 0;

  constructor(
    private readonly engine: Engine,
    private readonly opts: ExpositionOptions,
  ) {
    engine.observer = {
      iteration: (_p, _g, ms) => {
        this.lastStepMs = ms;
      },
      finished: (r) => {
        const t = timings(r);
        this.h.e2e.observe(t.e2e);
        this.h.ttft.observe(t.ttft);
        observeTokens(this.h.tpot, r);
        this.h.queue.observe(t.queue);
        this.h.prefill.observe(t.prefill);
        this.h.decode.observe(t.decode);
        this.h.inference.observe(t.inference);
        const hit = Math.floor(r.cachedTokens / engine.blockSize);
        this.reused += hit;
        this.missed += Math.ceil(r.promptTokens / engine.blockSize) - hit;
      },
    };
  }

  render(): string {
    const e = this.engine;
    const g = e.gauges();
    const c = e.counters;
    const w = new PromWriter("python", e.clock.epochMs / 1000);
    const base: Labels = [
      ["engine_type", "pytorch"],
      ["model_name", this.opts.modelName],
    ];
    const one = (value: number) => [{ labels: base, value }];
    const hist = (name: string, help: string, h: Histogram) =>
      w.histogram(`trtllm_${name}`, help, [{ labels: base, hist: h }]);
    const gauge = (name: string, help: string, value: number) => w.gauge(`trtllm_${name}`, help, one(value));
    const counter = (name: string, help: string, value: number) => w.counter(`trtllm_${name}`, help, one(value));
    const hitRate = this.reused + this.missed > 0 ? this.reused / (this.reused + this.missed) : 0;

    writePythonProcess(w, e.clock.now() / 1000, e.clock.epochMs / 1000, c.requests);
    w.counter(
      "trtllm_request_success",
      "Count of successfully processed requests.",
      FINISH_REASONS.map((r) => ({ labels: [...base, ["finished_reason", r]] as Labels, value: c.finished[r] })),
    );
    hist("e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", this.h.e2e);
    hist("time_to_first_token_seconds", "Histogram of time to first token in seconds.", this.h.ttft);
    hist("time_per_output_token_seconds", "Histogram of time per output token in seconds.", this.h.tpot);
    hist("request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", this.h.queue);
    hist(
      "request_prefill_time_seconds",
      "Histogram of prefill (context) phase duration in seconds (first_token_time - first_scheduled_time).",
      this.h.prefill,
    );
    hist(
      "request_decode_time_seconds",
      "Histogram of decode (generation) phase duration in seconds (last_token_time - first_token_time).",
      this.h.decode,
    );
    hist(
      "request_inference_time_seconds",
      "Histogram of total inference duration in seconds (last_token_time - first_scheduled_time).",
      this.h.inference,
    );
    counter("prompt_tokens", "Cumulative number of prompt (input) tokens processed.", c.promptTokens);
    counter("generation_tokens", "Cumulative number of generation (output) tokens produced.", c.generationTokens);
    gauge("kv_cache_hit_rate", "KV cache hit rate", hitRate);
    counter("kv_cache_reused_blocks", "Cumulative number of KV cache blocks reused (cache hits)", this.reused);
    counter("kv_cache_missed_blocks", "Cumulative number of KV cache blocks missed (cache misses)", this.missed);
    gauge("kv_cache_utilization", "KV cache utilization", g.kvUsage);
    gauge("kv_cache_host_utilization", "KV cache host (secondary) pool utilization", 0);
    gauge("kv_cache_iter_reuse_rate", "Per-iteration KV cache block reuse rate", hitRate);
    counter("kv_cache_iter_reused_blocks", "Total reused KV cache blocks (full + partial)", this.reused);
    counter("kv_cache_iter_full_reused_blocks", "Total fully reused KV cache blocks", this.reused);
    counter("kv_cache_iter_partial_reused_blocks", "Total partially reused KV cache blocks", 0);
    counter("kv_cache_iter_missed_blocks", "Total missed KV cache blocks (context phase)", this.missed);
    counter(
      "kv_cache_gen_alloc_blocks",
      "Total blocks allocated during generation phase",
      Math.floor(c.generationTokens / e.blockSize),
    );
    counter("kv_cache_onboard_bytes", "Total bytes transferred from host to GPU (onboard)", 0);
    counter("kv_cache_offload_bytes", "Total bytes transferred from GPU to host (offload)", 0);
    counter("kv_cache_intra_device_copy_bytes", "Total bytes copied within GPU (intra-device block copies)", 0);
    gauge("num_requests_running", "Number of active requests", g.running);
    gauge("num_requests_waiting", "Number of queued requests", g.waiting);
    counter(
      "num_requests_completed",
      "Total number of completed requests across iterations",
      c.finished.stop + c.finished.length,
    );
    gauge("max_num_active_requests", "Maximum number of active requests", e.profile.scheduler.maxNumSeqs);
    gauge("iteration_latency_seconds", "Iteration latency in seconds", this.lastStepMs / 1000);
    gauge("gpu_memory_usage_bytes", "GPU memory usage in bytes", 76235653120);
    gauge("cpu_memory_usage_bytes", "CPU memory usage in bytes", 21474836);
    gauge("pinned_memory_usage_bytes", "Pinned memory usage in bytes", 536870912);
    gauge("max_batch_size_static", "Static maximum batch size", e.profile.scheduler.maxNumSeqs);
    gauge("max_batch_size_runtime", "Runtime maximum batch size", e.profile.scheduler.maxNumSeqs);
    gauge("max_num_tokens_runtime", "Runtime maximum number of tokens", e.profile.scheduler.maxNumBatchedTokens);
    gauge("kv_cache_max_blocks", "Maximum number of KV cache blocks", e.numGpuBlocks);
    gauge("kv_cache_free_blocks", "Number of free KV cache blocks", e.numGpuBlocks - g.usedBlocks);
    gauge("kv_cache_used_blocks", "Number of used KV cache blocks", g.usedBlocks);
    gauge("kv_cache_tokens_per_block", "Number of tokens per KV cache block", e.blockSize);
    gauge("num_context_requests", "Number of context requests", g.waiting > 0 ? 1 : 0);
    gauge("num_generation_requests", "Number of generation requests", g.running);
    gauge("num_paused_requests", "Number of paused requests", 0);
    gauge("num_scheduled_requests", "Number of scheduled requests", g.running);
    gauge("total_context_tokens", "Total number of context tokens", 0);
    gauge("avg_decoded_tokens_per_iter", "Average number of decoded tokens per iteration", g.running > 0 ? 1 : 0);
    return w.text();
  }

  iterationStatsJson(): string {
    const e = this.engine;
    const g = e.gauges();
    const d = new Date(epochSeconds(e) * 1000);
    const pad = (n: number, w = 2) => String(n).padStart(w, "0");
    const timestamp = `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}-${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds() * 1000, 6)}`;
    return JSON.stringify([
      {
        timestamp,
        iter: e.counters.iterations,
        iterLatencyMS: this.lastStepMs,
        numActiveRequests: g.running,
        numQueuedRequests: g.waiting,
        numCompletedRequests: e.counters.finished.stop + e.counters.finished.length,
        maxNumActiveRequests: e.profile.scheduler.maxNumSeqs,
        gpuMemUsage: 76235653120,
        cpuMemUsage: 21474836,
        pinnedMemUsage: 536870912,
        kvCacheStats: {
          maxNumBlocks: e.numGpuBlocks,
          freeNumBlocks: e.numGpuBlocks - g.usedBlocks,
          usedNumBlocks: g.usedBlocks,
          tokensPerBlock: e.blockSize,
          allocTotalBlocks: g.usedBlocks,
          allocNewBlocks: 0,
          reusedBlocks: this.reused,
          missedBlocks: this.missed,
          cacheHitRate: this.reused + this.missed > 0 ? this.reused / (this.reused + this.missed) : 0,
        },
        inflightBatchingStats: {
          numScheduledRequests: g.running,
          numContextRequests: 0,
          numGenRequests: g.running,
          numPausedRequests: 0,
          numCtxTokens: 0,
          microBatchId: 0,
          avgNumDecodedTokensPerIter: g.running > 0 ? 1 : 0,
        },
      },
    ]);
  }
}
