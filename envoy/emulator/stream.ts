// One HTTP stream through the wasm filter, driven like Envoy's filter manager drives an HTTP filter:
// headers -> body chunks -> trailers on the request path, then the same on the response path.
// Rules from Envoy's wasm Context and proxy-wasm-cpp-host:
// - proxy_on_context_create runs when request headers arrive;
// - a headers callback returning Continue forwards the headers and Envoy drops its pointer to the map
//   (later get/mutation -> BAD_ARGUMENT); otherwise the pointer stays through later callbacks (a body
//   callback returning Continue does not drop it) until continue_stream, which drops the request maps
//   whichever direction it continues; returning StopIteration is turned into
//   StopAllIterationAndWatermark (nothing further reaches the filter until continue_stream) unless the
//   plugin config sets allow_on_headers_stop_iteration, in which case body chunks still reach the filter
//   and it may change the held headers there (the only way to change headers from the body callback);
// - a body callback returning StopIterationAndBuffer buffers, and the next callback sees all buffered bytes;
// - continue_stream and send_local_response take effect after the VM call returns;
// - a trap fails the VM: fail-closed streams get a 503 local reply (details wasm_fail_stream) at their next
//   filter callback (headers, body or trailers: cpp-host's CHECK_FAIL_HTTP runs before and after each call),
//   including streams held when another stream trapped; fail-open streams pass through untouched, now and
//   for every later stream of that worker.
import { FilterDataStatus, FilterHeadersStatus, HeaderMapType, BufferType, StreamType, WasmResult } from "./abi";
import { Pairs, headerGet } from "./pairs";
import { Ctx, HostBuffer, StreamHooks, WorkerVm, concat } from "./vm";
import { CodeDetails, StreamInfo, newStreamInfo } from "./stream-info";

export interface LocalReply {
  status: number;
  body: Uint8Array;
  headers: Pairs;
  details: string;
  grpcStatus: number | null;
}

/** Receives what leaves the filter: request parts towards the upstream, response parts to the client. */
export interface StreamSink {
  requestHeaders?(headers: Pairs, endOfStream: boolean): void;
  requestData?(chunk: Uint8Array, endOfStream: boolean): void;
  requestTrailers?(trailers: Pairs): void;
  responseHeaders?(headers: Pairs, endOfStream: boolean): void;
  responseData?(chunk: Uint8Array, endOfStream: boolean): void;
  responseTrailers?(trailers: Pairs): void;
  /** close_stream from the plugin: the stream is reset (no response). */
  reset?(details: string): void;
}

/** What a stream forwarded so far, recorded when no sink is given (for tests and the simulator). */
export interface Forwarded {
  requestHeaders: Pairs | null;
  requestBody: Uint8Array[];
  requestTrailers: Pairs | null;
  requestEnd: boolean;
  responseHeaders: Pairs | null;
  responseBody: Uint8Array[];
  responseTrailers: Pairs | null;
  responseEnd: boolean;
}

export type PropertyValue = string | number | bigint | Uint8Array;

type Iteration = "idle" | "continue" | "stopAll" | "stopSingle" | "done";

const REQ = {
  headers: "proxy_on_request_headers",
  body: "proxy_on_request_body",
  trailers: "proxy_on_request_trailers",
  headersMap: HeaderMapType.RequestHeaders,
  trailersMap: HeaderMapType.RequestTrailers,
  buffer: BufferType.HttpRequestBody,
} as const;
const RESP = {
  headers: "proxy_on_response_headers",
  body: "proxy_on_response_body",
  trailers: "proxy_on_response_trailers",
  headersMap: HeaderMapType.ResponseHeaders,
  trailersMap: HeaderMapType.ResponseTrailers,
  buffer: BufferType.HttpResponseBody,
} as const;

class Direction {
  iter: Iteration = "idle";
  headers: Pairs = [];
  headersLive = false;
  headersForwarded = false;
  /** Data held by the host: unseen by the filter (stopAll) or seen and buffered by it (buffering). */
  pending: Uint8Array[] = [];
  buffering = false;
  body: HostBuffer | null = null;
  bodyEnd = false;
  endStream = false;
  trailers: Pairs | null = null;
  trailersLive = false;
  trailersHeld = false;
  constructor(readonly names: typeof REQ | typeof RESP) {}
}

const enc = new TextEncoder();

export interface StreamOwner {
  failOpen: boolean;
  allowOnHeadersStopIteration: boolean;
  defer(fn: () => void): void;
  nowNs(): bigint;
}

