// The relay between companions: PeerRelay against fake peers (own-address exclusion, DNS refresh, 409 from
// itself, a hung peer, the token), then two real companion processes (build/companion.mjs) peering over
// loopback: a report to A shows up in B's answer to another gateway within a few hundred ms, and killing B
// does not disturb A, which relays to B again once B is back.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { ChildProcess } from "node:child_process";
import type { AddressInfo } from "node:net";
import { GatewayExchange } from "../../companion/gateway-exchange";
import { decodeRelay, decodeReport, decodeView, type GatewayView } from "../../companion/gateway-wire";
import { createLogger } from "../../companion/log";
import { PeerRelay, isOwnAddress, type RelaySendResult } from "../../companion/peers";
import { freePortOn } from "../helpers/ports";
import { until } from "../helpers/until";
import { spawnCompanion, gatewayReport } from "../helpers/companion-process";

type Log = Array<{ level: string; msg: string; [k: string]: unknown }>;

function capture(): { log: ReturnType<typeof createLogger>; lines: Log } {
  const lines: Log = [];
  return { log: createLogger("debug", (l) => void lines.push(JSON.parse(l))), lines };
}

const report = (gatewayId: bigint, seq: bigint, inflight: Array<[number, number]> = [], tags: number[] = []) =>
  gatewayReport(
    gatewayId,
    seq,
    inflight,
    tags.map((tag) => ({ endpointHash: 1, blocks: 1, levels: [tag] })),
  );

/** A fake peer companion: records what it is sent, answers `status`, or never answers when `hang`. */
async function fakePeer(t: { after(fn: () => unknown): void }, port = 0, host = "127.0.0.1") {
  const peer = {
    port: 0,
    status: 204,
    hang: false,
    bodies: [] as Uint8Array[],
    auth: [] as Array<string | undefined>,
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      peer.bodies.push(Buffer.concat(chunks));
      peer.auth.push(req.headers.authorization);
      if (!peer.hang) res.writeHead(peer.status).end();
    });
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  peer.port = (server.address() as AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return peer;
}

test("own addresses: a static peer at its own port; a DNS peer at any local address but loopback only at its port", () => {
  const local = new Set(["127.0.0.1", "::1", "192.0.2.2", "fd00::2"]);
  const cases: Array<[string, number, "static" | "dns", boolean]> = [
    ["127.0.0.1", 9002, "static", true],
    ["127.0.0.1", 9003, "static", false],
    ["127.0.0.5", 9002, "dns", true],
    ["::1", 9003, "dns", false],
    ["::1", 9002, "dns", true],
    ["192.0.2.2", 9002, "static", true],
    ["192.0.2.2", 9003, "static", false],
    ["192.0.2.2", 9003, "dns", true],
    ["fd00::2", 9002, "dns", true],
    ["10.0.0.9", 9002, "dns", false],
    ["companion-1.svc", 9002, "static", false],
  ];
  for (const [host, port, source, own] of cases)
    assert.equal(isOwnAddress(host, port, 9002, local, source), own, `${source} ${host}:${port}`);
});

