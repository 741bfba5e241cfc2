// One simulated model server: vLLM V1's scheduler at iteration level, on any Clock.
//
// Each step (one forward pass): running requests first, each gets its next token (a decode) or its next
// prefill chunk, within the step's token budget (maxNumBatchedTokens, chunked prefill); then, if nothing was
// preempted, waiting requests in arrival order while the budget, max-num-seqs and free KV blocks allow. A
// new request first takes the longest run of its prompt's blocks from the prefix cache (at least one token
// is always computed). A running request that needs a block when none is free preempts the most recently
// scheduled running request (vLLM's recompute preemption: its blocks are released, it goes back to the
// head of the queue and recomputes, mostly from the prefix cache). Step time comes from latency.ts; tokens
// appear at the end of the step. Gauges are recorded with their time so /metrics can show them `lag` late.
import type { Clock } from "./clock";
import { BlockPool } from "./kv-cache";
import { stepMs } from "./latency";
import { LoraSlots } from "./lora";
import { type EngineKind, type EngineProfile, blockFamily } from "./profile";
import { Rng } from "./rng";
import type { TokenSequence } from "./text";

export type FinishReason = "length" | "stop" | "abort";

export interface EngineRequest {
  id: string;
  seq: TokenSequence;
  /** Tokens to generate (the sequence's answer holds at least this many). */
  maxTokens: number;
  /** Reported when maxTokens is reached: "length" when the client's max_tokens cut it, else "stop". */
  finishReason: "length" | "stop";
  adapter: string | null;
  /** The request's max_tokens parameter, if it had one (histograms only). */
  maxTokensParam: number | null;
  /**
   * P/D: the prompt's KV came from a prefill pod (vLLM's NIXL connector): on admission every prompt token
   * but the last counts as computed and the last one costs a decode token, not a prefill (a request that is
   * later preempted recomputes locally). Absent: an ordinary request.
   */
  remoteKv?: boolean;
  onFirstToken?(nowMs: number): void;
  /** Answer tokens [from, from + count) became available. */
  onTokens?(from: number, count: number, nowMs: number): void;
  onFinish(result: RequestResult): void;
}

export interface RequestResult {
  id: string;
  promptTokens: number;
  generationTokens: number;
  /** Prompt tokens served from the prefix cache when the request was first scheduled. */
  cachedTokens: number;
  finishReason: FinishReason;
  adapter: string | null;
  maxTokensParam: number | null;
  arrivalMs: number;
  firstScheduledMs: number;
  firstTokenMs: number;
  finishedMs: number;
  preemptions: number;
}

/** What the gauges of /metrics show; recorded with the simulated time it was true at. */
export interface GaugeState {
  t: number;
  waiting: number;
  running: number;
  kvUsage: number;
  usedBlocks: number;
  loraRunning: string[];
  loraWaiting: string[];
}

/** Receives per-iteration and per-request observations (the /metrics histograms). */
export interface EngineObserver {
  iteration(promptTokens: number, generationTokens: number, stepMs: number): void;
  finished(result: RequestResult): void;
}

export interface EngineCounters {
  requests: number;
  promptTokens: number;
  generationTokens: number;
  /** Prompt tokens looked up in the prefix cache, and those found (vLLM's prefix_cache_queries/hits). */
  prefixQueries: number;
  prefixHits: number;
  preemptions: number;
  iterations: number;
  finished: Record<FinishReason, number>;
}

class Seq {
  numComputed = 0;
  generated = 0;
  blocks: number[] = [];
  registered = 0;
  cachedTokens = -1;
  scheduled = 0;
  firstScheduled = -1;
  firstToken = -1;
  preemptions = 0;
  constructor(
    readonly req: EngineRequest,
    readonly arrival: number,
  ) {}
  get knownTokens(): number {
    return this.req.seq.promptTokens + this.generated;
  }
}

const EMPTY: string[] = [];

