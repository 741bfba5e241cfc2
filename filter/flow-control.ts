// Flow control, llm-d-router's in the proxy (docs/FILTER.md, "Flow control"): when the pool is saturated or
// empty, requests wait here, paused, instead of queueing inside the engines. Bands by priority (strict: a
// lower band never goes while a higher one waits), flows by fairness id inside a band (global-strict: the
// best head of all flows; round-robin: each flow in turn), an order inside a flow (first come first served,
// earliest TTL deadline, or earliest TTFT deadline). A request leaves the queue when the pool's saturation
// falls below the usage limit (then the decision picks its endpoint, so it still gets prefix and LoRA
// affinity), when its TTL runs out (429 / 503 with llm-d-router's reason header), or when its client goes.
// Queues are per worker VM; the VMs share their requests in flight, so they see one saturation.

export const FAIRNESS_GLOBAL_STRICT: u8 = 0;
export const FAIRNESS_ROUND_ROBIN: u8 = 1;
export const FAIRNESS_PROGRAM_AWARE: u8 = 2;
export const ORDERING_FCFS: u8 = 0;
export const ORDERING_EDF: u8 = 1;
export const ORDERING_SLO_DEADLINE: u8 = 2;

/** Admission results. */
export const ADMITTED: i32 = 0;
export const OVER_CAPACITY: i32 = 1;

/** llm-d-router's default flow when a request names no fairness id. */
export const DEFAULT_FLOW = "default-flow";

/** Inserts `v` at `at` (AssemblyScript's splice cannot insert). */
export function insertAt<T>(a: T[], at: i32, v: T): void {
  a.push(v);
  for (let i = a.length - 1; i > at; i--) unchecked((a[i] = a[i - 1]));
  unchecked((a[at] = v));
}

/** One priority band's limits and policies (snapshot section 6). */
export class BandConfig {
  priority: i32 = 0;
  maxRequests: u32 = 5000;
  maxBytes: f64 = 1e9;
  fairness: u8 = FAIRNESS_GLOBAL_STRICT;
  ordering: u8 = ORDERING_FCFS;

  withPriority(p: i32): BandConfig {
    const b = new BandConfig();
    b.priority = p;
    b.maxRequests = this.maxRequests;
    b.maxBytes = this.maxBytes;
    b.fairness = this.fairness;
    b.ordering = this.ordering;
    return b;
  }
}

/** The flowControl configuration the companion resolved (snapshot section 6). */
export class FlowConfig {
  defaultTtlMs: u64 = 60000;
  noEndpointTtlMs: u64 = 60000;
  maxRequests: u32 = 0;
  maxBytes: f64 = 0;
  usageLimit: f64 = 1.0;
  /** priority-holdback-policy: per-band ceilings from maxCeiling (highest band) to minCeiling (lowest). */
  holdback: bool = false;
  holdbackByValue: bool = false;
  /** soft-reflective-ceiling-policy: ceilings that fall with saturation, duty-cycled past them. */
  softReflective: bool = false;
  minCeiling: f64 = 0;
  maxCeiling: f64 = 1.0;
  /** program-aware-fairness (least attained service) parameters. */
  lasWeightService: f64 = 0.8;
  lasWeightHeadWait: f64 = 0.2;
  lasHalfLifeS: f64 = 60;
  lasEvictionTtlS: f64 = 3600;
  /**
   * Ours (program-aware-fairness's `heavyFlowHeadroom`): a flow served more than the mean of its band's
   * waiting flows stops at (1 - this) of the band's ceiling, so the others find room at once. 0: off.
   */
  heavyFlowHeadroom: f64 = 0;
  defaultBand: BandConfig = new BandConfig();
  negativeBand: BandConfig = new BandConfig();
  /** Explicit bands, priority descending. */
  bands: BandConfig[] = [];

  /** The band of `priority`: its explicit band, else one made from the template (negative below 0). */
  bandFor(priority: i32): BandConfig {
    for (let k = 0; k < this.bands.length; k++) {
      const b = unchecked(this.bands[k]);
      if (b.priority == priority) return b;
    }
    return (priority < 0 ? this.negativeBand : this.defaultBand).withPriority(priority);
  }
}

