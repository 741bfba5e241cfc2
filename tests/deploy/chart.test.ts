import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { parse } from "yaml";
import { renderChart, renderTemplate, setValue, type RenderOptions } from "./helm-subset";
import { parseManifests, validateManifest } from "./validate";
import { assertOverrideHostPolicy, assertRetries } from "./routing-checks";
import { API_TOKEN_ENV } from "../../companion/cli";
import { codeBlocks, referenceExcerpt } from "../helpers/reference-doc";
import { Ajv } from "ajv";

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(JSON.parse(readFileSync("tests/deploy/fixtures/envoy-bootstrap-subset.schema.json", "utf8")));
const wasmSchema = ajv.getSchema("envoy-subset#/$defs/wasmFilter")!;
const clusterSchema = ajv.getSchema("envoy-subset#/$defs/cluster")!;
const clusterMergeSchema = ajv.getSchema("envoy-subset#/$defs/clusterMerge")!;
const headerMutationSchema = ajv.getSchema("envoy-subset#/$defs/headerMutationFilter")!;

const dir = "envoy/chart/templates";
// Helm renders every file of templates/; _helpers.tpl only defines named templates.
const templates = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml") || f.endsWith(".tpl"))
  .sort()
  .map((f) => ({ name: f, src: readFileSync(`${dir}/${f}`, "utf8") }));
const baseValues = () => parse(readFileSync("envoy/chart/values.yaml", "utf8"));

function render(
  sets: string[],
  flags: unknown[] = [],
  release = { Name: "llm", Namespace: "models" },
  edit: (values: any) => void = () => {},
  opts: RenderOptions = {},
) {
  const values = baseValues();
  for (const s of sets) setValue(values, s);
  values.inferenceExtension.flags = flags;
  edit(values);
  const docs = renderChart(templates, values, release, opts).flatMap((f) => parseManifests(f.src, f.name));
  for (const d of docs as any[]) {
    validateManifest(d);
    // EnvoyFilter patch values are raw Envoy config: check them against the Envoy subset schema too.
    for (const p of d.kind === "EnvoyFilter" ? d.spec.configPatches : []) {
      const typed = p.patch.value.typed_config;
      const v =
        p.applyTo === "EXTENSION_CONFIG"
          ? wasmSchema
          : p.applyTo === "CLUSTER"
            ? p.patch.operation === "MERGE"
              ? clusterMergeSchema
              : clusterSchema
            : p.applyTo === "HTTP_FILTER" && typed
              ? headerMutationSchema
              : undefined;
      const x = p.applyTo === "EXTENSION_CONFIG" || p.applyTo === "HTTP_FILTER" ? typed : p.patch.value;
      if (v && !v(x)) throw new Error(`${d.metadata.name}: ${ajv.errorsText(v.errors)}`);
    }
  }
  return docs as any[];
}
const args = (docs: any[]) =>
  docs.find((d) => d.kind === "Deployment").spec.template.spec.containers[0].args as string[];
const patches = (docs: any[], applyTo: string) =>
  docs
    .filter((d) => d.kind === "EnvoyFilter")
    .flatMap((d) => d.spec.configPatches)
    .filter((p: any) => p.applyTo === applyTo);

// The flags blocks of the reference document (supported-model-servers.md, "Triton with TensorRT-LLM
// Backend" and "SGLang"; excerpt in tests/fixtures/), copied verbatim, comment included. Parsed as YAML they
// are lists of plain scalars: each two-line entry folds into ONE string "name=X value=\"Y\"", not a
// {name, value} map.
const REFERENCE_TRITON_FLAGS = `- name=total-queued-requests-metric
  value="nv_trt_llm_request_metrics{request_type=waiting}"
- name=kv-cache-usage-percentage-metric
  value="nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}"
- name=lora-info-metric
  value="" # Set an empty metric to disable LoRA metric scraping as they are not supported by Triton yet.
`;
const REFERENCE_SGLANG_FLAGS = `- name=total-queued-requests-metric
  value="sglang:num_queue_reqs"
- name=kv-cache-usage-percentage-metric
  value="sglang:token_usage"
- name=lora-info-metric
  value="" # Set an empty metric to disable LoRA metric scraping as they are not supported by SGLang yet.
`;
/** The reference block pasted under inferenceExtension.flags of a values file, as a user would. */
const pastedUnderFlags = (block: string) =>
  parse(
    `inferencePool:\n  modelServerType: x\ninferenceExtension:\n  flags:\n${block
      .split("\n")
      .map((l) => (l ? "    " + l : l))
      .join("\n")}`,
  ).inferenceExtension.flags as unknown[];

