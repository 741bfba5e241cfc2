// The picker interface of the virtual-time fleet: one decision per request, told when the response starts
// and ends (routers that count in-flight requests need the end), plus the scraped view of the pods that
// metrics-driven pickers (GIE, the filter's companion) read. A picker may hold a request and decide later
// (the filter's flow control keeps the stream paused): it answers `{ held: true }` and calls `later` with the
// decision once, on the fleet's clock.
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
  /** The pods that are up; it grows when pods join (FleetOptions.joins), indexes stay stable. May be empty. */
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
      /** P/D: the prefill pod the decode pod's sidecar prefills on first (FleetOptions.kvTransferMsPerToken). */
      prefill?: number;
    }
  | {
      /** HTTP status of the rejection (a local reply: 429, 503, ...). */
      reject: number;
      /**
       * Why: the `x-llm-d-request-dropped-reason` header of the reply, else a label of the picker's (the
       * reply's response-code details, e.g. endpoint_picker_saturated); "" when it gives none.
       */
      reason?: string;
      gateway?: number;
    };

/** The request is held (e.g. in the filter's flow-control queue): the decision comes later, through `later`. */
export interface Held {
  held: true;
  gateway?: number;
}

export type PickOutcome = Pick | Held;

export interface Picker {
  readonly name: string;
  start(ctx: PickerContext): void;
  /**
   * Decides now, or answers `{ held: true }` and calls `later(pick)` exactly once afterwards (never inside
   * this call). Pickers that never hold ignore `later`. With no pods up a picker rejects (503).
   */
  pick(req: WorkloadRequest, prepared: Prepared, ctx: PickerContext, later: (pick: Pick) => void): PickOutcome;
  /** The response started (first token) at nowMs. */
  responseStarted?(pick: Pick, nowMs: number): void;
  /** The response ended at nowMs (ok false: the request failed). */
  responseEnded?(pick: Pick, nowMs: number, ok: boolean): void;
  /** Requests held as the picker itself reports them (the filter: its flow-control queue-size gauges). */
  queued?(): number;
  /** The picker's own estimate of the pool's saturation, when it keeps one (the filter's flow control). */
  saturation?(): number;
  /** Counters the picker wants reported (e.g. fallbacks, configuration used). */
  stats?(): Record<string, number | string | boolean>;
  close?(): void;
}
