// Gateway replicas in the virtual-time fleet: the load balancer model, the filter on several gateways, and
// the exchange hook that routes the gateways' reports to in-process exchange objects over a simulated network.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { type Host, type HttpCallOutcome, createHost } from "../../envoy/emulator/host";
import { VirtualClock } from "./clock";
import { type GatewayExchangeLike, ExchangeNetwork, gatewayCallHandler } from "./pickers/exchange";
import { companionExchange } from "./pickers/exchange-loader";
import { runFleet } from "./fleet";
import { makeBalancer } from "./pickers/gateways";
import { createPicker } from "./pickers/index";
import { defaultFilterWasm } from "./pickers/filter";
import { makeProfile } from "./profile";
import { Rng } from "./rng";
import { atRate, makeWorkload } from "./workloads";

const profile = makeProfile({ kv: { cacheTokens: 65536 }, metricsLagMs: 500 });
const small = (kind: "prefix-c" | "sharegpt", rate: number, count: number) =>
  atRate(makeWorkload(kind, { count, ratePerSec: 1, model: profile.model, seed: 5 }), rate);
const FILTER = defaultFilterWasm();
const hasFilter = existsSync(FILTER);
const TEST_MODULE = "build/emulator-test-module.wasm";
const hasTestModule = existsSync(TEST_MODULE);
const enc = new TextEncoder();
const dec = new TextDecoder();

test("the load balancer: round-robin cycles over the gateways; random is seeded and spreads evenly", () => {
  const rr = makeBalancer("round-robin", 3, new Rng(1));
  assert.deepEqual(
    Array.from({ length: 7 }, () => rr.next()),
    [0, 1, 2, 0, 1, 2, 0],
  );
  const draw = (seed: number) => {
    const lb = makeBalancer("random", 4, new Rng(seed));
    return Array.from({ length: 4000 }, () => lb.next());
  };
  assert.deepEqual(draw(3), draw(3));
  const per = [0, 1, 2, 3].map((g) => draw(3).filter((x) => x === g).length);
  assert.ok(
    per.every((n) => n > 900 && n < 1100),
    `random ${per}`,
  );
  assert.throws(() => makeBalancer("round-robin", 0, new Rng(1)), /gateways/);
});

test(
  "filter on 3 gateways: every request is placed, round-robin gives each gateway a third",
  { skip: !hasFilter && "build/filter.wasm not built" },
  () => {
    const r = runFleet({
      pods: 4,
      profile,
      picker: createPicker("filter", { gateways: 3, lb: "round-robin" }),
      workload: small("prefix-c", 4, 150),
    });
    assert.equal(r.records.length, 150);
    assert.ok(
      r.records.every((x) => x.status === "ok" && x.pod >= 0 && x.pod < 4),
      JSON.stringify(r.records.find((x) => x.status !== "ok")),
    );
    const per = [0, 1, 2].map((g) => r.records.filter((x) => x.gateway === g).length);
    assert.deepEqual(per, [50, 50, 50]);
    assert.equal(r.pickerStats.gatewayRequests, "50/50/50");
    assert.equal(r.pickerStats.gateways, 3);
    assert.equal(r.pickerStats.failedWorkers, 0, "no worker VM trapped");
    assert.equal(r.pickerStats.fallbacks, 0, "every gateway had a snapshot and decided");
    assert.equal(r.summary.successRate, 1);
    // Random: about a third each; the same seed, the same run.
    const rand = () =>
      runFleet({
        pods: 4,
        profile,
        picker: createPicker("filter", { gateways: 3, lb: "random" }),
        workload: small("sharegpt", 10, 150),
        seed: 4,
      });
    const a = rand();
    const perRandom = [0, 1, 2].map((g) => a.records.filter((x) => x.gateway === g).length);
    assert.ok(
      perRandom.every((n) => n >= 30 && n <= 70),
      `random ${perRandom}`,
    );
    assert.deepEqual(a.records, rand().records);
  },
);

test(
  "one gateway keeps the single-gateway behaviour; non-filter pickers report gateway 0",
  { skip: !hasFilter && "build/filter.wasm not built" },
  () => {
    const one = runFleet({ pods: 3, profile, picker: createPicker("filter"), workload: small("sharegpt", 10, 60) });
    assert.equal(one.pickerStats.gateways, 1);
    assert.ok(one.records.every((x) => x.gateway === 0));
    const lr = runFleet({
      pods: 3,
      profile,
      picker: createPicker("least-request"),
      workload: small("sharegpt", 10, 60),
    });
    assert.ok(lr.records.every((x) => x.gateway === 0));
  },
);

