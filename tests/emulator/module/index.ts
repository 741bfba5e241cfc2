// @ts-nocheck -- AssemblyScript, compiled by asc (tests/emulator/asconfig.json), not by tsc.
// A small proxy-wasm module that drives host functions for the emulator's tests. The request header
// `x-op` picks an operation run in proxy_on_request_headers; arguments come in `x-a`, `x-b`, `x-c`; every
// result is reported through proxy_log as "op rc=<code> ..." so tests compare return codes with cpp-host.

@external("env", "proxy_log") declare function proxy_log(level: u32, ptr: usize, size: usize): u32;
@external("env", "proxy_get_header_map_value") declare function proxy_get_header_map_value(
  t: u32,
  kp: usize,
  ks: usize,
  vpp: usize,
  vsp: usize,
): u32;
@external("env", "proxy_add_header_map_value") declare function proxy_add_header_map_value(
  t: u32,
  kp: usize,
  ks: usize,
  vp: usize,
  vs: usize,
): u32;
@external("env", "proxy_replace_header_map_value") declare function proxy_replace_header_map_value(
  t: u32,
  kp: usize,
  ks: usize,
  vp: usize,
  vs: usize,
): u32;
@external("env", "proxy_remove_header_map_value") declare function proxy_remove_header_map_value(
  t: u32,
  kp: usize,
  ks: usize,
): u32;
@external("env", "proxy_get_header_map_pairs") declare function proxy_get_header_map_pairs(
  t: u32,
  pp: usize,
  sp: usize,
): u32;
@external("env", "proxy_set_header_map_pairs") declare function proxy_set_header_map_pairs(
  t: u32,
  p: usize,
  s: usize,
): u32;
@external("env", "proxy_get_shared_data") declare function proxy_get_shared_data(
  kp: usize,
  ks: usize,
  vpp: usize,
  vsp: usize,
  casp: usize,
): u32;
@external("env", "proxy_set_shared_data") declare function proxy_set_shared_data(
  kp: usize,
  ks: usize,
  vp: usize,
  vs: usize,
  cas: u32,
): u32;
@external("env", "proxy_register_shared_queue") declare function proxy_register_shared_queue(
  np: usize,
  ns: usize,
  tp: usize,
): u32;
@external("env", "proxy_resolve_shared_queue") declare function proxy_resolve_shared_queue(
  vp: usize,
  vs: usize,
  np: usize,
  ns: usize,
  tp: usize,
): u32;
@external("env", "proxy_enqueue_shared_queue") declare function proxy_enqueue_shared_queue(
  t: u32,
  p: usize,
  s: usize,
): u32;
@external("env", "proxy_dequeue_shared_queue") declare function proxy_dequeue_shared_queue(
  t: u32,
  pp: usize,
  sp: usize,
): u32;
@external("env", "proxy_get_buffer_bytes") declare function proxy_get_buffer_bytes(
  t: u32,
  start: u32,
  len: u32,
  pp: usize,
  sp: usize,
): u32;
@external("env", "proxy_set_buffer_bytes") declare function proxy_set_buffer_bytes(
  t: u32,
  start: u32,
  len: u32,
  p: usize,
  s: usize,
): u32;
@external("env", "proxy_get_buffer_status") declare function proxy_get_buffer_status(t: u32, lp: usize, fp: usize): u32;
@external("env", "proxy_set_tick_period_milliseconds") declare function proxy_set_tick_period_milliseconds(
  ms: u32,
): u32;
@external("env", "proxy_get_current_time_nanoseconds") declare function proxy_get_current_time_nanoseconds(
  p: usize,
): u32;
@external("env", "proxy_http_call") declare function proxy_http_call(
  up: usize,
  us: usize,
  hp: usize,
  hs: usize,
  bp: usize,
  bs: usize,
  tp: usize,
  ts: usize,
  timeout: u32,
  tokp: usize,
): u32;
@external("env", "proxy_get_status") declare function proxy_get_status(cp: usize, pp: usize, sp: usize): u32;
@external("env", "proxy_send_local_response") declare function proxy_send_local_response(
  code: u32,
  dp: usize,
  ds: usize,
  bp: usize,
  bs: usize,
  hp: usize,
  hs: usize,
  grpc: i32,
): u32;
@external("env", "proxy_continue_stream") declare function proxy_continue_stream(t: u32): u32;
@external("env", "proxy_set_effective_context") declare function proxy_set_effective_context(id: u32): u32;
@external("env", "proxy_define_metric") declare function proxy_define_metric(
  t: u32,
  np: usize,
  ns: usize,
  idp: usize,
): u32;
@external("env", "proxy_increment_metric") declare function proxy_increment_metric(id: u32, off: i64): u32;
@external("env", "proxy_record_metric") declare function proxy_record_metric(id: u32, v: u64): u32;
@external("env", "proxy_get_metric") declare function proxy_get_metric(id: u32, p: usize): u32;
@external("env", "proxy_get_property") declare function proxy_get_property(
  pp: usize,
  ps: usize,
  vpp: usize,
  vsp: usize,
): u32;
@external("wasi_snapshot_preview1", "proc_exit") declare function proc_exit(code: u32): void;