let nextStreamId = 1;

export class HttpStream implements StreamHooks {
  readonly id = nextStreamId++;
  readonly request = new Direction(REQ);
  readonly response = new Direction(RESP);
  localReply: LocalReply | null = null;
  /** Set when the stream was reset by close_stream. */
  resetDetails: string | null = null;
  readonly forwarded: Forwarded = {
    requestHeaders: null,
    requestBody: [],
    requestTrailers: null,
    requestEnd: false,
    responseHeaders: null,
    responseBody: [],
    responseTrailers: null,
    responseEnd: false,
  };
  readonly properties = new Map<string, PropertyValue>();
  /**
   * Envoy's StreamInfo for this stream, behind upstream.address, upstream.request_attempt_count,
   * response.code_details and response.flags. The gateway's router fills it in before the response
   * callbacks run; in-process callers may set it themselves (a response sent with sendResponseHeaders and
   * no details set counts as an upstream one: "via_upstream").
   */
  readonly info: StreamInfo = newStreamInfo();
  private ctx: Ctx | null = null;
  private created = false;
  private failureReplySent = false;
  private accessLogPhase = false;
  private finished = false;
  private readonly startNs: bigint;

  constructor(
    readonly vm: WorkerVm,
    private owner: StreamOwner,
    readonly sink?: StreamSink,
    properties?: Record<string, PropertyValue>,
  ) {
    for (const [k, v] of Object.entries(properties ?? {})) this.properties.set(k, v);
    this.startNs = owner.nowNs();
  }

  get worker(): number {
    return this.vm.index;
  }
  get contextId(): number {
    return this.ctx?.id ?? 0;
  }
  get requestPaused(): boolean {
    return (
      this.request.iter === "stopAll" ||
      this.request.iter === "stopSingle" ||
      this.request.buffering ||
      this.request.trailersHeld
    );
  }
  get responsePaused(): boolean {
    return (
      this.response.iter === "stopAll" ||
      this.response.iter === "stopSingle" ||
      this.response.buffering ||
      this.response.trailersHeld
    );
  }
  /** The request headers as they are now (after any change by the filter). */
  get requestHeaders(): Pairs {
    return this.request.headers;
  }
  get responseHeaders(): Pairs {
    return this.response.headers;
  }

  // ---------------- driving API ----------------

  sendRequestHeaders(headers: Pairs, endOfStream = false): this {
    this.run(() => {
      const d = this.request;
      d.headers = headers.map(([k, v]) => [k.toLowerCase(), v]);
      d.endStream = endOfStream;
      if (!this.vm.failed && !this.created) {
        this.ctx = this.vm.newStreamContext(this);
        this.created = true;
        this.vm.call(this.ctx, "proxy_on_context_create", this.ctx.id, this.vm.rootContext.id);
      }
      this.headersCallback(d, headers.length, endOfStream);
    });
    return this;
  }

  sendRequestData(chunk: Uint8Array | string, endOfStream = false): this {
    this.run(() => this.data(this.request, toBytes(chunk), endOfStream));
    return this;
  }

  sendRequestTrailers(trailers: Pairs): this {
    this.run(() => this.trailersIn(this.request, trailers));
    return this;
  }

  sendResponseHeaders(headers: Pairs, endOfStream = false): this {
    this.run(() => {
      if (this.localReply || this.resetDetails !== null) return;
      this.info.responseCodeDetails ??= CodeDetails.ViaUpstream;
      const d = this.response;
      d.headers = headers.map(([k, v]) => [k.toLowerCase(), v]);
      d.endStream = endOfStream;
      this.headersCallback(d, headers.length, endOfStream);
    });
    return this;
  }

  sendResponseData(chunk: Uint8Array | string, endOfStream = false): this {
    this.run(() => {
      if (!this.localReply) this.data(this.response, toBytes(chunk), endOfStream);
    });
    return this;
  }

  sendResponseTrailers(trailers: Pairs): this {
    this.run(() => {
      if (!this.localReply) this.trailersIn(this.response, trailers);
    });
    return this;
  }

  /** End of the stream: proxy_on_log (access-log phase), proxy_on_done, proxy_on_delete, in Envoy's order. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.run(() => {
      if (!this.ctx || !this.created) return;
      const ctx = this.ctx;
      this.accessLogPhase = true;
      this.vm.call(ctx, "proxy_on_log", ctx.id);
      this.accessLogPhase = false;
      this.vm.call(ctx, "proxy_on_done", ctx.id);
      this.vm.call(ctx, "proxy_on_delete", ctx.id);
      this.vm.dropContext(ctx);
    });
  }

  // ---------------- filter manager ----------------

  /** Host-side work; the VM's own calls drain deferred actions when the outermost VM call returns. */
  private run(fn: () => void): void {
    fn();
  }

