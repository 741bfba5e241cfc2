// This gateway's side of the exchange between gateway replicas (docs/GATEWAYS.md). One worker VM per Envoy
// process (a lease) reports every REPORT_INTERVAL_MS to the companion: the Envoy's requests in flight per
// endpoint and per (endpoint, adapter), read from the worker VMs' shared in-flight table, and the prefix
// chains its VMs sent since the last report. The answer, the other gateways' merged view, goes where the
// worker VMs already look on every tick: their counts into the in-flight table as one more section
// (PEERS_VM), their chains into the journal of PEERS_VM. A companion that stops answering only makes that
// section age out: the filter then decides with what this Envoy knows, as a single gateway does.
import { BufferTypeValues, WasmResultValues } from "@solo-io/proxy-runtime/assembly";
import { PluginConfig } from "./config";
import { INFLIGHT_KEY, GATEWAY_KEY } from "./pool";
import { PEERS_VM, withSection, collectCounts } from "./inflight";
import { PrefixChain, storedCount } from "./prefix";
import { JournalWriter, RecordSink, journalKey } from "./journal";
import { Lease } from "./lease";
import { CompanionCall } from "./companion-call";
import { nextU64 } from "./rng";
import {
  getShared,
  setShared,
  lastCas,
  httpCallHeader,
  getBuffer,
  encode,
  logInfo,
  logWarn,
  hostRandomU64,
  getMetric,
} from "./host";
import { FlowControl } from "./flow-control";
import { Metrics } from "./metrics";

export const REPORT_INTERVAL_MS: u64 = 20;
const REPORT_TIMEOUT_MS: u32 = 1000;
/** After a refusal (e.g. a companion that predates the exchange: 404), report again only after this long. */
const REFUSED_RETRY_MS: u64 = 5000;
const MAGIC: u32 = 0x31475045; // "EPG1"
const FORMAT: u32 = 1;
/** Words of chain records a report carries at most (256 KiB); more are dropped (only affinity is lost). */
const MAX_OUTBOX_WORDS: i32 = 65536;
/** Companion replicas whose cursor a report carries. */
const MAX_CURSORS: i32 = 8;
/** Reports in a row without an answer after which the companions count as down (see `collecting`). */
const OUTAGE_FAILURES: i32 = 3;
/** The other gateways' journal holds a whole answer (4,096 records of up to 64 levels). */
const PEERS_JOURNAL_WORDS: i32 = 4096 * 68;
const LEASE_KEY = encode("endpoint-picker.gateway.lease");
const PEERS_JOURNAL_KEY = journalKey(PEERS_VM);
const STATUS = encode(":status");

export class GatewayReporter extends RecordSink {
  private lease: Lease;
  private call: CompanionCall;
  private gatewayId: u64 = 0;
  private seq: u64 = 0;
  private token: u32 = 0;
  private nextReportMs: u64 = 0;
  private sentAtMs: u64 = 0;
  private failing: bool = false;
  private failuresInARow: i32 = 0;
  /** Chain records ({ep, n, c, c level hashes}) this Envoy's VMs sent since the last report. */
  private outbox: Array<u32> = new Array<u32>();
  private outboxRecords: i32 = 0;
  /** This VM's flow-control queues, when flow control is on: their band gauges sum every VM's waiting requests. */
  private flow: FlowControl | null = null;
  private companionIds: Array<u64> = new Array<u64>();
  private cursors: Array<u64> = new Array<u64>();
  /** The other gateways' chains, for this Envoy's VMs (published on the tick like a VM's journal). */
  private peersJournal: JournalWriter = new JournalWriter(PEERS_JOURNAL_WORDS);
  /** How many gateways the companion last said are live (this one included), for the metrics. */
  gateways: i32 = 0;

  constructor(
    private cfg: PluginConfig,
    vm: u32,
    private metrics: Metrics,
  ) {
    super();
    this.lease = new Lease(LEASE_KEY, vm);
    this.call = new CompanionCall(cfg);
  }

  get leader(): bool {
    return this.lease.leader;
  }

