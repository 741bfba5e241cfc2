import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { parse } from "yaml";

// A closed schema of the v3 fields envoy/envoy.yaml uses (hand-written from Envoy's protos).
const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(
  JSON.parse(readFileSync("tests/deploy/fixtures/envoy-bootstrap-subset.schema.json", "utf8")),
);
const bootstrap = () => parse(readFileSync("envoy/envoy.yaml", "utf8"));
const check = (b: unknown) => {
  if (!validate(b)) throw new Error(ajv.errorsText(validate.errors));
};

test("envoy/envoy.yaml matches the Envoy v3 bootstrap subset schema", () => check(bootstrap()));

test("envoy/envoy.yaml: a misspelt field or wrong type anywhere fails", () => {
  const mutations: Array<(b: any) => void> = [
    (b) => {
      b.static_resources.clusters[1].original_dst_lb_config.use_http_headers = true;
    },
    (b) => {
      b.static_resources.clusters[1].lb_policy = "CLUSTER_PROVIDE";
    },
    (b) => {
      b.static_resources.listeners[0].address.socket_address.port_value = "10000";
    },
    (b) => {
      b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1].typed_config.config.vm_config.vmid =
        "x";
    },
    (b) => {
      b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1].typed_config.config.rootid =
        "x";
    },
  ];
  for (const [i, m] of mutations.entries()) {
    const b = bootstrap();
    m(b);
    assert.throws(() => check(b), `mutation ${i} accepted`);
  }
});

test("envoy/envoy.yaml follows contract 4 (names, ORIGINAL_DST header, vm_id/root_id)", () => {
  const b = bootstrap();
  const l = b.static_resources.listeners[0];
  assert.equal(l.address.socket_address.port_value, 10000);
  const hcm = l.filter_chains[0].filters[0].typed_config;
  const wasm = hcm.http_filters.find((f: any) => f.name === "envoy.filters.http.wasm").typed_config.config;
  assert.equal(wasm.root_id, "endpoint-picker");
  assert.equal(wasm.vm_config.vm_id, "endpoint-picker");
  assert.equal(wasm.vm_config.runtime, "envoy.wasm.runtime.v8");
  assert.equal(wasm.vm_config.code.local.filename, "build/filter.wasm");
  JSON.parse(wasm.configuration.value);
  const clusters = Object.fromEntries(b.static_resources.clusters.map((c: any) => [c.name, c]));
  assert.ok(clusters["endpoint-picker-companion"]);
  assert.ok(clusters["inference-pool-fallback"]);
  assert.deepEqual(clusters["inference-pool"].original_dst_lb_config, {
    use_http_header: true,
    http_header_name: "x-gateway-destination-endpoint",
  });
  assert.equal(clusters["inference-pool"].lb_policy, "CLUSTER_PROVIDED");
});
