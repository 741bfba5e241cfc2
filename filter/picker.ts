// Root and HTTP contexts of the endpoint picker. The root context (one per worker VM) holds the
// configuration and runs the tick: the snapshot fetcher (filter/fetcher.ts), the exchange with the other
// worker VMs (filter/vm-exchange.ts) and with the other gateway replicas (filter/gateway-reporter.ts) and the body watchdog (filter/body-watchdog.ts). The HTTP context
// makes the per-request decision (filter/scoring/) with the VM's request scratch (filter/request-scratch.ts),
// and applies the snapshot's model rewrites to the request body and back to the response (docs/FILTER.md).
import {
  RootContext,
  Context,
  FilterHeadersStatusValues,
  FilterDataStatusValues,
  FilterTrailersStatusValues,
  HeaderMapTypeValues,
  BufferTypeValues,
} from "@solo-io/proxy-runtime/assembly";
import { PluginConfig, parseConfig, FAIL_OPEN } from "./config";
import { Pool } from "./pool";
import { Fetcher } from "./fetcher";
import { GatewayReporter } from "./gateway-reporter";
import { Metrics } from "./metrics";
import { Decision, OUTCOME_PICKED, OUTCOME_SHED, OUTCOME_DENIED } from "./scoring/decision";
import { PREFILLER_HEADER, SIDECAR_HOST_HEADERS, DECIDER_PREFIX, wantsPrefill, pickPrefill } from "./pd";
import { RequestFacts } from "./scoring/plugin";
import { Snapshot, FLAG_UNUSABLE } from "./snapshot";
import { BodyScanner, promptKindForPath, PROMPT_ANY, SCAN_NEED_MORE } from "./body";
import { PrefixIndex, modelSeed, indexCapacity } from "./prefix";
import { VmExchange } from "./vm-exchange";
import { OutlierDetector } from "./outliers";
import { BodyWatchdog } from "./body-watchdog";
import { RequestScratch, PROMPT_RESERVE_MAX } from "./request-scratch";
import { seedRandom } from "./rng";
import { fnv1a32 } from "./hash";
import { SessionTable } from "./session-table";
import { SessionExchange } from "./session-exchange";
import {
  decodeToken,
  writeToken,
  cookieValue,
  sessionHash,
  MAX_SESSION_ID_BYTES,
} from "./scoring/session-affinity-scorer";
import { SessionKeys } from "./scoring/plugin";
import { FlowControl, Waiter, ADMITTED, DEFAULT_FLOW } from "./flow-control";
import { SaturationEstimate } from "./saturation";
import {
  nowNs,
  removeHeader,
  replaceHeader,
  localReply,
  setTickPeriod,
  encode,
  logError,
  continueRequest,
  scratch,
  readHeaderToScratch,
  readBufferToScratch,
  readPropertyToScratch,
  replaceBufferPrefix,
  getBuffer,
  SCRATCH_BYTES,
  setEffectiveContext,
  defineMetric,
  incrementMetric,
  recordMetric,
} from "./host";

export const ROOT_ID = "endpoint-picker";
const TICK_MS: u32 = 20;
const PATH = encode(":path");
/** llm-d's decode sidecar prefills where this names (set by the prefill pick, never by the client). */
const PREFILLER = encode(PREFILLER_HEADER);
const SIDECAR_HOSTS: ArrayBuffer[] = SIDECAR_HOST_HEADERS.map<ArrayBuffer>((h: string) => encode(h));
const CONTENT_LENGTH = encode("content-length");
const STATUS = encode(":status");
const COOKIE = encode("cookie");
/** Where a rewritten content-length is formatted (at most 20 digits). */
const DIGITS = memory.data(24);
/** The key a rewritten model is found under in a response body (llm-d-router's rewriteModelName). */
const MODEL_KEY = encode('"model":');
/** Envoy's stream properties: the host the request went to last (after retries), and why the response is what it is. */
const UPSTREAM_ADDRESS = encode("upstream\0address");
const CODE_DETAILS = encode("response\0code_details");
const VIA_UPSTREAM = encode("via_upstream");
/** Prompt bytes a request may hold at most. */
const PROMPT_CAP_MAX: i32 = 1 << 20;
/** Flow control's request headers (llm-d-router's names first, then GIE's), stripped before the upstream. */
const FAIRNESS_HEADERS: ArrayBuffer[] = [
  encode("x-llm-d-inference-fairness-id"),
  encode("x-gateway-inference-fairness-id"),
];
const SLO_TTFT_HEADERS: ArrayBuffer[] = [encode("x-llm-d-slo-ttft-ms"), encode("x-slo-ttft-ms")];
/** Prompt tokens per body byte as llm-d-router estimates them without a tokenizer (4 characters a token). */
const BYTES_PER_TOKEN: f64 = 4.0;
/** llm-d-router's header naming why flow control turned a request away. */
export const DROPPED_REASON_HEADER = "x-llm-d-request-dropped-reason";
/** Dispatches one tick or one stream's end may make at most (the rest go on the next). */
const MAX_DISPATCH_BURST: i32 = 256;
/** decide()'s outcomes. */
const GO: i32 = 0;
const REPLIED: i32 = 1;
const HELD: i32 = 2;

export class PickerRoot extends RootContext {
  cfg: PluginConfig = new PluginConfig();
  pool: Pool = new Pool();
  metrics: Metrics = new Metrics();
  decision: Decision = new Decision();
  /** The prefill pick's decision (P/D): its own candidates and per-snapshot state, apart from the decode pick's. */
  prefillDecision: Decision = new Decision();
  scratch: RequestScratch = new RequestScratch();
  watchdog: BodyWatchdog = new BodyWatchdog();
  /** Set in onConfigure (the VM's identity draws from shared data). */
  exchange: VmExchange | null = null;
  destKey: ArrayBuffer = new ArrayBuffer(0);
  fallbackKey: ArrayBuffer = new ArrayBuffer(0);
  servedKey: ArrayBuffer = new ArrayBuffer(0);
  objectiveKeys: ArrayBuffer[] = [];
  outliers: OutlierDetector = new OutlierDetector(new PluginConfig(), this.metrics);
  private fetcher: Fetcher | null = null;
  reporter: GatewayReporter | null = null;
  /** Prefix affinity: this VM's index of what was sent where (fed by this VM's picks and the others' journals). */
  prefixIndex: PrefixIndex | null = null;
  /** Flow control: this VM's queues, and the streams waiting in them by context id. */
  flow: FlowControl = new FlowControl(defineMetric, incrementMetric, recordMetric);
  held: Map<u32, PickerStream> = new Map();
  /** Session affinity: this VM's session -> endpoint bindings, shared with the other VMs on the tick. */
  sessions: SessionTable = new SessionTable();
  private sessionExchange: SessionExchange = new SessionExchange();
  /** The pool's saturation over what the endpoints hold now (running capacities learnt from the gauges). */
  private saturationEstimate: SaturationEstimate = new SaturationEstimate();
  private saturationGauge: u32 = 0;
  /** The snapshot whose flow-control section the queues were last configured from. */
  private flowSnapshot: Snapshot | null = null;
  private expiredScratch: Waiter[] = [];
  private dispatching: bool = false;

