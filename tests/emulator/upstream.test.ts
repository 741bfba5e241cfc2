// The upstream side of the emulator against Envoy's: the override_host load balancer and its fallback
// policy, the route's retry_policy, outlier detection (for routed requests and proxy_http_call), the
// stream-info properties the filter reads (upstream.address, response.code_details, response.flags,
// upstream.request_attempt_count), the HTTP/1 codec's absolute-form URIs, CONNECT and trailers, and the
// bootstrap's refusals for these messages. Over real loopback sockets; timing rules on virtual time.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net, { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { parseBootstrap, outlierConfig, OutlierConfig } from "../../envoy/emulator/bootstrap";
import { startGateway, Gateway } from "../../envoy/emulator/gateway";
import { createHost } from "../../envoy/emulator/host";
import { OutlierDetector } from "../../envoy/emulator/outlier";
import { RetryState } from "../../envoy/emulator/retry";
import { VirtualScheduler } from "../../envoy/emulator/scheduler";
import { ResponseFlag } from "../../envoy/emulator/stream-info";
import { UpstreamCluster, UpstreamHost, overrideHostList } from "../../envoy/emulator/upstream";
import { startUpstream, tempBootstrap, deadPort, get, lbPolicy, Upstream } from "./fixtures";

const MODULE = "build/emulator-test-module.wasm";
const DEST = "x-gateway-destination-endpoint";
const FALLBACK = "x-gateway-destination-endpoint-fallback";

type Y = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function upstream(name: string): Promise<Upstream> {
  const u = await startUpstream(name);
  cleanups.push(() => u.close());
  return u;
}

/** A server that counts connections and requests and answers each request with `handler`. */
async function server(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ address: string; port: number; connections: number; requests: number }> {
  const s = http.createServer();
  const info = { address: "", port: 0, connections: 0, requests: 0 };
  s.on("connection", () => info.connections++);
  s.on("request", (req, res) => {
    info.requests++;
    handler(req, res);
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  info.port = (s.address() as AddressInfo).port;
  info.address = `127.0.0.1:${info.port}`;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  );
  return info;
}

/** A TCP server that accepts connections and never answers (a hung replica); counts connections. */
async function hung(): Promise<{ address: string; port: number; connections: number }> {
  const sockets = new Set<net.Socket>();
  const s = net.createServer((c) => {
    info.connections++;
    sockets.add(c);
    c.on("error", () => {});
    c.on("close", () => sockets.delete(c));
  });
  const info = { address: "", port: 0, connections: 0 };
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  info.port = (s.address() as AddressInfo).port;
  info.address = `127.0.0.1:${info.port}`;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const c of sockets) c.destroy();
        s.close(() => r());
      }),
  );
  return info;
}

interface Gw {
  g: Gateway;
  port: number;
  logs: string[];
}

async function gateway(file: string, wasmFile?: string): Promise<Gw> {
  const logs: string[] = [];
  const g = await startGateway({
    bootstrap: file,
    concurrency: 1,
    logLevel: "info",
    onLog: (_l, m) => logs.push(m),
    wasmFile,
  });
  cleanups.push(() => g.close());
  return { g, port: g.listeners[0].port, logs };
}

const hcmOf = (d: Y) => d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const routeOf = (d: Y) => hcmOf(d).route_config.virtual_hosts[0].routes[0].route;
const poolOf = (d: Y) => d.static_resources.clusters.find((c: Y) => c.name === "inference-pool");

/** The test module as the filter, without the header_mutation filter: the client sets the destination headers. */
function propsBootstrap(opts: { poolPorts: number[]; edit?: (d: Y) => void }): string {
  return tempBootstrap({
    poolPorts: opts.poolPorts,
    fallbackLbPolicy: "ROUND_ROBIN",
    companionPort: 1,
    configuration: {},
    edit: (d) => {
      hcmOf(d).http_filters = hcmOf(d).http_filters.filter((f: Y) => f.name !== "envoy.filters.http.header_mutation");
      opts.edit?.(d);
    },
  });
}

