// The filter's side of the exchange between gateway replicas (docs/GATEWAYS.md), through the emulator's
// host on virtual time, with the companion's answers made by hand from the wire format: what a gateway
// reports, how the other gateways' counts and chains steer its picks, and that a companion that stops
// answering leaves the gateway deciding on its own state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PickerHost, completion } from "./harness";
import type { HttpCallContext, HttpCallOutcome } from "../../envoy/emulator/host";
import {
  decodeReport,
  encodeView,
  nameHash,
  type ChainRecord,
  type GatewayReport,
  type GatewayView,
} from "../../companion/gateway-wire";

const A = "10.0.0.1:8000",
  B = "10.0.0.2:8000",
  C = "10.0.0.3:8000";
const COMPANION = 0x1234n;

/** A companion answering every report with `answer(report)` (null: no answer, the call times out). */
function companion(answer: (r: GatewayReport) => Partial<GatewayView> | null | "garbage") {
  const reports: GatewayReport[] = [];
  const handler = (call: HttpCallContext): HttpCallOutcome | undefined => {
    const path = call.headers.find(([k]) => k === ":path")?.[1];
    if (path !== "/v1/gateway-report") return { headers: [[":status", "404"]] };
    const report = decodeReport(new Uint8Array(call.body));
    reports.push(report);
    const a = answer(report);
    if (a === null) return undefined;
    if (a === "garbage") return { headers: [[":status", "200"]], body: new Uint8Array([1, 2, 3]) };
    const view: GatewayView = {
      companionId: COMPANION,
      cursor: 1n,
      gatewayCount: 2,
      inflight: [],
      adapters: [],
      records: [],
      ...a,
    };
    return { headers: [[":status", "200"]], body: encodeView(view) };
  };
  return { reports, handler };
}

function gateway(handler: (call: HttpCallContext) => HttpCallOutcome | undefined): PickerHost {
  const h = new PickerHost({
    concurrency: 2,
    config: { shareWithGateways: true, failureMode: "FailClose", stalenessLimitMs: 3_600_000 },
    httpCallHandler: handler,
  });
  h.publish([{ address: A }, { address: B }, { address: C }], { kvWeight: 0 });
  return h;
}

const prompt = (tenant: number) => `You are the assistant of tenant ${tenant}. `.repeat(40) + "Question?";

test("a gateway reports its requests in flight (every worker VM) and the chains it sent, once per tick", () => {
  const { reports, handler } = companion(() => ({}));
  const h = gateway(handler);
  h.advance(100);
  const open = [];
  for (let i = 0; i < 6; i++) open.push(h.pick({ worker: i % 2, body: completion("m", prompt(i)) }));
  h.advance(120);
  const last = reports[reports.length - 1];
  assert.ok(reports.length >= 8 && reports.length <= 11, `reports in 220 ms of 20 ms ticks: ${reports.length}`);
  assert.equal(new Set(reports.map((r) => r.gatewayId)).size, 1, "one gateway id for the whole Envoy");
  assert.ok(reports.every((r, k) => k === 0 || r.reportSeq > reports[k - 1].reportSeq));
  assert.equal(
    last.inflight.reduce((n, e) => n + e.count, 0),
    6,
    "both VMs' requests in flight",
  );
  const byHash = new Map(last.inflight.map((e) => [e.addressHash, e.count]));
  for (const { dest } of open) assert.ok((byHash.get(nameHash(dest!)) ?? 0) > 0);
  const chains = reports.flatMap((r) => r.records);
  assert.equal(chains.length, 6, "each chain reported once, from either VM");
  assert.deepEqual(new Set(chains.map((c) => c.endpointHash)), new Set(open.map(({ dest }) => nameHash(dest!))));
  assert.deepEqual(last.cursors, [{ companionId: COMPANION, cursor: 1n }], "the companion's cursor comes back");
  for (const { stream } of open) stream.finish();
  h.advance(100);
  assert.equal(reports[reports.length - 1].inflight.length, 0, "finished requests leave the report");
});

