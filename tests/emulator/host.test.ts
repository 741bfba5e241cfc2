// The emulator's host functions against what proxy-wasm-cpp-host and Envoy answer, driven through the
// small AssemblyScript module in tests/emulator/module (built to build/emulator-test-module.wasm).
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { createHost, HostOptions, EnvoyProcess } from "../../envoy/emulator/host";
import { buildModule } from "../helpers/wasm-module";

const MODULE = "build/emulator-test-module.wasm";

function makeHost(extra: Partial<HostOptions> = {}) {
  const logs: string[] = [];
  const host = createHost({
    wasm: MODULE,
    rootId: "test-root",
    vmId: "test-vm",
    configuration: "",
    manualTicks: true,
    onLog: (_l, m, w) => logs.push(`${w}|${m}`),
    ...extra,
  });
  const last = (prefix: string) => {
    const l = logs.filter((x) => x.split("|")[1].startsWith(prefix)).pop();
    assert.ok(l, `no log starting with ${prefix}; logs: ${logs.join("\n")}`);
    return l.split("|")[1];
  };
  return { host, logs, last };
}

const base: [string, string][] = [
  [":method", "GET"],
  [":path", "/p?q=1"],
  [":authority", "gw"],
];
function op(
  host: ReturnType<typeof makeHost>["host"],
  name: string,
  args: Record<string, string> = {},
  worker?: number,
) {
  const s = host.openStream({ worker });
  s.sendRequestHeaders([...base, ["x-op", name], ...Object.entries(args)], true);
  return s;
}

test("shared data: NOT_FOUND, cas 0 sets, stale cas -> CAS_MISMATCH, one CAS counter, shared across workers", () => {
  const { host, last } = makeHost({ concurrency: 2 });
  op(host, "shared_get", { "x-a": "k" });
  assert.equal(last("shared_get"), "shared_get rc=1");
  op(host, "shared_set", { "x-a": "k", "x-b": "v1", "x-c": "0" }, 0);
  assert.equal(last("shared_set"), "shared_set rc=0");
  const cas1 = host.sharedData.get("k")!.cas;
  op(host, "shared_get", { "x-a": "k" }, 1); // the other worker sees it
  assert.equal(last("shared_get"), `shared_get rc=0 value=v1 cas=${cas1}`);
  op(host, "shared_set", { "x-a": "k", "x-b": "v2", "x-c": String(cas1) }, 1);
  assert.equal(last("shared_set"), "shared_set rc=0");
  op(host, "shared_set", { "x-a": "k", "x-b": "v3", "x-c": String(cas1) }, 0); // stale
  assert.equal(last("shared_set"), "shared_set rc=8");
  assert.equal(new TextDecoder().decode(host.sharedData.get("k")!.value), "v2");
  // A missing key is set whatever the cas; the CAS counter is global, not per key.
  op(host, "shared_set", { "x-a": "other", "x-b": "x", "x-c": "12345" });
  assert.equal(last("shared_set"), "shared_set rc=0");
  assert.ok(host.sharedData.get("other")!.cas > host.sharedData.get("k")!.cas);
  // JS side uses the same rules.
  assert.equal(host.sharedData.set("k", "js", 1), 8);
  assert.equal(host.sharedData.set("k", "js"), 0);
});

test("shared data is scoped by vm_id and shared across hosts only through one EnvoyProcess", () => {
  const proc = new EnvoyProcess();
  const a = makeHost({ process: proc });
  const b = makeHost({ process: proc, vmId: "other-vm" });
  const c = makeHost({ process: proc });
  a.host.sharedData.set("k", "a");
  op(b.host, "shared_get", { "x-a": "k" });
  assert.equal(b.last("shared_get"), "shared_get rc=1");
  op(c.host, "shared_get", { "x-a": "k" });
  assert.match(c.last("shared_get"), /^shared_get rc=0 value=a /);
  const d = makeHost();
  op(d.host, "shared_get", { "x-a": "k" });
  assert.equal(d.last("shared_get"), "shared_get rc=1");
});