/** The properties the test module logged for the last request (on_response_headers or on_log). */
async function props(logs: string[], label: "resp_props" | "log_props"): Promise<Record<string, string>> {
  for (let i = 0; i < 100 && !logs.some((l) => l.startsWith(label)); i++) await new Promise((r) => setTimeout(r, 10));
  const line = logs.filter((l) => l.startsWith(label)).pop();
  assert.ok(line, `no ${label} log: ${logs.join("\n")}`);
  logs.splice(0, logs.length, ...logs.filter((l) => !l.startsWith(label)));
  return Object.fromEntries(
    line
      .slice(label.length + 1)
      .split(" ")
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

// ---------------------------------------------------------------------------------------------------------
// override_host

test("override_host list: first header value, split on ',', empty pieces skipped, trimmed, sources in order", () => {
  assert.deepEqual(
    overrideHostList(
      [
        [DEST, " 10.0.0.1:80 ,, 10.0.0.2:80,"],
        [DEST, "10.0.0.9:80"],
        [FALLBACK, "\t10.0.0.3:80"],
      ],
      [DEST, FALLBACK],
    ),
    ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
  );
  assert.deepEqual(overrideHostList([[FALLBACK, "10.0.0.3:80"]], [DEST, FALLBACK]), ["10.0.0.3:80"]);
  assert.deepEqual(overrideHostList([], [DEST, FALLBACK]), []);
});

test("override_host: the header's host when the cluster has it; unknown addresses skipped and never connected to; no header -> the fallback policy", async () => {
  const a = await upstream("a"),
    b = await upstream("b");
  const decoy = await server((_q, r) => r.end("decoy"));
  const { port } = await gateway(
    tempBootstrap({
      poolPorts: [a.port, b.port],
      fallbackLbPolicy: "ROUND_ROBIN",
      companionPort: await deadPort(),
      withFilter: false,
    }),
  );
  const up = async (headers: Record<string, string | string[]>) => {
    const r = await get(port, "/", headers);
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body).upstream as string;
  };
  for (let i = 0; i < 3; i++) assert.equal(await up({ [DEST]: b.address }), "b");
  assert.equal(await up({ [DEST]: `${decoy.address}, ${a.address}` }), "a", "the unknown entry is skipped");
  assert.equal(await up({ [DEST]: decoy.address, [FALLBACK]: b.address }), "b", "then the second source");
  assert.equal(await up({ [DEST]: `  ${a.address}  ` }), "a", "trimmed");
  // Only unknown addresses, or a second header line: the fallback policy (round robin here) over the pods.
  const seen = [
    await up({ [DEST]: decoy.address }),
    await up({ [DEST]: [decoy.address, b.address] }),
    await up({}),
    await up({}),
  ];
  assert.deepEqual([...new Set(seen)].sort(), ["a", "b"]);
  assert.equal(decoy.connections, 0, "an address outside the cluster is never connected to");
});

// ---------------------------------------------------------------------------------------------------------
// retries

test("a dead first host is retried on the fallback-header host: 200, upstream.address the second host, 2 attempts", async () => {
  const a = await upstream("a");
  const dead = await deadPort();
  const { port, logs } = await gateway(propsBootstrap({ poolPorts: [dead, a.port] }), MODULE);
  const r = await get(port, "/", { "x-op": "props", [DEST]: `127.0.0.1:${dead}`, [FALLBACK]: a.address });
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).upstream, "a");
  const p = await props(logs, "resp_props");
  assert.deepEqual(p, { addr: a.address, details: "via_upstream", flags: "0", attempts: "2" });
  assert.deepEqual(await props(logs, "log_props"), p);
});

test("the request body is replayed to the retry; over the buffer limit the request is not retried", async () => {
  const a = await upstream("a");
  const dead = await deadPort();
  const body = JSON.stringify({ prompt: "x".repeat(200) });
  const ok = await gateway(
    tempBootstrap({ poolPorts: [dead, a.port], companionPort: await deadPort(), withFilter: false }),
  );
  let r = await get(ok.port, "/v1/completions", { [DEST]: `127.0.0.1:${dead}`, [FALLBACK]: a.address }, body);
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).body, body);
  const small = await gateway(
    tempBootstrap({
      poolPorts: [dead, a.port],
      companionPort: await deadPort(),
      withFilter: false,
      edit: (d) => {
        d.static_resources.listeners[0].per_connection_buffer_limit_bytes = 100;
      },
    }),
  );
  r = await get(small.port, "/v1/completions", { [DEST]: `127.0.0.1:${dead}`, [FALLBACK]: a.address }, body);
  // retry_or_shadow_abandoned: the connect failure's 503, or a 507 if the body came while waiting to retry.
  assert.ok(r.status === 503 || r.status === 507, `${r.status} ${r.body}`);
  assert.equal(a.hits, 1);
});

test("without a fallback header the retry avoids the dead host (previous_hosts) through the fallback policy", async () => {
  const a = await upstream("a"),
    b = await upstream("b");
  const dead = await deadPort();
  const { port } = await gateway(
    tempBootstrap({
      poolPorts: [dead, a.port, b.port],
      companionPort: await deadPort(),
      withFilter: false,
    }),
  );
  // Without previous_hosts, each retry would land on the dead pod again one time in three.
  for (let i = 0; i < 30; i++) {
    const r = await get(port, "/", { [DEST]: `127.0.0.1:${dead}` });
    assert.equal(r.status, 200, r.body);
  }
});

