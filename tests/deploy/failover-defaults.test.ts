// Point 2: the failover timings agree in every shipped configuration (docs/DEPLOY.md, "Companion failover").
// The companion answers a held long poll within its --long-poll-timeout (a 304 on a quiet pool), so
//   - pollTimeoutMs > long-poll timeout + 1000 ms: a healthy replica's answer (network, a busy event loop
//     included) always beats the filter's timeout, so only a hung replica lets a poll time out;
//   - pollTimeoutMs + long-poll timeout < stalenessLimitMs: a hung replica costs one pollTimeoutMs, the next
//     poll goes to another replica and is answered within the long-poll timeout, before the snapshot turns
//     stale;
// and every companion cluster (Envoy) or Service (Istio) ejects a replica after one gateway error (the
// timed-out poll, a 504 to outlier detection), so that next poll does go to another replica.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import {
  DEFAULT_LONG_POLL_TIMEOUT_MS,
  FILTER_DEFAULT_POLL_TIMEOUT_MS,
  POLL_TIMEOUT_SLACK_MS,
  parseCli,
} from "../../companion/cli";
import { parseManifests } from "./validate";
import { filterConfigs, renderChartDefaults } from "./shipped";

const read = (f: string) => readFileSync(f, "utf8");
const load = (f: string) => parseManifests(read(f), f) as any[];

/** A `name: u32 = N` default of the filter's PluginConfig (filter/config.ts). */
function filterDefault(name: string): number {
  const m = new RegExp(`\\b${name}: u32 = (\\d+);`).exec(read("filter/config.ts"));
  assert.ok(m, `filter/config.ts declares ${name}: u32 = N`);
  return Number(m[1]);
}
const FILTER = { pollTimeoutMs: filterDefault("pollTimeoutMs"), stalenessLimitMs: filterDefault("stalenessLimitMs") };

/** The companion's effective --long-poll-timeout for the args of a Deployment (or none: its default). */
function longPollOf(args: string[]): number {
  const r = parseCli(["--endpoints", "10.0.0.1:1", ...args.filter((a) => a.startsWith("--long-poll-timeout"))], {});
  assert.equal(r.kind, "run");
  return (r as { options: { longPollTimeoutMs: number } }).options.longPollTimeoutMs;
}

const chart = renderChartDefaults();
const chartWasmPlugin = renderChartDefaults(["wasmPlugin.enabled=true", "istio.ecds=false"]);
const bootstrap = parse(read("envoy/envoy.yaml"));
const envoyWasm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.find(
  (f: any) => f.name === "envoy.filters.http.wasm",
).typed_config.config;

/** Every shipped filter configuration, by where it is shipped. */
const shippedFilterConfigs: Array<[string, Record<string, unknown>]> = [
  ["envoy/envoy.yaml", JSON.parse(envoyWasm.configuration.value)],
  ...filterConfigs(load("envoy/istio/endpoint-picker-ecds.yaml")).map(
    (c) => ["endpoint-picker-ecds.yaml", c] as [string, any],
  ),
  ...filterConfigs(load("envoy/istio/wasmplugin.yaml")).map((c) => ["wasmplugin.yaml", c] as [string, any]),
  ...filterConfigs(chart).map((c) => ["chart (ECDS)", c] as [string, any]),
  ...filterConfigs(chartWasmPlugin).map((c) => ["chart (WasmPlugin)", c] as [string, any]),
];

const deploymentArgs = (docs: any[]) =>
  docs
    .filter((d) => d.kind === "Deployment" && /epp|companion/.test(d.metadata.name))
    .map((d) => d.spec.template.spec.containers[0].args);
/** Every shipped companion Deployment's effective long-poll timeout. */
const shippedLongPolls: Array<[string, number]> = [
  ...deploymentArgs(load("envoy/kubernetes/companion.yaml")).map(
    (a) => ["envoy/kubernetes/companion.yaml", longPollOf(a)] as [string, number],
  ),
  ...deploymentArgs(chart).map((a) => ["chart", longPollOf(a)] as [string, number]),
];

