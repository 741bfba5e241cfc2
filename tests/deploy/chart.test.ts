import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { parse } from "yaml";
import { renderTemplate, setValue } from "./helm-subset";
import { parseManifests, validateManifest } from "./validate";
import { Ajv } from "ajv";

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(JSON.parse(readFileSync("tests/deploy/fixtures/envoy-bootstrap-subset.schema.json", "utf8")));
const wasmSchema = ajv.getSchema("envoy-subset#/$defs/wasmFilter")!;
const clusterSchema = ajv.getSchema("envoy-subset#/$defs/cluster")!;

const dir = "envoy/chart/templates";
const templates = readdirSync(dir).filter((f) => f.endsWith(".yaml")).map((f) => readFileSync(`${dir}/${f}`, "utf8"));
const baseValues = () => parse(readFileSync("envoy/chart/values.yaml", "utf8"));

function render(sets: string[], flags: Array<{ name: string; value: string }> = []) {
  const values = baseValues();
  for (const s of sets) setValue(values, s);
  values.inferenceExtension.flags = flags;
  const docs = templates.flatMap((t) => parseManifests(renderTemplate(t, values, { Name: "llm", Namespace: "models" }), "chart"));
  for (const d of docs as any[]) {
    validateManifest(d);
    // EnvoyFilter patch values are raw Envoy config: check them against the Envoy subset schema too.
    for (const p of d.kind === "EnvoyFilter" ? d.spec.configPatches : []) {
      const v = p.applyTo === "EXTENSION_CONFIG" ? wasmSchema : p.applyTo === "CLUSTER" ? clusterSchema : undefined;
      const x = p.applyTo === "EXTENSION_CONFIG" ? p.patch.value.typed_config : p.patch.value;
      if (v && !v(x)) throw new Error(`${d.metadata.name}: ${ajv.errorsText(v.errors)}`);
    }
  }
  return docs as any[];
}
const args = (docs: any[]) => docs.find((d) => d.kind === "Deployment").spec.template.spec.containers[0].args as string[];

// The flags from docs/reference supported-model-servers.md, as a values file would carry them.
const triton = [
  { name: "total-queued-requests-metric", value: "nv_trt_llm_request_metrics{request_type=waiting}" },
  { name: "kv-cache-usage-percentage-metric", value: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}" },
  { name: "lora-info-metric", value: "" },
];
const sglang = [
  { name: "total-queued-requests-metric", value: "sglang:num_queue_reqs" },
  { name: "kv-cache-usage-percentage-metric", value: "sglang:token_usage" },
  { name: "lora-info-metric", value: "" },
];

test("chart renders valid manifests for vllm (defaults)", () => {
  const docs = render([]);
  assert.deepEqual(docs.map((d) => d.kind).sort(),
    ["ConfigMap", "Deployment", "EnvoyFilter", "EnvoyFilter", "InferencePool", "Role", "RoleBinding", "Service", "ServiceAccount"]);
  const ecds = docs.find((d) => d.kind === "EnvoyFilter" && d.spec.configPatches[0].applyTo === "EXTENSION_CONFIG");
  const pc = JSON.parse(ecds.spec.configPatches[0].patch.value.typed_config.config.configuration.value);
  assert.equal(pc.companionCluster, "outbound|9002||llm-epp.models.svc.cluster.local");
  assert.equal(pc.failureMode, "FailClose");
  assert.ok(args(docs).includes("--model-server-type=vllm"));
  const pool = docs.find((d) => d.kind === "InferencePool");
  assert.deepEqual(pool.spec.targetPorts, [{ number: 8000 }]);
  assert.equal(pool.spec.endpointPickerRef.name, "llm-epp");
  const wp = render(["wasmPlugin.enabled=true", "istio.ecds=false"]).find((d) => d.kind === "WasmPlugin");
  assert.equal(wp.spec.pluginConfig.companionCluster, "outbound|9002||llm-epp.models.svc.cluster.local");
});

test("chart: --set inferencePool.modelServerType=triton-tensorrt-llm plus the reference's flags", () => {
  const a = args(render(["inferencePool.modelServerType=triton-tensorrt-llm"], triton));
  assert.ok(a.includes("--model-server-type=triton-tensorrt-llm"));
  assert.ok(a.includes("--total-queued-requests-metric=nv_trt_llm_request_metrics{request_type=waiting}"));
  assert.ok(a.includes("--kv-cache-usage-percentage-metric=nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}"));
  assert.ok(a.includes("--lora-info-metric="));
});

test("chart: sglang values", () => {
  const a = args(render(["inferencePool.modelServerType=sglang"], sglang));
  assert.ok(a.includes("--model-server-type=sglang"));
  assert.ok(a.includes("--kv-cache-usage-percentage-metric=sglang:token_usage"));
});

test("chart: optional InferencePool and WasmPlugin, replicas as a number", () => {
  const docs = render(["inferencePool.create=false", "istio.ecds=false", "istio.originalDst=false", "inferenceExtension.replicas=3"]);
  assert.ok(!docs.some((d) => d.kind === "InferencePool" || d.kind === "WasmPlugin" || d.kind === "EnvoyFilter"));
  assert.equal(docs.find((d) => d.kind === "Deployment").spec.replicas, 3);
});

test("chart: a wrong-typed value fails validation of the rendered manifest", () => {
  assert.throws(() => render(["inferenceExtension.replicas=three"]));
  assert.throws(() => render(["istio.failurePolicy=FAIL_CLOSE"]), /failure_policy|allowed values/);
  assert.throws(() => render(["wasmPlugin.enabled=true", "wasmPlugin.failStrategy=FAIL_SOMETIMES"]), /failStrategy/);
});

test("renderer rejects template features it does not implement", () => {
  assert.throws(() => renderTemplate("{{ include \"x\" . }}", {}), /unsupported/);
  assert.throws(() => renderTemplate("{{ if .Values.a }}x", { a: 1 }), /missing/);
});
