// The flow-control benchmark's figures from a run's records (docs/SIMULATOR.md "The flow-control
// benchmark"): per class (tenant or band) TTFT p50/p99 over the run and over the workload's window, the
// wait in the gateway, rejections by status and reason, requests lost, and Jain's fairness index.
import { requestClass } from "./fleet";
import type { Phase } from "./flow-workloads";
import { type RequestRecord, percentile } from "./results";

/** The requests of one class arriving in a stretch of time, and how they ended. */
export interface Slice {
  requests: number;
  served: number;
  rejected: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  /** Time in the gateway before the decision (held by flow control), p99 over served requests. */
  waitP99Ms: number;
}

export interface ClassStats {
  class: string;
  /** The whole run. */
  all: Slice;
  /**
   * Arrivals in the second half of the calm time before the window: the reference without overload (the
   * first half lets the pods' caches, batches and lagging gauges settle).
   */
  before: Slice;
  /** Arrivals in the workload's window (the flood, the burst, the empty pool). */
  window: Slice;
}

export interface FlowReport {
  requests: number;
  served: number;
  rejected: number;
  /** Requests that ended neither served nor 429/503 with a reason (unfinished, errors, resets, no reason). */
  lost: number;
  lostExamples: string[];
  /** "status reason" -> count, e.g. "429 rejected-ttl-expired". */
  rejections: Record<string, number>;
  classes: ClassStats[];
  /** Tenants only: Jain's index over normalised throughput and over 1 / mean TTFT in the window. */
  jain: { throughput: number; ttft: number } | null;
}

const ttft = (r: RequestRecord) => r.firstTokenMs - r.arrivalMs;

/** How a request ended, for the loss check: served, or a 429/503 that says why. */
export function endedVisibly(r: RequestRecord): boolean {
  if (r.status === "ok") return true;
  return r.status === "rejected" && (r.httpStatus === 429 || r.httpStatus === 503) && r.reason !== "";
}

/** Jain's fairness index of non-negative values: (sum x)^2 / (n sum x^2), 1 when all equal, 1/n at worst. */
export function jainIndex(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return sq > 0 ? (sum * sum) / (xs.length * sq) : 1;
}

/** Max-min fair shares of `capacity` over demands (water-filling): no one gets more than it asks. */
export function maxMinShares(demands: number[], capacity: number): number[] {
  const share = demands.map(() => 0);
  const order = demands.map((_, i) => i).sort((x, y) => demands[x] - demands[y]);
  let left = capacity;
  order.forEach((i, k) => {
    share[i] = Math.min(demands[i], left / (order.length - k));
    left -= share[i];
  });
  return share;
}

/** Mean offered rate of a class over [from, to) from its phases. */
function offeredRate(phases: Phase[], from: number, to: number): number {
  let n = 0;
  for (const p of phases) n += Math.max(0, Math.min(p.toMs, to) - Math.max(p.fromMs, from)) * p.ratePerSec;
  return n / Math.max(1e-9, to - from);
}

export function flowReport(
  records: RequestRecord[],
  classes: string[],
  window: { fromMs: number; toMs: number },
  offered?: Record<string, Phase[]>,
): FlowReport {
  const rejections: Record<string, number> = {};
  const lost = records.filter((r) => !endedVisibly(r));
  for (const r of records)
    if (r.status === "rejected") {
      const key = `${r.httpStatus} ${r.reason || "(no reason)"}`;
      rejections[key] = (rejections[key] ?? 0) + 1;
    }
  const inWindow = (r: RequestRecord) => r.arrivalMs >= window.fromMs && r.arrivalMs < window.toMs;
  const inBefore = (r: RequestRecord) => r.arrivalMs >= window.fromMs / 2 && r.arrivalMs < window.fromMs;
  const slice = (rs: RequestRecord[]): Slice => {
    const ok = rs.filter((r) => r.status === "ok");
    return {
      requests: rs.length,
      served: ok.length,
      rejected: rs.filter((r) => r.status === "rejected").length,
      ttftP50Ms: percentile(ok.map(ttft), 0.5),
      ttftP99Ms: percentile(ok.map(ttft), 0.99),
      waitP99Ms: percentile(
        ok.map((r) => r.dispatchMs - r.arrivalMs),
        0.99,
      ),
    };
  };
  const stats: ClassStats[] = classes.map((c) => {
    const mine = records.filter((r) => requestClass(r) === c);
    return { class: c, all: slice(mine), before: slice(mine.filter(inBefore)), window: slice(mine.filter(inWindow)) };
  });
  let jain: FlowReport["jain"] = null;
  if (offered && classes.length > 1) {
    // Throughput: requests whose first token came inside the window, per second, each divided by the class's
    // max-min fair share of the total served in the window given the classes' offered rates there.
    const secs = (window.toMs - window.fromMs) / 1000;
    const served = classes.map(
      (c) =>
        records.filter(
          (r) =>
            requestClass(r) === c &&
            r.status === "ok" &&
            r.firstTokenMs >= window.fromMs &&
            r.firstTokenMs < window.toMs,
        ).length / secs,
    );
    const demand = classes.map((c) => offeredRate(offered[c] ?? [], window.fromMs, window.toMs));
    const fair = maxMinShares(
      demand,
      served.reduce((a, b) => a + b, 0),
    );
    const meanTtft = classes.map((c) => {
      const v = records.filter((r) => requestClass(r) === c && r.status === "ok" && inWindow(r)).map(ttft);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : Infinity;
    });
    jain = {
      throughput: jainIndex(served.map((s, i) => (fair[i] > 0 ? s / fair[i] : 1))),
      ttft: jainIndex(meanTtft.map((m) => (Number.isFinite(m) && m > 0 ? 1 / m : 0))),
    };
  }
  return {
    requests: records.length,
    served: records.filter((r) => r.status === "ok").length,
    rejected: records.filter((r) => r.status === "rejected").length,
    lost: lost.length,
    lostExamples: lost.slice(0, 5).map((r) => `${r.id}: ${r.status} ${r.httpStatus} ${r.reason}`.trim()),
    rejections,
    classes: stats,
    jain,
  };
}

/** TTFT p50/p99 per class over time, by arrival in bins of binMs (served requests). */
export function ttftOverTime(
  records: RequestRecord[],
  classes: string[],
  binMs: number,
): { tS: number; class: string; ttftP50Ms: number; ttftP99Ms: number; n: number }[] {
  const out: { tS: number; class: string; ttftP50Ms: number; ttftP99Ms: number; n: number }[] = [];
  const bins = new Map<string, number[]>();
  for (const r of records) {
    if (r.status !== "ok") continue;
    const key = `${Math.floor(r.arrivalMs / binMs)}\u0000${requestClass(r)}`;
    let v = bins.get(key);
    if (!v) bins.set(key, (v = []));
    v.push(ttft(r));
  }
  for (const [key, v] of bins) {
    const [bin, cls] = key.split("\u0000");
    if (!classes.includes(cls)) continue;
    out.push({
      tS: ((Number(bin) + 0.5) * binMs) / 1000,
      class: cls,
      ttftP50Ms: percentile(v, 0.5),
      ttftP99Ms: percentile(v, 0.99),
      n: v.length,
    });
  }
  return out.sort((a, b) => a.tS - b.tS || (a.class < b.class ? -1 : 1));
}
