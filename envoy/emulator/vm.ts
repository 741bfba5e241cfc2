// One worker VM: a WebAssembly instance of the plugin module with its own root context, as Envoy runs
// one per worker thread. Host functions follow proxy-wasm-cpp-host's exports.cc and Envoy's context.cc;
// comments note where behaviour is Envoy's choice rather than the ABI's.
import {
  WasmResult,
  HEADER_MAP_MAX,
  BUFFER_MAX,
  BufferType,
  HeaderMapType,
  MetricType,
  METRIC_TYPE_MASK,
  METRIC_ID_INCREMENT,
  LOG_LEVEL_NAMES,
  StreamType,
} from "./abi";
import {
  Pairs,
  serializePairs,
  parsePairs,
  headerGet,
  headerAdd,
  headerRemove,
  headerReplace,
  headerByteSize,
} from "./pairs";
import { SharedStore } from "./shared-store";
import { Stats } from "./stats";
import { Scheduler, Timer } from "./scheduler";
import { wasiFunctionNames } from "../host-abi";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A body or configuration buffer as the host presents it to the plugin. */
export interface HostBuffer {
  bytes: Uint8Array;
  mutable: boolean;
}

/** What a stream context offers the VM (implemented by HttpStream). */
export interface StreamHooks {
  getMap(type: number, write: boolean): Pairs | null;
  onHeadersModified(type: number): void;
  getBody(type: number): HostBuffer | null;
  setBody(type: number, bytes: Uint8Array): void;
  continueStream(type: number): number;
  closeStream(type: number): number;
  sendLocalResponse(status: number, body: Uint8Array, headers: Pairs, grpcStatus: number, details: string): void;
  getProperty(path: string[]): Uint8Array | undefined;
  setProperty(path: string, value: Uint8Array): void;
  /** True during proxy_on_log (Envoy's access_log_phase_). */
  inAccessLog(): boolean;
}

export interface HttpCallRequest {
  cluster: string;
  headers: Pairs;
  body: Uint8Array;
  trailers: Pairs;
  timeoutMs: number;
}

/** A finished call: the response, or a failure as Envoy's AsyncClient reports it. */
export type HttpCallOutcome = { headers: Pairs; body?: Uint8Array | string; trailers?: Pairs } | { failure: "reset" };

/** Services a VM needs from its host. */
export interface VmEnv {
  vmId: string;
  rootId: string;
  pluginName: string;
  configuration: Uint8Array;
  vmConfiguration: Uint8Array;
  store: SharedStore;
  stats: Stats;
  scheduler: Scheduler;
  logLevel(): number;
  log(level: number, message: string, worker: number): void;
  nowNs(): bigint;
  /** A number in [0, 1) for WASI random_get (the host's random device in Envoy). */
  random(): number;
  /** Starts an http call; returns WasmResult.Ok or an error code; `deliver` is called once later. */
  startHttpCall(req: HttpCallRequest, worker: number, deliver: (o: HttpCallOutcome) => void): number;
  /** Runs `fn` once the outermost VM call on the host returns (cpp-host's after-VM-call actions). */
  defer(fn: () => void): void;
  enter(): void;
  leave(): void;
  knownCluster(name: string): boolean;
}

export interface Ctx {
  id: number;
  parentId: number;
  stream?: StreamHooks;
  /** Root contexts: the http-call response visible during proxy_on_http_call_response. */
  callResponse?: { headers: Pairs; body: Uint8Array; trailers: Pairs } | null;
  status?: { code: number; message: string };
  tick?: { periodMs: number; timer: Timer | null };
  httpCalls?: Map<number, { cancel(): void }>;
}

class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`wasi proc_exit(${code})`);
  }
}

type Fn = (...args: number[]) => number;

export class WorkerVm {
  readonly instance: WebAssembly.Instance;
  readonly memory: WebAssembly.Memory;
  readonly rootContext: Ctx;
  readonly contexts = new Map<number, Ctx>();
  failed = false;
  failure = "";
  private ex: Record<string, Fn | undefined>;
  private nextContextId = 1;
  private current: Ctx | null = null;
  private effectiveId = 0;
  private nextHttpCallId = 1;
  private counterIds = new Map<number, string>();
  private gaugeIds = new Map<number, string>();
  private histogramIds = new Map<number, string>();
  // cpp-host wasm.h: each type's counter starts at the type's own value and is pre-incremented by
  // kMetricIdIncrement (4) for every definition, so the first counter, gauge and histogram ids of a VM are
  // 4, 5 and 6, and the type is the id's low 2 bits. No id is ever 0.
  private lastMetricId = [MetricType.Counter, MetricType.Gauge, MetricType.Histogram];
  /** The module's allocator for host-to-VM copies (malloc, else proxy_on_memory_allocate). */
  private readonly allocFn: Fn;
  private configuring = false;
  /** Set by send_local_response: the current callback's result becomes "stop" (cpp-host stopNextIteration). */
  stopNextIteration = false;