// The same flags as {name, value} maps (the form GIE's chart documents).
const triton = [
  { name: "total-queued-requests-metric", value: "nv_trt_llm_request_metrics{request_type=waiting}" },
  {
    name: "kv-cache-usage-percentage-metric",
    value: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}",
  },
  { name: "lora-info-metric", value: "" },
];
const sglang = [
  { name: "total-queued-requests-metric", value: "sglang:num_queue_reqs" },
  { name: "kv-cache-usage-percentage-metric", value: "sglang:token_usage" },
  { name: "lora-info-metric", value: "" },
];

test("chart renders valid manifests for vllm (defaults)", () => {
  const docs = render([]);
  assert.deepEqual(docs.map((d) => d.kind).sort(), [
    "ConfigMap",
    "Deployment",
    "DestinationRule",
    "EnvoyFilter",
    "EnvoyFilter",
    "InferencePool",
    "Role",
    "RoleBinding",
    "Secret",
    "Service",
    "Service",
    "Service",
    "ServiceAccount",
    "VirtualService",
  ]);
  // The companion replicas find each other through a headless Service (docs/GATEWAYS.md).
  const peers = docs.find((d) => d.kind === "Service" && d.spec.clusterIP === "None");
  assert.equal(peers.metadata.name, "llm-epp-peers");
  assert.equal(peers.spec.publishNotReadyAddresses, true);
  assert.ok(args(docs).includes("--peers-dns=llm-epp-peers.models.svc:9002"));
  const ecds = docs.find((d) => d.kind === "EnvoyFilter" && d.spec.configPatches[0].applyTo === "EXTENSION_CONFIG");
  const pc = JSON.parse(ecds.spec.configPatches[0].patch.value.typed_config.config.configuration.value);
  assert.equal(pc.companionCluster, "outbound|9002||llm-epp.models.svc.cluster.local");
  assert.equal(pc.failureMode, "FailClose");
  assert.ok(args(docs).includes("--model-server-type=vllm"));
  assert.ok(args(docs).includes("--config-file=/etc/endpoint-picker/default-plugins.yaml"));
  const cm = docs.find((d) => d.kind === "ConfigMap");
  assert.deepEqual(Object.keys(cm.data), ["default-plugins.yaml"]);
  assert.equal(parse(cm.data["default-plugins.yaml"]).kind, "EndpointPickerConfig");
  const pool = docs.find((d) => d.kind === "InferencePool");
  assert.deepEqual(pool.spec.targetPorts, [{ number: 8000 }]);
  assert.equal(pool.spec.endpointPickerRef.name, "llm-epp");
  const wp = render(["wasmPlugin.enabled=true", "istio.ecds=false"]).find((d) => d.kind === "WasmPlugin");
  assert.equal(wp.spec.pluginConfig.companionCluster, "outbound|9002||llm-epp.models.svc.cluster.local");
});