test("retries are only for what retry_on names: a 500 is not retried with connect-failure, is with 5xx", async () => {
  const bad = await server((_q, r) => {
    r.statusCode = 500;
    r.end("boom");
  });
  const a = await upstream("a");
  const plain = await gateway(
    tempBootstrap({ poolPorts: [bad.port, a.port], companionPort: await deadPort(), withFilter: false }),
  );
  let r = await get(plain.port, "/", { [DEST]: bad.address, [FALLBACK]: a.address });
  assert.equal(r.status, 500);
  assert.equal(bad.requests, 1);
  const with5xx = await gateway(
    tempBootstrap({
      poolPorts: [bad.port, a.port],
      companionPort: await deadPort(),
      withFilter: false,
      edit: (d) => {
        routeOf(d).retry_policy.retry_on = "connect-failure,5xx";
      },
    }),
  );
  r = await get(with5xx.port, "/", { [DEST]: bad.address, [FALLBACK]: a.address });
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).upstream, "a");
  assert.equal(bad.requests, 2);
});

test("a request the pod received is not retried by reset-before-request (503, connection termination), is by reset", async () => {
  const drop = await server((req) => req.socket.destroy()); // reads the request, closes without an answer
  const a = await upstream("a");
  const { port, logs } = await gateway(propsBootstrap({ poolPorts: [drop.port, a.port] }), MODULE);
  let r = await get(port, "/", { "x-op": "props", [DEST]: drop.address, [FALLBACK]: a.address });
  assert.equal(r.status, 503);
  assert.equal(
    r.body,
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
  );
  assert.equal(drop.requests, 1);
  assert.deepEqual(await props(logs, "resp_props"), {
    addr: drop.address,
    details: "upstream_reset_before_response_started{connection_termination}",
    flags: String(ResponseFlag.UpstreamConnectionTermination),
    attempts: "1",
  });
  const withReset = await gateway(
    propsBootstrap({
      poolPorts: [drop.port, a.port],
      edit: (d) => {
        routeOf(d).retry_policy.retry_on = "reset";
      },
    }),
    MODULE,
  );
  r = await get(withReset.port, "/", { [DEST]: drop.address, [FALLBACK]: a.address });
  assert.equal(r.status, 200);
  assert.equal(drop.requests, 2);
});

test("a response already started is never retried, whatever retry_on says", async () => {
  const a = await upstream("a"),
    b = await upstream("b");
  const { port } = await gateway(
    tempBootstrap({
      poolPorts: [a.port, b.port],
      companionPort: await deadPort(),
      withFilter: false,
      edit: (d) => {
        routeOf(d).retry_policy.retry_on = "reset,5xx,connect-failure,reset-before-request";
      },
    }),
  );
  const outcome = await new Promise<string>((resolve) => {
    http
      .get(
        { host: "127.0.0.1", port, path: "/reset", headers: { [DEST]: a.address, [FALLBACK]: b.address } },
        (res) => {
          res.on("data", () => {});
          res.on("end", () => resolve(`end ${res.statusCode}`));
          res.on("error", () => resolve("error"));
          res.on("aborted", () => resolve("aborted"));
        },
      )
      .on("error", () => resolve("error"));
  });
  assert.notEqual(outcome, "end 200");
  assert.equal(a.hits, 1);
  assert.equal(b.hits, 0, "the started response was not retried elsewhere");
});

test("retries exhausted: 503 naming the last reset, UpstreamConnectionFailure | UpstreamRetryLimitExceeded", async () => {
  const d1 = await deadPort(),
    d2 = await deadPort();
  const { port, logs } = await gateway(propsBootstrap({ poolPorts: [d1, d2] }), MODULE);
  const r = await get(port, "/", { "x-op": "props" });
  assert.equal(r.status, 503);
  assert.equal(
    r.body,
    "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused",
  );
  const p = await props(logs, "resp_props");
  assert.equal(
    p.details,
    "upstream_reset_before_response_started{remote_connection_failure,delayed_connect_error:_Connection_refused}",
  );
  assert.equal(Number(p.flags), ResponseFlag.UpstreamConnectionFailure | ResponseFlag.UpstreamRetryLimitExceeded);
  assert.equal(p.attempts, "3", "num_retries 2");
  assert.ok([`127.0.0.1:${d1}`, `127.0.0.1:${d2}`].includes(p.addr));
});