  constructor(
    module: WebAssembly.Module,
    readonly env: VmEnv,
    readonly index: number,
  ) {
    this.instance = new WebAssembly.Instance(module, this.imports() as unknown as WebAssembly.Imports);
    this.ex = this.instance.exports as unknown as Record<string, Fn | undefined>;
    const mem = this.instance.exports.memory;
    if (!(mem instanceof WebAssembly.Memory)) throw new Error('module does not export its memory as "memory"');
    this.memory = mem;
    // cpp-host WasmBase::getFunctions: `malloc` first, `proxy_on_memory_allocate` only when the module has
    // no `malloc`; neither is a load failure ("Wasm module is missing malloc function").
    const allocFn = this.ex.malloc ?? this.ex.proxy_on_memory_allocate;
    if (!allocFn) {
      throw new Error("module exports neither malloc nor proxy_on_memory_allocate, which Envoy needs to pass data in");
    }
    this.allocFn = allocFn;
    // cpp-host: _initialize (reactor) or _start (command), then the VM context (id 0), then the root context.
    const vmCtx: Ctx = { id: 0, parentId: 0 };
    this.contexts.set(0, vmCtx);
    const init = this.ex._initialize ?? this.ex._start;
    if (init) this.invoke(vmCtx, () => init());
    if (this.failed) throw new Error(`worker ${index}: module start failed: ${this.failure}`);
    this.rootContext = {
      id: this.nextContextId++,
      parentId: 0,
      callResponse: null,
      status: { code: 0, message: "" },
      httpCalls: new Map(),
    };
    this.contexts.set(this.rootContext.id, this.rootContext);
  }

  /** proxy_on_context_create + proxy_on_vm_start + proxy_on_configure for the root context. */
  start(): void {
    const root = this.rootContext;
    this.call(root, "proxy_on_context_create", root.id, 0);
    const started = this.call(root, "proxy_on_vm_start", root.id, this.env.vmConfiguration.length);
    if (this.failed) throw new Error(`worker ${this.index}: proxy_on_vm_start trapped: ${this.failure}`);
    if (this.ex.proxy_on_vm_start && started === 0)
      throw new Error(`worker ${this.index}: proxy_on_vm_start returned false (Envoy: "Failed to start base Wasm")`);
    this.configuring = true;
    const ok = this.call(root, "proxy_on_configure", root.id, this.env.configuration.length);
    this.configuring = false;
    if (this.failed) throw new Error(`worker ${this.index}: proxy_on_configure trapped: ${this.failure}`);
    if (this.ex.proxy_on_configure && ok === 0)
      throw new Error(
        `worker ${this.index}: proxy_on_configure returned false (Envoy refuses the plugin configuration)`,
      );
  }

  newStreamContext(stream: StreamHooks): Ctx {
    const ctx: Ctx = { id: this.nextContextId++, parentId: this.rootContext.id, stream };
    this.contexts.set(ctx.id, ctx);
    return ctx;
  }

  dropContext(ctx: Ctx): void {
    this.contexts.delete(ctx.id);
  }

  hasExport(name: string): boolean {
    return typeof this.ex[name] === "function";
  }

  /** Calls a plugin export on `ctx`; a missing export returns `missing`. Traps mark the VM failed. */
  call(ctx: Ctx, name: string, ...args: number[]): number {
    const f = this.ex[name];
    if (!f || this.failed) return 0;
    return this.invoke(ctx, () => f(...args)) ?? 0;
  }

  private invoke(ctx: Ctx, fn: () => number): number | undefined {
    const saved = this.current,
      savedEff = this.effectiveId;
    this.current = ctx;
    this.effectiveId = 0;
    this.env.enter();
    try {
      const r = fn();
      return typeof r === "number" ? r >>> 0 : 0;
    } catch (e) {
      this.failed = true;
      this.failure = e instanceof ProcExit ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      this.env.log(5, `wasm trap in worker ${this.index}: ${this.failure}`, this.index);
      return undefined;
    } finally {
      this.current = saved;
      this.effectiveId = savedEff;
      this.env.leave();
    }
  }