test("PeerRelay: every peer gets each relay body with the token; DNS peers follow the records, this process excluded", async (t) => {
  const p1 = await fakePeer(t);
  const p2 = await fakePeer(t);
  const ex = new GatewayExchange({ companionId: 5n });
  let records = ["127.0.0.1", "192.0.2.77", "10.255.255.1"];
  let dnsFails = false;
  const sends: RelaySendResult[] = [];
  const { log, lines } = capture();
  const relay = new PeerRelay(
    ex,
    {
      peers: [{ host: "127.0.0.1", port: p1.port }],
      dns: { host: "companions.example", port: p2.port },
      apiToken: "tok",
      intervalMs: 10,
      timeoutMs: 200,
      resolveIntervalMs: 30,
    },
    log,
    {
      resolve: async (name) => {
        assert.equal(name, "companions.example");
        if (dnsFails) throw new Error("queryA ETIMEOUT companions.example");
        return records;
      },
      localAddresses: () => new Set(["127.0.0.1", "192.0.2.77"]),
      onSend: (r) => sends.push(r),
    },
  );
  t.after(() => relay.stop());
  relay.start(p1.port + 1 === p2.port ? p2.port + 1 : p1.port + 1); // not the port of either fake peer
  // 192.0.2.77 is this host: excluded; 127.0.0.1 at p2's port is another process; 10.255.255.1 does not answer.
  await until("DNS peers", () => relay.status().length === 3);
  assert.deepEqual(
    relay.status().map((s) => [s.peer, s.source]),
    [
      [`127.0.0.1:${p1.port}`, "static"],
      [`127.0.0.1:${p2.port}`, "dns"],
      [`10.255.255.1:${p2.port}`, "dns"],
    ],
  );

  ex.receive(report(1n, 1n, [[3, 1]]), Date.now());
  await until("both peers got the relay", () => p1.bodies.length === 1 && p2.bodies.length === 1);
  for (const peer of [p1, p2]) {
    const body = decodeRelay(peer.bodies[0]);
    assert.equal(body.companionId, 5n);
    assert.deepEqual(
      body.reports.map((r) => decodeReport(r.report).gatewayId),
      [1n],
    );
    assert.deepEqual(peer.auth, ["Bearer tok"]);
  }
  await until("the unreachable peer failed", () => relay.status()[2].state === "failing", 2000);
  await until("sends counted", () => sends.filter((r) => r === "ok").length === 2 && sends.includes("error"));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(p1.bodies.length, 1, "nothing is sent when nothing was received");

  // A DNS failure keeps the peers known (one warn line); a new answer drops the peer that left.
  dnsFails = true;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(relay.status().length, 3);
  dnsFails = false;
  records = ["127.0.0.1"];
  await until("the unreachable peer left", () => relay.status().length === 2);
  assert.equal(lines.filter((l) => l.msg.startsWith("--peers-dns: resolving failed")).length, 1);
  assert.equal(lines.filter((l) => l.msg === "relay to peer failing").length, 1);
  assert.equal(relay.count, 2);
});

test("PeerRelay: a peer answering 409 is this companion and left alone; a hung peer times out, is logged once, and recovers", async (t) => {
  const self = await fakePeer(t);
  self.status = 409;
  const slow = await fakePeer(t);
  slow.hang = true;
  const ex = new GatewayExchange({ companionId: 5n });
  const sends: RelaySendResult[] = [];
  const { log, lines } = capture();
  const relay = new PeerRelay(
    ex,
    {
      peers: [
        { host: "127.0.0.1", port: self.port },
        { host: "127.0.0.1", port: slow.port },
      ],
      dns: undefined,
      apiToken: undefined,
      intervalMs: 10,
      timeoutMs: 100,
    },
    log,
    { onSend: (r) => sends.push(r) },
  );
  t.after(() => relay.stop());
  relay.start(1);
  let seq = 0n;
  const feed = setInterval(() => ex.receive(report(1n, ++seq), Date.now()), 10);
  t.after(() => clearInterval(feed));
  await until("409 seen", () => relay.status()[0].state === "self");
  await until("the hung peer timed out and its queue overflowed", () => sends.includes("dropped"), 5000);
  assert.equal(self.bodies.length, 1, "nothing more to the peer that is this companion");
  assert.equal(relay.count, 1);
  const slowStatus = relay.status()[1];
  assert.equal(slowStatus.state, "failing");
  assert.match(slowStatus.lastError!, /no answer within 100ms/);
  assert.equal(lines.filter((l) => l.msg === "relay to peer failing").length, 1, "logged once, not per send");
  slow.hang = false;
  await until("recovered", () => relay.status()[1].state === "ok", 5000);
  assert.equal(lines.filter((l) => l.msg === "peer reachable again").length, 1);
  assert.ok(sends.includes("self"));
});

interface Running {
  child: ChildProcess;
  base: string;
  stderr: () => string;
}

const TOKEN = "relay-token";

async function companion(port: number, peerArgs: string[]): Promise<Running> {
  return spawnCompanion([
    "--endpoints",
    "127.0.0.1:1",
    "--port",
    String(port),
    "--host",
    "127.0.0.1",
    "--api-token",
    TOKEN,
    ...peerArgs,
  ]);
}

