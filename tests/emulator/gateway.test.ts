// The gateway and CLI serve envoy/envoy.yaml like Envoy: the filter's pick routes through the inference-pool
// cluster's override_host load balancer, requests without a destination take its fallback policy, ORIGINAL_DST
// still works as Envoy's (first header value, literal IP:port), bodies and SSE stream through, unsupported
// config fails at startup.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseBootstrap, loadBootstrap } from "../../envoy/emulator/bootstrap";
import { startGateway, Gateway } from "../../envoy/emulator/gateway";
import { parseIpPort } from "../../envoy/emulator/router";
import { UpstreamCluster } from "../../envoy/emulator/upstream";
import { startUpstream, tempBootstrap, deliverSnapshot, deadPort, get, Upstream } from "./fixtures";
import { parse, stringify } from "yaml";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function gateway(file: string, concurrency = 2): Promise<{ g: Gateway; port: number }> {
  const g = await startGateway({ bootstrap: file, concurrency, logLevel: "critical", onLog: () => {} });
  cleanups.push(() => g.close());
  return { g, port: g.listeners[0].port };
}
async function upstream(name: string): Promise<Upstream> {
  const u = await startUpstream(name);
  cleanups.push(() => u.close());
  return u;
}

test("envoy/envoy.yaml is read with the contract's names", () => {
  const b = loadBootstrap("envoy/envoy.yaml");
  const l = b.listeners[0];
  assert.deepEqual(l.address, { address: "0.0.0.0", port: 10000 });
  assert.equal(l.wasm!.rootId, "endpoint-picker");
  assert.equal(l.wasm!.vmId, "endpoint-picker");
  assert.equal(l.wasm!.filename, "build/filter.wasm");
  const pool = b.clusters.get("inference-pool")!;
  assert.equal(pool.type, "STRICT_DNS");
  assert.deepEqual(pool.lb, {
    kind: "override_host",
    headers: ["x-gateway-destination-endpoint", "x-gateway-destination-endpoint-fallback"],
    fallback: { kind: "least_request", choiceCount: 2 },
  });
  assert.deepEqual(pool.endpoints, [{ address: "127.0.0.1", port: 8000 }]);
  assert.equal(b.clusters.get("inference-pool-fallback"), undefined);
  const routes = l.virtualHosts[0].routes;
  assert.equal(routes.length, 1);
  assert.equal(routes[0].cluster, "inference-pool");
  assert.equal(routes[0].timeoutMs, 0);
  const rp = routes[0].retryPolicy!;
  assert.deepEqual([...rp.retryOn].sort(), ["connect-failure", "refused-stream", "reset-before-request"]);
  assert.equal(rp.numRetries, 2);
  assert.equal(rp.previousHosts, true);
  assert.equal(rp.hostSelectionRetryMaxAttempts, 3);
  const companion = b.clusters.get("endpoint-picker-companion")!;
  assert.equal(companion.lbPolicy, "ROUND_ROBIN");
  assert.equal(companion.outlierDetection!.consecutiveGatewayFailure, 1);
  assert.equal(companion.outlierDetection!.enforcingConsecutiveGatewayFailure, 100);
  assert.equal(companion.outlierDetection!.baseEjectionTimeMs, 5000);
  assert.equal(companion.outlierDetection!.maxEjectionPercent, 50);
  assert.deepEqual(l.removeRequestHeaders, [
    "x-gateway-destination-endpoint",
    "x-gateway-destination-endpoint-fallback",
  ]);
});

test("unsupported configuration is a startup error naming the field path", () => {
  const doc = parse(readFileSync("envoy/envoy.yaml", "utf8"));
  const edits: [(d: any) => void, RegExp][] = [
    // eslint-disable-line @typescript-eslint/no-explicit-any
    [
      (d) => {
        d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].match.safe_regex =
          { regex: "x" };
      },
      /virtual_hosts\[0\]\.routes\[0\]\.match\.safe_regex: not supported/,
    ],
    [
      (d) => {
        d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1].typed_config.config.vm_config.runtime =
          "envoy.wasm.runtime.wamr";
      },
      /http_filters\[1\]\.typed_config\.config\.vm_config\.runtime: only envoy\.wasm\.runtime\.v8/,
    ],
    [
      (d) => {
        d.static_resources.clusters[1].type = "ORIGINAL_DST";
      },
      /clusters\[1\]\.load_balancing_policy: not supported by the emulator for ORIGINAL_DST clusters/,
    ],
    [
      (d) => {
        d.static_resources.clusters[0].type = "ORIGINAL_DST";
        delete d.static_resources.clusters[0].outlier_detection;
        delete d.static_resources.clusters[0].load_assignment;
        d.static_resources.clusters[0].original_dst_lb_config = { use_http_header: true };
      },
      /clusters\[0\]\.lb_policy: ORIGINAL_DST clusters need lb_policy CLUSTER_PROVIDED/,
    ],
    [
      (d) => {
        d.static_resources.clusters[0].type = "EDS";
      },
      /clusters\[0\]\.type: EDS is not supported/,
    ],
    [
      (d) => {
        d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.unshift({
          name: "envoy.filters.http.lua",
        });
      },
      /http_filters\[0\]\.name: HTTP filter envoy\.filters\.http\.lua is not supported/,
    ],
    [
      (d) => {
        d.static_resources.secrets = [];
      },
      /static_resources\.secrets: not supported/,
    ],
  ];
  for (const [edit, re] of edits) {
    const d = structuredClone(doc);
    edit(d);
    assert.throws(() => parseBootstrap(stringify(d)), re);
  }
});

