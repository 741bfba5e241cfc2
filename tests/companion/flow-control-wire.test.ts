// Flow control on the companion's wires: snapshot section 6 (byte layout, round trip, a later revision's
// bytes skipped, a change publishes a version, a config reload applies), the gateway report's queue tail
// (layout, old reports still valid, refusals), the pool-wide sums in the merged view, and the queue-size
// gauges on GET /metrics (both names, llm-d-router's for existing KEDA rules).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCli, type CompanionOptions } from "../../companion/cli";
import { Companion } from "../../companion/companion";
import { silentLogger } from "../../companion/log";
import { GATEWAY_EXPIRY_MS, GatewayExchange } from "../../companion/gateway-exchange";
import {
  MAX_COUNT,
  decodeReport,
  encodeReport,
  type GatewayReport,
  type QueueEntry,
} from "../../companion/gateway-wire";
import { DEFAULT_FLOW_CONTROL } from "../../companion/flow-control-config";
import { DEFAULT_PROFILE } from "../../companion/profile-config";
import { QUEUE_SERIES_HOLD_MS, SelfMetrics } from "../../companion/self-metrics";
import { SnapshotPublisher, type SnapshotContent } from "../../companion/snapshot-publisher";
import {
  HEADER_SIZE,
  SECTION_FLOW_CONTROL,
  decodeSnapshot,
  encodeSnapshot,
  fnv1a,
  type Snapshot,
  type SnapshotFlowControl,
} from "../../companion/snapshot";
import { until } from "../helpers/until";

const FC: SnapshotFlowControl = {
  defaultRequestTtlMs: 30_000,
  noEndpointRequestTtlMs: 300_000,
  maxRequests: 2000,
  maxBytes: 10 * 2 ** 30,
  usageLimit: 0.9,
  defaultBand: { priority: 0, maxRequests: 100, maxBytes: 5e8, fairness: "round-robin", ordering: "fcfs" },
  defaultNegativeBand: { priority: 0, maxRequests: 50, maxBytes: 1e9, fairness: "global-strict", ordering: "edf" },
  bands: [
    { priority: 100, maxRequests: 1500, maxBytes: 1e9, fairness: "round-robin", ordering: "slo-deadline" },
    { priority: -10, maxRequests: 5000, maxBytes: 2 ** 20, fairness: "global-strict", ordering: "fcfs" },
  ],
};

const snapshot = (flowControl?: SnapshotFlowControl | null): Snapshot => ({
  version: 7n,
  generatedAtMs: 1_700_000_000_000,
  profile: DEFAULT_PROFILE,
  endpoints: [],
  baseModels: [],
  ...(flowControl !== undefined ? { flowControl } : {}),
});

/** The body of section `id` of a blob (the sections follow the header: u16 id, u32 length, body). */
function sectionBody(blob: Buffer, id: number): Buffer | null {
  for (let at = HEADER_SIZE; at < blob.length;) {
    const sid = blob.readUInt16LE(at);
    const len = blob.readUInt32LE(at + 2);
    if (sid === id) return blob.subarray(at + 6, at + 6 + len);
    at += 6 + len;
  }
  return null;
}