// Point 1: the pool Service's gateway cluster gets the override_host policy, and the VirtualService has one
// route to that Service (FailOpen requests, without the header, take the policy's least-request fallback).
test("chart: override_host on the routed Service's cluster, one route with retries and no timeout", () => {
  const docs = render([]);
  const vs = docs.find((d) => d.kind === "VirtualService");
  assert.deepEqual(vs.spec.gateways, ["istio-ingress/inference-gateway"]);
  assert.equal(vs.spec.http.length, 1);
  const [r] = vs.spec.http;
  assert.equal(r.name, "llm-inference-pool");
  assert.deepEqual(r.match, [{ uri: { prefix: "/v1/" } }]);
  assert.equal(r.timeout, undefined, "Istio's CRD refuses timeout: 0s; without one Istio sets no route timeout");
  assertRetries(r.retries);
  const dest = r.route[0].destination;
  assert.deepEqual(dest, { host: "llm-fallback.models.svc.cluster.local", port: { number: 8000 } });
  const ef = docs.find((d) => d.kind === "EnvoyFilter" && d.metadata.name === "llm-override-host");
  assert.equal(ef.metadata.namespace, "istio-ingress");
  assert.deepEqual(
    ef.spec.configPatches.map((p: any) => [p.applyTo, p.patch.operation]),
    [["CLUSTER", "MERGE"]],
  );
  const [p] = ef.spec.configPatches;
  assert.deepEqual(p.match, { context: "GATEWAY", cluster: { service: dest.host, portNumber: dest.port.number } });
  assertOverrideHostPolicy(p.patch.value);
  assert.equal(patches(docs, "HTTP_ROUTE").length, 0);
  assert.doesNotMatch(JSON.stringify(docs), /ORIGINAL_DST|original_dst_lb_config/);
  // Default destination: the chart's own Service over the pool's pods.
  const svc = docs.find((d) => d.kind === "Service" && d.metadata.name === "llm-fallback");
  assert.deepEqual(svc.spec.selector, { app: "vllm-llama3-8b-instruct" });
  // An existing Service instead: no Service rendered, the route and the patch both name it.
  const own = render(["istio.fallback.service=vllm.default.svc.cluster.local", "istio.fallback.port=80"]);
  assert.ok(!own.some((d) => d.metadata.name === "llm-fallback"));
  assert.deepEqual(own.find((d) => d.kind === "VirtualService").spec.http[0].route[0].destination, {
    host: "vllm.default.svc.cluster.local",
    port: { number: 80 },
  });
  assert.deepEqual(patches(own, "CLUSTER")[0].match.cluster, {
    service: "vllm.default.svc.cluster.local",
    portNumber: 80,
  });
  assert.ok(
    !render(["istio.virtualService=false"]).some(
      (d) => d.kind === "VirtualService" || d.metadata.name === "llm-fallback",
    ),
  );
});

// The old value name keeps working: set, it decides (true or false) and renders the override_host form.
test("chart: istio.originalDst, deprecated, is an alias of istio.overrideHost", () => {
  const names = (docs: any[]) =>
    docs
      .filter((d) => d.kind === "EnvoyFilter")
      .map((d) => d.metadata.name)
      .sort();
  assert.deepEqual(names(render([])), ["llm-endpoint-picker", "llm-override-host"]);
  assert.deepEqual(names(render(["istio.originalDst=true"])), ["llm-endpoint-picker", "llm-override-host"]);
  assert.deepEqual(names(render(["istio.overrideHost=false", "istio.originalDst=true"])), [
    "llm-endpoint-picker",
    "llm-override-host",
  ]);
  assert.deepEqual(names(render(["istio.originalDst=false"])), ["llm-endpoint-picker"]);
  assert.deepEqual(names(render(["istio.overrideHost=false"])), ["llm-endpoint-picker"]);
  const values = readFileSync("envoy/chart/values.yaml", "utf8");
  assert.match(values, /Deprecated alias: originalDst/);
  assert.equal(parse(values).istio.originalDst, undefined, "the alias is not set by default");
});

// Point 2: one timed-out long poll (a 504 to Envoy's outlier detection) ejects a hung companion replica.
test("chart: the companion's DestinationRule: round robin, outlier ejection after one gateway error", () => {
  const docs = render([]);
  const dr = docs.find((d) => d.kind === "DestinationRule");
  assert.equal(dr.metadata.namespace, "models");
  assert.equal(dr.spec.host, "llm-epp.models.svc.cluster.local");
  const ecds = patches(docs, "EXTENSION_CONFIG")[0].patch.value;
  const pc = JSON.parse(ecds.typed_config.config.configuration.value);
  assert.equal(pc.companionCluster, `outbound|9002||${dr.spec.host}`);
  assert.deepEqual(dr.spec.trafficPolicy.loadBalancer, { simple: "ROUND_ROBIN" });
  assert.deepEqual(dr.spec.trafficPolicy.outlierDetection, {
    consecutiveGatewayErrors: 1,
    interval: "1s",
    baseEjectionTime: "5s",
    maxEjectionPercent: 50,
  });
  assert.ok(!render(["istio.companionDestinationRule=false"]).some((d) => d.kind === "DestinationRule"));
});

const filterConfigs = (docs: any[]) => [
  ...patches(docs, "EXTENSION_CONFIG").map((p: any) =>
    JSON.parse(p.patch.value.typed_config.config.configuration.value),
  ),
  ...docs.filter((d) => d.kind === "WasmPlugin").map((d) => d.spec.pluginConfig),
];
const tokenEnv = (docs: any[]) =>
  docs
    .find((d) => d.kind === "Deployment")
    .spec.template.spec.containers[0].env?.find((e: any) => e.name === API_TOKEN_ENV);
