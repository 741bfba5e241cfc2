// Failures users hit, over real processes on loopback (issue: "a partial outage must never become a full
// one"): a pod that answers every request with an immediate 500 while its /metrics look healthy, and a pod
// killed under streaming load. Simulated vLLM pods, the bundled companion, the emulator serving envoy/envoy.yaml.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import {
  startSimPods,
  startCompanion,
  startGateway,
  endpointsFile,
  send,
  sleep,
  steadyLoad,
  eventually,
  gatewayPicking,
  type Proc,
  type Reply,
} from "./stack";
import { makeProfile } from "../sim/profile";
import type { SimPod } from "../sim/pod-server";

const profile = makeProfile({});
const completion = (n: number, maxTokens = 4, stream = false) =>
  JSON.stringify({
    model: profile.model,
    prompt: `question ${n}: what is ${n} times ${n}?`,
    max_tokens: maxTokens,
    stream,
  });
const podOf = (r: Reply) => String(r.headers["x-sim-pod"]);

interface Stack {
  pods: SimPod[];
  companion: Proc;
  gateway: Proc;
  close(): Promise<void>;
}

async function startStack(configuration: object = {}): Promise<Stack> {
  const set = await startSimPods({ engines: ["vllm-v1", "vllm-v1", "vllm-v1", "vllm-v1"], profile, timeScale: 10 });
  const companion = await startCompanion(["--endpoints-file", endpointsFile(set.pods), "--refresh-interval", "50ms"]);
  const gateway = await startGateway({
    companionPort: companion.port,
    poolPorts: set.pods.map((p) => p.port),
    configuration: { failureMode: "FailClose", ...configuration },
    concurrency: 2,
  });
  await gatewayPicking(gateway.port, completion(0, 1));
  return {
    pods: set.pods,
    companion,
    gateway,
    close: async () => {
      await gateway.stop();
      await companion.stop();
      await set.close();
    },
  };
}

/** `clients` clients, each sending its next request as soon as the last one is answered, for `ms`. */
async function closedLoop(port: number, clients: number, ms: number): Promise<Reply[]> {
  const replies: Reply[] = [];
  const until = Date.now() + ms;
  const agent = new http.Agent({ keepAlive: true });
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let k = 0; Date.now() < until; k++)
        replies.push(await send(port, "/v1/completions", completion(c * 100_000 + k), {}, agent));
    }),
  );
  agent.destroy();
  return replies;
}

function shareOf(replies: Reply[], pod: string): number {
  return replies.filter((r) => podOf(r) === pod).length / replies.length;
}

test("a pod answering 500 at once gets at most 5% of requests, steady and closed-loop, and is used again once healthy", async () => {
  const [steady, closed] = await Promise.all([startStack(), startStack()]);
  try {
    const badSteady = steady.pods[3];
    const badClosed = closed.pods[3];
    badSteady.failWith = 500;
    badClosed.failWith = 500;
    const [s, c] = await Promise.all([
      steadyLoad(steady.gateway.port, 30, 30_000, completion),
      closedLoop(closed.gateway.port, 8, 30_000),
    ]);
    const steadyShare = shareOf(s, badSteady.name);
    const closedShare = shareOf(c, badClosed.name);
    console.log(
      `failing pod's share: steady 30 req/s ${(100 * steadyShare).toFixed(1)}% of ${s.length}, ` +
        `closed loop (8 clients) ${(100 * closedShare).toFixed(1)}% of ${c.length}`,
    );
    assert.ok(steadyShare <= 0.05, `steady: ${(100 * steadyShare).toFixed(1)}% went to the failing pod`);
    assert.ok(closedShare <= 0.05, `closed loop: ${(100 * closedShare).toFixed(1)}% went to the failing pod`);
    for (const [replies, bad] of [
      [s, badSteady],
      [c, badClosed],
    ] as const)
      for (const r of replies)
        if (r.status !== 200) assert.equal(podOf(r), bad.name, "only the failing pod's requests fail");

    // Healthy again: within a minute it serves requests again (its ejection runs out, a success ends probation).
    badSteady.failWith = null;
    const healed = Date.now();
    let k = 0;
    await eventually(
      "the healed pod to serve again",
      async () => {
        const r = await send(steady.gateway.port, "/v1/completions", completion(1_000_000 + k++));
        return r.status === 200 && podOf(r) === badSteady.name;
      },
      60_000,
      50,
    );
    console.log(`healed pod used again after ${((Date.now() - healed) / 1000).toFixed(1)} s`);
    assert.ok(
      steady.gateway.output().includes(`outlier detection: ${badSteady.address} ejected`),
      steady.gateway.output(),
    );
  } finally {
    await Promise.all([steady.close(), closed.close()]);
  }
});

