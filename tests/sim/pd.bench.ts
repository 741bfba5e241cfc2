// Prefill/decode disaggregation benchmark (issue 13): P/D against aggregated serving at equal pod count on
// long-prompt workloads, the real filter deciding every pick (llm-d-router's disagg-profile-handler and
// prefix-based-pd-decider through the companion's config loader), the prefix-based decider's
// nonCachedTokens swept, and the KV transfer at RDMA and at TCP speed. The fleet plays llm-d's decode
// sidecar (prefill call with max_tokens 1, KV transfer of the decode pod's uncached tokens, local decode).
// Loads are fractions of the aggregated fleet's capacity (closed-loop, least-request: capacity.ts).
// Writes build/bench/pd.json and prints a table per workload.
// Environment: SIM_BENCH_REQUESTS (default 1000 per run), SIM_BENCH_PODS (8), SIM_BENCH_LOADS (0.3,0.6,0.9),
// SIM_BENCH_SEED (7), SIM_BENCH_FILTER_WASM (default build/filter.wasm).
import { mkdirSync, writeFileSync } from "node:fs";
import { measureCapacity } from "./capacity";
import { defaultFilterWasm } from "./pickers/filter";
import {
  KV_TRANSFER_RDMA_MS_PER_TOKEN,
  KV_TRANSFER_TCP_MS_PER_TOKEN,
  LONG_CHAT,
  LONG_UNIQUE,
  longPrompts,
  runPd,
} from "./pd";
import { DEFAULT_PROFILE } from "./profile";
import type { Summary } from "./results";
import { SCENARIO_C, atRate, clearPrepared, sharedPrefix, type Workload } from "./workloads";

const REQUESTS = Number(process.env.SIM_BENCH_REQUESTS ?? 1000);
/** Requests in flight per pod while the capacity is measured (the KV cache would allow hundreds). */
const CAPACITY_CONCURRENCY_PER_POD = 24;
const PODS = Number(process.env.SIM_BENCH_PODS ?? 8);
const SEED = Number(process.env.SIM_BENCH_SEED ?? 7);
const LOADS = (process.env.SIM_BENCH_LOADS ?? "0.3,0.6,0.9").split(",").map(Number);
const WASM = process.env.SIM_BENCH_FILTER_WASM || defaultFilterWasm();
/** A threshold no prompt reaches: P/D configured, the prefill pods idle (decode pods prefill everything). */
const NEVER = 1_000_000;

interface Config {
  name: string;
  prefillPods: number;
  nonCachedTokens: number;
  kvTransferMsPerToken: number;
}

const rdma = KV_TRANSFER_RDMA_MS_PER_TOKEN;
/** P/D with `p` prefill pods and the rest decode, threshold `t`, KV transfer `kv` ms per token. */
const pd = (p: number, t: number, kv = rdma, tag = ""): Config => ({
  name: `pd ${p}p/${PODS - p}d t=${t === NEVER ? "never" : t}${tag}`,
  prefillPods: p,
  nonCachedTokens: t,
  kvTransferMsPerToken: kv,
});
const quarter = Math.max(1, Math.round(PODS / 4));
const CONFIGS: Config[] = [
  { name: "aggregated", prefillPods: 0, nonCachedTokens: 0, kvTransferMsPerToken: 0 },
  // The decider's threshold swept on one split ("never": P/D configured, the prefill pods left idle).
  ...[256, 1024, 4096, NEVER].map((t) => pd(quarter, t)),
  // Other splits, and a slow KV transfer.
  pd(Math.max(1, quarter - 1), 1024),
  pd(quarter + 1, 1024),
  pd(quarter, 1024, KV_TRANSFER_TCP_MS_PER_TOKEN, " tcp"),
];

interface Row {
  workload: string;
  load: number;
  ratePerSec: number;
  config: string;
  prefillPods: number;
  decodePods: number;
  nonCachedTokens: number | null;
  kvTransferMsPerToken: number;
  /** Requests the filter gave a prefill pick. */
  prefillShare: number;
  summary: Summary;
  wallMs: number;
}

const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : "-");