test("retry state: Envoy's decisions, the back-off and previous_hosts", () => {
  const policy = (retryOn: string[], extra = {}) => ({
    retryOn: new Set(retryOn),
    numRetries: 2,
    perTryTimeoutMs: 0,
    previousHosts: true,
    hostSelectionRetryMaxAttempts: 1,
    retriableStatusCodes: [418],
    baseIntervalMs: 25,
    maxIntervalMs: 250,
    ...extra,
  });
  const s = new RetryState(policy(["connect-failure", "refused-stream", "reset-before-request"]), () => 0.999);
  assert.equal(s.wouldRetryFromReset("remote_connection_failure", false), true);
  assert.equal(s.wouldRetryFromReset("connection_termination", false), true, "nothing sent yet");
  assert.equal(s.wouldRetryFromReset("connection_termination", true), false, "the request was sent");
  assert.equal(s.wouldRetryFromReset("local_reset", true), false, "a per-try timeout");
  assert.equal(s.wouldRetryFromReset("overflow", false), false);
  assert.equal(s.wouldRetryFromHeaders(503, []), false);
  const g = new RetryState(policy(["gateway-error", "retriable-status-codes"]));
  assert.equal(g.wouldRetryFromHeaders(503, []), true);
  assert.equal(g.wouldRetryFromHeaders(500, []), false);
  assert.equal(g.wouldRetryFromHeaders(418, []), true);
  assert.equal(g.wouldRetryFromReset("connection_termination", true), true, "gateway-error retries resets");
  assert.equal(g.shouldRetry(true), "yes");
  assert.equal(g.shouldRetry(false), "no");
  assert.equal(g.shouldRetry(true), "yes");
  assert.equal(g.shouldRetry(true), "limit_exceeded");
  // Fully jittered: [0, 25), [0, 50), [0, 100), [0, 200), then [0, 250).
  assert.deepEqual(
    [s.backoffMs(), s.backoffMs(), s.backoffMs(), s.backoffMs(), s.backoffMs(), s.backoffMs()],
    [24, 49, 99, 199, 249, 249],
  );
  const h = { key: "10.0.0.1:1" } as UpstreamHost;
  assert.equal(s.shouldSelectAnotherHost(h), false);
  s.onHostAttempted(h);
  assert.equal(s.shouldSelectAnotherHost(h), true);
  assert.equal(RetryState.create(policy([])), null, "an empty retry_on: no retry state");
});

// ---------------------------------------------------------------------------------------------------------
// stream-info properties

test("properties: route_not_found, no_healthy_upstream, response_timeout, the filter's own local reply", async () => {
  const slow = await hung();
  const notFound = await gateway(
    propsBootstrap({
      poolPorts: [],
      edit: (d) => {
        hcmOf(d).route_config.virtual_hosts[0].routes[0].match.prefix = "/only";
      },
    }),
    MODULE,
  );
  let r = await get(notFound.port, "/", { "x-op": "props" });
  assert.equal(r.status, 404);
  assert.deepEqual(await props(notFound.logs, "resp_props"), {
    addr: "none",
    details: "route_not_found",
    flags: String(ResponseFlag.NoRouteFound),
    attempts: "0",
  });
  r = await get(notFound.port, "/only", { "x-op": "props" });
  assert.equal(r.status, 503);
  assert.equal(r.body, "no healthy upstream");
  assert.deepEqual(await props(notFound.logs, "resp_props"), {
    addr: "none",
    details: "no_healthy_upstream",
    flags: String(ResponseFlag.NoHealthyUpstream),
    attempts: "0",
  });
  const timeout = await gateway(
    propsBootstrap({
      poolPorts: [slow.port],
      edit: (d) => {
        routeOf(d).timeout = "0.2s";
      },
    }),
    MODULE,
  );
  r = await get(timeout.port, "/", { "x-op": "props" });
  assert.equal(r.status, 504);
  assert.equal(r.body, "upstream request timeout");
  assert.deepEqual(await props(timeout.logs, "resp_props"), {
    addr: slow.address,
    details: "response_timeout",
    flags: String(ResponseFlag.UpstreamRequestTimeout),
    attempts: "1",
  });
  r = await get(timeout.port, "/", { "x-op": "local_reply", "x-a": "429", "x-b": "slow down" });
  assert.equal(r.status, 429);
});

test("per_try_timeout: the attempt is abandoned (504 upstream_per_try_timeout) and, with 5xx in retry_on, retried", async () => {
  const slow = await hung();
  const a = await upstream("a");
  const once = await gateway(
    propsBootstrap({
      poolPorts: [slow.port, a.port],
      edit: (d) => {
        routeOf(d).retry_policy.per_try_timeout = "0.15s";
      },
    }),
    MODULE,
  );
  let r = await get(once.port, "/", { "x-op": "props", [DEST]: slow.address, [FALLBACK]: a.address });
  assert.equal(r.status, 504);
  assert.deepEqual(await props(once.logs, "resp_props"), {
    addr: slow.address,
    details: "upstream_per_try_timeout",
    flags: String(ResponseFlag.UpstreamRequestTimeout),
    attempts: "1",
  });
  const retried = await gateway(
    propsBootstrap({
      poolPorts: [slow.port, a.port],
      edit: (d) => {
        routeOf(d).retry_policy.per_try_timeout = "0.15s";
        routeOf(d).retry_policy.retry_on = "gateway-error";
      },
    }),
    MODULE,
  );
  r = await get(retried.port, "/", { "x-op": "props", [DEST]: slow.address, [FALLBACK]: a.address });
  assert.equal(r.status, 200);
  assert.equal((await props(retried.logs, "resp_props")).attempts, "2");
});

