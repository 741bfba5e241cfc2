import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { parse } from "yaml";
import { parseManifests, validateManifest, WASM_FAIL_STRATEGIES } from "./validate";
import { API_TOKEN_ENV, API_TOKEN_PLACEHOLDER } from "../../companion/cli";

const files = ["envoy/kubernetes", "envoy/istio", "envoy/examples"].flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => `${dir}/${f}`),
);

test("there are manifests to check", () => {
  assert.ok(files.length >= 4, files.join(","));
});

// One wrong-typed or wrong-valued field per kind: the kubernetes-models schemas check types and enums
// but (like the API server with unknown-field pruning) mostly allow unknown keys, so a key typo is only
// caught where the schema is closed (InferencePool, envoy.yaml).
function mutate(d: Record<string, any>): Record<string, any> {
  const m = structuredClone(d);
  switch (d.kind) {
    case "Deployment":
      m.spec.replicas = "two";
      break;
    case "Service":
      m.spec.ports = [{ port: "9002" }];
      break;
    case "ServiceAccount":
      m.automountServiceAccountToken = "yes";
      break;
    case "ConfigMap":
      m.data = { "config.yaml": 1 };
      break;
    case "Secret":
      m.data = { token: 1 };
      break;
    case "Role":
      m.rules = [{ verbs: "get" }];
      break;
    case "RoleBinding":
      m.roleRef = { name: 3 };
      break;
    case "WasmPlugin":
      m.spec.phase = "ROUTER";
      break;
    case "EnvoyFilter":
      m.spec.configPatches[0].applyTo = "CLUSTERS";
      break;
    case "DestinationRule":
      m.spec.host = 5;
      break;
    case "VirtualService":
      m.spec.http[0].timeout = 0;
      break;
    case "Gateway":
      m.spec.servers[0].port.number = "80";
      break;
    case "InferencePool":
      m.spec.targetPort = m.spec.targetPorts;
      break;
    case "EndpointPickerConfig":
      m.plugins[0].type = "queue-scorrer";
      break;
    case "ScaledObject":
      m.spec.triggers[0].metricType = "Averagevalue";
      break;
    default:
      throw new Error(`no mutation for ${d.kind}`);
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
      assert.throws(
        () => validateManifest(typo as never),
        `${d.kind} ${JSON.stringify((d.metadata as { name: string } | undefined)?.name)} accepted a mutation`,
      );
    }
  });
}

test("companion Deployment: hardened pod, probes and the config file flag", () => {
  const docs = parseManifests(readFileSync("envoy/kubernetes/companion.yaml", "utf8"), "companion");
  const dep = docs.find((d) => d.kind === "Deployment") as never as {
    spec: {
      replicas: number;
      template: { spec: { securityContext: Record<string, unknown>; containers: Array<Record<string, never>> } };
    };
  };
  assert.equal(dep.spec.replicas, 2);
  const pod = dep.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const c = pod.containers[0] as Record<string, any>;
  assert.equal(c.readinessProbe.httpGet.path, "/readyz");
  assert.equal(c.livenessProbe.httpGet.path, "/healthz");
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
  assert.ok((c.args as string[]).includes("--config-file=/etc/endpoint-picker/config.yaml"));
  const role = docs.find((d) => d.kind === "Role") as never as {
    rules: Array<{ apiGroups: string[]; verbs: string[] }>;
  };
  for (const r of role.rules) assert.deepEqual(r.verbs, ["get", "list", "watch"]);
  assert.ok(role.rules.some((r) => r.apiGroups.includes("inference.networking.x-k8s.io")));
});

