// Outlier detection of the endpoints the filter picks, the way Envoy's outlier detection works for a
// cluster: consecutive 5xx and consecutive gateway failures (502/503/504, and a connection that failed or
// reset before the response) eject an endpoint for baseEjectionTimeMs x the times it was ejected (at most
// maxEjectionTimeMs), never more than maxEjectionPercent of the pool at once. Envoy's own detector cannot do
// this here: override_host selects the header's host whatever its health, and a pod that fails at once has
// the fewest requests in flight, so a least-request picker would send it most of the traffic.
//
// Each worker VM counts the outcomes of its own requests; an ejection is shared through one shared-data
// table (written with compare-and-swap, read on every tick), so every VM of the Envoy process stops picking
// the endpoint within a tick. An endpoint back from ejection is on probation: its first failure ejects it
// again (for longer) before it collects a run of failures; its first success ends the probation.
import { PluginConfig } from "./config";
import { Snapshot } from "./snapshot";
import { Metrics } from "./metrics";
import { encode, getShared, setShared, lastCas, readSharedToScratch, scratch, logWarn, logInfo } from "./host";

export const OUTLIERS_KEY = encode("endpoint-picker.outliers");
/** Bytes per table entry: address hash u32, ejections u16, probation u16, ejected until (ms) u64, forget at u64. */
const ENTRY_BYTES: i32 = 24;
const MAX_ENTRIES: i32 = 4096;
/** Counters kept per VM at most (a churning pool must not grow them without bound). */
const MAX_COUNTERS: i32 = 8192;
const CAS_ATTEMPTS: i32 = 4;

class Counters {
  consecutive5xx: i32 = 0;
  consecutiveGateway: i32 = 0;
}

class Entry {
  constructor(
    public hash: u32,
    public ejections: u32,
    public probation: bool,
    public untilMs: u64,
    public forgetMs: u64,
  ) {}
}

function decodeTable(ptr: usize, size: i32, out: Array<Entry>): void {
  out.length = 0;
  if (size < 4) return;
  const n = min(<i32>load<u32>(ptr), min(MAX_ENTRIES, (size - 4) / ENTRY_BYTES));
  for (let k = 0; k < n; k++) {
    const at = ptr + 4 + <usize>(k * ENTRY_BYTES);
    out.push(
      new Entry(load<u32>(at), <u32>load<u16>(at + 4), load<u16>(at + 6) != 0, load<u64>(at + 8), load<u64>(at + 16)),
    );
  }
}

function encodeTable(entries: Array<Entry>, nowMs: u64): ArrayBuffer {
  let n = 0;
  for (let k = 0; k < entries.length; k++) if (entries[k].forgetMs > nowMs) n++;
  n = min(n, MAX_ENTRIES);
  const buf = new ArrayBuffer(4 + n * ENTRY_BYTES);
  const p = changetype<usize>(buf);
  store<u32>(p, <u32>n);
  let w = 0;
  for (let k = 0; k < entries.length && w < n; k++) {
    const e = entries[k];
    if (e.forgetMs <= nowMs) continue; // forgotten: its next ejection starts from the base time again
    const at = p + 4 + <usize>(w++ * ENTRY_BYTES);
    store<u32>(at, e.hash);
    store<u16>(at + 4, <u16>min(e.ejections, 0xffff));
    store<u16>(at + 6, e.probation ? 1 : 0);
    store<u64>(at + 8, e.untilMs);
    store<u64>(at + 16, e.forgetMs);
  }
  return buf;
}

function find(entries: Array<Entry>, hash: u32): Entry | null {
  for (let k = 0; k < entries.length; k++) if (unchecked(entries[k]).hash == hash) return unchecked(entries[k]);
  return null;
}

export class OutlierDetector {
  /** Per snapshot endpoint: 1 while ejected (the decision skips it). Null when nothing is ejected. */
  ejected: StaticArray<u8> | null = null;
  ejectedCount: i32 = 0;
  private column: StaticArray<u8> = new StaticArray<u8>(0);
  private counters: Map<u32, Counters> = new Map();
  private entries: Array<Entry> = [];
  private tableCas: u32 = 0;
  private columnFor: Snapshot | null = null;
  private nextChangeMs: u64 = 0;
  private capLogged: bool = false;

  constructor(
    private cfg: PluginConfig,
    private metrics: Metrics,
  ) {}

  get enabled(): bool {
    return this.cfg.maxEjectionPercent > 0;
  }

  /** On every tick: the shared table (when it changed) and the clock into the column the decision reads. */
  refresh(snap: Snapshot | null, nowMs: u64): void {
    if (!this.enabled) return;
    const size = readSharedToScratch(OUTLIERS_KEY);
    const cas = lastCas;
    if (cas == this.tableCas && snap === this.columnFor && nowMs < this.nextChangeMs) return;
    if (cas != this.tableCas) {
      if (size > 0) decodeTable(scratch, size, this.entries);
      else if (size == -1) this.entries.length = 0;
      else {
        const raw = getShared(OUTLIERS_KEY); // larger than the scratch buffer
        if (raw != null) decodeTable(changetype<usize>(raw), raw.byteLength, this.entries);
      }
      this.tableCas = cas;
    }
    this.rebuild(snap, nowMs);
  }

