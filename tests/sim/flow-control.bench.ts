// Flow-control benchmark (issue 12; docs/SIMULATOR.md "The flow-control benchmark"): the virtual-time
// fleet on the three flow-control workloads (tenants, bands, scale-from-zero), comparing the filter with
// flow control, the filter without it, GIE-style shedding and least-request. Prints a table per workload,
// writes build/bench/flow-control.json and build/bench/flow-control.png (the bands workload: requests
// waiting and p99 TTFT per band over time). Exits 1 when a request is lost silently (ends neither served nor
// 429/503 with a reason).
// Environment: SIM_FC_PODS (8), SIM_FC_SEED (7), SIM_FC_WORKLOADS, SIM_FC_PICKERS (comma lists),
// SIM_FC_BEFORE_S, SIM_FC_WINDOW_S, SIM_FC_AFTER_S (30 each: calm, overload window, calm),
// SIM_FC_USAGE_LIMIT (1.0), SIM_FC_TTL_S (60: defaultRequestTTL and noEndpointRequestTTL),
// SIM_FC_MIN_CEILING (0.8; "none": static limit), SIM_FC_FAIRNESS (program-aware), SIM_FC_HEADROOM (0.1),
// SIM_FC_TIMELINES (every workload's timeline in the JSON), SIM_BENCH_FILTER_WASM (default build/filter.wasm).
import { mkdirSync, writeFileSync } from "node:fs";
import type { SnapshotFlowControl } from "../../companion/snapshot";
import { measureCapacity } from "./capacity";
import { FLOW_PICKERS, type FlowPickerName, type FlowRun, flowControlFor, runFlow } from "./flow-runs";
import { ttftOverTime } from "./flow-results";
import { BANDS, FLOW_WORKLOADS, type FlowWorkloadKind } from "./flow-workloads";
import { defaultFilterWasm } from "./pickers/filter";
import { type FlowQueueRow, type FlowTtftRow, renderFlowPng } from "./plot";
import { loadProfile } from "./profile";
import { clearPrepared, makeWorkload } from "./workloads";

const num = (name: string, dflt: number) => {
  const v = process.env[name];
  const n = v === undefined || v === "" ? dflt : Number(v);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`flow-control.bench: ${name} must be a number >= 0, not "${v}"\n`);
    process.exit(2);
  }
  return n;
};
const list = <T extends string>(env: string | undefined, all: readonly T[]): T[] =>
  env ? env.split(",").filter((x): x is T => (all as readonly string[]).includes(x)) : [...all];

const PODS = num("SIM_FC_PODS", 8);
const SEED = num("SIM_FC_SEED", 7);
const WORKLOADS = list<FlowWorkloadKind>(process.env.SIM_FC_WORKLOADS, FLOW_WORKLOADS);
const PICKERS = list<FlowPickerName>(process.env.SIM_FC_PICKERS, FLOW_PICKERS);
const BEFORE_MS = num("SIM_FC_BEFORE_S", 30) * 1000;
const WINDOW_MS = num("SIM_FC_WINDOW_S", 30) * 1000;
const AFTER_MS = num("SIM_FC_AFTER_S", 30) * 1000;
const USAGE_LIMIT = num("SIM_FC_USAGE_LIMIT", 1);
const TTL_MS = num("SIM_FC_TTL_S", 60) * 1000;

/** The usage-limit policy a section applies, for the figure's title. */
const usageOf = (fc: SnapshotFlowControl): string =>
  fc.holdback
    ? `priority holdback ${fc.holdback.maxCeiling} to ${fc.holdback.minCeiling} by ${fc.holdback.domain}`
    : `usage limit ${fc.usageLimit}`;
const FILTER_WASM = process.env.SIM_BENCH_FILTER_WASM || defaultFilterWasm();
/** Timeline samples and TTFT bins of the figure. */
const TIMELINE_MS = 500;
const TTFT_BIN_MS = 2000;

const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : "-");

