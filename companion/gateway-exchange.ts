// The merged view of the gateway replicas (docs/GATEWAYS.md): per gateway the latest in-flight counts (and
// flow-control queue sizes, for the companion's metrics), a bounded log of the prefix chains they sent, and the answer each gateway gets (the other gateways' sums and
// their chains since its cursor). Pure and clock-driven: no timers or sockets; the HTTP server, the peer
// relay and the simulator call it with the time.
import {
  MAX_COUNT,
  MAX_VIEW_RECORDS,
  RELAY_ENTRY_HEAD,
  RELAY_HEAD,
  decodeRelay,
  decodeReport,
  encodeRelay,
  encodeView,
  peekGatewayId,
  randomId64,
  type AdapterEntry,
  type ChainRecord,
  type GatewayReport,
  type InflightEntry,
  type RelayedReport,
} from "./gateway-wire";

/** A gateway whose last report is this old stops counting. */
export const GATEWAY_EXPIRY_MS = 3000;
/** Chain records are kept this long at most ... */
export const RECORD_WINDOW_MS = 10_000;
/** ... and this many at most (`--exchange-records`). */
export const DEFAULT_MAX_RECORDS = 65_536;
/** Report seqs remembered per gateway, so a report that arrives twice (directly and relayed) counts once. */
const SEEN_SEQS = 256;
/** Default size of one relay body and of the reports waiting to be relayed. */
const DEFAULT_MAX_REPORT_BYTES = 1024 * 1024;

export interface ExchangeOptions {
  /** Random when not given; never 0. */
  companionId?: bigint;
  /** Chain records held at most (default 65,536). */
  maxRecords?: number;
  /**
   * Keep the reports received directly for takeRelay() (default true). A companion without peers turns it
   * off so nothing piles up.
   */
  relay?: boolean;
  /** The largest report accepted (`--max-report-bytes`): one relay body holds at least one such report. */
  maxReportBytes?: number;
  /** Reports waiting for takeRelay(), in bytes, at most; the oldest are dropped beyond (default 16 x maxReportBytes). */
  maxPendingRelayBytes?: number;
}

export interface ExchangeStats {
  companionId: bigint;
  /** Gateways whose last report is younger than GATEWAY_EXPIRY_MS. */
  liveGateways: number;
  /** Chain records held. */
  records: number;
  /** Reports received directly and applied (duplicates included). */
  reportsReceived: number;
  /** Reports applied from peers' relays. */
  reportsRelayed: number;
  /** Reports (direct or relayed) refused as malformed. */
  reportsRefused: number;
  /** Reports that had arrived before (same gateway and reportSeq): answered, not applied again. */
  reportsDuplicate: number;
  /** Relays applied, and relays dropped because they named this companion. */
  relaysAccepted: number;
  relaysFromSelf: number;
  /** Reports dropped from the relay queue because takeRelay() was not called often enough. */
  relayOverflow: number;
}

export interface RelayResult {
  /** The sending companion. */
  from: bigint;
  /** The relay named this companion and was dropped. */
  self: boolean;
  applied: number;
  duplicates: number;
  /** Reports in the relay that did not decode (the others are applied). */
  refused: Array<{ gatewayId: bigint | null; reason: string }>;
}

interface HeldRecord {
  seq: number;
  gatewayId: bigint;
  atMs: number;
  record: ChainRecord;
}

interface GatewayState {
  /** reportSeq of the counts held; -1 before any. */
  seq: bigint;
  /** Receive time of the counts held. */
  receivedAtMs: number;
  /** Its counts are in the totals. */
  live: boolean;
  inflight: Map<number, number>;
  adapters: Map<number, Map<number, number>>;
  /** Requests held in its flow-control queues, by priority (the report's tail). */
  queue: Map<number, number>;
  /** Recent reportSeqs, oldest first. */
  seen: Set<bigint>;
  /** Newest receive time of any of its reports: the entry is forgotten RECORD_WINDOW_MS after it. */
  lastHeardMs: number;
}

function addTo(total: Map<number, number>, key: number, delta: number): void {
  const v = (total.get(key) ?? 0) + delta;
  if (v === 0) total.delete(key);
  else total.set(key, v);
}

