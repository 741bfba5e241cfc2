// The real filter in the emulator's host (4 worker VMs where it matters): what reaches the upstream, which
// endpoint is picked and why, and every failure answer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PickerHost, header, destination, completion } from "./harness";
import { createHost } from "../../envoy/emulator/host";
import { DESTINATION_HEADER, FALLBACK_HEADER, SERVED_HEADER } from "../helpers/filter-contract";

const A = "10.0.0.1:8000",
  B = "10.0.0.2:8000",
  C = "10.0.0.3:8000";
const LONG = "You are a meticulous assistant for the billing team. ".repeat(40); // ~2 KiB shared system prompt

test("a client's destination and fallback headers never reach the upstream", () => {
  const h = new PickerHost({ concurrency: 4, config: { failureMode: "FailOpen" } });
  const forged: [string, string][] = [
    [DESTINATION_HEADER, "6.6.6.6:1"],
    [DESTINATION_HEADER, "7.7.7.7:1"],
    [FALLBACK_HEADER, "6.6.6.6:1"],
  ];
  // No snapshot yet, FailOpen: the request continues, without the forged headers.
  let s = h.send({ headers: forged, body: completion("m", "hi") });
  assert.ok(s.forwarded.requestHeaders, "forwarded");
  assert.deepEqual(header(s.forwarded.requestHeaders, DESTINATION_HEADER), []);
  assert.deepEqual(header(s.forwarded.requestHeaders, FALLBACK_HEADER), []);
  h.publish([{ address: A }, { address: B }]);
  for (let i = 0; i < 8; i++) {
    s = h.send({ worker: i % 4, headers: forged, body: i % 2 ? completion("m", "hi") : "garbage" });
    const dest = header(s.forwarded.requestHeaders, DESTINATION_HEADER);
    assert.equal(dest.length, 1);
    assert.ok([A, B].includes(dest[0]), dest[0]);
    assert.deepEqual(header(s.forwarded.requestHeaders, FALLBACK_HEADER), []);
  }
  // A GET without a body is decided in the headers callback, forged header removed too.
  s = h.send({ path: "/v1/models", headers: forged });
  assert.ok([A, B].includes(destination(s)!));
  assert.deepEqual(h.host.failedWorkers(), []);
});

test("picks the least loaded endpoint, never one whose metrics port refused while others are left", () => {
  const h = new PickerHost();
  h.publish([
    { address: A, queued: 3, kvUsage: 0.5 },
    { address: B, queued: 0, kvUsage: 0.1 },
    { address: C, error: true, unreachable: true },
  ]);
  for (let i = 0; i < 5; i++) {
    const { stream, dest } = h.pick({ body: completion("m", `q${i}`) });
    assert.equal(dest, B);
    stream.finish();
  }
});

test("a metrics outage is not a traffic outage: endpoints whose metrics fail are routed by the proxy's counts", () => {
  const h = new PickerHost({ config: { objectivePriorities: { batch: -1 } } });
  h.publish([
    { address: A, error: true, stale: true, queued: 9, running: 9, kvUsage: 0.99 },
    { address: B, error: true, stale: true, queued: 0, running: 0, kvUsage: 0 },
    { address: C, error: true, stale: true },
  ]);
  const seen = new Map<string, number>();
  const streams = [];
  for (let i = 0; i < 30; i++) {
    const { stream, dest } = h.pick({ body: completion("m", `q${i}`) });
    assert.ok(dest, "every request is routed");
    seen.set(dest!, (seen.get(dest!) ?? 0) + 1);
    streams.push(stream);
  }
  // The stale numbers are ignored: the proxy's own requests in flight spread the load evenly.
  assert.deepEqual([...seen.values()].sort(), [10, 10, 10]);
  for (const s of streams) s.finish();
  h.advance(20);
  assert.equal(h.gauge("endpoint_picker.endpoints_degraded"), 3);
});

