// Root and HTTP contexts of the endpoint picker: the root context (one per worker VM) configures, ticks,
// fetches snapshots and keeps the shared tables; the HTTP context makes the per-request decision.
import {
  RootContext, Context, FilterHeadersStatusValues, FilterDataStatusValues, FilterTrailersStatusValues,
  HeaderMapTypeValues, BufferTypeValues, WasmResultValues,
} from "@solo-io/proxy-runtime/assembly";
import { PluginConfig, parseConfig, FAIL_OPEN } from "./config";
import { Pool, INFLIGHT_KEY } from "./pool";
import { Fetcher } from "./fetcher";
import { Metrics } from "./metrics";
import { Scorer, RequestFacts, OUTCOME_PICKED, OUTCOME_SHED } from "./scoring";
import { BodyScanner, promptKindForPath, PROMPT_ANY, SCAN_NEED_MORE } from "./body";
import { PrefixChain, PREFIX_BUCKETS, modelSeed, lookupBucket, insertIntoBucket, bucketBudget } from "./prefix";
import { seedRandom, nextU64 } from "./rng";
import { fnv1a32 } from "./hash";
import {
  nowNs, getShared, setShared, lastCas, getHeader, removeHeader, replaceHeader, addHeader, getBuffer,
  localReply, setTickPeriod, encode, logAt,
} from "./host";

export const ROOT_ID = "endpoint-picker";
const TICK_MS: u32 = 100;
/** In-flight counts are republished at least this often even when unchanged (a heartbeat for the others). */
const PUBLISH_EVERY_MS: u64 = 500;
const PATH = encode(":path");
const OBJECTIVE = encode("x-gateway-inference-objective");
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
  private lastPublishMs: u64 = 0;
  private bucketKeys: Array<ArrayBuffer | null> = new Array<ArrayBuffer | null>(PREFIX_BUCKETS);

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
    while (this.vm == 0) this.vm = <u32>(nextU64() >> 32);
    this.metrics.define();
    this.fetcher = this.cfg.fetchSnapshots ? new Fetcher(this.cfg, this.vm, this.pool, this.metrics) : null;
    setTickPeriod(TICK_MS);
    return true;
  }

  onTick(): void {
    const now = nowNs() / 1000000;
    this.pool.refresh();
    this.shareInFlight(now);
    const f = this.fetcher;
    if (f != null) f.tick(now);
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
    if (setShared(INFLIGHT_KEY, inflight.publish(table, this.vm, now), table == null ? 0 : cas) == WasmResultValues.Ok) {
      this.lastPublishMs = now;
    } else {
      inflight.changed = true; // another VM wrote first: publish again next tick
    }
  }

  onHttpCallResponse(token: u32, headers: u32, body_size: u32, _trailers: u32): void {
    const f = this.fetcher;
    if (f != null) f.onResponse(token, headers, body_size, nowNs() / 1000000);
  }

  bucketKey(bucket: i32): ArrayBuffer {
    let k = this.bucketKeys[bucket];
    if (k == null) {
      k = encode("endpoint-picker.prefix." + bucket.toString());
      this.bucketKeys[bucket] = k;
    }
    return k;
  }

  createContext(context_id: u32): Context {
    return new PickerStream(context_id, this);
  }
}

class PickerStream extends Context {
  private scanner: BodyScanner | null = null;
  private kind: i32 = PROMPT_ANY;
  private sheddable: bool = false;
  private decided: bool = false;
  /** Address hash and text of the endpoint picked (for in-flight release and the served header). */
  private pickedHash: u32 = 0;
  private picked: bool = false;
  private pickedAddress: string = "";
  /** The prefix bucket as read for the decision, and its CAS, so recording the pick needs no second read. */
  private bucket: ArrayBuffer | null = null;
  private bucketCas: u32 = 0;

  constructor(context_id: u32, public root: PickerRoot) {
    super(context_id, root);
  }

  onRequestHeaders(_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const root = this.root;
    // A client must never choose the upstream: drop whatever it sent before anything else.
    removeHeader(HeaderMapTypeValues.RequestHeaders, root.destKey);
    removeHeader(HeaderMapTypeValues.RequestHeaders, root.fallbackKey);
    const path = getHeader(HeaderMapTypeValues.RequestHeaders, PATH);
    if (path != null) this.kind = promptKindForPath(changetype<usize>(path), path.byteLength);
    const objective = getHeader(HeaderMapTypeValues.RequestHeaders, OBJECTIVE);
    if (objective != null && root.cfg.objectiveNames.length > 0) {
      this.sheddable = root.cfg.priorityOf(String.UTF8.decode(objective)) < 0;
    }
    if (end_of_stream || root.cfg.maxBodyBytes == 0) {
      return this.decide() ? FilterHeadersStatusValues.Continue : FilterHeadersStatusValues.StopIteration;
    }
    const snap = root.pool.snapshot;
    const cap = snap == null ? 64 * 256 : snap.profile.prefixBlockChars * snap.profile.prefixMaxBlocks;
    this.scanner = new BodyScanner(this.kind, cap);
    return FilterHeadersStatusValues.StopIteration; // decided in the body callback, which may still set headers
  }

  onRequestBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    if (this.decided) return FilterDataStatusValues.Continue;
    const scanner = this.scanner!;
    const limit = <i32>min(<u64>body_buffer_length, <u64>this.root.cfg.maxBodyBytes);
    if (limit > scanner.consumed) {
      const bytes = getBuffer(BufferTypeValues.HttpRequestBody, <u32>scanner.consumed, <u32>(limit - scanner.consumed));
      if (bytes != null && bytes.byteLength > 0) scanner.feed(changetype<usize>(bytes), bytes.byteLength);
    }
    if (!scanner.settled && !end_of_stream && limit < <i32>this.root.cfg.maxBodyBytes) {
      return FilterDataStatusValues.StopIterationAndBuffer;
    }
    return this.decide() ? FilterDataStatusValues.Continue : FilterDataStatusValues.StopIterationNoBuffer;
  }

  onRequestTrailers(_trailers: u32): FilterTrailersStatusValues {
    if (this.decided) return FilterTrailersStatusValues.Continue;
    return this.decide() ? FilterTrailersStatusValues.Continue : FilterTrailersStatusValues.StopIteration;
  }

  onResponseHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const key = this.root.servedKey;
    if (this.picked && key.byteLength > 0) {
      const v = String.UTF8.encode(this.pickedAddress);
      addHeader(HeaderMapTypeValues.ResponseHeaders, key, changetype<usize>(v), v.byteLength);
    }
    return FilterHeadersStatusValues.Continue;
  }

  onDelete(): void {
    if (this.picked) {
      this.root.pool.inflight.finished(this.pickedHash);
      this.picked = false;
    }
  }

  /** Makes the decision; true to let the request continue, false when a local reply was sent. */
  private decide(): bool {
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
    this.pickedAddress = snap.address(i);
    pool.inflight.started(i);
    root.metrics.pick(this.pickedHash, this.pickedAddress);
    if (facts.chainBlocks > 0) {
      if (facts.matched[i] > 0) root.metrics.count(root.metrics.prefixHits);
      this.remember(i, now);
    }
    root.metrics.record(root.metrics.decisionUs, (nowNs() - started) / 1000);
    return true;
  }

  /** Model, prompt chain and, per endpoint, the prefix blocks it already holds. */
  private collectFacts(facts: RequestFacts): void {
    const root = this.root;
    const snap = root.pool.snapshot!;
    const s = this.scanner;
    facts.sheddable = this.sheddable;
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
    if (facts.matched.length != snap.count) facts.matched = new StaticArray<i32>(snap.count);
    else for (let k = 0; k < snap.count; k++) unchecked(facts.matched[k] = 0);
    const bucket = getShared(root.bucketKey(chain.bucket()));
    this.bucket = bucket;
    this.bucketCas = lastCas;
    if (bucket != null) lookupBucket(changetype<usize>(bucket), bucket.byteLength, chain, snap, facts.matched);
    facts.chainBlocks = chain.count;
  }

  /** Records in the shared prefix table that endpoint `i` now holds this request's prefix. */
  private remember(i: i32, nowMs: u64): void {
    const root = this.root;
    const snap = root.pool.snapshot!;
    const key = root.bucketKey(root.chain.bucket());
    const budget = bucketBudget(snap.profile.prefixLruPerEndpoint, snap.count);
    let old = this.bucket;
    let cas = this.bucketCas;
    this.bucket = null;
    for (let attempt = 0; attempt < 2; attempt++) { // one retry when another VM wrote the bucket meanwhile
      if (attempt > 0) { old = getShared(key); cas = lastCas; }
      const oldPtr: usize = old == null ? 0 : changetype<usize>(old);
      const oldLen = old == null ? 0 : old.byteLength;
      const next = insertIntoBucket(oldPtr, oldLen, root.chain, snap.addrHash[i], <u32>nowMs, budget, snap);
      if (next == null) return;
      if (setShared(key, next, old == null ? 0 : cas) != WasmResultValues.CasMismatch) return;
    }
  }
}