test("header map round trip: add, replace, remove, get, pairs, set_pairs; NOT_FOUND and BAD_ARGUMENT", () => {
  const { host, last } = makeHost();
  let s = op(host, "hdr", { "x-a": "add", "x-b": "0", "x-c": "X-New", "x-d": "1" });
  assert.equal(last("hdr"), "hdr add rc=0");
  assert.deepEqual(
    s.forwarded.requestHeaders!.filter(([k]) => k === "x-new"),
    [["x-new", "1"]],
  );
  s = host.openStream();
  s.sendRequestHeaders(
    [
      ...base,
      ["x-op", "hdr"],
      ["x-a", "replace"],
      ["x-b", "0"],
      ["x-c", "dup"],
      ["x-d", "z"],
      ["dup", "1"],
      ["dup", "2"],
    ],
    true,
  );
  assert.deepEqual(
    s.forwarded.requestHeaders!.filter(([k]) => k === "dup"),
    [["dup", "z"]],
  );
  s = host.openStream();
  s.sendRequestHeaders(
    [...base, ["x-op", "hdr"], ["x-a", "remove"], ["x-b", "0"], ["x-c", "dup"], ["dup", "1"], ["dup", "2"]],
    true,
  );
  assert.equal(
    s.forwarded.requestHeaders!.some(([k]) => k === "dup"),
    false,
  );
  op(host, "hdr", { "x-a": "get", "x-b": "0", "x-c": ":authority" });
  assert.equal(last("hdr get"), "hdr get rc=0 value=gw");
  op(host, "hdr", { "x-a": "get", "x-b": "0", "x-c": "absent" });
  assert.equal(last("hdr get"), "hdr get rc=1");
  op(host, "hdr", { "x-a": "pairs", "x-b": "0" });
  assert.equal(last("hdr pairs"), "hdr pairs rc=0 :method=GET;:path=/p?q=1;:authority=gw;x-op=hdr;x-a=pairs;x-b=0");
  s = op(host, "hdr", { "x-a": "set_pairs", "x-b": "0", "x-d": ":method=PUT;:path=/new;:authority=a;K=v" });
  assert.deepEqual(s.forwarded.requestHeaders, [
    [":method", "PUT"],
    [":path", "/new"],
    [":authority", "a"],
    ["k", "v"],
  ]);
  // Maps that are not available now: response headers during the request path.
  op(host, "hdr", { "x-a": "add", "x-b": "2", "x-c": "a", "x-d": "b" });
  assert.equal(last("hdr add"), "hdr add rc=2");
  op(host, "hdr", { "x-a": "get", "x-b": "2", "x-c": ":status" });
  assert.equal(last("hdr get"), "hdr get rc=2");
  op(host, "hdr", { "x-a": "pairs", "x-b": "2" });
  assert.equal(last("hdr pairs"), "hdr pairs rc=0 ");
  op(host, "hdr", { "x-a": "get", "x-b": "9", "x-c": "a" });
  assert.equal(last("hdr get"), "hdr get rc=2");
  op(host, "log_bad_level", { "x-a": "m" });
  assert.equal(last("log_bad_level"), "log_bad_level rc=2");
});

test("buffers: configuration and call body only in their callbacks, empty request body, read-only config", () => {
  const { host, last } = makeHost();
  op(host, "buffers", { "x-a": "data" });
  assert.equal(last("buffers"), "buffers rc=1,1,2,0,2 size=0");
});

test("ticks fire in every worker's own root context, on virtual time", () => {
  const { host, logs } = makeHost({ concurrency: 3, configuration: "tick=100" });
  host.advance(350);
  const ticks = logs.filter((l) => l.includes("|tick "));
  for (const w of [0, 1, 2])
    assert.equal(ticks.filter((l) => l.startsWith(`${w}|`)).length, 3, `worker ${w}: ${ticks}`);
  assert.equal(host.metrics().counters["wasmcustom.ticks"], 9, "one counter for all workers, Envoy-prefixed");
});

test("metric ids as cpp-host hands them out: first counter 4, gauge 5, histogram 6, then +4 per type", () => {
  const { host, last } = makeHost();
  op(host, "metric_ids");
  assert.equal(last("metric_ids"), "metric_ids configure_counter=4 counter=8 gauge=5 histogram=6");
});