test("requests sharing a long prefix go to the same endpoint, whichever worker VM decides (after a tick)", () => {
  const h = new PickerHost({ concurrency: 4 });
  h.publish([{ address: A }, { address: B }, { address: C }]);
  const seen = new Set<string>();
  for (let group = 0; group < 12; group++) {
    const system = `group ${group}: ` + LONG;
    const first = h.pick({
      worker: group % 4,
      path: "/v1/chat/completions",
      body: JSON.stringify({
        model: "m",
        messages: [
          { role: "system", content: system },
          { role: "user", content: "first question" },
        ],
      }),
    });
    first.stream.finish();
    h.advance(200); // the deciding VM's journal reaches the other VMs on their ticks
    const second = h.pick({
      worker: (group + 1) % 4,
      path: "/v1/chat/completions",
      body: JSON.stringify({
        model: "m",
        messages: [
          { role: "system", content: system },
          { role: "user", content: "another question" },
        ],
      }),
    });
    second.stream.finish();
    assert.equal(second.dest, first.dest, `group ${group}`);
    seen.add(first.dest!);
  }
  assert.ok(seen.size >= 2, "different prefixes spread over endpoints");
  assert.ok(h.counter("endpoint_picker.prefix_hits") >= 12);
});

test("the model in the body selects the endpoint with its LoRA adapter loaded", () => {
  const h = new PickerHost({ concurrency: 4 });
  h.publish(
    [
      { address: A, lora: { running: ["tweet-lora"], waiting: [], max: 1 } },
      { address: B, lora: { running: ["sql-lora", "tweet-lora"], waiting: [], max: 4 } },
      { address: C, lora: { running: ["x", "y"], waiting: [], max: 2 } },
    ],
    { loraWeight: 1, prefixWeight: 0 },
  );
  for (let i = 0; i < 6; i++) {
    const { stream, dest } = h.pick({ worker: i % 4, body: JSON.stringify({ prompt: `p${i}`, model: "sql-lora" }) });
    assert.equal(dest, B);
    stream.finish();
  }
  // An adapter loaded nowhere goes where a slot is free (B), never to the full pod (C); A has it loaded.
  const picks = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const p = h.pick({ body: completion("tweet-lora", `t${i}`) });
    picks.add(p.dest!);
    p.stream.finish();
  }
  assert.deepEqual([...picks].sort(), [A, B]);
});

test("LoRA: an adapter's burst shares one slot across worker VMs; another adapter is kept off a pod whose slots are held", () => {
  const h = new PickerHost({ concurrency: 2 });
  const free = { running: [], waiting: [], max: 1 };
  // C lists ad-1 as waiting (so it is a known adapter) but is far too busy to be picked.
  h.publish(
    [
      { address: A, lora: free },
      { address: B, lora: free },
      { address: C, queued: 40, lora: { running: ["x"], waiting: ["ad-1"], max: 4 } },
    ],
    { loraWeight: 1, prefixWeight: 0 },
    ["base"],
  );
  const open: ReturnType<PickerHost["pick"]>[] = [];
  for (let i = 0; i < 4; i++) {
    open.push(h.pick({ worker: i % 2, body: completion("ad-1", `p${i}`) }));
    h.advance(25); // a tick: each VM publishes its adapter requests to the other
  }
  const home = open[0].dest!;
  assert.ok(home === A || home === B);
  assert.deepEqual(
    open.map((p) => p.dest),
    [home, home, home, home],
    "no scrape shows ad-1 at A or B yet; the proxy's own requests do",
  );
  const other = home === A ? B : A;
  const second = h.pick({ worker: 1, body: completion("ad-2", "q") });
  assert.equal(second.dest, other, "the home pod's only slot is held by ad-1");
  h.advance(25);
  // ad-1 drains: its pod can load another adapter again, while ad-2 still holds the other one's slot.
  for (const p of open) p.stream.finish();
  h.advance(50); // two ticks: each VM has published its drain and read the other's
  for (let i = 0; i < 2; i++) {
    const third = h.pick({ worker: i, body: completion("ad-3", `r${i}`) });
    assert.equal(third.dest, home, `ad-3 on worker ${i}`);
    third.stream.finish();
  }
  second.stream.finish();
  assert.deepEqual(h.host.failedWorkers(), []);
});

