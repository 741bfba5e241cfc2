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
const ok = (v: typeof wasm, x: unknown) => { if (!v(x)) throw new Error(ajv.errorsText(v.errors)); };
const load = (f: string) => parseManifests(readFileSync(f, "utf8"), f) as any[];

test("ECDS EnvoyFilter: the wasm extension is valid Envoy config and follows contracts 3/4", () => {
  const [ef] = load("envoy/istio/endpoint-picker-ecds.yaml");
  const ext = ef.spec.configPatches[0].patch.value;
  ok(wasm, ext.typed_config);
  const cfg = ext.typed_config.config;
  assert.equal(cfg.root_id, "endpoint-picker");
  assert.equal(cfg.allow_on_headers_stop_iteration, true);
  const httpFilters = ef.spec.configPatches.filter((p: any) => p.applyTo === "HTTP_FILTER").map((p: any) => p.patch.value);
  assert.equal(httpFilters[1].name, ext.name, "HTTP filter must reference the ECDS name");
  // Before it (patches apply in order, each INSERT_BEFORE the router): the client's headers are stripped.
  ok(headerMutation, httpFilters[0].typed_config);
  assert.deepEqual(httpFilters[0].typed_config.mutations.request_mutations.map((m: any) => m.remove),
    ["x-gateway-destination-endpoint", "x-gateway-destination-endpoint-fallback"]);
  const pc = JSON.parse(cfg.configuration.value);
  assert.match(pc.companionCluster, /^outbound\|9002\|\|endpoint-picker-companion\./);
  const bad = structuredClone(ext.typed_config); bad.config.allow_on_header_stop_iteration = true;
  assert.throws(() => ok(wasm, bad));
});

test("ORIGINAL_DST EnvoyFilter: the added cluster is valid Envoy config with the header LB", () => {
  const ef = load("envoy/istio/original-dst.yaml").find((d) => d.kind === "EnvoyFilter");
  const c = ef.spec.configPatches.find((p: any) => p.applyTo === "CLUSTER").patch.value;
  ok(cluster, c);
  assert.deepEqual(c.original_dst_lb_config, { use_http_header: true, http_header_name: "x-gateway-destination-endpoint" });
  const bad = structuredClone(c); bad.original_dst_lb_config.http_headr_name = "x";
  assert.throws(() => ok(cluster, bad));
});