  /** Runs a callback: the VM's deferred actions (continue, local reply) run before the result is used. */
  private callVm(name: string, ...args: number[]): number {
    this.vm.stopNextIteration = false;
    return this.vm.call(this.ctx!, name, ...args);
  }

  /** CHECK_FAIL_HTTP: after a trap the filter is gone; fail-open passes, fail-closed answers 503. */
  private failedVm(): boolean {
    if (!this.vm.failed) return false;
    if (!this.owner.failOpen) this.failStream();
    return true;
  }

  private stopped(): boolean {
    return this.localReply !== null || this.resetDetails !== null;
  }

  private headersCallback(d: Direction, count: number, eos: boolean): void {
    const isResp = d === this.response;
    // CHECK_FAIL_HTTP comes first: a failed VM answers every new stream (503 or pass-through).
    if (!isResp && this.failedVm()) {
      if (this.owner.failOpen) this.forwardHeaders(d);
      else d.iter = "done";
      return;
    }
    if (!this.created || (isResp && this.failureReplySent)) {
      this.forwardHeaders(d);
      return;
    }
    if (this.failedVm()) {
      if (this.owner.failOpen) this.forwardHeaders(d);
      else d.iter = "done";
      return;
    }
    d.headersLive = true;
    const r = this.callVm(d.names.headers, this.ctx!.id, count, eos ? 1 : 0);
    if (this.failedVm()) {
      d.headersLive = false;
      if (this.owner.failOpen) this.forwardHeaders(d);
      else d.iter = "done";
      return;
    }
    if (this.stopped() && !isResp) {
      d.iter = "done";
      return;
    }
    if (d.iter === "continue" && d.headersForwarded) return; // continued from inside the callback
    if (this.vm.stopNextIteration || r > FilterHeadersStatus.StopAllIterationAndWatermark) {
      d.iter = "stopAll";
      return;
    }
    if (r === FilterHeadersStatus.Continue || r === FilterHeadersStatus.ContinueAndEndStream) {
      d.headersLive = false;
      this.forwardHeaders(d);
    } else if (r === FilterHeadersStatus.StopIteration && this.owner.allowOnHeadersStopIteration) {
      d.iter = "stopSingle";
    } else {
      d.iter = "stopAll";
    }
  }

  private data(d: Direction, chunk: Uint8Array, eos: boolean): void {
    if (d.iter === "done") return;
    d.endStream = eos;
    if (d.iter === "stopAll" || d.trailersHeld) {
      d.pending.push(chunk);
      return;
    }
    // Envoy encodeData: after the failure reply the filter passes the rest through.
    if (!this.created || (d === this.response && this.failureReplySent)) {
      this.emitData(d, chunk, eos);
      return;
    }
    // A VM that failed meanwhile (this stream's or another's trap) is answered inside bodyCallback:
    // CHECK_FAIL_HTTP fails the stream (fail-closed) or continues (fail-open) without running the plugin.
    this.bodyCallback(d, chunk, eos);
  }

  private bodyCallback(d: Direction, chunk: Uint8Array, eos: boolean): void {
    const bytes = d.buffering ? concat(concatAll(d.pending), chunk) : chunk;
    d.body = { bytes, mutable: true };
    d.bodyEnd = eos;
    const r = this.callVm(d.names.body, this.ctx!.id, bytes.length, eos ? 1 : 0);
    const out = d.body?.bytes ?? bytes;
    if (this.failedVm()) {
      d.body = null;
      if (this.owner.failOpen) {
        d.pending = [];
        d.buffering = false;
        this.forwardHeaders(d);
        this.emitData(d, out, eos);
      } else d.iter = "done";
      return;
    }
    if (this.stopped() && d === this.request) {
      d.iter = "done";
      return;
    }
    if (r === FilterDataStatus.Continue && !this.vm.stopNextIteration) {
      // Envoy decodeData/encodeData drop only the body buffer here: header maps still held from a stopped
      // headers callback stay readable and writable in later callbacks (until continue_stream).
      d.body = null;
      d.buffering = false;
      d.pending = [];
      if (!d.headersForwarded) this.forwardHeaders(d, false);
      d.iter = "continue";
      this.emitData(d, out, eos && !d.trailers);
    } else {
      // StopIterationAndBuffer / AndWatermark / NoBuffer: the host keeps the (possibly changed) bytes.
      d.buffering = true;
      d.pending = [out];
      d.body = { bytes: out, mutable: true };
    }
  }