export class GatewayExchange {
  readonly companionId: bigint;
  private readonly maxRecords: number;
  private readonly relayEnabled: boolean;
  private readonly maxRelayBytes: number;
  private readonly maxPendingRelayBytes: number;

  private readonly gateways = new Map<bigint, GatewayState>();
  private liveCount = 0;
  /** Sums over the live gateways. */
  private readonly totalInflight = new Map<number, number>();
  private readonly totalAdapters = new Map<number, Map<number, number>>();
  private readonly totalQueue = new Map<number, number>();

  /** Records in seq order, contiguous seqs; log[head] is the oldest held. */
  private log: HeldRecord[] = [];
  private head = 0;
  /** The seq the next record gets; seqs start at 1, so cursor 0 means "none yet". */
  private nextSeq = 1;

  private pending: RelayedReport[] = [];
  private pendingBytes = 0;

  private readonly counters = {
    reportsReceived: 0,
    reportsRelayed: 0,
    reportsRefused: 0,
    reportsDuplicate: 0,
    relaysAccepted: 0,
    relaysFromSelf: 0,
    relayOverflow: 0,
  };

  constructor(options: ExchangeOptions = {}) {
    if (options.companionId === 0n) throw new Error("companionId must not be 0");
    this.companionId = options.companionId ?? randomId64();
    this.maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    if (!(this.maxRecords >= 1)) throw new Error(`maxRecords must be at least 1, got ${this.maxRecords}`);
    this.relayEnabled = options.relay ?? true;
    const maxReport = options.maxReportBytes ?? DEFAULT_MAX_REPORT_BYTES;
    this.maxRelayBytes = relayBodyLimit(maxReport);
    this.maxPendingRelayBytes = options.maxPendingRelayBytes ?? 16 * maxReport;
  }

  /** Live gateways (reported within GATEWAY_EXPIRY_MS of `nowMs`). */
  gatewayCount(nowMs: number): number {
    this.expire(nowMs);
    return this.liveCount;
  }

  /**
   * Requests held in the live gateways' flow-control queues, summed per priority (each gateway counted once,
   * from its newest report, direct or relayed; an expired gateway's leave the sums), highest priority first.
   * Priorities with nothing queued are left out.
   */
  queueSizes(nowMs: number): Array<{ priority: number; queued: number }> {
    this.expire(nowMs);
    return [...this.totalQueue]
      .map(([priority, queued]) => ({ priority, queued }))
      .sort((a, b) => b.priority - a.priority);
  }

  stats(nowMs: number): ExchangeStats {
    this.expire(nowMs);
    return {
      companionId: this.companionId,
      liveGateways: this.liveCount,
      records: this.log.length - this.head,
      ...this.counters,
    };
  }

  /**
   * A report received directly from a gateway (or, with `relayedBy`, relayed by that companion: then it is
   * not relayed again). Returns the answer for that gateway. Throws an Error with the reason when the report
   * is malformed; then nothing changed.
   */
  receive(reportBytes: Uint8Array, nowMs: number, relayedBy?: bigint): Uint8Array<ArrayBuffer> {
    let report: GatewayReport;
    try {
      report = decodeReport(reportBytes);
    } catch (e) {
      this.counters.reportsRefused++;
      throw e;
    }
    this.expire(nowMs);
    if (this.apply(report, nowMs, nowMs)) this.counters.reportsDuplicate++;
    if (relayedBy === undefined) {
      this.counters.reportsReceived++;
      if (this.relayEnabled) this.queueRelay(reportBytes.slice(), nowMs);
    } else this.counters.reportsRelayed++;
    return this.answer(report);
  }