test("a model named after a long prompt is found: the body is read in as many pieces as it takes", () => {
  const h = new PickerHost({ concurrency: 2 });
  // By load alone A wins; with the model known, B (adapter loaded) does.
  h.publish(
    [
      { address: A, lora: { running: ["x"], waiting: [], max: 1 } },
      { address: B, queued: 1, lora: { running: ["sql-lora"], waiting: [], max: 4 } },
    ],
    { loraWeight: 1, prefixWeight: 0 },
  );
  const prompt = "q".repeat(50_000); // over three of the filter's 16 KiB reads before `model`
  const anonymous = h.pick({ body: JSON.stringify({ prompt }) });
  assert.equal(anonymous.dest, A);
  anonymous.stream.finish();
  for (let i = 0; i < 4; i++) {
    const late = h.pick({ worker: i % 2, body: JSON.stringify({ prompt, model: "sql-lora" }) });
    assert.equal(late.dest, B);
    late.stream.finish();
  }
});

test("in-flight requests spread a burst, and other worker VMs see them after a tick", () => {
  const h = new PickerHost({ concurrency: 2, config: { maxBodyBytes: 0 } });
  h.publish([{ address: A }, { address: B }]);
  const counts = new Map<string, number>();
  for (let i = 0; i < 10; i++) {
    const d = h.pick({ worker: 0 }).dest!;
    counts.set(d, (counts.get(d) ?? 0) + 1);
  }
  assert.deepEqual([...counts.values()], [5, 5], "one VM alternates as its own requests pile up");
  // Worker 0 sends a burst to A while A is the only endpoint; then B joins, idle by its metrics.
  const g = new PickerHost({ concurrency: 2, config: { maxBodyBytes: 0 } });
  g.publish([{ address: A }]);
  for (let i = 0; i < 6; i++) assert.equal(g.pick({ worker: 0 }).dest, A);
  g.publish([{ address: A }, { address: B }]);
  g.advance(200); // ticks: worker 0 publishes its counts, worker 1 reads them
  for (let i = 0; i < 5; i++)
    assert.equal(g.pick({ worker: 1 }).dest, B, "worker 1 avoids the endpoint worker 0 filled");
});

test("FailClose answers 503 without a snapshot and once it is older than stalenessLimitMs; FailOpen lets requests through", () => {
  const close = new PickerHost({ config: { stalenessLimitMs: 2000 } });
  let s = close.send({ body: completion("m", "x") });
  assert.equal(s.localReply?.status, 503);
  assert.equal(s.localReply?.details, "endpoint_picker_no_fresh_snapshot");
  assert.equal(s.forwarded.requestHeaders, null, "nothing reaches an upstream");
  close.publish([{ address: A }]);
  assert.equal(close.pick({ body: completion("m", "x") }).dest, A);
  close.advance(2001);
  s = close.send({ body: completion("m", "x") });
  assert.equal(s.localReply?.status, 503);
  assert.match(Buffer.from(s.localReply!.body).toString(), /stale/);
  assert.equal(close.counter("endpoint_picker.decisions.fail_close"), 2);

  const open = new PickerHost({ config: { stalenessLimitMs: 2000, failureMode: "FailOpen" } });
  open.publish([{ address: A }]);
  open.advance(2001);
  s = open.send({ body: completion("m", "x") });
  assert.equal(s.localReply, null);
  assert.ok(s.forwarded.requestHeaders);
  assert.equal(destination(s), null, "no destination: Envoy routes by its normal cluster");
  assert.equal(open.counter("endpoint_picker.decisions.fail_open"), 1);
});

test("no usable endpoint answers 503; a sheddable request answers 429 when every endpoint is saturated", () => {
  const h = new PickerHost({ config: { objectivePriorities: { batch: -1, chat: 5 } } });
  h.publish([]);
  assert.equal(h.send({ body: completion("m", "x") }).localReply?.status, 503);
  h.publish([{ address: "not-an-address with spaces" }]);
  const s = h.send({ body: completion("m", "x") });
  assert.equal(s.localReply?.status, 503);
  assert.equal(s.localReply?.details, "endpoint_picker_no_endpoint");
  h.publish([
    { address: A, queued: 7 },
    { address: B, kvUsage: 0.95 },
  ]);
  const batch: [string, string][] = [["x-gateway-inference-objective", "batch"]];
  const shed = h.send({ headers: batch, body: completion("m", "x") });
  assert.equal(shed.localReply?.status, 429);
  assert.equal(shed.localReply?.details, "endpoint_picker_saturated");
  assert.ok(h.pick({ headers: [["x-gateway-inference-objective", "chat"]], body: completion("m", "x") }).dest);
  assert.ok(h.pick({ body: completion("m", "x") }).dest, "requests without an objective are never shed");
  h.publish([
    { address: A, queued: 7 },
    { address: B, queued: 1 },
  ]);
  assert.equal(h.pick({ headers: batch, body: completion("m", "x") }).dest, B, "one endpoint with room: no shedding");
  assert.equal(h.counter("endpoint_picker.decisions.shed"), 1);
});

