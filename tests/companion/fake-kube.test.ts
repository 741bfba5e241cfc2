// The fake API server speaks list/watch the way the real @kubernetes/client-node expects: checked with the
// client's own ListWatch and API clients, configured only through the kubeconfig the fake writes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, KubeConfig, ListWatch, Watch, type KubernetesObject } from "@kubernetes/client-node";
import { FakeKube, inferencePoolV1, parseLabelSelector, pod } from "../helpers/fake-kube";
import { until } from "../helpers/until";

function informer(fake: FakeKube, labelSelector?: string) {
  const kc = new KubeConfig();
  kc.loadFromFile(fake.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  const events: string[] = [];
  const errors: unknown[] = [];
  const lw = new ListWatch<KubernetesObject>(
    "/api/v1/namespaces/default/pods",
    new Watch(kc),
    () => core.listNamespacedPod({ namespace: "default", labelSelector }) as never,
    false,
    labelSelector,
  );
  lw.on("add", (o) => events.push(`add ${o.metadata?.name}`));
  lw.on("update", (o) => events.push(`update ${o.metadata?.name}`));
  lw.on("delete", (o) => events.push(`delete ${o.metadata?.name}`));
  lw.on("error", (e) => errors.push(e));
  return {
    lw,
    events,
    errors,
    names: () =>
      lw
        .list()
        .map((o) => o.metadata!.name)
        .sort(),
  };
}

test("label selectors: equality, inequality, existence, set terms", () => {
  const sel = parseLabelSelector("app=vllm,tier!=canary,gpu,!draining,zone in (a, b),env notin (dev)");
  assert.equal(sel({ app: "vllm", gpu: "h100", zone: "a" }), true);
  assert.equal(sel({ app: "vllm", gpu: "h100", zone: "c" }), false);
  assert.equal(sel({ app: "vllm", gpu: "h100", zone: "a", tier: "canary" }), false);
  assert.equal(sel({ app: "vllm", zone: "a" }), false);
  assert.equal(sel({ app: "vllm", gpu: "x", zone: "b", draining: "" }), false);
  assert.equal(sel({ app: "vllm", gpu: "x", zone: "b", env: "dev" }), false);
});

test("the real client lists and watches through the fake: events, selector transitions, auth", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  fake.put(pod({ name: "a", ip: "10.0.0.1", labels: { app: "llm" } }));
  fake.put(pod({ name: "other", ip: "10.0.0.9", labels: { app: "web" } }));
  const { lw, events, errors, names } = informer(fake, "app=llm");
  t.after(() => lw.stop());
  await lw.start();
  assert.deepEqual(names(), ["a"]);
  const list = fake.requests.find((r) => !r.watch)!;
  assert.equal(list.query.labelSelector, "app=llm");
  const watch = fake.requests.find((r) => r.watch)!;
  assert.equal(
    watch.query.resourceVersion,
    String(fake.resourceVersion),
    "the watch resumes from the list's resourceVersion",
  );

  fake.put(pod({ name: "b", ip: "10.0.0.2", labels: { app: "llm" } }));
  fake.update("v1", "Pod", "default", "a", (p) => {
    p.metadata.labels!.version = "2";
  });
  fake.update("v1", "Pod", "default", "other", (p) => {
    p.metadata.labels!.app = "llm";
  }); // starts matching -> ADDED
  fake.update("v1", "Pod", "default", "b", (p) => {
    p.metadata.labels!.app = "web";
  }); // stops matching -> DELETED
  fake.delete("v1", "Pod", "default", "a");
  await until("events", () => events.length >= 6);
  assert.deepEqual(events, ["add a", "add b", "update a", "add other", "delete b", "delete a"]);
  assert.deepEqual(names(), ["other"]);
  assert.deepEqual(errors, []);

  const kc = new KubeConfig();
  kc.loadFromString(fake.kubeconfigYaml().replace(fake.token, "wrong"));
  await assert.rejects(kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: "default" }), /401/);
});

test("a compacted resourceVersion is 410 Gone, and the client relists (ERROR event and HTTP 410 forms)", async (t) => {
  for (const mode of ["event", "status"] as const) {
    const fake = await FakeKube.start({ goneMode: mode });
    t.after(() => fake.close());
    fake.put(pod({ name: "a", ip: "10.0.0.1" }));
    const { lw, names } = informer(fake);
    t.after(() => lw.stop());
    await lw.start();
    const lists = () => fake.requests.filter((r) => !r.watch).length;
    assert.equal(lists(), 1);
    fake.closeWatches(); // the client re-watches from its resourceVersion ...
    fake.put(pod({ name: "b", ip: "10.0.0.2" }));
    fake.compact(); // ... which is now too old
    fake.delete("v1", "Pod", "default", "a");
    await until(`relist (${mode})`, () => lists() === 2 && names().join() === "b");
    // the new watch opens after the relist has been delivered: wait for it, then make sure it is the only one
    await until(`watching again after the relist (${mode})`, () => fake.watchCount >= 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fake.watchCount, 1, "one watch after the relist");
  }
});

test("in-stream ERROR 410 on an open watch: the client relists when the stream ends", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  fake.put(pod({ name: "a", ip: "10.0.0.1" }));
  const { lw, names } = informer(fake);
  t.after(() => lw.stop());
  await lw.start();
  fake.compact();
  fake.put(pod({ name: "b", ip: "10.0.0.2" })); // delivered on the open stream
  assert.equal(fake.expireWatches(), 1);
  await until("relist", () => fake.requests.filter((r) => !r.watch).length === 2);
  assert.deepEqual(names(), ["a", "b"]);
});

test("a dropped watch connection is reported to the client as an error (the caller restarts it)", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  const { lw, errors } = informer(fake);
  t.after(() => lw.stop());
  await lw.start();
  await until("watch open", () => fake.watchCount === 1);
  fake.dropWatches();
  await until("error", () => errors.length === 1);
  fake.put(pod({ name: "late", ip: "10.0.0.3" }));
  await lw.start(); // what the companion does after an error: resume from the last resourceVersion
  await until("resumed", () => lw.list().some((o) => o.metadata?.name === "late"));
  assert.equal(fake.requests.filter((r) => !r.watch).length, 1, "resumed without a relist");
});

test("InferencePools of both API groups, field selectors, single GET, 404 for a CRD that is not installed", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  fake.put(inferencePoolV1({ name: "llama", matchLabels: { app: "llama" }, ports: [8000] }));
  fake.put(inferencePoolV1({ name: "other", matchLabels: { app: "x" }, ports: [8000] }));
  const res = await fetch(
    `${fake.url}/apis/inference.networking.k8s.io/v1/namespaces/default/inferencepools?fieldSelector=metadata.name%3Dllama`,
    { headers: { authorization: `Bearer ${fake.token}` } },
  );
  const list = (await res.json()) as { kind: string; items: Array<{ metadata: { name: string } }> };
  assert.equal(list.kind, "InferencePoolList");
  assert.deepEqual(
    list.items.map((i) => i.metadata.name),
    ["llama"],
  );
  const one = await fetch(`${fake.url}/apis/inference.networking.k8s.io/v1/namespaces/default/inferencepools/other`, {
    headers: { authorization: `Bearer ${fake.token}` },
  });
  assert.equal(((await one.json()) as { metadata: { name: string } }).metadata.name, "other");
  fake.uninstall("inference.networking.x-k8s.io/v1alpha2", "InferencePool");
  const missing = await fetch(
    `${fake.url}/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/default/inferencepools`,
    { headers: { authorization: `Bearer ${fake.token}` } },
  );
  assert.equal(missing.status, 404);
});
