// Root and HTTP contexts of the endpoint picker: the root context (one per worker VM) configures, ticks,
// fetches snapshots and keeps the shared tables; the HTTP context makes the per-request decision.
import {
  RootContext, Context, FilterHeadersStatusValues, FilterDataStatusValues, FilterTrailersStatusValues,
  HeaderMapTypeValues, BufferTypeValues, WasmResultValues,
} from "@solo-io/proxy-runtime/assembly";
import { PluginConfig, parseConfig, FAIL_OPEN } from "./config";
import { Pool, INFLIGHT_KEY, VM_COUNTER_KEY } from "./pool";
import { Fetcher } from "./fetcher";
import { Metrics } from "./metrics";
import { Scorer, RequestFacts, OUTCOME_PICKED, OUTCOME_SHED } from "./scoring";
import { Snapshot } from "./snapshot";
import { BodyScanner, promptKindForPath, PROMPT_ANY, SCAN_NEED_MORE } from "./body";
import { PrefixChain, PrefixIndex, modelSeed, indexCapacity } from "./prefix";
import { JournalWriter, JournalReader } from "./journal";
import { seedRandom, nextU64 } from "./rng";
import { fnv1a32 } from "./hash";
import {
  nowNs, getShared, setShared, lastCas, getHeader, removeHeader, replaceHeader, getBuffer,
  localReply, setTickPeriod, encode, logAt, setEffectiveContext, continueRequest,
  scratch, readHeaderToScratch, readBufferToScratch,
} from "./host";

export const ROOT_ID = "endpoint-picker";
const TICK_MS: u32 = 20;
/** In-flight counts are republished at least this often even when unchanged (a heartbeat for the others). */
const PUBLISH_EVERY_MS: u64 = 500;
/**
 * A request held in the headers callback whose body has not reached the filter after this long is decided
 * without its body. If no held request of this VM ever saw its body, Envoy is running without
 * allow_on_headers_stop_iteration (the body is held back until the filter continues): the VM then decides
 * in the headers callback from then on instead of holding every request this long.
 */
const BODY_WATCHDOG_MS: u64 = 500;
/** How many such streams it takes (one slow client is not a misconfigured Envoy). */
const BODILESS_HOLDS_TO_SWITCH: i32 = 3;
/**
 * While deciding in the headers callback, one request this often is still held as a probe: slow uploads,
 * not the host, may have caused the switch, and a probe whose body arrives switches the VM back.
 */
const HEADERS_ONLY_PROBE_MS: u64 = 10000;
const LOG_WARN = 3;
const PATH = encode(":path");
const OBJECTIVE = encode("x-gateway-inference-objective");
const CONTENT_LENGTH = encode("content-length");
/** Prompt bytes a request may hold at most, and reserve before its body arrives. */
const PROMPT_CAP_MAX: i32 = 1 << 20;
const PROMPT_RESERVE_MAX: i32 = 16384;
const LOG_ERROR = 4;

export class PickerRoot extends RootContext {
  cfg: PluginConfig = new PluginConfig();
  pool: Pool = new Pool();
  metrics: Metrics = new Metrics();
  scorer: Scorer = new Scorer();
  facts: RequestFacts = new RequestFacts();
  chain: PrefixChain = new PrefixChain();
  /** This VM's identity in the lease and the in-flight table (random, never 0). */
  vm: u32 = 0;
  destKey: ArrayBuffer = new ArrayBuffer(0);
  fallbackKey: ArrayBuffer = new ArrayBuffer(0);
  servedKey: ArrayBuffer = new ArrayBuffer(0);
  private fetcher: Fetcher | null = null;
  /** Streams held in their headers callback, waiting for their first body callback. */
  held: PickerStream[] = [];
  /** A held stream has received a body callback: the host delivers bodies to paused filters. */
  bodiesArrive: bool = false;
  /** Learnt: the host never delivers the body while headers are held, so decide in the headers callback. */
  headersOnly: bool = false;
  /** Held streams the watchdog had to decide while no held stream of this VM ever got its body. */
  private bodilessHolds: i32 = 0;
  /** Proxy-clock ms of the last probe held while deciding in the headers callback. */
  lastProbeMs: u64 = 0;
  private lastPublishMs: u64 = 0;
  /** Prefix affinity: this VM's index, and the journals that share it with the other VMs. */
  prefixIndex: PrefixIndex | null = null;
  journal: JournalWriter = new JournalWriter();
  private journals: JournalReader = new JournalReader();
  private journalKey: ArrayBuffer = new ArrayBuffer(0);
  /** Other VMs' journal keys and the CAS of the journal last applied (unchanged journals are skipped). */
  private otherJournalKeys: Map<u32, ArrayBuffer> = new Map();
  private otherJournalCas: Map<u32, u32> = new Map();