// Point 3: the companion requires the token of a Secret the user creates (not optional: no Secret, no pod),
// and the shipped filter configurations carry a placeholder the companion refuses as its own token.
test("API token: the companion reads the Secret endpoint-picker-api-token; the filter configs carry the placeholder", () => {
  const docs = parseManifests(readFileSync("envoy/kubernetes/companion.yaml", "utf8"), "companion") as any[];
  const c = docs.find((d) => d.kind === "Deployment").spec.template.spec.containers[0];
  const env = c.env.find((e: any) => e.name === API_TOKEN_ENV);
  assert.deepEqual(env.valueFrom.secretKeyRef, { name: "endpoint-picker-api-token", key: "token" });
  assert.notEqual(env.valueFrom.secretKeyRef.optional, true);
  assert.ok(!(c.args as string[]).some((a) => a.startsWith("--api-token")), "the token is not on the command line");
  const [ecds] = parseManifests(readFileSync("envoy/istio/endpoint-picker-ecds.yaml", "utf8"), "ecds") as any[];
  const pc = JSON.parse(ecds.spec.configPatches[0].patch.value.typed_config.config.configuration.value);
  assert.equal(pc.apiToken, API_TOKEN_PLACEHOLDER);
  const [wp] = parseManifests(readFileSync("envoy/istio/wasmplugin.yaml", "utf8"), "wasmplugin") as any[];
  assert.equal(wp.spec.pluginConfig.apiToken, API_TOKEN_PLACEHOLDER);
  // The commands that create the Secret and fill in the placeholder, where the files and the guide say so.
  const create = /kubectl -n default create secret generic endpoint-picker-api-token --from-literal=token=\$TOKEN/;
  const fill =
    /sed "s\/REPLACE-WITH-THE-TOKEN\/\$TOKEN\/" envoy\/istio\/endpoint-picker-ecds\.yaml \| kubectl apply -f -/;
  for (const f of ["envoy/kubernetes/companion.yaml", "envoy/istio/endpoint-picker-ecds.yaml", "docs/DEPLOY.md"]) {
    const text = readFileSync(f, "utf8");
    assert.match(text, create, f);
    assert.match(text, fill, f);
  }
});

// Point 4: the served header shows clients a pod's address; no shipped configuration turns it on.
test("no shipped filter configuration sets servedHeader", () => {
  for (const f of ["envoy/istio/endpoint-picker-ecds.yaml", "envoy/istio/wasmplugin.yaml"]) {
    const text = readFileSync(f, "utf8");
    const configs = (parseManifests(text, f) as any[]).flatMap((d) =>
      d.kind === "WasmPlugin"
        ? [d.spec.pluginConfig]
        : d.kind === "EnvoyFilter"
          ? d.spec.configPatches
              .filter((p: any) => p.applyTo === "EXTENSION_CONFIG")
              .map((p: any) => JSON.parse(p.patch.value.typed_config.config.configuration.value))
          : [],
    );
    assert.ok(configs.length > 0, f);
    for (const c of configs) assert.equal(c.servedHeader, undefined, f);
  }
});

test("WasmPlugin: root id, failStrategy (not in the 2.3.0 model's schema) and contract-3 config keys", () => {
  const [wp] = parseManifests(readFileSync("envoy/istio/wasmplugin.yaml", "utf8"), "wasmplugin") as any[];
  assert.equal(wp.spec.pluginName, "endpoint-picker");
  assert.ok(WASM_FAIL_STRATEGIES.includes(wp.spec.failStrategy));
  const known = [
    "companionCluster",
    "companionAuthority",
    "snapshotPath",
    "pollTimeoutMs",
    "apiToken",
    "destinationHeader",
    "fallbackHeader",
    "servedHeader",
    "failureMode",
    "stalenessLimitMs",
    "maxBodyBytes",
    "fetchSnapshots",
    "maxSnapshotBytes",
    "shareWithGateways",
    "gatewayReportPath",
    "objectiveHeader",
    "outlierDetection",
    "objectivePriorities",
  ];
  for (const k of Object.keys(wp.spec.pluginConfig)) assert.ok(known.includes(k), `unknown pluginConfig key ${k}`);
  assert.match(wp.spec.pluginConfig.companionCluster, /^outbound\|9002\|\|endpoint-picker-companion\./);
  // FAIL_RELOAD is a valid istio/api FailStrategy; a made-up one is not.
  for (const fs of WASM_FAIL_STRATEGIES) validateManifest({ ...wp, spec: { ...wp.spec, failStrategy: fs } });
  assert.throws(
    () => validateManifest({ ...wp, spec: { ...wp.spec, failStrategy: "FAIL_SOMETIMES" } }),
    /failStrategy/,
  );
});

// istio/api PluginPhase: AUTHZ inserts the plugin BEFORE Istio's authorization filters; STATS is the first
// phase after them (and before the router).
test("WasmPlugin: phase STATS, picks only for authorized requests", () => {
  const [wp] = parseManifests(readFileSync("envoy/istio/wasmplugin.yaml", "utf8"), "wasmplugin") as any[];
  assert.equal(wp.spec.phase, "STATS");
  assert.doesNotMatch(readFileSync("envoy/istio/wasmplugin.yaml", "utf8"), /AUTHZ runs after/);
});