test("snapshot section 6: the byte layout of docs/SNAPSHOT.md", () => {
  const blob = encodeSnapshot(snapshot(FC));
  const b = sectionBody(blob, SECTION_FLOW_CONTROL)!;
  assert.ok(b, "section 6 is written");
  const band = (at: number) => ({
    priority: b.readInt32LE(at),
    maxRequests: b.readUInt32LE(at + 4),
    maxBytes: b.readDoubleLE(at + 8),
    fairness: b.readUInt8(at + 16),
    ordering: b.readUInt8(at + 17),
  });
  assert.equal(b.readUInt32LE(0), 30_000, "defaultRequestTtlMs");
  assert.equal(b.readUInt32LE(4), 300_000, "noEndpointRequestTtlMs");
  assert.equal(b.readUInt32LE(8), 2000, "maxRequests");
  assert.equal(b.readDoubleLE(12), 10 * 2 ** 30, "maxBytes");
  assert.equal(b.readDoubleLE(20), 0.9, "usageLimit");
  assert.deepEqual(band(28), { priority: 0, maxRequests: 100, maxBytes: 5e8, fairness: 1, ordering: 0 });
  assert.deepEqual(band(46), { priority: 0, maxRequests: 50, maxBytes: 1e9, fairness: 0, ordering: 1 });
  assert.equal(b.readUInt16LE(64), 2, "bandCount");
  assert.deepEqual(band(66), { priority: 100, maxRequests: 1500, maxBytes: 1e9, fairness: 1, ordering: 2 });
  assert.deepEqual(band(84), { priority: -10, maxRequests: 5000, maxBytes: 2 ** 20, fairness: 0, ordering: 0 });
  assert.equal(b.readUInt8(102), 0, "no priority-holdback-policy");
  assert.equal(b.readUInt8(103), 0, "no program-aware-fairness");
  assert.equal(b.length, 104, "nothing else");
  // priority-holdback-policy: u8 1, u8 domain (0 rank, 1 value), f64 minCeiling, f64 maxCeiling; then
  // program-aware-fairness: u8 1, f64 lasWeightService, lasWeightHeadWait, lasHalfLifeSeconds, evictionTtlSeconds.
  const both = sectionBody(
    encodeSnapshot(
      snapshot({
        ...FC,
        holdback: { domain: "value", minCeiling: 0.5, maxCeiling: 0.9 },
        programAware: { weightService: 0.7, weightHeadWait: 0.3, halfLifeSeconds: 30, evictionTtlSeconds: 600 },
      }),
    ),
    SECTION_FLOW_CONTROL,
  )!;
  assert.deepEqual(
    [both.readUInt8(102), both.readUInt8(103), both.readDoubleLE(104), both.readDoubleLE(112), both.readUInt8(120)],
    [1, 1, 0.5, 0.9, 1],
  );
  assert.deepEqual(
    [121, 129, 137, 145].map((at) => both.readDoubleLE(at)),
    [0.7, 0.3, 30, 600],
  );
  assert.equal(both.readDoubleLE(153), 0, "heavyFlowHeadroom: off");
  assert.equal(both.length, 161);
  // Without flow control there is no section 6.
  assert.equal(sectionBody(encodeSnapshot(snapshot()), SECTION_FLOW_CONTROL), null);
  assert.equal(sectionBody(encodeSnapshot(snapshot(null)), SECTION_FLOW_CONTROL), null);
});

test("snapshot section 6: round trip, bands written highest first, templates at priority 0, later bytes skipped", () => {
  assert.deepEqual(decodeSnapshot(encodeSnapshot(snapshot(FC))), snapshot(FC));
  assert.deepEqual(decodeSnapshot(encodeSnapshot(snapshot())), snapshot(), "no section: no flowControl");
  const shuffled = { ...FC, bands: [...FC.bands].reverse(), defaultBand: { ...FC.defaultBand, priority: 42 } };
  assert.deepEqual(decodeSnapshot(encodeSnapshot(snapshot(shuffled))).flowControl, FC);
  assert.deepEqual(
    decodeSnapshot(encodeSnapshot(snapshot(DEFAULT_FLOW_CONTROL))).flowControl,
    DEFAULT_FLOW_CONTROL,
    "the defaults",
  );
  const policies = {
    ...FC,
    holdback: { domain: "rank" as const, minCeiling: 0.6, maxCeiling: 1 },
    programAware: { weightService: 0.8, weightHeadWait: 0.2, halfLifeSeconds: 60, evictionTtlSeconds: 3600 },
  };
  assert.deepEqual(decodeSnapshot(encodeSnapshot(snapshot(policies))).flowControl, policies, "holdback, LAS");
  const later = encodeSnapshot(snapshot(FC), { tail: Buffer.from([1, 2, 3, 4, 5]), sectionId: 99 });
  assert.equal(sectionBody(later, SECTION_FLOW_CONTROL)!.length, 104 + 5);
  assert.deepEqual(decodeSnapshot(later).flowControl, FC);
  // A section that ends inside its fields is refused, never read past (section 6 is the last one here).
  const blob = encodeSnapshot(snapshot(FC));
  const at = blob.length - 104 - 4; // the section's length field
  const short = Buffer.from(blob.subarray(0, at + 4 + 60)); // it now ends inside the negative template
  short.writeUInt32LE(60, at);
  short.writeUInt32LE(short.length, 24);
  short.writeUInt32LE(fnv1a(short, HEADER_SIZE, short.length), 28);
  assert.throws(() => decodeSnapshot(short), /snapshot truncated/);
});