  private trailersIn(d: Direction, trailers: Pairs): void {
    if (d.iter === "done") return;
    d.trailers = trailers.map(([k, v]) => [k.toLowerCase(), v]);
    d.endStream = true;
    if (d.iter === "stopAll") return;
    this.trailersCallback(d);
  }

  private trailersCallback(d: Direction): void {
    if (!this.created || (d === this.response && this.failureReplySent)) {
      this.flushPending(d);
      this.emitTrailers(d);
      return;
    }
    d.trailersLive = true;
    // On a failed VM this runs nothing and failedVm() below answers as CHECK_FAIL_HTTP does.
    const r = this.callVm(d.names.trailers, this.ctx!.id, d.trailers!.length);
    if (this.failedVm()) {
      d.trailersLive = false;
      if (this.owner.failOpen) {
        this.flushPending(d);
        this.emitTrailers(d);
      }
      return;
    }
    if (this.stopped() && d === this.request) {
      d.iter = "done";
      return;
    }
    if (r === 0 && !this.vm.stopNextIteration) {
      d.trailersLive = false;
      if (!d.headersForwarded) this.forwardHeaders(d, false);
      this.flushPending(d);
      this.emitTrailers(d);
    } else {
      d.trailersHeld = true;
    }
  }

  /** continueDecoding / continueEncoding, run after the VM call that asked for it. */
  private resume(d: Direction): void {
    if (this.stopped() && d === this.request) return;
    if (d.iter === "stopAll") {
      // Envoy iterates again from this filter: headers go on, then the data it held back reaches the
      // body callback (unseen until now), then the trailers.
      d.iter = "continue";
      const unseen = concatAll(d.pending);
      d.pending = [];
      const dataEnd = d.endStream && d.trailers === null;
      this.forwardHeaders(d, dataEnd && unseen.length === 0);
      if (unseen.length > 0) {
        if (this.created)
          this.bodyCallback(d, unseen, dataEnd); // a failed VM: CHECK_FAIL_HTTP there
        else this.emitData(d, unseen, dataEnd);
      }
      if (d.trailers && !d.buffering && d.iter === "continue") this.trailersCallback(d);
      return;
    }
    if (d.iter === "stopSingle" || d.buffering || d.trailersHeld) {
      // The filter has seen everything held: pass it on as it is now.
      if (!d.headersForwarded) this.forwardHeaders(d, false);
      d.iter = "continue";
      d.body = null;
      d.buffering = false;
      this.flushPending(d, d.endStream && !d.trailers);
      if (d.trailersHeld) {
        d.trailersHeld = false;
        this.emitTrailers(d);
      }
    }
  }

  private forwardHeaders(d: Direction, eosOverride?: boolean): void {
    if (d.headersForwarded) return;
    d.headersForwarded = true;
    d.iter = "continue";
    const eos = eosOverride ?? (d.endStream && d.pending.length === 0 && d.trailers === null);
    const copy = d.headers.map(([k, v]) => [k, v] as [string, string]);
    if (d === this.request) {
      if (this.sink) this.sink.requestHeaders?.(copy, eos);
      else {
        this.forwarded.requestHeaders = copy;
        this.forwarded.requestEnd = eos;
      }
    } else {
      if (this.sink) this.sink.responseHeaders?.(copy, eos);
      else {
        this.forwarded.responseHeaders = copy;
        this.forwarded.responseEnd = eos;
      }
    }
  }

  private flushPending(d: Direction, eos = false): void {
    if (d.pending.length === 0) return;
    const all = concatAll(d.pending);
    d.pending = [];
    this.emitData(d, all, eos);
  }

  private emitData(d: Direction, chunk: Uint8Array, eos: boolean): void {
    if (!d.headersForwarded) this.forwardHeaders(d, false);
    if (d === this.request) {
      if (this.sink) this.sink.requestData?.(chunk, eos);
      else {
        this.forwarded.requestBody.push(chunk);
        this.forwarded.requestEnd ||= eos;
      }
    } else {
      if (this.sink) this.sink.responseData?.(chunk, eos);
      else {
        this.forwarded.responseBody.push(chunk);
        this.forwarded.responseEnd ||= eos;
      }
    }
  }