/** A request waiting in the queues: its stream is paused until it is dispatched or rejected. */
export class Waiter {
  band: Band | null = null;
  flow: FlowQueue | null = null;
  seq: u64 = 0;
  enqueuedMs: u64 = 0;
  /** Ordering key: enqueue sequence (FCFS), TTL deadline (EDF) or TTFT deadline (SLO), then seq. */
  key: u64 = 0;
  bytes: f64 = 0;

  constructor(
    /** The paused stream's context id (the picker finds the stream by it). */
    public contextId: u32,
    public priority: i32,
    public flowHash: u32,
    public flowName: string,
    /** Proxy-clock ms by which the first token is due (x-llm-d-slo-ttft-ms); u64.MAX_VALUE: none. */
    public sloDeadlineMs: u64,
  ) {}

  get queued(): bool {
    return this.band != null;
  }
}

/** One flow's waiting requests, in the band's order (best first). */
export class FlowQueue {
  items: Waiter[] = [];
  constructor(
    public hash: u32,
    public name: string,
  ) {}

  insert(w: Waiter): void {
    // Most arrive in order: walk back from the end.
    let at = this.items.length;
    while (at > 0) {
      const prev = unchecked(this.items[at - 1]);
      if (prev.key < w.key || (prev.key == w.key && prev.seq < w.seq)) break;
      at--;
    }
    insertAt<Waiter>(this.items, at, w);
  }

  remove(w: Waiter): bool {
    const at = this.items.indexOf(w);
    if (at < 0) return false;
    this.items.splice(at, 1);
    return true;
  }
}

export class Band {
  flows: FlowQueue[] = [];
  count: i32 = 0;
  bytes: f64 = 0;
  /** Round-robin: the next flow to serve. */
  private cursor: i32 = 0;
  /** Gauge ids of this band's queue size and bytes (defined by FlowControl). */
  sizeMetric: u32 = 0;
  bytesMetric: u32 = 0;
  waitMetric: u32 = 0;

  constructor(public config: BandConfig) {}

  get priority(): i32 {
    return this.config.priority;
  }

  flowFor(hash: u32, name: string): FlowQueue {
    for (let k = 0; k < this.flows.length; k++) if (unchecked(this.flows[k]).hash == hash) return this.flows[k];
    const f = new FlowQueue(hash, name);
    this.flows.push(f);
    return f;
  }

  /** The flow whose head goes next (by the band's fairness policy); null when the band is empty. */
  pickFlow(nowMs: u64, service: AttainedService, cfg: FlowConfig | null): FlowQueue | null {
    const n = this.flows.length;
    if (n == 0) return null;
    if (this.config.fairness == FAIRNESS_PROGRAM_AWARE && cfg != null) return this.leastServed(nowMs, service, cfg);
    if (this.config.fairness == FAIRNESS_ROUND_ROBIN) {
      if (this.cursor >= n) this.cursor = 0;
      const f = this.flows[this.cursor];
      this.cursor = (this.cursor + 1) % n;
      return f;
    }
    // global-strict: the best head of all flows, as one queue.
    let best: FlowQueue | null = null;
    for (let k = 0; k < n; k++) {
      const f = unchecked(this.flows[k]);
      const h = unchecked(f.items[0]);
      if (best == null) {
        best = f;
        continue;
      }
      const b = unchecked(best.items[0]);
      if (h.key < b.key || (h.key == b.key && h.seq < b.seq)) best = f;
    }
    return best;
  }

  /**
   * program-aware-fairness (strategy las): the flow with the best wService x (1 - service) + wHeadWait x head
   * wait, both normalised over the band's flows (0.5 when all are equal); the first flow wins ties.
   */
  private leastServed(nowMs: u64, service: AttainedService, cfg: FlowConfig): FlowQueue | null {
    const n = this.flows.length;
    let sMin = Infinity,
      sMax = -Infinity,
      wMin = Infinity,
      wMax = -Infinity;
    const s = new StaticArray<f64>(n);
    const wait = new StaticArray<f64>(n);
    for (let k = 0; k < n; k++) {
      const f = unchecked(this.flows[k]);
      const v = service.of(f.hash, nowMs, cfg.lasHalfLifeS);
      const head = unchecked(f.items[0]);
      const w = nowMs > head.enqueuedMs ? <f64>(nowMs - head.enqueuedMs) : 0.0;
      unchecked((s[k] = v));
      unchecked((wait[k] = w));
      sMin = min(sMin, v);
      sMax = max(sMax, v);
      wMin = min(wMin, w);
      wMax = max(wMax, w);
    }
    let best: FlowQueue | null = null;
    let bestScore = -Infinity;
    for (let k = 0; k < n; k++) {
      const ns = 1.0 - rangeNormalize(unchecked(s[k]), sMin, sMax);
      const nw = rangeNormalize(unchecked(wait[k]), wMin, wMax);
      const score = cfg.lasWeightService * ns + cfg.lasWeightHeadWait * nw;
      if (score > bestScore) {
        bestScore = score;
        best = unchecked(this.flows[k]);
      }
    }
    return best;
  }

