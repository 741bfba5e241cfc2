// Triton Inference Server with the TensorRT-LLM backend: Triton's own per-model inference counters and
// GPU/CPU gauges, and the backend's custom families (tensorrtllm_backend custom_metrics_reporter.cc:
// nv_trt_llm_request_metrics{request_type=active|max|scheduled|context|waiting},
// nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=max|free|used|tokens_per|reused|fraction}, ...),
// labelled model and version. prometheus-cpp text: integers print without a fraction, no *_created.
import type { Engine } from "../engine";
import { type Exposition, type ExpositionOptions, epochSeconds, timings } from "./exposition";
import { Histogram, type Labels, PromWriter } from "./prom-text";

const MODELS = ["ensemble", "preprocessing", "tensorrt_llm", "postprocessing"] as const;
const GPU_UUID = "GPU-4f8c2a61-93d2-7e1b-a5c0-1d6f2b9e8a37";

export class TritonExposition implements Exposition {
  readonly metricsPath = "/metrics";
  readonly http = null;
  private readonly outputLen = new Histogram([10, 50, 100, 500, 1000]);
  private readonly inputLen = new Histogram([10, 50, 100, 500, 1000]);
  private requestUs = 0;
  private queueUs = 0;
  private computeUs = 0;
  private reused = 0;

  constructor(
    private readonly engine: Engine,
    _opts: ExpositionOptions,
  ) {
    engine.observer = {
      iteration: () => {},
      finished: (r) => {
        const t = timings(r);
        this.outputLen.observe(r.generationTokens);
        this.inputLen.observe(r.promptTokens);
        this.requestUs += Math.round(t.e2e * 1e6);
        this.queueUs += Math.round(t.queue * 1e6);
        this.computeUs += Math.round(t.inference * 1e6);
        this.reused += Math.floor(r.cachedTokens / engine.blockSize);
      },
    };
  }