export class Engine {
  readonly blockSize: number;
  readonly pool: BlockPool;
  readonly lora: LoraSlots;
  readonly counters: EngineCounters = {
    requests: 0,
    promptTokens: 0,
    generationTokens: 0,
    prefixQueries: 0,
    prefixHits: 0,
    preemptions: 0,
    iterations: 0,
    finished: { length: 0, stop: 0, abort: 0 },
  };
  observer: EngineObserver | null = null;
  private readonly waiting: Seq[] = [];
  private readonly running: Seq[] = [];
  private readonly byId = new Map<string, Seq>();
  private readonly runningAdapters = new Map<string, number>();
  private stepping = false;
  private readonly rng: Rng;
  private readonly history: GaugeState[] = [];
  private readonly trackLora: boolean;

  constructor(
    readonly kind: EngineKind,
    readonly profile: EngineProfile,
    readonly clock: Clock,
    seed: string | number = kind,
  ) {
    this.blockSize = profile.kv.blockSize[blockFamily(kind)];
    this.pool = new BlockPool(Math.floor(profile.kv.cacheTokens / this.blockSize));
    this.lora = new LoraSlots(clock, profile.lora.maxLoras, profile.lora.loadDelayMs, () => this.kick());
    this.rng = new Rng(seed);
    this.trackLora = profile.lora.adapters.length > 0;
    this.record();
  }

  get numGpuBlocks(): number {
    return this.pool.numBlocks;
  }

  /** Enqueues a request arriving now. */
  submit(req: EngineRequest): void {
    if (this.byId.has(req.id)) throw new Error(`engine: duplicate request id ${req.id}`);
    const s = new Seq(req, this.clock.now());
    this.byId.set(req.id, s);
    this.waiting.push(s);
    this.counters.requests++;
    this.record();
    this.kick();
  }

  /** Drops a request (client went away): frees its blocks, reports finishReason "abort". */
  abort(id: string): void {
    const s = this.byId.get(id);
    if (!s) return;
    const w = this.waiting.indexOf(s);
    if (w >= 0) this.waiting.splice(w, 1);
    this.complete(s, "abort");
  }

  // ---- state, true and as the lagged gauges show it ----

  get numWaiting(): number {
    return this.waiting.length;
  }
  get numRunning(): number {
    return this.running.length;
  }
  get kvUsage(): number {
    return this.pool.usage;
  }

  /** The gauges as /metrics shows them at `nowMs` (default now): the state of metricsLagMs earlier. */
  gauges(nowMs = this.clock.now()): GaugeState {
    const t = nowMs - this.profile.metricsLagMs;
    const h = this.history;
    let lo = 0,
      hi = h.length - 1,
      found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (h[mid].t <= t) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0
      ? h[found]
      : { t, waiting: 0, running: 0, kvUsage: 0, usedBlocks: 0, loraRunning: EMPTY, loraWaiting: EMPTY };
  }

  /** Prompt tokens of `seq` the prefix cache would serve right now (no side effects; for the oracle). */
  probeCachedTokens(seq: TokenSequence): number {
    if (!this.profile.kv.enablePrefixCaching) return 0;
    const max = Math.floor((seq.promptTokens - 1) / this.blockSize);
    let k = 0;
    while (k < max && this.pool.lookup(seq.blockHash(this.blockSize, k)) !== undefined) k++;
    return k * this.blockSize;
  }

  /** Prompt tokens still to prefill for everything queued or partially prefilled (for the oracle). */
  backlogPrefillTokens(): number {
    let n = 0;
    for (const s of this.waiting) n += s.knownTokens - Math.max(0, s.numComputed);
    for (const s of this.running)
      if (s.generated === 0 || s.numComputed < s.knownTokens - 1) n += s.knownTokens - s.numComputed;
    return n;
  }

  /** Each running request's remaining decode tokens and the KV blocks it holds (for the oracle). */
  runningLoad(): { remaining: number; blocks: number }[] {
    return this.running.map((s) => ({ remaining: s.req.maxTokens - s.generated, blocks: s.blocks.length }));
  }

  isAdapterResident(adapter: string): boolean {
    return this.lora.isReady(adapter);
  }