const secretToken = (docs: any[]) => {
  const secret = docs.find((d) => d.kind === "Secret");
  return secret && Buffer.from(secret.data.token, "base64").toString("utf8");
};

// Point 3: a token by default, the same in the Secret the companion reads and in the filter configuration.
test("chart: API token generated into RELEASE-epp-token, read by the companion, written into the filter config", () => {
  for (const sets of [[], ["wasmPlugin.enabled=true", "istio.ecds=false"]]) {
    const docs = render(sets);
    const token = secretToken(docs);
    assert.match(token, /^[A-Za-z0-9]{48}$/);
    assert.equal(docs.find((d) => d.kind === "Secret").metadata.name, "llm-epp-token");
    assert.deepEqual(tokenEnv(docs).valueFrom.secretKeyRef, { name: "llm-epp-token", key: "token" });
    const configs = filterConfigs(docs);
    assert.equal(configs.length, 1);
    assert.equal(configs[0].apiToken, token);
    const annotations = docs.find((d) => d.kind === "Deployment").spec.template.metadata.annotations;
    assert.match(annotations["checksum/api-token"], /^[0-9a-f]{64}$/);
  }
  // Each install without a Secret yet gets its own token.
  assert.notEqual(secretToken(render([])), secretToken(render([])));
});

test("chart: API token kept on upgrade (lookup finds RELEASE-epp-token)", () => {
  const asked: string[] = [];
  const lookup = (apiVersion: string, kind: string, ns: string, name: string) => {
    asked.push(`${apiVersion}/${kind} ${ns}/${name}`);
    return name === "llm-epp-token" ? { data: { token: Buffer.from("kept-token").toString("base64") } } : undefined;
  };
  const docs = render([], [], undefined, undefined, { lookup });
  assert.deepEqual([...new Set(asked)], ["v1/Secret models/llm-epp-token"]);
  assert.equal(secretToken(docs), "kept-token");
  assert.equal(filterConfigs(docs)[0].apiToken, "kept-token");
});

test("chart: inferenceExtension.apiToken.existingSecret, and enabled=false", () => {
  const lookup = (_v: string, _k: string, ns: string, name: string) =>
    ns === "models" && name === "my-token" ? { data: { key1: Buffer.from('t"ok\\en').toString("base64") } } : undefined;
  const sets = [
    "inferenceExtension.apiToken.existingSecret=my-token",
    "inferenceExtension.apiToken.existingSecretKey=key1",
  ];
  const own = render(sets, [], undefined, undefined, { lookup });
  assert.ok(!own.some((d) => d.kind === "Secret"), "no Secret of the chart's own");
  assert.deepEqual(tokenEnv(own).valueFrom.secretKeyRef, { name: "my-token", key: "key1" });
  assert.equal(filterConfigs(own)[0].apiToken, 't"ok\\en', "JSON-escaped in the filter configuration");
  // Not in the cluster (or helm template): the install fails with a message, never with an empty token.
  assert.throws(
    () => render(sets),
    /fail: inferenceExtension\.apiToken\.existingSecret: no key key1 in a Secret my-token/,
  );

  for (const extra of [[], ["wasmPlugin.enabled=true", "istio.ecds=false"]]) {
    const off = render(["inferenceExtension.apiToken.enabled=false", ...extra]);
    assert.ok(!off.some((d) => d.kind === "Secret"));
    assert.equal(tokenEnv(off), undefined);
    assert.equal(filterConfigs(off)[0].apiToken, undefined);
    assert.equal(off.find((d) => d.kind === "Deployment").spec.template.metadata.annotations, undefined);
  }
});

// Points 2 and 4: no shipped override of the filter's failover defaults; no served header unless asked for.
test("chart: filter configuration keeps pollTimeoutMs, stalenessLimitMs and servedHeader at the filter's defaults", () => {
  for (const docs of [render([]), render(["wasmPlugin.enabled=true", "istio.ecds=false"])]) {
    const [c] = filterConfigs(docs);
    assert.deepEqual(Object.keys(c).sort(), ["apiToken", "companionAuthority", "companionCluster", "failureMode"]);
  }
  for (const docs of [
    render(["wasmPlugin.servedHeader=x-gateway-destination-endpoint-served"]),
    render([
      "wasmPlugin.enabled=true",
      "istio.ecds=false",
      "wasmPlugin.servedHeader=x-gateway-destination-endpoint-served",
    ]),
  ])
    assert.equal(filterConfigs(docs)[0].servedHeader, "x-gateway-destination-endpoint-served");
});

