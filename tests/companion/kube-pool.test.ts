// KubePool against the fake API server with the real client library: which pods count, selector and port
// changes of the InferencePool, relabelling, reconnects.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubePool, defaultNamespace, loadKubeConfig, type KubePoolMode } from "../../companion/kube-pool";
import { parseInferencePool, podTargets } from "../../companion/inference-pool";
import { silentLogger, type LogFields, type Logger } from "../../companion/log";
import type { PoolTarget } from "../../companion/types";
import { FakeKube, inferencePoolV1, inferencePoolV1alpha2, pod } from "../helpers/fake-kube";
import { until } from "../helpers/until";

async function startPool(
  fake: FakeKube,
  mode: KubePoolMode,
  t: { after(fn: () => unknown): void },
  opts: { kubeconfig?: string; log?: Logger; retryMaxMs?: number } = {},
) {
  let targets: PoolTarget[] = [];
  const restarts: string[] = [];
  const pool = new KubePool({
    kubeConfig: loadKubeConfig(opts.kubeconfig ?? fake.kubeconfigPath),
    namespace: "default",
    mode,
    log: opts.log ?? silentLogger,
    retryInitialMs: 50,
    retryMaxMs: opts.retryMaxMs,
    onWatchRestart: (r) => restarts.push(r),
  });
  t.after(() => pool.stop());
  await pool.start((next) => (targets = next));
  return { pool, restarts, addresses: () => targets.map((x) => x.address), targets: () => targets };
}

test("pods: only Ready, not terminating, with an IP; each target port is an endpoint; active-ports annotation", () => {
  const ports = [8000, 8001];
  const t = (p: Parameters<typeof pod>[0]) => podTargets(pod(p) as never, ports).map((x) => x.address);
  assert.deepEqual(t({ name: "a", ip: "10.0.0.1" }), ["10.0.0.1:8000", "10.0.0.1:8001"]);
  assert.deepEqual(t({ name: "b", ip: "10.0.0.2", ready: false }), []);
  assert.deepEqual(t({ name: "c", ip: "10.0.0.3", terminating: true }), []);
  assert.deepEqual(t({ name: "d" }), []);
  assert.deepEqual(t({ name: "e", ip: "fd00::5" }), ["[fd00::5]:8000", "[fd00::5]:8001"]);
  assert.deepEqual(
    t({ name: "f", ip: "10.0.0.6", annotations: { "inference.networking.k8s.io/active-ports": "8001, 9999" } }),
    ["10.0.0.6:8001"],
  );
  const [x] = podTargets(pod({ name: "g", namespace: "ml", ip: "10.0.0.7", labels: { app: "l" } }) as never, [8000]);
  assert.deepEqual(x, { address: "10.0.0.7:8000", ip: "10.0.0.7", port: 8000, labels: { app: "l" }, pod: "ml/g" });
});

test("InferencePool specs: v1 and v1alpha2, errors name the field", () => {
  assert.deepEqual(
    parseInferencePool(inferencePoolV1({ name: "p", matchLabels: { app: "a" }, ports: [8000, 8001, 8000] }), "v1"),
    { selector: { app: "a" }, targetPorts: [8000, 8001] },
  );
  assert.deepEqual(
    parseInferencePool(inferencePoolV1alpha2({ name: "p", selector: { app: "a" }, port: 8000 }), "v1alpha2"),
    { selector: { app: "a" }, targetPorts: [8000] },
  );
  assert.throws(
    () => parseInferencePool({ spec: { selector: { matchLabels: {} }, targetPorts: [{ number: 8000 }] } }, "v1"),
    { message: "spec.selector.matchLabels: empty selector (it would select every pod in the namespace)" },
  );
  assert.throws(
    () => parseInferencePool({ spec: { selector: { matchLabels: { a: "b" } }, targetPorts: [{ number: 0 }] } }, "v1"),
    { message: "spec.targetPorts[0].number: must be a port from 1 to 65535, got 0" },
  );
  assert.throws(() => parseInferencePool({ spec: { selector: { a: "b" } } }, "v1alpha2"), {
    message: "spec.targetPortNumber: must be a port from 1 to 65535, got undefined",
  });
});

