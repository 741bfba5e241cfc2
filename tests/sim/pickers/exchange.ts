// The exchange between gateway replicas as the virtual-time fleet models it (docs/GATEWAYS.md,
// docs/SIMULATOR.md "The exchange hook"): each gateway's filter posts a report to the companion cluster
// (`POST /v1/gateway-report`); the call reaches one companion replica `upMs` later, where an in-process
// exchange object (companion/gateway-exchange.ts's GatewayExchange, or any object with its `receive`)
// merges it and returns the view of the other gateways, which reaches the filter `downMs` after that.
// Companion replicas relay what they received to each other every RELAY_INTERVAL_MS (the companion's) when the object can
// (`takeRelay`/`acceptRelay`). Everything runs on the fleet's clock, so reports from every gateway reach
// the exchange in the order they would on a network.
import { RELAY_INTERVAL_MS } from "../../../companion/peers";
import type { HttpCallContext, HttpCallHandler, HttpCallOutcome, Pairs } from "../../../envoy/emulator/host";
import type { Clock } from "../clock";

export const GATEWAY_REPORT_PATH = "/v1/gateway-report";
export const GATEWAY_VIEW_CONTENT_TYPE = "application/vnd.endpoint-picker.gateway-view";

/** What the simulator needs of companion/gateway-exchange.ts's GatewayExchange (one per companion replica). */
export interface GatewayExchangeLike {
  /** A gateway's report (docs/GATEWAYS.md) received at Unix ms `nowMs`; returns the answer's bytes. Throws on a bad report. */
  receive(reportBytes: Uint8Array, nowMs: number): Uint8Array;
  /** The relay body for the peers (what this replica received since the last call), or nothing to relay. */
  takeRelay?(): Uint8Array | null | undefined;
  /** A peer's relay body, arrived at Unix ms `nowMs`. */
  acceptRelay?(body: Uint8Array, nowMs: number): void;
}

export interface ExchangeOptions {
  /** Companion replica `replica` of `replicas`' exchange; called once per replica per run (no state leaks between runs). */
  create(replica: number, replicas: number): GatewayExchangeLike;
  /** Companion replicas (default 2). Gateway g's reports go round-robin over them, starting at g mod N. */
  replicas?: number;
  /** One-way network delay gateway -> companion, ms (default 2). */
  upMs?: number;
  /** One-way network delay companion -> gateway, ms (default 2). */
  downMs?: number;
  /** Delay of a relay between two companion replicas, ms (default 2). */
  relayMs?: number;
  /** Each replica relays every this many ms (default: the companion's), replica i at phase i x interval / N. */
  relayIntervalMs?: number;
  /** The path routed to the exchange (default /v1/gateway-report, the filter's gatewayReportPath). */
  path?: string;
}

export const EXCHANGE_DEFAULTS = {
  replicas: 2,
  upMs: 2,
  downMs: 2,
  relayMs: 2,
  relayIntervalMs: RELAY_INTERVAL_MS,
} as const;

/** The request path of an http call (without the query), or "" when it has none. */
export function callPath(headers: Pairs): string {
  const p = headers.find(([k]) => k === ":path")?.[1] ?? "";
  const q = p.indexOf("?");
  return q < 0 ? p : p.slice(0, q);
}

/** The companion replicas and the network between them and the gateways, on one clock. */
export class ExchangeNetwork {
  readonly replicas: GatewayExchangeLike[];
  readonly upMs: number;
  readonly downMs: number;
  readonly relayMs: number;
  readonly relayIntervalMs: number;
  readonly path: string;
  readonly counters = {
    reports: 0,
    answers: 0,
    refused: 0,
    reportBytes: 0,
    answerBytes: 0,
    relays: 0,
    relayBytes: 0,
    relayErrors: 0,
  };
  /** Per gateway: the replica its next report goes to. */
  private nextReplica = new Map<number, number>();
  private gatewaysSeen = new Set<number>();
  private lastRefusal = "";

  constructor(
    private readonly clock: Clock,
    o: ExchangeOptions,
  ) {
    const n = o.replicas ?? EXCHANGE_DEFAULTS.replicas;
    if (!Number.isInteger(n) || n < 1) throw new Error(`exchange replicas must be an integer >= 1, not ${n}`);
    this.replicas = Array.from({ length: n }, (_, i) => o.create(i, n));
    for (const [i, r] of this.replicas.entries())
      if (typeof r?.receive !== "function") throw new Error(`exchange replica ${i} has no receive(reportBytes, nowMs)`);
    this.upMs = o.upMs ?? EXCHANGE_DEFAULTS.upMs;
    this.downMs = o.downMs ?? EXCHANGE_DEFAULTS.downMs;
    this.relayMs = o.relayMs ?? EXCHANGE_DEFAULTS.relayMs;
    this.relayIntervalMs = o.relayIntervalMs ?? EXCHANGE_DEFAULTS.relayIntervalMs;
    for (const [k, v] of Object.entries({ upMs: this.upMs, downMs: this.downMs, relayMs: this.relayMs }))
      if (!(v >= 0)) throw new Error(`exchange ${k} must be >= 0, not ${v}`);
    if (!(this.relayIntervalMs > 0)) throw new Error(`exchange relayIntervalMs must be > 0`);
    this.path = o.path ?? GATEWAY_REPORT_PATH;
  }