// @ts-ignore
@global export function test_abort(message: string | null, file: string | null, line: u32, col: u32): void {
  proc_exit(255);
}

export function proxy_abi_version_0_2_1(): void {}
// Both allocators, counted: cpp-host takes `malloc` whenever the module exports it.
let mallocCalls: u32 = 0;
let allocateCalls: u32 = 0;
export function proxy_on_memory_allocate(size: usize): usize {
  allocateCalls++;
  return heap.alloc(size);
}
export function malloc(size: usize): usize {
  mallocCalls++;
  return heap.alloc(size);
}

// ---- helpers ----
const out = memory.data(16); // two words for (ptr, size) results, plus scratch
function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}
function log(msg: string): void {
  const b = utf8(msg);
  proxy_log(2, changetype<usize>(b), b.byteLength);
}
function takeString(): string {
  const p = load<usize>(out),
    n = load<usize>(out + 4);
  if (p == 0) return "";
  const s = String.UTF8.decodeUnsafe(p, n);
  heap.free(p);
  return s;
}
function header(t: u32, name: string): string | null {
  const k = utf8(name);
  const rc = proxy_get_header_map_value(t, changetype<usize>(k), k.byteLength, out, out + 4);
  if (rc != 0) return null;
  return takeString();
}
function arg(name: string): string {
  const v = header(0, name);
  return v == null ? "" : v!;
}
function num(name: string): u32 {
  const s = arg(name);
  return s.length == 0 ? 0 : <u32>parseInt(s);
}

/** Pairs wire format -> "k=v;k=v". */
function pairsText(): string {
  const p = load<usize>(out),
    n = load<usize>(out + 4);
  if (n == 0) return "";
  const count = load<u32>(p);
  let at = p + 4 + count * 8;
  let s = "";
  for (let i: u32 = 0; i < count; i++) {
    const kl = load<u32>(p + 4 + i * 8),
      vl = load<u32>(p + 8 + i * 8);
    const k = String.UTF8.decodeUnsafe(at, kl);
    at += kl + 1;
    const v = String.UTF8.decodeUnsafe(at, vl);
    at += vl + 1;
    s += (i > 0 ? ";" : "") + k + "=" + v;
  }
  heap.free(p);
  return s;
}
function pairsBytes(text: string): ArrayBuffer {
  // "k=v;k=v" -> wire format
  const items = text.length == 0 ? new Array<string>(0) : text.split(";");
  let size = 4 + items.length * 8;
  const keys = new Array<ArrayBuffer>(),
    vals = new Array<ArrayBuffer>();
  for (let i = 0; i < items.length; i++) {
    const eq = items[i].indexOf("=");
    keys.push(utf8(items[i].substring(0, eq)));
    vals.push(utf8(items[i].substring(eq + 1)));
    size += keys[i].byteLength + vals[i].byteLength + 2;
  }
  const buf = new ArrayBuffer(size);
  const b = changetype<usize>(buf);
  store<u32>(b, items.length);
  let at = b + 4 + items.length * 8;
  for (let i = 0; i < items.length; i++) {
    store<u32>(b + 4 + i * 8, keys[i].byteLength);
    store<u32>(b + 8 + i * 8, vals[i].byteLength);
    memory.copy(at, changetype<usize>(keys[i]), keys[i].byteLength);
    at += keys[i].byteLength;
    store<u8>(at, 0);
    at += 1;
    memory.copy(at, changetype<usize>(vals[i]), vals[i].byteLength);
    at += vals[i].byteLength;
    store<u8>(at, 0);
    at += 1;
  }
  return buf;
}

