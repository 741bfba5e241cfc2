// Routing-quality benchmark (issue 6): the virtual-time fleet at 50%, 80% and 95% of capacity for each
// workload, comparing random, round-robin, least-request, GIE's default profile, the real filter and the
// oracle. Prints a table, writes build/bench/routing.json and build/bench/routing.png.
// Capacity per workload: closed-loop saturation throughput under least-request (tests/sim/capacity.ts).
// Profiles: GIE's default (queue 2, kv 2, prefix 3) for GIE and the filter; on the multi-LoRA workload both add
// lora-affinity-scorer with weight 1, as a deployment serving adapters configures it.
// Workloads: every kind of workloads.ts, the agent sessions (Anthropic, OpenAI chat with tools, Responses
// bodies, each sent to its API's path) included.
// Gateway replicas: the filter runs behind a load balancer over each count of SIM_BENCH_GATEWAYS; the other
// pickers are global (one decision point, as if every gateway shared one view) and run once, gateways 1.
// Environment: SIM_BENCH_REQUESTS (default 2000 per run), SIM_BENCH_PODS (8), SIM_BENCH_WORKLOADS,
// SIM_BENCH_PICKERS (comma lists) to run a subset; SIM_BENCH_GATEWAYS (comma list, default 1,4),
// SIM_BENCH_LB (round-robin | random), SIM_BENCH_EXCHANGE (1 | 0: the filter's exchange between gateways
// through SIM_BENCH_COMPANIONS (2) replicas of companion/gateway-exchange.ts, SIM_BENCH_EXCHANGE_DELAY_MS (2)
// one way), SIM_BENCH_FILTER_WASM (default build/filter.wasm), SIM_BENCH_SEED (7), SIM_BENCH_LOADS.
import { mkdirSync, writeFileSync } from "node:fs";
import { measureCapacity } from "./capacity";
import { type ExchangeOptions } from "./pickers/exchange";
import { companionExchange } from "./pickers/exchange-loader";
import { runFleet } from "./fleet";
import { LB_KINDS, type LbKind, isLbKind } from "./pickers/gateways";
import { PICKER_NAMES, type PickerName, createPicker } from "./pickers/index";
import { defaultFilterWasm } from "./pickers/filter";
import { renderRoutingPng } from "./plot";
import { loadProfile } from "./profile";
import type { Summary } from "./results";
import { WORKLOAD_KINDS, type WorkloadKind, atRate, clearPrepared, makeWorkload } from "./workloads";

const REQUESTS = Number(process.env.SIM_BENCH_REQUESTS ?? 2000);
const PODS = Number(process.env.SIM_BENCH_PODS ?? 8);
/** Seed of the workloads and the fleet (one seed's p99 moves with small changes: compare over several). */
const SEED = Number(process.env.SIM_BENCH_SEED ?? 7);
const LOADS = (process.env.SIM_BENCH_LOADS ?? "0.5,0.8,0.95").split(",").map(Number);
/** lora-affinity-scorer weight added to the GIE and filter profiles on workloads with adapters. */
const LORA_WEIGHT = 1;
const list = <T extends string>(env: string | undefined, all: readonly T[]): T[] =>
  env ? env.split(",").filter((x): x is T => (all as readonly string[]).includes(x)) : [...all];
const WORKLOADS = list<WorkloadKind>(process.env.SIM_BENCH_WORKLOADS, WORKLOAD_KINDS);
const PICKERS = list<PickerName>(process.env.SIM_BENCH_PICKERS, PICKER_NAMES);
const GATEWAYS = (process.env.SIM_BENCH_GATEWAYS ?? "1,4").split(",").map(Number);
const LB = process.env.SIM_BENCH_LB ?? "round-robin";
const EXCHANGE = process.env.SIM_BENCH_EXCHANGE ?? "1";
const COMPANIONS = Number(process.env.SIM_BENCH_COMPANIONS ?? 2);
const EXCHANGE_DELAY_MS = Number(process.env.SIM_BENCH_EXCHANGE_DELAY_MS ?? 2);
const FILTER_WASM = process.env.SIM_BENCH_FILTER_WASM || defaultFilterWasm();
/** Pickers that model gateway replicas (the others decide globally). */
const REPLICATED: readonly PickerName[] = ["filter"];

interface Row {
  workload: string;
  load: number;
  ratePerSec: number;
  picker: string;
  /** Gateway replicas behind the load balancer (1 for the global pickers). */
  gateways: number;
  summary: Summary;
  pickerStats: Record<string, unknown>;
  virtualS: number;
  wallMs: number;
}

const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : "-");