// The filter's default is 262144 (filter/config.ts); 16 KiB cut OpenAI requests whose messages precede model.
test("WasmPlugin: maxBodyBytes at the filter's default", () => {
  const [wp] = parseManifests(readFileSync("envoy/istio/wasmplugin.yaml", "utf8"), "wasmplugin") as any[];
  const def = Number(/maxBodyBytes: u32 = (\d+)/.exec(readFileSync("filter/config.ts", "utf8"))![1]);
  assert.equal(def, 262144);
  assert.equal(wp.spec.pluginConfig.maxBodyBytes ?? def, def);
});

test("WasmPlugin file: comes with the header-stripping EnvoyFilter, and claims no per-plugin vm_id", () => {
  const text = readFileSync("envoy/istio/wasmplugin.yaml", "utf8");
  const docs = parseManifests(text, "wasmplugin") as any[];
  const [wp, ef] = docs;
  assert.equal(ef.kind, "EnvoyFilter");
  assert.deepEqual(ef.spec.workloadSelector.labels, wp.spec.selector.matchLabels);
  const [p] = ef.spec.configPatches;
  assert.equal(p.patch.operation, "INSERT_FIRST");
  assert.ok(p.match.listener.portNumber > 0);
  assert.deepEqual(
    p.patch.value.typed_config.mutations.request_mutations.map((m: any) => m.remove),
    ["x-gateway-destination-endpoint", "x-gateway-destination-endpoint-fallback"],
  );
  assert.doesNotMatch(text, /Istio builds the vm_id|derives? (the )?vm_id/i);
});

// Point 6: the example must ship everything the routes need, and say how to get the gated model.
test("example pool: ships the Service the VirtualService routes to, and the gated model's HF token", () => {
  const ex = parseManifests(readFileSync("envoy/examples/vllm-pool.yaml", "utf8"), "example") as any[];
  const svc = ex.find((d) => d.kind === "Service");
  const dep = ex.find((d) => d.kind === "Deployment");
  const pool = ex.find((d) => d.kind === "InferencePool");
  assert.ok(svc, "the example must ship the model Service");
  assert.deepEqual(svc.spec.selector, pool.spec.selector.matchLabels);
  assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
  assert.deepEqual(
    svc.spec.ports.map((p: any) => p.targetPort),
    pool.spec.targetPorts.map((p: any) => p.number),
  );
  const vs = parseManifests(readFileSync("envoy/istio/override-host.yaml", "utf8"), "override-host").find(
    (d: any) => d.kind === "VirtualService",
  ) as any;
  for (const r of vs.spec.http) {
    assert.equal(r.route[0].destination.host, `${svc.metadata.name}.default.svc.cluster.local`);
    assert.ok(svc.spec.ports.some((p: any) => p.port === r.route[0].destination.port.number));
  }
  const c = dep.spec.template.spec.containers[0];
  if ((c.args as string[]).some((a) => a.startsWith("meta-llama/"))) {
    const tok = c.env?.find((e: any) => e.name === "HF_TOKEN" || e.name === "HUGGING_FACE_HUB_TOKEN");
    assert.deepEqual(tok?.valueFrom?.secretKeyRef, { name: "hf-token", key: "token" });
  }
  // The chart path applies only the model servers (the chart renders its own InferencePool).
  assert.deepEqual(
    ex
      .filter((d) => d.metadata.labels?.example === "model-servers")
      .map((d) => d.kind)
      .sort(),
    ["Deployment", "Service"],
  );
});

test("Gateway: the one the VirtualService binds to, on the pods the EnvoyFilters patch", () => {
  const [gw] = parseManifests(readFileSync("envoy/istio/gateway.yaml", "utf8"), "gateway") as any[];
  const ref = `${gw.metadata.namespace}/${gw.metadata.name}`;
  const vs = parseManifests(readFileSync("envoy/istio/override-host.yaml", "utf8"), "override-host").find(
    (d: any) => d.kind === "VirtualService",
  ) as any;
  assert.deepEqual(vs.spec.gateways, [ref]);
  const chart = parse(readFileSync("envoy/chart/values.yaml", "utf8"));
  assert.equal(chart.istio.gateway, ref);
  for (const f of [
    "envoy/istio/endpoint-picker-ecds.yaml",
    "envoy/istio/override-host.yaml",
    "envoy/istio/wasmplugin.yaml",
  ]) {
    for (const d of parseManifests(readFileSync(f, "utf8"), f) as any[]) {
      if (d.kind !== "EnvoyFilter") continue;
      assert.equal(d.metadata.namespace, gw.metadata.namespace, f);
      assert.deepEqual(d.spec.workloadSelector.labels, gw.spec.selector, f);
    }
  }
  assert.ok(gw.spec.servers.some((s: any) => s.port.protocol === "HTTP"));
});