test("metrics: counter up only, gauge up/down, histogram not readable, bad type / unknown id", () => {
  const { host, last } = makeHost();
  op(host, "metric", { "x-a": "c", "x-b": "0", "x-c": "5" });
  assert.match(last("metric "), /^metric rc=0,0,0,0 id=\d+ value=12$/);
  op(host, "metric", { "x-a": "c2", "x-b": "0", "x-c": "-1" });
  assert.match(last("metric "), /^metric rc=0,2,0,0 /);
  op(host, "metric", { "x-a": "g", "x-b": "1", "x-c": "-3" });
  assert.match(last("metric "), /^metric rc=0,0,0,0 id=\d+ value=7$/);
  op(host, "metric", { "x-a": "h", "x-b": "2", "x-c": "1" });
  assert.match(last("metric "), /^metric rc=0,2,0,2 /);
  op(host, "metric_bad", { "x-a": "z" });
  assert.equal(last("metric_bad"), "metric_bad rc=2,1");
  const m = host.metrics();
  assert.equal(m.counters["wasmcustom.c"], 12);
  assert.equal(m.gauges["wasmcustom.g"], 7);
  assert.deepEqual(m.histograms["wasmcustom.h"], [7]);
});

test("shared queues: register, resolve, EMPTY, enqueue notifies the registrant, NOT_FOUND", () => {
  const { host, last } = makeHost({ concurrency: 2 });
  op(host, "queue", { "x-a": "q", "x-b": "test-vm" }, 1);
  assert.equal(last("queue "), "queue rc=0,0,7,0,1 same=1");
  assert.match(last("queue_ready"), /^queue_ready root=1 rc=0 item=item-1$/);
  op(host, "queue_resolve_missing", { "x-a": "nope", "x-b": "test-vm" });
  assert.equal(last("queue_resolve"), "queue_resolve rc=1");
});