test("the response names the endpoint that served it; fallbacks come best first in their own header", () => {
  const h = new PickerHost({ config: { servedHeader: SERVED_HEADER } });
  h.publish(
    [
      { address: A, queued: 4 },
      { address: B, queued: 0 },
      { address: C, queued: 2 },
    ],
    { fallbackCount: 2, prefixWeight: 0, kvWeight: 0 },
  );
  const { stream, dest } = h.pick({ body: completion("m", "x") });
  assert.equal(dest, B);
  assert.deepEqual(header(stream.forwarded.requestHeaders, FALLBACK_HEADER), [`${C},${A}`]);
  stream.sendResponseHeaders([[":status", "200"]], true);
  assert.deepEqual(header(stream.forwarded.responseHeaders, SERVED_HEADER), [B]);
  stream.finish();
  assert.equal(h.counter(`endpoint_picker.picks.10_0_0_2_8000`), 1);
  assert.equal(h.host.metrics().histograms["wasmcustom.endpoint_picker.decision_us"]?.length, 1);
});

test("bad bodies are decided by load, passed on unchanged, and never trap the VM", () => {
  const h = new PickerHost({ concurrency: 2, config: { maxBodyBytes: 4096 } });
  h.publish([{ address: A }, { address: B }]);
  const bodies = [
    "not json",
    '{"model": "m", "prompt": ',
    "[1,2,3]",
    "\u0000\u0001\u00ff{{{",
    "{}",
    JSON.stringify({ model: { nested: true }, prompt: 42 }),
  ];
  for (const body of bodies) {
    const s = h.send({ body });
    assert.ok(destination(s), body);
    assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), body);
  }
  // Larger than maxBodyBytes, in many chunks: decided at the limit, every byte still forwarded.
  const big = JSON.stringify({ prompt: "z".repeat(20000), model: "late" });
  const chunks = big.match(/[\s\S]{1,1000}/g)!;
  const s = h.send({ chunks });
  assert.ok(destination(s));
  assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), big);
  assert.deepEqual(h.host.failedWorkers(), []);
});

test("without allow_on_headers_stop_iteration held requests are decided by a watchdog; after a few, the VM decides in the headers callback", () => {
  const h = new PickerHost({ allowOnHeadersStopIteration: false });
  h.publish([{ address: A }]);
  const held = [0, 1, 2].map((i) => h.send({ body: completion("m", `x${i}`) }));
  for (const s of held) assert.equal(s.forwarded.requestHeaders, null, "held: Envoy keeps the body from the filter");
  h.advance(600);
  for (const [i, s] of held.entries()) {
    assert.equal(destination(s), A);
    assert.equal(Buffer.concat(s.forwarded.requestBody).toString(), completion("m", `x${i}`));
  }
  assert.ok(
    h.logs.some((l) => /allow_on_headers_stop_iteration/.test(l)),
    "an operator is told why",
  );
  const next = h.send({ body: completion("m", "y") });
  assert.equal(destination(next), A, "decided at once in the headers callback");
});