  onConfigure(configuration_size: u32): bool {
    const raw = getBuffer(BufferTypeValues.PluginConfiguration, 0, configuration_size);
    const parsed = parseConfig(raw == null ? "" : String.UTF8.decode(raw));
    if (parsed.config == null) {
      logError(parsed.error);
      return false;
    }
    this.cfg = parsed.config!;
    this.destKey = encode(this.cfg.destinationHeader);
    this.fallbackKey = encode(this.cfg.fallbackHeader);
    this.servedKey = encode(this.cfg.servedHeader);
    this.objectiveKeys = this.cfg.objectiveHeaders.map<ArrayBuffer>((h: string) => encode(h));
    this.outliers = new OutlierDetector(this.cfg, this.metrics);
    seedRandom(nowNs(), this.context_id);
    const exchange = new VmExchange();
    this.exchange = exchange;
    seedRandom(nowNs(), exchange.vm); // VMs started at the same instant still draw different numbers
    this.metrics.define();
    this.fetcher = this.cfg.fetchSnapshots ? new Fetcher(this.cfg, exchange.vm, this.pool, this.metrics) : null;
    this.reporter = this.cfg.shareWithGateways ? new GatewayReporter(this.cfg, exchange.vm, this.metrics) : null;
    setTickPeriod(TICK_MS);
    return true;
  }

  onTick(): void {
    const now = nowNs() / 1000000;
    this.pool.refresh();
    const exchange = this.exchange;
    if (exchange != null) {
      exchange.shareInFlight(this.pool, now);
      const snap = this.pool.snapshot;
      const reporter = this.reporter;
      exchange.sharePrefixes(
        this.pool,
        snap != null && snap.profile.prefixWeight > 0 ? this.indexFor(snap) : null,
        reporter != null && reporter.leader ? reporter : null,
      );
      if (reporter != null) reporter.tick(now, this.flow.enabled ? this.flow : null);
      if (snap != null && snap.profile.session != null)
        this.sessionExchange.share(this.sessions, this.pool, exchange.vm);
    }
    const f = this.fetcher;
    if (f != null) f.tick(now);
    this.watchdog.watch(now);
    this.serviceFlow(now);
    this.outliers.refresh(this.pool.snapshot, now);
    if (this.pool.snapshot != null) {
      this.metrics.record(this.metrics.snapshotAgeMs, now > this.pool.contactMs ? now - this.pool.contactMs : 0);
      this.metrics.record(this.metrics.endpoints, <u64>this.pool.snapshot!.count);
      this.metrics.record(this.metrics.degraded, <u64>this.pool.snapshot!.degraded);
    }
  }

  onHttpCallResponse(token: u32, headers: u32, body_size: u32, _trailers: u32): void {
    const now = nowNs() / 1000000;
    const f = this.fetcher;
    if (f != null && f.onResponse(token, headers, body_size, now)) return;
    const r = this.reporter;
    if (r != null) r.onResponse(token, headers, body_size, now);
  }

  /** The VM is going away: its journal is emptied, so the other VMs stop copying it. */
  onDone(): bool {
    const exchange = this.exchange;
    if (exchange != null) exchange.leave();
    return super.onDone();
  }

  /** The prefix index sized for the snapshot's profile and pool (rebuilt when that size changes twofold). */
  indexFor(snap: Snapshot): PrefixIndex {
    const want = indexCapacity(snap.profile.prefixLruPerEndpoint, snap.count);
    let index = this.prefixIndex;
    if (index == null || want > index.capacity * 2 || want * 2 < index.capacity) {
      index = new PrefixIndex(want);
      this.prefixIndex = index;
    }
    return index;
  }

  /**
   * Flow control's housekeeping: follows the snapshot's configuration, answers the requests whose TTL ran
   * out, and dispatches what the pool has room for.
   */
  serviceFlow(now: u64): void {
    const snap = this.pool.snapshot;
    this.followFlowConfig();
    if (this.flow.enabled && snap != null) {
      // llm-d-router exports its pool saturation; ours, in thousandths (Envoy's gauges are integers).
      if (this.saturationGauge == 0)
        this.saturationGauge = defineMetric(1, "endpoint_picker.flow_control.pool_saturation_permille");
      recordMetric(this.saturationGauge, <u64>min(max(this.saturation(snap) * 1000.0, 0.0), 1e9));
    }
    if (this.flow.count == 0) return;
    if (!this.flow.enabled) {
      // The configuration dropped flow control: whatever waits goes now.
      this.dispatchWaiting(now, true);
      return;
    }
    const expired = this.expiredScratch;
    expired.length = 0;
    this.flow.expired(now, snap == null || this.usableCount(snap) == 0, expired);
    for (let k = 0; k < expired.length; k++) {
      const w = unchecked(expired[k]);
      this.flow.remove(w);
      if (!this.held.has(w.contextId)) continue;
      const stream = this.held.get(w.contextId);
      this.held.delete(w.contextId);
      setEffectiveContext(w.contextId);
      stream.rejectExpired(this.flow.poolEmpty);
    }
    this.dispatchWaiting(now, false);
  }

  /** Configures the queues from the current snapshot's flow-control section, when the snapshot changed. */
  followFlowConfig(): void {
    const snap = this.pool.snapshot;
    if (snap === this.flowSnapshot) return;
    this.flowSnapshot = snap;
    const cfg = snap != null ? snap.flow : null;
    if (cfg != null) this.flow.configure(cfg, this.knownPriorities(snap!));
    else if (this.flow.enabled) this.flow.disable();
  }

  /**
   * Endpoints the decision could use (the pool is empty when there are none). The same rule as
   * usableEndpoints for emptiness: an unreachable endpoint is used only when no other is left, so it counts.
   */
  usableCount(snap: Snapshot): i32 {
    let n = 0;
    for (let i = 0; i < snap.count; i++) if ((unchecked(snap.flags[i]) & FLAG_UNUSABLE) == 0) n++;
    return n;
  }

  /** Every priority a request can have under this snapshot and configuration. */
  private knownPriorities(snap: Snapshot): i32[] {
    const out: i32[] = [];
    for (let k = 0; k < snap.objectivePriority.length; k++) out.push(unchecked(snap.objectivePriority[k]));
    for (let k = 0; k < this.cfg.objectivePriorities.length; k++) out.push(unchecked(this.cfg.objectivePriorities[k]));
    return out;
  }

