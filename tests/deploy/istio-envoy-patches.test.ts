import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { parseManifests } from "./validate";
import { assertOverrideHostPolicy, assertRetries } from "./routing-checks";

// EnvoyFilter patch values are raw Envoy config that Istio's schema does not check: validate them with
// the same closed Envoy v3 subset schema as envoy/envoy.yaml.
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(JSON.parse(readFileSync("tests/deploy/fixtures/envoy-bootstrap-subset.schema.json", "utf8")));
const wasm = ajv.getSchema("envoy-subset#/$defs/wasmFilter")!;
const clusterMerge = ajv.getSchema("envoy-subset#/$defs/clusterMerge")!;
const headerMutation = ajv.getSchema("envoy-subset#/$defs/headerMutationFilter")!;
const ok = (v: typeof wasm, x: unknown) => {
  if (!v(x)) throw new Error(ajv.errorsText(v.errors));
};
const load = (f: string) => parseManifests(readFileSync(f, "utf8"), f) as any[];

test("ECDS EnvoyFilter: the wasm extension is valid Envoy config and follows contracts 3/4", () => {
  const [ef] = load("envoy/istio/endpoint-picker-ecds.yaml");
  const ext = ef.spec.configPatches[0].patch.value;
  ok(wasm, ext.typed_config);
  const cfg = ext.typed_config.config;
  assert.equal(cfg.root_id, "endpoint-picker");
  assert.equal(cfg.allow_on_headers_stop_iteration, true);
  const httpFilters = ef.spec.configPatches.filter((p: any) => p.applyTo === "HTTP_FILTER");
  const picker = httpFilters.find((p: any) => p.patch.value.config_discovery);
  const strip = httpFilters.find((p: any) => p.patch.value.name === "envoy.filters.http.header_mutation");
  assert.equal(picker.patch.value.name, ext.name, "HTTP filter must reference the ECDS name");
  assert.equal(picker.patch.operation, "INSERT_BEFORE");
  assert.equal(picker.match.listener.filterChain.filter.subFilter.name, "envoy.filters.http.router");
  // Before it, and before every other HTTP filter: the client's headers are stripped.
  assert.equal(strip.patch.operation, "INSERT_FIRST");
  ok(headerMutation, strip.patch.value.typed_config);
  assert.deepEqual(
    strip.patch.value.typed_config.mutations.request_mutations.map((m: any) => m.remove),
    ["x-gateway-destination-endpoint", "x-gateway-destination-endpoint-fallback"],
  );
  const pc = JSON.parse(cfg.configuration.value);
  assert.match(pc.companionCluster, /^outbound\|9002\|\|endpoint-picker-companion\./);
  const bad = structuredClone(ext.typed_config);
  bad.config.allow_on_header_stop_iteration = true;
  assert.throws(() => ok(wasm, bad));
});

// Point 3: an HTTP_FILTER patch without listener.portNumber lands on every listener of the gateway.
test("ECDS EnvoyFilter: the HTTP filters go on the Gateway's listener only", () => {
  const [ef] = load("envoy/istio/endpoint-picker-ecds.yaml");
  const [gw] = load("envoy/istio/gateway.yaml");
  const filters = ef.spec.configPatches.filter((p: any) => p.applyTo === "HTTP_FILTER");
  assert.equal(filters.length, 2);
  // The istioctl-installed gateway Service maps port 80 to targetPort 8080, where Istio builds the listener.
  const listenerPort = gw.spec.servers[0].port.number === 80 ? 8080 : gw.spec.servers[0].port.number;
  for (const p of filters) assert.equal(p.match.listener.portNumber, listenerPort);
});

// Nitpick: Istio names a WasmPlugin's extension config NAMESPACE.NAME; the static name must not be one.
test("ECDS EnvoyFilter: the extension name cannot clash with a WasmPlugin's; one vm_id for the one pool", () => {
  const [ef] = load("envoy/istio/endpoint-picker-ecds.yaml");
  const [wp] = load("envoy/istio/wasmplugin.yaml");
  const ext = ef.spec.configPatches[0].patch.value;
  assert.notEqual(ext.name, `${wp.metadata.namespace}.${wp.metadata.name}`);
  assert.ok(!ext.name.includes("."), ext.name);
  assert.equal(ext.typed_config.config.vm_config.vm_id, "endpoint-picker");
});

// Point 1: the picked pod is chosen by Envoy's override_host policy on the gateway's own (EDS) cluster of the
// pool Service, not by an ORIGINAL_DST cluster that connects wherever a header says.
test("override_host EnvoyFilter: a CLUSTER MERGE on the VirtualService destination's cluster", () => {
  const docs = load("envoy/istio/override-host.yaml");
  const efs = docs.filter((d) => d.kind === "EnvoyFilter");
  assert.equal(efs.length, 1);
  const patches = efs[0].spec.configPatches;
  assert.deepEqual(
    patches.map((p: any) => [p.applyTo, p.patch.operation]),
    [["CLUSTER", "MERGE"]],
    "no ORIGINAL_DST cluster ADD, no HTTP_ROUTE patch",
  );
  const [p] = patches;
  const vs = docs.find((d) => d.kind === "VirtualService");
  const dest = vs.spec.http[0].route[0].destination;
  assert.deepEqual(p.match, { context: "GATEWAY", cluster: { service: dest.host, portNumber: dest.port.number } });
  assertOverrideHostPolicy(p.patch.value);
  const bad = structuredClone(p.patch.value);
  bad.load_balancing_policy.policies[0].typed_extension_config.typed_config.override_host_source = [];
  assert.throws(() => ok(clusterMerge, bad));
  assert.doesNotMatch(JSON.stringify(docs), /ORIGINAL_DST|original_dst_lb_config/);
});

// One route: FailOpen requests (no header) go by the fallback policy of the same cluster; no route timeout
// (Istio's CRD refuses timeout: 0s; without one Istio sets none); retries only before any upstream saw it.
test("VirtualService: one route to the pool Service, no timeout, retries only for requests no pod has seen", () => {
  const vs = load("envoy/istio/override-host.yaml").find((d) => d.kind === "VirtualService");
  assert.equal(vs.spec.http.length, 1);
  const [r] = vs.spec.http;
  assert.ok(r.match.every((m: any) => m.headers === undefined && m.name === undefined));
  assert.equal(r.timeout, undefined);
  assert.equal(r.route.length, 1);
  assertRetries(r.retries);
});

// Point 2: a hung companion replica is ejected after one timed-out long poll (a 504 to outlier detection).
test("companion DestinationRule: round robin, one gateway error ejects a replica, never both of two", () => {
  const [dr] = load("envoy/istio/companion-destinationrule.yaml");
  const [ef] = load("envoy/istio/endpoint-picker-ecds.yaml");
  const pc = JSON.parse(ef.spec.configPatches[0].patch.value.typed_config.config.configuration.value);
  assert.equal(pc.companionCluster, `outbound|9002||${dr.spec.host}`);
  assert.deepEqual(dr.spec.trafficPolicy.loadBalancer, { simple: "ROUND_ROBIN" });
  assert.deepEqual(dr.spec.trafficPolicy.outlierDetection, {
    consecutiveGatewayErrors: 1,
    interval: "1s",
    baseEjectionTime: "5s",
    maxEjectionPercent: 50,
  });
});