test("one slow client does not switch a VM to deciding without bodies", () => {
  const h = new PickerHost();
  h.publish([{ address: A }]);
  const slow = h.host.openStream();
  slow.sendRequestHeaders(
    [
      [":method", "POST"],
      [":path", "/v1/completions"],
      [":authority", "gw"],
    ],
    false,
  );
  h.advance(600); // its body has not come: the watchdog decides it by load
  assert.equal(destination(slow), A);
  slow.sendRequestData(completion("m", "late"), true);
  assert.equal(Buffer.concat(slow.forwarded.requestBody).toString(), completion("m", "late"));
  const s = h.send({ body: completion("m", "z") });
  assert.equal(destination(s), A);
  assert.ok(!h.logs.some((l) => /allow_on_headers_stop_iteration/.test(l)), "no switch on one slow body");
});

test("a VM switched to headers-only by slow uploads switches back when a probe's body arrives", () => {
  const h = new PickerHost(); // allow_on_headers_stop_iteration is set: slow clients, not the host
  h.publish([{ address: A }]);
  const headersOnly = () => {
    const s = h.host.openStream();
    s.sendRequestHeaders(
      [
        [":method", "POST"],
        [":path", "/v1/completions"],
        [":authority", "gw"],
      ],
      false,
    );
    return s;
  };
  const slow = [headersOnly(), headersOnly(), headersOnly()];
  h.advance(600);
  assert.ok(
    h.logs.some((l) => /set allow_on_headers_stop_iteration/.test(l)),
    "three bodiless holds switch the VM",
  );
  for (const s of slow) s.sendRequestData(completion("m", "late"), true);
  assert.notEqual(destination(headersOnly()), null, "decided in the headers callback now");
  h.advance(10_000);
  h.publish([{ address: A }]); // the companion is still there (the snapshot would be stale after 10 s)
  const probe = headersOnly();
  assert.equal(destination(probe), null, "ten seconds on, one request is held again as a probe");
  probe.sendRequestData(completion("m", "p"), true);
  assert.equal(destination(probe), A);
  assert.ok(h.logs.some((l) => /bodies reach the filter while it holds the headers again/.test(l)));
  assert.equal(destination(headersOnly()), null, "held for its body again");
});

test("invalid configuration fails on_configure with a log line naming the field", () => {
  for (const [config, message] of [
    [{ failureMode: "Sometimes" }, 'configuration.failureMode: "Sometimes" is not FailClose or FailOpen'],
    [{ pollTimeoutMs: 1 }, "configuration.pollTimeoutMs: 1 is outside 100..600000"],
    [{ stalenessLimitMs: "soon" }, "configuration.stalenessLimitMs: must be an integer"],
  ] as const) {
    const logs: string[] = [];
    assert.throws(
      () =>
        createHost({
          wasm: "build/filter.wasm",
          rootId: "endpoint-picker",
          configuration: JSON.stringify(config),
          onLog: (_l, m) => logs.push(m),
        }),
      /on_configure/,
    );
    assert.ok(logs.includes(`endpoint-picker: ${message}`), logs.join("\n"));
  }
  const logs: string[] = [];
  assert.throws(() =>
    createHost({
      wasm: "build/filter.wasm",
      rootId: "endpoint-picker",
      configuration: '{"a": ',
      onLog: (_l, m) => logs.push(m),
    }),
  );
  assert.ok(
    logs.some((l) => l.startsWith("endpoint-picker: configuration: not valid JSON")),
    logs.join("\n"),
  );
});

test("random bodies, chunkings, paths and header values never trap a VM and always get an answer", () => {
  const h = new PickerHost({ concurrency: 2, config: { maxBodyBytes: 2048 } });
  h.publish([{ address: A }, { address: B, lora: { running: ["sql-lora"], waiting: [], max: 2 } }], { loraWeight: 1 });
  let seed = 12345;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const pieces = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "\\",
    ":",
    ",",
    " ",
    "model",
    "prompt",
    "messages",
    "input",
    '"model"',
    '"prompt"',
    '"sql-lora"',
    "null",
    "1e99",
    "\u00e9",
    "\u0000",
    "x".repeat(300),
  ];
  for (let i = 0; i < 1500; i++) {
    let body = "";
    const parts = rand(40);
    for (let k = 0; k < parts; k++) body += pieces[rand(pieces.length)];
    const bytes = Buffer.from(body);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length;) {
      const n = 1 + rand(64);
      chunks.push(bytes.subarray(at, at + n));
      at += n;
    }
    const paths = [
      "/v1/completions",
      "/v1/chat/completions",
      "/v1/embeddings",
      "/x?y=/v1/completions",
      "",
      "/" + "a".repeat(rand(100)),
    ];
    const s = h.send({
      worker: i % 2,
      path: paths[rand(paths.length)],
      headers: [
        ["x-gateway-inference-objective", pieces[rand(pieces.length)]],
        ["content-length", String(rand(5) === 0 ? "garbage" : bytes.length)],
      ],
      chunks: chunks.length > 0 ? chunks : undefined,
      body: chunks.length > 0 ? undefined : "",
    });
    assert.ok(
      s.forwarded.requestHeaders !== null || s.localReply !== null,
      `request ${i} got no answer: ${JSON.stringify(body)}`,
    );
    s.finish();
  }
  assert.deepEqual(h.host.failedWorkers(), []);
});