// ---- state ----
let rootId: u32 = 0;
let tickPeriod: u32 = 0;
let ticks: u32 = 0;
let counterId: u32 = 0;
let pausedContext: u32 = 0;
let bodyOp: string = "";
let queueToken: u32 = 0;
let respPauseNext = false;
let respPausedContext: u32 = 0;
/** The next response has its length changed in the body callback (and its content-length removed). */
let respResize = false;
let propsContext: u32 = 0;

/** A string property, or "none". */
function propText(name: string): string {
  const path = utf8(name.replaceAll(".", "\0"));
  const rc = proxy_get_property(changetype<usize>(path), path.byteLength, out, out + 4);
  return rc == 0 ? takeString() : "none";
}
/** An 8-byte little-endian integer property, or "none". */
function propU64(name: string): string {
  const path = utf8(name.replaceAll(".", "\0"));
  const rc = proxy_get_property(changetype<usize>(path), path.byteLength, out, out + 4);
  if (rc != 0) return "none";
  const p = load<usize>(out),
    n = load<usize>(out + 4);
  const v = n == 8 ? load<u64>(p).toString() : "size=" + n.toString();
  heap.free(p);
  return v;
}
/** The stream-info properties the endpoint picker reads in on_response_headers and on_log. */
function logProps(label: string): void {
  log(
    label +
      " addr=" +
      propText("upstream.address") +
      " details=" +
      propText("response.code_details") +
      " flags=" +
      propU64("response.flags") +
      " attempts=" +
      propU64("upstream.request_attempt_count"),
  );
}

