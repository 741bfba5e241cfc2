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
// Flow control (`flowControl`: the snapshot's section 6, as the companion writes it with the feature gate
// on): the filter may neither continue nor answer a stream in its headers/body callbacks but hold it paused,
// and later, from its tick or from another stream's callback, continue it with the destination header set or
// answer it with a local reply (429/503 and x-llm-d-request-dropped-reason). Every stream has a sink that
// sees what leaves the filter, so a decision is noticed whenever it happens; while a gateway holds streams its
// host is moved to the fleet's time at every one of its tick times (`tickMs`), so a tick's dispatch starts on
// the fleet's clock at the tick's own time.
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { normaliseLora } from "../../../companion/extract";
import {
  type FlowBand,
  type SchedulingProfile,
  type SnapshotEndpoint,
  type SnapshotFlowControl,
  encodeSnapshot,
} from "../../../companion/snapshot";
import { profileOf, type FlatProfile } from "../../helpers/profile";
import { createHost, type Host } from "../../../envoy/emulator/host";
import type { HttpStream, StreamSink } from "../../../envoy/emulator/stream";
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
import { NO_HEALTHY_UPSTREAM } from "./basic";
import { API_PATHS } from "../openai";
import type { Pick, Picker, PickerContext, ScrapedMetrics } from "./picker";

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

/** The filter's tick period (filter/picker.ts TICK_MS): held streams are looked at on this grid. */
export const FILTER_TICK_MS = 20;
/** The filter's per-band queue-size gauges (filter/flow-control.ts). */
const FLOW_QUEUE_SIZE = /^wasmcustom\.endpoint_picker\.flow_control\.priority_[^.]+\.queue_size$/;
/** The filter's pool saturation as flow control last computed it, in thousandths (filter/picker.ts). */
const FLOW_SATURATION = "wasmcustom.endpoint_picker.flow_control.pool_saturation_permille";
/** The header that carries a flow-control rejection's reason (llm-d-router's name). */
export const DROPPED_REASON_HEADER = "x-llm-d-request-dropped-reason";

/** The snapshot's flow-control section (section 6), as the companion writes it with the feature gate on. */
export type FlowControlSection = SnapshotFlowControl;

/** llm-d-router's defaults: TTL 60 s (also with no endpoints), no global limits, usage limit 1.0, bands of 5000 requests / 1 GB, global-strict, FCFS. */
export function flowControlSection(changes: Partial<FlowControlSection> = {}): FlowControlSection {
  const band: FlowBand = { priority: 0, maxRequests: 5000, maxBytes: 1e9, fairness: "global-strict", ordering: "fcfs" };
  return {
    defaultRequestTtlMs: 60_000,
    noEndpointRequestTtlMs: changes.defaultRequestTtlMs ?? 60_000,
    maxRequests: 0,
    maxBytes: 0,
    usageLimit: 1,
    defaultBand: band,
    defaultNegativeBand: changes.defaultBand ?? band,
    bands: [],
    ...changes,
  };
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
  /** Fields added to the plugin configuration (e.g. objectivePriorities); ignored when `configuration` is given. */
  config?: Record<string, unknown>;
  /** InferenceObjectives the simulated companion ships (the snapshot's objectives section). */
  objectives?: Array<{ name: string; priority: number }>;
  /** The snapshot's flow-control section (the companion's, feature gate on); absent or null: none. */
  flowControl?: FlowControlSection | null;
  /** The grid held streams are looked at on: the filter's tick period (default FILTER_TICK_MS). */
  tickMs?: number;
  /** The picker's name in results (default "filter"). */
  name?: string;
  /** The whole scheduling profile, P/D stage included (wins over `profile`; tests/sim/pd.bench.ts). */
  schedulingProfile?: SchedulingProfile;
  /** Pod i's role bits (POD_ROLE_*, the llm-d.ai/role label) in the snapshot; absent: no roles. */
  roles?: readonly number[];
}

/** The header naming the prefill pod to the decode pod's sidecar (P/D). */
const PREFILLER_HEADER = "x-prefiller-host-port";