  private emitTrailers(d: Direction): void {
    if (!d.trailers) return;
    if (!d.headersForwarded) this.forwardHeaders(d, false);
    const t = d.trailers.map(([k, v]) => [k, v] as [string, string]);
    if (d === this.request) {
      if (this.sink) this.sink.requestTrailers?.(t);
      else {
        this.forwarded.requestTrailers = t;
        this.forwarded.requestEnd = true;
      }
    } else {
      if (this.sink) this.sink.responseTrailers?.(t);
      else {
        this.forwarded.responseTrailers = t;
        this.forwarded.responseEnd = true;
      }
    }
  }

  private failStream(): void {
    if (this.failureReplySent || this.localReply) return;
    this.failureReplySent = true;
    this.deliverLocalReply({
      status: 503,
      body: new Uint8Array(0),
      headers: [],
      details: "wasm_fail_stream",
      grpcStatus: 14,
    });
  }

  /** Envoy sendLocalReply: the reply goes out through this filter's response callbacks (unless it is a failure reply). */
  private deliverLocalReply(reply: LocalReply): void {
    if (this.localReply) return;
    this.localReply = reply;
    this.info.responseCodeDetails = reply.details;
    this.request.iter = "done";
    this.request.pending = [];
    if (this.response.headersForwarded) {
      // Envoy cannot send a reply once the response started: it resets the stream.
      this.resetDetails = reply.details;
      this.sink?.reset?.(reply.details);
      return;
    }
    const headers: Pairs = [[":status", String(reply.status)]];
    if (reply.body.length > 0) {
      headers.push(["content-length", String(reply.body.length)], ["content-type", "text/plain"]);
    } else {
      headers.push(["content-length", "0"]);
    }
    for (const [k, v] of reply.headers) headers.push([k.toLowerCase(), v]);
    const d = this.response;
    d.headers = headers;
    d.endStream = reply.body.length === 0;
    const saved = this.localReply;
    this.localReply = null; // let the response path run through the filter
    this.headersCallback(d, headers.length, reply.body.length === 0);
    if (reply.body.length > 0) this.data(d, reply.body, true);
    this.localReply = saved;
  }

  // ---------------- StreamHooks (called by the VM) ----------------

  getMap(type: number, write: boolean): Pairs | null {
    const pick = (d: Direction, trailersType: boolean): Pairs | null => {
      if (this.accessLogPhase) {
        // Envoy: reads in on_log see the access log's copies (getConstMap); mutations still go through
        // the filter's own pointers (getMap), which are set only if never dropped.
        if (write) return trailersType ? (d.trailersLive ? d.trailers : null) : d.headersLive ? d.headers : null;
        return trailersType ? d.trailers : d.headersForwarded || d.headersLive ? d.headers : null;
      }
      if (!trailersType) return d.headersLive ? d.headers : null;
      if (d.trailersLive) return d.trailers;
      // Envoy adds trailers when asked for them during the last body callback.
      if (write && d.body && d.bodyEnd && !d.trailers) {
        d.trailers = [];
        d.trailersLive = true;
        return d.trailers;
      }
      return null;
    };
    switch (type) {
      case HeaderMapType.RequestHeaders:
        return pick(this.request, false);
      case HeaderMapType.RequestTrailers:
        return this.accessLogPhase ? null : pick(this.request, true);
      case HeaderMapType.ResponseHeaders:
        return pick(this.response, false);
      case HeaderMapType.ResponseTrailers:
        return pick(this.response, true);
      default:
        return null;
    }
  }

  onHeadersModified(_type: number): void {
    // Envoy clears the route cache when request headers change; the router (our gateway) picks the
    // route from the headers as forwarded, so nothing to do here.
  }

  getBody(type: number): HostBuffer | null {
    if (type === BufferType.HttpRequestBody) return this.request.body;
    if (type === BufferType.HttpResponseBody) return this.response.body;
    return null;
  }

  setBody(_type: number, _bytes: Uint8Array): void {
    /* the HostBuffer is updated in place by the VM */
  }

  continueStream(type: number): number {
    if (type === StreamType.Request || type === StreamType.Response) {
      const d = type === StreamType.Request ? this.request : this.response;
      // Envoy Context::continueStream drops its pointers to the *request* header and trailer maps at once,
      // for either direction (the response maps stay), and continues after the VM call.
      this.request.headersLive = false;
      this.request.trailersLive = false;
      this.owner.defer(() => this.run(() => this.resume(d)));
      return WasmResult.Ok;
    }
    if (type === StreamType.Upstream) return WasmResult.Unimplemented;
    return WasmResult.Ok;
  }