  // ---- the scheduler ----

  private kick(): void {
    if (this.stepping || (this.waiting.length === 0 && this.running.length === 0)) return;
    this.stepping = true;
    this.clock.at(this.clock.now(), () => this.step());
  }

  private step(): void {
    let budget = this.profile.scheduler.maxNumBatchedTokens;
    const batch: Seq[] = [];
    let prefillTokens = 0;
    let decodes = 0;
    let preempted = false;

    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const s = this.running[i];
      const remaining = s.knownTokens - s.numComputed;
      const n = Math.min(remaining, budget);
      let victimWasSelf = false;
      while (!this.ensureBlocks(s, s.numComputed + n)) {
        const victim = this.running[this.running.length - 1];
        this.preempt(victim);
        preempted = true;
        if (victim === s) {
          victimWasSelf = true;
          break;
        }
      }
      if (victimWasSelf) break;
      s.scheduled = n;
      budget -= n;
      batch.push(s);
      if (s.generated >= 1 && remaining === 1) decodes++;
      else prefillTokens += n;
    }

    if (!preempted) {
      const skipped: Seq[] = [];
      while (this.waiting.length > 0 && budget > 0 && this.running.length < this.profile.scheduler.maxNumSeqs) {
        const s = this.waiting[0];
        if (!this.lora.acquire(s.req.adapter, (a) => (this.runningAdapters.get(a) ?? 0) > 0)) {
          skipped.push(this.waiting.shift()!);
          continue;
        }
        const hit = s.numComputed === 0 ? this.takePrefix(s) : 0;
        const remote = s.req.remoteKv === true && s.preemptions === 0 && s.generated === 0;
        if (remote) s.numComputed = Math.max(s.numComputed, s.req.seq.promptTokens - 1);
        const n = Math.min(s.knownTokens - s.numComputed, budget);
        if (!this.ensureBlocks(s, s.numComputed + n)) {
          // Not enough free blocks: undo the prefix hit and wait (vLLM stops admitting here).
          this.pool.release(s.blocks);
          s.blocks = [];
          s.numComputed = 0;
          s.registered = 0;
          break;
        }
        this.waiting.shift();
        if (s.cachedTokens < 0) {
          s.cachedTokens = hit;
          this.counters.prefixQueries += s.req.seq.promptTokens;
          this.counters.prefixHits += hit;
        }
        if (s.firstScheduled < 0) s.firstScheduled = this.clock.now();
        this.running.push(s);
        if (s.req.adapter !== null)
          this.runningAdapters.set(s.req.adapter, (this.runningAdapters.get(s.req.adapter) ?? 0) + 1);
        s.scheduled = n;
        budget -= n;
        batch.push(s);
        if (remote && n === 1) decodes++;
        else prefillTokens += n;
      }
      if (skipped.length > 0) this.waiting.unshift(...skipped);
    }