test("flow control is part of the content: turning it on or changing a limit publishes a new version", (t) => {
  const clock = { now: 1_700_000_000_000 };
  let flowControl: SnapshotFlowControl | null = null;
  const content = (): SnapshotContent => ({ profile: DEFAULT_PROFILE, endpoints: [], baseModels: [], flowControl });
  const pub = new SnapshotPublisher(content, { minIntervalMs: 0, now: () => clock.now });
  t.after(() => pub.stop());
  const v0 = pub.current.version;
  clock.now += 10;
  assert.equal(pub.rebuild(), false, "nothing changed");
  flowControl = structuredClone(DEFAULT_FLOW_CONTROL);
  clock.now += 10;
  assert.equal(pub.rebuild(), true, "the gate turned on");
  assert.deepEqual(decodeSnapshot(pub.current.blob).flowControl, DEFAULT_FLOW_CONTROL);
  flowControl = { ...flowControl, defaultBand: { ...flowControl.defaultBand, maxRequests: 10 } };
  clock.now += 10;
  assert.equal(pub.rebuild(), true, "a template limit changed");
  flowControl = null;
  clock.now += 10;
  assert.equal(pub.rebuild(), true, "the gate turned off");
  assert.equal(decodeSnapshot(pub.current.blob).flowControl, undefined);
  assert.ok(pub.current.version > v0);
});

function options(args: string[]): CompanionOptions {
  const r = parseCli([...args, "--port", "0", "--host", "127.0.0.1"], {});
  assert.equal(r.kind, "run");
  return (r as { options: CompanionOptions }).options;
}

test("a config reload turns flow control on and changes it in the next snapshot", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "companion-fc-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "config.yaml");
  writeFileSync(file, "kind: EndpointPickerConfig\n");
  const c = await Companion.create(options(["--endpoints", "127.0.0.1:1", "--config-file", file]), silentLogger);
  const addr = await c.start();
  t.after(() => c.stop());
  const base = `http://127.0.0.1:${addr.port}`;
  const current = async () =>
    decodeSnapshot(new Uint8Array(await (await fetch(`${base}/v1/snapshot`)).arrayBuffer())).flowControl;
  assert.equal(await current(), undefined, "off by default");
  writeFileSync(file, 'kind: EndpointPickerConfig\nfeatureGates: ["flowControl"]\nflowControl: {maxRequests: 7}\n');
  await until("flow control on", async () => (await current())?.maxRequests === 7);
  const listed = (await (await fetch(`${base}/v1/endpoints`)).json()) as { flowControl: SnapshotFlowControl };
  assert.equal(listed.flowControl.maxRequests, 7, "GET /v1/endpoints shows it too");
  writeFileSync(file, 'kind: EndpointPickerConfig\nfeatureGates: ["flowControl"]\nflowControl: {maxRequests: 9}\n');
  await until("changed", async () => (await current())?.maxRequests === 9);
  writeFileSync(file, "kind: EndpointPickerConfig\nfeatureGates: [flowControl]\nflowControl: {maxRequests: -1}\n");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await current())?.maxRequests, 9, "a config that does not load keeps the running one");
  writeFileSync(file, "kind: EndpointPickerConfig\n");
  await until("off again", async () => (await current()) === undefined);
});