  /** The call is a gateway report (routed here) rather than anything else (the snapshot long poll). */
  handles(headers: Pairs): boolean {
    return callPath(headers) === this.path;
  }

  private unixMs(): number {
    return this.clock.epochMs + this.clock.now();
  }

  /**
   * Gateway `gateway` sent `body` at clock time `sentAtMs`: it reaches a replica `upMs` later (`receive`), and
   * the answer (200 with the view, or 400 when `receive` throws) is handed to `deliver` `downMs` after that.
   */
  send(gateway: number, body: Uint8Array, sentAtMs: number, deliver: (outcome: HttpCallOutcome) => void): void {
    const n = this.replicas.length;
    const r = this.nextReplica.get(gateway) ?? gateway % n;
    this.nextReplica.set(gateway, (r + 1) % n);
    const report = body.slice(); // the VM's memory may change before it arrives
    this.clock.at(sentAtMs + this.upMs, () => {
      this.counters.reports++;
      this.counters.reportBytes += report.byteLength;
      this.gatewaysSeen.add(gateway);
      let outcome: HttpCallOutcome;
      try {
        const answer = this.replicas[r].receive(report, this.unixMs());
        this.counters.answers++;
        this.counters.answerBytes += answer.byteLength;
        outcome = {
          headers: [
            [":status", "200"],
            ["content-type", GATEWAY_VIEW_CONTENT_TYPE],
          ],
          body: answer,
        };
      } catch (e) {
        this.counters.refused++;
        this.lastRefusal = (e as Error).message ?? String(e);
        outcome = {
          headers: [
            [":status", "400"],
            ["content-type", "text/plain"],
          ],
          body: `bad gateway report: ${this.lastRefusal}\n`,
        };
      }
      this.clock.at(this.clock.now() + this.downMs, () => deliver(outcome));
    });
  }

  /**
   * Starts the relays between replicas (when the objects have takeRelay and acceptRelay): every
   * relayIntervalMs, replica i at its phase hands its relay body to every other replica relayMs later.
   * `every` is the fleet's periodic hook (PickerContext.every), which stops with the run.
   */
  startRelays(every: (intervalMs: number, fn: (nowMs: number) => void) => void): void {
    const n = this.replicas.length;
    if (n < 2 || !this.replicas.every((r) => r.takeRelay && r.acceptRelay)) return;
    every(this.relayIntervalMs, (now) => {
      for (let i = 0; i < n; i++) {
        this.clock.at(now + (i * this.relayIntervalMs) / n, () => this.relayFrom(i));
      }
    });
  }

  private relayFrom(i: number): void {
    const body = this.replicas[i].takeRelay!();
    if (!body || body.byteLength === 0) return;
    const copy = body.slice();
    this.counters.relays++;
    this.counters.relayBytes += copy.byteLength;
    for (let j = 0; j < this.replicas.length; j++) {
      if (j === i) continue;
      this.clock.at(this.clock.now() + this.relayMs, () => {
        try {
          this.replicas[j].acceptRelay!(copy, this.unixMs());
        } catch {
          this.counters.relayErrors++;
        }
      });
    }
  }

  stats(): Record<string, number | string> {
    const c = this.counters;
    return {
      exchangeReplicas: this.replicas.length,
      exchangeReports: c.reports,
      exchangeAnswers: c.answers,
      exchangeRefused: c.refused,
      exchangeReportBytes: c.reportBytes,
      exchangeAnswerBytes: c.answerBytes,
      exchangeRelays: c.relays,
      exchangeRelayBytes: c.relayBytes,
      exchangeRelayErrors: c.relayErrors,
      exchangeGateways: this.gatewaysSeen.size,
      ...(this.lastRefusal ? { exchangeLastRefusal: this.lastRefusal } : {}),
    };
  }
}

export interface GatewayCallOptions {
  /** The exchange, or null when off (every call goes to `other`). */
  network: ExchangeNetwork | null;
  /** This gateway's index. */
  gateway: number;
  /** The gateway host's time in the clock's ms (when called from a handler: the time the call leaves). */
  sentAtMs(): number;
  /** Brings the gateway host to the clock's now, before an answer is delivered on it. */
  sync(): void;
  /** Calls to any other path (today's behaviour: the snapshot long poll answered in-process). */
  other: HttpCallHandler;
}

/** A gateway host's http-call handler: reports go to the exchange (answered later on the clock), the rest to `other`. */
export function gatewayCallHandler(o: GatewayCallOptions): HttpCallHandler {
  return (call: HttpCallContext) => {
    if (!o.network || !o.network.handles(call.headers)) return o.other(call);
    o.network.send(o.gateway, call.body, o.sentAtMs(), (outcome) => {
      o.sync();
      call.respond(outcome);
    });
    return undefined;
  };
}