/** A fake exchange: records what it receives, answers with its name and a counter. */
function fakeExchange(name: string) {
  const got: { body: string; nowMs: number }[] = [];
  const relayed: { body: string; nowMs: number }[] = [];
  let pendingRelay: string[] = [];
  const ex: GatewayExchangeLike & { got: typeof got; relayed: typeof relayed } = {
    got,
    relayed,
    receive(bytes, nowMs) {
      const body = dec.decode(bytes);
      if (body === "bad") throw new Error("not a report");
      got.push({ body, nowMs });
      pendingRelay.push(body);
      return enc.encode(`${name}:${got.length}`);
    },
    takeRelay() {
      if (pendingRelay.length === 0) return null;
      const out = enc.encode(`${name}>${pendingRelay.join(",")}`);
      pendingRelay = [];
      return out;
    },
    acceptRelay(body, nowMs) {
      relayed.push({ body: dec.decode(body), nowMs });
    },
  };
  return ex;
}

test(
  "the exchange hook: a report reaches the exchange after upMs, its answer reaches the module downMs later",
  { skip: !hasTestModule && `${TEST_MODULE} not built` },
  () => {
    const clock = new VirtualClock();
    const fakes = [fakeExchange("A"), fakeExchange("B")];
    const net = new ExchangeNetwork(clock, { create: (i) => fakes[i], replicas: 2, upMs: 3, downMs: 5 });
    const logs: { at: number; msg: string }[] = [];
    let ref: Host | null = null;
    // The emulator's test module posts (its op http_call, path from x-c) and logs each answer.
    const host: Host = createHost({
      wasm: TEST_MODULE,
      rootId: "test-root",
      vmId: "test-vm",
      manualTicks: true,
      onLog: (_l, msg) => logs.push({ at: ref?.nowMs() ?? 0, msg }),
      httpCallHandler: gatewayCallHandler({
        network: net,
        gateway: 0,
        sentAtMs: () => host.nowMs(),
        sync: () => host.advance(clock.now() - host.nowMs()),
        other: () => ({ headers: [[":status", "304"]] }),
      }),
    });
    ref = host;
    const post = (path: string) => {
      host.advance(clock.now() - host.nowMs());
      const s = host.openStream();
      s.sendRequestHeaders(
        [
          [":method", "GET"],
          [":path", "/"],
          [":authority", "gw"],
          ["x-op", "http_call"],
          ["x-a", "endpoint-picker-companion"],
          ["x-b", "1000"],
          ["x-c", path],
        ],
        true,
      );
    };
    const answers = () => logs.filter((l) => l.msg.startsWith("http_response"));
    clock.at(10, () => post("/v1/gateway-report"));
    clock.at(12, () => post("/v1/snapshot?after=3")); // not a report: answered as today, at once
    clock.at(30, () => post("/v1/gateway-report"));
    clock.run();
    host.advance(clock.now() - host.nowMs());
    try {
      // Reports alternate over the two replicas; each arrives upMs after it left.
      assert.deepEqual(
        fakes.map((f) => f.got.map((g) => g.nowMs - clock.epochMs)),
        [[13], [33]],
      );
      const a = answers();
      assert.equal(a.length, 3);
      assert.equal(a[0].at, 12);
      assert.match(a[0].msg, /status=304/);
      assert.equal(a[1].at, 18, "answered upMs + downMs after the report left");
      assert.match(a[1].msg, /body=A:1 status=200/);
      assert.equal(a[2].at, 38);
      assert.match(a[2].msg, /body=B:1 status=200/);
      assert.equal(net.counters.reports, 2);
      assert.equal(net.counters.answers, 2);
    } finally {
      host.close();
    }
  },
);