  /** Drops an emptied flow, keeping the round-robin cursor on the flow that was next. */
  dropIfEmpty(f: FlowQueue): void {
    if (f.items.length > 0) return;
    const at = this.flows.indexOf(f);
    if (at < 0) return;
    this.flows.splice(at, 1);
    if (this.cursor > at) this.cursor--;
  }
}

function rangeNormalize(v: f64, lo: f64, hi: f64): f64 {
  return hi == lo ? 0.5 : (v - lo) / (hi - lo);
}

/** A flow charged within this long counts as active (heavy-flow headroom compares it with the others). */
const ACTIVE_MS: u64 = 10000;

class ServiceState {
  value: f64 = 0;
  anchorMs: u64 = 0;
  lastChargeMs: u64 = 0;
}

/**
 * program-aware-fairness's attained service per flow (this VM's): the weighted tokens of its finished
 * requests, decaying with a half-life so a flow back from idle competes on near-equal terms.
 */
export class AttainedService {
  private flows: Map<u32, ServiceState> = new Map<u32, ServiceState>();

  private decayed(st: ServiceState, nowMs: u64, halfLifeS: f64): void {
    if (nowMs > st.anchorMs && halfLifeS > 0)
      st.value *= Math.pow(2.0, -(<f64>(nowMs - st.anchorMs) / 1000.0) / halfLifeS);
    if (nowMs > st.anchorMs) st.anchorMs = nowMs;
  }

  of(hash: u32, nowMs: u64, halfLifeS: f64): f64 {
    if (!this.flows.has(hash)) return 0;
    const st = this.flows.get(hash);
    this.decayed(st, nowMs, halfLifeS);
    return st.value;
  }

  charge(hash: u32, cost: f64, nowMs: u64, halfLifeS: f64): void {
    let st: ServiceState;
    if (this.flows.has(hash)) st = this.flows.get(hash);
    else {
      st = new ServiceState();
      st.anchorMs = nowMs;
      this.flows.set(hash, st);
    }
    this.decayed(st, nowMs, halfLifeS);
    st.value += cost;
    st.lastChargeMs = nowMs;
    this.activeAtMs = u64.MAX_VALUE; // a new flow may have become active
  }

  /** Forgets flows with no completion for `ttlS` seconds (0: never). */
  evict(nowMs: u64, ttlS: f64): void {
    if (!(ttlS > 0)) return;
    const ttlMs = <u64>(ttlS * 1000.0);
    const keys = this.flows.keys();
    for (let k = 0; k < keys.length; k++) {
      const st = this.flows.get(unchecked(keys[k]));
      if (nowMs > st.lastChargeMs && nowMs - st.lastChargeMs > ttlMs) this.flows.delete(unchecked(keys[k]));
    }
  }

  get size(): i32 {
    return this.flows.size;
  }

  /** The mean service of the flows charged in the last ACTIVE_MS, as of the last activeFlows call. */
  activeMean: f64 = 0;
  private activeCount: i32 = 0;
  private activeAtMs: u64 = u64.MAX_VALUE;

  /** How many flows were charged in the last ACTIVE_MS (recounted at most every 20 ms); sets activeMean. */
  activeFlows(nowMs: u64, halfLifeS: f64): i32 {
    if (this.activeAtMs != u64.MAX_VALUE && nowMs >= this.activeAtMs && nowMs - this.activeAtMs < 20)
      return this.activeCount;
    this.activeAtMs = nowMs;
    let sum = 0.0,
      n = 0;
    const keys = this.flows.keys();
    for (let k = 0; k < keys.length; k++) {
      const st = this.flows.get(unchecked(keys[k]));
      if (nowMs > st.lastChargeMs && nowMs - st.lastChargeMs > ACTIVE_MS) continue;
      this.decayed(st, nowMs, halfLifeS);
      sum += st.value;
      n++;
    }
    this.activeCount = n;
    this.activeMean = n > 0 ? sum / <f64>n : 0.0;
    return n;
  }
}

