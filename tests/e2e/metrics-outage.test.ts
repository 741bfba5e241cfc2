// A metrics outage is not a traffic outage: every pod's /metrics unreadable for 30 s (a wrong metricsPath
// by live reload of the companion's config; a NetworkPolicy or a wrong port does the same) while every pod
// still serves inference. Real processes on loopback: simulated vLLM pods, the bundled companion, two
// emulator gateways serving envoy/envoy.yaml, one FailOpen and one FailClose.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import {
  startSimPods,
  startCompanion,
  startGateway,
  endpointsFile,
  tempFile,
  steadyLoad,
  eventually,
  gatewayPicking,
  companionEndpoints,
} from "./stack";
import { makeProfile } from "../sim/profile";

const profile = makeProfile({});
const completion = (n: number) =>
  JSON.stringify({ model: profile.model, prompt: `question ${n}: what is ${n} squared?`, max_tokens: 4 });
const config = (path: string) =>
  [
    "apiVersion: inference.networking.x-k8s.io/v1alpha1",
    "kind: EndpointPickerConfig",
    "plugins:",
    "- type: metrics-data-source",
    `  parameters: {path: ${path}}`,
    "",
  ].join("\n");

test("a 30 s metrics-only outage: at least 99% of requests get 200, picked by the filter, under FailOpen and FailClose", async () => {
  const set = await startSimPods({ engines: ["vllm-v1", "vllm-v1", "vllm-v1", "vllm-v1"], profile, timeScale: 10 });
  const configFile = tempFile("config.yaml", config("/metrics"));
  const companion = await startCompanion([
    "--endpoints-file",
    endpointsFile(set.pods),
    "--config-file",
    configFile,
    "--refresh-interval",
    "50ms",
    "--staleness-threshold",
    "1s",
  ]);
  const gateways = await Promise.all(
    (["FailOpen", "FailClose"] as const).map((failureMode) =>
      startGateway({
        companionPort: companion.port,
        poolPorts: set.pods.map((p) => p.port),
        configuration: { failureMode },
        concurrency: 2,
      }),
    ),
  );
  try {
    for (const g of gateways) await gatewayPicking(g.port, completion(0));
    writeFileSync(configFile, config("/no-such-metrics")); // live reload: every scrape now gets a 404
    await eventually(
      "every endpoint's metrics to fail",
      async () => (await companionEndpoints(companion.port)).every((e) => e.error !== null),
      10_000,
    );
    const [open, close] = await Promise.all(gateways.map((g) => steadyLoad(g.port, 15, 30_000, completion)));
    for (const [name, replies] of [
      ["FailOpen", open],
      ["FailClose", close],
    ] as const) {
      const ok = replies.filter((r) => r.status === 200 && r.headers["x-gateway-destination-endpoint-served"]);
      const pods = new Set(ok.map((r) => r.headers["x-sim-pod"]));
      console.log(
        `${name}: ${ok.length} of ${replies.length} answered 200 by the pod the filter picked (${pods.size} pods)`,
      );
      assert.ok(
        ok.length >= 0.99 * replies.length,
        `${name}: ${replies.length - ok.length} of ${replies.length} failed`,
      );
      assert.equal(pods.size, 4, `${name}: the load still spreads over every pod`);
    }
    const endpoints = await companionEndpoints(companion.port);
    assert.ok(
      endpoints.every((e) => e.stale && e.error),
      "the outage lasted: metrics stale and failing",
    );
    writeFileSync(configFile, config("/metrics"));
    await eventually(
      "the metrics to come back",
      async () => (await companionEndpoints(companion.port)).every((e) => e.error === null && !e.stale),
      10_000,
    );
  } finally {
    for (const g of gateways) await g.stop();
    await companion.stop();
    await set.close();
  }
});
