// The real filter (build/filter.wasm) making each pick, through the emulator's in-process proxy-wasm host on
// the fleet's virtual time. `gateways` replicas each run their own host (one Envoy: its own shared data and
// worker VMs) behind a load balancer model (gateways.ts) that spreads the requests over them. A
// simulated companion scrapes the pods' (lagged) metrics every 50 ms (adapter lists read as the companion
// reads them, companion/extract.ts normaliseLora), encodes an EPS1 snapshot when its
// content changed (versions increase) and publishes it into every gateway's shared data as the filter's
// fetcher would, after that gateway's delay (the long poll's answer plus a per-gateway phase); the contact
// time is refreshed on every scrape, as every long-poll round trip does. Per request: headers + body
// through a stream on the gateway the balancer chose; the destination header (or a local reply) is the
// decision; the response headers and end reach the filter when the simulated response starts and ends, so
// its in-flight accounting sees every stream finish. Without a destination header (the filter failing
// open) the request goes round-robin, counted as a fallback. With `exchange`, the gateways' reports to the
// companion (POST /v1/gateway-report) reach in-process exchange objects over a simulated network
// (exchange.ts).
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { normaliseLora } from "../../../companion/extract";
import { type SnapshotEndpoint, encodeSnapshot } from "../../../companion/snapshot";
import { profileOf, type FlatProfile } from "../../helpers/profile";
import { createHost, type Host } from "../../../envoy/emulator/host";
import type { HttpStream } from "../../../envoy/emulator/stream";
import {
  DESTINATION_HEADER,
  SNAPSHOT_KEY,
  SNAPSHOT_META_KEY,
  publishSnapshot,
  snapshotMeta,
} from "../../helpers/filter-contract";
import { type ExchangeOptions, ExchangeNetwork, gatewayCallHandler } from "./exchange";
import { type GatewayBalancer, LB_KINDS, type LbKind, isLbKind, makeBalancer } from "./gateways";
import type { EngineKind } from "../profile";
import { Rng } from "../rng";
import type { Picker, PickerContext, ScrapedMetrics } from "./picker";

export const FILTER_CONFIGURATION = JSON.stringify({ fetchSnapshots: false, failureMode: "FailOpen" });
/**
 * The plugin configuration field that turns the filter's reports to the companion on (docs/GATEWAYS.md,
 * filter/config.ts). It defaults to fetchSnapshots, so with fetchSnapshots false the filter reports only
 * when the simulator's exchange is on and sets it.
 */
export const FILTER_EXCHANGE_FIELD = "shareWithGateways";
const SCRAPE_MS = 50;
/** Defaults of the companion's publication to each gateway (see FilterPickerOptions). */
export const SNAPSHOT_DELAY_MS = 2;
export const SNAPSHOT_PHASE_MS = 4;

/** The simulator's filter configuration: no snapshot fetching (the simulated companion writes them), fail open. */
export function filterConfiguration(exchange: boolean): string {
  return exchange
    ? JSON.stringify({ fetchSnapshots: false, failureMode: "FailOpen", [FILTER_EXCHANGE_FIELD]: true })
    : FILTER_CONFIGURATION;
}

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
  /** Worker VMs per gateway (Envoy --concurrency); streams are spread over them round-robin. */
  concurrency?: number;
  /** The plugin configuration (default: filterConfiguration(exchange on)). */
  configuration?: string;
  logLevel?: string;
  /** The scheduling profile the simulated companion ships (default: GIE's default profile). */
  profile?: Partial<FlatProfile>;
  /** Gateway replicas, each one Envoy: its own emulator host, shared data and worker VMs (default 1). */
  gateways?: number;
  /** The load balancer in front of the gateways (default round-robin; random draws from the picker's seeded RNG). */
  lb?: LbKind;
  /**
   * A publication reaches gateway g this long after the companion's scrape: the held long poll's answer
   * (default 2 ms) plus the gateway's phase, drawn once per gateway in [0, snapshotPhaseMs) (default 4 ms).
   * The first snapshot is in every gateway's shared data before the first request.
   */
  snapshotDelayMs?: number;
  snapshotPhaseMs?: number;
  /** The exchange between the gateways through companion replicas (default: off). */
  exchange?: ExchangeOptions;
}

interface Ticket {
  stream: HttpStream;
  gateway: number;
}

interface Gateway {
  index: number;
  host: Host;
  /** Fleet time at which the host's virtual time was 0. */
  baseMs: number;
  /** Extra delay of every publication to this gateway (its phase). */
  phaseMs: number;
  /** This gateway machine's clock offset (under 1 ms): Envoys started apart seed their VMs' randomness apart. */
  skewNs: bigint;
  /** Requests the load balancer sent here. */
  requests: number;
  /** The gateway's round-robin fallback (a request without a destination header). */
  rr: number;
}