  render(): string {
    const e = this.engine;
    const g = e.gauges();
    const c = e.counters;
    const w = new PromWriter("cpp");
    const done = c.finished.stop + c.finished.length;
    const per = (f: (m: (typeof MODELS)[number]) => number) =>
      MODELS.map((m) => ({
        labels: [
          ["model", m],
          ["version", "1"],
        ] as Labels,
        value: f(m),
      }));
    const llm = (key: string, values: [string, number][]) =>
      values.map(([k, v]) => ({
        labels: [
          ["model", "tensorrt_llm"],
          [key, k],
          ["version", "1"],
        ] as Labels,
        value: v,
      }));

    w.counter(
      "nv_inference_request_success",
      "Number of successful inference requests, all batch sizes",
      per(() => done),
    );
    w.counter(
      "nv_inference_request_failure",
      "Number of failed inference requests, all batch sizes",
      MODELS.flatMap((m) =>
        ["BACKEND", "CANCELED", "OTHER", "REJECTED"].map((reason) => ({
          labels: [
            ["model", m],
            ["reason", reason],
            ["version", "1"],
          ] as Labels,
          value: reason === "CANCELED" ? c.finished.abort : 0,
        })),
      ),
    );
    w.counter(
      "nv_inference_count",
      "Number of inferences performed (does not include cached requests)",
      per(() => done),
    );
    w.counter(
      "nv_inference_exec_count",
      "Number of model executions performed (does not include cached requests)",
      per((m) => (m === "tensorrt_llm" ? c.iterations : done)),
    );
    w.counter(
      "nv_inference_request_duration_us",
      "Cumulative inference request duration in microseconds (includes cached requests)",
      per((m) => (m === "ensemble" || m === "tensorrt_llm" ? this.requestUs : done * 900)),
    );
    w.counter(
      "nv_inference_queue_duration_us",
      "Cumulative inference queuing duration in microseconds (includes cached requests)",
      per((m) => (m === "tensorrt_llm" ? this.queueUs : done * 40)),
    );
    w.counter(
      "nv_inference_compute_input_duration_us",
      "Cumulative compute input duration in microseconds (does not include cached requests)",
      per(() => done * 30),
    );
    w.counter(
      "nv_inference_compute_infer_duration_us",
      "Cumulative compute inference duration in microseconds (does not include cached requests)",
      per((m) => (m === "tensorrt_llm" ? this.computeUs : done * 700)),
    );
    w.counter(
      "nv_inference_compute_output_duration_us",
      "Cumulative inference compute output duration in microseconds (does not include cached requests)",
      per(() => done * 25),
    );
    w.gauge(
      "nv_inference_pending_request_count",
      "Instantaneous number of pending requests awaiting execution per-model.",
      per((m) => (m === "tensorrt_llm" ? g.waiting : 0)),
    );
    w.counter("nv_energy_consumption", "GPU energy consumption in joules since the Triton Server started", [
      { labels: [["gpu_uuid", GPU_UUID]], value: Math.round(e.clock.now() * 0.45) },
    ]);
    w.gauge("nv_gpu_power_usage", "GPU power usage in watts", [
      { labels: [["gpu_uuid", GPU_UUID]], value: g.running > 0 ? 612.4 : 118.2 },
    ]);
    w.gauge("nv_gpu_power_limit", "GPU power management limit in watts", [
      { labels: [["gpu_uuid", GPU_UUID]], value: 700 },
    ]);
    w.gauge("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)", [
      { labels: [["gpu_uuid", GPU_UUID]], value: g.running > 0 ? 0.97 : 0 },
    ]);
    w.gauge("nv_gpu_memory_total_bytes", "GPU total memory, in bytes", [
      { labels: [["gpu_uuid", GPU_UUID]], value: 85520809984 },
    ]);
    w.gauge("nv_gpu_memory_used_bytes", "GPU used memory, in bytes", [
      { labels: [["gpu_uuid", GPU_UUID]], value: 76235653120 },
    ]);
    w.gauge("nv_cpu_utilization", "CPU utilization rate [0.0 - 1.0]", [{ labels: [], value: 0.06 }]);
    w.gauge("nv_cpu_memory_total_bytes", "CPU total memory (RAM), in bytes", [{ labels: [], value: 2164088307712 }]);
    w.gauge("nv_cpu_memory_used_bytes", "CPU used memory (RAM), in bytes", [{ labels: [], value: 92461686784 }]);

    const maxBlocks = e.numGpuBlocks;
    w.gauge(
      "nv_trt_llm_request_metrics",
      "TRT LLM request metrics",
      llm("request_type", [
        ["active", g.running + g.waiting],
        ["max", e.profile.scheduler.maxNumSeqs],
        ["scheduled", g.running],
        ["context", Math.min(g.running, g.waiting > 0 ? 1 : 0)],
        ["waiting", g.waiting],
      ]),
    );
    w.gauge(
      "nv_trt_llm_runtime_memory_metrics",
      "TRT LLM runtime memory metrics",
      llm("memory_type", [
        ["cpu", 21474836],
        ["gpu", 1073741824],
        ["pinned", 536870912],
      ]),
    );
    w.gauge(
      "nv_trt_llm_kv_cache_block_metrics",
      "TRT LLM KV cache block metrics",
      llm("kv_cache_block_type", [
        ["max", maxBlocks],
        ["free", maxBlocks - g.usedBlocks],
        ["used", g.usedBlocks],
        ["tokens_per", e.blockSize],
        ["reused", this.reused],
        ["fraction", g.kvUsage],
      ]),
    );
    w.counter(
      "nv_trt_llm_disaggregated_serving_metrics",
      "TRT LLM disaggregated serving metrics",
      llm("disaggregated_serving_type", [
        ["kv_cache_transfer_ms", 0],
        ["request_count", 0],
      ]),
    );
    w.gauge(
      "nv_trt_llm_inflight_batcher_metrics",
      "TRT LLM inflight_batcher-specific metrics",
      llm("inflight_batcher_specific_metric", [
        ["total_context_tokens", 0],
        ["generation_requests", g.running],
        ["micro_batch_id", 0],
        ["paused_requests", 0],
      ]),
    );
    w.gauge(
      "nv_trt_llm_general_metrics",
      "General TRT LLM metrics",
      llm("general_type", [
        ["iteration_counter", c.iterations],
        ["timestamp", Math.round(epochSeconds(e) * 1e6)],
      ]),
    );
    w.histogram("nv_llm_output_token_len", "TRT LLM response metrics", [
      {
        labels: [
          ["model", "tensorrt_llm"],
          ["response_metric_type", "total_output_tokens"],
          ["version", "1"],
        ],
        hist: this.outputLen,
      },
    ]);
    w.histogram("nv_llm_input_token_len", "TRT LLM response metrics", [
      {
        labels: [
          ["model", "tensorrt_llm"],
          ["response_metric_type", "total_input_tokens"],
          ["version", "1"],
        ],
        hist: this.inputLen,
      },
    ]);
    return w.text();
  }
}