  // ---- memory helpers ----
  // Views of linear memory, rebuilt only when the memory grows (growth detaches the old buffer): host calls
  // are the hot path of every request, and a fresh view per call cost more than the call itself.
  private viewBuffer: ArrayBuffer | null = null;
  private u8view = new Uint8Array(0);
  private dataView = new DataView(new ArrayBuffer(0));
  private bytes(): Uint8Array {
    if (this.viewBuffer !== this.memory.buffer) this.refreshViews();
    return this.u8view;
  }
  private view(): DataView {
    if (this.viewBuffer !== this.memory.buffer) this.refreshViews();
    return this.dataView;
  }
  private refreshViews(): void {
    const b = this.memory.buffer;
    this.viewBuffer = b;
    this.u8view = new Uint8Array(b);
    this.dataView = new DataView(b);
  }
  private read(ptr: number, len: number): Uint8Array | null {
    ptr >>>= 0;
    len >>>= 0;
    const mem = this.bytes();
    if (ptr + len > mem.length) return null;
    return mem.slice(ptr, ptr + len);
  }
  private readStr(ptr: number, len: number): string | null {
    const b = this.read(ptr, len);
    return b ? dec.decode(b) : null;
  }
  private setU32(ptr: number, v: number): boolean {
    ptr >>>= 0;
    const view = this.view();
    if (ptr + 4 > view.byteLength) return false;
    view.setUint32(ptr, v >>> 0, true);
    return true;
  }
  private setU64(ptr: number, v: bigint): boolean {
    ptr >>>= 0;
    const view = this.view();
    if (ptr + 8 > view.byteLength) return false;
    view.setBigUint64(ptr, BigInt.asUintN(64, v), true);
    return true;
  }
  private alloc(size: number): number {
    return this.allocFn(size) >>> 0;
  }
  /** cpp-host copyToPointerSize: an empty value is passed as (0, 0) without allocating. */
  private copyOut(data: Uint8Array, ptrPtr: number, sizePtr: number): boolean {
    let ptr = 0;
    if (data.length > 0) {
      ptr = this.alloc(data.length);
      if (ptr === 0 || ptr + data.length > this.bytes().length) return false;
      this.bytes().set(data, ptr);
    }
    return this.setU32(ptrPtr, ptr) && this.setU32(sizePtr, data.length);
  }

  /** contextOrEffectiveContext(): the effective context if set and still alive, else the current one. */
  private ctx(): Ctx {
    if (this.effectiveId !== 0) {
      const c = this.contexts.get(this.effectiveId);
      if (c) return c;
    }
    return this.current ?? this.rootContext;
  }
  private rootOf(_c: Ctx): Ctx {
    return this.rootContext;
  }

  // ---- ticks ----
  private setTick(ctx: Ctx, periodMs: number): void {
    const root = this.rootOf(ctx);
    if (!root.tick) root.tick = { periodMs: 0, timer: null };
    root.tick.timer?.cancel();
    root.tick.timer = null;
    root.tick.periodMs = periodMs;
    if (periodMs > 0) this.scheduleTick(root);
  }
  private scheduleTick(root: Ctx): void {
    const tick = root.tick!;
    tick.timer = this.env.scheduler.after(tick.periodMs, () => {
      tick.timer = null;
      this.call(root, "proxy_on_tick", root.id);
      // Re-arm only if the period was not changed (or cleared) during the tick.
      if (tick.periodMs > 0 && tick.timer === null && !this.failed) this.scheduleTick(root);
    });
  }
  stopTimers(): void {
    this.rootContext.tick?.timer?.cancel();
    if (this.rootContext.tick) this.rootContext.tick.periodMs = 0;
    for (const c of this.rootContext.httpCalls?.values() ?? []) c.cancel();
    this.rootContext.httpCalls?.clear();
  }

  /** Wasm memory size in 64 KiB pages. */
  pages(): number {
    return this.memory.buffer.byteLength / 65536;
  }

