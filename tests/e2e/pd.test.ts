// End to end over loopback, prefill/decode disaggregation: simulated pods labeled llm-d.ai/role prefill and
// decode (static endpoints file), the bundled companion with llm-d-router's P/D config, and the emulator
// gateway with the real filter. The decode pod receives x-prefiller-host-port naming a prefill pod for a
// long uncached prompt; a short prompt, and the long one again (cached on its decode pod), skip the stage.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { stringify } from "yaml";
import {
  startSimPods,
  startCompanion,
  startScrapedGateway,
  tempFile,
  send,
  sleep,
  gatewayPicking,
  ENGINE_LABEL,
  type Proc,
} from "./stack";
import { makeProfile } from "../sim/profile";
import type { SimPod } from "../sim/pod-server";
import { llmdPdConfig } from "../helpers/pd-config";

const profile = makeProfile({ metricsLagMs: 100 });
const MODEL = profile.model;
const HEADER = "x-prefiller-host-port";
// llm-d-router's deploy/config/pd-epp-config.yaml with a threshold of 256 uncached tokens.
const PD_CONFIG = llmdPdConfig(256);
const ROLES = ["prefill", "prefill", "decode", "decode"];

let pods: SimPod[] = [];
let closePods: () => Promise<void> = async () => {};
let companion: Proc;
let gateway: Proc;

const completion = (prompt: string) => JSON.stringify({ model: MODEL, prompt, max_tokens: 2 });
/** A prompt of about `chars` characters that no other test sends. */
const prompt = (tag: string, chars: number) =>
  `${tag}: ` +
  Array.from({ length: Math.ceil(chars / 12) }, (_, i) => `word${tag}${i} `)
    .join("")
    .slice(0, chars);

/** The headers the pod that served `reply` received for it (its last inference request). */
function receivedBy(reply: { headers: Record<string, unknown> }): { pod: SimPod; headers: Record<string, unknown> } {
  const pod = pods.find((p) => p.name === reply.headers["x-sim-pod"]);
  assert.ok(pod, `served by a known pod (${String(reply.headers["x-sim-pod"])})`);
  const last = pod.received[pod.received.length - 1];
  return { pod, headers: last.headers };
}

before(async () => {
  const set = await startSimPods({ engines: ["vllm-v1", "vllm-v1", "vllm-v1", "vllm-v1"], profile, timeScale: 10 });
  pods = set.pods;
  closePods = set.close;
  const endpoints = tempFile(
    "endpoints.yaml",
    stringify(
      pods.map((p, i) => ({ address: p.address, labels: { [ENGINE_LABEL]: "vllm", "llm-d.ai/role": ROLES[i] } })),
    ),
  );
  companion = await startCompanion([
    "--endpoints-file",
    endpoints,
    "--config-file",
    tempFile("config.yaml", PD_CONFIG),
    "--refresh-interval",
    "50ms",
    "--staleness-threshold",
    "2s",
  ]);
  gateway = await startScrapedGateway(
    companion.port,
    pods.map((p) => p.port),
    "pod",
  );
  await gatewayPicking(gateway.port, completion("hi"));
});

after(async () => {
  await gateway?.stop();
  await companion?.stop();
  await closePods();
});

test("a long uncached prompt: the decode pod receives x-prefiller-host-port naming a prefill pod", async () => {
  const prefillAddresses = pods.filter((_, i) => ROLES[i] === "prefill").map((p) => p.address);
  for (let n = 0; n < 4; n++) {
    const r = await send(gateway.port, "/v1/completions", completion(prompt(`long${n}`, 6000)));
    assert.equal(r.status, 200, r.body);
    const { pod, headers } = receivedBy(r);
    assert.equal(ROLES[pods.indexOf(pod)], "decode", `decode pods serve (${pod.name})`);
    assert.ok(
      prefillAddresses.includes(String(headers[HEADER])),
      `${HEADER} names a prefill pod (${String(headers[HEADER])}; prefill pods ${prefillAddresses})`,
    );
  }
});

test("a short prompt, and the long one again (cached on its decode pod), skip the prefill pick", async () => {
  const short = await send(gateway.port, "/v1/completions", completion(prompt("short", 200)));
  assert.equal(short.status, 200, short.body);
  const s = receivedBy(short);
  assert.equal(ROLES[pods.indexOf(s.pod)], "decode");
  assert.equal(s.headers[HEADER], undefined, "no prefill pick for a short prompt");

  const text = prompt("again", 6000);
  const first = await send(gateway.port, "/v1/completions", completion(text));
  assert.equal(first.status, 200, first.body);
  const f = receivedBy(first);
  assert.ok(f.headers[HEADER] !== undefined, "the first time, the prompt is prefilled elsewhere");
  await sleep(200); // the worker VMs exchange their prefix records every tick
  const again = await send(gateway.port, "/v1/completions", completion(text));
  assert.equal(again.status, 200, again.body);
  const a = receivedBy(again);
  assert.equal(a.pod, f.pod, "prefix affinity brings the repeat to the decode pod that holds it");
  assert.equal(a.headers[HEADER], undefined, "the repeat is cached on the decode pod: no prefill pick");
});

test("a client's own sidecar headers (x-prefiller-host-port and the hosts llm-d's sidecar calls) never reach the pod", async () => {
  const spoofed = [HEADER, "x-encoder-hosts-ports", "x-kv-cache-source-host-port", "x-data-parallel-host-port"];
  const r = await send(
    gateway.port,
    "/v1/completions",
    completion(prompt("spoof", 200)),
    Object.fromEntries(spoofed.map((h) => [h, "203.0.113.9:8000"])),
  );
  assert.equal(r.status, 200, r.body);
  for (const h of spoofed) assert.equal(receivedBy(r).headers[h], undefined, h);
});