  onConfigure(configuration_size: u32): bool {
    const raw = getBuffer(BufferTypeValues.PluginConfiguration, 0, configuration_size);
    const parsed = parseConfig(raw == null ? "" : String.UTF8.decode(raw));
    if (parsed.config == null) {
      logAt(LOG_ERROR, "endpoint-picker: " + parsed.error);
      return false;
    }
    this.cfg = parsed.config!;
    this.destKey = encode(this.cfg.destinationHeader);
    this.fallbackKey = encode(this.cfg.fallbackHeader);
    this.servedKey = encode(this.cfg.servedHeader);
    seedRandom(nowNs(), this.context_id);
    this.vm = allocateVmId();
    this.journalKey = journalKey(this.vm);
    seedRandom(nowNs(), this.vm); // VMs started at the same instant still draw different numbers
    this.metrics.define();
    this.fetcher = this.cfg.fetchSnapshots ? new Fetcher(this.cfg, this.vm, this.pool, this.metrics) : null;
    setTickPeriod(TICK_MS);
    return true;
  }

  onTick(): void {
    const now = nowNs() / 1000000;
    this.pool.refresh();
    this.shareInFlight(now);
    this.sharePrefixes();
    const f = this.fetcher;
    if (f != null) f.tick(now);
    this.watchHeld(now);
    if (this.pool.snapshot != null) {
      this.metrics.record(this.metrics.snapshotAgeMs, now > this.pool.contactMs ? now - this.pool.contactMs : 0);
      this.metrics.record(this.metrics.endpoints, <u64>this.pool.snapshot!.count);
    }
  }

  /** Publishes this VM's in-flight counts and reads the other VMs' (one shared key, CAS). */
  private shareInFlight(now: u64): void {
    const table = getShared(INFLIGHT_KEY);
    const cas = lastCas;
    const inflight = this.pool.inflight;
    inflight.readOthers(table, this.vm, now);
    if (!inflight.changed && now - this.lastPublishMs < PUBLISH_EVERY_MS) return;
    if (setShared(INFLIGHT_KEY, inflight.publish(table, this.vm, now), table == null ? 0 : cas) == WasmResultValues.Ok && table != null) {
      this.lastPublishMs = now;
    } else {
      // Another VM wrote first, or the key was absent (cas 0 sets unconditionally, so a VM writing at the
      // same moment may have replaced our section): publish again next tick, with a real CAS.
      inflight.changed = true;
    }
  }

  /** Decides held streams whose body never came (see BODY_WATCHDOG_MS). */
  private watchHeld(now: u64): void {
    for (let k = this.held.length - 1; k >= 0; k--) {
      if (k >= this.held.length) continue; // deciding may release several
      const s = unchecked(this.held[k]);
      if (now <= s.heldAtMs || now - s.heldAtMs < BODY_WATCHDOG_MS) continue;
      if (!this.bodiesArrive && ++this.bodilessHolds >= BODILESS_HOLDS_TO_SWITCH && !this.headersOnly) {
        this.headersOnly = true;
        this.lastProbeMs = now;
        logAt(LOG_WARN, "endpoint-picker: request bodies do not reach the filter while it holds the headers; " +
          "set allow_on_headers_stop_iteration: true (Envoy >= 1.36) to pick by model and prompt. Picking by load only.");
      }
      this.release(s);
      setEffectiveContext(s.context_id);
      s.decideWithoutBody();
    }
  }

  /** A held stream got its body: the host delivers bodies to paused filters (again, after a switch). */
  bodyArrived(): void {
    this.bodiesArrive = true;
    this.bodilessHolds = 0;
    if (this.headersOnly) {
      this.headersOnly = false;
      logAt(LOG_WARN, "endpoint-picker: request bodies reach the filter while it holds the headers again; picking by model and prompt.");
    }
  }