interface StreamResult {
  pod: string;
  status: number;
  /** ms (Date.now) when the request was sent. */
  sentAt: number;
  /** ms (Date.now) when the response headers arrived; 0 if they never did. */
  headersAt: number;
  /** The stream ended with [DONE]. */
  complete: boolean;
  /** The body of a response other than 200 (the gateway's reason). */
  error: string;
}

/** One streaming completion; resolves when the stream ends, however it ends. */
function streamOnce(port: number, n: number): Promise<StreamResult> {
  return new Promise((resolve) => {
    const result: StreamResult = { pod: "", status: 0, sentAt: Date.now(), headersAt: 0, complete: false, error: "" };
    const body = completion(n, 24, true);
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path: "/v1/completions",
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        result.status = res.statusCode ?? 0;
        result.pod = String(res.headers["x-sim-pod"] ?? "");
        result.headersAt = Date.now();
        let text = "";
        res.on("data", (c: Buffer) => (text += c));
        res.on("end", () => {
          result.complete = res.complete && text.includes("data: [DONE]");
          if (result.status !== 200) result.error = text.trim();
          resolve(result);
        });
        res.on("error", () => resolve(result));
        res.on("aborted", () => resolve(result));
      },
    );
    req.on("error", () => resolve(result));
    req.end(body);
  });
}

test("a pod killed under 50 req/s of streaming load: only the streams already started on it fail", async () => {
  const stack = await startStack();
  try {
    const victim = stack.pods[2];
    const results: Promise<StreamResult>[] = [];
    const started = Date.now();
    let killedAt = 0;
    for (let k = 0; Date.now() - started < 6000; k++) {
      if (killedAt === 0 && Date.now() - started >= 2000) {
        victim.kill();
        killedAt = Date.now();
      }
      results.push(streamOnce(stack.gateway.port, k));
      await sleep(Math.max(0, started + ((k + 1) * 1000) / 50 - Date.now()));
    }
    const all = await Promise.all(results);
    const failed = all.filter((r) => r.status !== 200 || !r.complete);
    const onVictimBefore = all.filter((r) => r.pod === victim.name && r.headersAt > 0 && r.headersAt < killedAt);
    const afterKill = all.filter((r) => r.sentAt >= killedAt);
    console.log(
      `${all.length} streams, ${failed.length} failed, all of them started on the killed pod before it died ` +
        `(${onVictimBefore.length} streams had started there); ${afterKill.filter((r) => r.pod === victim.name).length} ` +
        `of ${afterKill.length} sent after the kill were answered by it`,
    );
    // A failed stream must have started on the killed pod: its response headers came from it (the client
    // can see them after the kill: the gateway relays them a little later, more so under load), or the
    // gateway had already written the request to it when it died (sent before the kill, reset without a
    // response: Envoy retries only requests no byte of which reached a pod, reset-before-request).
    const reachedIt = (r: StreamResult) =>
      (r.pod === victim.name && r.headersAt > 0) ||
      (r.status === 503 && r.sentAt < killedAt && /reset reason: connection termination/.test(r.error));
    for (const r of failed)
      assert.ok(
        reachedIt(r),
        `a stream failed that had not reached the killed pod: ${JSON.stringify(r)} (killed at ${killedAt})`,
      );
    assert.ok(afterKill.length > 150, "the load went on after the kill");
    assert.ok(
      afterKill.every((r) => r.pod !== victim.name),
      "no request sent after the kill is answered by the killed pod",
    );
  } finally {
    await stack.close();
  }
});