test("InferencePool v1: pods are followed; selector and port changes of the pool take effect", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  fake.put(inferencePoolV1({ name: "llama", matchLabels: { app: "llama" }, ports: [8000] }));
  fake.put(pod({ name: "p1", ip: "10.0.0.1", labels: { app: "llama" } }));
  fake.put(pod({ name: "p2", ip: "10.0.0.2", labels: { app: "llama" }, ready: false }));
  fake.put(pod({ name: "q1", ip: "10.0.1.1", labels: { app: "qwen" } }));
  const { addresses, targets, pool } = await startPool(
    fake,
    { kind: "inference-pool", name: "llama", group: "inference.networking.k8s.io" },
    t,
  );
  assert.deepEqual(addresses(), ["10.0.0.1:8000"], "the first list is complete when start() resolves");
  assert.equal(pool.problem(), null);

  fake.update("v1", "Pod", "default", "p2", (p) => {
    (p.status as { conditions: Array<{ type: string; status: string }> }).conditions.find(
      (c) => c.type === "Ready",
    )!.status = "True";
  });
  await until("p2 ready", () => addresses().length === 2);
  fake.update("v1", "Pod", "default", "p1", (p) => {
    p.metadata.labels!["inference.networking.k8s.io/engine-type"] = "sglang";
  });
  await until(
    "relabel",
    () =>
      targets().find((x) => x.address === "10.0.0.1:8000")?.labels["inference.networking.k8s.io/engine-type"] ===
      "sglang",
  );

  fake.update("inference.networking.k8s.io/v1", "InferencePool", "default", "llama", (p) => {
    (p.spec as { targetPorts: unknown }).targetPorts = [{ number: 8000 }, { number: 8001 }];
  });
  await until("second port", () => addresses().length === 4);
  fake.update("inference.networking.k8s.io/v1", "InferencePool", "default", "llama", (p) => {
    (p.spec as { selector: unknown }).selector = { matchLabels: { app: "qwen" } };
  });
  await until("new selector", () => addresses().join() === "10.0.1.1:8000,10.0.1.1:8001");

  fake.delete("inference.networking.k8s.io/v1", "InferencePool", "default", "llama");
  await until("pool gone", () => addresses().length === 0);
  assert.equal(pool.problem(), "InferencePool default/llama not found");
});

test("InferencePool v1alpha2 and selector mode", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  fake.put(inferencePoolV1alpha2({ name: "old", selector: { app: "m" }, port: 8080 }));
  fake.put(pod({ name: "m1", ip: "10.0.0.1", labels: { app: "m" } }));
  const alpha = await startPool(
    fake,
    { kind: "inference-pool", name: "old", group: "inference.networking.x-k8s.io" },
    t,
  );
  assert.deepEqual(alpha.addresses(), ["10.0.0.1:8080"]);
  const sel = await startPool(fake, { kind: "selector", selector: { app: "m" }, targetPorts: [9000, 9001] }, t);
  assert.deepEqual(sel.addresses(), ["10.0.0.1:9000", "10.0.0.1:9001"]);
  assert.ok(
    fake.requests.some(
      (r) =>
        r.path === "/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/default/inferencepools" &&
        r.query.fieldSelector === "metadata.name=old",
    ),
  );
});

test("watches recover: dropped connections resume, 410 Gone relists, failed lists are retried", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  fake.failNext(/\/pods\?labelSelector=/, 500, 2); // the first two pod lists fail
  fake.put(pod({ name: "a", ip: "10.0.0.1", labels: { app: "x" } }));
  const { addresses, restarts } = await startPool(
    fake,
    { kind: "selector", selector: { app: "x" }, targetPorts: [8000] },
    t,
  );
  assert.deepEqual(addresses(), ["10.0.0.1:8000"]);
  assert.deepEqual(restarts, ["pods", "pods"]);

  await until("watch open", () => fake.watchCount === 1);
  fake.dropWatches();
  fake.put(pod({ name: "b", ip: "10.0.0.2", labels: { app: "x" } })); // happens while disconnected
  await until("resumed after drop", () => addresses().length === 2);

  await until("watch open", () => fake.watchCount === 1);
  const lists = () => fake.requests.filter((r) => !r.watch).length;
  const listsBefore = lists();
  fake.closeWatches();
  fake.delete("v1", "Pod", "default", "a");
  fake.compact(); // the re-watch comes from before the delete: 410 Gone
  await until("relisted after 410", () => addresses().join() === "10.0.0.2:8000");
  assert.equal(lists(), listsBefore + 1, "one relist");
  fake.expireWatches();
  fake.put(pod({ name: "c", ip: "10.0.0.3", labels: { app: "x" } }));
  await until("after in-stream 410", () => addresses().length === 2);
});

test("kubeconfig and namespace resolution", async (t) => {
  const fake = await FakeKube.start({ namespace: "models" });
  t.after(() => fake.close());
  const kc = loadKubeConfig(fake.kubeconfigPath);
  assert.equal(kc.getCurrentCluster()!.server, fake.url);
  assert.equal(defaultNamespace(kc, "flag", {}), "flag");
  assert.equal(defaultNamespace(kc, undefined, { POD_NAMESPACE: "env" }), "env");
  assert.equal(defaultNamespace(kc, undefined, {}), "models");
  assert.throws(() => loadKubeConfig("/nonexistent/kubeconfig"), /kubeconfig \/nonexistent\/kubeconfig: /);
  assert.throws(() => loadKubeConfig(undefined, { HOME: "/nonexistent" }), /no Kubernetes configuration/);
});

/** A logger that keeps what it is told. */
function recordingLogger(): Logger & { lines: Array<{ level: string; msg: string } & LogFields> } {
  const lines: Array<{ level: string; msg: string } & LogFields> = [];
  const keep = (level: string) => (msg: string, fields?: LogFields) => void lines.push({ level, msg, ...fields });
  return { lines, debug: keep("debug"), info: keep("info"), warn: keep("warn"), error: keep("error") };
}

