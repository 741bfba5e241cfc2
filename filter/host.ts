// Thin wrappers over the proxy-wasm host calls the filter makes on its hot paths. Unlike the runtime's
// helpers they never trap on a non-OK result (the runtime's CHECK_RESULT throws, which kills the VM) and
// they take pre-encoded keys, so a request does not re-encode the same strings every time.
import * as abi from "@solo-io/proxy-runtime/assembly/imports";
import { free, malloc as pinnedBuffer } from "@solo-io/proxy-runtime/assembly/malloc";
import {
  WasmResultValues,
  HeaderMapTypeValues,
  BufferTypeValues,
  Headers,
  HeaderPair,
} from "@solo-io/proxy-runtime/assembly";

// Out-parameters for the host: it writes a pointer and a size (or a CAS / a time) here.
const outPtr = memory.data(8);
const outSize = memory.data(8);
const outU32 = memory.data(8);
const outU64 = memory.data(8);

/** CAS of the value the last `getShared` returned (0 when absent). */
export let lastCas: u32 = 0;

/** Takes over a buffer the host allocated through malloc (pinned): unpins it so the GC owns it. */
function adopt(): ArrayBuffer {
  const ptr = load<usize>(outPtr);
  const size = load<usize>(outSize);
  store<usize>(outPtr, 0);
  if (ptr == 0) return new ArrayBuffer(0);
  free(ptr);
  if (size == 0) return new ArrayBuffer(0);
  return changetype<ArrayBuffer>(ptr);
}