test("the filter's pick is routed by override_host; a client's own destination header never is", async () => {
  const picked = await upstream("picked");
  const fallback = await upstream("fallback");
  const decoy = await upstream("decoy");
  const file = tempBootstrap({ poolPorts: [fallback.port, picked.port], companionPort: await deadPort() });
  const { g, port } = await gateway(file);
  // No snapshot yet: the filter fails open without a destination, the header_mutation filter dropped the
  // client's: the pool's fallback policy picks one of its pods.
  let r = await get(port, "/v1/completions", { "x-gateway-destination-endpoint": decoy.address });
  assert.equal(r.status, 200);
  assert.notEqual(JSON.parse(r.body).upstream, "decoy");
  deliverSnapshot(g.listeners[0].wasmHost!.sharedData, [picked.address]);
  for (let i = 0; i < 4; i++) {
    // every worker VM sees the snapshot
    r = await get(port, "/v1/completions", {}, JSON.stringify({ prompt: "hello" }));
    assert.equal(r.status, 200);
    const b = JSON.parse(r.body);
    assert.equal(b.upstream, "picked");
    assert.equal(b.destination, picked.address);
    assert.equal(b.body, JSON.stringify({ prompt: "hello" }));
    assert.equal(r.headers.server, "envoy");
  }
  assert.equal(decoy.hits, 0);
});

/** envoy.yaml with inference-pool as the ORIGINAL_DST cluster it used to be (no retries). */
function originalDst(d: any): void {
  const pool = d.static_resources.clusters.find((c: { name: string }) => c.name === "inference-pool");
  delete pool.load_balancing_policy;
  delete pool.load_assignment;
  delete pool.dns_refresh_rate;
  Object.assign(pool, {
    type: "ORIGINAL_DST",
    lb_policy: "CLUSTER_PROVIDED",
    original_dst_lb_config: { use_http_header: true, http_header_name: "x-gateway-destination-endpoint" },
  });
  delete d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]
    .routes[0].route.retry_policy;
}

test("ORIGINAL_DST: only the first header value counts, it must be a literal IP:port, else 503 no healthy upstream", async () => {
  const a = await upstream("a");
  const file = tempBootstrap({ companionPort: await deadPort(), withFilter: false, edit: originalDst });
  const { port } = await gateway(file);
  let r = await get(port, "/", { "x-gateway-destination-endpoint": a.address });
  assert.equal(JSON.parse(r.body).upstream, "a");
  for (const bad of ["localhost:80", "127.0.0.1", "127.0.0.1:65536", "999.1.1.1:80", "not an address"]) {
    r = await get(port, "/", { "x-gateway-destination-endpoint": bad });
    assert.equal(r.status, 503, bad);
    assert.equal(r.body, "no healthy upstream");
  }
  // Port 0 parses (Envoy's parseInternetAddressAndPort): the host exists and the connection is refused.
  r = await get(port, "/", { "x-gateway-destination-endpoint": "127.0.0.1:0" });
  assert.equal(r.status, 503);
  assert.match(
    r.body,
    /^upstream connect error or disconnect\/reset before headers\. reset reason: remote connection failure, .*Connection refused$/,
  );
  r = await get(port, "/", { "x-gateway-destination-endpoint": ["not-an-ip:1", a.address] });
  assert.equal(r.status, 503, "a second, valid value does not help");
  r = await get(port, "/", { "x-gateway-destination-endpoint": [a.address, "garbage"] });
  assert.equal(r.status, 200);
});