    this.record();
    if (batch.length === 0) {
      this.stepping = false;
      return;
    }
    const duration = stepMs(
      this.profile,
      { prefillTokens, decodeRequests: decodes, kvUsage: this.pool.usage, batchSize: batch.length },
      this.rng,
    );
    this.clock.at(this.clock.now() + duration, () => this.finishStep(batch, prefillTokens, duration));
  }

  private finishStep(batch: Seq[], prefillTokens: number, duration: number): void {
    const now = this.clock.now();
    const B = this.blockSize;
    let sampled = 0;
    for (const s of batch) {
      if (s.scheduled === 0) continue; // preempted or aborted since the step started
      s.numComputed += s.scheduled;
      s.scheduled = 0;
      if (this.profile.kv.enablePrefixCaching) {
        const full = Math.min(Math.floor(s.numComputed / B), s.blocks.length);
        for (let k = s.registered; k < full; k++) this.pool.register(s.blocks[k], s.req.seq.blockHash(B, k));
        s.registered = Math.max(s.registered, full);
      }
      if (s.numComputed < s.knownTokens) continue;
      s.generated++;
      sampled++;
      if (s.generated === 1 && s.firstToken < 0) {
        s.firstToken = now;
        s.req.onFirstToken?.(now);
      }
      s.req.onTokens?.(s.generated - 1, 1, now);
      if (s.generated >= s.req.maxTokens) this.complete(s, s.req.finishReason);
    }
    this.counters.iterations++;
    this.counters.generationTokens += sampled;
    this.observer?.iteration(prefillTokens, sampled, duration);
    this.stepping = false;
    this.record();
    this.kick();
  }

  private takePrefix(s: Seq): number {
    if (!this.profile.kv.enablePrefixCaching) return 0;
    const B = this.blockSize;
    const max = Math.floor((s.knownTokens - 1) / B);
    let k = 0;
    for (; k < max; k++) {
      const b = this.pool.lookup(s.req.seq.blockHash(B, k));
      if (b === undefined) break;
      this.pool.touch(b);
      s.blocks.push(b);
    }
    s.numComputed = k * B;
    s.registered = k;
    return k * B;
  }

  private ensureBlocks(s: Seq, tokens: number): boolean {
    const need = Math.ceil(tokens / this.blockSize) - s.blocks.length;
    if (need <= 0) return true;
    if (need > this.pool.freeBlocks) return false;
    this.pool.allocate(need, s.blocks);
    return true;
  }

  private preempt(s: Seq): void {
    this.removeRunning(s);
    this.pool.release(s.blocks);
    s.blocks = [];
    s.numComputed = 0;
    s.registered = 0;
    s.scheduled = 0;
    s.preemptions++;
    this.counters.preemptions++;
    this.waiting.unshift(s);
  }

  private removeRunning(s: Seq): boolean {
    const i = this.running.indexOf(s);
    if (i < 0) return false;
    this.running.splice(i, 1);
    const a = s.req.adapter;
    if (a !== null) this.runningAdapters.set(a, (this.runningAdapters.get(a) ?? 1) - 1);
    return true;
  }

  private complete(s: Seq, reason: FinishReason): void {
    this.removeRunning(s);
    this.pool.release(s.blocks);
    s.blocks = [];
    s.scheduled = 0;
    this.byId.delete(s.req.id);
    this.counters.finished[reason]++;
    if (reason !== "abort") this.counters.promptTokens += s.req.seq.promptTokens;
    const now = this.clock.now();
    const result: RequestResult = {
      id: s.req.id,
      promptTokens: s.req.seq.promptTokens,
      generationTokens: s.generated,
      cachedTokens: Math.max(0, s.cachedTokens),
      finishReason: reason,
      adapter: s.req.adapter,
      maxTokensParam: s.req.maxTokensParam,
      arrivalMs: s.arrival,
      firstScheduledMs: s.firstScheduled,
      firstTokenMs: s.firstToken,
      finishedMs: now,
      preemptions: s.preemptions,
    };
    this.record();
    if (reason !== "abort") this.observer?.finished(result);
    s.req.onFinish(result);
  }

  private record(): void {
    const now = this.clock.now();
    const state: GaugeState = {
      t: now,
      waiting: this.waiting.length,
      running: this.running.length,
      kvUsage: this.pool.usage,
      usedBlocks: this.pool.usedBlocks,
      loraRunning: this.trackLora ? [...this.runningAdapters].filter(([, n]) => n > 0).map(([a]) => a) : EMPTY,
      loraWaiting: this.trackLora
        ? [...new Set(this.waiting.map((s) => s.req.adapter).filter((a): a is string => a !== null))]
        : EMPTY,
    };
    const h = this.history;
    if (h.length > 0 && h[h.length - 1].t === now) h[h.length - 1] = state;
    else h.push(state);
    // Keep what the lag can still ask for (plus one older entry as the baseline).
    const horizon = now - this.profile.metricsLagMs - 1;
    if (h.length > 64 && h[32].t < horizon) {
      let drop = 0;
      while (drop + 1 < h.length && h[drop + 1].t < horizon) drop++;
      if (drop > 0) h.splice(0, drop);
    }
  }
}