const report = (gatewayId: bigint, seq: bigint, queue?: QueueEntry[]): GatewayReport => ({
  gatewayId,
  reportSeq: seq,
  cursors: [],
  inflight: [{ addressHash: 7, count: 1 }],
  adapters: [],
  records: [],
  ...(queue ? { queue } : {}),
});

test("report tail: u16 queueEntryCount, then {i32 priority, u32 queued}; reports without it stay valid", () => {
  const plain = encodeReport(report(1n, 1n));
  const tailed = encodeReport(
    report(1n, 1n, [
      { priority: 10, queued: 3 },
      { priority: -5, queued: 2 },
    ]),
  );
  assert.equal(tailed.length, plain.length + 2 + 2 * 8);
  assert.deepEqual(tailed.subarray(0, plain.length), plain, "the tail follows the existing content");
  const dv = new DataView(tailed.buffer, plain.length);
  assert.equal(dv.getUint16(0, true), 2, "queueEntryCount");
  assert.deepEqual(
    [dv.getInt32(2, true), dv.getUint32(6, true), dv.getInt32(10, true), dv.getUint32(14, true)],
    [10, 3, -5, 2],
  );
  assert.deepEqual(
    decodeReport(tailed),
    report(1n, 1n, [
      { priority: 10, queued: 3 },
      { priority: -5, queued: 2 },
    ]),
  );
  assert.equal(decodeReport(plain).queue, undefined, "no tail: nothing queued");
  assert.deepEqual(decodeReport(encodeReport(report(1n, 1n, []))).queue, [], "an empty tail");

  const entries = (q: QueueEntry[]) => encodeReport(report(1n, 1n, q));
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["a truncated count", tailed.subarray(0, plain.length + 1), /^report: queueEntryCount runs past the body/],
    [
      "entries past the body",
      tailed.subarray(0, tailed.length - 1),
      /^report: queueEntryCount 2 runs past the body \(needs 16 bytes at byte \d+, 15 left\)$/,
    ],
    [
      "a priority twice",
      entries([
        { priority: 1, queued: 1 },
        { priority: 1, queued: 2 },
      ]),
      /^report: queue\[1\]: priority 1 appears twice$/,
    ],
    [
      "too many queued",
      entries([{ priority: 1, queued: MAX_COUNT + 1 }]),
      /^report: queue\[0\]: queued 1000001 is above 1000000$/,
    ],
    ["bytes after the tail", Buffer.concat([tailed, Buffer.alloc(2)]), /^report: 2 bytes after the queue entries$/],
  ];
  for (const [what, bytes, message] of cases) assert.throws(() => decodeReport(bytes), { message }, what);
});

test("queue sizes: summed over the live gateways, newest report each, relayed once, gone when they expire", () => {
  const T0 = 1_700_000_000_000;
  const a = new GatewayExchange({ companionId: 1n });
  const b = new GatewayExchange({ companionId: 2n });
  a.receive(encodeReport(report(0x11n, 1n, [{ priority: 0, queued: 4 }])), T0);
  a.receive(
    encodeReport(
      report(0x22n, 1n, [
        { priority: 0, queued: 1 },
        { priority: 100, queued: 2 },
        { priority: -1, queued: 0 },
      ]),
    ),
    T0,
  );
  assert.deepEqual(a.queueSizes(T0), [
    { priority: 100, queued: 2 },
    { priority: 0, queued: 5 },
  ]);
  // The same reports reach b directly and through a's relay: each gateway counts once.
  b.receive(encodeReport(report(0x11n, 1n, [{ priority: 0, queued: 4 }])), T0);
  b.acceptRelay(a.takeRelay()!, T0);
  assert.deepEqual(b.queueSizes(T0), a.queueSizes(T0));
  // A newer report replaces the gateway's sizes; one without a tail means nothing queued.
  a.receive(encodeReport(report(0x11n, 2n, [{ priority: 5, queued: 1 }])), T0 + 10);
  a.receive(encodeReport(report(0x22n, 2n)), T0 + 10);
  assert.deepEqual(a.queueSizes(T0 + 10), [{ priority: 5, queued: 1 }]);
  // An older report arriving late changes nothing.
  a.receive(encodeReport(report(0x11n, 1n, [{ priority: 0, queued: 9 }])), T0 + 20);
  assert.deepEqual(a.queueSizes(T0 + 20), [{ priority: 5, queued: 1 }]);
  // Expiry, with the in-flight counts.
  assert.deepEqual(a.queueSizes(T0 + 10 + GATEWAY_EXPIRY_MS), []);
  assert.equal(a.gatewayCount(T0 + 10 + GATEWAY_EXPIRY_MS), 0);
});