function checkEnv(): void {
  const bad = (what: string) => {
    process.stderr.write(`routing.bench: ${what}\n`);
    process.exit(2);
  };
  if (GATEWAYS.length === 0 || !GATEWAYS.every((g) => Number.isInteger(g) && g >= 1))
    bad(`SIM_BENCH_GATEWAYS must be a comma list of integers >= 1, not "${process.env.SIM_BENCH_GATEWAYS}"`);
  if (!isLbKind(LB)) bad(`SIM_BENCH_LB must be one of ${LB_KINDS.join(", ")}, not "${LB}"`);
  if (EXCHANGE !== "0" && EXCHANGE !== "1") bad(`SIM_BENCH_EXCHANGE must be 0 or 1, not "${EXCHANGE}"`);
  if (!Number.isInteger(COMPANIONS) || COMPANIONS < 1) bad(`SIM_BENCH_COMPANIONS must be an integer >= 1`);
  if (!(EXCHANGE_DELAY_MS >= 0)) bad(`SIM_BENCH_EXCHANGE_DELAY_MS must be a number >= 0`);
}

async function main(): Promise<void> {
  checkEnv();
  const started = performance.now();
  const lb = LB as LbKind;
  let exchange: ExchangeOptions | undefined;
  if (EXCHANGE === "1" && PICKERS.some((p) => REPLICATED.includes(p))) {
    exchange = {
      create: companionExchange,
      replicas: COMPANIONS,
      upMs: EXCHANGE_DELAY_MS,
      downMs: EXCHANGE_DELAY_MS,
      relayMs: EXCHANGE_DELAY_MS,
    };
  }
  const profile = loadProfile("bench-scaled");
  const rows: Row[] = [];
  const capacities: Record<string, number> = {};
  for (const kind of WORKLOADS) {
    clearPrepared();
    const workload = makeWorkload(kind, { count: REQUESTS, ratePerSec: 1, model: profile.model, seed: SEED });
    const loraWeight = workload.adapters.length > 0 ? LORA_WEIGHT : 0;
    const capacity = measureCapacity({ pods: PODS, profile, workload, seed: SEED });
    capacities[kind] = capacity.requestsPerSec;
    for (const load of LOADS) {
      const rate = load * capacity.requestsPerSec;
      for (const name of PICKERS) {
        for (const gateways of REPLICATED.includes(name) ? GATEWAYS : [1]) {
          const r = runFleet({
            pods: PODS,
            profile,
            picker: createPicker(name, { wasm: FILTER_WASM, gateways, lb, exchange }, loraWeight),
            workload: atRate(workload, rate),
            seed: SEED,
          });
          rows.push({
            workload: kind,
            load,
            ratePerSec: rate,
            picker: name,
            gateways,
            summary: r.summary,
            pickerStats: r.pickerStats,
            virtualS: r.virtualMs / 1000,
            wallMs: r.wallMs,
          });
        }
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
          seed: SEED,
          gateways: GATEWAYS,
          gatewaysApplyTo: REPLICATED,
          loadBalancer: lb,
          exchange: exchange
            ? {
                companions: COMPANIONS,
                oneWayDelayMs: EXCHANGE_DELAY_MS,
                relayDelayMs: EXCHANGE_DELAY_MS,
              }
            : null,
          filterWasm: FILTER_WASM,
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
      picker:
        REPLICATED.includes(r.picker as PickerName) && GATEWAYS.some((g) => g > 1)
          ? `${r.picker} x${r.gateways}`
          : r.picker,
      ttftP99Ms: r.summary.ttftP99Ms,
      outputTokPerSec: r.summary.outputTokPerSec,
    })),
    `Routing quality, ${PODS} simulated vLLM pods (metrics lag ${profile.metricsLagMs} ms); filter on ` +
      `${GATEWAYS.join("/")} gateway(s) behind ${lb}${exchange ? " with the exchange" : ""}`,
  );
  writeFileSync("build/bench/routing.png", png);
  process.stdout.write(
    `wrote build/bench/routing.json and build/bench/routing.png (${rows.length} runs, ${wallS.toFixed(1)} s)\n`,
  );
}

function printTable(kind: string, capacity: number, rows: Row[]): void {
  const out: string[] = [
    `\n${kind}: capacity ${capacity.toFixed(1)} req/s (${PODS} pods; filter gateways behind ${LB}` +
      `${EXCHANGE === "1" ? `, exchange through ${COMPANIONS} companions` : ", no exchange"})`,
  ];
  out.push(
    [
      "load",
      "picker",
      "gw",
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
      .map((h, i) => (i < 2 ? h.padEnd(i === 0 ? 6 : 14) : i === 2 ? h.padStart(3) : h.padStart(10)))
      .join(" "),
  );
  for (const r of rows) {
    const s = r.summary;
    out.push(
      [
        `${Math.round(r.load * 100)}%`.padEnd(6),
        r.picker.padEnd(14),
        String(r.gateways).padStart(3),
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
        .map((c, i) => (i < 3 ? c : c.padStart(10)))
        .join(" "),
    );
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
