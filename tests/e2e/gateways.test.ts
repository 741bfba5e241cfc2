// Gateway replicas over real sockets (docs/GATEWAYS.md): 3 emulator gateways serving envoy/envoy.yaml, 2
// companions relaying to each other, simulated vLLM pods whose metrics lag by a minute (so the scraped load
// tells nothing and only the exchange can carry one gateway's requests to the others).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startSimPods,
  startCompanion,
  startGateway,
  endpointsFile,
  freePort,
  send,
  sleep,
  eventually,
  gatewayPicking,
  type Proc,
  type Reply,
} from "./stack";
import { makeProfile } from "../sim/profile";
import type { SimPod } from "../sim/pod-server";

const profile = makeProfile({ metricsLagMs: 60_000 });
const MODEL = profile.model;
let pods: SimPod[] = [];
let closePods: () => Promise<void> = async () => {};
let companions: Proc[] = [];
let gateways: Proc[] = [];

const chat = (system: string, question: string, maxTokens: number) =>
  JSON.stringify({
    model: MODEL,
    messages: [
      { role: "system", content: system },
      { role: "user", content: question },
    ],
    max_tokens: maxTokens,
    ignore_eos: true,
  });
const podOf = (r: Reply) => String(r.headers["x-sim-pod"]);
const tenant = (n: number) => `You are the assistant of tenant ${n}; answer in its house style. `.repeat(30);

before(async () => {
  const set = await startSimPods({ engines: ["vllm-v1", "vllm-v1", "vllm-v1", "vllm-v1"], profile, timeScale: 1 });
  pods = set.pods;
  closePods = set.close;
  const ports = [await freePort(), await freePort()];
  companions = await Promise.all(
    ports.map((port, i) =>
      startCompanion(
        ["--endpoints-file", endpointsFile(pods), "--refresh-interval", "50ms", "--peers", `127.0.0.1:${ports[1 - i]}`],
        port,
      ),
    ),
  );
  for (let g = 0; g < 3; g++) {
    const gateway = await startGateway({
      companionPort: ports,
      poolPorts: pods.map((p) => p.port),
      configuration: { failureMode: "FailClose", stalenessLimitMs: 5000 },
      concurrency: 2,
    });
    gateways.push(gateway);
    await gatewayPicking(gateway.port, chat("warm up", "hi", 1));
  }
});

after(async () => {
  await Promise.all([...gateways, ...companions].map((p) => p.stop()));
  await closePods();
});

test("the same prefix arriving at different gateways lands on the same pod", async () => {
  for (let t = 0; t < 4; t++) {
    const first = await send(gateways[t % 3].port, "/v1/chat/completions", chat(tenant(t), "first question", 4));
    assert.equal(first.status, 200);
    await sleep(300); // a report, the relay between companions, an answer: well under this
    for (let k = 1; k <= 4; k++) {
      const r = await send(gateways[(t + k) % 3].port, "/v1/chat/completions", chat(tenant(t), `question ${k}`, 4));
      assert.equal(r.status, 200);
      assert.equal(podOf(r), podOf(first), `tenant ${t}, follow-up ${k} through gateway ${(t + k) % 3}`);
    }
  }
});

test("one gateway's requests in flight steer the others", async () => {
  // Long requests sharing a prefix stay together on one pod through gateway 0 (prefix affinity within its
  // load slack); the pods' metrics lag a minute, so only the exchange tells gateway 1 that pod is busy.
  const long = Array.from({ length: 5 }, (_, k) =>
    send(gateways[0].port, "/v1/chat/completions", chat(tenant(9), `long ${k}`, 3000)),
  );
  await sleep(400);
  const held = pods.find((p) => p.engine.numRunning + p.engine.numWaiting >= 3);
  assert.ok(held, "gateway 0's long requests share a pod");
  const fresh: Promise<Reply>[] = [];
  for (let k = 0; k < 6; k++) {
    fresh.push(send(gateways[1].port, "/v1/chat/completions", chat(`fresh prompt ${k} ${Math.random()}`, "q", 600)));
    await sleep(60);
  }
  const served = (await Promise.all(fresh)).map(podOf);
  assert.ok(!served.includes(held.name), `gateway 1 avoided ${held.name}, busy with gateway 0's requests: ${served}`);
  await Promise.all(long);
});

test("killing a gateway and a companion loses no request on the other gateways", async () => {
  const results: Promise<Reply>[] = [];
  const started = Date.now();
  let k = 0;
  const killer = (async () => {
    await sleep(700);
    await gateways[0].stop();
    await companions[0].stop();
  })();
  while (Date.now() - started < 3000) {
    results.push(send(gateways[1 + (k % 2)].port, "/v1/chat/completions", chat(tenant(k % 5), `q${k}`, 8)));
    k++;
    await sleep(40);
  }
  await killer;
  const replies = await Promise.all(results);
  const failed = replies.filter((r) => r.status !== 200);
  assert.equal(failed.length, 0, `${failed.length} of ${replies.length} failed: ${failed.map((r) => r.status)}`);
  // The survivors keep exchanging through the remaining companion.
  await eventually(
    "a prefix sent through gateway 1 to be followed by gateway 2",
    async () => {
      const a = await send(gateways[1].port, "/v1/chat/completions", chat(tenant(42), "a", 4));
      await sleep(300);
      const b = await send(gateways[2].port, "/v1/chat/completions", chat(tenant(42), "b", 4));
      return podOf(a) === podOf(b);
    },
    5000,
    100,
  );
});