function main(): void {
  const started = performance.now();
  // Real-sized pods (500K-token KV): the long prompts fit, as on an H100 serving an 8B model.
  const profile = DEFAULT_PROFILE;
  const workloads: Workload[] = [
    longPrompts({ count: REQUESTS, ratePerSec: 1, model: profile.model, seed: SEED }, LONG_UNIQUE),
    longPrompts({ count: REQUESTS, ratePerSec: 1, model: profile.model, seed: SEED }, LONG_CHAT, "long-chat"),
    sharedPrefix({ count: REQUESTS, ratePerSec: 1, model: profile.model, seed: SEED }, SCENARIO_C, "prefix-c"),
  ];
  const rows: Row[] = [];
  const capacities: Record<string, number> = {};
  for (const workload of workloads) {
    clearPrepared();
    const capacity = measureCapacity({
      pods: PODS,
      profile,
      workload,
      seed: SEED,
      concurrencyPerPod: CAPACITY_CONCURRENCY_PER_POD,
    }).requestsPerSec;
    capacities[workload.name] = capacity;
    for (const load of LOADS) {
      const rate = load * capacity;
      for (const c of CONFIGS) {
        const aggregated = c.prefillPods === 0;
        const r = runPd({
          workload: atRate(workload, rate),
          profile,
          prefillPods: c.prefillPods,
          decodePods: PODS - c.prefillPods,
          nonCachedTokens: c.nonCachedTokens,
          kvTransferMsPerToken: c.kvTransferMsPerToken,
          wasm: WASM,
          seed: SEED,
        });
        rows.push({
          workload: workload.name,
          load,
          ratePerSec: rate,
          config: c.name,
          prefillPods: c.prefillPods,
          decodePods: PODS - c.prefillPods,
          nonCachedTokens: aggregated ? null : c.nonCachedTokens,
          kvTransferMsPerToken: c.kvTransferMsPerToken,
          prefillShare: Number(r.pickerStats.prefills ?? 0) / Math.max(1, r.summary.requests),
          summary: r.summary,
          wallMs: r.wallMs,
        });
      }
    }
    printTable(
      workload.name,
      capacity,
      rows.filter((r) => r.workload === workload.name),
    );
  }
  const wallS = (performance.now() - started) / 1000;
  mkdirSync("build/bench", { recursive: true });
  writeFileSync(
    "build/bench/pd.json",
    JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        config: {
          pods: PODS,
          requestsPerRun: REQUESTS,
          seed: SEED,
          loads: LOADS,
          profile: profile.name,
          kvTransferMsPerToken: { rdma: KV_TRANSFER_RDMA_MS_PER_TOKEN, tcp: KV_TRANSFER_TCP_MS_PER_TOKEN },
          workloads: { "long-unique": LONG_UNIQUE, "long-chat": LONG_CHAT, "prefix-c": SCENARIO_C },
        },
        capacities,
        rows,
        wallS,
      },
      null,
      2,
    ),
  );
  process.stdout.write(`wrote build/bench/pd.json (${rows.length} runs, ${wallS.toFixed(1)} s)\n`);
}

function printTable(kind: string, capacity: number, rows: Row[]): void {
  const head = [
    "load",
    "config",
    "P/D'd",
    "TTFT p50",
    "TTFT p90",
    "ITL ms",
    "e2e p50",
    "e2e p99",
    "out tok/s",
    "success",
  ];
  const out = [`\n${kind}: aggregated capacity ${capacity.toFixed(2)} req/s (${PODS} pods)`];
  out.push(head.map((h, i) => (i === 0 ? h.padEnd(5) : i === 1 ? h.padEnd(26) : h.padStart(9))).join(" "));
  for (const r of rows) {
    const s = r.summary;
    out.push(
      [
        `${Math.round(r.load * 100)}%`.padEnd(5),
        r.config.padEnd(26),
        `${fmt(r.prefillShare * 100)}%`,
        fmt(s.ttftP50Ms),
        fmt(s.ttftP90Ms),
        fmt(s.itlMeanMs, 1),
        fmt(s.e2eP50Ms),
        fmt(s.e2eP99Ms),
        fmt(s.outputTokPerSec),
        `${fmt(s.successRate * 100, 1)}%`,
      ]
        .map((c, i) => (i < 2 ? c : c.padStart(9)))
        .join(" "),
    );
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

main();