test("a client's content-length never sizes memory: huge values with small bodies, many held at once, trap nothing", () => {
  const h = new PickerHost({ concurrency: 2 });
  // A profile allowing a 2 GiB prompt, and a snapshot every VM has decoded.
  h.publish([{ address: A }, { address: B }], { prefixBlockChars: 32768, prefixMaxBlocks: 65535 });
  for (let w = 0; w < 2; w++) assert.ok(h.pick({ worker: w, body: completion("m", "load the snapshot") }).dest);
  const held = [];
  for (let i = 0; i < 300; i++) {
    const s = h.host.openStream({ worker: i % 2 });
    s.sendRequestHeaders(
      [
        [":method", "POST"],
        [":path", "/v1/completions"],
        [":authority", "gw"],
        ["content-length", i % 2 ? "2000000000" : "16777216"],
      ],
      false,
    );
    held.push(s);
  }
  for (const s of held) s.sendRequestData(completion("m", "small"), true);
  for (const s of held) assert.ok(destination(s));
  assert.deepEqual(h.host.failedWorkers(), []);
  assert.ok(Math.max(...h.host.memoryPages()) < 1024, `wasm memory stays small: ${h.host.memoryPages()} pages`);
});

/** Sends a request and ends it as `status` (from `upstream`, when given, as Envoy's upstream.address says). */
function answered(h: PickerHost, status: number, opts: { worker?: number; upstream?: string; details?: string } = {}) {
  const { stream, dest } = h.pick({ worker: opts.worker, body: completion("m", "x") });
  if (opts.upstream) stream.properties.set("upstream.address", opts.upstream);
  stream.properties.set("response.code_details", opts.details ?? "via_upstream");
  stream.sendResponseHeaders([[":status", String(status)]], true);
  stream.finish();
  return dest;
}

test("outlier detection: an endpoint that fails at once is ejected for every worker, longer each time", () => {
  const h = new PickerHost({
    concurrency: 2,
    config: { outlierDetection: { consecutive5xx: 3, baseEjectionTimeMs: 1000, maxEjectionTimeMs: 4000 } },
  });
  // A looks idle, so a least-loaded picker keeps choosing it while its requests fail at once.
  h.publish([
    { address: A, queued: 0 },
    { address: B, queued: 3 },
    { address: C, queued: 3 },
  ]);
  for (let i = 0; i < 3; i++) assert.equal(answered(h, 500, { worker: 0 }), A);
  assert.equal(h.counter("endpoint_picker.outliers.ejections"), 1);
  assert.ok(h.logs.some((l) => /outlier detection: 10\.0\.0\.1:8000 ejected for 1000 ms \(ejection 1\)/.test(l)));
  h.advance(20); // the other worker reads the shared table on its tick
  for (let i = 0; i < 10; i++) assert.notEqual(answered(h, 200, { worker: i % 2 }), A);
  assert.equal(h.gauge("endpoint_picker.outliers.ejected"), 1);
  // Back after 1 s on probation: its first failure ejects it again, for twice as long.
  h.advance(1000);
  assert.equal(answered(h, 500, { worker: 1 }), A);
  assert.equal(h.counter("endpoint_picker.outliers.ejections"), 2);
  h.advance(1500);
  assert.notEqual(answered(h, 200, { worker: 0 }), A, "still out after 1.5 of its 2 s");
  h.advance(600);
  // Healthy again: one success ends the probation, and two failures in a row no longer eject it.
  assert.equal(answered(h, 200, { worker: 0 }), A);
  assert.ok(h.logs.some((l) => /10\.0\.0\.1:8000 answers again after its ejection/.test(l)));
  h.advance(20);
  assert.equal(answered(h, 500, { worker: 1 }), A);
  assert.equal(answered(h, 500, { worker: 1 }), A);
  assert.equal(h.counter("endpoint_picker.outliers.ejections"), 2);
});