  /** In headers-only mode: whether this request should be held anyway, as the probe of its period. */
  probeDue(nowMs: u64): bool {
    if (nowMs < this.lastProbeMs || nowMs - this.lastProbeMs < HEADERS_ONLY_PROBE_MS) return false;
    this.lastProbeMs = nowMs;
    return true;
  }

  hold(s: PickerStream, nowMs: u64): void {
    s.heldAtMs = nowMs;
    s.heldIndex = this.held.length;
    this.held.push(s);
  }

  /** Stops watching a stream (its body came, it was decided, or it ended): swap-remove, O(1). */
  release(s: PickerStream): void {
    const i = s.heldIndex;
    if (i < 0) return;
    const last = this.held.pop();
    if (last !== s) {
      unchecked(this.held[i] = last);
      last.heldIndex = i;
    }
    s.heldIndex = -1;
  }

  onHttpCallResponse(token: u32, headers: u32, body_size: u32, _trailers: u32): void {
    const f = this.fetcher;
    if (f != null) f.onResponse(token, headers, body_size, nowNs() / 1000000);
  }

  private scanners: BodyScanner[] = [];

  /** A body scanner from this VM's pool (their buffers are reused: a request allocates none). */
  takeScanner(kind: i32, cap: i32, expected: i32): BodyScanner {
    if (this.scanners.length == 0) return new BodyScanner(kind, cap, expected);
    const s = this.scanners.pop();
    s.reset(kind, cap, expected);
    return s;
  }

  /** Returns a scanner to the pool (a few, with small buffers: a rare huge prompt does not stay resident). */
  giveBack(s: BodyScanner): void { if (this.scanners.length < 64 && s.prompt.length <= PROMPT_RESERVE_MAX) this.scanners.push(s); }

  /** Publishes the chains this VM sent since its last tick; applies the other VMs' new ones. */
  private sharePrefixes(): void {
    const mine = this.journal.publish();
    if (mine != null) setShared(this.journalKey, mine);
    const snap = this.pool.snapshot;
    if (snap == null || snap.profile.prefixWeight <= 0) return;
    const index = this.indexFor(snap);
    const others = this.pool.inflight.otherVms;
    for (let k = 0; k < others.length; k++) {
      const vm = unchecked(others[k]);
      let key: ArrayBuffer;
      if (this.otherJournalKeys.has(vm)) key = this.otherJournalKeys.get(vm);
      else { key = journalKey(vm); this.otherJournalKeys.set(vm, key); }
      const j = getShared(key);
      if (j == null) continue;
      if (this.otherJournalCas.has(vm) && this.otherJournalCas.get(vm) == lastCas) continue; // nothing new
      this.otherJournalCas.set(vm, lastCas);
      this.journals.apply(vm, j, index);
    }
  }