/** Fairness ids with metrics of their own, per VM (Envoy's stats are unbounded; a tenant id is user input). */
export const MAX_FLOW_METRICS: i32 = 16;

class FlowMetrics {
  constructor(
    public queueSize: u32,
    public waitMs: u32,
  ) {}
}

function noRecord(_id: u32, _value: u64): void {}

/** A fairness id as a stat name part: letters, digits, `_` and `-` kept, anything else `_`, at most 64. */
function statName(id: string): string {
  let out = "";
  const n = min(id.length, 64);
  for (let i = 0; i < n; i++) {
    const c = id.charCodeAt(i);
    const keep = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 45;
    out += keep ? String.fromCharCode(c) : "_";
  }
  return out.length > 0 ? out : "_";
}

const GAUGE = 1,
  COUNTER = 0,
  HISTOGRAM = 2;

/** Stat name part of a priority: `priority_10`, `priority_minus_10`. */
function priorityName(p: i32): string {
  return p < 0 ? "priority_minus_" + (-(<i64>p)).toString() : "priority_" + p.toString();
}

/** This VM's queues. */
export class FlowControl {
  /** Bands, priority descending. */
  bands: Band[] = [];
  count: i32 = 0;
  bytes: f64 = 0;
  private seq: u64 = 0;
  /** The pool was empty at the last look, and since when the current regime (empty or not) holds. */
  private empty: bool = false;
  private regimeSinceMs: u64 = 0;
  private config: FlowConfig | null = null;
  /** program-aware-fairness: attained service per flow. */
  service: AttainedService = new AttainedService();
  private lastEvictMs: u64 = 0;
  // Counters and the wait histogram, shared by name with the other VMs (Envoy sums them).
  dispatched: u32 = 0;
  rejectedSaturated: u32 = 0;
  rejectedTtl: u32 = 0;
  rejectedNoEndpoints: u32 = 0;
  cancelled: u32 = 0;
  waitMs: u32 = 0;
  private defined: bool = false;

  /** Per-flow metrics by flow hash: the first MAX_FLOW_METRICS fairness ids this VM sees, then `other`. */
  private flowMetrics: Map<u32, FlowMetrics> = new Map<u32, FlowMetrics>();
  private otherFlows: FlowMetrics | null = null;

  /** `define`, `add` and `record` are the host's metric calls (stubs in the specs). */
  constructor(
    private readonly define: (kind: i32, name: string) => u32,
    private readonly add: (id: u32, by: i64) => void,
    private readonly record: (id: u32, value: u64) => void = noRecord,
  ) {}

  /** The gauges and histogram of `w`'s flow (bounded: late flows share `other`). */
  private metricsOf(w: Waiter): FlowMetrics {
    if (this.flowMetrics.has(w.flowHash)) return this.flowMetrics.get(w.flowHash);
    if (this.flowMetrics.size < MAX_FLOW_METRICS) {
      const m = this.defineFlowMetrics(statName(w.flowName));
      this.flowMetrics.set(w.flowHash, m);
      return m;
    }
    let o = this.otherFlows;
    if (o == null) this.otherFlows = o = this.defineFlowMetrics("other");
    return o;
  }

  private defineFlowMetrics(name: string): FlowMetrics {
    const prefix = "endpoint_picker.flow_control.flow." + name;
    return new FlowMetrics(this.define(GAUGE, prefix + ".queue_size"), this.define(HISTOGRAM, prefix + ".wait_ms"));
  }

  /** Records how long a dispatched request waited: overall, in its band and in its flow. */
  recordWait(w: Waiter, band: i32, waitedMs: u64): void {
    this.record(this.waitMs, waitedMs);
    const b = this.band(band);
    this.record(b.waitMetric, waitedMs);
    this.record(this.metricsOf(w).waitMs, waitedMs);
  }

