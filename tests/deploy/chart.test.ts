import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { parse } from "yaml";
import { renderTemplate, setValue } from "./helm-subset";
import { parseManifests, validateManifest } from "./validate";
import { codeBlocks, referenceExcerpt } from "../helpers/reference-doc";
import { Ajv } from "ajv";

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(JSON.parse(readFileSync("tests/deploy/fixtures/envoy-bootstrap-subset.schema.json", "utf8")));
const wasmSchema = ajv.getSchema("envoy-subset#/$defs/wasmFilter")!;
const clusterSchema = ajv.getSchema("envoy-subset#/$defs/cluster")!;
const headerMutationSchema = ajv.getSchema("envoy-subset#/$defs/headerMutationFilter")!;

const dir = "envoy/chart/templates";
const templates = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => readFileSync(`${dir}/${f}`, "utf8"));
const baseValues = () => parse(readFileSync("envoy/chart/values.yaml", "utf8"));

function render(
  sets: string[],
  flags: unknown[] = [],
  release = { Name: "llm", Namespace: "models" },
  edit: (values: any) => void = () => {},
) {
  const values = baseValues();
  for (const s of sets) setValue(values, s);
  values.inferenceExtension.flags = flags;
  edit(values);
  const docs = templates.flatMap((t) => parseManifests(renderTemplate(t, values, release), "chart"));
  for (const d of docs as any[]) {
    validateManifest(d);
    // EnvoyFilter patch values are raw Envoy config: check them against the Envoy subset schema too.
    for (const p of d.kind === "EnvoyFilter" ? d.spec.configPatches : []) {
      const typed = p.patch.value.typed_config;
      const v =
        p.applyTo === "EXTENSION_CONFIG"
          ? wasmSchema
          : p.applyTo === "CLUSTER"
            ? clusterSchema
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
    "EnvoyFilter",
    "EnvoyFilter",
    "InferencePool",
    "Role",
    "RoleBinding",
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

// Point 1/5: the chart's HTTP_ROUTE patch must name a route that exists, that route must only take requests
// that carry the picker's header (ORIGINAL_DST without it has no host: 503), and a second route without a
// header match must take FailOpen requests to a real Service.
test("chart: VirtualService with the header route the HTTP_ROUTE patch names, then the FailOpen route", () => {
  const docs = render([]);
  const vs = docs.find((d) => d.kind === "VirtualService");
  assert.deepEqual(vs.spec.gateways, ["istio-ingress/inference-gateway"]);
  const [picked, fallback, ...rest] = vs.spec.http;
  assert.equal(rest.length, 0);
  const [routePatch] = patches(docs, "HTTP_ROUTE");
  assert.equal(routePatch.match.routeConfiguration.vhost.route.name, picked.name);
  assert.equal(routePatch.patch.value.route.cluster, patches(docs, "CLUSTER")[0].patch.value.name);
  assert.equal(picked.match.length, 1);
  assert.deepEqual(picked.match[0].headers, { "x-gateway-destination-endpoint": { regex: ".+" } });
  assert.ok(
    new RegExp(`^(?:${picked.match[0].headers["x-gateway-destination-endpoint"].regex})$`).test("10.0.0.5:8000"),
  );
  assert.notEqual(fallback.name, picked.name);
  assert.ok(
    fallback.match.every((m: any) => m.headers === undefined),
    "the FailOpen route must not need the header",
  );
  assert.deepEqual(
    fallback.match.map((m: any) => m.uri),
    picked.match.map((m: any) => m.uri),
  );
  // Default destination: the chart's own Service over the pool's pods.
  const svc = docs.find((d) => d.kind === "Service" && d.metadata.name === "llm-fallback");
  assert.deepEqual(svc.spec.selector, { app: "vllm-llama3-8b-instruct" });
  for (const r of [picked, fallback]) {
    assert.deepEqual(r.route[0].destination, { host: "llm-fallback.models.svc.cluster.local", port: { number: 8000 } });
  }
  // An existing Service instead: no Service rendered, both routes point at it.
  const own = render(["istio.fallback.service=vllm.default.svc.cluster.local"]);
  assert.ok(!own.some((d) => d.metadata.name === "llm-fallback"));
  for (const r of own.find((d) => d.kind === "VirtualService").spec.http)
    assert.equal(r.route[0].destination.host, "vllm.default.svc.cluster.local");
  assert.ok(
    !render(["istio.virtualService=false"]).some(
      (d) => d.kind === "VirtualService" || d.metadata.name === "llm-fallback",
    ),
  );
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
    "istio.originalDst=false",
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
  assert.throws(() => renderTemplate('{{ include "x" . }}', {}), /unsupported/);
  assert.throws(() => renderTemplate("{{ if .Values.a }}x", { a: 1 }), /missing/);
  assert.throws(() => renderTemplate('{{ regexMatch "(?=a)" "a" }}', {}), /RE2/);
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