  private rebuild(snap: Snapshot | null, nowMs: u64): void {
    this.columnFor = snap;
    let next = u64.MAX_VALUE;
    for (let k = 0; k < this.entries.length; k++) {
      const e = this.entries[k];
      if (e.untilMs > nowMs) next = min(next, e.untilMs);
      if (e.forgetMs > nowMs) next = min(next, e.forgetMs);
    }
    this.nextChangeMs = next;
    this.ejectedCount = 0;
    if (snap == null) {
      this.ejected = null;
      return;
    }
    if (this.column.length != snap.count) this.column = new StaticArray<u8>(snap.count);
    const column = this.column;
    for (let i = 0; i < snap.count; i++) {
      const e = find(this.entries, unchecked(snap.addrHash[i]));
      const out = e != null && e.untilMs > nowMs;
      unchecked((column[i] = out ? 1 : 0));
      if (out) this.ejectedCount++;
    }
    this.ejected = this.ejectedCount > 0 ? column : null;
    this.metrics.record(this.metrics.ejected, <u64>this.ejectedCount);
  }

  /** A response from endpoint `hash` that is not a failure. */
  success(hash: u32, snap: Snapshot | null, nowMs: u64): void {
    if (!this.enabled) return;
    const c = this.counters.has(hash) ? this.counters.get(hash) : null;
    if (c != null) {
      c.consecutive5xx = 0;
      c.consecutiveGateway = 0;
    }
    const e = find(this.entries, hash);
    if (e != null && e.probation && e.untilMs <= nowMs) this.update(hash, snap, nowMs, false);
  }

  /**
   * A failed response from endpoint `hash`: a 5xx, and a gateway failure when it is 502/503/504 or the
   * connection failed or reset before a response (Envoy counts a gateway failure as a 5xx too).
   */
  failure(hash: u32, gateway: bool, snap: Snapshot | null, nowMs: u64): void {
    if (!this.enabled) return;
    let c: Counters;
    if (this.counters.has(hash)) c = this.counters.get(hash);
    else {
      if (this.counters.size >= MAX_COUNTERS) this.counters.clear();
      c = new Counters();
      this.counters.set(hash, c);
    }
    c.consecutive5xx++;
    if (gateway) c.consecutiveGateway++;
    else c.consecutiveGateway = 0;
    const e = find(this.entries, hash);
    if (e != null && e.untilMs > nowMs) return; // already out (a request picked before the ejection)
    const tripped =
      c.consecutive5xx >= this.cfg.consecutive5xx ||
      c.consecutiveGateway >= this.cfg.consecutiveGatewayFailure ||
      (e != null && e.probation);
    if (!tripped) return;
    c.consecutive5xx = 0;
    c.consecutiveGateway = 0;
    this.update(hash, snap, nowMs, true);
  }

  /** Ejects `hash` (eject) or ends its probation, with compare-and-swap on the shared table. */
  private update(hash: u32, snap: Snapshot | null, nowMs: u64, eject: bool): void {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const raw = getShared(OUTLIERS_KEY);
      const cas = lastCas;
      if (raw != null) decodeTable(changetype<usize>(raw), raw.byteLength, this.entries);
      else this.entries.length = 0;
      let e = find(this.entries, hash);
      if (eject) {
        if (e != null && e.untilMs > nowMs) return; // another VM was first
        if (!this.mayEject(snap, nowMs)) return;
        const ejections: u32 = e != null && e.forgetMs > nowMs ? e.ejections + 1 : 1;
        const span = min(<u64>this.cfg.baseEjectionTimeMs * <u64>ejections, <u64>this.cfg.maxEjectionTimeMs);
        // Forgotten (the next ejection from the base time again) after as long healthy as the longest ejection.
        const forget = nowMs + span + <u64>this.cfg.maxEjectionTimeMs;
        if (e == null) {
          e = new Entry(hash, ejections, true, nowMs + span, forget);
          this.entries.push(e);
        } else {
          e.ejections = ejections;
          e.probation = true;
          e.untilMs = nowMs + span;
          e.forgetMs = forget;
        }
      } else {
        if (e == null || !e.probation) return;
        e.probation = false;
      }
      if (setShared(OUTLIERS_KEY, encodeTable(this.entries, nowMs), cas) != 0) continue; // raced: read again
      this.tableCas = 0; // re-read on the next tick, which rebuilds the column
      this.rebuild(snap, nowMs);
      this.tableCas = lastCas;
      this.log(hash, snap, e, nowMs, eject);
      return;
    }
  }

  /** Whether one more endpoint may be ejected: at most maxEjectionPercent of the pool, at least one of two. */
  private mayEject(snap: Snapshot | null, nowMs: u64): bool {
    if (snap == null || snap.count < 2) return false;
    let out = 0;
    for (let i = 0; i < snap.count; i++) {
      const e = find(this.entries, unchecked(snap.addrHash[i]));
      if (e != null && e.untilMs > nowMs) out++;
    }
    const allowed = max(1, (snap.count * this.cfg.maxEjectionPercent) / 100);
    if (out < allowed) return true;
    this.metrics.count(this.metrics.ejectionsCapped);
    if (!this.capLogged)
      logWarn(
        "outlier detection: " +
          out.toString() +
          " of " +
          snap.count.toString() +
          " endpoints are ejected (maxEjectionPercent " +
          this.cfg.maxEjectionPercent.toString() +
          "); failing endpoints beyond that stay in use",
      );
    this.capLogged = true;
    return false;
  }

  private log(hash: u32, snap: Snapshot | null, e: Entry, nowMs: u64, ejected: bool): void {
    let name = "endpoint #" + hash.toString(16);
    if (snap != null)
      for (let i = 0; i < snap.count; i++) if (unchecked(snap.addrHash[i]) == hash) name = snap.address(i);
    if (ejected) {
      this.capLogged = false;
      this.metrics.count(this.metrics.ejections);
      logWarn(
        "outlier detection: " +
          name +
          " ejected for " +
          (e.untilMs - nowMs).toString() +
          " ms (ejection " +
          e.ejections.toString() +
          ") after failed requests",
      );
    } else logInfo("outlier detection: " + name + " answers again after its ejection");
  }
}