export function proxy_on_context_create(id: u32, parent: u32): void {
  if (parent == 0) rootId = id;
}
export function proxy_on_vm_start(id: u32, size: u32): u32 {
  return 1;
}
export function proxy_on_configure(id: u32, size: u32): u32 {
  const crc = proxy_get_buffer_bytes(7, 0, size, out, out + 4);
  const cfg = crc == 0 ? takeString() : "";
  if (cfg == "refuse") return 0;
  if (cfg.startsWith("tick=")) {
    tickPeriod = <u32>parseInt(cfg.substring(5));
    proxy_set_tick_period_milliseconds(tickPeriod);
  }
  const name = utf8("ticks");
  proxy_define_metric(0, changetype<usize>(name), name.byteLength, out);
  counterId = load<u32>(out);
  return 1;
}
export function proxy_on_tick(id: u32): void {
  ticks++;
  proxy_increment_metric(counterId, 1);
  log("tick root=" + id.toString() + " n=" + ticks.toString());
  if (pausedContext != 0) {
    const ctx = pausedContext;
    pausedContext = 0;
    const rc1 = proxy_set_effective_context(ctx);
    const k = utf8("x-resumed-by"),
      v = utf8("tick");
    const rc2 = proxy_add_header_map_value(0, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
    const rc3 = proxy_continue_stream(0);
    log("resume rc=" + rc1.toString() + "," + rc2.toString() + "," + rc3.toString());
  }
  if (respPausedContext != 0) {
    // continue_stream(Response) from the tick: which maps does the stream context still reach?
    const ctx = respPausedContext;
    respPausedContext = 0;
    proxy_set_effective_context(ctx);
    const before = header(0, ":path") != null ? "0" : "gone";
    const rc = proxy_continue_stream(1);
    const k = utf8(":path");
    const reqAfter = proxy_get_header_map_value(0, changetype<usize>(k), k.byteLength, out, out + 4);
    if (reqAfter == 0) heap.free(load<usize>(out));
    const s = utf8(":status");
    const respAfter = proxy_get_header_map_value(2, changetype<usize>(s), s.byteLength, out, out + 4);
    if (respAfter == 0) heap.free(load<usize>(out));
    log(
      "resp_resume rc=" +
        rc.toString() +
        " req_before=" +
        before +
        " req_after=" +
        reqAfter.toString() +
        " resp_after=" +
        respAfter.toString(),
    );
  }
}

export function proxy_on_request_headers(id: u32, headers: u32, eos: u32): u32 {
  const op = arg("x-op");
  if (op == "") return 0;
  if (op == "props") {
    propsContext = id; // log the stream-info properties in on_response_headers and on_log
    return 0;
  }
  const a = arg("x-a"),
    b = arg("x-b");
  const ka = utf8(a),
    kb = utf8(b);
  let rc: u32 = 0;
  if (op == "shared_set") {
    rc = proxy_set_shared_data(changetype<usize>(ka), ka.byteLength, changetype<usize>(kb), kb.byteLength, num("x-c"));
    log("shared_set rc=" + rc.toString());
  } else if (op == "shared_get") {
    rc = proxy_get_shared_data(changetype<usize>(ka), ka.byteLength, out, out + 4, out + 8);
    const cas = load<u32>(out + 8);
    log("shared_get rc=" + rc.toString() + (rc == 0 ? " value=" + takeString() + " cas=" + cas.toString() : ""));
  } else if (op == "hdr") {
    // x-a: action, x-b: map type, x-c: key, x-d: value
    const t = num("x-b");
    const k = utf8(arg("x-c")),
      v = utf8(arg("x-d"));
    if (a == "add")
      rc = proxy_add_header_map_value(t, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
    else if (a == "replace")
      rc = proxy_replace_header_map_value(t, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
    else if (a == "remove") rc = proxy_remove_header_map_value(t, changetype<usize>(k), k.byteLength);
    else if (a == "get") {
      rc = proxy_get_header_map_value(t, changetype<usize>(k), k.byteLength, out, out + 4);
      if (rc == 0) {
        log("hdr get rc=0 value=" + takeString());
        return 0;
      }
    } else if (a == "pairs") {
      rc = proxy_get_header_map_pairs(t, out, out + 4);
      log("hdr pairs rc=" + rc.toString() + " " + (rc == 0 ? pairsText() : ""));
      return 0;
    } else if (a == "set_pairs") {
      const p = pairsBytes(arg("x-d"));
      rc = proxy_set_header_map_pairs(t, changetype<usize>(p), p.byteLength);
    }
    log("hdr " + a + " rc=" + rc.toString());
  } else if (op == "log_bad_level") {
    rc = proxy_log(9, changetype<usize>(ka), ka.byteLength);
    log("log_bad_level rc=" + rc.toString());
  } else if (op == "http_call") {
    const hdrs = pairsBytes(":method=GET;:path=" + arg("x-c") + ";:authority=test");
    const body = utf8("");
    const none = pairsBytes("");
    rc = proxy_http_call(
      changetype<usize>(ka),
      ka.byteLength,
      changetype<usize>(hdrs),
      hdrs.byteLength,
      changetype<usize>(body),
      0,
      changetype<usize>(none),
      none.byteLength,
      num("x-b"),
      out,
    );
    log("http_call rc=" + rc.toString() + " token=" + load<u32>(out).toString());
  } else if (op == "http_call_no_path") {
    const hdrs = pairsBytes(":method=GET;:authority=test");
    const none = pairsBytes("");
    rc = proxy_http_call(
      changetype<usize>(ka),
      ka.byteLength,
      changetype<usize>(hdrs),
      hdrs.byteLength,
      0,
      0,
      changetype<usize>(none),
      none.byteLength,
      1000,
      out,
    );
    log("http_call rc=" + rc.toString());
  } else if (op == "local_reply") {
    const d = utf8("denied by test"),
      h = pairsBytes("x-why=test");
    rc = proxy_send_local_response(
      <u32>parseInt(a),
      changetype<usize>(d),
      d.byteLength,
      changetype<usize>(kb),
      kb.byteLength,
      changetype<usize>(h),
      h.byteLength,
      -1,
    );
    log("local_reply rc=" + rc.toString());
    return 0;
  } else if (op == "pause") {
    bodyOp = a; // what to do in the body callback
    if (b == "resp_pause") respPauseNext = true; // and hold the response headers until the next tick
    if (b == "resp_resize") respResize = true;
    return 1;
  } else if (op == "pause_until_tick") {
    pausedContext = id;
    bodyOp = a;
    return 1;
  } else if (op == "trap") {
    unreachable();
  } else if (op == "abort") {
    assert(false, "test abort");
  } else if (op == "metric") {
    // define counter a, increment by x-c (signed), get
    const t = num("x-b");
    rc = proxy_define_metric(t, changetype<usize>(ka), ka.byteLength, out);
    const mid = load<u32>(out);
    const rc2 = proxy_increment_metric(mid, <i64>parseInt(arg("x-c")));
    const rc3 = proxy_record_metric(mid, 7);
    const rc4 = proxy_get_metric(mid, out + 8);
    log(
      "metric rc=" +
        rc.toString() +
        "," +
        rc2.toString() +
        "," +
        rc3.toString() +
        "," +
        rc4.toString() +
        " id=" +
        mid.toString() +
        " value=" +
        load<u64>(out + 8).toString(),
    );
  } else if (op == "metric_bad") {
    rc = proxy_define_metric(7, changetype<usize>(ka), ka.byteLength, out);
    const rc2 = proxy_increment_metric(12345 * 4, 1);
    log("metric_bad rc=" + rc.toString() + "," + rc2.toString());
  } else if (op == "queue") {
    rc = proxy_register_shared_queue(changetype<usize>(ka), ka.byteLength, out);
    queueToken = load<u32>(out);
    const vm = utf8(b);
    const rc2 = proxy_resolve_shared_queue(
      changetype<usize>(vm),
      vm.byteLength,
      changetype<usize>(ka),
      ka.byteLength,
      out,
    );
    const resolved = load<u32>(out);
    const rc3 = proxy_dequeue_shared_queue(queueToken, out, out + 4);
    const item = utf8("item-1");
    const rc4 = proxy_enqueue_shared_queue(queueToken, changetype<usize>(item), item.byteLength);
    const rc5 = proxy_dequeue_shared_queue(999, out, out + 4);
    log(
      "queue rc=" +
        rc.toString() +
        "," +
        rc2.toString() +
        "," +
        rc3.toString() +
        "," +
        rc4.toString() +
        "," +
        rc5.toString() +
        " same=" +
        (resolved == queueToken ? "1" : "0"),
    );
  } else if (op == "queue_resolve_missing") {
    const vm = utf8(b);
    rc = proxy_resolve_shared_queue(changetype<usize>(vm), vm.byteLength, changetype<usize>(ka), ka.byteLength, out);
    log("queue_resolve rc=" + rc.toString());
  } else if (op == "property") {
    const path = utf8(a.replaceAll(".", "\0"));
    rc = proxy_get_property(changetype<usize>(path), path.byteLength, out, out + 4);
    log("property rc=" + rc.toString() + (rc == 0 ? " value=" + takeString() : ""));
  } else if (op == "buffers") {
    const rc1 = proxy_get_buffer_bytes(7, 0, 10, out, out + 4); // plugin configuration outside on_configure
    const rc2 = proxy_get_buffer_bytes(4, 0, 10, out, out + 4); // http call body outside the callback
    const rc3 = proxy_get_buffer_status(99, out, out + 4);
    const rc4 = proxy_get_buffer_bytes(0, 0, 10, out, out + 4); // request body, none in flight
    const size = load<u32>(out + 4);
    const rc5 = proxy_set_buffer_bytes(6, 0, 0, changetype<usize>(ka), ka.byteLength);
    log(
      "buffers rc=" +
        rc1.toString() +
        "," +
        rc2.toString() +
        "," +
        rc3.toString() +
        "," +
        rc4.toString() +
        "," +
        rc5.toString() +
        " size=" +
        size.toString(),
    );
  } else if (op == "set_pairs_bad") {
    // x-c: "trailing" (one byte after the last NUL) or "nonul" (the key's NUL overwritten)
    const good = pairsBytes("k=v");
    const n = good.byteLength + (arg("x-c") == "trailing" ? 1 : 0);
    const buf = new ArrayBuffer(n);
    memory.copy(changetype<usize>(buf), changetype<usize>(good), good.byteLength);
    if (arg("x-c") == "nonul") store<u8>(changetype<usize>(buf) + 4 + 8 + 1, 0x78);
    rc = proxy_set_header_map_pairs(0, changetype<usize>(buf), n);
    log("set_pairs_bad rc=" + rc.toString());
  } else if (op == "metric_ids") {
    const c = utf8("mc"),
      g = utf8("mg"),
      h = utf8("mh");
    proxy_define_metric(0, changetype<usize>(c), c.byteLength, out);
    const cid = load<u32>(out);
    proxy_define_metric(1, changetype<usize>(g), g.byteLength, out);
    const gid = load<u32>(out);
    proxy_define_metric(2, changetype<usize>(h), h.byteLength, out);
    const hid = load<u32>(out);
    log(
      "metric_ids configure_counter=" +
        counterId.toString() +
        " counter=" +
        cid.toString() +
        " gauge=" +
        gid.toString() +
        " histogram=" +
        hid.toString(),
    );
  } else if (op == "alloc_counts") {
    mallocCalls = 0;
    allocateCalls = 0;
    header(0, ":path"); // the host copies the value in through the module's allocator
    log("alloc_counts malloc=" + mallocCalls.toString() + " proxy_on_memory_allocate=" + allocateCalls.toString());
  } else if (op == "time") {
    proxy_get_current_time_nanoseconds(out);
    log("time ns=" + load<u64>(out).toString());
  }
  return 0;
}

export function proxy_on_request_body(id: u32, size: u32, eos: u32): u32 {
  if (bodyOp == "") return 0;
  const brc = proxy_get_buffer_bytes(0, 0, size, out, out + 4);
  const body = brc == 0 ? takeString() : "";
  const k = utf8("x-from-body"),
    v = utf8(body);
  const rc = proxy_replace_header_map_value(0, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
  log("body size=" + size.toString() + " eos=" + eos.toString() + " body=" + body + " set_header rc=" + rc.toString());
  if (bodyOp == "prop") {
    const path = utf8("request\0path");
    const prc = proxy_get_property(changetype<usize>(path), path.byteLength, out, out + 4);
    log("body_property rc=" + prc.toString() + (prc == 0 ? " value=" + takeString() : ""));
  }
  if (bodyOp == "buffer" && eos == 0) return 1; // StopIterationAndBuffer until the end
  if (bodyOp == "rewrite") {
    const nb = utf8("REWRITTEN");
    const rc2 = proxy_set_buffer_bytes(0, 0, size, changetype<usize>(nb), nb.byteLength);
    log("rewrite rc=" + rc2.toString());
  }
  if (bodyOp == "prefix") {
    // start 0, length 3 < size: Envoy drains the first 3 bytes and prepends the data
    const nb = utf8("XY");
    const rc2 = proxy_set_buffer_bytes(0, 0, 3, changetype<usize>(nb), nb.byteLength);
    log("prefix rc=" + rc2.toString());
  }
  if (bodyOp == "middle") {
    // a range that neither starts at 0 nor at the end: Envoy's Buffer::copyFrom refuses it
    const nb = utf8("Z");
    const rc2 = proxy_set_buffer_bytes(0, 2, 1, changetype<usize>(nb), nb.byteLength);
    log("middle rc=" + rc2.toString());
  }
  if (bodyOp == "append") {
    const nb = utf8("!");
    const rc2 = proxy_set_buffer_bytes(0, size, 0, changetype<usize>(nb), nb.byteLength);
    log("append rc=" + rc2.toString());
  }
  if (bodyOp == "resize") {
    // What a model rewrite does: buffer the whole body, replace its first 3 bytes with 7, fix content-length.
    if (eos == 0) return 1;
    const nb = utf8("ABCDEFG");
    const rc2 = proxy_set_buffer_bytes(0, 0, 3, changetype<usize>(nb), nb.byteLength);
    const cl = header(0, "content-length");
    let rc3: u32 = 99;
    if (cl != null) {
      const k = utf8("content-length"),
        v = utf8((<i64>parseInt(cl) + 4).toString());
      rc3 = proxy_replace_header_map_value(0, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
    }
    log("resize rc=" + rc2.toString() + " content_length rc=" + rc3.toString());
  }
  if (bodyOp == "rest") {
    // the "rest of the buffer" idiom: start 2, length 0xFFFFFFFF
    const rc2 = proxy_get_buffer_bytes(0, 2, 0xffffffff, out, out + 4);
    log("rest rc=" + rc2.toString() + " bytes=" + (rc2 == 0 ? takeString() : ""));
  }
  return 0;
}

export function proxy_on_response_body(id: u32, size: u32, eos: u32): u32 {
  if (!respResize) return 0;
  if (eos == 0) return 1; // buffered until the end
  respResize = false;
  const brc = proxy_get_buffer_bytes(1, 0, size, out, out + 4);
  const body = brc == 0 ? takeString() : "";
  const nb = utf8("<" + body + ">");
  const rc = proxy_set_buffer_bytes(1, 0, size, changetype<usize>(nb), nb.byteLength);
  log("resp_resize rc=" + rc.toString());
  return 0;
}

export function proxy_on_response_headers(id: u32, headers: u32, eos: u32): u32 {
  if (id == propsContext) logProps("resp_props");
  if (respResize) {
    const cl = utf8("content-length");
    proxy_remove_header_map_value(2, changetype<usize>(cl), cl.byteLength);
  }
  const k = utf8("x-test-module"),
    v = utf8("seen");
  proxy_add_header_map_value(2, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
  if (respPauseNext) {
    respPauseNext = false;
    respPausedContext = id;
    return 1;
  }
  return 0;
}

export function proxy_on_http_call_response(id: u32, token: u32, headers: u32, bodySize: u32, trailers: u32): void {
  proxy_get_status(out + 8, out, out + 4);
  const code = load<u32>(out + 8);
  const msg = takeString();
  const status = header(6, ":status");
  const brc = proxy_get_buffer_bytes(4, 0, bodySize, out, out + 4);
  const body = brc == 0 ? takeString() : "";
  log(
    "http_response root=" +
      id.toString() +
      " token=" +
      token.toString() +
      " headers=" +
      headers.toString() +
      " body=" +
      body +
      " status=" +
      (status == null ? "none" : status!) +
      " get_status=" +
      code.toString() +
      ":" +
      msg,
  );
}

export function proxy_on_queue_ready(id: u32, token: u32): void {
  const rc = proxy_dequeue_shared_queue(token, out, out + 4);
  log("queue_ready root=" + id.toString() + " rc=" + rc.toString() + " item=" + (rc == 0 ? takeString() : ""));
}

export function proxy_on_log(id: u32): void {
  if (id == propsContext) {
    logProps("log_props");
    propsContext = 0;
    return;
  }
  const k = utf8("x-op");
  const rc = proxy_add_header_map_value(0, changetype<usize>(k), k.byteLength, changetype<usize>(k), k.byteLength);
  const v = header(0, ":path");
  const t = utf8("x-t");
  const trc = proxy_get_header_map_value(1, changetype<usize>(t), t.byteLength, out, out + 4); // request trailers: none in on_log
  log(
    "on_log ctx=" +
      id.toString() +
      " add_rc=" +
      rc.toString() +
      " path=" +
      (v == null ? "none" : v!) +
      " trailers_rc=" +
      trc.toString(),
  );
}
export function proxy_on_done(id: u32): u32 {
  log("on_done ctx=" + id.toString());
  return 1;
}
export function proxy_on_delete(id: u32): void {
  log("on_delete ctx=" + id.toString());
}