test("the exchange network: a bad report gets a 400; replicas relay to each other after relayMs", () => {
  const clock = new VirtualClock();
  const fakes = [fakeExchange("A"), fakeExchange("B")];
  const net = new ExchangeNetwork(clock, {
    create: (i) => fakes[i],
    upMs: 1,
    downMs: 1,
    relayMs: 4,
    relayIntervalMs: 50,
  });
  const outcomes: { at: number; status: string; body: string }[] = [];
  const deliver = (o: HttpCallOutcome) => {
    assert.ok("headers" in o);
    const body = typeof o.body === "string" ? o.body : dec.decode(o.body);
    outcomes.push({ at: clock.now(), status: o.headers.find(([k]) => k === ":status")![1], body });
  };
  // A periodic hook like the fleet's, for 200 ms.
  const every = (ms: number, fn: (now: number) => void) => {
    const run = () => {
      fn(clock.now());
      if (clock.now() + ms <= 200) clock.at(clock.now() + ms, run);
    };
    clock.at(ms, run);
  };
  net.startRelays(every);
  clock.at(5, () => net.send(0, enc.encode("g0-r1"), 5, deliver)); // replica A
  clock.at(6, () => net.send(1, enc.encode("g1-r1"), 6, deliver)); // gateway 1 starts at replica B
  clock.at(7, () => net.send(0, enc.encode("bad"), 7, deliver)); // replica B refuses it
  clock.run();
  assert.deepEqual(outcomes, [
    { at: 7, status: "200", body: "A:1" },
    { at: 8, status: "200", body: "B:1" },
    { at: 9, status: "400", body: "bad gateway report: not a report\n" },
  ]);
  // A relays at 50 (phase 0), B at 75 (phase 25); each peer gets it relayMs later.
  assert.deepEqual(fakes[1].relayed, [{ body: "A>g0-r1", nowMs: clock.epochMs + 54 }]);
  assert.deepEqual(fakes[0].relayed, [{ body: "B>g1-r1", nowMs: clock.epochMs + 79 }]);
  assert.equal(net.counters.refused, 1);
  assert.equal(net.counters.relays, 2);
});

test(
  "filter on 3 gateways with the exchange on: every gateway reports and gets its answer",
  { skip: !hasFilter && "build/filter.wasm not built" },
  () => {
    const ids = new Set<bigint>();
    let answered = 0;
    const exchange = (replica: number): GatewayExchangeLike => ({
      receive(bytes) {
        assert.equal(dec.decode(bytes.subarray(0, 4)), "EPG1");
        ids.add(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(8, true));
        answered++;
        // An empty view: magic, format 1, reserved, companionId, cursor, gatewayCount 1, three empty lists.
        const view = new Uint8Array(40);
        const v = new DataView(view.buffer);
        view.set(enc.encode("EPG1"));
        v.setUint16(4, 1, true);
        v.setBigUint64(8, BigInt(replica + 1), true);
        v.setBigUint64(16, 0n, true);
        v.setUint32(24, 1, true);
        return view;
      },
    });
    const r = runFleet({
      pods: 4,
      profile,
      picker: createPicker("filter", { gateways: 3, exchange: { create: exchange, replicas: 2 } }),
      workload: small("prefix-c", 4, 120),
    });
    assert.equal(r.summary.successRate, 1);
    assert.equal(ids.size, 3, "one gateway id per gateway");
    assert.ok(answered > 3);
    assert.equal(r.pickerStats.exchangeRefused, 0);
    assert.equal(r.pickerStats.exchangeGateways, 3);
  },
);

test(
  "the companion's GatewayExchange on 2 replicas: every gateway's reports are answered and relayed",
  {
    skip: !hasFilter && "build/filter.wasm not built",
  },
  async () => {
    const create = companionExchange;
    const run = () =>
      runFleet({
        pods: 4,
        profile,
        picker: createPicker("filter", { gateways: 3, exchange: { create, replicas: 2 } }),
        workload: small("prefix-c", 4, 120),
      });
    const r = run();
    const s = r.pickerStats;
    assert.equal(r.summary.successRate, 1);
    assert.equal(s.failedWorkers, 0);
    assert.equal(s.exchangeGateways, 3);
    assert.equal(s.exchangeRefused, 0, String(s.exchangeLastRefusal));
    assert.equal(s.exchangeAnswers, s.exchangeReports);
    assert.ok(Number(s.exchangeRelays) > 0, "the replicas relayed to each other");
    assert.equal(s.exchangeRelayErrors, 0);
    assert.ok(Number(s.filterReportsOk) > 0 && s.filterReportsFailed === 0, JSON.stringify(s));
    assert.equal(s.filterGatewaysSeen, "3/3/3", "each filter was told of all three gateways");
    assert.deepEqual(run().records, r.records, "the same run again, request by request");
  },
);