/** One stream through a gateway's filter and what left the filter so far. */
interface Ticket {
  stream: HttpStream;
  gateway: number;
  /** The request headers the filter let through (its decision to send the request upstream). */
  continued: [string, string][] | null;
  /** A local reply before the request went upstream (its decision to reject). */
  reply: { status: number; reason: string } | null;
  reset: string | null;
  responseStarted: boolean;
  /** While held: the fleet's callback for the decision. */
  later: ((pick: Pick) => void) | null;
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
  /** Streams held by the filter now, and whether the tick-grid pump runs. */
  held: number;
  pumping: boolean;
}

export function filterPicker(opts: FilterPickerOptions = {}): Picker {
  let gateways: Gateway[] = [];
  let balancer: GatewayBalancer | null = null;
  let network: ExchangeNetwork | null = null;
  let ctxRef: PickerContext | null = null;
  let version = 0n;
  let lastContent = "";
  const counters = { prefills: 0, fallbacks: 0, rejected: 0, snapshots: 0, logs: 0, held: 0, heldMax: 0, heldNow: 0 };
  const tickMs = opts.tickMs ?? FILTER_TICK_MS;
  const schedulingProfile = opts.schedulingProfile ?? profileOf(opts.profile);
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
        ...(opts.roles?.[i] ? { role: opts.roles[i] } : {}),
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
        ...(opts.objectives ? { objectives: opts.objectives } : {}),
        ...(opts.flowControl ? { flowControl: opts.flowControl } : {}),
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
    const gw = {
      index,
      baseMs: ctx.clock.now(),
      phaseMs,
      skewNs,
      requests: 0,
      rr: 0,
      held: 0,
      pumping: false,
    } as Gateway;
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

  /** What the filter decided for a stream, as the fleet's pick (a rejected or reset stream is finished here). */
  const outcome = (ctx: PickerContext, t: Ticket): Pick => {
    const gw = gateways[t.gateway];
    if (t.reply) {
      counters.rejected++;
      t.stream.finish();
      return { reject: t.reply.status, reason: t.reply.reason, gateway: t.gateway };
    }
    if (!t.continued) {
      // close_stream: the client sees a reset, not an answer.
      t.stream.finish();
      return { reject: 0, reason: `reset: ${t.reset}`, gateway: t.gateway };
    }
    const dest = t.continued.find(([k]) => k === DESTINATION_HEADER)?.[1];
    const pod = dest === undefined ? -1 : ctx.pods.findIndex((p) => p.address === dest);
    const prefillAt = t.continued.find(([k]) => k === PREFILLER_HEADER)?.[1];
    const prefill = prefillAt === undefined ? -1 : ctx.pods.findIndex((p) => p.address === prefillAt);
    if (prefill >= 0) counters.prefills++;
    if (pod >= 0) return { pod, ticket: t, gateway: t.gateway, ...(prefill >= 0 ? { prefill } : {}) };
    if (ctx.pods.length === 0) {
      // Continued without a destination into an empty cluster: Envoy's router answers 503 itself.
      t.responseStarted = true;
      t.stream.sendResponseHeaders([[":status", "503"]], true);
      t.stream.finish();
      return { ...NO_HEALTHY_UPSTREAM, gateway: t.gateway };
    }
    counters.fallbacks++;
    return { pod: gw.rr++ % ctx.pods.length, fallback: true, ticket: t, gateway: t.gateway };
  };

  /** A sink saw the filter decide; for a held stream the fleet hears of it on its clock, now. */
  const decided = (ctx: PickerContext, t: Ticket) => {
    const later = t.later;
    if (!later) return; // still inside pick(): it reads the decision itself
    t.later = null;
    gateways[t.gateway].held--;
    counters.heldNow--;
    ctx.clock.at(ctx.clock.now(), () => later(outcome(ctx, t)));
  };

  /** While the gateway holds streams, moves its host to the fleet's time at each of its tick times. */
  const pump = (ctx: PickerContext, gw: Gateway) => {
    if (gw.pumping) return;
    gw.pumping = true;
    const step = () => {
      sync(ctx, gw);
      if (gw.held === 0) {
        gw.pumping = false;
        return;
      }
      ctx.clock.at(nextTick(ctx, gw), step);
    };
    ctx.clock.at(nextTick(ctx, gw), step);
  };
  /** The gateway's next tick time after now, in fleet ms (ticks run every tickMs of its host time). */
  const nextTick = (ctx: PickerContext, gw: Gateway) =>
    gw.baseMs + (Math.floor((ctx.clock.now() - gw.baseMs) / tickMs + 1e-9) + 1) * tickMs;

  return {
    name: opts.name ?? "filter",
    start(ctx) {
      ctxRef = ctx;
      version = 0n;
      lastContent = "";
      for (const k of Object.keys(counters) as (keyof typeof counters)[]) counters[k] = 0;
      network = opts.exchange ? new ExchangeNetwork(ctx.clock, opts.exchange) : null;
      const configuration =
        opts.configuration ??
        (opts.config
          ? JSON.stringify({ ...JSON.parse(filterConfiguration(network !== null)), ...opts.config })
          : filterConfiguration(network !== null));
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
    pick(req, _prepared, ctx, later) {
      const g = balancer!.next();
      const gw = gateways[g];
      gw.requests++;
      sync(ctx, gw);
      const t: Ticket = {
        stream: null as unknown as HttpStream,
        gateway: g,
        continued: null,
        reply: null,
        reset: null,
        responseStarted: false,
        later: null,
      };
      const sink: StreamSink = {
        requestHeaders: (headers) => {
          t.continued = headers;
          decided(ctx, t);
        },
        responseHeaders: (headers) => {
          if (t.continued || t.reply || t.responseStarted) return;
          // A local reply: the response left the filter before the request did.
          const status = Number(headers.find(([k]) => k === ":status")?.[1] ?? 0);
          const reason =
            headers.find(([k]) => k === DROPPED_REASON_HEADER)?.[1] ?? t.stream?.info.responseCodeDetails ?? "";
          t.reply = { status, reason };
          decided(ctx, t);
        },
        reset: (details) => {
          if (t.reset !== null) return;
          t.reset = details;
          decided(ctx, t);
        },
      };
      t.stream = gw.host.openStream({ sink });
      t.stream.sendRequestHeaders(
        [
          [":method", "POST"],
          [":path", API_PATHS[req.api]],
          [":authority", "gw"],
          [":scheme", "http"],
          ["content-type", "application/json"],
          ["content-length", String(Buffer.byteLength(req.bodyText))],
          ...(req.headers ?? []),
        ],
        false,
      );
      t.stream.sendRequestData(req.bodyText, true);
      if (t.continued || t.reply || t.reset !== null) return outcome(ctx, t);
      // Held: neither continued nor answered. The decision comes from a tick or another stream's callback.
      t.later = later;
      gw.held++;
      counters.held++;
      counters.heldNow++;
      counters.heldMax = Math.max(counters.heldMax, counters.heldNow);
      pump(ctx, gw);
      return { held: true, gateway: g };
    },
    responseStarted(pick) {
      if (!("ticket" in pick) || !ctxRef) return;
      const t = pick.ticket as Ticket;
      sync(ctxRef, gateways[t.gateway]);
      t.responseStarted = true;
      t.stream.sendResponseHeaders(
        [
          [":status", "200"],
          ["content-type", "text/event-stream"],
        ],
        false,
      );
    },
    responseEnded(pick, _now, ok) {
      if (!("ticket" in pick) || !ctxRef) return;
      const t = pick.ticket as Ticket;
      sync(ctxRef, gateways[t.gateway]);
      if (!t.responseStarted) {
        t.responseStarted = true;
        t.stream.sendResponseHeaders([[":status", ok ? "200" : "500"]], false);
      }
      t.stream.sendResponseData("data: [DONE]\n\n", true);
      t.stream.finish();
    },
    queued() {
      let n = 0;
      for (const gw of gateways)
        for (const [name, v] of Object.entries(gw.host.metrics().gauges)) if (FLOW_QUEUE_SIZE.test(name)) n += v;
      return n;
    },
    saturation() {
      let worst = 0;
      for (const gw of gateways) worst = Math.max(worst, (gw.host.metrics().gauges[FLOW_SATURATION] ?? 0) / 1000);
      return worst;
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