test("http call: success, timeout (504), connection failure (503), reset (0 headers, BrokenConnection), unknown cluster", async () => {
  const server = http.createServer((req, res) => {
    if (req.url === "/slow") return; // never answers
    if (req.url === "/stall") {
      res.writeHead(200, { "content-length": "100" });
      res.write("part");
      return;
    } // headers, then nothing
    if (req.url === "/reset") {
      res.writeHead(200, { "content-length": "100" });
      res.write("part");
      setTimeout(() => res.destroy(), 5);
      return;
    }
    res.writeHead(201, { "x-up": "1" });
    res.end("hello");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const { host, logs, last } = makeHost({
    manualTicks: false,
    clusters: {
      up: { endpoints: [{ host: "127.0.0.1", port }] },
      dead: { endpoints: [{ host: "127.0.0.1", port: deadPort }] },
      empty: { endpoints: [] },
    },
  });
  const waitFor = async (n: number) => {
    for (let i = 0; i < 200 && logs.filter((l) => l.includes("http_response")).length < n; i++)
      await new Promise((r) => setTimeout(r, 10));
  };
  try {
    op(host, "http_call", { "x-a": "up", "x-b": "2000", "x-c": "/ok" });
    assert.match(last("http_call"), /^http_call rc=0 token=\d+$/);
    await waitFor(1);
    assert.match(last("http_response"), /headers=\d+ body=hello status=201 get_status=0:$/);
    op(host, "http_call", { "x-a": "up", "x-b": "50", "x-c": "/slow" });
    await waitFor(2);
    assert.match(last("http_response"), /body=upstream request timeout status=504 get_status=0:$/);
    op(host, "http_call", { "x-a": "dead", "x-b": "2000", "x-c": "/" });
    await waitFor(3);
    assert.match(
      last("http_response"),
      /body=upstream connect error or disconnect\/reset before headers\. .* status=503 get_status=0:$/,
    );
    op(host, "http_call", { "x-a": "up", "x-b": "2000", "x-c": "/reset" });
    await waitFor(4);
    assert.match(last("http_response"), /headers=0 body= status=none get_status=11:reset$/);
    // The timeout after the response headers arrived: the router can only reset, the plugin gets a failure.
    op(host, "http_call", { "x-a": "up", "x-b": "100", "x-c": "/stall" });
    await waitFor(5);
    assert.match(last("http_response"), /headers=0 body= status=none get_status=11:reset$/);
    // After a failure Envoy clears only the status message: a later success still reads code 11.
    op(host, "http_call", { "x-a": "up", "x-b": "2000", "x-c": "/ok" });
    await waitFor(6);
    assert.match(last("http_response"), /headers=\d+ body=hello status=201 get_status=11:$/);
    // No hosts: Envoy's router replies inline, AsyncClient::send returns nullptr, httpCall answers
    // InternalFailure (10) with token 0, and no callback ever comes.
    op(host, "http_call", { "x-a": "empty", "x-b": "2000", "x-c": "/" });
    assert.equal(last("http_call"), "http_call rc=10 token=0");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(logs.filter((l) => l.includes("http_response")).length, 6);
    op(host, "http_call", { "x-a": "nope", "x-b": "2000", "x-c": "/" });
    assert.match(last("http_call"), /^http_call rc=2 /);
    op(host, "http_call_no_path", { "x-a": "up" });
    assert.equal(last("http_call"), "http_call rc=2");
  } finally {
    host.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test("http call to an in-process handler, answered later, with timeouts on virtual time", () => {
  let pending: ((o: { headers: [string, string][]; body: string }) => void) | null = null;
  const { host, last, logs } = makeHost({
    httpCallHandlers: {
      sim: (call) => {
        if (call.headers.some(([k, v]) => k === ":path" && v === "/late")) pending = call.respond;
        else return { headers: [[":status", "200"]], body: "now" };
      },
    },
  });
  op(host, "http_call", { "x-a": "sim", "x-b": "1000", "x-c": "/now" });
  assert.match(last("http_response"), /body=now status=200/);
  op(host, "http_call", { "x-a": "sim", "x-b": "1000", "x-c": "/late" });
  host.advance(500);
  assert.equal(logs.filter((l) => l.includes("http_response")).length, 1);
  pending!({ headers: [[":status", "200"]], body: "late" });
  assert.match(last("http_response"), /body=late status=200/);
  op(host, "http_call", { "x-a": "sim", "x-b": "1000", "x-c": "/late" });
  host.advance(999);
  assert.equal(logs.filter((l) => l.includes("http_response")).length, 2);
  host.advance(1);
  assert.match(last("http_response"), /status=504/);
});

test("paused stream is held and resumed by continue_stream from a tick through the effective context", () => {
  const { host, last } = makeHost({ configuration: "tick=10" });
  const s = op(host, "pause_until_tick");
  assert.equal(s.requestPaused, true);
  assert.equal(s.forwarded.requestHeaders, null);
  host.advance(10);
  assert.equal(last("resume"), "resume rc=0,0,0");
  assert.equal(s.requestPaused, false);
  assert.deepEqual(
    s.forwarded.requestHeaders!.find(([k]) => k === "x-resumed-by"),
    ["x-resumed-by", "tick"],
  );
});

test("headers change in the body callback only when the headers callback paused (allow_on_headers_stop_iteration)", () => {
  // Envoy default: StopIteration becomes StopAllIterationAndWatermark, the body callback waits.
  const def = makeHost();
  let s = def.host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "set"]], false);
  s.sendRequestData("hello", true);
  assert.equal(s.requestPaused, true);
  assert.equal(
    def.logs.some((l) => l.includes("|body ")),
    false,
    "body callback must not run while stopped-all",
  );
  // With allow_on_headers_stop_iteration the body callback runs and may still change the held headers.
  const allow = makeHost({ allowOnHeadersStopIteration: true });
  s = allow.host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "set"]], false);
  assert.equal(s.forwarded.requestHeaders, null);
  s.sendRequestData("hello", true);
  assert.equal(allow.last("body"), "body size=5 eos=1 body=hello set_header rc=0");
  assert.deepEqual(
    s.forwarded.requestHeaders!.find(([k]) => k === "x-from-body"),
    ["x-from-body", "hello"],
  );
  assert.equal(new TextDecoder().decode(s.forwarded.requestBody[0]), "hello");
});

test("default StopIteration holds the body until continue_stream; then the body callback runs without headers", () => {
  const { host, last, logs } = makeHost({ configuration: "tick=10" });
  const s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause_until_tick"], ["x-a", "set"]], false);
  s.sendRequestData("hel", false);
  s.sendRequestData("lo", true);
  assert.equal(
    logs.some((l) => l.includes("|body ")),
    false,
  );
  host.advance(10);
  assert.equal(last("body"), "body size=5 eos=1 body=hello set_header rc=2");
  assert.deepEqual(
    s.forwarded.requestHeaders!.find(([k]) => k === "x-resumed-by"),
    ["x-resumed-by", "tick"],
  );
  assert.equal(
    s.forwarded.requestHeaders!.some(([k]) => k === "x-from-body"),
    false,
  );
  assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), "hello");
  assert.equal(s.forwarded.requestEnd, true);
});