test("ORIGINAL_DST values parse as Envoy's parseInternetAddressAndPort: the value as is, absl::SimpleAtoi ports", () => {
  assert.deepEqual(parseIpPort("10.0.0.1:8000"), { address: "10.0.0.1", port: 8000 });
  assert.deepEqual(parseIpPort("[::1]:8000"), { address: "::1", port: 8000 });
  assert.deepEqual(parseIpPort("10.0.0.1:0"), { address: "10.0.0.1", port: 0 });
  assert.deepEqual(parseIpPort("10.0.0.1:0008000"), { address: "10.0.0.1", port: 8000 });
  assert.deepEqual(parseIpPort("10.0.0.1:+80"), { address: "10.0.0.1", port: 80 });
  assert.deepEqual(
    parseIpPort("10.0.0.1:80 "),
    { address: "10.0.0.1", port: 80 },
    "SimpleAtoi skips spaces around the port",
  );
  for (const bad of [
    " 10.0.0.1:80",
    "10.0.0.1 :80",
    "10.0.0.1:",
    "10.0.0.1:-1",
    "10.0.0.1:65536",
    "[::1]8000",
    "::1:80",
    "[10.0.0.1]:80",
    "01.0.0.1:80",
  ]) {
    assert.equal(parseIpPort(bad), null, bad);
  }
  // The cluster takes the header's first value untrimmed (a filter can set one with spaces; Envoy's parse fails).
  const od = new UpstreamCluster({
    name: "od",
    type: "ORIGINAL_DST",
    lb: null,
    connectTimeoutMs: 1000,
    endpoints: [],
    originalDstHeader: "x-dst",
    outlierDetection: null,
  });
  assert.equal(od.chooseHost({ headers: [["x-dst", " 10.0.0.1:80"]] }), null);
  assert.equal(od.chooseHost({ headers: [["x-dst", "10.0.0.1:80"]] })?.key, "10.0.0.1:80");
  assert.equal(od.chooseHost({ headers: [["x-dst", "[::1]:80"]] })?.key, "[::1]:80");
});

test("SSE streams through: the first event arrives before the upstream finishes", async () => {
  const a = await upstream("a");
  const file = tempBootstrap({ poolPorts: [a.port], companionPort: await deadPort() });
  const { port } = await gateway(file);
  const times: number[] = [];
  const start = Date.now();
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: "/sse" }, (res) => {
        assert.equal(res.headers["content-type"], "text/event-stream");
        let all = "";
        res.on("data", (c: Buffer) => {
          times.push(Date.now() - start);
          all += c.toString();
        });
        res.on("end", () => resolve(all));
      })
      .on("error", reject);
  });
  assert.equal(text, "data: event-0\n\ndata: event-1\n\ndata: event-2\n\n");
  assert.ok(times.length >= 3, `events arrived in ${times.length} chunk(s)`);
});

test("upstream failures answer like Envoy: connect failure 503, unknown route 404", async () => {
  const dead = await deadPort();
  const file = tempBootstrap({
    poolPorts: [dead],
    companionPort: await deadPort(),
    edit: (d) => {
      d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].domains = [
        "only.example",
      ];
    },
  });
  const { port } = await gateway(file);
  let r = await get(port, "/", { host: "other.example" });
  assert.equal(r.status, 404);
  r = await get(port, "/", { host: "only.example" });
  assert.equal(r.status, 503);
  // The route retries connect failures (twice, here on the only pod).
  assert.match(
    r.body,
    /^upstream connect error or disconnect\/reset before headers\. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused$/,
  );
});

test("upstream reset mid-response and client abort mid-stream: connection reset, gateway keeps serving, no context leaks", async () => {
  const a = await upstream("a");
  const file = tempBootstrap({ poolPorts: [a.port], companionPort: await deadPort() });
  const { g, port } = await gateway(file, 1);
  const outcome = await new Promise<string>((resolve) => {
    http
      .get({ host: "127.0.0.1", port, path: "/reset" }, (res) => {
        res.on("data", () => {});
        res.on("end", () => resolve("end"));
        res.on("error", () => resolve("error"));
        res.on("aborted", () => resolve("aborted"));
      })
      .on("error", () => resolve("error"));
  });
  assert.notEqual(outcome, "end", "a truncated upstream response must not look complete");
  await new Promise<void>((resolve) => {
    const r = http.get({ host: "127.0.0.1", port, path: "/sse" }, (res) => {
      res.once("data", () => {
        r.destroy();
        resolve();
      });
    });
    r.on("error", () => {});
  });
  await new Promise((r) => setTimeout(r, 100));
  const ok = await get(port, "/after");
  assert.equal(ok.status, 200);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(
    g.listeners[0].wasmHost!.workers[0].contexts.size,
    2,
    "stream contexts are deleted after resets and aborts",
  );
});