export function filterPicker(opts: FilterPickerOptions = {}): Picker {
  let gateways: Gateway[] = [];
  let balancer: GatewayBalancer | null = null;
  let network: ExchangeNetwork | null = null;
  let ctxRef: PickerContext | null = null;
  let version = 0n;
  let lastContent = "";
  const counters = { fallbacks: 0, rejected: 0, snapshots: 0, logs: 0 };
  const schedulingProfile = profileOf(opts.profile);
  const nGateways = opts.gateways ?? 1;
  const lb: LbKind = opts.lb ?? "round-robin";
  const snapshotDelayMs = opts.snapshotDelayMs ?? SNAPSHOT_DELAY_MS;
  const snapshotPhaseMs = opts.snapshotPhaseMs ?? SNAPSHOT_PHASE_MS;
  if (!Number.isInteger(nGateways) || nGateways < 1)
    throw new Error(`gateways must be an integer >= 1, not ${nGateways}`);
  if (!isLbKind(lb)) throw new Error(`unknown load balancer "${lb as string}" (${LB_KINDS.join(", ")})`);
  if (!(snapshotDelayMs >= 0 && snapshotPhaseMs >= 0)) throw new Error("snapshot delay and phase must be >= 0");

  /** The gateway's host time in fleet ms. */
  const hostNow = (gw: Gateway) => gw.baseMs + gw.host.nowMs();
  /** Moves the gateway's host (its ticks, its http-call timeouts) up to the fleet's now. */
  const sync = (ctx: PickerContext, gw: Gateway) => {
    const lag = ctx.clock.now() - hostNow(gw);
    if (lag > 0) gw.host.advance(lag);
  };

  /** The companion's scrape: one snapshot (or contact refresh) for every gateway, delivered after each one's delay. */
  const publish = (ctx: PickerContext, view: ScrapedMetrics[], immediate: boolean) => {
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
        lora: m.maxLora > 0 ? normaliseLora(m.loraRunning, m.loraWaiting, m.maxLora) : null,
        cache: { blockSize: m.blockSize, numBlocks: m.numBlocks },
      };
    });
    const content = JSON.stringify(endpoints);
    let blob: Uint8Array | null = null;
    if (content !== lastContent) {
      lastContent = content;
      version++;
      counters.snapshots++;
      blob = encodeSnapshot({
        version,
        generatedAtMs: ctx.clock.epochMs + ctx.clock.now(),
        profile: schedulingProfile,
        endpoints,
        baseModels: [ctx.profile.model],
      });
    }
    const v = version;
    for (const gw of gateways) {
      const deliver = () => {
        sync(ctx, gw);
        const nowMs = ctx.clock.epochMs + ctx.clock.now(); // the VMs' clock (epoch-based)
        if (blob) publishSnapshot(gw.host.sharedData, blob, nowMs);
        else gw.host.sharedData.set(SNAPSHOT_META_KEY, snapshotMeta(v, nowMs));
      };
      if (immediate) deliver();
      else ctx.clock.at(ctx.clock.now() + snapshotDelayMs + gw.phaseMs, deliver);
    }
  };

  const makeGateway = (ctx: PickerContext, index: number, configuration: string): Gateway => {
    const phaseMs = snapshotPhaseMs > 0 ? ctx.rng.next() * snapshotPhaseMs : 0;
    const skewNs = BigInt(Math.floor(ctx.rng.next() * 1e6));
    const epochNs = BigInt(ctx.clock.epochMs) * 1_000_000n + skewNs;
    const gw = { index, baseMs: ctx.clock.now(), phaseMs, skewNs, requests: 0, rr: 0 } as Gateway;
    // The VMs' clock is the gateway's own virtual time (a tick fired while catching up reads its own time).
    const clockMs = () => (gw.host ? hostNow(gw) : ctx.clock.now());
    // The host's random device (gateway ids) seeded per gateway: runs repeat exactly.
    const random = new Rng(`gateway-${index}-${ctx.rng.next()}`);
    gw.host = createHost({
      wasm: opts.wasm ?? defaultFilterWasm(),
      rootId: "endpoint-picker",
      vmId: "endpoint-picker",
      configuration,
      concurrency: opts.concurrency ?? 2,
      manualTicks: true,
      clock: () => epochNs + BigInt(Math.round(clockMs() * 1e6)),
      random: () => random.next(),
      allowOnHeadersStopIteration: true,
      logLevel: opts.logLevel ?? "warn",
      onLog: () => {
        counters.logs++;
      },
      httpCallHandler: gatewayCallHandler({
        network,
        gateway: index,
        sentAtMs: () => hostNow(gw),
        sync: () => sync(ctx, gw),
        // A filter that still polls its companion gets its gateway's current snapshot in-process.
        other: () => {
          const blob = gw.host.sharedData.get(SNAPSHOT_KEY)?.value;
          return blob ? { headers: [[":status", "200"]], body: blob } : { headers: [[":status", "304"]] };
        },
      }),
    });
    return gw;
  };

  /** The filters' own view of the exchange: their report counters summed, the live gateways they were told of. */
  const reportMetrics = () => {
    const out = { filterReportsSent: 0, filterReportsOk: 0, filterReportsFailed: 0, filterGatewaysSeen: "" };
    const seen: number[] = [];
    for (const gw of gateways) {
      const m = gw.host.metrics();
      const counter = (name: string) => m.counters[`wasmcustom.endpoint_picker.gateway_reports.${name}`] ?? 0;
      out.filterReportsSent += counter("sent");
      out.filterReportsOk += counter("ok");
      out.filterReportsFailed += counter("failed");
      seen.push(m.gauges["wasmcustom.endpoint_picker.gateways"] ?? 0);
    }
    out.filterGatewaysSeen = seen.join("/");
    return out;
  };

  return {
    name: "filter",
    start(ctx) {
      ctxRef = ctx;
      version = 0n;
      lastContent = "";
      network = opts.exchange ? new ExchangeNetwork(ctx.clock, opts.exchange) : null;
      const configuration = opts.configuration ?? filterConfiguration(network !== null);
      gateways = [];
      for (let g = 0; g < nGateways; g++) {
        try {
          gateways.push(makeGateway(ctx, g, configuration));
        } catch (e) {
          for (const gw of gateways) gw.host.close();
          if (network && !opts.configuration)
            throw new Error(
              `the filter refuses ${configuration} (${(e as Error).message}): does filter/config.ts know ` +
                `"${FILTER_EXCHANGE_FIELD}" yet? The simulator's exchange needs the filter's side.`,
            );
          throw e;
        }
      }
      balancer = makeBalancer(lb, nGateways, ctx.rng);
      publish(ctx, ctx.scrape(), true);
      ctx.every(SCRAPE_MS, () => publish(ctx, ctx.scrape(), false));
      if (network) {
        network.startRelays((ms, fn) => ctx.every(ms, fn));
        // Reports leave on the gateways' ticks: keep every host within one network delay of the fleet's
        // clock so a report's arrival (sent + upMs) is never in the fleet's past and reports from all
        // gateways reach the exchange in time order.
        const stepMs = Math.max(0.5, network.upMs);
        const step = () => {
          for (const gw of gateways) sync(ctx, gw);
          if (ctx.active()) ctx.clock.at(ctx.clock.now() + stepMs, step);
        };
        ctx.clock.at(ctx.clock.now() + stepMs, step);
      }
    },
    pick(req, _prepared, ctx) {
      const g = balancer!.next();
      const gw = gateways[g];
      gw.requests++;
      sync(ctx, gw);
      const stream = gw.host.openStream();
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
        return { reject: reply.status, gateway: g };
      }
      const headers = stream.forwarded.requestHeaders;
      const dest = headers?.find(([k]) => k === DESTINATION_HEADER)?.[1];
      const pod = dest === undefined ? -1 : ctx.pods.findIndex((p) => p.address === dest);
      const ticket: Ticket = { stream, gateway: g };
      if (pod >= 0) return { pod, ticket, gateway: g };
      counters.fallbacks++;
      return { pod: gw.rr++ % ctx.pods.length, fallback: true, ticket, gateway: g };
    },
    responseStarted(pick) {
      if (!("ticket" in pick) || !ctxRef) return;
      const { stream, gateway } = pick.ticket as Ticket;
      sync(ctxRef, gateways[gateway]);
      stream.sendResponseHeaders(
        [
          [":status", "200"],
          ["content-type", "text/event-stream"],
        ],
        false,
      );
    },
    responseEnded(pick, _now, ok) {
      if (!("ticket" in pick) || !ctxRef) return;
      const { stream, gateway } = pick.ticket as Ticket;
      sync(ctxRef, gateways[gateway]);
      if (!stream.forwarded.responseHeaders) stream.sendResponseHeaders([[":status", ok ? "200" : "500"]], false);
      stream.sendResponseData("data: [DONE]\n\n", true);
      stream.finish();
    },
    stats: () => ({
      ...counters,
      failedWorkers: gateways.reduce((a, gw) => a + gw.host.failedWorkers().length, 0),
      gateways: nGateways,
      lb,
      gatewayRequests: gateways.map((gw) => gw.requests).join("/"),
      exchange: network !== null,
      ...(network ? { ...network.stats(), ...reportMetrics() } : {}),
    }),
    close() {
      for (const gw of gateways) gw.host.close();
    },
  };
}