export function encode(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

// Scratch reads. Most host copies a request needs are read once and dropped: body chunks, the snapshot
// meta, the :path and content-length headers. As GC objects they came to ~3 KB a request, which kept the
// incremental collector busy and billed its steps to the next allocation, often one in the decision. The
// host allocates every copy through the module's `malloc`, so a read that arms this reused buffer (outside
// the GC heap) first gets its copy there; everything else still gets a pinned ArrayBuffer.

/** Bytes a scratch read can hold; a larger copy falls back to a GC buffer and is reported as too large. */
export const SCRATCH_BYTES: i32 = 16384;
/** Where a scratch read leaves its bytes (valid until the next scratch read). */
export const scratch: usize = heap.alloc(<usize>SCRATCH_BYTES);
/** A scratch read of a value that exists but did not fit. */
export const SCRATCH_TOO_LARGE: i32 = -2;
let scratchArmed = false;

/** The module's `malloc` export (filter/index.ts): the armed scratch buffer once, else a pinned ArrayBuffer. */
export function malloc(size: i32): usize {
  if (scratchArmed) {
    scratchArmed = false;
    if (size >= 0 && size <= SCRATCH_BYTES) return scratch;
  }
  return pinnedBuffer(size);
}

/** Clears the out-parameters and arms the scratch buffer for the next host allocation. */
function armScratch(): void {
  store<usize>(outPtr, 0);
  store<usize>(outSize, 0);
  scratchArmed = true;
}

/** After a scratch-armed call: bytes now in `scratch`, -1 when the host gave nothing, or SCRATCH_TOO_LARGE. */
function scratchResult(ok: bool): i32 {
  scratchArmed = false; // an empty value is passed without an allocation
  const ptr = load<usize>(outPtr);
  const size = <i32>load<usize>(outSize);
  store<usize>(outPtr, 0);
  if (ptr != 0 && ptr != scratch) {
    free(ptr);
    return SCRATCH_TOO_LARGE;
  } // the GC takes the fallback buffer
  if (!ok) return -1;
  return ptr == 0 ? 0 : size;
}

/** Shared data value into `scratch`: its size, -1 when absent, SCRATCH_TOO_LARGE. Sets `lastCas`. */
export function readSharedToScratch(key: ArrayBuffer): i32 {
  armScratch();
  const ok =
    abi.proxy_get_shared_data(changetype<usize>(key), key.byteLength, outPtr, outSize, outU32) == WasmResultValues.Ok;
  lastCas = ok ? load<u32>(outU32) : 0;
  return scratchResult(ok);
}

/** Bytes [start, start + length) of a host buffer into `scratch` (length at most SCRATCH_BYTES): the count, or -1. */
export function readBufferToScratch(kind: BufferTypeValues, start: u32, length: u32): i32 {
  armScratch();
  return scratchResult(
    abi.proxy_get_buffer_bytes(kind, start, min(length, <u32>SCRATCH_BYTES), outPtr, outSize) == WasmResultValues.Ok,
  );
}

/** A header value into `scratch`: its length, -1 when absent, SCRATCH_TOO_LARGE. */
export function readHeaderToScratch(map: HeaderMapTypeValues, key: ArrayBuffer): i32 {
  armScratch();
  return scratchResult(
    abi.proxy_get_header_map_value(map, changetype<usize>(key), key.byteLength, outPtr, outSize) == WasmResultValues.Ok,
  );
}

/** A stream property (path segments joined by NUL, e.g. "upstream\0address") into `scratch`: its length or -1. */
export function readPropertyToScratch(path: ArrayBuffer): i32 {
  armScratch();
  return scratchResult(
    abi.proxy_get_property(changetype<usize>(path), path.byteLength, outPtr, outSize) == WasmResultValues.Ok,
  );
}

export function nowNs(): u64 {
  if (abi.proxy_get_current_time_nanoseconds(outU64) != WasmResultValues.Ok) return 0;
  return load<u64>(outU64);
}

/** Shared data value, or null (NOT_FOUND or any error). Sets `lastCas`. */
export function getShared(key: ArrayBuffer): ArrayBuffer | null {
  store<usize>(outPtr, 0);
  store<usize>(outSize, 0);
  if (
    abi.proxy_get_shared_data(changetype<usize>(key), key.byteLength, outPtr, outSize, outU32) != WasmResultValues.Ok
  ) {
    lastCas = 0;
    adopt();
    return null;
  }
  lastCas = load<u32>(outU32);
  return adopt();
}

/** Sets shared data; `cas` 0 sets unconditionally. Returns the WasmResult (8 = CAS mismatch). */
export function setShared(key: ArrayBuffer, value: ArrayBuffer, cas: u32 = 0): u32 {
  return abi.proxy_set_shared_data(
    changetype<usize>(key),
    key.byteLength,
    changetype<usize>(value),
    value.byteLength,
    cas,
  );
}

/** Bytes [start, start + length) of a host buffer (request body, http-call body, configuration), or null. */
export function getBuffer(kind: BufferTypeValues, start: u32, length: u32): ArrayBuffer | null {
  store<usize>(outPtr, 0);
  store<usize>(outSize, 0);
  const r = abi.proxy_get_buffer_bytes(kind, start, length, outPtr, outSize);
  if (r != WasmResultValues.Ok) {
    adopt();
    return null;
  }
  return adopt();
}

/** A request/response header value, or null when absent or the map is not available. */
export function getHeader(map: HeaderMapTypeValues, key: ArrayBuffer): ArrayBuffer | null {
  store<usize>(outPtr, 0);
  store<usize>(outSize, 0);
  const r = abi.proxy_get_header_map_value(map, changetype<usize>(key), key.byteLength, outPtr, outSize);
  if (r != WasmResultValues.Ok) {
    adopt();
    return null;
  }
  return adopt();
}

/**
 * Replaces bytes [0, length) of a body buffer with `size` bytes at `ptr` (Envoy's Buffer::copyFrom: start 0
 * drains `length` bytes and prepends the data; start >= size appends; any other start is BAD_ARGUMENT, so a
 * range in the middle is rewritten by replacing everything before its end). Returns the WasmResult.
 */
export function replaceBufferPrefix(kind: BufferTypeValues, length: u32, ptr: usize, size: i32): u32 {
  return abi.proxy_set_buffer_bytes(kind, 0, length, ptr, size);
}

export function removeHeader(map: HeaderMapTypeValues, key: ArrayBuffer): u32 {
  return abi.proxy_remove_header_map_value(map, changetype<usize>(key), key.byteLength);
}

export function replaceHeader(map: HeaderMapTypeValues, key: ArrayBuffer, valuePtr: usize, valueLen: i32): u32 {
  return abi.proxy_replace_header_map_value(map, changetype<usize>(key), key.byteLength, valuePtr, valueLen);
}

export function continueRequest(): u32 {
  return abi.proxy_continue_stream(0);
}

/** Makes later host calls of this VM call act on context `id` (e.g. a stream, from a tick). */
export function setEffectiveContext(id: u32): u32 {
  return abi.proxy_set_effective_context(id);
}

/**
 * A local reply with a plain-text body; `details` shows in Envoy's access log as %RESPONSE_CODE_DETAILS%.
 * `extraName`/`extraValue`: one more response header (ASCII), e.g. flow control's reason.
 */
export function localReply(
  status: u32,
  details: string,
  body: string,
  extraName: string = "",
  extraValue: string = "",
): u32 {
  const d = String.UTF8.encode(details);
  const b = String.UTF8.encode(body);
  // Serialised header pairs: count, then the sizes of each name and value, then NUL-terminated bytes.
  const names: string[] = ["content-type"];
  const values: string[] = ["text/plain"];
  if (extraName.length > 0) {
    names.push(extraName);
    values.push(extraValue);
  }
  let size = 4;
  for (let k = 0; k < names.length; k++) size += 8 + names[k].length + 1 + values[k].length + 1;
  const pairs = new ArrayBuffer(size);
  const p = changetype<usize>(pairs);
  store<u32>(p, names.length);
  let w = p + 4 + 8 * <usize>names.length;
  for (let k = 0; k < names.length; k++) {
    const key = names[k],
      value = values[k];
    store<u32>(p + 4 + 8 * <usize>k, key.length);
    store<u32>(p + 8 + 8 * <usize>k, value.length);
    for (let i = 0; i < key.length; i++) store<u8>(w + <usize>i, <u8>key.charCodeAt(i));
    store<u8>(w + <usize>key.length, 0);
    w += <usize>key.length + 1;
    for (let i = 0; i < value.length; i++) store<u8>(w + <usize>i, <u8>value.charCodeAt(i));
    store<u8>(w + <usize>value.length, 0);
    w += <usize>value.length + 1;
  }
  return abi.proxy_send_local_response(
    status,
    changetype<usize>(d),
    d.byteLength,
    changetype<usize>(b),
    b.byteLength,
    p,
    pairs.byteLength,
    -1,
  );
}

/** A header of an http call's request. */
export function headerPair(key: string, value: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(key), String.UTF8.encode(value));
}

