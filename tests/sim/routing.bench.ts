// Routing-quality benchmark (issue 6): the virtual-time fleet at 50%, 80% and 95% of capacity for each
// workload, comparing random, round-robin, least-request, GIE's default profile, the real filter and the
// oracle. Prints a table, writes build/bench/routing.json and build/bench/routing.png.
// Capacity per workload: closed-loop saturation throughput under least-request (tests/sim/capacity.ts).
// Profiles: GIE's default (queue 2, kv 2, prefix 3) for GIE and the filter; on the multi-LoRA workload both add
// lora-affinity-scorer with weight 1, as a deployment serving adapters configures it.
// Environment: SIM_BENCH_REQUESTS (default 2000 per run), SIM_BENCH_PODS (8), SIM_BENCH_WORKLOADS,
// SIM_BENCH_PICKERS (comma lists) to run a subset.
import { mkdirSync, writeFileSync } from "node:fs";
import { measureCapacity } from "./capacity";
import { runFleet } from "./fleet";
import { PICKER_NAMES, type PickerName, createPicker } from "./pickers/index";
import { renderRoutingPng } from "./plot";
import { loadProfile } from "./profile";
import type { Summary } from "./results";
import { WORKLOAD_KINDS, type WorkloadKind, atRate, clearPrepared, makeWorkload } from "./workloads";

const REQUESTS = Number(process.env.SIM_BENCH_REQUESTS ?? 2000);
const PODS = Number(process.env.SIM_BENCH_PODS ?? 8);
const LOADS = [0.5, 0.8, 0.95];
/** lora-affinity-scorer weight added to the GIE and filter profiles on workloads with adapters. */
const LORA_WEIGHT = 1;
const list = <T extends string>(env: string | undefined, all: readonly T[]): T[] =>
  env ? env.split(",").filter((x): x is T => (all as readonly string[]).includes(x)) : [...all];
const WORKLOADS = list<WorkloadKind>(process.env.SIM_BENCH_WORKLOADS, WORKLOAD_KINDS);
const PICKERS = list<PickerName>(process.env.SIM_BENCH_PICKERS, PICKER_NAMES);

interface Row {
  workload: string;
  load: number;
  ratePerSec: number;
  picker: string;
  summary: Summary;
  pickerStats: Record<string, unknown>;
  virtualS: number;
  wallMs: number;
}

const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : "-");

async function main(): Promise<void> {
  const started = performance.now();
  const profile = loadProfile("bench-scaled");
  const rows: Row[] = [];
  const capacities: Record<string, number> = {};
  for (const kind of WORKLOADS) {
    clearPrepared();
    const workload = makeWorkload(kind, { count: REQUESTS, ratePerSec: 1, model: profile.model, seed: 7 });
    const loraWeight = workload.adapters.length > 0 ? LORA_WEIGHT : 0;
    const capacity = measureCapacity({ pods: PODS, profile, workload, seed: 7 });
    capacities[kind] = capacity.requestsPerSec;
    for (const load of LOADS) {
      const rate = load * capacity.requestsPerSec;
      for (const name of PICKERS) {
        const r = runFleet({
          pods: PODS,
          profile,
          picker: createPicker(name, {}, loraWeight),
          workload: atRate(workload, rate),
          seed: 7,
        });
        rows.push({
          workload: kind,
          load,
          ratePerSec: rate,
          picker: name,
          summary: r.summary,
          pickerStats: r.pickerStats,
          virtualS: r.virtualMs / 1000,
          wallMs: r.wallMs,
        });
      }
    }
    printTable(
      kind,
      capacity.requestsPerSec,
      rows.filter((r) => r.workload === kind),
    );
  }

  const wallS = (performance.now() - started) / 1000;
  mkdirSync("build/bench", { recursive: true });
  const filterStats = rows.find((r) => r.picker === "filter")?.pickerStats ?? null;
  writeFileSync(
    "build/bench/routing.json",
    JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        config: {
          pods: PODS,
          requestsPerRun: REQUESTS,
          loads: LOADS,
          profile,
          seed: 7,
          loraWeightOnAdapterWorkloads: LORA_WEIGHT,
          capacityMethod: "closed-loop saturation under least-request, 25th-75th percentile of completions",
        },
        capacities,
        filter: filterStats,
        wallSeconds: wallS,
        rows,
      },
      null,
      2,
    ),
  );
  const png = await renderRoutingPng(
    rows.map((r) => ({
      workload: r.workload,
      loadPct: r.load * 100,
      picker: r.picker,
      ttftP99Ms: r.summary.ttftP99Ms,
      outputTokPerSec: r.summary.outputTokPerSec,
    })),
    `Routing quality, ${PODS} simulated vLLM pods (metrics lag ${profile.metricsLagMs} ms)`,
  );
  writeFileSync("build/bench/routing.png", png);
  process.stdout.write(
    `wrote build/bench/routing.json and build/bench/routing.png (${rows.length} runs, ${wallS.toFixed(1)} s)\n`,
  );
}

function printTable(kind: string, capacity: number, rows: Row[]): void {
  const out: string[] = [`\n${kind}: capacity ${capacity.toFixed(1)} req/s (${PODS} pods)`];
  out.push(
    [
      "load",
      "picker",
      "TTFT p50",
      "TTFT p99",
      "e2e p50",
      "e2e p99",
      "out tok/s",
      "prefix hit",
      "success",
      "fallbacks",
      "wall ms",
    ]
      .map((h, i) => (i < 2 ? h.padEnd(i === 0 ? 6 : 14) : h.padStart(10)))
      .join(" "),
  );
  for (const r of rows) {
    const s = r.summary;
    out.push(
      [
        `${Math.round(r.load * 100)}%`.padEnd(6),
        r.picker.padEnd(14),
        fmt(s.ttftP50Ms),
        fmt(s.ttftP99Ms),
        fmt(s.e2eP50Ms),
        fmt(s.e2eP99Ms),
        fmt(s.outputTokPerSec),
        `${fmt(s.prefixHitRate * 100, 1)}%`,
        `${fmt(s.successRate * 100, 1)}%`,
        String(s.fallbacks),
        fmt(r.wallMs),
      ]
        .map((c, i) => (i < 2 ? c : c.padStart(10)))
        .join(" "),
    );
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