test("body buffering (StopIterationAndBuffer) accumulates chunks; set_buffer_bytes rewrites the body", () => {
  const { host, last } = makeHost({ allowOnHeadersStopIteration: true });
  let s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "buffer"]], false);
  s.sendRequestData("ab", false);
  s.sendRequestData("cd", true);
  assert.equal(last("body"), "body size=4 eos=1 body=abcd set_header rc=0");
  assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), "abcd");
  s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "rewrite"]], false);
  s.sendRequestData("original", true);
  assert.equal(last("rewrite"), "rewrite rc=0");
  assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), "REWRITTEN");
  // Current Envoy at start 0: drain `length` bytes, then prepend (a partial replace of the front).
  s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "prefix"]], false);
  s.sendRequestData("original", true);
  assert.equal(last("prefix"), "prefix rc=0");
  assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), "XYginal");
});

test("set_buffer_bytes as Envoy's Buffer::copyFrom: a range in the middle is BAD_ARGUMENT, start >= size appends, a prefix may change length", () => {
  const { host, last } = makeHost({ allowOnHeadersStopIteration: true });
  let s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "middle"]], false);
  s.sendRequestData("original", true);
  assert.equal(last("middle"), "middle rc=2");
  assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), "original");
  s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "append"]], false);
  s.sendRequestData("original", true);
  assert.equal(last("append"), "append rc=0");
  assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), "original!");
  // Buffered over three chunks, then the first 3 bytes become 7 and content-length follows (a model rewrite).
  s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "resize"], ["content-length", "11"]], false);
  s.sendRequestData("abc", false);
  s.sendRequestData("defg", false);
  s.sendRequestData("hijk", true);
  assert.equal(last("resize"), "resize rc=0 content_length rc=0");
  assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), "ABCDEFGdefghijk");
  assert.deepEqual(
    s.forwarded.requestHeaders!.filter(([k]) => k === "content-length"),
    [["content-length", "15"]],
  );
  // The response body the same way (its content-length removed in the headers callback).
  s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-b", "resp_resize"]], true);
  s.sendResponseHeaders(
    [
      [":status", "200"],
      ["content-length", "5"],
    ],
    false,
  );
  s.sendResponseData("he", false);
  s.sendResponseData("llo", true);
  assert.equal(last("resp_resize"), "resp_resize rc=0");
  assert.equal(Buffer.concat(s.forwarded.responseBody).toString(), "<hello>");
  assert.equal(
    s.forwarded.responseHeaders!.some(([k]) => k === "content-length"),
    false,
  );
});

test("get_buffer_bytes clamps any length to the rest of the buffer (cpp-host's 64-bit Word never overflows)", () => {
  const { host, last } = makeHost({ allowOnHeadersStopIteration: true });
  const s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "rest"]], false);
  s.sendRequestData("hello", true);
  assert.equal(last("rest"), "rest rc=0 bytes=llo");
});

test("send_local_response: reply with headers, body, details; goes through the response callback", () => {
  const { host } = makeHost();
  const s = op(host, "local_reply", { "x-a": "429", "x-b": "slow down" });
  assert.equal(s.forwarded.requestHeaders, null, "the request never reaches the router");
  assert.equal(s.localReply!.status, 429);
  assert.equal(s.localReply!.details, "denied_by_test");
  const h = Object.fromEntries(s.forwarded.responseHeaders!);
  assert.equal(h[":status"], "429");
  assert.equal(h["x-why"], "test");
  assert.equal(h["content-type"], "text/plain");
  assert.equal(h["x-test-module"], "seen");
  assert.equal(Buffer.concat(s.forwarded.responseBody).toString(), "slow down");
});

test("a trap fails streams held at the time: their next body or trailers get the 503 (fail-closed) or pass (fail-open)", () => {
  for (const failOpen of [false, true]) {
    const { host } = makeHost({ failOpen, allowOnHeadersStopIteration: true });
    const held = host.openStream({ worker: 0 });
    held.sendRequestHeaders([...base, ["x-op", "pause"]], false);
    const heldT = host.openStream({ worker: 0 });
    heldT.sendRequestHeaders([...base, ["x-op", "pause"]], false);
    assert.equal(held.requestPaused, true);
    op(host, "trap", {}, 0); // another stream traps the worker's VM
    assert.deepEqual(host.failedWorkers(), [0]);
    held.sendRequestData("body", true);
    heldT.sendRequestTrailers([["x-t", "1"]]);
    for (const x of [held, heldT]) {
      if (failOpen) {
        assert.equal(x.localReply, null);
        assert.ok(x.forwarded.requestHeaders);
        assert.equal(x.forwarded.requestEnd, true);
      } else {
        assert.equal(x.localReply?.status, 503);
        assert.equal(x.localReply!.details, "wasm_fail_stream");
        assert.equal(x.forwarded.requestHeaders, null);
        assert.equal(Object.fromEntries(x.forwarded.responseHeaders!)[":status"], "503");
      }
    }
    if (failOpen) assert.equal(Buffer.concat(held.forwarded.requestBody).toString(), "body");
  }
});