  /** The VM is going away: its journal is emptied, so readers stop copying it. */
  onDone(): bool {
    setShared(this.journalKey, new ArrayBuffer(0));
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

  createContext(context_id: u32): Context {
    return new PickerStream(context_id, this);
  }
}

/**
 * A worker VM's identity: a number from a shared counter (unique when VMs start one after another) in the
 * low bits, random bits above (unique when two VMs race for the same counter value on different threads).
 */
function allocateVmId(): u32 {
  let n: u32 = 0;
  for (let attempt = 0; attempt < 16; attempt++) {
    const v = getShared(VM_COUNTER_KEY);
    const cas = lastCas;
    n = v != null && v.byteLength == 4 ? load<u32>(changetype<usize>(v)) + 1 : 1;
    const next = new ArrayBuffer(4);
    store<u32>(changetype<usize>(next), n);
    if (setShared(VM_COUNTER_KEY, next, v == null ? 0 : cas) == WasmResultValues.Ok) break;
  }
  const id = (<u32>(nextU64() >> 32) & 0xffff0000) | (n & 0xffff);
  return id == 0 ? 1 : id;
}

/** Prompt bytes worth keeping: what the prefix profile hashes, within maxBodyBytes and 1 MiB. */
function promptCap(snap: Snapshot | null, maxBodyBytes: u32): i32 {
  const want: i64 = snap == null ? 64 * 256 : <i64>snap.profile.prefixBlockChars * <i64>snap.profile.prefixMaxBlocks;
  return <i32>min(want, min(<i64>maxBodyBytes, <i64>PROMPT_CAP_MAX));
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

function journalKey(vm: u32): ArrayBuffer { return encode("endpoint-picker.prefix." + vm.toString()); }

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
  /** Position in the root's list of streams held for their body (-1: not held). */
  heldIndex: i32 = -1;
  heldAtMs: u64 = 0;

  constructor(context_id: u32, public root: PickerRoot) {
    super(context_id, root);
  }

  onRequestHeaders(_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root;
    // A client must never choose the upstream: drop whatever it sent before anything else.
    removeHeader(HeaderMapTypeValues.RequestHeaders, root.destKey);
    removeHeader(HeaderMapTypeValues.RequestHeaders, root.fallbackKey);
    const pathLen = readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, PATH);
    if (pathLen > 0) this.kind = promptKindForPath(scratch, pathLen);
    if (root.cfg.objectiveNames.length > 0) {
      const objective = getHeader(HeaderMapTypeValues.RequestHeaders, OBJECTIVE);
      if (objective != null) this.sheddable = root.cfg.priorityOf(String.UTF8.decode(objective)) < 0;
    }
    if (end_of_stream || root.cfg.maxBodyBytes == 0 || (root.headersOnly && !root.probeDue(nowNs() / 1000000))) {
      return this.decide() ? FilterHeadersStatusValues.Continue : FilterHeadersStatusValues.StopIteration;
    }
    root.hold(this, nowNs() / 1000000);
    root.pool.refresh();
    const cap = promptCap(root.pool.snapshot, root.cfg.maxBodyBytes);
    // Reserve the prompt copy from content-length, so it is allocated once, but never more than a small
    // amount before the bytes arrive: the header is the client's word, not memory it has sent.
    const expected = parseDecimal(scratch, readHeaderToScratch(HeaderMapTypeValues.RequestHeaders, CONTENT_LENGTH));
    this.scanner = root.takeScanner(this.kind, cap, expected > 0 ? <i32>min(expected, min(cap, PROMPT_RESERVE_MAX)) : 256);
    return FilterHeadersStatusValues.StopIteration; // decided in the body callback, which may still set headers
  }

  onRequestBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    if (this.heldIndex >= 0) { this.root.release(this); this.root.bodyArrived(); }
    if (this.decided) return FilterDataStatusValues.Continue;
    const scanner = this.scanner!;
    const limit = <i32>min(<u64>body_buffer_length, <u64>this.root.cfg.maxBodyBytes);
    while (limit > scanner.consumed && !scanner.settled) {
      const n = readBufferToScratch(BufferTypeValues.HttpRequestBody, <u32>scanner.consumed, <u32>(limit - scanner.consumed));
      if (n <= 0) break;
      scanner.feed(scratch, n);
    }
    if (!scanner.settled && !end_of_stream && limit < <i32>this.root.cfg.maxBodyBytes) {
      return FilterDataStatusValues.StopIterationAndBuffer;
    }
    return this.decide() ? FilterDataStatusValues.Continue : FilterDataStatusValues.StopIterationNoBuffer;
  }

  /** The watchdog's decision for a held stream whose body never came; resumes the stream. */
  decideWithoutBody(): void {
    if (this.decided) return;
    if (this.decide()) continueRequest();
  }

  onRequestTrailers(_trailers: u32): FilterTrailersStatusValues {
    if (this.decided) return FilterTrailersStatusValues.Continue;
    return this.decide() ? FilterTrailersStatusValues.Continue : FilterTrailersStatusValues.StopIteration;
  }

  onResponseHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const key = this.root.servedKey;
    const snap = this.pickedSnapshot;
    if (snap != null && key.byteLength > 0) {
      const i = this.pickedIndex;
      replaceHeader(HeaderMapTypeValues.ResponseHeaders, key, snap.base + <usize>snap.addrOff[i], snap.addrLen[i]);
    }
    return FilterHeadersStatusValues.Continue;
  }

  onDelete(): void {
    this.root.release(this);
    const s = this.scanner;
    if (s != null) { this.root.giveBack(s); this.scanner = null; }
    if (this.picked) {
      this.root.pool.inflight.finished(this.pickedHash);
      this.root.pool.inflight.adapters.finished(this.pickedHash, this.pickedAdapter);
      this.picked = false;
      this.pickedSnapshot = null;
    }
  }

  /** Makes the decision; true to let the request continue, false when a local reply was sent. */
  private decide(): bool {
    this.root.release(this); // decided (e.g. in the trailers callback): the watchdog has nothing left to do
    const result = this.decideOnce();
    const s = this.scanner;
    if (s != null) { this.root.giveBack(s); this.scanner = null; }
    return result;
  }

  private decideOnce(): bool {
    this.decided = true;
    const root = this.root;
    const cfg = root.cfg;
    const started = nowNs();
    const now = started / 1000000;
    const pool = root.pool;
    pool.refresh();
    if (pool.isStale(now, <u64>cfg.stalenessLimitMs)) {
      if (cfg.failureMode == FAIL_OPEN) { root.metrics.count(root.metrics.failOpen); return true; }
      root.metrics.count(root.metrics.failClose);
      localReply(503, "endpoint_picker_no_fresh_snapshot", pool.snapshot == null ?
        "endpoint picker: no snapshot of the pool yet\n" : "endpoint picker: the pool snapshot is stale\n");
      return false;
    }
    const snap = pool.snapshot!;
    const facts = root.facts;
    facts.nowMs = now;
    this.collectFacts(facts);

    const outcome = root.scorer.decide(snap, pool.inflight, facts);
    root.metrics.outcome(outcome);
    if (outcome == OUTCOME_SHED) {
      localReply(429, "endpoint_picker_saturated", "endpoint picker: every endpoint is saturated and the request is sheddable\n");
      return false;
    }
    if (outcome != OUTCOME_PICKED) {
      localReply(503, "endpoint_picker_no_endpoint", "endpoint picker: no endpoint can serve the request\n");
      return false;
    }
    const i = root.scorer.primary;
    replaceHeader(HeaderMapTypeValues.RequestHeaders, root.destKey, snap.base + <usize>snap.addrOff[i], snap.addrLen[i]);
    const fallbacks = root.scorer.fallbacks;
    if (fallbacks.length > 0) {
      let list = "";
      for (let k = 0; k < fallbacks.length; k++) list += (k > 0 ? "," : "") + snap.address(fallbacks[k]);
      const v = String.UTF8.encode(list);
      replaceHeader(HeaderMapTypeValues.RequestHeaders, root.fallbackKey, changetype<usize>(v), v.byteLength);
    }
    this.picked = true;
    this.pickedHash = snap.addrHash[i];
    this.pickedSnapshot = snap; // kept alive by this stream until its response headers
    this.pickedIndex = i;
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
    const ended = nowNs();
    if (ended >= started) root.metrics.record(root.metrics.decisionUs, (ended - started) / 1000);
    return true;
  }

  /** Model, prompt chain and, per endpoint, the prefix blocks it already holds. */
  private collectFacts(facts: RequestFacts): void {
    const root = this.root;
    const snap = root.pool.snapshot!;
    const s = this.scanner;
    facts.sheddable = this.sheddable;
    facts.adapters = root.pool.inflight.adapters;
    facts.chainBlocks = 0;
    facts.modelLen = 0;
    if (s == null) return;
    if (s.state == SCAN_NEED_MORE) s.finish();
    const modelPtr = changetype<usize>(s.model);
    if (s.hasModel) {
      facts.modelPtr = modelPtr;
      facts.modelLen = s.modelLen;
      facts.modelHash = fnv1a32(modelPtr, s.modelLen);
    }
    const p = snap.profile;
    if (p.prefixWeight <= 0 || !s.promptSeen || s.promptLen == 0) return;
    const chain = root.chain;
    chain.compute(modelSeed(modelPtr, facts.modelLen), changetype<usize>(s.prompt), s.promptLen, p.prefixBlockChars, p.prefixMaxBlocks);
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

  /** Records that endpoint `i` was sent this request's prefix: in this VM's index and its journal. */
  private remember(i: i32): void {
    const root = this.root;
    const snap = root.pool.snapshot!;
    const ep = snap.addrHash[i];
    root.indexFor(snap).record(root.chain, ep, root.facts.matchedCurrent[i]);
    root.journal.note(root.chain, ep);
  }
}
