// Workloads of the flow-control benchmark (issue 12; docs/SIMULATOR.md "Flow-control workloads"): ShareGPT
// lengths, arrivals Poisson with a piecewise-constant rate per class (tenant or band), rates in fractions of
// the fleet's capacity. Seeded: the same options give the same requests.
//   tenants         two tenants (fairness ids tenant-a, tenant-b); tenant-b floods at 3x its fair share
//                   during the overload window, above capacity with tenant-a's load.
//   bands           three objectives (critical 10, standard 0, sheddable -10) at a steady 70% of capacity, a
//                   2x overload burst in the window, the same mix.
//   scale-from-zero no pod at first; `pods` pods join 20 s after the first request.
import { Rng } from "./rng";
import { type Workload, type WorkloadRequest, chatBody, content, shareGptLengths } from "./workloads";

export const FAIRNESS_HEADER = "x-llm-d-inference-fairness-id";
export const OBJECTIVE_HEADER = "x-llm-d-inference-objective";
/** The bands workload's objectives and their priorities (the filter's objectivePriorities). */
export const BAND_PRIORITIES: Record<string, number> = { critical: 10, standard: 0, sheddable: -10 };
export const BANDS = ["critical", "standard", "sheddable"] as const;
/** The share of each band in the bands workload's traffic (steady and burst alike). */
export const BAND_MIX: Record<string, number> = { critical: 0.2, standard: 0.3, sheddable: 0.5 };
export const TENANTS = ["tenant-a", "tenant-b"] as const;

export const FLOW_WORKLOADS = ["tenants", "bands", "scale-from-zero"] as const;
export type FlowWorkloadKind = (typeof FLOW_WORKLOADS)[number];

/** A constant rate (requests/s) over [fromMs, toMs). */
export interface Phase {
  fromMs: number;
  toMs: number;
  ratePerSec: number;
}

export interface FlowWorkload extends Workload {
  kind: FlowWorkloadKind;
  /** The request classes in report order (tenants or bands; "all" for scale-from-zero). */
  classes: string[];
  /** Offered rate per class over time. */
  offered: Record<string, Phase[]>;
  /** The window the acceptance looks at: the flood, the burst, or the empty pool (until the pods join). */
  window: { fromMs: number; toMs: number };
  /** Pods up at the start and pods joining later (the fleet's `pods` and `joins`). */
  pods: number;
  joins: { atMs: number; pods: number }[];
}

export interface FlowWorkloadOptions {
  /** Requests/s the fleet sustains on ShareGPT lengths (capacity.ts); rates are fractions of it. */
  capacityPerSec: number;
  /** Pods of the fleet (for scale-from-zero: the pods that join). */
  pods: number;
  model: string;
  seed?: number;
  /** Lengths of the calm period before the window, the window, and the calm period after (ms). */
  beforeMs?: number;
  windowMs?: number;
  afterMs?: number;
  /** false: the same workload without the overload (tenant-b at its calm rate; no burst): the reference. */
  overload?: boolean;
  /** scale-from-zero: the pods join this long after the first request (default 20 s). */
  joinAfterMs?: number;
}

/** The tenants workload's rates, as fractions of capacity: each tenant's calm rate and tenant-b's flood (3x its fair share of 0.5). */
export const TENANT_CALM = 0.3;
export const TENANT_FLOOD = 1.5;
export const BANDS_STEADY = 0.7;
export const BANDS_BURST = 2.0;
export const SCALE_FROM_ZERO_LOAD = 0.3;

/** Poisson arrivals of a piecewise-constant rate (each phase its own stretch of the process). */
function arrivals(rng: Rng, phases: Phase[]): number[] {
  const out: number[] = [];
  for (const p of phases) {
    if (p.ratePerSec <= 0) continue;
    for (let t = p.fromMs + rng.exponential(1000 / p.ratePerSec); t < p.toMs; t += rng.exponential(1000 / p.ratePerSec))
      out.push(t);
  }
  return out;
}

export function makeFlowWorkload(kind: FlowWorkloadKind, o: FlowWorkloadOptions): FlowWorkload {
  const seed = o.seed ?? 1;
  const before = o.beforeMs ?? 30_000,
    win = o.windowMs ?? 30_000,
    after = o.afterMs ?? 30_000;
  const overload = o.overload ?? true;
  const C = o.capacityPerSec;
  const end = before + win + after;
  const three = (calm: number, peak: number): Phase[] => [
    { fromMs: 0, toMs: before, ratePerSec: calm * C },
    { fromMs: before, toMs: before + win, ratePerSec: (overload ? peak : calm) * C },
    { fromMs: before + win, toMs: end, ratePerSec: calm * C },
  ];
  let offered: Record<string, Phase[]>;
  let window = { fromMs: before, toMs: before + win };
  const headersOf: Record<string, [string, string][]> = {};
  switch (kind) {
    case "tenants":
      offered = { "tenant-a": three(TENANT_CALM, TENANT_CALM), "tenant-b": three(TENANT_CALM, TENANT_FLOOD) };
      for (const t of TENANTS) headersOf[t] = [[FAIRNESS_HEADER, t]];
      break;
    case "bands":
      offered = Object.fromEntries(BANDS.map((b) => [b, three(BANDS_STEADY * BAND_MIX[b], BANDS_BURST * BAND_MIX[b])]));
      for (const b of BANDS) headersOf[b] = [[OBJECTIVE_HEADER, b]];
      break;
    case "scale-from-zero":
      offered = { all: [{ fromMs: 0, toMs: end, ratePerSec: SCALE_FROM_ZERO_LOAD * C }] };
      headersOf.all = [];
      break;
  }
  const classes = Object.keys(offered);
  const requests: WorkloadRequest[] = [];
  for (const cls of classes) {
    const times = arrivals(new Rng(`flow-${kind}-arrivals:${seed}:${cls}`), offered[cls]);
    const rng = new Rng(`flow-${kind}:${seed}:${cls}`);
    times.forEach((arrivalMs, i) => {
      const { promptTokens, outputTokens } = shareGptLengths(rng);
      requests.push({
        id: `${kind}-${cls}-${i}`,
        arrivalMs,
        api: "chat",
        bodyText: chatBody(o.model, [{ role: "user", content: content(rng, promptTokens) }], outputTokens),
        headers: headersOf[cls],
        ...(kind === "tenants" ? { tenant: cls } : kind === "bands" ? { objective: cls } : {}),
      });
    });
  }
  requests.sort((a, b) => a.arrivalMs - b.arrivalMs || (a.id < b.id ? -1 : 1));
  let pods = o.pods;
  let joins: FlowWorkload["joins"] = [];
  if (kind === "scale-from-zero") {
    const first = requests.length > 0 ? requests[0].arrivalMs : 0;
    const joinAt = first + (o.joinAfterMs ?? 20_000);
    pods = 0;
    joins = [{ atMs: joinAt, pods: o.pods }];
    window = { fromMs: first, toMs: joinAt };
  }
  return {
    name: kind,
    kind,
    requests,
    total: requests.length,
    adapters: [],
    ratePerSec: (requests.length * 1000) / Math.max(1, end),
    classes,
    offered,
    window,
    pods,
    joins,
  };
}
