// Prefill/decode disaggregation in the simulator: the long-prompt workloads P/D is for, the scheduling
// profiles (llm-d-router's EndpointPickerConfig, resolved by the companion's own loader so the bench runs
// what a user would configure), the pods' roles, and one fleet run with the real filter deciding both picks.
// The fleet plays llm-d's decode sidecar (fleet.ts: prefill call with max_tokens 1, KV transfer, decode).
import { loadPickerConfig } from "../../companion/picker-config";
import { POD_ROLE_DECODE, POD_ROLE_LABELED, POD_ROLE_PREFILL, type SchedulingProfile } from "../../companion/snapshot";
import { type FleetResult, runFleet } from "./fleet";
import { filterPicker } from "./pickers/filter";
import type { EngineProfile } from "./profile";
import { Rng, intNormal } from "./rng";
import { type Workload, type WorkloadOptions, chatBody, content, poissonArrivals } from "./workloads";
import { pdPlugins } from "../helpers/pd-config";

/**
 * KV transfer per token between pods: Llama-3 8B's ~128 KB of KV per token (simulation-facts.md) over an
 * effective 25 GB/s (NIXL over 200-400 Gb/s RDMA) is ~0.005 ms; over 25 Gb/s TCP (~3 GB/s) ~0.04 ms.
 */
export const KV_TRANSFER_RDMA_MS_PER_TOKEN = 0.005;
export const KV_TRANSFER_TCP_MS_PER_TOKEN = 0.04;

/** Unique long prompts (no sharing): every token must be prefilled somewhere. */
export interface LongPromptShape {
  prompt: { mean: number; sd: number; min: number; max: number };
  output: { mean: number; sd: number };
}

export const LONG_UNIQUE: LongPromptShape = {
  prompt: { mean: 6000, sd: 2000, min: 2000, max: 12000 },
  output: { mean: 250, sd: 75 },
};

/** Long prompts and long answers (agent and RAG chat): decode time dominates, prefills interrupt it. */
export const LONG_CHAT: LongPromptShape = {
  prompt: { mean: 4000, sd: 1000, min: 2000, max: 8000 },
  output: { mean: 1000, sd: 300 },
};

export function longPrompts(o: WorkloadOptions, shape: LongPromptShape, name = "long-unique"): Workload {
  const rng = new Rng(`${name}:${o.seed ?? 1}`);
  const arrivals = poissonArrivals(new Rng(`${name}-arrivals:${o.seed ?? 1}`), o.count, o.ratePerSec);
  const requests = arrivals.map((arrivalMs, i) => {
    const tokens = intNormal(rng, shape.prompt.mean, shape.prompt.sd, shape.prompt.min, shape.prompt.max);
    const messages = [{ role: "user", content: content(rng, tokens) }];
    return {
      id: `${name}-${i}`,
      arrivalMs,
      api: "chat" as const,
      bodyText: chatBody(o.model, messages, intNormal(rng, shape.output.mean, shape.output.sd, 4)),
    };
  });
  return { name, requests, total: requests.length, adapters: [], ratePerSec: o.ratePerSec };
}

const SCORERS = `- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: max-score-picker
`;
const PROFILE_REFS = (filter: string) => `  plugins:
${filter ? `  - pluginRef: ${filter}\n` : ""}  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: max-score-picker
`;

/** Aggregated serving: GIE's default scorers (queue 2, kv 2, prefix 3) in one profile for every pod. */
export function aggregatedProfile(): SchedulingProfile {
  return loadPickerConfig(`plugins:\n${SCORERS}schedulingProfiles:\n- name: default\n${PROFILE_REFS("")}`).profile;
}

/**
 * P/D: llm-d-router's disagg-profile-handler and prefix-based-pd-decider (`nonCachedTokens`), the same
 * scorers in the decode and prefill profiles, each behind its role filter.
 */
export function pdProfile(nonCachedTokens: number, promptTokens = 0): SchedulingProfile {
  const yaml = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
${SCORERS}- type: prefill-filter
- type: decode-filter
${pdPlugins(nonCachedTokens, promptTokens)}schedulingProfiles:
- name: prefill
${PROFILE_REFS("prefill-filter")}- name: decode
${PROFILE_REFS("decode-filter")}`;
  return loadPickerConfig(yaml).profile;
}

/** Role bits of `prefill` prefill pods followed by `decode` decode pods. */
export function pdRoles(prefill: number, decode: number): number[] {
  return [
    ...Array.from({ length: prefill }, () => POD_ROLE_LABELED | POD_ROLE_PREFILL),
    ...Array.from({ length: decode }, () => POD_ROLE_LABELED | POD_ROLE_DECODE),
  ];
}

export interface PdRunOptions {
  workload: Workload;
  profile: EngineProfile;
  /** Prefill pods first, then decode pods; 0 prefill pods: aggregated serving on `decode` pods. */
  prefillPods: number;
  decodePods: number;
  /** The decider's threshold (ignored when aggregated). */
  nonCachedTokens: number;
  kvTransferMsPerToken: number;
  wasm?: string;
  seed?: number;
}

export function runPd(o: PdRunOptions): FleetResult {
  const aggregated = o.prefillPods === 0;
  return runFleet({
    pods: o.prefillPods + o.decodePods,
    profile: o.profile,
    workload: o.workload,
    seed: o.seed,
    kvTransferMsPerToken: o.kvTransferMsPerToken,
    picker: filterPicker({
      wasm: o.wasm,
      concurrency: 1,
      name: aggregated ? "aggregated" : `pd-${o.prefillPods}p${o.decodePods}d`,
      schedulingProfile: aggregated ? aggregatedProfile() : pdProfile(o.nonCachedTokens),
      ...(aggregated ? {} : { roles: pdRoles(o.prefillPods, o.decodePods) }),
    }),
  });
}
