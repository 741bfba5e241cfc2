// End to end, InferenceModelRewrite (llm-d-router's canary / A-B split) over real processes: simulated vLLM
// pods serving the LoRA adapters food-review-v1 and food-review-v2 (they refuse "food-review"), the bundled
// companion watching a fake Kubernetes API that holds the InferencePool, its pods and a 90/10 rewrite, and
// the emulator gateway running the filter. The split, what the pods are asked for, and what clients get back.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import {
  startSimPods,
  startCompanion,
  startGateway,
  send,
  eventually,
  ENGINE_LABEL,
  COMPANION_ENGINE,
  type Proc,
} from "./stack";
import { FakeKube, inferencePoolV1, pod } from "../helpers/fake-kube";
import { makeProfile } from "../sim/profile";
import type { SimPod } from "../sim/pod-server";
import { freePortOn } from "../helpers/ports";

const IPS = ["127.0.0.2", "127.0.0.3"];
const ADAPTERS = ["food-review-v1", "food-review-v2"];
const profile = makeProfile({ metricsLagMs: 100, lora: { adapters: ADAPTERS, loadDelayMs: 20 } });
const REQUESTS = 1000;

let fake: FakeKube;
let pods: SimPod[] = [];
let closePods: () => Promise<void> = async () => {};
let companion: Proc;
let gateway: Proc;

const completion = (i: number, stream = false) =>
  JSON.stringify({ model: "food-review", prompt: `review ${i}: the soup was cold`, max_tokens: 2, stream });

before(async () => {
  const port = await freePortOn(IPS);
  const set = await startSimPods({ engines: ["vllm-v1", "vllm-v1"], ips: IPS, port, profile, timeScale: 10 });
  pods = set.pods;
  closePods = set.close;
  fake = await FakeKube.start({ namespace: "llm" });
  fake.put(inferencePoolV1({ name: "food", namespace: "llm", matchLabels: { app: "food" }, ports: [port] }));
  IPS.forEach((ip, i) =>
    fake.put(
      pod({
        name: `vllm-${i}`,
        namespace: "llm",
        ip,
        labels: { app: "food", [ENGINE_LABEL]: COMPANION_ENGINE["vllm-v1"] },
      }),
    ),
  );
  fake.put({
    apiVersion: "llm-d.ai/v1alpha2",
    kind: "InferenceModelRewrite",
    metadata: { name: "food-review-canary", namespace: "llm" },
    spec: {
      poolRef: { group: "inference.networking.k8s.io", kind: "InferencePool", name: "food" },
      rules: [
        {
          matches: [{ model: { type: "Exact", value: "food-review" } }],
          targets: [
            { modelRewrite: "food-review-v1", weight: 90 },
            { modelRewrite: "food-review-v2", weight: 10 },
          ],
        },
      ],
    },
  });
  companion = await startCompanion([
    "--pool-name",
    "food",
    "--pool-namespace",
    "llm",
    "--kubeconfig",
    fake.kubeconfigPath,
    "--refresh-interval",
    "50ms",
  ]);
  gateway = await startGateway({
    companionPort: companion.port,
    poolEndpoints: IPS.map((address) => ({ address, port })),
    configuration: { failureMode: "FailClose" },
  });
  // The pods refuse "food-review" (404): a 200 means the filter has the snapshot with the rewrite.
  await eventually(
    "the gateway to rewrite",
    async () => (await send(gateway.port, "/v1/completions", completion(-1))).status === 200,
    15_000,
    50,
  );
});

after(async () => {
  await gateway?.stop();
  await companion?.stop();
  await closePods();
  await fake?.close();
});

test("1,000 requests for food-review: the pods are asked for v1 / v2 within 3 points of 90/10", async (t) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const replies = await Promise.all(
    Array.from({ length: REQUESTS }, (_, i) => send(gateway.port, "/v1/completions", completion(i), {}, agent)),
  );
  agent.destroy();
  const asked = new Map<string, number>();
  for (const r of replies) {
    assert.equal(r.status, 200, r.body);
    const m = String(r.headers["x-sim-model"]);
    asked.set(m, (asked.get(m) ?? 0) + 1);
    // llm-d-router rewrites the response back: the client sees the model it asked for.
    assert.equal(JSON.parse(r.body).model, "food-review", r.body);
  }
  assert.deepEqual([...asked.keys()].sort(), ADAPTERS);
  const v1 = (100 * asked.get("food-review-v1")!) / REQUESTS;
  assert.ok(Math.abs(v1 - 90) <= 3, `food-review-v1 got ${v1}% of the requests`);
  t.diagnostic(`split: food-review-v1 ${v1.toFixed(1)}%, food-review-v2 ${(100 - v1).toFixed(1)}%`);
  // Both pods served (the rewritten model routes by load and LoRA affinity, not to one pod).
  assert.equal(new Set(replies.map((r) => String(r.headers["x-sim-pod"]))).size, pods.length);
});

test("streamed responses name the client's model in every event; other models pass untouched", async () => {
  const r = await send(gateway.port, "/v1/completions", completion(0, true));
  assert.equal(r.status, 200, r.body);
  assert.ok(ADAPTERS.includes(String(r.headers["x-sim-model"])));
  const events = r.body
    .split("\n\n")
    .filter((e) => e.startsWith("data: {"))
    .map((e) => JSON.parse(e.slice(6)));
  assert.ok(events.length >= 2, r.body);
  for (const e of events) assert.equal(e.model, "food-review");
  // A model no rule names goes to the pod as sent.
  const direct = await send(
    gateway.port,
    "/v1/completions",
    JSON.stringify({ model: "food-review-v2", prompt: "as is", max_tokens: 1 }),
  );
  assert.equal(direct.status, 200, direct.body);
  assert.equal(direct.headers["x-sim-model"], "food-review-v2");
  assert.equal(JSON.parse(direct.body).model, "food-review-v2");
});

test("the rule follows the resource: a changed split applies, a deleted rewrite stops rewriting", async () => {
  fake.update("llm-d.ai/v1alpha2", "InferenceModelRewrite", "llm", "food-review-canary", (o) => {
    const spec = o.spec as { rules: Array<{ targets: Array<{ weight: number }> }> };
    spec.rules[0].targets[0].weight = 0;
    spec.rules[0].targets[1].weight = 1;
  });
  await eventually(
    "every request to go to v2",
    async () => {
      const rs = await Promise.all(
        Array.from({ length: 10 }, (_, i) => send(gateway.port, "/v1/completions", completion(i))),
      );
      return rs.every((r) => r.headers["x-sim-model"] === "food-review-v2");
    },
    10_000,
    50,
  );
  fake.delete("llm-d.ai/v1alpha2", "InferenceModelRewrite", "llm", "food-review-canary");
  await eventually(
    "food-review to reach the pods unchanged (they refuse it: 404)",
    async () => (await send(gateway.port, "/v1/completions", completion(1))).status === 404,
    10_000,
    50,
  );
});
