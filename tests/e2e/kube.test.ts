// End to end with Kubernetes discovery: the bundled companion watches an InferencePool and its Pods on a fake
// API server (the real client library, list + watch); simulated pods of mixed engines on 127.0.0.2-6, one
// port; the emulator gateway picks among what the pool holds as pods come, change and go.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startSimPods,
  startCompanion,
  startGateway,
  send,
  eventually,
  companionEndpoints,
  gatewayPicking,
  ENGINE_LABEL,
  COMPANION_ENGINE,
  type Proc,
} from "./stack";
import { FakeKube, inferencePoolV1, pod } from "../helpers/fake-kube";
import { makeProfile } from "../sim/profile";
import type { SimPod } from "../sim/pod-server";
import type { EngineKind } from "../sim/profile";
import { freePortOn } from "../helpers/ports";

const IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"];
const ENGINES: EngineKind[] = ["vllm-v1", "sglang", "vllm-v1", "triton-trtllm", "vllm-v1"];
const profile = makeProfile({ metricsLagMs: 100 });

let fake: FakeKube;
let pods: SimPod[] = [];
let closePods: () => Promise<void> = async () => {};
let companion: Proc;
let gateway: Proc;

const putPod = (i: number, extra: Record<string, string> = {}) =>
  fake.put(
    pod({
      name: `model-${i}`,
      namespace: "llm",
      ip: IPS[i],
      labels: { app: "llama", [ENGINE_LABEL]: COMPANION_ENGINE[ENGINES[i]], ...extra },
    }),
  );
const ask = async (tag: string) => {
  const r = await send(
    gateway.port,
    "/v1/completions",
    JSON.stringify({ model: profile.model, prompt: tag, max_tokens: 1 }),
  );
  assert.equal(r.status, 200, r.body);
  return String(r.headers["x-sim-address"]);
};
const addresses = async () => (await companionEndpoints(companion.port)).map((e) => e.address).sort();

before(async () => {
  const port = await freePortOn(IPS);
  const set = await startSimPods({ engines: ENGINES, ips: IPS, port, profile, timeScale: 10 });
  pods = set.pods;
  closePods = set.close;
  fake = await FakeKube.start({ namespace: "llm" });
  fake.put(inferencePoolV1({ name: "llama", namespace: "llm", matchLabels: { app: "llama" }, ports: [port] }));
  for (let i = 0; i < 4; i++) putPod(i);
  fake.put(pod({ name: "not-ready", namespace: "llm", ip: IPS[4], labels: { app: "llama" }, ready: false }));
  companion = await startCompanion([
    "--pool-name",
    "llama",
    "--pool-namespace",
    "llm",
    "--kubeconfig",
    fake.kubeconfigPath,
    "--refresh-interval",
    "50ms",
    "--long-poll-timeout",
    "1000ms",
  ]);
  gateway = await startGateway({
    companionPort: companion.port,
    poolEndpoints: IPS.map((address) => ({ address, port })),
    configuration: { failureMode: "FailClose", stalenessLimitMs: 2500 },
  });
  await eventually(
    "the pool to be scraped",
    async () => (await companionEndpoints(companion.port)).filter((e) => e.queued !== null).length === 4,
    10_000,
  );
  await gatewayPicking(gateway.port, JSON.stringify({ model: profile.model, prompt: "warm up", max_tokens: 1 }));
});

after(async () => {
  await gateway?.stop();
  await companion?.stop();
  await closePods();
  await fake?.close();
});

test("the pool's Ready pods, with their engine labels, are what the gateway picks from", async () => {
  const states = await companionEndpoints(companion.port);
  assert.deepEqual(
    states.map((e) => [e.address, e.engine]).sort(),
    [0, 1, 2, 3].map((i) => [pods[i].address, COMPANION_ENGINE[ENGINES[i]]]).sort(),
  );
  const seen = new Set<string>();
  for (let i = 0; i < 16; i++) seen.add(await ask(`k${i}`));
  assert.ok(!seen.has(pods[4].address), "the unready pod is never picked");
  assert.ok(seen.size >= 3, `spread over the pool: ${[...seen]}`);
});

test("a pod becoming Ready joins, a relabelled pod changes engine, a deleted pod leaves", async () => {
  fake.put(pod({ name: "not-ready", namespace: "llm", ip: IPS[4], labels: { app: "llama" }, ready: true }));
  await eventually("the new pod in the snapshot", async () => (await addresses()).includes(pods[4].address), 2000);
  await eventually("requests to reach it", async () => (await ask("joined")) === pods[4].address, 5000, 0);

  fake.update("v1", "Pod", "llm", "model-1", (o) => {
    o.metadata.labels = { ...o.metadata.labels, [ENGINE_LABEL]: "vllm" };
  });
  await eventually(
    "the relabel to take effect",
    async () =>
      (await companionEndpoints(companion.port)).find((e) => e.address === pods[1].address)?.engine === "vllm",
    2000,
  );

  fake.delete("v1", "Pod", "llm", "model-0");
  await eventually(
    "the deleted pod to leave the snapshot",
    async () => !(await addresses()).includes(pods[0].address),
    2000,
  );
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < 12; i++) assert.notEqual(await ask(`after ${i}`), pods[0].address);
});

test("FailClose: once the companion is gone for longer than stalenessLimitMs, requests get 503", async () => {
  await ask("before");
  await companion.stop();
  const started = Date.now();
  let r = await send(
    gateway.port,
    "/v1/completions",
    JSON.stringify({ model: profile.model, prompt: "x", max_tokens: 1 }),
  );
  assert.equal(r.status, 200, "the last snapshot serves until it is stale");
  await eventually(
    "the snapshot to go stale",
    async () => {
      r = await send(
        gateway.port,
        "/v1/completions",
        JSON.stringify({ model: profile.model, prompt: "x", max_tokens: 1 }),
      );
      return r.status === 503;
    },
    6000,
    100,
  );
  assert.ok(Date.now() - started >= 2000, "not before the staleness limit");
  assert.match(r.body, /stale/);
});
