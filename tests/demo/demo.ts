// `make demo`: the picker's job on one machine, in a deployment's shape. Simulated model servers of mixed
// engines, two companion replicas relaying to each other and two gateway replicas (a real `envoy` when one is
// on PATH, else the emulator) serve one shared-prefix chat workload three times: through this picker, and
// through plain round-robin and least-request load balancing. Then a side-by-side table. Ctrl-C stops
// everything. Options: --requests N, --load F, --pods N, --time-scale X, --gateways N (gateway replicas,
// default 2; the client spreads requests over them round-robin, as a load balancer would), --companions N
// (default 2 with several gateways, else 1; docs/GATEWAYS.md) and --picker-only (skip the other two runs).
import { parseArgs } from "node:util";
import { execFileSync } from "node:child_process";
import { SingleBar, Presets } from "cli-progress";
import {
  startSimPods,
  startCompanion,
  startGateway,
  endpointsFile,
  freePort,
  gatewayPicking,
  type Proc,
} from "../e2e/stack";
import { loadProfile, type EngineKind } from "../sim/profile";
import { sharedPrefix, atRate, type SharedPrefixShape, type WorkloadRequest } from "../sim/workloads";
import { measureCapacity } from "../sim/capacity";
import { streamChat, type StreamResult } from "./client";
import { summarize, printTable, type PhaseResult } from "./report";

/** Shared-prefix chat (inference-perf `shared_prefix`): many tenants, each with a long system prompt. */
const DEMO_SHAPE: SharedPrefixShape = {
  groups: 24,
  promptsPerGroup: 8,
  systemTokens: 2000,
  question: { mean: 80, sd: 20 },
  output: { mean: 48, sd: 12 },
};
const ENGINES: EngineKind[] = ["vllm-v1", "vllm-v1", "sglang", "vllm-v0", "triton-trtllm", "trtllm-serve"];
/** Real requests per second the demo aims at (the simulator runs time-scaled so one machine keeps up). */
const REAL_RATE_CAP = 60;

interface Phase {
  name: string;
  withFilter: boolean;
  lb?: "ROUND_ROBIN" | "LEAST_REQUEST";
}
const PHASES: Phase[] = [
  { name: "this picker (wasm filter)", withFilter: true },
  { name: "round-robin", withFilter: false, lb: "ROUND_ROBIN" },
  { name: "least-request", withFilter: false, lb: "LEAST_REQUEST" },
];

const running: Array<{ stop(): Promise<void> }> = [];
let stopping = false;

async function stopAll(): Promise<void> {
  const all = running.splice(0);
  await Promise.all(all.reverse().map((p) => p.stop().catch(() => undefined)));
}

process.on("SIGINT", () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write("\ninterrupted: stopping the gateway, the companion and the simulated pods\n");
  void stopAll().then(() => process.exit(130));
});

