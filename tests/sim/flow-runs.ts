// The flow-control comparison (issue 12): the pickers compared on the flow-control workloads and one run
// of a (workload, picker) pair on the virtual-time fleet, used by flow-control.bench.ts and
// flow-control.test.ts.
//   flow-control   the real filter with the snapshot's flow-control section (the companion's, feature gate on)
//   filter         the real filter without it: today's behaviour (sheddable requests 429 when saturated)
//   gie-shed       GIE's default profile with GIE-style shedding (sheddable 429 when the pool's saturation >= 1)
//   least-request  Envoy's LEAST_REQUEST, no admission at all
import { type FleetResult, runFleet } from "./fleet";
import { type FlowReport, flowReport } from "./flow-results";
import {
  BAND_PRIORITIES,
  type FlowWorkload,
  type FlowWorkloadKind,
  type FlowWorkloadOptions,
  makeFlowWorkload,
} from "./flow-workloads";
import { leastRequestPicker } from "./pickers/basic";
import { type FlowControlSection, filterPicker, flowControlSection } from "./pickers/filter";
import type { FlowBand } from "../../companion/snapshot";
import { giePicker } from "./pickers/gie";
import type { Picker } from "./pickers/picker";
import type { EngineProfile } from "./profile";

export const FLOW_PICKERS = ["flow-control", "filter", "gie-shed", "least-request"] as const;
export type FlowPickerName = (typeof FLOW_PICKERS)[number];

export interface FlowRunOptions extends Omit<FlowWorkloadOptions, "model"> {
  profile: EngineProfile;
  /** Changes to the flow-control section (default: llm-d-router's defaults; round-robin fairness for tenants). */
  flowControl?: Partial<FlowControlSection>;
  wasm?: string;
  /** Timeline period (ms of virtual time). */
  timelineMs?: number;
}

export interface FlowRun {
  workload: FlowWorkload;
  picker: FlowPickerName;
  overload: boolean;
  result: FleetResult;
  report: FlowReport;
  flowControl: FlowControlSection | null;
}

/** priority-holdback-policy's minCeiling for `bands` (SIM_FC_MIN_CEILING; "none": static-usage-limit-policy). */
export const BANDS_MIN_CEILING = 0.8;
/** program-aware-fairness with llm-d-router's defaults (strategy las). */
/** program-aware-fairness's heavyFlowHeadroom for `tenants` (SIM_FC_HEADROOM; 0: off, llm-d-router's behaviour). */
export const HEAVY_FLOW_HEADROOM = 0.1;
export const PROGRAM_AWARE = { weightService: 0.8, weightHeadWait: 0.2, halfLifeSeconds: 60, evictionTtlSeconds: 3600 };

/**
 * The flow-control section a workload runs with: llm-d-router's defaults plus what a user protecting the
 * class the workload watches configures: for `bands`, priority-holdback-policy (ceilings 1.0 for the top band
 * down to BANDS_MIN_CEILING for the lowest, by rank); for `tenants`, fairness between flows (program-aware-
 * fairness; SIM_FC_FAIRNESS=round-robin or global-strict for the others).
 */
export function flowControlFor(kind: FlowWorkloadKind, changes: Partial<FlowControlSection> = {}): FlowControlSection {
  const base = flowControlSection(changes);
  if (kind === "bands" && changes.holdback === undefined) {
    const env = process.env.SIM_FC_MIN_CEILING;
    if (env === "none") return base;
    const minCeiling = env ? Number(env) : BANDS_MIN_CEILING;
    return { ...base, holdback: { domain: "rank", minCeiling, maxCeiling: 1.0 } };
  }
  if (kind !== "tenants" || changes.defaultBand) return base;
  const fairness = (process.env.SIM_FC_FAIRNESS ?? "program-aware") as FlowBand["fairness"];
  const band = { ...base.defaultBand, fairness };
  return {
    ...base,
    defaultBand: band,
    defaultNegativeBand: changes.defaultNegativeBand ?? band,
    programAware:
      fairness === "program-aware"
        ? { ...PROGRAM_AWARE, heavyFlowHeadroom: Number(process.env.SIM_FC_HEADROOM ?? HEAVY_FLOW_HEADROOM) }
        : null,
  };
}

export function flowPicker(name: FlowPickerName, flowControl: FlowControlSection, wasm?: string): Picker {
  const config = { objectivePriorities: BAND_PRIORITIES };
  switch (name) {
    case "flow-control":
      return filterPicker({ wasm, config, flowControl, name });
    case "filter":
      return filterPicker({ wasm, config, name });
    case "gie-shed":
      return giePicker({ shed: { objectivePriorities: BAND_PRIORITIES } });
    case "least-request":
      return leastRequestPicker();
  }
}

export function runFlow(kind: FlowWorkloadKind, picker: FlowPickerName, o: FlowRunOptions): FlowRun {
  const workload = makeFlowWorkload(kind, { ...o, model: o.profile.model });
  const fc = flowControlFor(kind, o.flowControl);
  const result = runFleet({
    pods: workload.pods,
    joins: workload.joins,
    profile: o.profile,
    picker: flowPicker(picker, fc, o.wasm),
    workload,
    seed: o.seed,
    timelineMs: o.timelineMs,
  });
  return {
    workload,
    picker,
    overload: o.overload ?? true,
    result,
    // Jain's index between tenants only (between bands, unequal service is the point).
    report: flowReport(
      result.records,
      workload.classes,
      workload.window,
      kind === "tenants" ? workload.offered : undefined,
    ),
    flowControl: picker === "flow-control" ? fc : null,
  };
}