  private defineCounters(): void {
    if (this.defined) return;
    this.defined = true;
    this.dispatched = this.define(COUNTER, "endpoint_picker.flow_control.dispatched");
    this.rejectedSaturated = this.define(COUNTER, "endpoint_picker.flow_control.rejected_saturated");
    this.rejectedTtl = this.define(COUNTER, "endpoint_picker.flow_control.rejected_ttl_expired");
    this.rejectedNoEndpoints = this.define(COUNTER, "endpoint_picker.flow_control.rejected_no_endpoints");
    this.cancelled = this.define(COUNTER, "endpoint_picker.flow_control.cancelled");
    this.waitMs = this.define(HISTOGRAM, "endpoint_picker.flow_control.wait_ms");
  }

  /**
   * Takes a (new) configuration: bands are re-made from it (waiting requests keep their place), and every
   * priority in `known` (the configured bands, the InferenceObjectives', objectivePriorities', 0) gets its
   * band, so each VM defines the same gauges and the gateway reporter can read them all.
   */
  configure(cfg: FlowConfig, known: i32[]): void {
    this.defineCounters();
    this.config = cfg;
    for (let k = 0; k < this.bands.length; k++) {
      const b = unchecked(this.bands[k]);
      b.config = cfg.bandFor(b.priority);
    }
    for (let k = 0; k < cfg.bands.length; k++) this.band(unchecked(cfg.bands[k]).priority);
    for (let k = 0; k < known.length; k++) this.band(unchecked(known[k]));
    this.band(0);
  }

  get enabled(): bool {
    return this.config != null;
  }

  /** Turns flow control off (the snapshot lost its section); the caller dispatches what still waits. */
  disable(): void {
    this.config = null;
  }

  /** The band of `priority`, made on first use. */
  band(priority: i32): Band {
    let at = 0;
    for (; at < this.bands.length; at++) {
      const b = unchecked(this.bands[at]);
      if (b.priority == priority) return b;
      if (b.priority < priority) break;
    }
    const cfg = this.config;
    const b = new Band(cfg != null ? cfg.bandFor(priority) : new BandConfig().withPriority(priority));
    const name = "endpoint_picker.flow_control." + priorityName(priority);
    b.sizeMetric = this.define(GAUGE, name + ".queue_size");
    b.bytesMetric = this.define(GAUGE, name + ".queue_bytes");
    b.waitMetric = this.define(HISTOGRAM, name + ".wait_ms");
    insertAt<Band>(this.bands, at, b);
    return b;
  }

  /**
   * The usage limit of `priority`'s band: static-usage-limit-policy's one threshold, or priority-holdback-
   * policy's ceiling over every band this VM knows (rank: equal steps; value: proportional to the priority).
   */
  ceiling(priority: i32): f64 {
    const cfg = this.config;
    if (cfg == null) return Infinity;
    if (cfg.softReflective) return this.reflectiveCeiling(priority);
    if (!cfg.holdback) return cfg.usageLimit;
    const n = this.bands.length;
    if (n <= 1) return cfg.maxCeiling;
    const spread = cfg.maxCeiling - cfg.minCeiling;
    if (cfg.holdbackByValue) {
      const hi = <f64>unchecked(this.bands[0]).priority,
        lo = <f64>unchecked(this.bands[n - 1]).priority;
      if (hi == lo) return cfg.maxCeiling;
      return cfg.minCeiling + ((<f64>priority - lo) / (hi - lo)) * spread;
    }
    let rank = 0;
    while (rank < n && unchecked(this.bands[rank]).priority > priority) rank++;
    if (rank >= n) rank = n - 1;
    return cfg.maxCeiling - (<f64>rank * spread) / <f64>(n - 1);
  }

  /** The saturation the soft-reflective ceilings are computed from (set per dispatch cycle and admission). */
  private saturationNow: f64 = 0;
  /** soft-reflective-ceiling-policy's shared tick: dispatch cycles counted. */
  private cycles: u64 = 0;

  /** The pool's saturation for the ceilings that depend on it; `cycle`: a new dispatch cycle. */
  observe(saturation: f64, cycle: bool): void {
    this.saturationNow = saturation;
    if (cycle) this.cycles++;
  }

