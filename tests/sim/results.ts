// Per-request records of a fleet run and the figures the routing benchmark reports.

export interface RequestRecord {
  id: string;
  /** Pod index, -1 when rejected before reaching one. */
  pod: number;
  status: "ok" | "rejected" | "error" | "unfinished";
  httpStatus: number;
  /** A rejection's reason: the x-llm-d-request-dropped-reason header, else the picker's label ("" if none). */
  reason: string;
  arrivalMs: number;
  /** When the picker decided (placed or rejected it): the arrival, or later for a held request; NaN while held. */
  dispatchMs: number;
  firstTokenMs: number;
  finishedMs: number;
  promptTokens: number;
  outputTokens: number;
  cachedTokens: number;
  fallback: boolean;
  /** The gateway replica the load balancer sent the request to (0 for pickers modelling one gateway). */
  gateway: number;
  /** The request's tenant and objective (flow-control workloads; "" otherwise). */
  tenant: string;
  objective: string;
}

export interface Summary {
  requests: number;
  successRate: number;
  ttftP50Ms: number;
  ttftP90Ms: number;
  ttftP99Ms: number;
  e2eP50Ms: number;
  e2eP99Ms: number;
  /** Mean time between output tokens, per request, averaged. */
  itlMeanMs: number;
  /** Output tokens per second over the run (first arrival to last completion). */
  outputTokPerSec: number;
  /** Prompt tokens served from the pods' prefix caches / all prompt tokens. */
  prefixHitRate: number;
  /** Requests the router did not place itself (the gateway's fallback did). */
  fallbacks: number;
  /** Mean and max of the pods' total queued requests, sampled every second. */
  queueMean: number;
  queueMax: number;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = Float64Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

export function summarize(records: RequestRecord[], queueSamples: number[]): Summary {
  const ok = records.filter((r) => r.status === "ok");
  const ttft = ok.map((r) => r.firstTokenMs - r.arrivalMs);
  const e2e = ok.map((r) => r.finishedMs - r.arrivalMs);
  const itl = ok.filter((r) => r.outputTokens > 1).map((r) => (r.finishedMs - r.firstTokenMs) / (r.outputTokens - 1));
  const start = Math.min(...records.map((r) => r.arrivalMs));
  const end = Math.max(...ok.map((r) => r.finishedMs));
  const outTokens = ok.reduce((a, r) => a + r.outputTokens, 0);
  const prompt = ok.reduce((a, r) => a + r.promptTokens, 0);
  const cached = ok.reduce((a, r) => a + r.cachedTokens, 0);
  return {
    requests: records.length,
    successRate: records.length ? ok.length / records.length : 0,
    ttftP50Ms: percentile(ttft, 0.5),
    ttftP90Ms: percentile(ttft, 0.9),
    ttftP99Ms: percentile(ttft, 0.99),
    e2eP50Ms: percentile(e2e, 0.5),
    e2eP99Ms: percentile(e2e, 0.99),
    itlMeanMs: itl.length ? itl.reduce((a, b) => a + b, 0) / itl.length : NaN,
    outputTokPerSec: end > start ? (outTokens * 1000) / (end - start) : 0,
    prefixHitRate: prompt > 0 ? cached / prompt : 0,
    fallbacks: records.filter((r) => r.fallback).length,
    queueMean: queueSamples.length ? queueSamples.reduce((a, b) => a + b, 0) / queueSamples.length : 0,
    queueMax: queueSamples.length ? Math.max(...queueSamples) : 0,
  };
}
