// The upstream definitions in ../shared/upstream-schemas (crds.json, k8s-openapi.json, envoy-api.json)
// against every shipped file, and the mistakes they catch that the packaged models and the hand-written
// Envoy subset do not. Skipped when ../shared is not beside the checkout.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { parse } from "yaml";
import { parseManifests } from "./validate";
import { UPSTREAM_DIR, goDurationMs, upstreamAvailable, validateEnvoy, validateUpstream } from "./upstream-schemas";

const skip = upstreamAvailable() ? false : `${UPSTREAM_DIR} is not beside this checkout`;
const files = ["envoy/kubernetes", "envoy/istio", "envoy/examples"].flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => `${dir}/${f}`),
);
// KEDA's ScaledObject is not among the upstream definitions (tests/deploy/validate.ts checks it).
const docs = (f: string) =>
  (parseManifests(readFileSync(f, "utf8"), f) as any[]).filter(
    (d) => d.kind !== "EndpointPickerConfig" && d.kind !== "ScaledObject",
  );
const find = (f: string, kind: string) => docs(f).find((d) => d.kind === kind);

test("upstream: every shipped manifest and EnvoyFilter patch validates", { skip }, () => {
  for (const f of files) for (const d of docs(f)) validateUpstream(d);
});

test("upstream: envoy/envoy.yaml is a valid Envoy Bootstrap", { skip }, () => {
  validateEnvoy("envoy.config.bootstrap.v3.Bootstrap", parse(readFileSync("envoy/envoy.yaml", "utf8")));
});

test("upstream: Go durations as the CEL rules read them", () => {
  assert.equal(goDurationMs("1s"), 1000);
  assert.equal(goDurationMs("0s"), 0);
  assert.equal(goDurationMs("1m30s"), 90_000);
  assert.equal(goDurationMs("1.5ms"), 1.5);
  assert.throws(() => goDurationMs("1"), /not a Go duration/);
});

test("upstream: the CRDs' CEL rules and closed schemas catch what the packaged models let through", { skip }, () => {
  const vs = find("envoy/istio/override-host.yaml", "VirtualService");
  const dr = find("envoy/istio/companion-destinationrule.yaml", "DestinationRule");
  const wp = find("envoy/istio/wasmplugin.yaml", "WasmPlugin");
  const cases: Array<[string, any, (o: any) => void, RegExp]> = [
    // Istio refuses a zero route timeout: its CRD requires durations of at least 1ms.
    [
      "timeout 0s",
      vs,
      (o) => (o.spec.http[0].timeout = "0s"),
      /timeout fails CEL rule duration\(self\) >= duration\('1ms'\)/,
    ],
    ["retries typo", vs, (o) => (o.spec.http[0].retries.retryOnn = "5xx"), /additional properties \(retryOnn\)/],
    ["retries attempts", vs, (o) => (o.spec.http[0].retries.attempts = "2"), /attempts must be integer/],
    [
      "outlier typo",
      dr,
      (o) => (o.spec.trafficPolicy.outlierDetection.consecutiveGatewayError = 1),
      /consecutiveGatewayError/,
    ],
    ["outlier interval", dr, (o) => (o.spec.trafficPolicy.outlierDetection.interval = "0s"), /CEL rule/],
    ["load balancer", dr, (o) => (o.spec.trafficPolicy.loadBalancer.simple = "ROUND_ROBBIN"), /allowed values/],
    ["wasm url scheme", wp, (o) => (o.spec.url = "ftp://x/y"), /CEL rule/],
  ];
  for (const [name, doc, edit, error] of cases) {
    validateUpstream(doc);
    const bad = structuredClone(doc);
    edit(bad);
    assert.throws(() => validateUpstream(bad), error, name);
  }
});

test("upstream: Envoy's protos catch a wrong field, type, enum or missing required message", { skip }, () => {
  const ef = find("envoy/istio/override-host.yaml", "EnvoyFilter");
  const value = ef.spec.configPatches[0].patch.value;
  validateEnvoy("envoy.config.cluster.v3.Cluster", value, { partial: true });
  const typed = (v: any) => v.load_balancing_policy.policies[0].typed_extension_config.typed_config;
  const cases: Array<[(v: any) => void, RegExp]> = [
    [
      (v) => (typed(v).override_host_source = []),
      /unknown field of envoy\.extensions\.load_balancing_policies\.override_host/,
    ],
    [(v) => delete typed(v).fallback_policy, /fallback_policy: required/],
    [(v) => (typed(v).override_host_sources = []), /needs at least 1 item/],
    [(v) => (typed(v)["@type"] = "type.googleapis.com/envoy.nope.v3.Nope"), /not an Envoy type/],
    [(v) => (v.lb_policy = "LEAST_REQUESTS"), /is not a value of envoy\.config\.cluster\.v3\.Cluster\.LbPolicy/],
    [(v) => (v.outlier_detection = { max_ejection_percent: 150 }), /must be <= 100/],
    [(v) => (v.outlier_detection = { interval: "1" }), /expected a duration/],
  ];
  for (const [edit, error] of cases) {
    const bad = structuredClone(value);
    edit(bad);
    assert.throws(() => validateEnvoy("envoy.config.cluster.v3.Cluster", bad, { partial: true }), error);
  }
  // A full (not MERGE) cluster needs what Envoy requires, e.g. an HttpUri's timeout in a wasm remote source.
  const [ecds] = docs("envoy/istio/endpoint-picker-ecds.yaml");
  const ext = structuredClone(ecds.spec.configPatches[0].patch.value);
  validateEnvoy("envoy.config.core.v3.TypedExtensionConfig", ext);
  delete ext.typed_config.config.vm_config.code.remote.http_uri.timeout;
  assert.throws(() => validateEnvoy("envoy.config.core.v3.TypedExtensionConfig", ext), /timeout: required/);
});