// ---------------------------------------------------------------------------------------------------------
// outlier detection

function fakeHosts(n: number): UpstreamHost[] {
  return Array.from({ length: n }, (_, i) => ({
    address: `10.0.0.${i + 1}`,
    port: 80,
    key: `10.0.0.${i + 1}:80`,
    active: 0,
    ejected: false,
  }));
}

test("outlier detection: consecutive gateway failures eject when enforced (default 0 is not), for base x backoff, back on the interval", () => {
  const clock = new VirtualScheduler();
  const hosts = fakeHosts(2);
  const cfg = outlierConfig({
    consecutiveGatewayFailure: 2,
    intervalMs: 1000,
    baseEjectionTimeMs: 5000,
    maxEjectionPercent: 50,
  });
  const unenforced = new OutlierDetector(cfg, hosts, clock, () => 0.5);
  unenforced.putHttpResponseCode(hosts[0], 503);
  unenforced.putHttpResponseCode(hosts[0], 504);
  assert.equal(hosts[0].ejected, false, "enforcing_consecutive_gateway_failure defaults to 0");
  unenforced.close();
  const d = new OutlierDetector({ ...cfg, enforcingConsecutiveGatewayFailure: 100 }, hosts, clock, () => 0.5);
  d.putHttpResponseCode(hosts[0], 503);
  d.putHttpResponseCode(hosts[0], 200); // a success resets the count
  d.putHttpResponseCode(hosts[0], 503);
  assert.equal(hosts[0].ejected, false);
  d.putResult(hosts[0], "timeout", 504);
  assert.equal(hosts[0].ejected, true, "a timeout counts as a 504");
  clock.advance(4999);
  assert.equal(hosts[0].ejected, true);
  clock.advance(1); // the interval tick at 5 s: 5 s out
  assert.equal(hosts[0].ejected, false);
  // Ejected again at once: the backoff is 2 now (it drops by one per interval spent healthy).
  d.putResult(hosts[0], "connect_failed");
  assert.equal(hosts[0].ejected, false, "the counters restarted when it came back");
  d.putResult(hosts[0], "connect_failed");
  assert.equal(hosts[0].ejected, true, "a connect failure counts as a 503");
  clock.advance(9999);
  assert.equal(hosts[0].ejected, true, "10 s this time");
  clock.advance(1);
  assert.equal(hosts[0].ejected, false);
  // Healthy intervals bring the backoff down: after two of them, one more ejection is 5 s again.
  clock.advance(2000);
  d.putResult(hosts[0], "connect_failed");
  d.putResult(hosts[0], "connect_failed");
  clock.advance(5000);
  assert.equal(hosts[0].ejected, false);
  d.close();
});