interface Row {
  workload: FlowWorkloadKind;
  picker: FlowPickerName;
  report: FlowRun["report"];
  /**
   * The acceptance's ratio for the class it watches (critical, tenant-a): its p99 TTFT in the window over its
   * unloaded p99, the p99 "before" of the filter without flow control (else least-request, else this picker).
   */
  ratio: { class: string; windowP99Ms: number; unloadedP99Ms: number; unloadedFrom: string; ratio: number } | null;
  pickerStats: Record<string, unknown>;
  flowControl: FlowRun["flowControl"];
  virtualS: number;
  wallMs: number;
  timeline?: FlowRun["result"]["timeline"];
  ttftOverTime?: ReturnType<typeof ttftOverTime>;
}

async function main(): Promise<void> {
  const started = performance.now();
  const profile = loadProfile("bench-scaled");
  // Capacity on ShareGPT lengths (all three workloads use them): closed-loop saturation under least-request.
  const capacity = measureCapacity({
    pods: PODS,
    profile,
    workload: makeWorkload("sharegpt", { count: 2000, ratePerSec: 1, model: profile.model, seed: SEED }),
    seed: SEED,
  }).requestsPerSec;
  const fc = { usageLimit: USAGE_LIMIT, defaultRequestTtlMs: TTL_MS, noEndpointRequestTtlMs: TTL_MS };
  const rows: Row[] = [];
  const windows: Record<string, { fromMs: number; toMs: number }> = {};
  let lost = 0;
  for (const kind of WORKLOADS) {
    clearPrepared();
    for (const picker of PICKERS) {
      const r = runFlow(kind, picker, {
        profile,
        pods: PODS,
        capacityPerSec: capacity,
        seed: SEED,
        beforeMs: BEFORE_MS,
        windowMs: WINDOW_MS,
        afterMs: AFTER_MS,
        flowControl: fc,
        wasm: FILTER_WASM,
        timelineMs: TIMELINE_MS,
      });
      windows[kind] = r.workload.window;
      lost += r.report.lost;
      rows.push({
        workload: kind,
        picker,
        report: r.report,
        ratio: null,
        pickerStats: r.result.pickerStats,
        flowControl: r.flowControl,
        virtualS: r.result.virtualMs / 1000,
        wallMs: r.result.wallMs,
        ...(kind === "bands" || process.env.SIM_FC_TIMELINES
          ? { timeline: r.result.timeline, ttftOverTime: ttftOverTime(r.result.records, [...BANDS], TTFT_BIN_MS) }
          : {}),
      });
    }
    const mine = rows.filter((r) => r.workload === kind);
    const watched = kind === "bands" ? "critical" : kind === "tenants" ? "tenant-a" : null;
    if (watched) {
      for (const r of mine) {
        const ref = ["filter", "least-request", r.picker]
          .map((p) => mine.find((x) => x.picker === p))
          .find((x) => x !== undefined)!;
        const windowP99Ms = r.report.classes.find((c) => c.class === watched)!.window.ttftP99Ms;
        const unloadedP99Ms = ref.report.classes.find((c) => c.class === watched)!.before.ttftP99Ms;
        r.ratio = {
          class: watched,
          windowP99Ms,
          unloadedP99Ms,
          unloadedFrom: ref.picker,
          ratio: windowP99Ms / unloadedP99Ms,
        };
      }
    }
    printTable(
      kind,
      rows.filter((r) => r.workload === kind),
    );
  }

  const wallS = (performance.now() - started) / 1000;
  mkdirSync("build/bench", { recursive: true });
  writeFileSync(
    "build/bench/flow-control.json",
    JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        config: {
          pods: PODS,
          profile: "bench-scaled",
          seed: SEED,
          capacityPerSec: capacity,
          capacityMethod: "ShareGPT lengths, closed-loop saturation under least-request, 25th-75th percentile",
          beforeMs: BEFORE_MS,
          windowMs: WINDOW_MS,
          afterMs: AFTER_MS,
          windows,
          flowControl: Object.fromEntries(WORKLOADS.map((k) => [k, flowControlFor(k, fc)])),
          filterWasm: FILTER_WASM,
          gateways: 1,
          workerVms: 2,
          timelineMs: TIMELINE_MS,
          ttftBinMs: TTFT_BIN_MS,
        },
        wallSeconds: wallS,
        lost,
        rows,
      },
      null,
      1,
    ),
  );
  const bands = rows.filter((r) => r.workload === "bands");
  if (bands.length > 0) {
    const queue: FlowQueueRow[] = [];
    const ttft: FlowTtftRow[] = [];
    for (const r of bands) {
      for (const s of r.timeline ?? []) {
        for (const b of BANDS)
          queue.push({ picker: r.picker, tS: s.tMs / 1000, series: `held: ${b}`, requests: s.held[b] ?? 0 });
        queue.push({ picker: r.picker, tS: s.tMs / 1000, series: "waiting in pods", requests: s.podWaiting });
      }
      for (const t of r.ttftOverTime ?? [])
        ttft.push({ picker: r.picker, tS: t.tS, band: t.class, ttftP99Ms: t.ttftP99Ms });
    }
    const w = windows.bands;
    const png = await renderFlowPng(
      queue,
      ttft,
      bands.map((r) => r.picker),
      { fromS: w.fromMs / 1000, toS: w.toMs / 1000 },
      `Flow control, bands workload: ${PODS} simulated vLLM pods, steady 70% of capacity (${capacity.toFixed(0)} req/s), ` +
        `2x burst ${w.fromMs / 1000}-${w.toMs / 1000} s (shaded); ${usageOf(flowControlFor("bands", fc))}, TTL ${TTL_MS / 1000} s`,
    );
    writeFileSync("build/bench/flow-control.png", png);
  }
  process.stdout.write(
    `wrote build/bench/flow-control.json${bands.length > 0 ? " and build/bench/flow-control.png" : ""} ` +
      `(${rows.length} runs, ${wallS.toFixed(1)} s)\n`,
  );
  if (lost > 0) {
    process.stderr.write(`flow-control.bench: ${lost} request(s) ended without a status and reason (see "lost")\n`);
    process.exit(1);
  }
}