  /** The pool's saturation now (llm-d-router's utilization detector over the proxy's view). */
  saturation(snap: Snapshot): f64 {
    return this.saturationEstimate.pool(
      snap,
      this.pool.inflight,
      snap.profile.saturationQueue,
      snap.profile.saturationKv,
    );
  }

  /**
   * Dispatches waiting requests while the pool is below its usage limit (all of them with `all`), highest
   * band first; each is then decided as if it had just arrived.
   */
  dispatchWaiting(now: u64, all: bool): void {
    if (this.dispatching) return; // a dispatch's own local reply or end must not recurse
    this.dispatching = true;
    for (let n = 0; n < MAX_DISPATCH_BURST && this.flow.count > 0; n++) {
      this.pool.refresh();
      const snap = this.pool.snapshot;
      if (!all) {
        if (snap == null || this.pool.isStale(now, <u64>this.cfg.stalenessLimitMs)) break;
        const cfg = snap.flow;
        if (cfg == null || this.usableCount(snap) == 0) break;
      }
      // Each band goes while the pool is below its ceiling (static: one usage limit; holdback: per band).
      const w = all ? this.flow.takeNext(now) : this.flow.takeNext(now, this.saturation(snap!));
      if (w == null) break;
      if (!this.held.has(w.contextId)) continue;
      const stream = this.held.get(w.contextId);
      this.held.delete(w.contextId);
      incrementMetric(this.flow.dispatched, 1);
      this.flow.recordWait(w, w.priority, now > w.enqueuedMs ? now - w.enqueuedMs : 0);
      setEffectiveContext(w.contextId);
      stream.dispatchHeld();
    }
    this.dispatching = false;
  }

  createContext(context_id: u32): Context {
    return new PickerStream(context_id, this);
  }
}

/** Prompt bytes worth keeping: what the prefix profile hashes, within maxBodyBytes and 1 MiB. */
function promptCap(snap: Snapshot | null, maxBodyBytes: u32): i32 {
  const want: i64 = snap == null ? 64 * 256 : <i64>snap.profile.prefixBlockChars * <i64>snap.profile.prefixMaxBlocks;
  return <i32>min(want, min(<i64>maxBodyBytes, <i64>PROMPT_CAP_MAX));
}

/** Writes `v` (>= 0) in decimal at DIGITS; returns the digit count. */
function formatDecimal(v: i64): i32 {
  let n = 0;
  let x = v;
  do {
    n++;
    x /= 10;
  } while (x > 0);
  x = v;
  for (let i = n - 1; i >= 0; i--) {
    store<u8>(DIGITS + <usize>i, <u8>(0x30 + <i32>(x % 10)));
    x /= 10;
  }
  return n;
}

/**
 * The length of the match of `"model":"<name>"` or `"model": "<name>"` (`name`: `nameLen` bytes at
 * `namePtr`) at `ptr`, within `avail` bytes: the whole pattern's length when it is there, 0 when it is not,
 * and -1 when the bytes end while they still agree with it (the pattern may continue in the next chunk).
 */
function modelPatternAt(ptr: usize, avail: i32, namePtr: usize, nameLen: i32): i32 {
  const key = changetype<usize>(MODEL_KEY);
  const keyLen = MODEL_KEY.byteLength;
  let i = 0;
  for (; i < keyLen; i++) {
    if (i >= avail) return -1;
    if (load<u8>(ptr + <usize>i) != load<u8>(key + <usize>i)) return 0;
  }
  if (i >= avail) return -1;
  if (load<u8>(ptr + <usize>i) == 0x20) i++; // llm-d-router also matches one space after the colon
  if (i >= avail) return -1;
  if (load<u8>(ptr + <usize>i) != 0x22) return 0;
  i++;
  for (let k = 0; k < nameLen; k++, i++) {
    if (i >= avail) return -1;
    if (load<u8>(ptr + <usize>i) != load<u8>(namePtr + <usize>k)) return 0;
  }
  if (i >= avail) return -1;
  return load<u8>(ptr + <usize>i) == 0x22 ? i + 1 : 0;
}