  // ---- host functions ----
  private imports(): Record<string, Record<string, (...a: never[]) => unknown>> {
    const R = WasmResult;
    const env: Record<string, (...a: number[]) => number | void> = {};
    const px = (name: string, f: (...a: number[]) => number) => {
      env[`proxy_${name}`] = f;
    };

    px("log", (level, ptr, size) => {
      if (level >>> 0 > 5) return R.BadArgument;
      const msg = this.readStr(ptr, size);
      if (msg === null) return R.InvalidMemoryAccess;
      if (level >= this.env.logLevel()) this.env.log(level, msg, this.index);
      return R.Ok;
    });
    px("get_log_level", (ptr) => (this.setU32(ptr, Math.min(this.env.logLevel(), 6)) ? R.Ok : R.InvalidMemoryAccess));
    px("get_status", (codePtr, ptrPtr, sizePtr) => {
      const st = this.rootOf(this.ctx()).status ?? { code: 0, message: "" };
      if (!this.setU32(codePtr, st.code)) return R.InvalidMemoryAccess;
      return this.copyOut(enc.encode(st.message), ptrPtr, sizePtr) ? R.Ok : R.InvalidMemoryAccess;
    });
    px("set_property", (kp, ks, vp, vs) => {
      const key = this.readStr(kp, ks),
        value = this.read(vp, vs);
      if (key === null || value === null) return R.InvalidMemoryAccess;
      const s = this.ctx().stream;
      if (!s) return R.NotFound; // Envoy: no stream info outside a stream
      s.setProperty(key, value);
      return R.Ok;
    });
    px("get_property", (pp, ps, vpp, vsp) => {
      const path = this.readStr(pp, ps);
      if (path === null) return R.InvalidMemoryAccess;
      const parts = path.split("\0").filter((p, i, a) => p !== "" || i < a.length - 1);
      const value = this.property(parts);
      if (value === undefined) return R.NotFound;
      return this.copyOut(value, vpp, vsp) ? R.Ok : R.InvalidMemoryAccess;
    });
    px("send_local_response", (code, dp, ds, bp, bs, hp, hs, grpc) => {
      const details = this.readStr(dp, ds),
        body = this.read(bp, bs),
        hdr = this.read(hp, hs);
      if (details === null || body === null || hdr === null) return R.InvalidMemoryAccess;
      this.ctx().stream?.sendLocalResponse(code >>> 0, body, parsePairs(hdr), grpc | 0, details);
      this.stopNextIteration = true;
      return R.Ok;
    });
    px("get_shared_data", (kp, ks, vpp, vsp, casPtr) => {
      const key = this.readStr(kp, ks);
      if (key === null) return R.InvalidMemoryAccess;
      const v = this.env.store.get(this.env.vmId, key);
      if (!v) return R.NotFound;
      if (!this.copyOut(v.value, vpp, vsp)) return R.InvalidMemoryAccess;
      return this.setU32(casPtr, v.cas) ? R.Ok : R.InvalidMemoryAccess;
    });
    px("set_shared_data", (kp, ks, vp, vs, cas) => {
      const key = this.readStr(kp, ks),
        value = this.read(vp, vs);
      if (key === null || value === null) return R.InvalidMemoryAccess;
      return this.env.store.set(this.env.vmId, key, value, cas >>> 0);
    });
    px("register_shared_queue", (np, ns, tokenPtr) => {
      const name = this.readStr(np, ns);
      if (name === null) return R.InvalidMemoryAccess;
      const root = this.rootOf(this.ctx());
      const token = this.env.store.registerQueue(this.env.vmId, name, { notify: (t) => this.queueReady(t) }, root.id);
      return this.setU32(tokenPtr, token) ? R.Ok : R.InvalidMemoryAccess;
    });
    px("resolve_shared_queue", (vp, vs, np, ns, tokenPtr) => {
      const vmId = this.readStr(vp, vs),
        name = this.readStr(np, ns);
      if (vmId === null || name === null) return R.InvalidMemoryAccess;
      const token = this.env.store.resolveQueue(vmId, name);
      if (token === undefined) return R.NotFound;
      return this.setU32(tokenPtr, token) ? R.Ok : R.InvalidMemoryAccess;
    });
    px("dequeue_shared_queue", (token, dpp, dsp) => {
      const got = this.env.store.dequeue(token >>> 0);
      if (got.result !== R.Ok) return got.result;
      return this.copyOut(got.item!, dpp, dsp) ? R.Ok : R.InvalidMemoryAccess;
    });
    px("enqueue_shared_queue", (token, dp, ds) => {
      const data = this.read(dp, ds);
      if (data === null) return R.InvalidMemoryAccess;
      return this.env.store.enqueue(token >>> 0, data);
    });

    // Header maps. Envoy: a map that is not available in this callback -> BAD_ARGUMENT for get and
    // every mutation, but get_header_map_pairs answers OK with no pairs.
    px("get_header_map_value", (type, kp, ks, vpp, vsp) => {
      if (type >>> 0 > HEADER_MAP_MAX) return R.BadArgument;
      const key = this.readStr(kp, ks);
      if (key === null) return R.InvalidMemoryAccess;
      const map = this.constMap(type);
      // Envoy getHeaderMapValue: a map that is absent in the access-log phase (proxy_on_log) is NOT_FOUND
      // for ABI 0.2.x; elsewhere an unavailable map is BAD_ARGUMENT.
      if (!map) return this.ctx().stream?.inAccessLog() ? R.NotFound : R.BadArgument;
      const v = headerGet(map, key);
      if (v === undefined) return R.NotFound;
      return this.copyOut(enc.encode(v), vpp, vsp) ? R.Ok : R.InvalidMemoryAccess;
    });
    const mutate = (type: number, f: (m: Pairs) => void): number => {
      if (type >>> 0 > HEADER_MAP_MAX) return R.BadArgument;
      const s = this.ctx().stream;
      const map = s?.getMap(type, true) ?? null;
      if (!s || !map) return R.BadArgument;
      f(map);
      s.onHeadersModified(type);
      return R.Ok;
    };
    px("add_header_map_value", (type, kp, ks, vp, vs) => {
      const key = this.readStr(kp, ks),
        value = this.readStr(vp, vs);
      if (key === null || value === null) return type >>> 0 > HEADER_MAP_MAX ? R.BadArgument : R.InvalidMemoryAccess;
      return mutate(type, (m) => headerAdd(m, key, value));
    });
    px("replace_header_map_value", (type, kp, ks, vp, vs) => {
      const key = this.readStr(kp, ks),
        value = this.readStr(vp, vs);
      if (key === null || value === null) return type >>> 0 > HEADER_MAP_MAX ? R.BadArgument : R.InvalidMemoryAccess;
      return mutate(type, (m) => headerReplace(m, key, value));
    });
    px("remove_header_map_value", (type, kp, ks) => {
      const key = this.readStr(kp, ks);
      if (key === null) return type >>> 0 > HEADER_MAP_MAX ? R.BadArgument : R.InvalidMemoryAccess;
      return mutate(type, (m) => headerRemove(m, key));
    });
    px("get_header_map_pairs", (type, ptrPtr, sizePtr) => {
      if (type >>> 0 > HEADER_MAP_MAX) return R.BadArgument;
      const map = this.constMap(type) ?? [];
      return this.copyOut(map.length ? serializePairs(map) : new Uint8Array(0), ptrPtr, sizePtr)
        ? R.Ok
        : R.InvalidMemoryAccess;
    });
    px("set_header_map_pairs", (type, ptr, size) => {
      if (type >>> 0 > HEADER_MAP_MAX) return R.BadArgument;
      const data = this.read(ptr, size);
      if (data === null) return R.InvalidMemoryAccess;
      const pairs = parsePairs(data);
      return mutate(type, (m) => {
        m.length = 0;
        for (const [k, v] of pairs) headerAdd(m, k, v);
      });
    });
    px("get_header_map_size", (type, resultPtr) => {
      if (type >>> 0 > HEADER_MAP_MAX) return R.BadArgument;
      const map = this.ctx().stream?.getMap(type, true) ?? null;
      if (!map) return R.BadArgument;
      return this.setU32(resultPtr, headerByteSize(map)) ? R.Ok : R.InvalidMemoryAccess;
    });

    // Buffers.
    px("get_buffer_status", (type, lenPtr, flagsPtr) => {
      if (type >>> 0 > BUFFER_MAX) return R.BadArgument;
      const b = this.buffer(type >>> 0);
      if (!b) return R.NotFound;
      return this.setU32(lenPtr, b.bytes.length) && this.setU32(flagsPtr, 0) ? R.Ok : R.InvalidMemoryAccess;
    });
    px("get_buffer_bytes", (type, start, length, ptrPtr, sizePtr) => {
      if (type >>> 0 > BUFFER_MAX) return R.BadArgument;
      const b = this.buffer(type >>> 0);
      if (!b) return R.NotFound;
      // cpp-host checks `start > start + length` on its 64-bit Word, which two 32-bit values can never
      // overflow, so any length is clamped to the rest of the buffer (length 0xFFFFFFFF = "all of it").
      start >>>= 0;
      length >>>= 0;
      const size = b.bytes.length;
      if (start > size) length = 0;
      else if (start + length > size) length = size - start;
      if (length === 0) return this.setU32(ptrPtr, 0) && this.setU32(sizePtr, 0) ? R.Ok : R.InvalidMemoryAccess;
      return this.copyOut(b.bytes.subarray(start, start + length), ptrPtr, sizePtr) ? R.Ok : R.InvalidMemoryAccess;
    });
    px("set_buffer_bytes", (type, start, length, dp, ds) => {
      if (type >>> 0 > BUFFER_MAX) return R.BadArgument;
      const b = this.buffer(type >>> 0);
      if (!b) return R.NotFound;
      const data = this.read(dp, ds);
      if (data === null) return R.InvalidMemoryAccess;
      if (!b.mutable) return R.BadArgument; // configuration and call responses are read-only
      start >>>= 0;
      length >>>= 0;
      // Envoy Buffer::copyFrom (source/extensions/common/wasm/context.cc) on a body: start 0 drains `length`
      // bytes (Buffer::drain stops at the end, so length >= size replaces everything, 0 prepends) and
      // prepends the data; start >= size appends; any other start is BAD_ARGUMENT. Envoy 1.17 (2021)
      // accepted only length 0 or length >= size at start 0; the Envoy sources of 2024-2025 replace the
      // first `length` bytes, which is what this does (proxy-wasm/test-framework issue #24 saw the same).
      let next: Uint8Array;
      if (start === 0) next = concat(data, b.bytes.subarray(Math.min(length, b.bytes.length)));
      else if (start >= b.bytes.length) next = concat(b.bytes, data);
      else return R.BadArgument;
      b.bytes = next;
      this.ctx().stream?.setBody(type >>> 0, next);
      return R.Ok;
    });

    px("http_call", (up, us, hp, hs, bp, bs, tp, ts, timeout, tokenPtr) => {
      const cluster = this.readStr(up, us),
        hdr = this.read(hp, hs),
        body = this.read(bp, bs),
        tr = this.read(tp, ts);
      if (cluster === null || hdr === null || body === null || tr === null) return R.InvalidMemoryAccess;
      if (!this.setU32(tokenPtr, 0)) return R.InvalidMemoryAccess;
      if ((timeout | 0) < 0) return R.BadArgument;
      if (!this.env.knownCluster(cluster)) return R.BadArgument;
      const headers = parsePairs(hdr);
      // Envoy requires :path, :method and :authority (Host).
      if (
        headerGet(headers, ":path") === undefined ||
        headerGet(headers, ":method") === undefined ||
        headerGet(headers, ":authority") === undefined
      ) {
        return R.BadArgument;
      }
      const root = this.rootOf(this.ctx());
      const token = this.nextHttpCallId++;
      let done = false;
      const rc = this.env.startHttpCall(
        { cluster, headers, body, trailers: parsePairs(tr), timeoutMs: timeout >>> 0 },
        this.index,
        (o) => {
          if (done) return;
          done = true;
          root.httpCalls!.delete(token);
          this.deliverHttpCall(root, token, o);
        },
      );
      if (rc !== R.Ok) return rc;
      if (!done)
        root.httpCalls!.set(token, {
          cancel: () => {
            done = true;
          },
        });
      this.setU32(tokenPtr, token);
      return R.Ok;
    });
    for (const g of ["grpc_call", "grpc_stream", "grpc_close", "grpc_cancel", "grpc_send"])
      px(g, () => R.Unimplemented);
    px("set_tick_period_milliseconds", (period) => {
      this.setTick(this.ctx(), period >>> 0);
      return R.Ok;
    });
    px("get_current_time_nanoseconds", (ptr) => (this.setU64(ptr, this.env.nowNs()) ? R.Ok : R.InvalidMemoryAccess));
    px("define_metric", (type, np, ns, idPtr) => {
      type >>>= 0;
      if (type > MetricType.Histogram) return R.BadArgument;
      const name = this.readStr(np, ns);
      if (name === null) return R.InvalidMemoryAccess;
      this.lastMetricId[type] += METRIC_ID_INCREMENT;
      const id = this.lastMetricId[type];
      const full = Stats.fullName(name);
      const st = this.env.stats;
      if (type === MetricType.Counter) {
        this.counterIds.set(id, full);
        if (!st.counters.has(full)) st.counters.set(full, 0n);
      } else if (type === MetricType.Gauge) {
        this.gaugeIds.set(id, full);
        if (!st.gauges.has(full)) st.gauges.set(full, 0n);
      } else {
        this.histogramIds.set(id, full);
        if (!st.histograms.has(full)) st.histograms.set(full, []);
      }
      return this.setU32(idPtr, id) ? R.Ok : R.InvalidMemoryAccess;
    });
    (env as Record<string, unknown>).proxy_increment_metric = (id: number, offset: bigint): number => {
      id >>>= 0;
      const st = this.env.stats;
      const t = id & METRIC_TYPE_MASK;
      if (t === MetricType.Counter) {
        const n = this.counterIds.get(id);
        if (n === undefined) return R.NotFound;
        if (offset <= 0n) return R.BadArgument; // Envoy: counters only go up
        st.counters.set(n, st.counters.get(n)! + offset);
        return R.Ok;
      }
      if (t === MetricType.Gauge) {
        const n = this.gaugeIds.get(id);
        if (n === undefined) return R.NotFound;
        st.gauges.set(n, BigInt.asUintN(64, st.gauges.get(n)! + offset));
        return R.Ok;
      }
      return R.BadArgument;
    };
    (env as Record<string, unknown>).proxy_record_metric = (id: number, value: bigint): number => {
      id >>>= 0;
      const st = this.env.stats;
      const v = BigInt.asUintN(64, value);
      const t = id & METRIC_TYPE_MASK;
      if (t === MetricType.Counter && this.counterIds.has(id)) {
        const n = this.counterIds.get(id)!;
        st.counters.set(n, st.counters.get(n)! + v);
        return R.Ok;
      }
      if (t === MetricType.Gauge && this.gaugeIds.has(id)) {
        st.gauges.set(this.gaugeIds.get(id)!, v);
        return R.Ok;
      }
      if (t === MetricType.Histogram && this.histogramIds.has(id)) {
        st.histograms.get(this.histogramIds.get(id)!)!.push(Number(v));
        return R.Ok;
      }
      return R.NotFound;
    };
    px("get_metric", (id, resultPtr) => {
      id >>>= 0;
      const st = this.env.stats;
      const t = id & METRIC_TYPE_MASK;
      let v: bigint | undefined;
      if (t === MetricType.Counter) {
        const n = this.counterIds.get(id);
        if (n === undefined) return R.NotFound;
        v = st.counters.get(n)!;
      } else if (t === MetricType.Gauge) {
        const n = this.gaugeIds.get(id);
        if (n === undefined) return R.NotFound;
        v = st.gauges.get(n)!;
      } else return R.BadArgument; // histograms cannot be read back
      return this.setU64(resultPtr, v) ? R.Ok : R.InvalidMemoryAccess;
    });
    px("set_effective_context", (id) => {
      if (!this.contexts.has(id >>> 0)) return R.BadArgument;
      this.effectiveId = id >>> 0;
      return R.Ok;
    });
    px("done", () => R.NotFound); // only meaningful while Envoy drains a VM (on_done returned false)
    px("call_foreign_function", () => R.NotFound);
    px("continue_stream", (type) => {
      if (type >>> 0 > StreamType.Upstream) return R.BadArgument;
      const s = this.ctx().stream;
      return s ? s.continueStream(type >>> 0) : R.Ok;
    });
    px("close_stream", (type) => {
      if (type >>> 0 > StreamType.Upstream) return R.BadArgument;
      const s = this.ctx().stream;
      return s ? s.closeStream(type >>> 0) : R.Ok;
    });
    env.pthread_equal = (a, b) => (a === b ? 1 : 0);
    env.emscripten_notify_memory_growth = () => undefined;

    const wasi: Record<string, (...a: never[]) => unknown> = {
      proc_exit: (code: number) => {
        throw new ProcExit(code);
      },
      fd_write: (fd: number, iovs: number, n: number, writtenPtr: number) => {
        // cpp-host logs stdout at info and stderr at error.
        let text = "",
          total = 0;
        const view = new DataView(this.memory.buffer);
        for (let i = 0; i < n; i++) {
          const p = view.getUint32(iovs + i * 8, true),
            l = view.getUint32(iovs + i * 8 + 4, true);
          text += this.readStr(p, l) ?? "";
          total += l;
        }
        if (fd === 1 || fd === 2) this.env.log(fd === 1 ? 2 : 4, text, this.index);
        else return 8; // EBADF
        this.setU32(writtenPtr, total);
        return 0;
      },
      clock_time_get: (_id: number, _precision: bigint, ptr: number) => (this.setU64(ptr, this.env.nowNs()) ? 0 : 21),
      random_get: (ptr: number, len: number) => {
        const b = this.bytes();
        for (let i = 0; i < len; i++) b[ptr + i] = Math.floor(this.env.random() * 256);
        return 0;
      },
      environ_sizes_get: (a: number, b: number) => (this.setU32(a, 0) && this.setU32(b, 0) ? 0 : 21),
      args_sizes_get: (a: number, b: number) => (this.setU32(a, 0) && this.setU32(b, 0) ? 0 : 21),
      environ_get: () => 0,
      args_get: () => 0,
      sched_yield: () => 0,
    };
    // Every other WASI function is offered (so modules link) but answers ENOSYS (52).
    const wasiFull: Record<string, (...a: never[]) => unknown> = {};
    for (const name of wasiFunctionNames()) wasiFull[name] = wasi[name] ?? (() => 52);
    return {
      env: env as Record<string, (...a: never[]) => unknown>,
      wasi_unstable: wasiFull,
      wasi_snapshot_preview1: wasiFull,
    };
  }