  closeStream(type: number): number {
    if (type === StreamType.Request || type === StreamType.Response) {
      this.owner.defer(() => {
        if (this.resetDetails !== null) return;
        this.resetDetails = "wasm_close_stream";
        this.request.iter = "done";
        this.response.iter = "done";
        this.sink?.reset?.("wasm_close_stream");
      });
    }
    return WasmResult.Ok;
  }

  sendLocalResponse(status: number, body: Uint8Array, headers: Pairs, grpcStatus: number, details: string): void {
    const reply: LocalReply = {
      status,
      body: Uint8Array.from(body),
      headers,
      details: details.replace(/\s/g, "_"),
      grpcStatus: grpcStatus >= 0 && grpcStatus <= 16 ? grpcStatus : null,
    };
    this.owner.defer(() => this.run(() => this.deliverLocalReply(reply)));
  }

  inAccessLog(): boolean {
    return this.accessLogPhase;
  }

  setProperty(path: string, value: Uint8Array): void {
    this.properties.set(path, Uint8Array.from(value));
  }

  getProperty(parts: string[]): Uint8Array | undefined {
    const key = parts.join(".");
    const own = this.properties.get(key);
    if (own !== undefined) return encodeProperty(own);
    // Envoy reads header-derived attributes through the same pointer as the header-map calls
    // (request_headers_, else the access log's copy in on_log): once the headers callback returned
    // Continue or continue_stream ran, request.path & co. are NOT_FOUND until on_log brings them back.
    const reqLive = this.request.headersLive || this.accessLogPhase;
    const respLive = this.response.headersLive || this.accessLogPhase;
    const req = reqLive ? this.request.headers : [];
    const h = (n: string) => {
      const v = headerGet(req, n);
      return v === undefined ? undefined : enc.encode(v);
    };
    switch (key) {
      case "request.path":
        return h(":path");
      case "request.url_path": {
        const p = headerGet(req, ":path");
        return p === undefined ? undefined : enc.encode(p.split("?")[0]);
      }
      case "request.query": {
        const p = headerGet(req, ":path");
        return p === undefined ? undefined : enc.encode(p.includes("?") ? p.slice(p.indexOf("?") + 1) : "");
      }
      case "request.host":
        return h(":authority");
      case "request.scheme":
        return h(":scheme");
      case "request.method":
        return h(":method");
      case "request.referer":
        return h("referer");
      case "request.useragent":
        return h("user-agent");
      case "request.id":
        return h("x-request-id");
      case "request.protocol":
        return enc.encode("HTTP/1.1");
      case "request.time":
        return encodeProperty(this.startNs);
      // From the stream info (Envoy's UpstreamWrapper / ResponseWrapper), readable in any callback.
      case "upstream.address":
        return this.info.upstreamAddress === null ? undefined : enc.encode(this.info.upstreamAddress);
      case "upstream.port": {
        const a = this.info.upstreamAddress;
        return a === null ? undefined : encodeProperty(BigInt(a.slice(a.lastIndexOf(":") + 1)));
      }
      case "upstream.request_attempt_count":
        return encodeProperty(BigInt(this.info.attemptCount ?? 0));
      case "response.code_details":
        return this.info.responseCodeDetails === null ? undefined : enc.encode(this.info.responseCodeDetails);
      case "response.flags":
        return encodeProperty(BigInt(this.info.responseFlags));
      case "response.code": {
        const s = headerGet(this.response.headers, ":status");
        return s === undefined || (!this.response.headersForwarded && !respLive)
          ? undefined
          : encodeProperty(BigInt(s));
      }
    }
    if (parts[0] === "request" && parts[1] === "headers" && parts.length === 3) return h(parts[2]);
    if (parts[0] === "response" && parts[1] === "headers" && parts.length === 3) {
      const v = respLive ? headerGet(this.response.headers, parts[2]) : undefined;
      return v === undefined ? undefined : enc.encode(v);
    }
    return undefined;
  }
}

/** Strings as UTF-8, integers as 8-byte little-endian int64 (Envoy's CEL serialisation). */
function encodeProperty(v: PropertyValue): Uint8Array {
  if (typeof v === "string") return enc.encode(v);
  if (v instanceof Uint8Array) return v;
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt(v), true);
  return out;
}

function toBytes(c: Uint8Array | string): Uint8Array {
  return typeof c === "string" ? enc.encode(c) : c;
}

function concatAll(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