  /**
   * Applies a peer's relay: each report as if received at the peer's receive time (at most `nowMs`), never
   * relayed again. Throws when the relay's framing is malformed (nothing applied); a report in it that does
   * not decode is skipped and listed. A relay naming this companion is dropped.
   */
  acceptRelay(body: Uint8Array, nowMs: number): RelayResult {
    const relay = decodeRelay(body);
    const result: RelayResult = { from: relay.companionId, self: false, applied: 0, duplicates: 0, refused: [] };
    if (relay.companionId === this.companionId) {
      this.counters.relaysFromSelf++;
      result.self = true;
      return result;
    }
    this.expire(nowMs);
    for (const entry of relay.reports) {
      let report: GatewayReport;
      try {
        report = decodeReport(entry.report);
      } catch (e) {
        this.counters.reportsRefused++;
        result.refused.push({ gatewayId: peekGatewayId(entry.report), reason: (e as Error).message });
        continue;
      }
      if (this.apply(report, Math.min(entry.receivedAtMs, nowMs), nowMs)) {
        this.counters.reportsDuplicate++;
        result.duplicates++;
      } else result.applied++;
      this.counters.reportsRelayed++;
    }
    this.counters.relaysAccepted++;
    return result;
  }

  /**
   * The relay body of the reports received directly since the last call, or null when there are none. One
   * body holds at most `maxBytes` (default: one report of `maxReportBytes` and the relay's framing), but
   * always at least one report; what does not fit stays for the next call.
   */
  takeRelay(maxBytes: number = this.maxRelayBytes): Uint8Array<ArrayBuffer> | null {
    if (this.pending.length === 0) return null;
    let size = RELAY_HEAD;
    let n = 0;
    while (n < this.pending.length) {
      const next = size + RELAY_ENTRY_HEAD + this.pending[n].report.length;
      if (n > 0 && next > maxBytes) break;
      size = next;
      n++;
    }
    const reports = this.pending.splice(0, n);
    for (const r of reports) this.pendingBytes -= r.report.length;
    return encodeRelay({ companionId: this.companionId, reports });
  }

  // ---- state ----

  private queueRelay(report: Uint8Array, nowMs: number): void {
    this.pending.push({ receivedAtMs: nowMs, report });
    this.pendingBytes += report.length;
    while (this.pendingBytes > this.maxPendingRelayBytes && this.pending.length > 1) {
      this.pendingBytes -= this.pending.shift()!.report.length;
      this.counters.relayOverflow++;
    }
  }

  /** Stores a decoded report received at `receivedAtMs`; returns true when it had arrived before. */
  private apply(report: GatewayReport, receivedAtMs: number, nowMs: number): boolean {
    let g = this.gateways.get(report.gatewayId);
    if (!g) {
      g = {
        seq: -1n,
        receivedAtMs: 0,
        live: false,
        inflight: new Map(),
        adapters: new Map(),
        queue: new Map(),
        seen: new Set(),
        lastHeardMs: receivedAtMs,
      };
      this.gateways.set(report.gatewayId, g);
    }
    if (g.seen.has(report.reportSeq)) return true;
    g.seen.add(report.reportSeq);
    if (g.seen.size > SEEN_SEQS) g.seen.delete(g.seen.values().next().value!);
    g.lastHeardMs = Math.max(g.lastHeardMs, receivedAtMs);

    // The counts: the newest report's, unless it is already too old to count (a late relay).
    if (report.reportSeq > g.seq && nowMs - receivedAtMs < GATEWAY_EXPIRY_MS) {
      if (g.live) this.withdraw(g);
      g.inflight = new Map();
      g.adapters = new Map();
      g.queue = new Map();
      for (const e of report.queue ?? []) if (e.queued > 0) g.queue.set(e.priority, e.queued);
      for (const e of report.inflight) if (e.count > 0) g.inflight.set(e.addressHash, e.count);
      for (const e of report.adapters) {
        if (e.count === 0) continue;
        let m = g.adapters.get(e.addressHash);
        if (!m) g.adapters.set(e.addressHash, (m = new Map()));
        m.set(e.adapterHash, e.count);
      }
      g.seq = report.reportSeq;
      g.receivedAtMs = receivedAtMs;
      this.contribute(g);
    }

    for (const record of report.records)
      this.log.push({ seq: this.nextSeq++, gatewayId: report.gatewayId, atMs: nowMs, record });
    this.trimLog(nowMs);
    return false;
  }

  /** Adds a gateway's counts to the totals. */
  private contribute(g: GatewayState): void {
    if (!g.live) this.liveCount++;
    g.live = true;
    for (const [a, n] of g.inflight) addTo(this.totalInflight, a, n);
    for (const [p, n] of g.queue) addTo(this.totalQueue, p, n);
    for (const [a, m] of g.adapters) {
      let t = this.totalAdapters.get(a);
      if (!t) this.totalAdapters.set(a, (t = new Map()));
      for (const [h, n] of m) addTo(t, h, n);
    }
  }

