// Checks shared by the tests of the Istio files and of the chart: the override_host policy of the pool
// Service's cluster and the VirtualService's retries.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { envoyExtensionNames, upstreamAvailable } from "./upstream-schemas";

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(JSON.parse(readFileSync("tests/deploy/fixtures/envoy-bootstrap-subset.schema.json", "utf8")));
const clusterMerge = ajv.getSchema("envoy-subset#/$defs/clusterMerge")!;

const OVERRIDE_HOST = "type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost";
const LEAST_REQUEST = "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest";

/** The override_host policy a CLUSTER MERGE patch adds: both picker headers, least request as the fallback. */
export function assertOverrideHostPolicy(value: any): void {
  if (!clusterMerge(value)) throw new Error(ajv.errorsText(clusterMerge.errors));
  assert.deepEqual(Object.keys(value), ["load_balancing_policy"], "the patch only adds the policy");
  assertOverrideHostLbPolicy(value.load_balancing_policy);
}

/** A cluster's load_balancing_policy: override_host on both picker headers, least request as the fallback. */
export function assertOverrideHostLbPolicy(lbPolicy: any): void {
  const [policy, ...more] = lbPolicy.policies;
  assert.equal(more.length, 0);
  const ext = policy.typed_extension_config;
  assert.equal(ext.name, "envoy.load_balancing_policies.override_host");
  assert.equal(ext.typed_config["@type"], OVERRIDE_HOST);
  assert.deepEqual(ext.typed_config.override_host_sources, [
    { header: "x-gateway-destination-endpoint" },
    { header: "x-gateway-destination-endpoint-fallback" },
  ]);
  const fallback = ext.typed_config.fallback_policy.policies.map((p: any) => p.typed_extension_config);
  assert.deepEqual(fallback, [
    { name: "envoy.load_balancing_policies.least_request", typed_config: { "@type": LEAST_REQUEST } },
  ]);
  // The names are the ones Envoy registers these factories under (envoy-api.json), when it is at hand.
  if (upstreamAvailable()) {
    for (const e of [ext, fallback[0]]) {
      const type = e.typed_config["@type"].replace("type.googleapis.com/", "");
      assert.ok(envoyExtensionNames(type).includes(e.name), `${e.name} is not an extension name of ${type}`);
    }
  }
}

/** Two retries, on connection-level failures only (nothing a model server has seen), previous hosts avoided. */
export function assertRetries(retries: any): void {
  assert.equal(retries.attempts, 2);
  assert.deepEqual(retries.retryOn.split(",").sort(), ["connect-failure", "refused-stream", "reset-before-request"]);
  assert.equal(retries.perTryTimeout, undefined);
  // Unset means Istio keeps Envoy's previous_hosts retry predicate (istio retry.ConvertPolicy).
  assert.notEqual(retries.retryIgnorePreviousHosts, false);
}