  private constMap(type: number): Pairs | null {
    const c = this.ctx();
    if (type === HeaderMapType.HttpCallResponseHeaders) return this.rootContext.callResponse?.headers ?? null;
    if (type === HeaderMapType.HttpCallResponseTrailers) return this.rootContext.callResponse?.trailers ?? null;
    return c.stream?.getMap(type, false) ?? null;
  }

  private buffer(type: number): HostBuffer | null {
    const c = this.ctx();
    switch (type) {
      case BufferType.VmConfiguration:
        return { bytes: this.env.vmConfiguration, mutable: false };
      case BufferType.PluginConfiguration:
        return this.configuring ? { bytes: this.env.configuration, mutable: false } : null;
      case BufferType.HttpCallResponseBody: {
        const r = this.rootContext.callResponse;
        return r ? { bytes: r.body, mutable: false } : null;
      }
      case BufferType.HttpRequestBody:
      case BufferType.HttpResponseBody:
        // Envoy hands out an empty buffer (not NOT_FOUND) when no body is in flight.
        return c.stream?.getBody(type) ?? { bytes: new Uint8Array(0), mutable: false };
      case BufferType.CallData:
        return { bytes: new Uint8Array(0), mutable: false };
      default:
        return { bytes: new Uint8Array(0), mutable: false };
    }
  }

