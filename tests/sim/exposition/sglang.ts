// SGLang's /metrics (python/sglang/srt/metrics/collector.py; --enable-metrics): scheduler gauges labelled
// model_name, engine_type, tp_rank, pp_rank, tokenizer counters and histograms, cache_config_info with
// page_size/num_pages. Prometheus runs in multiprocess mode there, so no *_created series.
import type { Engine } from "../engine";
import { type Exposition, type ExpositionOptions, observeTokens, timings } from "./exposition";
import { writePythonProcess } from "./process";
import { Histogram, type Labels, PromWriter } from "./prom-text";

const TTFT = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400];
const E2E = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400];
const ITL = [
  0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4,
  6, 8,
];
const QUEUE = [
  0, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 600, 700, 800, 900,
  1000,
];
const RETRACTIONS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 100];

export class SglangExposition implements Exposition {
  readonly metricsPath = "/metrics";
  readonly http = null;
  private readonly ttft = new Histogram(TTFT);
  private readonly itl = new Histogram(ITL);
  private readonly e2e = new Histogram(E2E);
  private readonly queue = new Histogram(QUEUE);
  private readonly retractions = new Histogram(RETRACTIONS);
  private cached = 0;
  private lastGen = 0;
  private lastT = 0;

  constructor(
    private readonly engine: Engine,
    private readonly opts: ExpositionOptions,
  ) {
    engine.observer = {
      iteration: () => {},
      finished: (r) => {
        const t = timings(r);
        this.ttft.observe(t.ttft);
        observeTokens(this.itl, r);
        this.e2e.observe(t.e2e);
        this.queue.observe(t.queue);
        this.retractions.observe(r.preemptions);
        this.cached += r.cachedTokens;
      },
    };
  }

  render(): string {
    const e = this.engine;
    const g = e.gauges();
    const c = e.counters;
    const w = new PromWriter("python");
    const labels: Labels = [
      ["engine_type", "unified"],
      ["model_name", this.opts.modelName],
      ["pp_rank", "0"],
      ["tp_rank", "0"],
    ];
    const gauge = (name: string, help: string, value: number) => w.gauge(name, help, [{ labels, value }]);
    const counter = (name: string, help: string, value: number) => w.counter(name, help, [{ labels, value }]);
    const hist = (name: string, help: string, h: Histogram) => w.histogram(name, help, [{ labels, hist: h }]);
    const maxTokens = e.numGpuBlocks * e.blockSize;
    const now = e.clock.now();
    const throughput = now > this.lastT ? ((c.generationTokens - this.lastGen) * 1000) / (now - this.lastT) : 0;
    this.lastGen = c.generationTokens;
    this.lastT = now;

    writePythonProcess(w, now / 1000, e.clock.epochMs / 1000, c.requests);
    gauge("sglang:num_running_reqs", "The number of running requests.", g.running);
    gauge("sglang:num_used_tokens", "The number of used tokens.", g.usedBlocks * e.blockSize);
    gauge("sglang:token_usage", "The token usage.", Math.round(g.kvUsage * 100) / 100);
    gauge(
      "sglang:pending_prealloc_token_usage",
      "The token usage for pending preallocated tokens (not preallocated yet).",
      0,
    );
    gauge("sglang:swa_token_usage", "The token usage for SWA layers.", 0);
    gauge("sglang:mamba_usage", "The token usage for Mamba layers.", 0);
    gauge("sglang:decode_sum_seq_lens", "The sum of all sequence lengths in decode.", g.usedBlocks * e.blockSize);
    gauge("sglang:gen_throughput", "The generation throughput (token/s).", Math.round(throughput * 100) / 100);
    gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", g.waiting);
    gauge("sglang:num_grammar_queue_reqs", "The number of requests in the grammar waiting queue.", 0);
    gauge(
      "sglang:num_running_reqs_offline_batch",
      "The number of running low-priority offline batch requests(label is 'batch').",
      0,
    );
    gauge(
      "sglang:cache_hit_rate",
      "The prefix cache hit rate.",
      c.prefixQueries > 0 ? Math.round((c.prefixHits / c.prefixQueries) * 100) / 100 : 0,
    );
    gauge("sglang:max_total_num_tokens", "Maximum total number of tokens in the KV cache pool.", maxTokens);
    gauge("sglang:spec_accept_length", "The average acceptance length of speculative decoding.", 0);
    gauge(
      "sglang:spec_accept_rate",
      "The average acceptance rate of speculative decoding (`accepted tokens / total draft tokens` in batch).",
      0,
    );
    gauge("sglang:num_retracted_reqs", "The number of retracted requests.", 0);
    gauge("sglang:num_paused_reqs", "The number of paused requests by async weight sync.", 0);
    gauge("sglang:utilization", "The utilization.", g.running > 0 ? 1 : 0);
    gauge("sglang:engine_startup_time", "The time taken for the engine to start up.", 41.7);
    gauge("sglang:engine_load_weights_time", "The time taken for the engine to load weights.", 9.3);
    gauge("sglang:new_token_ratio", "The new token ratio.", 0.7);
    gauge("sglang:is_cuda_graph", "Whether the batch is using CUDA graph.", g.running > 0 ? 1 : 0);
    w.gauge("sglang:cache_config_info", "Cache configuration information.", [
      { labels: [...labels, ["num_pages", String(e.numGpuBlocks)], ["page_size", String(e.blockSize)]], value: 1 },
    ]);
    counter("sglang:num_retracted_reqs", "The number of retracted requests.", c.preemptions);
    counter("sglang:prompt_tokens", "Number of prefill tokens processed.", c.promptTokens);
    counter("sglang:generation_tokens", "Number of generation tokens processed.", c.generationTokens);
    counter("sglang:cached_tokens", "Number of cached prompt tokens.", this.cached);
    counter(
      "sglang:num_requests",
      "Number of requests processed.",
      c.finished.length + c.finished.stop + c.finished.abort,
    );
    counter("sglang:num_so_requests", "Number of structured output requests processed.", 0);
    counter("sglang:num_aborted_requests", "Number of requests aborted.", c.finished.abort);
    hist("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", this.ttft);
    hist("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", this.itl);
    hist("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", this.e2e);
    hist("sglang:queue_time_seconds", "Histogram of queueing time in seconds.", this.queue);
    hist("sglang:num_retractions", "Histogram of retraction counts per request.", this.retractions);
    return w.text();
  }
}
