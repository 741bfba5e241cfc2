// The real filter (build/filter.wasm) making each pick, through the emulator's in-process proxy-wasm host on
// the fleet's virtual time. A simulated companion scrapes the pods' (lagged) metrics every 50 ms, encodes
// an EPS1 snapshot when its content changed (versions increase) and publishes it into shared data as the
// filter's fetcher would (the contact time is refreshed on every scrape, as every long-poll round trip
// does). Per request: headers + body through a stream; the destination header (or a local reply) is the
// decision; the response headers and end reach the filter when the simulated response starts and ends, so
// its in-flight accounting sees every stream finish. Without a destination header (the filter failing
// open) the request goes round-robin, counted as a fallback.
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type SnapshotEndpoint, encodeSnapshot } from "../../../companion/snapshot";
import { profileOf, type FlatProfile } from "../../helpers/profile";
import { createHost, type Host } from "../../../envoy/emulator/host";
import type { HttpStream } from "../../../envoy/emulator/stream";
import { DESTINATION_HEADER, SNAPSHOT_META_KEY, publishSnapshot, snapshotMeta } from "../../helpers/filter-contract";
import type { EngineKind } from "../profile";
import type { Picker, PickerContext, ScrapedMetrics } from "./picker";

export const FILTER_CONFIGURATION = JSON.stringify({ fetchSnapshots: false, failureMode: "FailOpen" });
const SCRAPE_MS = 50;

/** Engine names as the companion writes them into snapshots. */
const SNAPSHOT_ENGINE: Record<EngineKind, string> = {
  "vllm-v1": "vllm",
  "vllm-v0": "vllm",
  sglang: "sglang",
  "triton-trtllm": "triton-tensorrt-llm",
  "trtllm-serve": "trtllm-serve",
};

/** build/filter.wasm of the checkout this module runs from. */
export function defaultFilterWasm(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
    const candidate = path.join(dir, "build", "filter.wasm");
    if (existsSync(candidate)) return candidate;
  }
  return path.join(process.cwd(), "build", "filter.wasm");
}

export interface FilterPickerOptions {
  wasm?: string;
  /** Worker VMs (Envoy --concurrency); streams are spread over them round-robin. */
  concurrency?: number;
  configuration?: string;
  logLevel?: string;
  /** The scheduling profile the simulated companion ships (default: GIE's default profile). */
  profile?: Partial<FlatProfile>;
}

interface Ticket {
  stream: HttpStream;
}

export function filterPicker(opts: FilterPickerOptions = {}): Picker {
  let host: Host | null = null;
  let ctxRef: PickerContext | null = null;
  let version = 0n;
  let lastContent = "";
  let rr = 0;
  const counters = { fallbacks: 0, rejected: 0, snapshots: 0, logs: 0 };
  const schedulingProfile = profileOf(opts.profile);
  const epochNs = (ctx: PickerContext) => BigInt(ctx.clock.epochMs) * 1_000_000n;

  const sync = (ctx: PickerContext) => {
    const lag = ctx.clock.now() - host!.nowMs();
    if (lag > 0) host!.advance(lag);
  };

  const publish = (ctx: PickerContext, view: ScrapedMetrics[]) => {
    const endpoints: SnapshotEndpoint[] = ctx.pods.map((p, i) => {
      const m = view[i];
      return {
        address: p.address,
        engine: SNAPSHOT_ENGINE[p.kind],
        stale: false,
        error: false,
        queued: m.queued,
        running: m.running,
        kvUsage: m.kvUsage,
        ageMs: 0,
        lora: m.maxLora > 0 ? { running: m.loraRunning, waiting: m.loraWaiting, max: m.maxLora } : null,
        cache: { blockSize: m.blockSize, numBlocks: m.numBlocks },
      };
    });
    const content = JSON.stringify(endpoints);
    const nowMs = ctx.clock.epochMs + ctx.clock.now(); // the VMs' clock (epoch-based)
    sync(ctx);
    if (content !== lastContent) {
      lastContent = content;
      version++;
      counters.snapshots++;
      publishSnapshot(
        host!.sharedData,
        encodeSnapshot({
          version,
          generatedAtMs: nowMs,
          profile: schedulingProfile,
          endpoints,
          baseModels: [ctx.profile.model],
        }),
        nowMs,
      );
    } else {
      host!.sharedData.set(SNAPSHOT_META_KEY, snapshotMeta(version, nowMs));
    }
  };

  const makeHost = (ctx: PickerContext, configuration: string) =>
    createHost({
      wasm: opts.wasm ?? defaultFilterWasm(),
      rootId: "endpoint-picker",
      vmId: "endpoint-picker",
      configuration,
      concurrency: opts.concurrency ?? 2,
      manualTicks: true,
      clock: () => epochNs(ctx) + BigInt(Math.round(ctx.clock.now() * 1e6)),
      allowOnHeadersStopIteration: true,
      logLevel: opts.logLevel ?? "warn",
      onLog: () => {
        counters.logs++;
      },
      // A filter that still polls its companion gets the current snapshot in-process.
      httpCallHandler: () => {
        const blob = host?.sharedData.get("endpoint-picker.snapshot")?.value;
        return blob ? { headers: [[":status", "200"]], body: blob } : { headers: [[":status", "304"]] };
      },
    });

  return {
    name: "filter",
    start(ctx) {
      ctxRef = ctx;
      version = 0n;
      lastContent = "";
      rr = 0;
      host = makeHost(ctx, opts.configuration ?? FILTER_CONFIGURATION);
      publish(ctx, ctx.scrape());
      ctx.every(SCRAPE_MS, () => publish(ctx, ctx.scrape()));
    },
    pick(req, _prepared, ctx) {
      sync(ctx);
      const stream = host!.openStream();
      stream.sendRequestHeaders(
        [
          [":method", "POST"],
          [":path", req.api === "chat" ? "/v1/chat/completions" : "/v1/completions"],
          [":authority", "gw"],
          [":scheme", "http"],
          ["content-type", "application/json"],
          ["content-length", String(Buffer.byteLength(req.bodyText))],
        ],
        false,
      );
      stream.sendRequestData(req.bodyText, true);
      const reply = stream.localReply;
      if (reply) {
        counters.rejected++;
        stream.finish();
        return { reject: reply.status };
      }
      const headers = stream.forwarded.requestHeaders;
      const dest = headers?.find(([k]) => k === DESTINATION_HEADER)?.[1];
      const pod = dest === undefined ? -1 : ctx.pods.findIndex((p) => p.address === dest);
      if (pod >= 0) return { pod, ticket: { stream } satisfies Ticket };
      counters.fallbacks++;
      return { pod: rr++ % ctx.pods.length, fallback: true, ticket: { stream } satisfies Ticket };
    },
    responseStarted(pick) {
      if (!("ticket" in pick) || !ctxRef) return;
      sync(ctxRef);
      (pick.ticket as Ticket).stream.sendResponseHeaders(
        [
          [":status", "200"],
          ["content-type", "text/event-stream"],
        ],
        false,
      );
    },
    responseEnded(pick, _now, ok) {
      if (!("ticket" in pick) || !ctxRef) return;
      sync(ctxRef);
      const { stream } = pick.ticket as Ticket;
      if (!stream.forwarded.responseHeaders) stream.sendResponseHeaders([[":status", ok ? "200" : "500"]], false);
      stream.sendResponseData("data: [DONE]\n\n", true);
      stream.finish();
    },
    stats: () => ({ ...counters, failedWorkers: host?.failedWorkers().length ?? 0 }),
    close() {
      host?.close();
      host = null;
    },
  };
}