// Point 3: without listener.portNumber the picker lands on every listener of the gateway.
test("chart: every HTTP_FILTER patch is scoped to istio.listenerPort; header stripping goes first", () => {
  for (const [sets, port] of [
    [[], 8080],
    [["istio.listenerPort=80"], 80],
  ] as const) {
    for (const docs of [render([...sets]), render([...sets, "wasmPlugin.enabled=true", "istio.ecds=false"])]) {
      const filters = patches(docs, "HTTP_FILTER");
      assert.ok(filters.length > 0);
      for (const p of filters) assert.equal(p.match.listener.portNumber, port);
      const strip = filters.find((p: any) => p.patch.value.name === "envoy.filters.http.header_mutation");
      assert.equal(strip.patch.operation, "INSERT_FIRST");
    }
  }
});

// Point 4: shared data is keyed by vm_id; two releases on one gateway must not share one.
test("chart: vm_id and ECDS name per release, never a WasmPlugin-style NAMESPACE.NAME", () => {
  const ext = (docs: any[]) => patches(docs, "EXTENSION_CONFIG")[0].patch.value;
  const a = ext(render([], [], { Name: "pool-a", Namespace: "models" }));
  const b = ext(render([], [], { Name: "pool-b", Namespace: "models" }));
  assert.notEqual(a.typed_config.config.vm_config.vm_id, b.typed_config.config.vm_config.vm_id);
  assert.equal(a.typed_config.config.vm_config.vm_id, "pool-a-endpoint-picker");
  assert.notEqual(a.name, b.name);
  assert.ok(!a.name.includes("."), a.name);
  const docs = render([], [], { Name: "pool-a", Namespace: "models" });
  const picker = patches(docs, "HTTP_FILTER").find((p: any) => p.patch.value.config_discovery);
  assert.equal(picker.patch.value.name, a.name);
  assert.equal(picker.patch.operation, "INSERT_BEFORE");
});

test("chart: WasmPlugin form: phase STATS (after authorization), FAIL_RELOAD accepted, headers stripped", () => {
  const docs = render(["wasmPlugin.enabled=true", "istio.ecds=false", "wasmPlugin.failStrategy=FAIL_RELOAD"]);
  const wp = docs.find((d) => d.kind === "WasmPlugin");
  assert.equal(wp.spec.phase, "STATS");
  assert.equal(wp.spec.failStrategy, "FAIL_RELOAD");
  assert.equal(wp.spec.pluginConfig.maxBodyBytes ?? 262144, 262144);
  assert.ok(patches(docs, "HTTP_FILTER").some((p: any) => p.patch.value.name === "envoy.filters.http.header_mutation"));
});

test("chart: GIE's pluginsConfigFile and pluginsCustomConfig", () => {
  const custom = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins: []\n";
  const docs = render(["inferenceExtension.pluginsConfigFile=custom-plugins.yaml"], [], undefined, (v) => {
    v.inferenceExtension.pluginsCustomConfig = { "custom-plugins.yaml": custom };
  });
  assert.ok(args(docs).includes("--config-file=/etc/endpoint-picker/custom-plugins.yaml"));
  const cm = docs.find((d) => d.kind === "ConfigMap");
  assert.deepEqual(Object.keys(cm.data).sort(), ["custom-plugins.yaml", "default-plugins.yaml"]);
  assert.equal(cm.data["custom-plugins.yaml"], custom);
});

const TRITON_ARGS = [
  "--total-queued-requests-metric=nv_trt_llm_request_metrics{request_type=waiting}",
  "--kv-cache-usage-percentage-metric=nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}",
  "--lora-info-metric=",
];
const SGLANG_ARGS = [
  "--total-queued-requests-metric=sglang:num_queue_reqs",
  "--kv-cache-usage-percentage-metric=sglang:token_usage",
  "--lora-info-metric=",
];
const flagArgs = (docs: any[]) => args(docs).filter((a) => /^--(total-queued|kv-cache|lora-info)/.test(a));