test("a trap fails the worker: 503 fail-closed, pass-through fail-open, for later streams too", () => {
  for (const failOpen of [false, true]) {
    const { host } = makeHost({ failOpen });
    const s = op(host, "trap");
    const later = host.openStream();
    later.sendRequestHeaders(base, true);
    assert.deepEqual(host.failedWorkers(), [0]);
    for (const x of [s, later]) {
      if (failOpen) {
        assert.equal(x.localReply, null);
        assert.ok(x.forwarded.requestHeaders);
      } else {
        assert.equal(x.localReply!.status, 503);
        assert.equal(x.localReply!.details, "wasm_fail_stream");
        assert.equal(x.forwarded.requestHeaders, null);
        assert.equal(Object.fromEntries(x.forwarded.responseHeaders!)[":status"], "503");
      }
    }
  }
  // AssemblyScript's abort routes to proc_exit, which is a trap too.
  const { host } = makeHost();
  assert.equal(op(host, "abort").localReply!.status, 503);
});

test("stream end: on_log (maps readable, not writable), on_done, on_delete in Envoy's order", () => {
  const { host, logs } = makeHost();
  const s = host.openStream();
  s.sendRequestHeaders(base, true);
  s.sendResponseHeaders([[":status", "200"]], true);
  assert.equal(Object.fromEntries(s.forwarded.responseHeaders!)["x-test-module"], "seen");
  s.finish();
  const tail = logs.slice(-3).map((l) => l.split("|")[1].split(" ")[0]);
  assert.deepEqual(tail, ["on_log", "on_done", "on_delete"]);
  // A map absent in the access-log phase (request trailers always are) is NOT_FOUND there, not BAD_ARGUMENT.
  assert.match(logs.at(-3)!, /add_rc=2 path=\/p\?q=1 trailers_rc=1$/);
});

test("properties: plugin ids, request attributes from headers, per-stream values", () => {
  const { host, last } = makeHost();
  op(host, "property", { "x-a": "plugin_vm_id" });
  assert.equal(last("property"), "property rc=0 value=test-vm");
  op(host, "property", { "x-a": "plugin_root_id" });
  assert.equal(last("property"), "property rc=0 value=test-root");
  op(host, "property", { "x-a": "request.url_path" });
  assert.equal(last("property"), "property rc=0 value=/p");
  op(host, "property", { "x-a": "nope.nope" });
  assert.equal(last("property"), "property rc=1");
  const s = host.openStream({ properties: { "source.address": "10.1.2.3:4567" } });
  s.sendRequestHeaders([...base, ["x-op", "property"], ["x-a", "source.address"]], true);
  assert.equal(last("property"), "property rc=0 value=10.1.2.3:4567");
});

test("header-derived properties are NOT_FOUND once the headers continued (as Envoy), found while held", () => {
  const { host, last } = makeHost({ allowOnHeadersStopIteration: true });
  // Held by StopIteration: the headers are live in the body callback.
  let s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "prop"]], false);
  s.sendRequestData("x", true);
  assert.equal(last("body_property"), "body_property rc=0 value=/p?q=1");
  // Continued (the module returns Continue for an unknown op; bodyOp stays "prop"): NOT_FOUND.
  s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "noop"]], false);
  s.sendRequestData("x", true);
  assert.equal(last("body_property"), "body_property rc=1");
});

test("request headers held by the headers callback stay live after a body callback returns Continue", () => {
  const { host, last } = makeHost({ allowOnHeadersStopIteration: true });
  const s = host.openStream();
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-a", "prop"]], false);
  s.sendRequestData("a", false); // the body callback returns Continue: headers and "a" go on
  assert.ok(s.forwarded.requestHeaders);
  s.sendRequestData("b", true);
  // Envoy's decodeData drops only the body buffer; request_headers_ (and the attributes read through it) stay.
  assert.equal(last("body "), "body size=1 eos=1 body=b set_header rc=0");
  assert.equal(last("body_property"), "body_property rc=0 value=/p?q=1");
});