  /**
   * Chains are collected while this VM leads and the companions answer: after OUTAGE_FAILURES reports in a
   * row got no answer (every replica down), none are kept until one answers again.
   */
  private get collecting(): bool {
    return this.lease.leader && this.failuresInARow < OUTAGE_FAILURES;
  }

  /** On every tick: keep the lease, publish the other gateways' chains, report when due. */
  tick(nowMs: u64, flow: FlowControl | null = null): void {
    this.flow = flow;
    if (this.lease.renew(nowMs)) {
      this.gatewayId = gatewayId();
      this.peersJournal.continueAfter(getShared(PEERS_JOURNAL_KEY)); // the VMs have applied up to there
      logInfo("this worker now shares this gateway's state with the other gateways");
    }
    if (!this.leader) {
      this.clearOutbox();
      return;
    }
    const peers = this.peersJournal.publish();
    if (peers != null) setShared(PEERS_JOURNAL_KEY, peers);
    // A call whose callback never came (it should within its timeout): given up, so reporting goes on.
    if (this.token != 0 && nowMs > this.sentAtMs + <u64>REPORT_TIMEOUT_MS + 1000) this.token = 0;
    if (this.token == 0 && nowMs >= this.nextReportMs) this.report(nowMs);
  }

  /** A chain this VM sent to endpoint `ep` (when it leads: the other VMs' come through `noteRecord`). */
  noteChain(chain: PrefixChain, ep: u32): void {
    if (!this.collecting) return;
    const c = storedCount(chain.count);
    if (c == 0 || this.outbox.length + 3 + c > MAX_OUTBOX_WORDS) return;
    this.outbox.push(ep);
    this.outbox.push(<u32>chain.count);
    this.outbox.push(<u32>c);
    for (let j = 0; j < c; j++) this.outbox.push(chain.levelHash(j, c));
    this.outboxRecords++;
  }

  /** A chain another worker VM of this Envoy sent (from its journal: `c` level hashes at `levels`). */
  noteRecord(ep: u32, n: u32, c: i32, levels: usize): void {
    if (!this.collecting || this.outbox.length + 3 + c > MAX_OUTBOX_WORDS) return;
    this.outbox.push(ep);
    this.outbox.push(n);
    this.outbox.push(<u32>c);
    for (let j = 0; j < c; j++) this.outbox.push(load<u32>(levels + <usize>(4 * j)));
    this.outboxRecords++;
  }

  private clearOutbox(): void {
    this.outbox.length = 0;
    this.outboxRecords = 0;
  }

  private report(nowMs: u64): void {
    const pairs = new Array<u32>();
    const triples = new Array<u32>();
    collectCounts(getShared(INFLIGHT_KEY), nowMs, pairs, triples);
    const cursors = this.companionIds.length;
    const words = this.outbox.length;
    // Flow control's tail: the requests this Envoy's VMs hold per priority (the band gauges are their sums).
    const flow = this.flow;
    const bands = flow != null ? flow.bands.length : 0;
    // 26 bytes of fields, the cursors, then three counted lists of words (docs/GATEWAYS.md), then the tail.
    const size =
      26 + 16 * cursors + 12 + 4 * (pairs.length + triples.length + words) + (flow != null ? 2 + 8 * bands : 0);
    const body = new ArrayBuffer(size);
    const p = changetype<usize>(body);
    // Increasing for the Envoy process, whichever VM reports: a reporter that takes over (a lease handoff, a
    // plugin reload) continues above its predecessor, whose seqs the companions compare with.
    this.seq = max(this.seq + 1, nowMs << 10);
    store<u32>(p, MAGIC);
    store<u16>(p, <u16>FORMAT, 4);
    store<u16>(p, 0, 6);
    store<u64>(p, this.gatewayId, 8);
    store<u64>(p, this.seq, 16);
    store<u16>(p, <u16>cursors, 24);
    let w = p + 26;
    for (let k = 0; k < cursors; k++, w += 16) {
      store<u64>(w, unchecked(this.companionIds[k]));
      store<u64>(w, unchecked(this.cursors[k]), 8);
    }
    w = putWords(w, pairs, 2);
    w = putWords(w, triples, 3);
    w = putWords(w, this.outbox, 0, this.outboxRecords);
    if (flow != null) {
      store<u16>(w, <u16>bands);
      w += 2;
      for (let k = 0; k < bands; k++, w += 8) {
        const b = unchecked(flow.bands[k]);
        store<i32>(w, b.priority);
        store<u32>(w, <u32>min<u64>(getMetric(b.sizeMetric), 1000000), 4); // the companion refuses more (MAX_COUNT)
      }
    }
    this.clearOutbox(); // the chains go with this report (one that gets no answer loses them)
    this.outboxRecords = 0;
    this.token = this.call.start(
      "POST",
      this.cfg.gatewayReportPath,
      "application/vnd.endpoint-picker.gateway-view",
      REPORT_TIMEOUT_MS,
      body,
      "application/vnd.endpoint-picker.gateway-report",
    );
    this.nextReportMs = nowMs + REPORT_INTERVAL_MS;
    this.sentAtMs = nowMs;
    if (this.token == 0) this.failed("the host refused the call to cluster " + this.cfg.companionCluster);
    else this.metrics.count(this.metrics.reportsSent);
  }