test("the other gateways' requests in flight steer the picks, until the companion stops answering", () => {
  let answering = true;
  const { handler } = companion(() =>
    answering
      ? {
          inflight: [
            { addressHash: nameHash(A), count: 40 },
            { addressHash: nameHash(B), count: 40 },
          ],
        }
      : null,
  );
  const h = gateway(handler);
  h.advance(200);
  for (let i = 0; i < 10; i++) {
    const { stream, dest } = h.pick({ worker: i % 2, body: completion("m", `q${i}`) });
    assert.equal(dest, C, "A and B are busy with other gateways' requests");
    stream.finish();
  }
  answering = false; // a hung companion: reports time out
  h.advance(3_500);
  const picks = new Set<string>();
  for (let i = 0; i < 30; i++) {
    const { stream, dest } = h.pick({ worker: i % 2, body: completion("m", `r${i}`) });
    picks.add(dest!);
    stream.finish();
  }
  assert.deepEqual([...picks].sort(), [A, B, C], "their counts aged out: all three are used again");
  assert.ok(
    h.logs.some((l) => /deciding with this gateway's own state/.test(l)),
    h.logs.join("\n"),
  );
});

test("a prefix another gateway sent to an endpoint lands there from this gateway too", () => {
  // Gateway 1 sends tenant 7's prompt somewhere; its report's chain is handed to gateway 2 by the companion.
  let relayed: ChainRecord[] = [];
  const one = gateway(
    companion((r) => {
      relayed.push(...r.records);
      return {};
    }).handler,
  );
  const two = gateway(
    companion(() => {
      const records = relayed;
      relayed = [];
      return { records };
    }).handler,
  );
  one.advance(100);
  two.advance(100);
  const first = one.pick({ body: completion("m", prompt(7)) });
  one.advance(60);
  two.advance(120);
  for (let i = 0; i < 8; i++) {
    const { stream, dest } = two.pick({ worker: i % 2, body: completion("m", prompt(7) + ` follow-up ${i}`) });
    assert.equal(dest, first.dest, "the endpoint that holds the prefix");
    stream.finish();
  }
});

test("a malformed answer or a refusal is logged and changes nothing", () => {
  let mode: "garbage" | "ok" = "garbage";
  const { handler } = companion(() =>
    mode === "garbage" ? "garbage" : { inflight: [{ addressHash: nameHash(A), count: 99 }] },
  );
  const h = gateway(handler);
  h.advance(200);
  assert.ok(
    h.logs.some((l) => /gateway view is malformed/.test(l)),
    h.logs.join("\n"),
  );
  const picks = new Set<string>();
  for (let i = 0; i < 30; i++) picks.add(h.pick({ worker: i % 2, body: completion("m", `q${i}`) }).dest!);
  assert.ok(picks.has(A), "no phantom load on A");
  mode = "ok";
  h.advance(200);
  assert.ok(h.logs.some((l) => /exchange with the companion works again/.test(l)));
  const refused = new PickerHost({
    config: { shareWithGateways: true },
    httpCallHandler: () => ({ headers: [[":status", "404"]] }),
  });
  refused.advance(200);
  assert.ok(
    refused.logs.some((l) => /answered the gateway report with 404 \(a companion older than this filter\?\)/.test(l)),
  );
  assert.ok(refused.counter("endpoint_picker.gateway_reports.failed") <= 2, "a refusal waits before reporting again");
});

test("one hung companion replica of two: the next report goes to the other at once (Envoy's 504 is no refusal)", () => {
  let calls = 0,
    answered = 0;
  const h = gateway((call) => {
    decodeReport(new Uint8Array(call.body));
    if (calls++ % 2 === 1) return undefined; // this replica never answers: the call times out
    answered++;
    return {
      headers: [[":status", "200"]],
      body: encodeView({
        companionId: COMPANION,
        cursor: 1n,
        gatewayCount: 2,
        inflight: [],
        adapters: [],
        records: [],
      }),
    };
  });
  h.advance(5000);
  // One call in flight at a time, each hung one costing its 1 s timeout: an answer about every second (a
  // 504 taken for a refusal would wait 5 s after each).
  assert.ok(answered >= 4, `answered reports in 5 s: ${answered}`);
});

test("a report refused as too large is not sent again: its chains are dropped, reporting resumes after a pause", () => {
  const seen: GatewayReport[] = [];
  let refuse = false;
  const h = gateway((call) => {
    const r = decodeReport(new Uint8Array(call.body));
    seen.push(r);
    if (refuse) return { headers: [[":status", "413"]] };
    return {
      headers: [[":status", "200"]],
      body: encodeView({
        companionId: COMPANION,
        cursor: 1n,
        gatewayCount: 1,
        inflight: [],
        adapters: [],
        records: [],
      }),
    };
  });
  h.advance(100);
  refuse = true; // from the report that carries the chains below
  for (let i = 0; i < 4; i++) h.pick({ worker: i % 2, body: completion("m", prompt(i)) }).stream.finish();
  h.advance(100);
  const refusedAt = seen.length;
  assert.ok(
    seen.some((r) => r.records.length > 0),
    "the chains went out once",
  );
  refuse = false;
  h.advance(2000);
  assert.equal(seen.length, refusedAt, "no report during the pause after a refusal");
  h.advance(4000);
  assert.ok(seen.length > refusedAt, "reporting resumed");
  // Four chains were sent, each reported once: the refused report's were not sent again.
  assert.equal(
    seen.reduce((n, r) => n + r.records.length, 0),
    4,
    "every chain reported once",
  );
  assert.ok(
    h.logs.some((l) => /413 \(larger than its --max-report-bytes\)/.test(l)),
    h.logs.join("\n"),
  );
});