test("outlier detection: max_ejection_percent caps ejections (always_eject_one_host lets one out); consecutive_5xx; the panic threshold", () => {
  const clock = new VirtualScheduler();
  const hosts = fakeHosts(3);
  const d = new OutlierDetector(outlierConfig({ consecutive5xx: 1, maxEjectionPercent: 50 }), hosts, clock, () => 0.5);
  for (const h of hosts) d.putHttpResponseCode(h, 500);
  assert.deepEqual(
    hosts.map((h) => h.ejected),
    [true, false, false],
    "1/3 may go, 2/3 is over 50%",
  );
  d.close();
  const two = fakeHosts(2);
  const strict = new OutlierDetector(outlierConfig({ consecutive5xx: 1 }), two, clock, () => 0.5);
  strict.putHttpResponseCode(two[0], 500);
  assert.equal(two[0].ejected, false, "default 10%: one host of two is 50%");
  strict.close();
  const one = new OutlierDetector(
    outlierConfig({ consecutive5xx: 1, alwaysEjectOneHost: true }),
    two,
    clock,
    () => 0.5,
  );
  one.putHttpResponseCode(two[0], 500);
  one.putHttpResponseCode(two[1], 500);
  assert.deepEqual(
    two.map((h) => h.ejected),
    [true, false],
  );
  one.close();
  // The load balancer skips ejected hosts, unless fewer than half are healthy (panic: all hosts).
  const c = new UpstreamCluster(
    {
      name: "c",
      type: "STATIC",
      lb: { kind: "round_robin" },
      connectTimeoutMs: 1000,
      endpoints: fakeHosts(3).map((h) => ({ address: h.address, port: h.port })),
      originalDstHeader: null,
      outlierDetection: null,
    },
    clock,
  );
  c.hosts[0].ejected = true;
  const picks = Array.from({ length: 4 }, () => c.chooseHost({ headers: [] })!.address);
  assert.ok(!picks.includes("10.0.0.1"));
  c.hosts[1].ejected = true;
  const panic = Array.from({ length: 3 }, () => c.chooseHost({ headers: [] })!.address);
  assert.deepEqual([...new Set(panic)].sort(), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  c.close();
});

test("outlier detection on the router: a pod answering 503 is ejected, skipped, and back after the ejection time", async () => {
  const bad = await server((_q, r) => {
    r.statusCode = 503;
    r.end("no");
  });
  const a = await upstream("a");
  const { port, g } = await gateway(
    tempBootstrap({
      poolPorts: [bad.port, a.port],
      fallbackLbPolicy: "ROUND_ROBIN",
      companionPort: await deadPort(),
      withFilter: false,
      edit: (d) => {
        poolOf(d).outlier_detection = {
          consecutive_5xx: 2,
          interval: "0.05s",
          base_ejection_time: "0.4s",
          max_ejection_percent: 50,
        };
      },
    }),
  );
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) statuses.push((await get(port, "/")).status);
  assert.deepEqual(statuses, [503, 200, 503, 200, 200, 200, 200, 200, 200, 200]);
  assert.equal(g.upstreams.get("inference-pool")!.hosts[0].ejected, true);
  await new Promise((r) => setTimeout(r, 600));
  const later: number[] = [];
  for (let i = 0; i < 2; i++) later.push((await get(port, "/")).status);
  assert.ok(later.includes(503), `back in rotation after the ejection: ${later}`);
});

test("an http_call that times out against a hung replica ejects it: the next calls go to the other one", async () => {
  const stuck = await hung();
  const good = await server((_q, r) => r.end("ok"));
  const logs: string[] = [];
  const host = createHost({
    wasm: MODULE,
    rootId: "r",
    vmId: "v",
    onLog: (_l, m) => logs.push(m),
    clusters: {
      companion: {
        endpoints: [
          { host: "127.0.0.1", port: stuck.port },
          { host: "127.0.0.1", port: good.port },
        ],
        outlierDetection: outlierConfig({
          consecutiveGatewayFailure: 1,
          enforcingConsecutiveGatewayFailure: 100,
          maxEjectionPercent: 50,
          intervalMs: 1000,
          baseEjectionTimeMs: 5000,
        }),
      },
    },
  });
  cleanups.push(() => host.close());
  const call = async (n: number) => {
    const s = host.openStream();
    s.sendRequestHeaders(
      [
        [":method", "GET"],
        [":path", "/"],
        [":authority", "gw"],
        ["x-op", "http_call"],
        ["x-a", "companion"],
        ["x-b", "150"],
        ["x-c", "/poll"],
      ],
      true,
    );
    for (let i = 0; i < 100 && logs.filter((l) => l.startsWith("http_response")).length < n; i++)
      await new Promise((r) => setTimeout(r, 10));
    return logs.filter((l) => l.startsWith("http_response"))[n - 1];
  };
  assert.match(await call(1), /body=upstream request timeout status=504/);
  for (let n = 2; n <= 5; n++) assert.match(await call(n), /body=ok status=200/, `call ${n}`);
  assert.equal(stuck.connections, 1, "the hung replica got only the first call");
});

test("the same without outlier detection: round robin keeps sending calls to the hung replica", async () => {
  const stuck = await hung();
  const good = await server((_q, r) => r.end("ok"));
  const logs: string[] = [];
  const host = createHost({
    wasm: MODULE,
    rootId: "r",
    vmId: "v",
    onLog: (_l, m) => logs.push(m),
    clusters: {
      companion: {
        endpoints: [
          { host: "127.0.0.1", port: stuck.port },
          { host: "127.0.0.1", port: good.port },
        ],
      },
    },
  });
  cleanups.push(() => host.close());
  for (let n = 1; n <= 3; n++) {
    const s = host.openStream();
    s.sendRequestHeaders(
      [
        [":method", "GET"],
        [":path", "/"],
        [":authority", "gw"],
        ["x-op", "http_call"],
        ["x-a", "companion"],
        ["x-b", "100"],
        ["x-c", "/poll"],
      ],
      true,
    );
    for (let i = 0; i < 100 && logs.filter((l) => l.startsWith("http_response")).length < n; i++)
      await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(stuck.connections, 2);
});

// ---------------------------------------------------------------------------------------------------------
// HTTP/1 codec: absolute-form URIs, CONNECT, Upgrade, trailers

function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const s = net.connect(port, "127.0.0.1", () => s.write(text));
    s.on("data", (c) => (got += c));
    s.on("close", () => resolve(got));
    s.on("error", () => resolve(got));
    setTimeout(() => s.destroy(), 1500);
  });
}