test("outlier detection: a pick never reached, or the router's own 5xx, is a gateway failure; at most half the pool is ejected", () => {
  const h = new PickerHost({
    config: { outlierDetection: { consecutiveGatewayFailure: 2, baseEjectionTimeMs: 5000 } },
  });
  h.publish([
    { address: A, queued: 0 },
    { address: B, queued: 2 },
    { address: C, queued: 4 },
    { address: "10.0.0.4:8000", queued: 6 },
  ]);
  // Envoy's retry moved on to B (A refused the connection): the client got B's 200, A is charged.
  assert.equal(answered(h, 200, { upstream: B }), A);
  assert.equal(answered(h, 200, { upstream: B }), A);
  assert.equal(h.counter("endpoint_picker.outliers.ejections"), 1, "A ejected after 2 gateway failures");
  // The router's local 503 (connection failure without a retry) counts for B.
  assert.equal(answered(h, 503, { details: "upstream_reset_before_response_started{connection_failure}" }), B);
  assert.equal(answered(h, 500, { details: "upstream_reset_before_response_started{remote_reset}" }), B);
  assert.equal(h.counter("endpoint_picker.outliers.ejections"), 2);
  // Two of four are out: C's failures are counted but it stays in use (maxEjectionPercent 50).
  assert.equal(answered(h, 502), C);
  assert.equal(answered(h, 502), C);
  assert.equal(h.counter("endpoint_picker.outliers.ejections"), 2);
  assert.equal(h.counter("endpoint_picker.outliers.ejections_capped"), 1);
  assert.ok(h.logs.some((l) => /2 of 4 endpoints are ejected \(maxEjectionPercent 50\)/.test(l)));
  const off = new PickerHost({ config: { outlierDetection: { maxEjectionPercent: 0 } } });
  off.publish([{ address: A }, { address: B, queued: 5 }]);
  for (let i = 0; i < 10; i++) assert.equal(answered(off, 500), A, "maxEjectionPercent 0 turns it off");
});

test("InferenceObjectives from the snapshot: llm-d-router's header, then GIE's; objectivePriorities wins a name", () => {
  const saturated = [
    { address: A, queued: 7 },
    { address: B, queued: 9 },
  ];
  const objectives = [
    { name: "best-effort", priority: -10 },
    { name: "premium", priority: 100 },
    { name: "overridden", priority: -5 },
  ];
  const h = new PickerHost({ config: { objectivePriorities: { overridden: 1 } } });
  h.publish(saturated, {}, [], objectives);
  const status = (headers: [string, string][]) => h.send({ headers, body: completion("m", "x") }).localReply?.status;
  assert.equal(status([["x-llm-d-inference-objective", "best-effort"]]), 429);
  assert.equal(status([["x-gateway-inference-objective", "best-effort"]]), 429, "GIE's header, llm-d's legacy alias");
  assert.equal(
    status([
      ["x-llm-d-inference-objective", "premium"],
      ["x-gateway-inference-objective", "best-effort"],
    ]),
    undefined,
    "the current name wins",
  );
  assert.equal(status([["x-llm-d-inference-objective", "overridden"]]), undefined, "the plugin configuration wins");
  assert.equal(status([["x-llm-d-inference-objective", "unknown"]]), undefined, "an unknown objective: priority 0");
  assert.equal(status([]), undefined);
  // Ignoring client-set objectives: nothing is shed.
  const off = new PickerHost({ config: { objectiveHeader: "" } });
  off.publish(saturated, {}, [], objectives);
  assert.equal(
    off.send({ headers: [["x-llm-d-inference-objective", "best-effort"]], body: completion("m", "x") }).localReply,
    null,
  );
});