async function ask(base: string, body: Uint8Array<ArrayBuffer>): Promise<GatewayView> {
  const res = await fetch(`${base}/v1/gateway-report`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}` },
    body,
  });
  assert.equal(res.status, 200);
  return decodeView(new Uint8Array(await res.arrayBuffer()));
}

/** Asks `base` as gateway `id` until `check` holds on its answer; returns how long that took. */
async function askUntil(base: string, id: bigint, check: (v: GatewayView) => boolean, what: string) {
  const started = Date.now();
  let seq = 1000n;
  await until(what, async () => check(await ask(base, report(id, ++seq))), 3000);
  return Date.now() - started;
}

function stop(r: Running, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    r.child.once("exit", () => resolve());
    r.child.kill(signal);
  });
}

test("two companions with --peers at each other: a report to A is in B's answer within a few hundred ms; killing B leaves A serving", async (t) => {
  const [portA, portB] = [await freePortOn(["127.0.0.1"]), await freePortOn(["127.0.0.1"])];
  assert.notEqual(portA, portB);
  const running: Running[] = [];
  t.after(() => Promise.all(running.map((r) => stop(r, "SIGKILL"))));
  const a = await companion(portA, ["--peers", `127.0.0.1:${portB}`]);
  running.push(a);
  // B finds A through DNS: localhost resolves to loopback, and B's own port there is excluded.
  let b = await companion(portB, ["--peers-dns", `localhost:${portA}`]);
  running.push(b);

  const g1 = 0x1111n,
    g2 = 0x2222n;
  const first = await ask(a.base, report(g1, 1n, [[42, 3]], [4242]));
  assert.equal(first.gatewayCount, 1);
  const ms = await askUntil(
    b.base,
    g2,
    (v) => v.inflight.some((e) => e.addressHash === 42 && e.count === 3) && v.records.some((r) => r.levels[0] === 4242),
    "A's gateway in B's answer",
  );
  assert.ok(ms < 1000, `took ${ms} ms`);
  t.diagnostic(`a report to A reached B's answer after ${ms} ms`);
  const viewB = await ask(b.base, report(g2, 5000n));
  assert.equal(viewB.gatewayCount, 2);
  assert.notEqual(viewB.companionId, first.companionId);
  // And back: g2's counts at B reach A's answer to g1.
  await ask(b.base, report(g2, 5001n, [[43, 2]]));
  await askUntil(a.base, g1, (v) => v.inflight.some((e) => e.addressHash === 43 && e.count === 2), "B's gateway at A");

  // Kill B: A keeps answering, logs the failing peer once, and relays to B again once it is back.
  await stop(b, "SIGKILL");
  for (let i = 0; i < 10; i++) {
    await ask(a.base, report(g1, 100n + BigInt(i), [[42, 1]]));
    await new Promise((r) => setTimeout(r, 30));
  }
  await until("A logged the failing peer", () => a.stderr().includes('"msg":"relay to peer failing"'));
  const metrics = await (await fetch(`${a.base}/metrics`)).text();
  assert.match(metrics, /endpoint_picker_companion_gateway_relay_sends_total\{result="error"\} [1-9]/);
  assert.match(metrics, /endpoint_picker_companion_gateway_peers 1\n/);
  b = await companion(portB, ["--peers-dns", `localhost:${portA}`]);
  running.push(b);
  await ask(a.base, report(g1, 200n, [[44, 5]]));
  await askUntil(
    b.base,
    g2,
    (v) => v.inflight.some((e) => e.addressHash === 44 && e.count === 5),
    "A relays to B again",
  );
  await until("A logged B back", () => a.stderr().includes('"msg":"peer reachable again"'));
  assert.equal(a.stderr().split('"msg":"relay to peer failing"').length - 1, 1, "one line for the whole outage");
  assert.equal(a.child.exitCode, null);

  // A companion whose DNS name lists only itself relays to nobody (and never to itself).
  const portC = await freePortOn(["127.0.0.1"]);
  const c = await companion(portC, ["--peers-dns", `localhost:${portC}`]);
  running.push(c);
  await ask(c.base, report(g1, 1n));
  await new Promise((r) => setTimeout(r, 200));
  assert.match(await (await fetch(`${c.base}/metrics`)).text(), /endpoint_picker_companion_gateway_peers 0\n/);
  assert.ok(!c.stderr().includes("relaying gateway reports to peer"), c.stderr());
});