test("HTTP/1 codec: an absolute-form URI gives :path and :authority; CONNECT and Upgrade without upgrade_configs", async () => {
  const a = await upstream("a");
  const { port } = await gateway(
    tempBootstrap({ poolPorts: [a.port], companionPort: await deadPort(), withFilter: false }),
  );
  const abs = await raw(
    port,
    "GET http://example.test:81/v1/models?x=1 HTTP/1.1\r\nhost: other\r\nconnection: close\r\n\r\n",
  );
  assert.match(abs, /^HTTP\/1\.1 200/);
  assert.equal(JSON.parse(abs.slice(abs.indexOf("\r\n\r\n") + 4)).path, "/v1/models?x=1");
  const bad = await raw(port, "GET ftp://example.test/ HTTP/1.1\r\nconnection: close\r\n\r\n");
  assert.match(bad, /^HTTP\/1\.1 400/);
  // CONNECT has no :path: no route matches "/" -> 404 from the router; the connection closes.
  const connect = await raw(port, "CONNECT example.test:443 HTTP/1.1\r\nhost: example.test:443\r\n\r\n");
  assert.match(connect, /^HTTP\/1\.1 404/);
  // An Upgrade on a matching route: the connection manager refuses it (no upgrade_configs).
  const upgrade = await raw(port, "GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n");
  assert.match(upgrade, /^HTTP\/1\.1 403/);
  assert.equal(a.hits, 1);
});

test("HTTP/1 request trailers reach the filter only with http_protocol_options.enable_trailers", async () => {
  const a = await upstream("a");
  const chunked =
    "POST / HTTP/1.1\r\nhost: x\r\nx-op: props\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\nconnection: close\r\n\r\n" +
    "5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n";
  for (const enable of [false, true]) {
    const logs: string[] = [];
    const g = await startGateway({
      bootstrap: propsBootstrap({
        poolPorts: [a.port],
        edit: (d) => {
          if (enable) hcmOf(d).http_protocol_options = { enable_trailers: true };
        },
      }),
      concurrency: 1,
      logLevel: "info",
      onLog: (_l, m) => logs.push(m),
      wasmFile: MODULE,
    });
    cleanups.push(() => g.close());
    const stream = g.listeners[0].wasmHost!;
    const seen: string[] = [];
    const open = stream.openStream.bind(stream);
    stream.openStream = (o) => {
      const s = open(o);
      const send = s.sendRequestTrailers.bind(s);
      s.sendRequestTrailers = (t) => {
        seen.push(t.map(([k, v]) => `${k}=${v}`).join(","));
        return send(t);
      };
      return s;
    };
    const r = await raw(g.listeners[0].port, chunked);
    assert.match(r, /^HTTP\/1\.1 200/);
    assert.equal(
      JSON.parse(r.slice(r.indexOf("\r\n\r\n") + 4).replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, "")).body,
      "hello",
    );
    assert.deepEqual(seen, enable ? ["x-t=1"] : []);
  }
});

// ---------------------------------------------------------------------------------------------------------
// bootstrap

