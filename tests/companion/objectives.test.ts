// InferenceObjective priorities from Kubernetes (llm-d.ai and GIE's group), against a fake API server
// speaking the list + watch protocol, and their place in the snapshot.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadKubeConfig } from "../../companion/kube-pool";
import { ObjectiveWatcher, objectivesOf, type Objective } from "../../companion/objectives";
import { silentLogger } from "../../companion/log";
import { decodeSnapshot, encodeSnapshot } from "../../companion/snapshot";
import { DEFAULT_PROFILE } from "../../companion/profile-config";
import { FakeKube, type KubeObject } from "../helpers/fake-kube";
import { until } from "../helpers/until";

function objective(group: string, name: string, pool: string, priority?: unknown): KubeObject {
  return {
    apiVersion: `${group}/v1alpha2`,
    kind: "InferenceObjective",
    metadata: { name, namespace: "default" },
    spec: { poolRef: { name: pool }, ...(priority === undefined ? {} : { priority }) },
  };
}

test("objectivesOf: this pool's objectives only, priority 0 when absent, bad priorities skipped", () => {
  const skipped: string[] = [];
  const objs = objectivesOf(
    [
      objective("llm-d.ai", "premium", "llama", 100),
      objective("llm-d.ai", "standard", "llama"),
      objective("llm-d.ai", "other-pool", "qwen", 5),
      objective("llm-d.ai", "fractional", "llama", 1.5),
      {
        ...objective("llm-d.ai", "service", "llama", 7),
        spec: { poolRef: { name: "llama", kind: "Service" }, priority: 7 },
      },
    ] as never,
    "llama",
    (name, why) => skipped.push(`${name}: ${why}`),
  );
  assert.deepEqual(objs, [
    { name: "premium", priority: 100 },
    { name: "standard", priority: 0 },
  ]);
  assert.deepEqual(skipped, ["fractional: spec.priority 1.5 is not a 32-bit integer"]);
});

test("InferenceObjectives of both API groups are watched; llm-d.ai wins a name in both; a missing CRD is fine", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  fake.put(objective("llm-d.ai", "batch", "llama", -1));
  fake.put(objective("inference.networking.x-k8s.io", "batch", "llama", 50));
  fake.put(objective("inference.networking.x-k8s.io", "chat", "llama", 10));
  let seen: Objective[] = [];
  const w = new ObjectiveWatcher(loadKubeConfig(fake.kubeconfigPath), "default", "llama", silentLogger, (o) => {
    seen = o;
  });
  t.after(() => w.stop());
  w.start();
  await until("both groups listed", () => seen.length === 2);
  assert.deepEqual(seen, [
    { name: "batch", priority: -1 },
    { name: "chat", priority: 10 },
  ]);
  fake.put(objective("llm-d.ai", "premium", "llama", 100));
  await until("a new objective", () => seen.length === 3);
  fake.delete("llm-d.ai/v1alpha2", "InferenceObjective", "default", "batch");
  await until("GIE's batch is what is left", () => seen.find((o) => o.name === "batch")?.priority === 50);

  // A cluster with only GIE's CRD: llm-d.ai's list is a 404, checked again later; GIE's still count.
  const gieOnly = await FakeKube.start();
  t.after(() => gieOnly.close());
  gieOnly.uninstall("llm-d.ai/v1alpha2", "InferenceObjective");
  gieOnly.put(objective("inference.networking.x-k8s.io", "chat", "llama", 3));
  let onlyGie: Objective[] = [];
  const w2 = new ObjectiveWatcher(loadKubeConfig(gieOnly.kubeconfigPath), "default", "llama", silentLogger, (o) => {
    onlyGie = o;
  });
  t.after(() => w2.stop());
  w2.start();
  await until("GIE's objectives", () => onlyGie.length === 1);
  assert.deepEqual(onlyGie, [{ name: "chat", priority: 3 }]);
});

test("the snapshot carries the objectives (section 4) in its content; none: no section", () => {
  const base = { version: 1n, generatedAtMs: 0, profile: DEFAULT_PROFILE, endpoints: [], baseModels: [] };
  const objectives = [
    { name: "batch", priority: -1 },
    { name: "premium", priority: 2147483647 },
    { name: "worst", priority: -2147483648 },
  ];
  const blob = encodeSnapshot({ ...base, objectives });
  assert.deepEqual(decodeSnapshot(blob).objectives, objectives);
  const none = encodeSnapshot(base);
  assert.equal(decodeSnapshot(none).objectives, undefined);
  assert.ok(blob.length > none.length);
});