  /** The root context's http-call callback; false for a token that is not ours. */
  onResponse(token: u32, headers: u32, bodySize: u32, nowMs: u64): bool {
    if (token != this.token || token == 0) return false;
    this.token = 0;
    if (!this.leader) return true; // an answer for a reporter this VM no longer is: the new leader reports
    const status: ArrayBuffer | null = headers == 0 ? null : httpCallHeader(STATUS);
    const code = status == null ? "" : String.UTF8.decode(status);
    if (code != "200") {
      // No answer, or a 5xx (Envoy answers a timed-out call with a local 504): the next report, on the next
      // tick, goes to another replica. A 4xx is this filter's problem (an older companion, the token, a
      // report too large): wait before trying again.
      const transient = code.length == 0 || code.startsWith("5");
      this.failed(
        code.length == 0
          ? "the gateway report to the companion failed (reset or refused)"
          : "the companion answered the gateway report with " +
              code +
              (code == "404"
                ? " (a companion older than this filter?)"
                : code == "401" || code == "403"
                  ? " (check apiToken)"
                  : code == "413"
                    ? " (larger than its --max-report-bytes)"
                    : ""),
      );
      if (!transient) this.nextReportMs = nowMs + REFUSED_RETRY_MS;
      return true;
    }
    if (bodySize > this.cfg.maxSnapshotBytes) {
      this.failed("the companion's gateway view is " + bodySize.toString() + " bytes, over maxSnapshotBytes");
      return true;
    }
    const body = getBuffer(BufferTypeValues.HttpCallResponseBody, 0, bodySize);
    const problem = body == null ? "no body" : this.apply(body, nowMs);
    if (problem.length > 0) {
      this.failed("the companion's gateway view is malformed: " + problem);
      return true;
    }
    this.metrics.count(this.metrics.reportsOk);
    if (this.failing) logInfo("the gateway exchange with the companion works again");
    this.failing = false;
    this.failuresInARow = 0;
    return true;
  }

