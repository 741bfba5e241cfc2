import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { assertOverrideHostLbPolicy } from "./routing-checks";

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
  const pool = (b: any) => b.static_resources.clusters.find((c: any) => c.name === "inference-pool");
  const mutations: Array<(b: any) => void> = [
    (b) => {
      pool(b).load_balancing_policy.policies[0].typed_extension_config.typed_config.override_host_source = [];
    },
    (b) => {
      b.static_resources.clusters[0].lb_policy = "ROUND_ROBBIN";
    },
    (b) => {
      b.static_resources.clusters[0].outlier_detection = { consecutive_gateway_failures: 1 };
    },
    (b) => {
      b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.retry_policy.retry_onn =
        "5xx";
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

test("envoy/envoy.yaml follows contract 4 (names, override_host on the picker's headers, vm_id/root_id)", () => {
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
  // The pool's pods are hosts of the cluster; the picker's headers choose among them (never ORIGINAL_DST).
  assertOverrideHostLbPolicy(clusters["inference-pool"].load_balancing_policy);
  assert.notEqual(clusters["inference-pool"].type, "ORIGINAL_DST");
  const routes = hcm.route_config.virtual_hosts[0].routes;
  assert.equal(routes.length, 1);
  assert.equal(routes[0].match.headers, undefined);
  assert.equal(routes[0].route.cluster, "inference-pool");
  assert.equal(routes[0].route.timeout, "0s");
  // Retries only before a model server saw the request, never to a pod already tried.
  const retry = routes[0].route.retry_policy;
  assert.deepEqual(retry.retry_on.split(",").sort(), ["connect-failure", "refused-stream", "reset-before-request"]);
  assert.equal(retry.num_retries, 2);
  assert.deepEqual(
    retry.retry_host_predicate.map((p: any) => p.name),
    ["envoy.retry_host_predicates.previous_hosts"],
  );
});