test("the defaults: filter pollTimeoutMs 2500, stalenessLimitMs 5000; companion --long-poll-timeout 1000ms", () => {
  assert.deepEqual(FILTER, { pollTimeoutMs: 2500, stalenessLimitMs: 5000 });
  assert.equal(DEFAULT_LONG_POLL_TIMEOUT_MS, 1000);
  assert.equal(longPollOf([]), DEFAULT_LONG_POLL_TIMEOUT_MS);
  // The companion's copy of the filter's default (its start-up warning compares with it) is the filter's.
  assert.equal(FILTER_DEFAULT_POLL_TIMEOUT_MS, FILTER.pollTimeoutMs);
  assert.equal(POLL_TIMEOUT_SLACK_MS, 1000);
  assert.match(read("docs/COMPANION.md"), /\| `--long-poll-timeout DUR` \| `1000ms` \|/);
});

test("every shipped configuration: pollTimeoutMs > long-poll timeout + 1s, pollTimeoutMs + long-poll timeout < stalenessLimitMs", () => {
  assert.ok(shippedFilterConfigs.length >= 5, shippedFilterConfigs.map(([f]) => f).join(", "));
  assert.ok(shippedLongPolls.length >= 2, shippedLongPolls.map(([f]) => f).join(", "));
  const polls = new Set<number>();
  const stale = new Set<number>();
  for (const [where, c] of shippedFilterConfigs) {
    const poll = (c.pollTimeoutMs as number | undefined) ?? FILTER.pollTimeoutMs;
    const limit = (c.stalenessLimitMs as number | undefined) ?? FILTER.stalenessLimitMs;
    polls.add(poll);
    stale.add(limit);
    for (const [companion, longPoll] of shippedLongPolls) {
      assert.ok(
        poll > longPoll + POLL_TIMEOUT_SLACK_MS,
        `${where}: pollTimeoutMs ${poll} must exceed ${companion}'s long-poll timeout ${longPoll} + 1000 ms`,
      );
      assert.ok(
        poll + longPoll < limit,
        `${where}: pollTimeoutMs ${poll} + ${companion}'s long-poll timeout ${longPoll} must stay below stalenessLimitMs ${limit}`,
      );
    }
  }
  // All shipped configurations agree with each other (and so with the defaults checked above).
  assert.deepEqual([...polls], [FILTER.pollTimeoutMs]);
  assert.deepEqual([...stale], [FILTER.stalenessLimitMs]);
  assert.deepEqual([...new Set(shippedLongPolls.map(([, ms]) => ms))], [DEFAULT_LONG_POLL_TIMEOUT_MS]);
});

const ISTIO_EJECTION = { consecutiveGatewayErrors: 1, interval: "1s", baseEjectionTime: "5s", maxEjectionPercent: 50 };

test("every companion Service under Istio has a DestinationRule: round robin, ejected after one gateway error", () => {
  const services: Array<[string, any]> = [
    ...load("envoy/kubernetes/companion.yaml").map((d) => ["default", d] as [string, any]),
    ...chart.map((d) => [d.metadata.namespace, d] as [string, any]),
  ].filter(([, d]) => d.kind === "Service" && d.spec.clusterIP !== "None" && /companion|epp/.test(d.metadata.name));
  assert.equal(services.length, 2, "the plain manifests' and the chart's companion Service");
  const rules = [...load("envoy/istio/companion-destinationrule.yaml"), ...chart].filter(
    (d) => d.kind === "DestinationRule",
  );
  for (const [ns, svc] of services) {
    const host = `${svc.metadata.name}.${ns}.svc.cluster.local`;
    const dr = rules.find((r) => r.spec.host === host);
    assert.ok(dr, `a DestinationRule for ${host}`);
    assert.deepEqual(dr.spec.trafficPolicy.loadBalancer, { simple: "ROUND_ROBIN" }, host);
    assert.deepEqual(dr.spec.trafficPolicy.outlierDetection, ISTIO_EJECTION, host);
  }
});

// envoy/envoy.yaml is someone else's file: its companion cluster gets outlier_detection in a change of its own.
test("envoy/envoy.yaml: the companion cluster ejects a replica after one gateway failure", () => {
  const name = JSON.parse(envoyWasm.configuration.value).companionCluster;
  const cluster = bootstrap.static_resources.clusters.find((c: any) => c.name === name);
  assert.ok(cluster, "the filter's companionCluster is a cluster of envoy/envoy.yaml");
  assert.ok(cluster.outlier_detection, "envoy/envoy.yaml: the companion cluster has no outlier_detection");
  assert.equal(cluster.outlier_detection.consecutive_gateway_failure, 1);
  assert.equal(cluster.outlier_detection.enforcing_consecutive_gateway_failure, 100);
  assert.ok([undefined, "ROUND_ROBIN"].includes(cluster.lb_policy), `lb_policy ${cluster.lb_policy}`);
});
