// envoy/examples/keda-scaledobject.yaml: a KEDA ScaledObject that scales the sample model Deployment from
// zero on the companion's queue-size metric. manifests.test.ts validates it against the hand-written KEDA
// schema (tests/deploy/fixtures); this checks that it fits the rest: the Deployment and pool of
// envoy/examples/vllm-pool.yaml, the metric and labels the companion exports, llm-d's trigger settings, and
// the flow-control settings its comments tell users to apply.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseManifests } from "./validate";
import { loadPickerConfig } from "../../companion/picker-config";
import { LLM_D_QUEUE_SIZE, SelfMetrics } from "../../companion/self-metrics";

const FILE = "envoy/examples/keda-scaledobject.yaml";
const text = readFileSync(FILE, "utf8");
const [so] = parseManifests(text, FILE) as any[];
const pool = parseManifests(readFileSync("envoy/examples/vllm-pool.yaml", "utf8"), "vllm-pool") as any[];

/** KEDA's prometheus scaler's metadata keys (keda.sh docs, scalers/prometheus). */
const PROMETHEUS_KEYS = [
  "serverAddress",
  "query",
  "threshold",
  "activationThreshold",
  "namespace",
  "customHeaders",
  "ignoreNullValues",
  "queryParameters",
  "unsafeSsl",
  "authModes",
];

test("keda example: scales the sample Deployment from zero", () => {
  assert.equal(so.kind, "ScaledObject");
  const dep = pool.find((d) => d.kind === "Deployment");
  assert.deepEqual(so.spec.scaleTargetRef, { apiVersion: "apps/v1", kind: "Deployment", name: dep.metadata.name });
  assert.equal(so.spec.minReplicaCount, 0, "scale from zero");
  assert.ok(so.spec.maxReplicaCount >= 1);
  for (const t of so.spec.triggers) {
    assert.equal(t.type, "prometheus");
    for (const key of Object.keys(t.metadata)) assert.ok(PROMETHEUS_KEYS.includes(key), `${t.name}: ${key}`);
    assert.match(t.metadata.serverAddress, /^https?:\/\//);
  }
});

test("keda example: the queue trigger queries the metric the companion exports, as llm-d's guide sets it", async () => {
  const trigger = so.spec.triggers[0];
  assert.equal(trigger.metricType, "AverageValue");
  assert.equal(trigger.metadata.threshold, "1");
  const query: string = trigger.metadata.query;
  assert.match(query, /^sum\(/);
  const selector = new RegExp(`${LLM_D_QUEUE_SIZE}\\{([^}]*)\\}`).exec(query);
  assert.ok(selector, query);
  const labels = Object.fromEntries(
    [...selector[1].matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v] as [string, string]),
  );
  const poolName = pool.find((d) => d.kind === "InferencePool").metadata.name;
  assert.equal(labels.inference_pool, poolName, "the example pool's name");
  // Every label it selects on is one the gauge carries, or the target label Prometheus adds (namespace).
  const m = new SelfMetrics();
  m.flowControlQueue = () => ({ pool: poolName, sizes: [{ priority: 0, queued: 2 }] });
  const exported = (await m.registry.metrics()).split("\n").find((l) => l.startsWith(`${LLM_D_QUEUE_SIZE}{`))!;
  assert.ok(exported, "the companion exports the metric");
  for (const key of Object.keys(labels))
    assert.ok(key === "namespace" || exported.includes(`${key}="`), `${key} is not a label of ${exported}`);
  assert.ok(exported.includes(`inference_pool="${poolName}"`));
  // Each companion replica exports the pool-wide numbers: the query deduplicates them per priority.
  assert.match(query, /max by \(priority\)/);
});

test("keda example: the flow-control settings in its comments load, with noEndpointRequestTTL over a pod start", () => {
  const m = /#\s+featureGates: \["flowControl"\]\n#\s+flowControl:\n#\s+noEndpointRequestTTL: (\S+)\n/.exec(text);
  assert.ok(m, "the comments show the gate and noEndpointRequestTTL");
  const cfg = loadPickerConfig(`featureGates: ["flowControl"]\nflowControl:\n  noEndpointRequestTTL: ${m[1]}\n`);
  assert.ok(cfg.flowControl!.noEndpointRequestTtlMs >= 300_000, "minutes: a model server's cold start");
  assert.match(text, /noEndpointRequestTTL .*must exceed the pods'\n#\s+start time/);
});