/** Serialises header pairs for proxy_http_call (the runtime's own serialiser is private). */
export function serializePairs(headers: Headers): ArrayBuffer {
  let size = 4;
  for (let i = 0; i < headers.length; i++) size += 8 + headers[i].key.byteLength + 1 + headers[i].value.byteLength + 1;
  const out = new ArrayBuffer(size);
  const p = changetype<usize>(out);
  store<u32>(p, headers.length);
  let w = p + 4 + <usize>(8 * headers.length);
  for (let i = 0; i < headers.length; i++) {
    const k = headers[i].key,
      v = headers[i].value;
    store<u32>(p + 4 + <usize>(8 * i), k.byteLength);
    store<u32>(p + 8 + <usize>(8 * i), v.byteLength);
    memory.copy(w, changetype<usize>(k), k.byteLength);
    w += <usize>k.byteLength;
    store<u8>(w++, 0);
    memory.copy(w, changetype<usize>(v), v.byteLength);
    w += <usize>v.byteLength;
    store<u8>(w++, 0);
  }
  return out;
}

/** Dispatches an HTTP call (with `body`, when given); returns the token, or 0 when the host refused it. */
export function httpCall(
  cluster: ArrayBuffer,
  headers: ArrayBuffer,
  timeoutMs: u32,
  body: ArrayBuffer | null = null,
): u32 {
  const sent = body != null ? body : new ArrayBuffer(0);
  const noTrailers = new ArrayBuffer(4);
  const r = abi.proxy_http_call(
    changetype<usize>(cluster),
    cluster.byteLength,
    changetype<usize>(headers),
    headers.byteLength,
    changetype<usize>(sent),
    sent.byteLength,
    changetype<usize>(noTrailers),
    4,
    timeoutMs,
    outU32,
  );
  return r == WasmResultValues.Ok ? load<u32>(outU32) : 0;
}

/** The first value of a header of the http-call response (e.g. ":status"), or null. */
export function httpCallHeader(key: ArrayBuffer): ArrayBuffer | null {
  return getHeader(HeaderMapTypeValues.HttpCallResponseHeaders, key);
}

export function setTickPeriod(ms: u32): void {
  abi.proxy_set_tick_period_milliseconds(ms);
}

// Metrics: ids are defined once per VM; every call ignores the result (a metric is never worth a trap).
// Envoy's ids start at 4, 5, 6 (counter, gauge, histogram) and step by 4, the low 2 bits being the type,
// so 0xffffffff (type bits 3: no type) is never an id and "undefined" is NO_METRIC.
export const NO_METRIC: u32 = 0xffffffff;
export function defineMetric(kind: i32, name: string): u32 {
  const n = String.UTF8.encode(name);
  if (abi.proxy_define_metric(kind, changetype<usize>(n), n.byteLength, outU32) != WasmResultValues.Ok)
    return NO_METRIC;
  return load<u32>(outU32);
}
export function incrementMetric(id: u32, by: i64): void {
  if (id != NO_METRIC) abi.proxy_increment_metric(id, by);
}
/** A metric's current value (a gauge: the sum over every VM that adds to it); 0 when unknown. */
export function getMetric(id: u32): u64 {
  if (id == NO_METRIC || abi.proxy_get_metric(id, outU64) != WasmResultValues.Ok) return 0;
  return load<u64>(outU64);
}
export function recordMetric(id: u32, value: u64): void {
  if (id != NO_METRIC) abi.proxy_record_metric(id, value);
}

export function logAt(level: i32, message: string): void {
  const b = String.UTF8.encode(message);
  abi.proxy_log(level, changetype<usize>(b), b.byteLength);
}

// WASI's random_get: proxy-wasm-cpp-host fills it from the host's random device (Envoy and the emulator
// both provide it). Only for identities that must differ between Envoy processes started at the same
// instant; decisions use the seeded generator in rng.ts.
// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "random_get") declare function wasiRandomGet(buf: usize, len: usize): u16;

/** 64 random bits from the host, or 0 when it has none to give. */
export function hostRandomU64(): u64 {
  return wasiRandomGet(outU32, 8) == 0 ? load<u64>(outU32) : 0;
}

// The filter's log lines, at proxy-wasm's levels, each prefixed with the plugin's name.
export function logInfo(message: string): void {
  logAt(2, "endpoint-picker: " + message);
}
export function logWarn(message: string): void {
  logAt(3, "endpoint-picker: " + message);
}
export function logError(message: string): void {
  logAt(4, "endpoint-picker: " + message);
}