test("lb policies: round robin alternates, least request avoids a busy host", async () => {
  const a = await upstream("a"),
    b = await upstream("b");
  const file = tempBootstrap({
    poolPorts: [a.port, b.port],
    fallbackLbPolicy: "ROUND_ROBIN",
    companionPort: await deadPort(),
    withFilter: false,
  });
  const { port } = await gateway(file);
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) seen.push(JSON.parse((await get(port, "/")).body).upstream);
  assert.deepEqual(seen, ["a", "b", "a", "b"]);
  // LEAST_REQUEST: of two random choices the host with fewer active requests wins.
  const rolls = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.9, 0.9];
  const c = new UpstreamCluster(
    {
      name: "c",
      type: "STATIC",
      lb: { kind: "least_request", choiceCount: 2 },
      connectTimeoutMs: 1000,
      endpoints: [
        { address: "10.0.0.1", port: 1 },
        { address: "10.0.0.2", port: 1 },
      ],
      originalDstHeader: null,
      outlierDetection: null,
    },
    undefined,
    () => rolls.shift()!,
  );
  const pick = () => {
    const h = c.chooseHost({ headers: [] })!;
    h.active++;
    return h;
  };
  for (let i = 0; i < 3; i++) pick(); // both choices land on host 0 three times: 3 active there
  assert.deepEqual(
    c.hosts.map((h) => h.active),
    [3, 0],
  );
  assert.equal(pick().address, "10.0.0.2"); // choices 0 and 1 -> host 1 (0 active)
  assert.equal(pick().address, "10.0.0.2"); // choices 1 and 0 -> host 1 (1 active < 3)
  assert.equal(pick().address, "10.0.0.2"); // choices 1 and 1 -> host 1
  c.close();
});

test("CLI: prints the listening line, serves, exits cleanly on SIGTERM; bad config exits non-zero naming the field", async () => {
  const a = await upstream("a");
  const file = tempBootstrap({ poolPorts: [a.port], companionPort: await deadPort() });
  const child = spawn(
    process.execPath,
    ["build/emulator.mjs", "-c", file, "--concurrency", "2", "--log-level", "error"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (c: Buffer) => {
        out += c;
        const m = /emulator listening on (\S+)\n/.exec(out);
        if (m) resolve(m[1]);
      });
      child.on("exit", (code) => reject(new Error(`exited ${code}`)));
    });
    const port = Number(line.split(":").pop());
    const r = await get(port, "/x");
    assert.equal(JSON.parse(r.body).upstream, "a");
    const code = await new Promise<number | null>((resolve) => {
      child.on("exit", (c) => resolve(c));
      child.kill("SIGTERM");
    });
    assert.equal(code, 0);
  } finally {
    child.kill("SIGKILL");
  }
  const bad = tempBootstrap({
    poolPorts: [a.port],
    companionPort: 1,
    edit: (d) => {
      d.static_resources.clusters[0].lb_policy = "MAGLEV";
    },
  });
  const res = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const c = spawn(process.execPath, ["build/emulator.mjs", "-c", bad], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    c.stderr.on("data", (x: Buffer) => {
      err += x;
    });
    c.on("exit", (code) => resolve({ code, err }));
  });
  assert.notEqual(res.code, 0);
  assert.match(res.err, /static_resources\.clusters\[0\]\.lb_policy: MAGLEV is not supported/);
});

test("header_mutation before the wasm filter strips the client's destination headers, even past a failed fail-open VM", async () => {
  const decoy = await upstream("decoy");
  const fallback = await upstream("fallback");
  const file = tempBootstrap({
    poolPorts: [fallback.port],
    companionPort: await deadPort(),
    edit: (d) => {
      const wasm = d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.find(
        (f: { name: string }) => f.name === "envoy.filters.http.wasm",
      );
      wasm.typed_config.config.failure_policy = "FAIL_OPEN";
    },
  });
  const { g, port } = await gateway(file);
  for (const w of g.listeners[0].wasmHost!.workers) w.failed = true; // every VM trapped: Envoy skips the filter
  for (let i = 0; i < 4; i++) {
    const r = await get(port, "/v1/completions", {
      "x-gateway-destination-endpoint": decoy.address,
      "x-gateway-destination-endpoint-fallback": decoy.address,
    });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).upstream, "fallback");
  }
  assert.equal(decoy.hits, 0, "the client's address was never used");
  // Only request removals, and only before the wasm filter, are in the emulator's subset.
  const doc = parse(readFileSync("envoy/envoy.yaml", "utf8"));
  const filters = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters;
  filters.splice(1, 0, filters.splice(0, 1)[0]); // after the wasm filter
  assert.throws(
    () => parseBootstrap(stringify(doc)),
    /http_filters\[1\]: header_mutation is supported before the wasm filter only/,
  );
});
