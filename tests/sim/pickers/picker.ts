// The picker interface of the virtual-time fleet: one decision per request, told when the response starts
// and ends (routers that count in-flight requests need the end), plus the scraped view of the pods that
// metrics-driven pickers (GIE, the filter's companion) read.
import type { VirtualClock } from "../clock";
import type { Engine } from "../engine";
import type { EngineKind, EngineProfile } from "../profile";
import type { Rng } from "../rng";
import type { WorkloadRequest, Prepared } from "../workloads";

export interface FleetPod {
  index: number;
  name: string;
  /** IP:port as a router writes it in x-gateway-destination-endpoint. */
  address: string;
  kind: EngineKind;
  engine: Engine;
  /** Requests the gateway sent here that have not finished (Envoy's active requests). */
  inFlight: number;
}

/**
 * One pod's /metrics as a scraper saw them (the engine's lagged gauges), at scrapedAtMs. The adapter lists
 * are the labels of vllm:lora_requests_info as the pod's engine writes them (vllmLoraLabels: a vLLM V1 pod
 * lists every adapter in flight in both).
 */
export interface ScrapedMetrics {
  queued: number;
  running: number;
  kvUsage: number;
  loraRunning: string[];
  loraWaiting: string[];
  maxLora: number;
  blockSize: number;
  numBlocks: number;
  scrapedAtMs: number;
}

export interface PickerContext {
  readonly clock: VirtualClock;
  readonly pods: readonly FleetPod[];
  readonly profile: EngineProfile;
  /** The picker's own seeded random stream. */
  readonly rng: Rng;
  /** Registers fn to run every intervalMs of virtual time while the run is active (scrapes). */
  every(intervalMs: number, fn: (nowMs: number) => void): void;
  /** The pods' metrics as a scrape now would read them. */
  scrape(): ScrapedMetrics[];
  /** True while requests are outstanding: work a picker schedules itself on the clock should stop after. */
  active(): boolean;
}

export type Pick =
  | {
      pod: number;
      /** The router did not choose; the gateway's fallback did. */
      fallback?: boolean;
      ticket?: unknown;
      /** The gateway replica that handled the request (pickers modelling several; default 0). */
      gateway?: number;
    }
  | { reject: number; gateway?: number };

export interface Picker {
  readonly name: string;
  start(ctx: PickerContext): void;
  pick(req: WorkloadRequest, prepared: Prepared, ctx: PickerContext): Pick;
  /** The response started (first token) at nowMs. */
  responseStarted?(pick: Pick, nowMs: number): void;
  /** The response ended at nowMs (ok false: the request failed). */
  responseEnded?(pick: Pick, nowMs: number, ok: boolean): void;
  /** Counters the picker wants reported (e.g. fallbacks, configuration used). */
  stats?(): Record<string, number | string | boolean>;
  close?(): void;
}