test("failing credentials (an exec plugin that stops working) are logged and retried, never an unhandled rejection", async (t) => {
  const fake = await FakeKube.start();
  const dir = mkdtempSync(join(tmpdir(), "exec-plugin-"));
  const rejections: unknown[] = [];
  const onRejection = (e: unknown) => void rejections.push(e);
  process.on("unhandledRejection", onRejection);
  t.after(async () => {
    process.off("unhandledRejection", onRejection);
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // Succeeds the first time, then fails while the file `broken` exists (client-node runs it for every request:
  // without an expirationTimestamp nothing is cached).
  const broken = join(dir, "broken");
  writeFileSync(join(dir, "credential.json"), fake.execCredential());
  writeFileSync(
    join(dir, "plugin.sh"),
    [
      'dir=$(dirname "$0")',
      'n=$(cat "$dir/count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$dir/count"',
      'if [ "$n" -gt 1 ] && [ -e "$dir/broken" ]; then echo "token service unavailable" >&2; exit 1; fi',
      'cat "$dir/credential.json"',
      "",
    ].join("\n"),
  );
  writeFileSync(broken, "");
  fake.put(pod({ name: "a", ip: "10.0.0.1", labels: { app: "x" } }));
  const log = recordingLogger();
  const kubeconfig = fake.writeExecKubeconfig("/bin/sh", [join(dir, "plugin.sh")]);
  // The first list authenticates; the watch after it (inside ListWatch.start()) does not.
  const { addresses, restarts } = await startPool(
    fake,
    { kind: "selector", selector: { app: "x" }, targetPorts: [8000] },
    t,
    { kubeconfig, log, retryMaxMs: 100 },
  );
  assert.deepEqual(addresses(), ["10.0.0.1:8000"]);
  await until("retried", () => restarts.length >= 2);
  const warning = log.lines.find((l) => l.msg === "kubernetes list/watch failed; restarting");
  assert.ok(warning, "logged");
  assert.match(String(warning.error), /token service unavailable/);
  assert.equal(warning.resource, "pods");
  assert.equal(fake.watchCount, 0);

  rmSync(broken);
  await until("watching", () => fake.watchCount === 1);
  fake.put(pod({ name: "b", ip: "10.0.0.2", labels: { app: "x" } }));
  await until("pod b", () => addresses().length === 2);

  // A re-watch after a clean end (the apiserver's watch timeout) whose credentials fail: same recovery.
  writeFileSync(broken, "");
  const before = restarts.length;
  fake.closeWatches();
  await until("re-watch failed and is retried", () => restarts.length >= before + 2);
  rmSync(broken);
  await until("watching again", () => fake.watchCount === 1);
  fake.put(pod({ name: "c", ip: "10.0.0.3", labels: { app: "x" } }));
  await until("pod c", () => addresses().length === 3);
  assert.ok(!existsSync(broken));
  assert.deepEqual(rejections, [], "no unhandled rejection");
});

test("an InferencePool that exists with an unusable spec is reported with its error, not as missing", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  fake.put({
    ...inferencePoolV1({ name: "bad", matchLabels: { app: "m" }, ports: [8000] }),
    spec: { selector: { matchLabels: { app: "m" } }, targetPorts: [] },
  });
  fake.put(pod({ name: "m1", ip: "10.0.0.1", labels: { app: "m" } }));
  const log = recordingLogger();
  const { pool, addresses } = await startPool(
    fake,
    { kind: "inference-pool", name: "bad", group: "inference.networking.k8s.io" },
    t,
    { log },
  );
  assert.deepEqual(addresses(), []);
  assert.equal(pool.synced, true);
  assert.equal(
    pool.problem(),
    "InferencePool default/bad has an unusable spec: spec.targetPorts: must list at least one port, got []",
  );

  fake.update("inference.networking.k8s.io/v1", "InferencePool", "default", "bad", (p) => {
    (p.spec as { targetPorts: unknown }).targetPorts = [{ number: 8000 }];
  });
  await until("fixed", () => addresses().length === 1);
  assert.equal(pool.problem(), null);
  // Broken again: the previous spec is kept and served, so the pool has no problem.
  fake.update("inference.networking.k8s.io/v1", "InferencePool", "default", "bad", (p) => {
    (p.spec as { selector: unknown }).selector = { matchLabels: {} };
  });
  await until("refused", () =>
    log.lines.some((l) => l.msg === "InferencePool spec is not usable; keeping the previous one"),
  );
  assert.deepEqual([addresses(), pool.problem()], [["10.0.0.1:8000"], null]);
  fake.delete("inference.networking.k8s.io/v1", "InferencePool", "default", "bad");
  await until("deleted", () => addresses().length === 0);
  assert.equal(pool.problem(), "InferencePool default/bad not found");
});