  /**
   * soft-reflective-ceiling-policy (llm-d-router's): band i of N (0 the highest) has the ceiling
   * 1 - i x saturation / (N - 1); the top band goes while saturation is below 1; at 1 or more the others
   * stop; between its ceiling and 1 a band is open on one dispatch cycle in round(s / (1 - s)), all such
   * bands on the same cycles (one shared tick), so the dispatch rate falls off with saturation.
   */
  private reflectiveCeiling(priority: i32): f64 {
    const n = this.bands.length;
    let rank = 0;
    while (rank < n && unchecked(this.bands[rank]).priority > priority) rank++;
    if (rank == 0 || n <= 1) return 1.0;
    const s = this.saturationNow;
    if (s >= 1.0) return 0.0;
    const c = 1.0 - (<f64>min(rank, n - 1) * s) / <f64>(n - 1);
    if (s < c) return c;
    const period = <u64>max(1.0, Math.round(s / (1.0 - s)));
    return this.cycles % period == 0 ? 1.0 : 0.0;
  }

  /** The band's program-aware settings hold back its heavy flows (heavyFlowHeadroom > 0). */
  private holdsHeavy(b: Band): bool {
    const cfg = this.config;
    return cfg != null && cfg.heavyFlowHeadroom > 0 && b.config.fairness == FAIRNESS_PROGRAM_AWARE;
  }

  /** Flow `hash` has had more service than the mean of the active flows (two or more of them). */
  private heavy(hash: u32, nowMs: u64): bool {
    const half = this.config!.lasHalfLifeS;
    return this.service.activeFlows(nowMs, half) > 1 && this.service.of(hash, nowMs, half) > this.service.activeMean;
  }

  /** Saturation `s` leaves room for a new request of `priority` in flow `flowHash` (its ceiling is above it). */
  admitsBelow(s: f64, priority: i32, flowHash: u32, nowMs: u64): bool {
    this.observe(s, false);
    return s < this.flowCeiling(priority, flowHash, nowMs);
  }

  /** The usage limit of a request of `priority` in flow `flowHash`: its band's, less the heavy flows' headroom. */
  flowCeiling(priority: i32, flowHash: u32, nowMs: u64): f64 {
    const c = this.ceiling(priority);
    const b = this.band(priority);
    if (!this.holdsHeavy(b) || !this.heavy(flowHash, nowMs)) return c;
    return c * (1.0 - this.config!.heavyFlowHeadroom);
  }

  /**
   * A new request must queue behind others: a higher band waits, or its own band does (first come first
   * served), except under heavy-flow headroom where it waits only behind its own flow and lighter flows.
   */
  mustWait(priority: i32, flowHash: u32, nowMs: u64): bool {
    for (let k = 0; k < this.bands.length; k++) {
      const b = unchecked(this.bands[k]);
      if (b.priority < priority) break;
      if (b.count == 0) continue;
      if (b.priority > priority || !this.holdsHeavy(b)) return true;
      const half = this.config!.lasHalfLifeS;
      const own = this.service.of(flowHash, nowMs, half);
      for (let j = 0; j < b.flows.length; j++) {
        const f = unchecked(b.flows[j]);
        if (f.hash == flowHash || this.service.of(f.hash, nowMs, half) <= own) return true;
      }
    }
    return false;
  }

  /** Charges a request to its flow (program-aware-fairness): input tokens + 2 x output tokens. */
  charge(flowHash: u32, inputTokens: f64, outputTokens: f64, nowMs: u64): void {
    const cfg = this.config;
    if (cfg == null) return;
    this.service.charge(flowHash, inputTokens + 2.0 * outputTokens, nowMs, cfg.lasHalfLifeS);
    if (nowMs - this.lastEvictMs >= 60000) {
      this.lastEvictMs = nowMs;
      this.service.evict(nowMs, cfg.lasEvictionTtlS);
    }
  }

  /** A request of `priority` must wait behind others: some request of its band or a higher one waits. */
  waitingAtOrAbove(priority: i32): bool {
    for (let k = 0; k < this.bands.length; k++) {
      const b = unchecked(this.bands[k]);
      if (b.priority < priority) break;
      if (b.count > 0) return true;
    }
    return false;
  }

