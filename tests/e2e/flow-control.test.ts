// Flow control over loopback (issue 12's e2e): one simulated vLLM pod that runs one request at a time, the
// bundled companion with `featureGates: [flowControl]`, and an emulator gateway serving envoy/envoy.yaml.
// The gateway learns that the pod runs one request at a time (seen full), holds what the pod cannot start,
// resumes it as the pod frees up, answers a request that
// waited past defaultRequestTTL with 429 and llm-d-router's reason, and forgets a request whose client left;
// the companion's llm_d_epp_flow_control_queue_size (from the gateway's reports) shows the queue.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import {
  startSimPods,
  startCompanion,
  startGateway,
  endpointsFile,
  tempFile,
  send,
  sleep,
  eventually,
  gatewayPicking,
  type Reply,
} from "./stack";
import { makeProfile } from "../sim/profile";

const profile = makeProfile({ scheduler: { maxNumSeqs: 1 }, metricsLagMs: 100 });
const long = (n: number, tokens: number) =>
  JSON.stringify({ model: profile.model, prompt: `request ${n}`, max_tokens: tokens, ignore_eos: true });
const CONFIG = [
  "apiVersion: llm-d.ai/v1alpha1",
  "kind: EndpointPickerConfig",
  'featureGates: ["flowControl"]',
  "plugins:",
  "- type: utilization-detector",
  "  parameters: {queueDepthThreshold: 1, kvCacheUtilThreshold: 1.0}",
  "flowControl:",
  "  defaultRequestTTL: 2s",
  "",
].join("\n");

/** The companion's pool-wide queue size (all priorities). */
async function queueSize(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(/^llm_d_epp_flow_control_queue_size\{[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
  return sum;
}

test("held while the pod is busy, resumed as it frees, 429 past the TTL, forgotten when the client leaves", async () => {
  const set = await startSimPods({ engines: ["vllm-v1"], profile });
  let submitted = 0;
  const engine = set.pods[0].engine;
  const submit = engine.submit.bind(engine);
  engine.submit = (r) => {
    submitted++;
    return submit(r);
  };
  const companion = await startCompanion([
    "--endpoints-file",
    endpointsFile(set.pods),
    "--config-file",
    tempFile("config.yaml", CONFIG),
    "--refresh-interval",
    "50ms",
  ]);
  const gateway = await startGateway({
    companionPort: companion.port,
    poolPorts: set.pods.map((p) => p.port),
    concurrency: 1,
  });
  try {
    await gatewayPicking(gateway.port, long(0, 1));
    await sleep(500); // the warm-up request's metrics settle
    submitted = 1;
    // Time one request alone: the others are sized from it.
    const alone = await send(gateway.port, "/v1/completions", long(1, 64));
    assert.equal(alone.status, 200);
    const tokens = Math.max(64, Math.round((64 * 1500) / alone.totalMs)); // ~1.5 s each
    // The gateway learns the pod's running capacity (1) from its gauges while it is seen full: three short
    // requests, one running and two queued for a while (filter/saturation.ts).
    const short = Math.max(16, Math.round((64 * 300) / alone.totalMs)); // ~0.3 s each
    const primed = await Promise.all(
      [6000, 6001, 6002].map((n) => send(gateway.port, "/v1/completions", long(n, short))),
    );
    assert.deepEqual(
      primed.map((r) => r.status),
      [200, 200, 200],
    );
    const replies: Array<Promise<Reply | Error>> = [];
    const request = (n: number) =>
      replies.push(send(gateway.port, "/v1/completions", long(n, tokens)).catch((e: Error) => e));
    request(2);
    await sleep(30);
    for (let n = 3; n <= 4; n++) request(n);
    // One more whose client gives up while it waits.
    const leaver = http.request({
      host: "127.0.0.1",
      port: gateway.port,
      path: "/v1/completions",
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json" },
    });
    leaver.on("error", () => {});
    leaver.end(long(5, tokens));
    await sleep(30);
    for (let n = 6; n <= 8; n++) request(n); // more than the pod can start within the TTL
    // The queue once it has settled (three equal reads): then the client leaves, before any request ends.
    let before = -1;
    let same = 0;
    await eventually(
      "requests to wait in the gateway",
      async () => {
        const now = await queueSize(companion.port);
        same = now === before ? same + 1 : 0;
        before = now;
        return now >= 2 && same >= 2;
      },
      3000,
      40,
    );
    leaver.destroy(); // the client leaves while its request waits
    await eventually(
      "the departed request to leave the queue",
      async () => (await queueSize(companion.port)) === before - 1,
      600,
      20,
    );
    const settled = await Promise.all(replies);
    const failed = settled.filter((r) => r instanceof Error);
    assert.deepEqual(failed, [], "no request fails at the transport");
    const done = settled as Reply[];
    // Only the served requests reached the pod (besides the five before the burst): the departed one never did.
    assert.equal(submitted, 5 + done.filter((r) => r.status === 200).length);
    const ok = done.filter((r) => r.status === 200);
    const expired = done.filter(
      (r) => r.status === 429 && r.headers["x-llm-d-request-dropped-reason"] === "rejected-ttl-expired",
    );
    console.log(
      `statuses ${done.map((r) => r.status).join(",")}; waits ${done.map((r) => Math.round(r.ttftMs)).join(",")} ms`,
    );
    assert.equal(ok.length + expired.length, done.length, "each request served or 429 with its reason");
    assert.ok(ok.length >= 2, "the first requests are served as the pod frees");
    assert.ok(expired.length >= 1, "the last one waited past defaultRequestTTL (2 s) and got 429");
    assert.ok(
      ok.some((r) => r.ttftMs > 800),
      "a served request waited for the pod to free (held in the gateway, then resumed)",
    );
    await eventually("the queue to drain", async () => (await queueSize(companion.port)) === 0, 3000, 50);
  } catch (e) {
    console.log(gateway.output().slice(-3000));
    throw e;
  } finally {
    await gateway.stop();
    await companion.stop();
    await set.close();
  }
});
