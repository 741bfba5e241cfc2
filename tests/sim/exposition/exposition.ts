// What every engine's /metrics renderer shares: the interface the pod server and tests use, and the
// per-request histograms most engines keep (each engine picks its own names and buckets).
import type { Engine, RequestResult } from "../engine";
import type { HttpInstrumentation } from "./process";
import { Histogram } from "./prom-text";

export interface Exposition {
  /** Path the Prometheus text is served at (trtllm-serve: /prometheus/metrics). */
  readonly metricsPath: string;
  render(): string;
  /** HTTP metrics of the API server, when the engine shows them (vLLM). */
  readonly http: HttpInstrumentation | null;
  /** trtllm-serve's /metrics: JSON iteration statistics. */
  iterationStatsJson?(): string;
}

export interface ExpositionOptions {
  /** Served model name (the model_name / model label). */
  modelName: string;
}

/** Seconds since the Unix epoch of the engine's clock now. */
export const epochSeconds = (engine: Engine): number => (engine.clock.epochMs + engine.clock.now()) / 1000;

/** Request-level timings in seconds, as the engines define them. */
export function timings(r: RequestResult) {
  const s = (ms: number) => Math.max(0, ms) / 1000;
  return {
    e2e: s(r.finishedMs - r.arrivalMs),
    ttft: s(r.firstTokenMs - r.arrivalMs),
    queue: s(r.firstScheduledMs - r.arrivalMs),
    prefill: s(r.firstTokenMs - r.firstScheduledMs),
    decode: s(r.finishedMs - r.firstTokenMs),
    inference: s(r.finishedMs - r.firstScheduledMs),
    tpot: r.generationTokens > 1 ? s(r.finishedMs - r.firstTokenMs) / (r.generationTokens - 1) : 0,
  };
}

/** Observes the mean inter-token time once per generated token after the first (token-level histograms). */
export function observeTokens(h: Histogram, r: RequestResult): void {
  const t = timings(r);
  for (let i = 1; i < r.generationTokens; i++) h.observe(t.tpot);
}

/** The highest finish reasons a server reports, in the order vLLM lists them. */
export const FINISH_REASONS = ["stop", "length", "abort"] as const;

export { Histogram };