test("continue_stream(Response) drops the request maps, not the response ones (Envoy's continueStream)", () => {
  const { host, last } = makeHost({ allowOnHeadersStopIteration: true, configuration: "tick=10" });
  const s = host.openStream();
  // Request headers held, then continued by the body callback: the request map is still live.
  s.sendRequestHeaders([...base, ["x-op", "pause"], ["x-b", "resp_pause"]], false);
  s.sendRequestData("x", true);
  s.sendResponseHeaders([[":status", "200"]], true);
  assert.equal(s.responsePaused, true);
  host.advance(10);
  assert.equal(last("resp_resume"), "resp_resume rc=0 req_before=0 req_after=2 resp_after=0");
  assert.equal(s.responsePaused, false);
  assert.equal(Object.fromEntries(s.forwarded.responseHeaders!)[":status"], "200");
});

test("malformed header pairs are no pairs at all (cpp-host toPairs): missing NUL or bytes left over", () => {
  const { host, last } = makeHost();
  for (const bad of ["trailing", "nonul"]) {
    const s = op(host, "set_pairs_bad", { "x-c": bad });
    assert.equal(last("set_pairs_bad"), "set_pairs_bad rc=0");
    assert.deepEqual(s.forwarded.requestHeaders, [], bad); // set_header_map_pairs with no pairs empties the map
  }
});

test("the host copies data in through the module's malloc when it exports both allocators (cpp-host)", () => {
  const { host, last } = makeHost();
  op(host, "alloc_counts");
  assert.equal(last("alloc_counts"), "alloc_counts malloc=1 proxy_on_memory_allocate=0");
});

test("virtual clock drives get_current_time_nanoseconds when given", () => {
  let now = 1_700_000_000_000_000_000n;
  const { host, last } = makeHost({ clock: () => now });
  op(host, "time");
  assert.equal(last("time"), `time ns=${now}`);
  now += 5n;
  op(host, "time");
  assert.equal(last("time"), `time ns=${now}`);
});

test("loading refuses imports Envoy lacks or with another signature, naming them; bad configuration too", () => {
  const bad = buildModule(
    [
      { module: "env", name: "proxy_log", sig: "iii:i" },
      { module: "env", name: "abort", sig: "iiii:" },
    ],
    ["proxy_abi_version_0_2_1"],
  );
  assert.throws(
    () => createHost({ wasm: bad, rootId: "r" }),
    /module imports env\.abort, which Envoy does not provide/,
  );
  const sig = buildModule([{ module: "env", name: "proxy_log", sig: "ii:i" }], ["proxy_abi_version_0_2_1"]);
  assert.throws(
    () => createHost({ wasm: sig, rootId: "r" }),
    /env\.proxy_log with signature \(i32, i32\) -> i32, but Envoy provides \(i32, i32, i32\) -> i32/,
  );
  const noAbi = buildModule([{ module: "env", name: "proxy_log", sig: "iii:i" }], []);
  assert.throws(() => createHost({ wasm: noAbi, rootId: "r" }), /proxy_abi_version/);
  // cpp-host takes the first proxy_abi_version_* export: 0.2.0 here, so get_log_level (0.2.1 only) is missing.
  const both = buildModule(
    [{ module: "env", name: "proxy_get_log_level", sig: "i:i" }],
    ["proxy_abi_version_0_2_0", "proxy_abi_version_0_2_1"],
  );
  assert.throws(
    () => createHost({ wasm: both, rootId: "r" }),
    /env\.proxy_get_log_level, which Envoy does not provide \(ABI 0\.2\.0\)/,
  );
  const old = buildModule(
    [{ module: "env", name: "proxy_log", sig: "iii:i" }],
    ["proxy_abi_version_0_1_0", "proxy_abi_version_0_2_1"],
  );
  assert.throws(() => createHost({ wasm: old, rootId: "r" }), /ABI 0\.1\.0/);
  assert.throws(() => makeHost({ configuration: "refuse" }), /proxy_on_configure returned false/);
  assert.ok(readFileSync(MODULE).length > 0);
});
