import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { parseManifests, validateManifest } from "./validate";

const files = ["envoy/kubernetes", "envoy/istio", "envoy/examples"].flatMap((dir) =>
  readdirSync(dir).filter((f) => f.endsWith(".yaml")).map((f) => `${dir}/${f}`));

test("there are manifests to check", () => {
  assert.ok(files.length >= 4, files.join(","));
});

// One wrong-typed or wrong-valued field per kind: the kubernetes-models schemas check types and enums
// but (like the API server with unknown-field pruning) mostly allow unknown keys, so a key typo is only
// caught where the schema is closed (InferencePool, envoy.yaml).
function mutate(d: Record<string, any>): Record<string, any> {
  const m = structuredClone(d);
  switch (d.kind) {
    case "Deployment": m.spec.replicas = "two"; break;
    case "Service": m.spec.ports = [{ port: "9002" }]; break;
    case "ServiceAccount": m.automountServiceAccountToken = "yes"; break;
    case "ConfigMap": m.data = { "config.yaml": 1 }; break;
    case "Role": m.rules = [{ verbs: "get" }]; break;
    case "RoleBinding": m.roleRef = { name: 3 }; break;
    case "WasmPlugin": m.spec.phase = "ROUTER"; break;
    case "EnvoyFilter": m.spec.configPatches[0].applyTo = "CLUSTERS"; break;
    case "DestinationRule": m.spec.host = 5; break;
    case "VirtualService": m.spec.http[0].timeout = 0; break;
    case "InferencePool": m.spec.targetPort = m.spec.targetPorts; break;
    default: throw new Error(`no mutation for ${d.kind}`);
  }
  return m;
}

for (const file of files) {
  test(`${file}: every document parses and validates`, () => {
    const docs = parseManifests(readFileSync(file, "utf8"), file);
    assert.ok(docs.length > 0);
    for (const d of docs) validateManifest(d);
  });

  test(`${file}: a typo'd key or wrong type in any document fails validation`, () => {
    const docs = parseManifests(readFileSync(file, "utf8"), file);
    for (const d of docs) {
      const typo = mutate(d);
      assert.throws(() => validateManifest(typo as never), `${d.kind} ${JSON.stringify((d.metadata as { name: string }).name)} accepted a mutation`);
    }
  });
}

test("companion Deployment: hardened pod, probes and the config file flag", () => {
  const docs = parseManifests(readFileSync("envoy/kubernetes/companion.yaml", "utf8"), "companion");
  const dep = docs.find((d) => d.kind === "Deployment") as never as {
    spec: { replicas: number; template: { spec: { securityContext: Record<string, unknown>; containers: Array<Record<string, never>> } } } };
  assert.equal(dep.spec.replicas, 2);
  const pod = dep.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const c = pod.containers[0] as Record<string, any>;
  assert.equal(c.readinessProbe.httpGet.path, "/readyz");
  assert.equal(c.livenessProbe.httpGet.path, "/healthz");
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
  assert.ok((c.args as string[]).includes("--config-file=/etc/endpoint-picker/config.yaml"));
  const role = docs.find((d) => d.kind === "Role") as never as { rules: Array<{ apiGroups: string[]; verbs: string[] }> };
  for (const r of role.rules) assert.deepEqual(r.verbs, ["get", "list", "watch"]);
  assert.ok(role.rules.some((r) => r.apiGroups.includes("inference.networking.x-k8s.io")));
});

test("WasmPlugin: root id, failStrategy (not in the 2.3.0 model's schema) and contract-3 config keys", () => {
  const [wp] = parseManifests(readFileSync("envoy/istio/wasmplugin.yaml", "utf8"), "wasmplugin") as any[];
  assert.equal(wp.spec.pluginName, "endpoint-picker");
  assert.ok(["FAIL_CLOSE", "FAIL_OPEN"].includes(wp.spec.failStrategy));
  const known = ["companionCluster", "companionAuthority", "snapshotPath", "pollTimeoutMs", "apiToken",
    "destinationHeader", "fallbackHeader", "servedHeader", "failureMode", "stalenessLimitMs", "maxBodyBytes", "fetchSnapshots",
    "objectivePriorities"];
  for (const k of Object.keys(wp.spec.pluginConfig)) assert.ok(known.includes(k), `unknown pluginConfig key ${k}`);
  assert.match(wp.spec.pluginConfig.companionCluster, /^outbound\|9002\|\|endpoint-picker-companion\./);
});
