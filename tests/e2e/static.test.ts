// End to end over real sockets, static pool: simulated pods of every engine, the bundled companion
// (--endpoints-file) and the emulator serving envoy/envoy.yaml with the real filter in 2 worker VMs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  startSimPods,
  startCompanion,
  startScrapedGateway,
  endpointsFile,
  tempFile,
  send,
  sleep,
  eventually,
  companionEndpoints,
  gatewayPicking,
  type Proc,
} from "./stack";
import { makeProfile } from "../sim/profile";
import type { SimPod } from "../sim/pod-server";

const profile = makeProfile({
  lora: { adapters: ["sql-lora", "tweet-lora"], maxLoras: 2, loadDelayMs: 100 },
  metricsLagMs: 100,
});
const MODEL = profile.model;
const PICKER_CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: lora-affinity-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: queue-scorer, weight: 2}
  - {pluginRef: kv-cache-utilization-scorer, weight: 2}
  - {pluginRef: prefix-cache-scorer, weight: 3}
  - {pluginRef: lora-affinity-scorer, weight: 3}
  - {pluginRef: max-score-picker}
`;

let pods: SimPod[] = [];
let closePods: () => Promise<void> = async () => {};
let companion: Proc;
let gateway: Proc;
let endpointsArgs: string[] = [];

const chat = (model: string, system: string, question: string, maxTokens = 8) =>
  JSON.stringify({
    model,
    messages: [
      { role: "system", content: system },
      { role: "user", content: question },
    ],
    max_tokens: maxTokens,
  });
const podOf = (r: { headers: Record<string, unknown> }) => String(r.headers["x-sim-pod"]);

before(async () => {
  const set = await startSimPods({
    engines: ["vllm-v1", "vllm-v1", "sglang", "triton-trtllm", "trtllm-serve", "vllm-v0"],
    profile,
    timeScale: 10,
  });
  pods = set.pods;
  closePods = set.close;
  endpointsArgs = [
    "--endpoints-file",
    endpointsFile(pods),
    "--config-file",
    tempFile("config.yaml", PICKER_CONFIG),
    "--refresh-interval",
    "50ms",
    "--staleness-threshold",
    "2s",
  ];
  companion = await startCompanion(endpointsArgs);
  gateway = await startScrapedGateway(
    companion.port,
    pods.map((p) => p.port),
    "engine",
  );
  await gatewayPicking(gateway.port, JSON.stringify({ model: MODEL, prompt: "hi", max_tokens: 1 }));
});

after(async () => {
  await gateway?.stop();
  await companion?.stop();
  await closePods();
});

test("every engine's pod is scraped with its own metric names and served through the gateway", async () => {
  const states = await companionEndpoints(companion.port);
  assert.deepEqual(states.map((e) => e.engine).sort(), [
    "sglang",
    "triton-tensorrt-llm",
    "trtllm-serve",
    "vllm",
    "vllm",
    "vllm",
  ]);
  const seen = new Set<string>();
  for (let i = 0; i < 24; i++) {
    const r = await send(
      gateway.port,
      "/v1/completions",
      JSON.stringify({ model: MODEL, prompt: `hello ${i}`, max_tokens: 2 }),
    );
    assert.equal(r.status, 200, r.body);
    assert.equal(
      r.headers["x-gateway-destination-endpoint-served"],
      r.headers["x-sim-address"],
      "the served header names the pod that answered",
    );
    seen.add(podOf(r));
  }
  assert.ok(seen.size >= 4, `load spreads over the pool (${[...seen]})`);
});

test("requests avoid the pod that is busy", async () => {
  const busy = pods[1];
  // Load the pod directly, around the gateway (another tenant): long generations keep it running.
  const load = Array.from({ length: 40 }, (_, i) =>
    send(
      busy.port,
      "/v1/completions",
      JSON.stringify({ model: MODEL, prompt: `bg ${i} `.repeat(400), max_tokens: 3000, ignore_eos: true }),
    ),
  );
  await eventually(
    "the companion to see the load",
    async () =>
      ((await companionEndpoints(companion.port)).find((e) => e.address === busy.address)?.running ?? 0) >= 20,
  );
  await sleep(100); // and the gateway's fetcher the snapshot showing it
  const landed: string[] = [];
  for (let i = 0; i < 12; i++)
    landed.push(
      podOf(
        await send(
          gateway.port,
          "/v1/completions",
          JSON.stringify({ model: MODEL, prompt: `short ${i}`, max_tokens: 2 }),
        ),
      ),
    );
  assert.ok(!landed.includes(busy.name), `no request went to the busy pod: ${landed}`);
  await Promise.all(load.map((p) => p.catch(() => null)));
});

test("requests sharing a long prompt prefix land on the same pod, across worker VMs", async () => {
  for (let group = 0; group < 4; group++) {
    const system = `Group ${group}: you are the assistant of team ${group}. `.repeat(120);
    const landed: string[] = [];
    for (let q = 0; q < 4; q++) {
      landed.push(podOf(await send(gateway.port, "/v1/chat/completions", chat(MODEL, system, `question ${q}?`))));
      await sleep(60); // past a tick: the other worker VM has the first one's journal
    }
    assert.equal(new Set(landed).size, 1, `group ${group}: ${landed}`);
  }
});

test("a request for a LoRA adapter goes to the pod that has it loaded", async () => {
  const withAdapter = pods[0];
  // Equal load everywhere (around the gateway), the adapter's requests on one pod only.
  const keep = pods.flatMap((p) =>
    Array.from({ length: 3 }, (_, i) =>
      send(
        p.port,
        "/v1/completions",
        JSON.stringify({
          model: p === withAdapter ? "sql-lora" : MODEL,
          prompt: `keep ${i}`,
          max_tokens: 2000,
          ignore_eos: true,
        }),
      ),
    ),
  );
  await eventually("the companion to see sql-lora running and the load everywhere", async () => {
    const states = await companionEndpoints(companion.port);
    return (
      (states.find((e) => e.address === withAdapter.address)?.lora?.running ?? []).includes("sql-lora") &&
      states.every((e) => e.error || (e.running ?? 0) >= 3)
    );
  });
  await sleep(100); // the gateway's fetcher has the new snapshot within a long-poll round trip
  for (let i = 0; i < 5; i++) {
    const r = await send(
      gateway.port,
      "/v1/completions",
      JSON.stringify({ model: "sql-lora", prompt: `lora ${i}`, max_tokens: 2 }),
    );
    assert.equal(r.status, 200, r.body);
    assert.equal(
      podOf(r),
      withAdapter.name,
      `request ${i}: ${withAdapter.address} has it; ${JSON.stringify((await companionEndpoints(companion.port)).map((e) => [e.address, e.running, e.lora?.running]))}`,
    );
  }
  await Promise.all(keep.map((p) => p.catch(() => null)));
});

test("bad bodies and headers get the documented answers", async () => {
  // A client's own destination header is dropped: it never chooses its upstream, even one outside the pool.
  let hijacked = 0;
  const decoy = http.createServer((_req, res) => {
    hijacked++;
    res.end("decoy");
  });
  await new Promise<void>((r) => decoy.listen(0, "127.0.0.1", r));
  const decoyAddress = `127.0.0.1:${(decoy.address() as AddressInfo).port}`;
  for (let i = 0; i < 10; i++) {
    const r = await send(
      gateway.port,
      "/v1/completions",
      JSON.stringify({ model: MODEL, prompt: `x ${i}`, max_tokens: 1 }),
      { "x-gateway-destination-endpoint": decoyAddress, "x-gateway-destination-endpoint-fallback": decoyAddress },
    );
    assert.equal(r.status, 200);
    assert.ok(pods.some((p) => p.name === podOf(r)));
  }
  decoy.close();
  assert.equal(hijacked, 0, "no request reached the address the client named");
  // Not JSON: picked by load, and the model server answers the client's mistake itself.
  let r = await send(gateway.port, "/v1/completions", "this is not json");
  assert.equal(r.status, 400);
  assert.ok(r.headers["x-gateway-destination-endpoint-served"]);
  // An unknown model: routed, answered by vLLM's own 404.
  r = await send(gateway.port, "/v1/chat/completions", chat("no-such-model", "s", "q"));
  assert.equal(r.status, 404);
  assert.match(r.body, /does not exist/);
  // A GET without a body is routed by load alone.
  r = await send(gateway.port, "/v1/models", null);
  assert.equal(r.status, 200);
  assert.match(r.body, /sql-lora/);
});

test("a pod that goes away is dropped from the picks", async () => {
  const gone = pods[5];
  await gone.close();
  await eventually(
    "the companion to mark it",
    async () => !!(await companionEndpoints(companion.port)).find((e) => e.address === gone.address)?.error,
    5000,
  );
  await sleep(100);
  for (let i = 0; i < 12; i++) {
    const r = await send(
      gateway.port,
      "/v1/completions",
      JSON.stringify({ model: MODEL, prompt: `after ${i}`, max_tokens: 1 }),
    );
    assert.equal(r.status, 200, r.body);
    assert.notEqual(podOf(r), gone.name);
  }
});

test("FailOpen: a companion restart drops no request; picks resume once it is back", async () => {
  const port = companion.port;
  let stop = false;
  const statuses: number[] = [];
  const traffic = (async () => {
    while (!stop) {
      const r = await send(
        gateway.port,
        "/v1/completions",
        JSON.stringify({ model: MODEL, prompt: "during restart", max_tokens: 1 }),
      );
      statuses.push(r.status);
      await sleep(20);
    }
  })();
  await companion.stop();
  await sleep(1500);
  companion = await startCompanion(endpointsArgs, port);
  await sleep(1500);
  stop = true;
  await traffic;
  assert.ok(statuses.length > 20);
  assert.deepEqual([...new Set(statuses)], [200], "every request during the restart succeeded");
  // The fetcher retried with backoff while the companion was away (up to 5 s apart): picks resume at its next poll.
  await gatewayPicking(gateway.port, JSON.stringify({ model: MODEL, prompt: "after restart", max_tokens: 1 }), 10_000);
});