/** `n` bytes of ASCII digits at `ptr` as a number (-1 if anything else or over 2^31). */
function parseDecimal(ptr: usize, n: i32): i64 {
  if (n <= 0 || n > 10) return -1;
  let v: i64 = 0;
  for (let i = 0; i < n; i++) {
    const c = <i32>load<u8>(ptr + <usize>i) - 0x30;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v > 0x7fffffff ? -1 : v;
}

export class PickerStream extends Context {
  private scanner: BodyScanner | null = null;
  private kind: i32 = PROMPT_ANY;
  private sheddable: bool = false;
  private decided: bool = false;
  /** The endpoint picked: its address hash (in-flight release), and its snapshot and index (the served header). */
  private picked: bool = false;
  private pickedHash: u32 = 0;
  private pickedSnapshot: Snapshot | null = null;
  private pickedIndex: i32 = 0;
  /** The LoRA adapter (model hash) of the request, when it names one the pool knows; 0 otherwise. */
  private pickedAdapter: u32 = 0;
  /** P/D: the prefill pick's address hash while it counts in flight (until the response starts); else 0. */
  private prefillHash: u32 = 0;
  /** The request's content-length (-1: none, e.g. a chunked body), fixed when its model is rewritten. */
  private contentLength: i64 = -1;
  /** The request body's size as flow control counts it (queue bytes, attained service); 0 without flow control. */
  private serviceBytes: f64 = 0;
  /** The decision runs in the body callback: the only callback whose body bytes the filter can rewrite. */
  private inBodyCallback: bool = false;
  /** The model rewrite target drawn for this request (its index in the snapshot's target columns), -1: none. */
  private rewriteTarget: i32 = -1;
  /** The client's model when the filter rewrote it: response bodies name it again instead of the target. */
  private clientModel: StaticArray<u8> | null = null;
  private clientModelLen: i32 = 0;
  /** Position in the root's list of streams held for their body (-1: not held). */
  heldIndex: i32 = -1;
  heldAtMs: u64 = 0;
  /** The request's priority (its InferenceObjective's; 0 by default) and flow-control identity. */
  private priority: i32 = 0;
  private flowHash: u32 = 0;
  private flowName: string = DEFAULT_FLOW;
  private sloDeadlineMs: u64 = u64.MAX_VALUE;
  /** Waiting in the flow-control queues (the stream is paused until dispatched or rejected). */
  private waiter: Waiter | null = null;
  /** Being decided after waiting: flow control does not hold it again. */
  private dispatched: bool = false;
  /** The snapshot whose rewrite target `rewriteTarget` indexes (a held request's may be older than the pick's). */
  private rewriteSnapshot: Snapshot | null = null;
  /** Session affinity: the endpoint the request's token names (address hash, 0: none) and its session id's hash. */
  private sessionToken: u32 = 0;
  private sessionKey: u64 = 0;

  constructor(
    context_id: u32,
    public root: PickerRoot,
  ) {
    super(context_id, root);
  }

  onRequestHeaders(_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root;
    // A client must never choose the upstream: drop whatever it sent before anything else.
    removeHeader(HeaderMapTypeValues.RequestHeaders, root.destKey);
    removeHeader(HeaderMapTypeValues.RequestHeaders, root.fallbackKey);
    // Nor the hosts llm-d's decode sidecar would call: the prefiller, encoders, a KV source.
    for (let k = 0; k < SIDECAR_HOSTS.length; k++)
      removeHeader(HeaderMapTypeValues.RequestHeaders, unchecked(SIDECAR_HOSTS[k]));
    const pathLen = readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, PATH);
    if (pathLen > 0) this.kind = promptKindForPath(scratch, pathLen);
    root.pool.refresh(); // once per request here: the objectives and the prompt cap read the snapshot
    this.priority = this.objectivePriority();
    this.sheddable = this.priority < 0;
    const snap0 = root.pool.snapshot;
    if (snap0 != null && snap0.flow != null) this.readFlowHeaders();
    if (snap0 != null && snap0.profile.session != null) this.readSessionHeaders(snap0.profile.session!);
    const watchdog = root.watchdog;
    if (
      end_of_stream ||
      root.cfg.maxBodyBytes == 0 ||
      (watchdog.headersOnly && !watchdog.probeDue(nowNs() / 1000000))
    ) {
      return this.decide() == GO ? FilterHeadersStatusValues.Continue : FilterHeadersStatusValues.StopIteration;
    }
    watchdog.hold(this, nowNs() / 1000000);
    const cap = promptCap(root.pool.snapshot, root.cfg.maxBodyBytes);
    // Reserve the prompt copy from content-length, so it is allocated once, but never more than a small
    // amount before the bytes arrive: the header is the client's word, not memory it has sent.
    const expected = parseDecimal(scratch, readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, CONTENT_LENGTH));
    this.contentLength = expected;
    this.scanner = root.scratch.takeScanner(
      this.kind,
      cap,
      expected > 0 ? <i32>min(expected, min(cap, PROMPT_RESERVE_MAX)) : 256,
    );
    return FilterHeadersStatusValues.StopIteration; // decided in the body callback, which may still set headers
  }

  /**
   * The priority of the request's InferenceObjective (the first objective header present): the plugin
   * configuration's objectivePriorities first, then the snapshot's InferenceObjectives; 0 otherwise. A
   * negative priority makes the request sheddable. Headers are read only when some priority is known.
   */
  private objectivePriority(): i32 {
    const root = this.root;
    const snap = root.pool.snapshot;
    const known = root.cfg.objectiveNames.length > 0 || (snap != null && snap.objectiveHash.length > 0);
    if (!known) return 0;
    for (let k = 0; k < root.objectiveKeys.length; k++) {
      const n = readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, unchecked(root.objectiveKeys[k]));
      if (n < 0) continue;
      const fromSnapshot = snap != null && n > 0 ? snap.priorityOf(fnv1a32(scratch, n), 0) : 0;
      if (root.cfg.objectiveNames.length == 0) return fromSnapshot;
      return root.cfg.priorityFor(String.UTF8.decodeUnsafe(scratch, <usize>max(n, 0)), fromSnapshot);
    }
    return 0;
  }

  /**
   * Flow control's request headers: the fairness id (llm-d-router's, then GIE's; the default flow without
   * one) and the TTFT deadline in ms (for slo-deadline ordering). Both are removed before the upstream.
   */
  private readFlowHeaders(): void {
    for (let k = 0; k < FAIRNESS_HEADERS.length; k++) {
      const key = unchecked(FAIRNESS_HEADERS[k]);
      const n = readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, key);
      if (n > 0 && this.flowHash == 0) {
        const len = min(n, 256);
        this.flowHash = fnv1a32(scratch, len) | 1; // never 0, the default flow's
        this.flowName = String.UTF8.decodeUnsafe(scratch, <usize>len);
      }
      if (n >= 0) removeHeader(HeaderMapTypeValues.RequestHeaders, key);
    }
    if (this.flowHash == 0) this.agentFlow();
    for (let k = 0; k < SLO_TTFT_HEADERS.length; k++) {
      const key = unchecked(SLO_TTFT_HEADERS[k]);
      const n = readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, key);
      if (n > 0 && this.sloDeadlineMs == u64.MAX_VALUE) {
        const ms = parseDecimal(scratch, n);
        if (ms >= 0) this.sloDeadlineMs = nowNs() / 1000000 + <u64>ms;
      }
      if (n >= 0) removeHeader(HeaderMapTypeValues.RequestHeaders, key);
    }
  }

  /** llm-d-router's agent-identity: an agent's session header is the fairness id when none was given. */
  private agentFlow(): void {
    const snap = this.root.pool.snapshot;
    if (snap == null) return;
    const keys = snap.profile.agentHeaders;
    for (let k = 0; k < keys.length; k++) {
      const n = readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, unchecked(keys[k]));
      if (n <= 0) continue;
      const len = min(n, 256);
      this.flowHash = fnv1a32(scratch, len) | 1;
      this.flowName = String.UTF8.decodeUnsafe(scratch, <usize>len);
      return;
    }
  }

  /**
   * Session affinity's keys (session-affinity-scorer): the token naming an endpoint, and the session id from
   * the first of the session headers present, else the cookie. Ids over 256 bytes are no key.
   */
  private readSessionHeaders(keys: SessionKeys): void {
    if (keys.tokenHeader.byteLength > 0) {
      const n = readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, keys.tokenHeader);
      if (n > 0) this.sessionToken = decodeToken(scratch, n);
    }
    for (let k = 0; k < keys.headers.length; k++) {
      const n = readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, unchecked(keys.headers[k]));
      if (n > 0 && n <= MAX_SESSION_ID_BYTES) {
        this.sessionKey = sessionHash(scratch, n);
        return;
      }
    }
    if (keys.cookie.byteLength == 0) return;
    const n = readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, COOKIE);
    if (n <= 0) return;
    const at = cookieValue(scratch, n, keys.cookie);
    if (at < 0 || <i32>at > MAX_SESSION_ID_BYTES) return;
    this.sessionKey = sessionHash(scratch + <usize>(at >> 32), <i32>at);
  }

  onRequestBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    if (this.heldIndex >= 0) {
      this.root.watchdog.release(this);
      this.root.watchdog.bodyArrived();
    }
    if (this.waiter != null) return FilterDataStatusValues.StopIterationAndBuffer; // waiting: Envoy keeps the body
    if (this.decided) return FilterDataStatusValues.Continue;
    const scanner = this.scanner!;
    const limit = <i32>min(<u64>body_buffer_length, <u64>this.root.cfg.maxBodyBytes);
    while (limit > scanner.consumed && !scanner.settled) {
      const n = readBufferToScratch(
        BufferTypeValues.HttpRequestBody,
        <u32>scanner.consumed,
        <u32>(limit - scanner.consumed),
      );
      if (n <= 0) break;
      scanner.feed(scratch, n);
    }
    // The body's end within the scanned bytes with its JSON still open: truncated, picked by load alone.
    if (end_of_stream && <u64>scanner.consumed >= <u64>body_buffer_length) scanner.bodyEnded();
    if (!scanner.settled && !end_of_stream && limit < <i32>this.root.cfg.maxBodyBytes) {
      return FilterDataStatusValues.StopIterationAndBuffer;
    }
    this.inBodyCallback = true; // every body byte read so far is in Envoy's buffer: a model rewrite can be written
    const outcome = this.decide();
    this.inBodyCallback = false;
    if (outcome == GO) return FilterDataStatusValues.Continue;
    return outcome == HELD
      ? FilterDataStatusValues.StopIterationAndBuffer
      : FilterDataStatusValues.StopIterationNoBuffer;
  }

  /** The watchdog's decision for a held stream whose body never came; resumes the stream. */
  decideWithoutBody(): void {
    if (this.decided) return;
    if (this.decide() == GO) continueRequest();
  }

  onRequestTrailers(_trailers: u32): FilterTrailersStatusValues {
    if (this.waiter != null) return FilterTrailersStatusValues.StopIteration;
    if (this.decided) return FilterTrailersStatusValues.Continue;
    return this.decide() == GO ? FilterTrailersStatusValues.Continue : FilterTrailersStatusValues.StopIteration;
  }

  /** Flow control let the waiting request go: decide it now and resume the stream. */
  dispatchHeld(): void {
    this.waiter = null;
    this.dispatched = true;
    if (this.decide() == GO) continueRequest();
  }

  /**
   * The request waited past its TTL: 429 `rejected-ttl-expired`, or while the pool has no endpoints (its
   * noEndpointRequestTTL) 503 `rejected-no-endpoints`, as llm-d-router answers.
   */
  rejectExpired(poolEmpty: bool): void {
    this.waiter = null;
    this.releaseScanner();
    const flow = this.root.flow;
    if (poolEmpty) {
      incrementMetric(flow.rejectedNoEndpoints, 1);
      localReply(
        503,
        "endpoint_picker_no_endpoint",
        "inference error: ServiceUnavailable - no endpoints available: request evicted from queue: no endpoints\n",
        DROPPED_REASON_HEADER,
        "rejected-no-endpoints",
      );
    } else {
      incrementMetric(flow.rejectedTtl, 1);
      localReply(
        429,
        "endpoint_picker_ttl_expired",
        "inference error: ResourceExhausted - request timed out in queue: request evicted from queue: request TTL expired\n",
        DROPPED_REASON_HEADER,
        "rejected-ttl-expired",
      );
    }
  }

  onResponseHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    // P/D: the decode pod answers only once its sidecar's prefill call returned: the prefill pod is done.
    if (this.prefillHash != 0) {
      this.root.pool.inflight.finished(this.prefillHash);
      this.prefillHash = 0;
    }
    const snap = this.pickedSnapshot;
    if (snap == null) return FilterHeadersStatusValues.Continue;
    if (this.root.outliers.enabled) this.observeOutcome(snap);
    const key = this.root.servedKey;
    if (key.byteLength > 0) {
      const i = this.pickedIndex;
      replaceHeader(HeaderMapTypeValues.ResponseHeaders, key, snap.base + <usize>snap.addrOff[i], snap.addrLen[i]);
    }
    // Session affinity's token names the endpoint picked, so the client's next request finds it on any gateway.
    const session = snap.profile.session;
    if (session != null && session.tokenHeader.byteLength > 0) {
      const n = writeToken(snap.addrHash[this.pickedIndex], scratch);
      replaceHeader(HeaderMapTypeValues.ResponseHeaders, session.tokenHeader, scratch, n);
    }
    // The body will name the client's model instead of the target: a length that changes cannot be announced.
    if (this.clientModel != null && this.clientModelLen != this.rewriteSnapshot!.rwTargetLen[this.rewriteTarget])
      removeHeader(HeaderMapTypeValues.ResponseHeaders, CONTENT_LENGTH);
    return FilterHeadersStatusValues.Continue;
  }

  onResponseBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    if (this.clientModel == null || body_buffer_length == 0) return FilterDataStatusValues.Continue;
    return this.modelBackInResponse(<i32>body_buffer_length, end_of_stream);
  }

  /**
   * llm-d-router's response rewrite: every `"model":"<target>"` (or `"model": "<target>"`) of a rewritten
   * request's response body names the client's model again. A chunk that ends where such a pattern may
   * begin is held (buffered) until the next one, so a pattern split between chunks is rewritten too.
   */
  private modelBackInResponse(size: i32, end: bool): FilterDataStatusValues {
    const snap = this.rewriteSnapshot!;
    const t = this.rewriteTarget;
    const to = changetype<usize>(this.clientModel!);
    const toLen = this.clientModelLen;
    const fromPtr = snap.base + <usize>snap.rwTargetOff[t];
    const fromLen = snap.rwTargetLen[t];
    let copy: ArrayBuffer | null = null; // a GC copy, only for a buffer larger than the scratch area
    let ptr = scratch;
    if (size <= SCRATCH_BYTES) {
      if (readBufferToScratch(BufferTypeValues.HttpResponseBody, 0, <u32>size) != size)
        return FilterDataStatusValues.Continue;
    } else {
      copy = getBuffer(BufferTypeValues.HttpResponseBody, 0, <u32>size);
      if (copy == null || copy.byteLength != size) return FilterDataStatusValues.Continue;
      ptr = changetype<usize>(copy);
    }
    let found = 0;
    for (let i = 0; i < size; i++) {
      if (load<u8>(ptr + <usize>i) != 0x22) continue;
      const m = modelPatternAt(ptr + <usize>i, size - i, fromPtr, fromLen);
      if (m < 0 && !end) return FilterDataStatusValues.StopIterationAndBuffer; // may continue in the next chunk
      if (m > 0) {
        found++;
        i += m - 1;
      }
    }
    if (found == 0) return FilterDataStatusValues.Continue;
    const outLen = size + found * (toLen - fromLen);
    const out = this.root.scratch.outBuffer(outLen);
    const o = changetype<usize>(out);
    let w = 0,
      from = 0;
    for (let i = 0; i < size; i++) {
      if (load<u8>(ptr + <usize>i) != 0x22) continue;
      const m = modelPatternAt(ptr + <usize>i, size - i, fromPtr, fromLen);
      if (m <= 0) continue;
      const nameAt = i + m - 1 - fromLen; // the target's first byte (the pattern ends with its closing quote)
      memory.copy(o + <usize>w, ptr + <usize>from, <usize>(nameAt - from));
      w += nameAt - from;
      memory.copy(o + <usize>w, to, <usize>toLen);
      w += toLen;
      from = i + m - 1; // the closing quote follows
      i += m - 1;
    }
    memory.copy(o + <usize>w, ptr + <usize>from, <usize>(size - from));
    w += size - from;
    replaceBufferPrefix(BufferTypeValues.HttpResponseBody, <u32>size, o, w);
    return FilterDataStatusValues.Continue;
  }

  /**
   * How the picked request ended, for the outlier detector. Envoy's `upstream.address` names the host of the
   * last attempt: another host than the pick means the pick was never reached (its connection failed or
   * reset and a retry moved on), a gateway failure of the pick. The answering host's status then counts for
   * it: a 5xx is a failure, a gateway failure when 502/503/504 or not from the upstream at all (the router's
   * own reply: connection failure, reset before the response, timeout); anything else a success.
   */
  private observeOutcome(snap: Snapshot): void {
    const root = this.root;
    const now = nowNs() / 1000000;
    const outliers = root.outliers;
    let answered = this.pickedHash;
    const upLen = readPropertyToScratch(UPSTREAM_ADDRESS);
    if (upLen > 0) {
      const h = fnv1a32(scratch, upLen);
      if (h != answered) {
        outliers.failure(answered, true, snap, now);
        answered = h;
      }
    }
    const status = parseDecimal(scratch, readHeaderToScratch(HeaderMapTypeValues.ResponseHeaders, STATUS));
    if (status < 500) {
      if (status >= 100) outliers.success(answered, snap, now);
      return;
    }
    let gateway = status == 502 || status == 503 || status == 504;
    if (!gateway) {
      const n = readPropertyToScratch(CODE_DETAILS);
      gateway =
        n >= 0 && !(n == VIA_UPSTREAM.byteLength && memory.compare(scratch, changetype<usize>(VIA_UPSTREAM), n) == 0);
    }
    outliers.failure(answered, gateway, snap, now);
  }

  onDelete(): void {
    const root = this.root;
    root.watchdog.release(this);
    const w = this.waiter;
    if (w != null) {
      // The client went while waiting: out of the queue at once.
      root.flow.remove(w);
      root.held.delete(this.context_id);
      incrementMetric(root.flow.cancelled, 1);
      this.waiter = null;
    }
    this.releaseScanner();
    let freed = false;
    if (this.picked) {
      root.pool.inflight.finished(this.pickedHash);
      root.pool.inflight.adapters.finished(this.pickedHash, this.pickedAdapter);
      if (this.prefillHash != 0) root.pool.inflight.finished(this.prefillHash);
      this.prefillHash = 0;
      this.picked = false;
      this.pickedSnapshot = null;
      freed = true;
    }
    this.rewriteSnapshot = null;
    const client = this.clientModel;
    if (client != null) {
      root.scratch.giveBackModelCopy(client);
      this.clientModel = null;
    }
    // A request ended: room for a waiting one, now rather than at the next tick.
    if (freed && root.flow.count > 0) root.dispatchWaiting(nowNs() / 1000000, false);
  }

  private releaseScanner(): void {
    const s = this.scanner;
    if (s != null) {
      this.root.scratch.giveBack(s);
      this.scanner = null;
    }
  }

  /**
   * Makes the decision: GO to let the request continue, REPLIED when a local reply was sent, HELD when it
   * waits in the flow-control queues (its scanner kept for the decision at dispatch).
   */
  private decide(): i32 {
    this.root.watchdog.release(this); // decided (e.g. in the trailers callback): the watchdog has nothing left to do
    const result = this.decideOnce();
    if (result != HELD) this.releaseScanner();
    return result;
  }

  private decideOnce(): i32 {
    this.decided = true;
    const root = this.root;
    const cfg = root.cfg;
    const started = nowNs();
    const now = started / 1000000;
    const pool = root.pool;
    pool.refresh();
    if (pool.isStale(now, <u64>cfg.stalenessLimitMs)) {
      if (cfg.failureMode == FAIL_OPEN) {
        root.metrics.count(root.metrics.failOpen);
        return GO;
      }
      root.metrics.count(root.metrics.failClose);
      localReply(
        503,
        "endpoint_picker_no_fresh_snapshot",
        pool.snapshot == null
          ? "endpoint picker: no snapshot of the pool yet\n"
          : "endpoint picker: the pool snapshot is stale\n",
      );
      return REPLIED;
    }
    const snap = pool.snapshot!;
    const facts = root.scratch.facts;
    facts.nowMs = now;
    this.collectFacts(facts);
    const flow = snap.flow;
    if (flow != null) {
      facts.sheddable = false; // flow control queues what shedding would turn away
      const s = this.scanner;
      this.serviceBytes = this.contentLength > 0 ? <f64>this.contentLength : s != null ? <f64>s.consumed : 0.0;
      if (!this.dispatched) {
        const admission = this.admitOrHold(snap, now);
        if (admission != GO) return admission;
      }
      // program-aware fairness: the flow's attained service, charged as the request leaves (prompt tokens
      // estimated from the body's bytes; the filter does not read the response's usage).
      if (this.serviceBytes > 0) root.flow.charge(this.flowHash, this.serviceBytes / BYTES_PER_TOKEN, 0, now);
    }

    const outcome = root.decision.decide(snap, snap.profile, pool.inflight, facts, root.outliers.ejected);
    root.metrics.outcome(outcome);
    if (outcome == OUTCOME_SHED) {
      localReply(
        429,
        "endpoint_picker_saturated",
        "endpoint picker: every endpoint is saturated and the request is sheddable\n",
      );
      return REPLIED;
    }
    if (outcome == OUTCOME_DENIED) {
      localReply(
        429,
        "endpoint_picker_admission_denied",
        "endpoint picker: request cannot be admitted: probabilistic-admitter: rejected under saturation\n",
      );
      return REPLIED;
    }
    if (outcome != OUTCOME_PICKED) {
      if (flow != null)
        localReply(
          503,
          "endpoint_picker_no_endpoint",
          "inference error: ServiceUnavailable - no endpoints available\n",
          DROPPED_REASON_HEADER,
          "rejected-no-endpoints",
        );
      else localReply(503, "endpoint_picker_no_endpoint", "endpoint picker: no endpoint can serve the request\n");
      return REPLIED;
    }
    const i = root.decision.primary;
    replaceHeader(
      HeaderMapTypeValues.RequestHeaders,
      root.destKey,
      snap.base + <usize>snap.addrOff[i],
      snap.addrLen[i],
    );
    const fallbacks = root.decision.fallbacks;
    if (fallbacks.length > 0) {
      let list = "";
      for (let k = 0; k < fallbacks.length; k++) list += (k > 0 ? "," : "") + snap.address(fallbacks[k]);
      const v = String.UTF8.encode(list);
      replaceHeader(HeaderMapTypeValues.RequestHeaders, root.fallbackKey, changetype<usize>(v), v.byteLength);
    }
    this.picked = true;
    this.pickedHash = snap.addrHash[i];
    this.pickedSnapshot = snap; // kept alive by this stream until it ends
    this.pickedIndex = i;
    // The session follows its pick: the pod that served it last holds its conversation's cache.
    if (this.sessionKey != 0 && snap.profile.session != null)
      root.sessions.bind(this.sessionKey, snap.addrHash[i], now);
    if (this.rewriteTarget >= 0 && this.clientModel == null) this.rewriteModel(snap);
    pool.inflight.started(i);
    if (facts.modelLen > 0 && snap.namesAdapter(facts.modelHash)) {
      this.pickedAdapter = facts.modelHash;
      pool.inflight.adapters.started(i, facts.modelHash);
    }
    root.metrics.pick(snap, i);
    if (facts.chainBlocks > 0) {
      if (facts.matched[i] > 0) root.metrics.count(root.metrics.prefixHits);
      this.remember(i);
    }
    if (snap.pd != null) this.disaggregate(snap, i, facts);
    const ended = nowNs();
    if (ended >= started) root.metrics.record(root.metrics.decisionUs, (ended - started) / 1000);
    return GO;
  }

  /**
   * Flow control's admission: GO when the pool has endpoints, is below its usage limit and nothing of this
   * band or a higher one waits; else the request waits (HELD), unless a queue limit turns it away (429
   * `rejected-saturated`, or 503 `rejected-no-endpoints` while the pool is empty: REPLIED). A model rewrite
   * drawn for it is written now, while the body callback can still change the body.
   */
  private admitOrHold(snap: Snapshot, now: u64): i32 {
    const root = this.root;
    root.followFlowConfig();
    const empty = root.usableCount(snap) == 0;
    if (
      !empty &&
      !root.flow.mustWait(this.priority, this.flowHash, now) &&
      root.flow.admitsBelow(root.saturation(snap), this.priority, this.flowHash, now)
    )
      return GO;
    const w = new Waiter(this.context_id, this.priority, this.flowHash, this.flowName, this.sloDeadlineMs);
    w.bytes = this.serviceBytes;
    if (root.flow.admit(w, now) != ADMITTED) {
      if (empty) {
        incrementMetric(root.flow.rejectedNoEndpoints, 1);
        localReply(
          503,
          "endpoint_picker_no_endpoint",
          "inference error: ServiceUnavailable - no endpoints available: request rejected pre-queue: queue at capacity\n",
          DROPPED_REASON_HEADER,
          "rejected-no-endpoints",
        );
      } else {
        incrementMetric(root.flow.rejectedSaturated, 1);
        localReply(
          429,
          "endpoint_picker_queue_full",
          "inference error: ResourceExhausted - request rejected pre-queue: queue at capacity\n",
          DROPPED_REASON_HEADER,
          "rejected-saturated",
        );
      }
      return REPLIED;
    }
    if (this.rewriteTarget >= 0 && this.clientModel == null) this.rewriteModel(snap);
    this.waiter = w;
    root.held.set(this.context_id, this);
    return HELD;
  }

  /** Model, prompt chain and, per endpoint, the prefix blocks it already holds. */
  private collectFacts(facts: RequestFacts): void {
    const root = this.root;
    const snap = root.pool.snapshot!;
    const s = this.scanner;
    facts.sheddable = this.sheddable;
    facts.negativePriority = this.sheddable; // priority below 0 (flow control clears sheddable, not this)
    facts.adapters = root.pool.inflight.adapters;
    const session = snap.profile.session;
    facts.sessionToken = session != null ? this.sessionToken : 0;
    facts.sessionBound =
      session != null && this.sessionKey != 0 ? root.sessions.lookup(this.sessionKey, facts.nowMs, session.ttlMs) : 0;
    facts.chainBlocks = 0;
    facts.modelLen = 0;
    // Rewritten while it waited: the decision at dispatch sees the target, as the first look did.
    const rewritten = this.clientModel != null;
    if (!rewritten) this.rewriteTarget = -1;
    if (s == null) return;
    if (s.state == SCAN_NEED_MORE) s.finish();
    const modelPtr = changetype<usize>(s.model);
    facts.modelPtr = modelPtr;
    if (s.hasModel) {
      facts.modelLen = s.modelLen;
      facts.modelHash = fnv1a32(modelPtr, s.modelLen);
      // A rewritten model is what the decision sees (LoRA affinity, prefix chains), as in llm-d-router.
      if (rewritten) {
        const rs = this.rewriteSnapshot!;
        const t = this.rewriteTarget;
        facts.modelPtr = rs.base + <usize>rs.rwTargetOff[t];
        facts.modelLen = rs.rwTargetLen[t];
        facts.modelHash = rs.rwTargetHash[t];
      } else if (snap.rewriteCount > 0 && this.inBodyCallback && s.modelStart > 0) this.drawRewrite(snap, facts);
    }
    const p = snap.profile;
    if (p.prefixWeight <= 0 || !s.promptSeen || s.promptLen == 0) return;
    const chain = root.scratch.chain;
    chain.compute(
      modelSeed(facts.modelPtr, facts.modelLen),
      changetype<usize>(s.prompt),
      s.promptLen,
      p.prefixBlockChars,
      p.prefixMaxBlocks,
    );
    if (chain.count == 0) return;
    if (facts.matched.length != snap.count) {
      facts.matched = new StaticArray<i32>(snap.count);
      facts.matchedCurrent = new StaticArray<i32>(snap.count);
    } else {
      memory.fill(changetype<usize>(facts.matched), 0, <usize>(snap.count << 2));
      memory.fill(changetype<usize>(facts.matchedCurrent), 0, <usize>(snap.count << 2));
    }
    root.indexFor(snap).lookup(chain, snap, facts.matched, facts.matchedCurrent);
    facts.chainBlocks = chain.count;
  }

  /** The snapshot's first rewrite rule for the request's model, and a target drawn by weight: the facts name it. */
  private drawRewrite(snap: Snapshot, facts: RequestFacts): void {
    const r = snap.rewriteRuleFor(facts.modelHash, facts.modelPtr, facts.modelLen);
    if (r < 0) return;
    const t = snap.drawRewriteTarget(r);
    if (t < 0) return;
    const ptr = snap.base + <usize>snap.rwTargetOff[t];
    const len = snap.rwTargetLen[t];
    if (len == facts.modelLen && memory.compare(ptr, facts.modelPtr, <usize>len) == 0) return; // drawn the same model
    this.rewriteTarget = t;
    facts.modelPtr = ptr;
    facts.modelLen = len;
    facts.modelHash = snap.rwTargetHash[t];
  }

  /**
   * Writes the drawn target over the model string in Envoy's body buffer and fixes content-length. Envoy
   * replaces only a buffer's first bytes (Buffer::copyFrom at start 0), so everything before the model's
   * closing quote is written again: the body's bytes before the model, then the target. The body callback
   * runs before the request continues, so the bytes are in Envoy's buffer and the headers still held.
   */
  private rewriteModel(snap: Snapshot): void {
    const s = this.scanner!;
    const t = this.rewriteTarget;
    const start = s.modelStart;
    const oldLen = s.modelLen;
    const tPtr = snap.base + <usize>snap.rwTargetOff[t];
    const tLen = snap.rwTargetLen[t];
    const n = start + tLen;
    let written = false;
    if (n <= SCRATCH_BYTES) {
      if (readBufferToScratch(BufferTypeValues.HttpRequestBody, 0, <u32>start) == start) {
        memory.copy(scratch + <usize>start, tPtr, <usize>tLen);
        written = replaceBufferPrefix(BufferTypeValues.HttpRequestBody, <u32>(start + oldLen), scratch, n) == 0;
      }
    } else {
      // The model comes after 16 KiB of the body (e.g. after the messages): a GC copy of what precedes it.
      const before = getBuffer(BufferTypeValues.HttpRequestBody, 0, <u32>start);
      if (before != null && before.byteLength == start) {
        const out = this.root.scratch.outBuffer(n);
        memory.copy(changetype<usize>(out), changetype<usize>(before), <usize>start);
        memory.copy(changetype<usize>(out) + <usize>start, tPtr, <usize>tLen);
        written =
          replaceBufferPrefix(BufferTypeValues.HttpRequestBody, <u32>(start + oldLen), changetype<usize>(out), n) == 0;
      }
    }
    if (!written) {
      this.rewriteTarget = -1; // the body keeps the client's model (the decision used the target)
      return;
    }
    if (this.contentLength >= 0) {
      const digits = formatDecimal(max<i64>(0, this.contentLength + <i64>(tLen - oldLen)));
      replaceHeader(HeaderMapTypeValues.RequestHeaders, CONTENT_LENGTH, DIGITS, digits);
    }
    const client = this.root.scratch.takeModelCopy();
    memory.copy(changetype<usize>(client), changetype<usize>(s.model), <usize>oldLen);
    this.clientModel = client;
    this.rewriteSnapshot = snap;
    this.clientModelLen = oldLen;
    this.root.metrics.count(this.root.metrics.modelRewrites);
  }

  /**
   * P/D, after the decode pick `decode`: when the decider wants a prefill pod, picks one under the prefill
   * profile and names it to the decode pod's sidecar. The prompt's size is the scanned prompt when it was
   * read whole, else the body's content-length (the prompt copy stops at the prefix profile's cap); the
   * cached part is the prefix blocks the decode pod matched.
   */
  private disaggregate(snap: Snapshot, decode: i32, facts: RequestFacts): void {
    const root = this.root;
    const pd = snap.pd!;
    const s = this.scanner;
    let promptBytes: i64 = 0;
    if (s != null && s.promptSeen) {
      promptBytes = <i64>s.promptLen;
      if (!s.promptComplete && this.contentLength > promptBytes) promptBytes = this.contentLength;
    }
    // llm-d-router's decider never disaggregates without the decode pod's prefix-match information.
    if (pd.decider == DECIDER_PREFIX && snap.profile.prefixBlockChars == 0) return;
    let cachedBytes: i64 = 0;
    const blockChars = <i64>snap.profile.prefixBlockChars;
    if (facts.chainBlocks > 0 && facts.matched.length == snap.count) {
      const matched = <i64>facts.matched[decode];
      cachedBytes = matched * blockChars;
      // Every block of the prompt cached: llm-d-router pads the prompt to whole tokens before cutting blocks,
      // so a last partial block that padding completes is cached too (a repeat is never prefilled again).
      if (matched == <i64>facts.chainBlocks && pd.bytesPerToken > 0 && promptBytes < (matched + 1) * blockChars) {
        const bpt = pd.bytesPerToken;
        const tokens = (promptBytes + bpt - 1) / bpt;
        const blockTokens = blockChars / bpt;
        if (blockTokens > 0) cachedBytes = (tokens / blockTokens) * blockTokens * bpt;
      }
    }
    if (!wantsPrefill(pd, promptBytes, cachedBytes)) return;
    const pool = root.pool;
    const k = pickPrefill(root.prefillDecision, snap, pd, pool.inflight, facts, root.outliers.ejected);
    if (k < 0) return; // no prefill pod, or all saturated: the decode pod prefills itself
    replaceHeader(HeaderMapTypeValues.RequestHeaders, PREFILLER, snap.base + <usize>snap.addrOff[k], snap.addrLen[k]);
    // Counted in flight until the response starts (the decode pod answers after the prefill call), and
    // recorded in the prefix index: the prefill pod computed the prompt's KV as well (llm-d-router records both).
    this.prefillHash = snap.addrHash[k];
    pool.inflight.started(k);
    if (facts.chainBlocks > 0 && k != decode) this.remember(k);
  }

  /** Records that endpoint `i` was sent this request's prefix: in this VM's index and its journal. */
  private remember(i: i32): void {
    const root = this.root;
    const snap = root.pool.snapshot!;
    const ep = snap.addrHash[i];
    const scratch = root.scratch;
    root.indexFor(snap).record(scratch.chain, ep, scratch.facts.matchedCurrent[i]);
    root.exchange!.journal.note(scratch.chain, ep);
    const reporter = root.reporter;
    if (reporter != null) reporter.noteChain(scratch.chain, ep);
  }
}
