// Drives the real filter (build/filter.wasm) in the emulator's in-process host on virtual time, for the
// filter's behaviour tests and benchmark.
import { createHost, Host, HttpStream, type HttpCallHandler, type Pairs } from "../../envoy/emulator/host";
import {
  encodeSnapshot,
  type ModelRewriteRule,
  type SnapshotEndpoint,
  type SnapshotFlowControl,
} from "../../companion/snapshot";
import { profileOf, type FlatProfile } from "../helpers/profile";
import { publishSnapshot, DESTINATION_HEADER } from "../helpers/filter-contract";

export const START_MS = 1_700_000_000_000;
const HR_START = process.hrtime.bigint();

export interface PickerHostOptions {
  config?: Record<string, unknown>;
  concurrency?: number;
  allowOnHeadersStopIteration?: boolean;
  httpCallHandler?: HttpCallHandler;
  wasm?: string;
  /** The VMs' clock also runs in real time between advances (for benchmarks that time the filter). */
  realTimeClock?: boolean;
}

export class PickerHost {
  readonly host: Host;
  readonly logs: string[] = [];
  private version = 0n;

  constructor(opts: PickerHostOptions = {}) {
    this.host = createHost({
      wasm: opts.wasm ?? "build/filter.wasm",
      rootId: "endpoint-picker",
      vmId: "endpoint-picker",
      configuration: JSON.stringify({ fetchSnapshots: false, ...opts.config }),
      concurrency: opts.concurrency ?? 1,
      allowOnHeadersStopIteration: opts.allowOnHeadersStopIteration ?? true,
      manualTicks: true,
      clock: opts.realTimeClock
        ? () => BigInt(Math.round(this.nowMs * 1000)) * 1000n + (process.hrtime.bigint() - HR_START)
        : () => BigInt(Math.round(this.nowMs * 1000)) * 1000n,
      logLevel: "info",
      onLog: (level, msg) => {
        this.logs.push(`${level} ${msg}`);
      },
      httpCallHandlers: opts.httpCallHandler ? { "endpoint-picker-companion": opts.httpCallHandler } : undefined,
    });
  }

  /** The VMs' clock (ms): virtual time, moved only by `advance`. */
  get nowMs(): number {
    return START_MS + (this.host ? this.host.nowMs() : 0);
  }

  /** Moves virtual time: ticks and http-call timeouts fire at their moment, with the clock reading it. */
  advance(ms: number): void {
    this.host.advance(ms);
  }

  /** Publishes a snapshot of `endpoints` (defaults filled in) as the fetcher would. */
  publish(
    endpoints: Partial<SnapshotEndpoint>[],
    profile: Partial<FlatProfile> = {},
    baseModels: string[] = [],
    objectives: Array<{ name: string; priority: number }> = [],
    modelRewrites: ModelRewriteRule[] = [],
    flowControl: SnapshotFlowControl | null = null,
  ): Uint8Array {
    this.version += 1n;
    const blob = new Uint8Array(
      encodeSnapshot({
        version: this.version,
        generatedAtMs: this.nowMs,
        profile: profileOf(profile),
        endpoints: endpoints.map((e) => ({ ...endpoint(e.address ?? "10.0.0.1:8000"), ...e })),
        baseModels,
        objectives,
        modelRewrites,
        flowControl,
      }),
    );
    publishSnapshot(this.host.sharedData, blob, this.nowMs);
    return blob;
  }

  /** Sends one request through the filter (body, if any, in one chunk with end_of_stream). */
  send(
    opts: {
      worker?: number;
      path?: string;
      headers?: Pairs;
      body?: string | Uint8Array;
      chunks?: (string | Uint8Array)[];
    } = {},
  ): HttpStream {
    const s = this.host.openStream({ worker: opts.worker });
    const hasBody = opts.body !== undefined || opts.chunks !== undefined;
    s.sendRequestHeaders(
      [
        [":method", hasBody ? "POST" : "GET"],
        [":path", opts.path ?? "/v1/completions"],
        [":authority", "gw"],
        ...(opts.headers ?? []),
      ],
      !hasBody,
    );
    if (opts.body !== undefined) s.sendRequestData(opts.body, true);
    if (opts.chunks) opts.chunks.forEach((c, i) => s.sendRequestData(c, i === opts.chunks!.length - 1));
    return s;
  }

  /** A completions request's destination (null when the filter let it through without one). */
  pick(opts: Parameters<PickerHost["send"]>[0] = {}): { stream: HttpStream; dest: string | null } {
    const stream = this.send(opts);
    return { stream, dest: destination(stream) };
  }

  counter(name: string): number {
    return this.host.metrics().counters[`wasmcustom.${name}`] ?? 0;
  }

  gauge(name: string): number | undefined {
    return this.host.metrics().gauges[`wasmcustom.${name}`];
  }
}

export function endpoint(address: string): SnapshotEndpoint {
  return { address, stale: false, error: false, queued: 0, running: 0, kvUsage: 0.1, lora: null };
}

export function header(pairs: Pairs | null, name: string): string[] {
  return (pairs ?? []).filter(([k]) => k === name).map(([, v]) => v);
}

export function destination(s: HttpStream): string | null {
  const values = header(s.forwarded.requestHeaders, DESTINATION_HEADER);
  return values.length === 0 ? null : values.join(",");
}

/** The request headers of a JSON POST of `length` bytes to `path` (body in later callbacks). */
export function postHeaders(path: string, length: number): Pairs {
  return [
    [":method", "POST"],
    [":path", path],
    [":authority", "gw"],
    ["content-type", "application/json"],
    ["content-length", String(length)],
  ];
}

export function completion(model: string, prompt: string): string {
  return JSON.stringify({ model, prompt, max_tokens: 16 });
}
