import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { parseManifests } from "./validate";

// EnvoyFilter patch values are raw Envoy config that Istio's schema does not check: validate them with
// the same closed Envoy v3 subset schema as envoy/envoy.yaml.
const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(JSON.parse(readFileSync("tests/deploy/fixtures/envoy-bootstrap-subset.schema.json", "utf8")));
const wasm = ajv.getSchema("envoy-subset#/$defs/wasmFilter")!;
const cluster = ajv.getSchema("envoy-subset#/$defs/cluster")!;
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

test("ORIGINAL_DST EnvoyFilter: the added cluster is valid Envoy config with the header LB", () => {
  const ef = load("envoy/istio/original-dst.yaml").find((d) => d.kind === "EnvoyFilter");
  const c = ef.spec.configPatches.find((p: any) => p.applyTo === "CLUSTER").patch.value;
  ok(cluster, c);
  assert.deepEqual(c.original_dst_lb_config, {
    use_http_header: true,
    http_header_name: "x-gateway-destination-endpoint",
  });
  const bad = structuredClone(c);
  bad.original_dst_lb_config.http_headr_name = "x";
  assert.throws(() => ok(cluster, bad));
});

// Point 1: FailOpen lets a request through without the header; ORIGINAL_DST then has no host (503). Only
// requests with the header may reach the patched route; the others need a route to a real Service.
test("VirtualService: header route (patched to ORIGINAL_DST) first, then a FailOpen route without the header", () => {
  const docs = load("envoy/istio/original-dst.yaml");
  const ef = docs.find((d) => d.kind === "EnvoyFilter");
  const vs = docs.find((d) => d.kind === "VirtualService");
  const routePatch = ef.spec.configPatches.find((p: any) => p.applyTo === "HTTP_ROUTE");
  const clusterName = ef.spec.configPatches.find((p: any) => p.applyTo === "CLUSTER").patch.value.name;
  assert.equal(vs.spec.http.length, 2);
  const [picked, fallback] = vs.spec.http;
  assert.equal(routePatch.match.routeConfiguration.vhost.route.name, picked.name);
  assert.equal(routePatch.patch.value.route.cluster, clusterName);
  // Istio names the Envoy route after the http route (plus "." + match name, which must stay unset).
  assert.ok(picked.match.every((m: any) => m.name === undefined));
  for (const m of picked.match) assert.deepEqual(m.headers, { "x-gateway-destination-endpoint": { regex: ".+" } });
  assert.ok(fallback.match.every((m: any) => m.headers === undefined));
  assert.notEqual(fallback.name, picked.name);
  assert.deepEqual(fallback.route, picked.route);
});