test("bootstrap: these messages accept Envoy's fields only, naming the field path", () => {
  const doc = parse(readFileSync("envoy/envoy.yaml", "utf8"));
  const cases: [(d: Y) => void, RegExp][] = [
    [
      (d) =>
        (poolOf(d).load_balancing_policy.policies[0].typed_extension_config.typed_config.overide_host_sources = []),
      /clusters\[1\]\.load_balancing_policy\.policies\[0\]\.typed_extension_config\.typed_config\.overide_host_sources: unknown field \(envoy\.extensions\.load_balancing_policies\.override_host\.v3\.OverrideHost has no field overide_host_sources\)/,
    ],
    [
      (d) =>
        (poolOf(d).load_balancing_policy.policies[0].typed_extension_config.typed_config.override_host_sources = [
          { metadata: { key: "envoy.lb", path: [{ key: "x" }] } },
        ]),
      /override_host_sources\[0\]\.metadata: not supported by the emulator/,
    ],
    [
      (d) =>
        (poolOf(d).load_balancing_policy.policies[0].typed_extension_config.typed_config.override_host_sources = [{}]),
      /override_host_sources\[0\]: Empty override source/,
    ],
    [
      (d) => delete poolOf(d).load_balancing_policy.policies[0].typed_extension_config.typed_config.fallback_policy,
      /typed_config\.fallback_policy: value is required/,
    ],
    [
      (d) =>
        (poolOf(
          d,
        ).load_balancing_policy.policies[0].typed_extension_config.typed_config.fallback_policy.policies[0].typed_extension_config.typed_config.choice_count =
          1),
      /fallback_policy\.policies\[0\]\.typed_extension_config\.typed_config\.choice_count: must be an integer in \[2,/,
    ],
    [
      (d) =>
        (poolOf(d).load_balancing_policy.policies[0].typed_extension_config.typed_config = {
          "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash",
        }),
      /typed_config\.@type: type\.googleapis\.com\/envoy\.extensions\.load_balancing_policies\.ring_hash\.v3\.RingHash is not supported by the emulator/,
    ],
    [
      (d) =>
        (poolOf(d).load_balancing_policy.policies[0].typed_extension_config = {
          name: "my.lb",
          typed_config: { "@type": "type.googleapis.com/my.Lb" },
        }),
      /load_balancing_policy\.policies: didn't find a registered load balancer factory implementation with names from my\.lb/,
    ],
    [
      (d) => (routeOf(d).retry_policy.num_retry = 3),
      /route\.retry_policy\.num_retry: unknown field \(envoy\.config\.route\.v3\.RetryPolicy has no field num_retry\)/,
    ],
    [
      (d) => (routeOf(d).retry_policy.retry_priority = { name: "x" }),
      /route\.retry_policy\.retry_priority: not supported by the emulator/,
    ],
    [
      (d) => (routeOf(d).retry_policy.retry_host_predicate[0].name = "envoy.retry_host_predicates.nope"),
      /retry_host_predicate\[0\]\.name: Didn't find a registered implementation for name: 'envoy\.retry_host_predicates\.nope'/,
    ],
    [
      (d) => (routeOf(d).retry_policy.retry_back_off = { max_interval: "1s" }),
      /retry_back_off\.base_interval: is required/,
    ],
    [
      (d) => (routeOf(d).retry_policy.retry_back_off = { base_interval: "1s", max_interval: "0.5s" }),
      /retry_back_off\.max_interval: retry_policy\.max_interval must greater than or equal to the base_interval/,
    ],
    [
      (d) => (d.static_resources.clusters[0].outlier_detection.consecutive_gateway_failures = 1),
      /clusters\[0\]\.outlier_detection\.consecutive_gateway_failures: unknown field \(envoy\.config\.cluster\.v3\.OutlierDetection has no field consecutive_gateway_failures\)/,
    ],
    [
      (d) => (d.static_resources.clusters[0].outlier_detection.max_ejection_percent = 101),
      /outlier_detection\.max_ejection_percent: must be an integer in \[0, 100\]/,
    ],
    [
      (d) => (d.static_resources.clusters[0].outlier_detection.max_ejection_time = "1s"),
      /outlier_detection\.max_ejection_time: outlier detector's max_ejection_time cannot be smaller than base_ejection_time/,
    ],
    [
      (d) => (d.static_resources.clusters[0].outlier_detection.enforcing_success_rate = 100),
      /outlier_detection\.enforcing_success_rate: not supported by the emulator/,
    ],
    [
      (d) => (hcmOf(d).http_protocol_options = { accept_http_10: true }),
      /http_protocol_options\.accept_http_10: not supported by the emulator/,
    ],
  ];
  for (const [edit, re] of cases) {
    const d = structuredClone(doc);
    edit(d);
    assert.throws(() => parseBootstrap(stringify(d)), re);
  }
  // Envoy ignores retry_on tokens it does not know; enforcing_success_rate 0 is accepted (nothing to model).
  const d = structuredClone(doc);
  routeOf(d).retry_policy.retry_on = "connect-failure, bogus ,,5xx";
  d.static_resources.clusters[0].outlier_detection.enforcing_success_rate = 0;
  const b = parseBootstrap(stringify(d));
  assert.deepEqual([...b.listeners[0].virtualHosts[0].routes[0].retryPolicy!.retryOn], ["connect-failure", "5xx"]);
  // The plain typed policies on their own.
  const rr = structuredClone(doc);
  poolOf(rr).load_balancing_policy = lbPolicy("RANDOM");
  assert.deepEqual(parseBootstrap(stringify(rr)).clusters.get("inference-pool")!.lb, { kind: "random" });
  // Defaults: Envoy's.
  const od: OutlierConfig = outlierConfig();
  assert.equal(od.enforcingConsecutiveGatewayFailure, 0);
  assert.equal(od.maxEjectionPercent, 10);
  assert.equal(od.baseEjectionTimeMs, 30_000);
  assert.equal(od.maxEjectionTimeMs, 300_000);
});