  /** Applies a gateway view; returns "" or what is wrong with it (then nothing was applied). */
  private apply(view: ArrayBuffer, nowMs: u64): string {
    const len = view.byteLength;
    const p = changetype<usize>(view);
    if (len < 40 || load<u32>(p) != MAGIC || <u32>load<u16>(p, 4) != FORMAT) return "bad magic or format";
    const companion = load<u64>(p, 8);
    const cursor = load<u64>(p, 16);
    const gateways = load<u32>(p, 24);
    let at = 28;
    const pairs = <i32>load<u32>(p + <usize>at);
    at += 4;
    if (pairs < 0 || pairs > (len - at) / 8) return "in-flight count runs past the body";
    const pairsAt = at;
    at += 8 * pairs;
    if (at > len - 4) return "truncated after the in-flight counts";
    const triples = <i32>load<u32>(p + <usize>at);
    at += 4;
    if (triples < 0 || triples > (len - at) / 12) return "adapter count runs past the body";
    const triplesAt = at;
    at += 12 * triples;
    if (at > len - 4) return "truncated after the adapter counts";
    const records = <i32>load<u32>(p + <usize>at);
    at += 4;
    // Check every record before anything is applied.
    let r = at;
    for (let k = 0; k < records; k++) {
      if (r > len - 12) return "record " + k.toString() + " runs past the body";
      const n = <i32>load<u32>(p + <usize>r, 4);
      const c = <i32>load<u32>(p + <usize>r, 8);
      if (n <= 0 || n > 65535 || c != storedCount(n) || r + 12 + 4 * c > len)
        return "record " + k.toString() + " is malformed";
      r += 12 + 4 * c;
    }
    // Counts: one section of the in-flight table, the pairs and triples laid out as the table keeps them.
    const section = new ArrayBuffer(8 * pairs + 12 * triples);
    const s = changetype<usize>(section);
    memory.copy(s, p + <usize>pairsAt, <usize>(8 * pairs));
    memory.copy(s + <usize>(8 * pairs), p + <usize>triplesAt, <usize>(12 * triples));
    for (let attempt = 0; attempt < 4; attempt++) {
      const table = getShared(INFLIGHT_KEY);
      const cas = lastCas;
      const next = withSection(table, PEERS_VM, s, pairs, triples, nowMs, gateways);
      if (setShared(INFLIGHT_KEY, next, table == null ? 0 : cas) == WasmResultValues.Ok) break;
    }
    r = at;
    for (let k = 0; k < records; k++) {
      const ep = load<u32>(p + <usize>r);
      const n = load<u32>(p + <usize>r, 4);
      const c = <i32>load<u32>(p + <usize>r, 8);
      this.peersJournal.noteRecord(ep, n, c, p + <usize>(r + 12));
      r += 12 + 4 * c;
    }
    this.remember(companion, cursor);
    this.gateways = <i32>gateways;
    this.metrics.record(this.metrics.gateways, <u64>gateways);
    return "";
  }

  private remember(companion: u64, cursor: u64): void {
    for (let k = 0; k < this.companionIds.length; k++) {
      if (unchecked(this.companionIds[k]) == companion) {
        unchecked((this.cursors[k] = cursor));
        return;
      }
    }
    if (this.companionIds.length >= MAX_CURSORS) {
      this.companionIds.shift();
      this.cursors.shift();
    }
    this.companionIds.push(companion);
    this.cursors.push(cursor);
  }

  /**
   * A report that got no answer: its chains are dropped (they are tens of milliseconds of picks; keeping them
   * through an outage would only grow memory), and the gateway decides on its own state meanwhile.
   */
  private failed(why: string): void {
    this.metrics.count(this.metrics.reportsFailed);
    if (!this.failing) logWarn(why + "; deciding with this gateway's own state until it answers again");
    this.failing = true;
    this.failuresInARow++;
    if (this.failuresInARow >= OUTAGE_FAILURES) this.clearOutbox();
  }
}

/**
 * Writes a u32 count and then the words: `group` words per entry (2 pairs, 3 triples), or for records
 * (group 0) `records` as the count and every word as is.
 */
function putWords(w: usize, words: Array<u32>, group: i32, records: i32 = 0): usize {
  store<u32>(w, <u32>(group == 0 ? records : words.length / group));
  w += 4;
  for (let k = 0; k < words.length; k++, w += 4) store<u32>(w, unchecked(words[k]));
  return w;
}

/** This Envoy's gateway id: created once in shared data by the first reporter (CAS), random, never 0. */
function gatewayId(): u64 {
  for (let attempt = 0; attempt < 8; attempt++) {
    const v = getShared(GATEWAY_KEY);
    if (v != null && v.byteLength == 8 && load<u64>(changetype<usize>(v)) != 0) return load<u64>(changetype<usize>(v));
    // The host's random device: gateways started at the same instant (same clock, same VM numbers) differ.
    let id = hostRandomU64() ^ nextU64();
    if (id == 0) id = 1;
    const out = new ArrayBuffer(8);
    store<u64>(changetype<usize>(out), id);
    if (setShared(GATEWAY_KEY, out, v == null ? 0 : lastCas) == WasmResultValues.Ok && v != null) return id;
    if (v == null) continue; // claimed an absent key: read it back (another VM may have claimed it too)
  }
  return 1;
}
