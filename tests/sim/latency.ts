// Duration of one engine step (one forward pass of the batch), from the profile's latency model.
import type { EngineProfile } from "./profile";
import type { Rng } from "./rng";

export interface StepShape {
  /** Uncached prompt tokens computed in this step (all prefill chunks together). */
  prefillTokens: number;
  /** Requests that decode one token in this step. */
  decodeRequests: number;
  /** Fraction of KV blocks in use when the step starts. */
  kvUsage: number;
  /** Requests in the batch (prefill + decode). */
  batchSize: number;
}

/** Prefill part of a step in ms (0 without prefill tokens). */
export function prefillMs(profile: EngineProfile, tokens: number): number {
  if (tokens <= 0) return 0;
  const l = profile.latency;
  if (l.kind === "dynamo-fit") return l.prefill.a * tokens * tokens + l.prefill.b * tokens + l.prefill.c;
  return l.ttftBaseMs + l.ttftPerTokenMs * tokens;
}

/** Decode part of a step in ms (0 without decoding requests). */
export function decodeMs(profile: EngineProfile, shape: StepShape, rng: Rng | null): number {
  if (shape.decodeRequests <= 0) return 0;
  const l = profile.latency;
  if (l.kind === "dynamo-fit") {
    const u = shape.kvUsage;
    return Math.max(l.decode.floorMs, l.decode.a * u * u + l.decode.b * u + l.decode.c);
  }
  const jitter = rng ? (rng.next() * 2 - 1) * l.itlJitterMs : 0;
  return Math.max(1, (l.itlMs + jitter) * loadFactor(profile, shape.batchSize));
}

/** per-token profiles: latency grows linearly from 1x (one request) to loadFactorAtMaxSeqs (max-num-seqs). */
export function loadFactor(profile: EngineProfile, batchSize: number): number {
  const l = profile.latency;
  const max = profile.scheduler.maxNumSeqs;
  if (l.kind !== "per-token" || max <= 1) return 1;
  return 1 + ((l.loadFactorAtMaxSeqs - 1) * (Math.max(1, Math.min(batchSize, max)) - 1)) / (max - 1);
}

/**
 * A step that carries both prefill chunks and decodes costs both parts (the Dynamo mocker's model of a
 * mixed chunked-prefill batch).
 */
export function stepMs(profile: EngineProfile, shape: StepShape, rng: Rng | null): number {
  const prefill =
    prefillMs(profile, shape.prefillTokens) *
    (profile.latency.kind === "per-token" ? loadFactor(profile, shape.batchSize) : 1);
  return prefill + decodeMs(profile, shape, rng);
}