function printTable(kind: FlowWorkloadKind, rows: Row[]): void {
  const w = rows[0]?.report;
  if (!w) return;
  const win = kind === "scale-from-zero" ? "empty pool" : kind === "tenants" ? "flood" : "burst";
  const out: string[] = [`\n${kind}: ${PODS} pods; "before" = calm reference, "${win}" = arrivals in the window`];
  out.push(
    [
      "picker".padEnd(14),
      "class".padEnd(10),
      ...["requests", "served", "rejected", "p50 all", "p99 all", "p99 before", `p99 ${win}`, "wait p99"].map((h) =>
        h.padStart(11),
      ),
    ].join(" "),
  );
  for (const r of rows) {
    for (const c of r.report.classes) {
      out.push(
        [
          r.picker.padEnd(14),
          c.class.padEnd(10),
          ...[
            String(c.all.requests),
            String(c.all.served),
            String(c.all.rejected),
            fmt(c.all.ttftP50Ms),
            fmt(c.all.ttftP99Ms),
            fmt(c.before.ttftP99Ms),
            fmt(c.window.ttftP99Ms),
            fmt(c.all.waitP99Ms),
          ].map((v) => v.padStart(11)),
        ].join(" "),
      );
    }
    const rej = Object.entries(r.report.rejections)
      .map(([k, v]) => `${k}: ${v}`)
      .join(", ");
    const extra = [
      rej ? `rejections ${rej}` : "no rejections",
      r.report.jain
        ? `Jain (flood) throughput ${fmt(r.report.jain.throughput, 3)}, TTFT ${fmt(r.report.jain.ttft, 3)}`
        : "",
      r.ratio
        ? `${r.ratio.class} p99 ${win} ${fmt(r.ratio.ratio, 2)}x its unloaded p99 (${fmt(r.ratio.unloadedP99Ms)} ms: ${r.ratio.unloadedFrom}, before)`
        : "",
      r.report.lost > 0 ? `LOST ${r.report.lost}: ${r.report.lostExamples.join("; ")}` : "",
      `wall ${fmt(r.wallMs)} ms`,
    ].filter((x) => x !== "");
    out.push(`${"".padEnd(14)} ${extra.join("; ")}`);
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