// Point 9: the reference document's flags blocks, exactly as written, are strings after YAML parsing.
test("chart: the reference document's Triton and SGLang flags blocks, verbatim", () => {
  const parsed = parse(REFERENCE_TRITON_FLAGS);
  assert.deepEqual(parsed, [
    'name=total-queued-requests-metric value="nv_trt_llm_request_metrics{request_type=waiting}"',
    'name=kv-cache-usage-percentage-metric value="nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}"',
    'name=lora-info-metric value=""',
  ]);
  for (const flags of [parsed, pastedUnderFlags(REFERENCE_TRITON_FLAGS)]) {
    const docs = render(["inferencePool.modelServerType=triton-tensorrt-llm"], flags);
    assert.ok(args(docs).includes("--model-server-type=triton-tensorrt-llm"));
    assert.deepEqual(flagArgs(docs), TRITON_ARGS);
  }
  for (const flags of [parse(REFERENCE_SGLANG_FLAGS), pastedUnderFlags(REFERENCE_SGLANG_FLAGS)]) {
    assert.deepEqual(flagArgs(render(["inferencePool.modelServerType=sglang"], flags)), SGLANG_ARGS);
  }
});

// The excerpt is compared with the live ../shared copy in tests/companion/reference-config.test.ts.
test("chart: the blocks in this test are the reference document's, character for character", () => {
  // The excerpt's level-2 sections by heading line.
  const sections = new Map(
    referenceExcerpt()
      .split(/^(?=## )/m)
      .map((s) => [s.slice(0, s.indexOf("\n")), s]),
  );
  assert.deepEqual(codeBlocks(sections.get("## Triton with TensorRT-LLM Backend") ?? ""), [REFERENCE_TRITON_FLAGS]);
  assert.deepEqual(codeBlocks(sections.get("## SGLang") ?? ""), [REFERENCE_SGLANG_FLAGS]);
});

test("chart: {name, value} map flags, numbers with %v, and a malformed entry fails the install", () => {
  assert.deepEqual(flagArgs(render(["inferencePool.modelServerType=triton-tensorrt-llm"], triton)), TRITON_ARGS);
  assert.deepEqual(flagArgs(render(["inferencePool.modelServerType=sglang"], sglang)), SGLANG_ARGS);
  const a = args(render([], [{ name: "v", value: 1 }, { name: "x", value: 0.5 }, "name=y value=unquoted"]));
  assert.ok(a.includes("--v=1") && a.includes("--x=0.5") && a.includes("--y=unquoted"), a.join(" "));
  assert.throws(
    () => render([], ["total-queued-requests-metric=sglang:num_queue_reqs"]),
    /fail: inferenceExtension.flags/,
  );
});

test("chart: optional InferencePool and WasmPlugin, replicas as a number", () => {
  const docs = render([
    "inferencePool.create=false",
    "istio.ecds=false",
    "istio.overrideHost=false",
    "inferenceExtension.replicas=3",
  ]);
  assert.ok(!docs.some((d) => d.kind === "InferencePool" || d.kind === "WasmPlugin" || d.kind === "EnvoyFilter"));
  assert.equal(docs.find((d) => d.kind === "Deployment").spec.replicas, 3);
});

test("chart: a wrong-typed value fails validation of the rendered manifest", () => {
  assert.throws(() => render(["inferenceExtension.replicas=three"]));
  assert.throws(() => render(["istio.failurePolicy=FAIL_CLOSE"]), /failure_policy|allowed values/);
  assert.throws(() => render(["wasmPlugin.enabled=true", "wasmPlugin.failStrategy=FAIL_SOMETIMES"]), /failStrategy/);
});

test("renderer rejects template features it does not implement", () => {
  assert.throws(() => renderTemplate('{{ tpl "x" . }}', {}), /unsupported function tpl/);
  assert.throws(() => renderTemplate("{{ with .Values.a }}x{{ end }}", { a: 1 }), /unsupported action/);
  assert.throws(() => renderTemplate('{{ include "x" . }}', {}), /no template "x"/);
  assert.throws(() => renderTemplate("{{ if .Values.a }}x", { a: 1 }), /missing/);
  assert.throws(() => renderTemplate('{{ regexMatch "(?=a)" "a" }}', {}), /RE2/);
  assert.throws(() => renderTemplate("{{ $x = 1 }}", {}), /undefined variable \$x/);
  assert.throws(() => renderTemplate("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}", {}), /undefined variable \$x/);
  assert.throws(() => renderTemplate("{{ .Values.a.b }}", {}), /nil pointer evaluating \.b/);
});

test("renderer: define/include, variables, sub-pipelines and the functions of the token template", () => {
  const r = (t: string, v: unknown = {}, opts: RenderOptions = {}) => renderTemplate(t, v, undefined, opts);
  const chart = renderChart(
    [
      { name: "_helpers.tpl", src: '{{- define "greet" -}}hi {{ .name }}{{- end -}}' },
      { name: "a.yaml", src: '{{ include "greet" (dict "name" "a") | quote }}' },
    ],
    {},
  );
  assert.deepEqual(chart, [{ name: "a.yaml", src: '"hi a"' }], "_ files render nothing");
  // A variable assigned in an if is seen after it; one declared in it is not.
  assert.equal(r("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}"), "2");
  assert.equal(r("{{ if false }}a{{ else if .Values.b }}b{{ else }}c{{ end }}", { b: 1 }), "b");
  assert.equal(r('{{ $m := dict "b" "<&>" "a" 1 }}{{ toJson $m }}'), '{"a":1,"b":"\\u003c\\u0026\\u003e"}');
  assert.equal(r('{{ $m := dict }}{{ $_ := set $m "k" "v" }}{{ hasKey $m "k" }} {{ index $m "k" }}'), "true v");
  assert.equal(r('{{ "tok" | b64enc }} {{ "dG9r" | b64dec }}'), "dG9r tok");
  assert.match(r("{{ randAlphaNum 48 }}"), /^[A-Za-z0-9]{48}$/);
  assert.equal(r('{{ "a" | sha256sum }}'), "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
  assert.equal(r('{{ and 1 "" }}|{{ or 0 "x" }}|{{ eq .Values.a "b" }}|{{ ne 1 2 }}', { a: "b" }), "|x|true|true");
  // lookup: an empty map when the object does not exist (helm template), else what the cluster holds.
  assert.equal(r('{{ $s := lookup "v1" "Secret" "ns" "n" }}{{ if $s }}found{{ else }}none{{ end }}'), "none");
  const found = r(
    '{{ $s := lookup "v1" "Secret" "ns" "n" }}{{ $s.data.k }}',
    {},
    { lookup: () => ({ data: { k: "v" } }) },
  );
  assert.equal(found, "v");
  // .Values is shared by all files: a value set by one is seen by the next.
  const shared = renderChart(
    [
      { name: "a.yaml", src: '{{ $_ := set .Values "memo" "m" }}' },
      { name: "b.yaml", src: "{{ .Values.memo }}" },
    ],
    {},
  );
  assert.equal(shared[1].src, "m");
});

test("renderer: sprig functions the chart uses behave as in Helm", () => {
  const r = (t: string, v: unknown = {}) => renderTemplate(t, v);
  assert.equal(
    r('{{ kindIs "map" .Values.m }} {{ kindIs "map" .Values.s }} {{ kindIs "string" .Values.s }}', {
      m: { a: 1 },
      s: "x",
    }),
    "true false true",
  );
  assert.equal(r('{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}'), "-W-xxW-");
  assert.equal(r('{{ regexReplaceAll "(a)" "a" "$$1" }}'), "$1");
  assert.equal(
    r('{{ regexMatch "^a+$" "aaa" }} {{ not .Values.e }} {{ if .Values.e }}y{{ else }}n{{ end }}', { e: {} }),
    "true true n",
  );
  assert.throws(() => r('{{ fail "boom" }}'), /fail: boom/);
});

test("ECDS config_discovery lists the RBAC type istio-agent substitutes when the module cannot be fetched", () => {
  const shipped = parseManifests(readFileSync("envoy/istio/endpoint-picker-ecds.yaml", "utf8"), "ecds") as any[];
  for (const [where, docs] of [
    ["envoy/istio/endpoint-picker-ecds.yaml", shipped],
    ["chart", render([])],
  ] as const) {
    const discovery = (docs as any[])
      .filter((d) => d.kind === "EnvoyFilter")
      .flatMap((d) => d.spec.configPatches)
      .map((p: any) => p.patch.value.config_discovery)
      .filter(Boolean);
    assert.equal(discovery.length, 1, where);
    // Without it Envoy rejects istio-agent's deny-all (FAIL_CLOSED) or allow-all (FAIL_OPEN) stand-in.
    assert.deepEqual(
      discovery[0].type_urls,
      [
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
      ],
      where,
    );
  }
});