  /** Queues `w` unless a limit (global bytes, global requests, band bytes, band requests) says no. */
  admit(w: Waiter, nowMs: u64): i32 {
    const cfg = this.config!;
    const b = this.band(w.priority);
    const bc = b.config;
    if (cfg.maxBytes > 0 && this.bytes + w.bytes > cfg.maxBytes) return OVER_CAPACITY;
    if (cfg.maxRequests > 0 && <u32>this.count + 1 > cfg.maxRequests) return OVER_CAPACITY;
    if (bc.maxBytes > 0 && b.bytes + w.bytes > bc.maxBytes) return OVER_CAPACITY;
    if (bc.maxRequests > 0 && <u32>b.count + 1 > bc.maxRequests) return OVER_CAPACITY;
    w.seq = ++this.seq;
    w.enqueuedMs = nowMs;
    w.key =
      bc.ordering == ORDERING_EDF
        ? cfg.defaultTtlMs > 0
          ? nowMs + cfg.defaultTtlMs
          : u64.MAX_VALUE
        : bc.ordering == ORDERING_SLO_DEADLINE
          ? w.sloDeadlineMs
          : w.seq;
    const f = b.flowFor(w.flowHash, w.flowName);
    f.insert(w);
    w.band = b;
    w.flow = f;
    b.count++;
    b.bytes += w.bytes;
    this.count++;
    this.bytes += w.bytes;
    this.add(b.sizeMetric, 1);
    this.add(b.bytesMetric, <i64>w.bytes);
    this.add(this.metricsOf(w).queueSize, 1);
    return ADMITTED;
  }

  /** Takes `w` out of its queue (dispatched, rejected or gone); false when it was not queued. */
  remove(w: Waiter): bool {
    const b = w.band;
    const f = w.flow;
    if (b == null || f == null) return false;
    f.remove(w);
    b.dropIfEmpty(f);
    b.count--;
    b.bytes -= w.bytes;
    this.count--;
    this.bytes -= w.bytes;
    this.add(b.sizeMetric, -1);
    this.add(b.bytesMetric, -(<i64>w.bytes));
    this.add(this.metricsOf(w).queueSize, -1);
    w.band = null;
    w.flow = null;
    return true;
  }

  /** The request to dispatch next (strict priority, then the band's fairness, then its order), taken out. */
  takeNext(nowMs: u64 = 0, saturation: f64 = -Infinity): Waiter | null {
    this.observe(saturation, true);
    for (let k = 0; k < this.bands.length; k++) {
      const b = unchecked(this.bands[k]);
      // Head-of-line blocking as upstream: a band at its ceiling stops the cycle (ceilings fall with priority).
      if (saturation >= this.ceiling(b.priority)) return null;
      if (b.count == 0) continue;
      const f = b.pickFlow(nowMs, this.service, this.config);
      if (f == null || f.items.length == 0) continue;
      // The least served flow goes first; when even it is heavy, it stops at its lower ceiling.
      if (this.holdsHeavy(b) && saturation >= this.flowCeiling(b.priority, f.hash, nowMs)) return null;
      const w = unchecked(f.items[0]);
      this.remove(w);
      return w;
    }
    return null;
  }

  /**
   * Notes whether the pool is empty (a change starts every waiting request's TTL afresh, as in
   * llm-d-router) and collects the requests whose TTL ran out: `defaultRequestTTL` while the pool has
   * endpoints, `noEndpointRequestTTL` while it has none.
   */
  expired(nowMs: u64, poolEmpty: bool, out: Waiter[]): void {
    if (poolEmpty != this.empty || this.regimeSinceMs == 0) {
      this.empty = poolEmpty;
      this.regimeSinceMs = nowMs;
    }
    const cfg = this.config;
    if (cfg == null || this.count == 0) return;
    const ttl = poolEmpty ? cfg.noEndpointTtlMs : cfg.defaultTtlMs;
    if (ttl == 0) return;
    for (let k = 0; k < this.bands.length; k++) {
      const b = unchecked(this.bands[k]);
      for (let j = 0; j < b.flows.length; j++) {
        const items = unchecked(b.flows[j]).items;
        for (let i = 0; i < items.length; i++) {
          const w = unchecked(items[i]);
          const start = max(w.enqueuedMs, this.regimeSinceMs);
          if (nowMs >= start && nowMs - start >= ttl) out.push(w);
        }
      }
    }
  }

  get poolEmpty(): bool {
    return this.empty;
  }
}