  /** Takes a gateway's counts out of the totals. */
  private withdraw(g: GatewayState): void {
    this.liveCount--;
    g.live = false;
    for (const [a, n] of g.inflight) addTo(this.totalInflight, a, -n);
    for (const [p, n] of g.queue) addTo(this.totalQueue, p, -n);
    for (const [a, m] of g.adapters) {
      const t = this.totalAdapters.get(a)!;
      for (const [h, n] of m) addTo(t, h, -n);
      if (t.size === 0) this.totalAdapters.delete(a);
    }
  }

  /** Expires gateways silent for GATEWAY_EXPIRY_MS, forgets them after RECORD_WINDOW_MS, drops old records. */
  private expire(nowMs: number): void {
    for (const [id, g] of this.gateways) {
      if (g.live && nowMs - g.receivedAtMs >= GATEWAY_EXPIRY_MS) {
        this.withdraw(g);
        g.inflight = new Map();
        g.adapters = new Map();
        g.queue = new Map();
      }
      if (!g.live && nowMs - g.lastHeardMs >= RECORD_WINDOW_MS) this.gateways.delete(id);
    }
    this.trimLog(nowMs);
  }

  private trimLog(nowMs: number): void {
    const oldest = nowMs - RECORD_WINDOW_MS;
    while (
      this.head < this.log.length &&
      (this.log.length - this.head > this.maxRecords || this.log[this.head].atMs <= oldest)
    )
      this.head++;
    if (this.head === this.log.length) {
      this.log = [];
      this.head = 0;
    } else if (this.head >= 4096 && this.head * 2 >= this.log.length) {
      this.log = this.log.slice(this.head);
      this.head = 0;
    }
  }

  /** The answer for the gateway that sent `report` (whose counts are already applied). */
  private answer(report: GatewayReport): Uint8Array<ArrayBuffer> {
    const self = this.gateways.get(report.gatewayId);
    const own = self?.live ? self : undefined;
    const inflight: InflightEntry[] = [];
    for (const [addressHash, total] of this.totalInflight) {
      const count = total - (own?.inflight.get(addressHash) ?? 0);
      if (count > 0) inflight.push({ addressHash, count: Math.min(count, MAX_COUNT) });
    }
    const adapters: AdapterEntry[] = [];
    for (const [addressHash, t] of this.totalAdapters) {
      const mine = own?.adapters.get(addressHash);
      for (const [adapterHash, total] of t) {
        const count = total - (mine?.get(adapterHash) ?? 0);
        if (count > 0) adapters.push({ addressHash, adapterHash, count: Math.min(count, MAX_COUNT) });
      }
    }

    // Records after the gateway's cursor for this companion; without one (or one this companion never
    // handed out), every record held: the log keeps RECORD_WINDOW_MS at most.
    const newest = this.nextSeq - 1;
    const given = report.cursors.find((c) => c.companionId === this.companionId)?.cursor;
    let from = this.head;
    if (given !== undefined && given <= BigInt(newest) && this.head < this.log.length) {
      const skip = Number(given) + 1 - this.log[this.head].seq;
      from = this.head + Math.max(0, skip);
    }
    const records: ChainRecord[] = [];
    let cursor = newest;
    for (let i = from; i < this.log.length; i++) {
      const held = this.log[i];
      if (held.gatewayId === report.gatewayId) continue;
      if (records.length === MAX_VIEW_RECORDS) {
        cursor = this.log[i - 1].seq; // everything before this record is covered; it comes next time
        break;
      }
      records.push(held.record);
    }
    return encodeView({
      companionId: this.companionId,
      cursor: BigInt(cursor),
      gatewayCount: this.liveCount,
      inflight,
      adapters,
      records,
    });
  }
}

/** The largest relay body: one report of `maxReportBytes` with the relay's framing. */
export function relayBodyLimit(maxReportBytes: number): number {
  return maxReportBytes + RELAY_HEAD + RELAY_ENTRY_HEAD;
}