test("queue-size gauges: both names, 0 kept for a priority that emptied, the pool's name as inference_pool", async () => {
  const m = new SelfMetrics();
  let sizes = [
    { priority: 10, queued: 3 },
    { priority: -1, queued: 2 },
  ];
  m.flowControlQueue = () => ({ pool: "llm", sizes });
  const text = async () => m.registry.metrics();
  let out = await text();
  assert.match(out, /^endpoint_picker_companion_flow_control_queue_size\{priority="10"\} 3$/m);
  assert.match(out, /^endpoint_picker_companion_flow_control_queue_size\{priority="-1"\} 2$/m);
  assert.match(out, /^llm_d_epp_flow_control_queue_size\{priority="10",inference_pool="llm"\} 3$/m);
  assert.match(out, /^llm_d_epp_flow_control_queue_size\{priority="-1",inference_pool="llm"\} 2$/m);
  assert.match(out, /^# TYPE llm_d_epp_flow_control_queue_size gauge$/m);
  sizes = [{ priority: 10, queued: 1 }];
  out = await text();
  assert.match(out, /^endpoint_picker_companion_flow_control_queue_size\{priority="-1"\} 0$/m, "emptied: 0");
  assert.match(out, /^llm_d_epp_flow_control_queue_size\{priority="10",inference_pool="llm"\} 1$/m);
  assert.ok(QUEUE_SERIES_HOLD_MS >= 60_000);
});

test("queue-size gauges through the companion's HTTP API: reports with tails, the sums on /metrics", async (t) => {
  const c = await Companion.create(options(["--endpoints", "127.0.0.1:1"]), silentLogger);
  const addr = await c.start();
  t.after(() => c.stop());
  const base = `http://127.0.0.1:${addr.port}`;
  const post = (body: Uint8Array<ArrayBuffer>) =>
    fetch(`${base}/v1/gateway-report`, {
      method: "POST",
      headers: { "content-type": "application/vnd.endpoint-picker.gateway-report" },
      body,
    });
  assert.equal((await post(encodeReport(report(0x1n, 1n, [{ priority: 0, queued: 2 }])))).status, 200);
  assert.equal(
    (
      await post(
        encodeReport(
          report(0x2n, 1n, [
            { priority: 0, queued: 3 },
            { priority: -5, queued: 1 },
          ]),
        ),
      )
    ).status,
    200,
  );
  assert.equal((await post(encodeReport(report(0x3n, 1n)))).status, 200, "a report without a tail");
  const bad = await post(
    encodeReport(
      report(0x4n, 1n, [
        { priority: 0, queued: 1 },
        { priority: 0, queued: 1 },
      ]),
    ),
  );
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /priority 0 appears twice/);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (const line of [
    'endpoint_picker_companion_flow_control_queue_size{priority="0"} 5',
    'endpoint_picker_companion_flow_control_queue_size{priority="-5"} 1',
    'llm_d_epp_flow_control_queue_size{priority="0",inference_pool=""} 5',
    'llm_d_epp_flow_control_queue_size{priority="-5",inference_pool=""} 1',
    'endpoint_picker_companion_gateway_reports_total{result="malformed"} 1',
  ])
    assert.ok(metrics.includes(`${line}\n`), `${line} in\n${metrics}`);
});