  private property(parts: string[]): Uint8Array | undefined {
    const top = parts.join(".");
    switch (top) {
      case "plugin_name":
        return enc.encode(this.env.pluginName);
      case "plugin_root_id":
        return enc.encode(this.env.rootId);
      case "plugin_vm_id":
        return enc.encode(this.env.vmId);
    }
    return this.ctx().stream?.getProperty(parts);
  }

  private deliverHttpCall(root: Ctx, token: number, o: HttpCallOutcome): void {
    if (this.failed) return;
    const status = root.status ?? (root.status = { code: 0, message: "" });
    if ("failure" in o) {
      // Envoy onHttpCallFailure: status BrokenConnection "reset", no headers, body or trailers. After the
      // call only the message is cleared: the code stays 11 until something else sets it (onHttpCallSuccess
      // never touches the status), so get_status in a later successful response still answers 11 and "".
      status.code = WasmResult.BrokenConnection;
      status.message = "reset";
      root.callResponse = null;
      this.call(root, "proxy_on_http_call_response", root.id, token, 0, 0, 0);
      status.message = "";
      return;
    }
    const body = typeof o.body === "string" ? enc.encode(o.body) : (o.body ?? new Uint8Array(0));
    const trailers = o.trailers ?? [];
    root.callResponse = { headers: o.headers.map(([k, v]) => [k.toLowerCase(), v]), body, trailers };
    this.call(root, "proxy_on_http_call_response", root.id, token, o.headers.length, body.length, trailers.length);
    root.callResponse = null;
  }

  private queueReady(token: number): void {
    // Envoy posts the notification to the registering worker; we run it after the current VM call.
    this.env.defer(() => {
      const id = this.env.store.queueContext(token);
      const ctx = id === undefined ? undefined : this.contexts.get(id);
      if (ctx) this.call(ctx, "proxy_on_queue_ready", ctx.id, token);
    });
  }

  logLevelName(level: number): string {
    return LOG_LEVEL_NAMES[level] ?? String(level);
  }
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