function envoyOnPath(): string | undefined {
  try {
    return execFileSync("sh", ["-c", "command -v envoy"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

interface Topology {
  pods: number;
  gateways: number;
  companions: number;
}

/** Companion replicas on loopback, each told the others' ports (--peers). */
async function startCompanions(count: number, endpoints: string): Promise<Proc[]> {
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  return Promise.all(
    ports.map((port) =>
      startCompanion(
        [
          "--endpoints-file",
          endpoints,
          "--refresh-interval",
          "50ms",
          ...(count > 1
            ? [
                "--peers",
                ports
                  .filter((p) => p !== port)
                  .map((p) => `127.0.0.1:${p}`)
                  .join(","),
              ]
            : []),
        ],
        port,
      ),
    ),
  );
}

async function runPhase(
  phase: Phase,
  requests: WorkloadRequest[],
  timeScale: number,
  topology: Topology,
  envoy: string | undefined,
): Promise<PhaseResult> {
  const podCount = topology.pods;
  const profile = loadProfile("bench-scaled");
  const engines = Array.from({ length: podCount }, (_, i) => ENGINES[i % ENGINES.length]);
  const set = await startSimPods({ engines, profile, timeScale });
  running.push({ stop: set.close });
  const companions = phase.withFilter ? await startCompanions(topology.companions, endpointsFile(set.pods)) : [];
  running.push(...companions);
  const companionPorts = companions.length > 0 ? companions.map((c) => c.port) : [await freePort()];
  const gateways: Proc[] = [];
  for (let g = 0; g < topology.gateways; g++) {
    const gateway = await startGateway({
      companionPort: companionPorts,
      poolPorts: set.pods.map((p) => p.port),
      withFilter: phase.withFilter,
      // FailClose: a request the picker cannot place fails visibly instead of going round-robin in its column.
      configuration: { failureMode: "FailClose" },
      fallbackLbPolicy: phase.lb,
      envoy,
      port: await freePort(),
      // One worker each when there are several: the machine runs every replica.
      concurrency: topology.gateways > 1 ? 1 : 2,
    });
    running.push(gateway);
    gateways.push(gateway);
    if (phase.withFilter)
      await gatewayPicking(gateway.port, JSON.stringify({ model: profile.model, prompt: "warm up", max_tokens: 1 }));
  }

  const bar = new SingleBar(
    { format: `  ${phase.name.padEnd(26)} {bar} {value}/{total} requests | {eta}s left`, hideCursor: true },
    Presets.shades_classic,
  );
  bar.start(requests.length, 0);
  const started = performance.now();
  const results: StreamResult[] = [];
  await Promise.all(
    requests.map(async (r, k) => {
      const wait = r.arrivalMs / timeScale - (performance.now() - started);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      if (stopping) return;
      results.push(await streamChat(gateways[k % gateways.length].port, r.bodyText));
      bar.increment();
    }),
  );
  bar.stop();
  const wallMs = performance.now() - started;
  const queries = set.pods.reduce((a, p) => a + p.engine.counters.prefixQueries, 0);
  const hits = set.pods.reduce((a, p) => a + p.engine.counters.prefixHits, 0);
  const perPod = set.pods.map((p) => results.filter((r) => r.pod === p.name).length);
  await stopAll();
  return summarize(phase.name, results, { timeScale, wallMs, prefixHitRate: queries > 0 ? hits / queries : 0, perPod });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: "string", default: "360" },
      load: { type: "string", default: "0.8" },
      pods: { type: "string", default: "6" },
      gateways: { type: "string", default: "2" }, // the shape of a deployment: replicas behind a load balancer
      companions: { type: "string" },
      "picker-only": { type: "boolean", default: false },
      "time-scale": { type: "string" },
    },
  });
  const count = Number(values.requests),
    load = Number(values.load),
    pods = Number(values.pods),
    gatewayCount = Number(values.gateways),
    companionCount = Number(values.companions ?? (gatewayCount > 1 ? 2 : 1));
  const integerIn = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  if (
    !(count > 0) ||
    !(load > 0 && load <= 1.5) ||
    !(pods > 0) ||
    !integerIn(gatewayCount, 1, 16) ||
    !integerIn(companionCount, 1, 4)
  ) {
    process.stderr.write(
      "usage: demo [--requests N] [--load 0.1..1.5] [--pods N] [--gateways 1..16] [--companions 1..4] [--picker-only] [--time-scale X]\n",
    );
    process.exit(2);
  }
  const topology: Topology = { pods, gateways: gatewayCount, companions: companionCount };
  const profile = loadProfile("bench-scaled");
  const workload = sharedPrefix({ count, ratePerSec: 1, model: profile.model, seed: 11 }, DEMO_SHAPE, "demo");
  const engines = Array.from({ length: pods }, (_, i) => ENGINES[i % ENGINES.length]);
  const capacity = measureCapacity({ pods, engines, profile, workload, seed: 11 }).requestsPerSec;
  const rate = load * capacity;
  const timeScale = values["time-scale"]
    ? Number(values["time-scale"])
    : Math.max(0.1, Math.min(20, REAL_RATE_CAP / rate));
  const requests = atRate(workload, rate).requests;
  const envoy = envoyOnPath();
  process.stdout.write(`Inference endpoint picker demo
  ${pods} simulated model servers (${[...new Set(engines)].join(", ")}), 64K-token KV cache each
  workload: shared-prefix chat, ${DEMO_SHAPE.groups} tenants x ${DEMO_SHAPE.systemTokens}-token system prompts, ${count} requests
  load: ${Math.round(load * 100)}% of the pool's capacity (${rate.toFixed(1)} req/s of model time); simulated time runs at ${timeScale.toFixed(2)}x real time
  gateway: ${gatewayCount > 1 ? `${gatewayCount} replicas of ` : ""}${envoy ? `envoy (${envoy})` : "the Node emulator of Envoy (no envoy binary on PATH)"} serving envoy/envoy.yaml${gatewayCount > 1 ? ", requests spread over them round-robin" : ""}
  companion: ${companionCount} replica${companionCount > 1 ? "s" : ""}\n\n`);
  const rows: PhaseResult[] = [];
  for (const phase of values["picker-only"] ? PHASES.filter((p) => p.withFilter) : PHASES) {
    if (stopping) return;
    rows.push(await runPhase(phase, requests, timeScale, topology, envoy));
  }
  printTable(rows, timeScale);
}

main().catch(async (e) => {
  process.stderr.write(`demo failed: ${(e as Error).stack ?? e}\n`);
  await stopAll();
  process.exit(1);
});
