// Scheduling profiles for tests, written as GIE's weights and settings rather than plugin lists.
import type { ProfilePlugin, SchedulingProfile } from "../../companion/snapshot";
import { DEFAULT_PREFIX, DEFAULT_SATURATION } from "../../companion/profile-config";

export type PickerKind = "max-score-picker" | "random-picker" | "weighted-random-picker";

export interface FlatProfile {
  queueWeight: number;
  kvWeight: number;
  prefixWeight: number;
  loraWeight: number;
  runningWeight: number;
  picker: PickerKind;
  fallbackCount: number;
  prefixBlockChars: number;
  prefixMaxBlocks: number;
  prefixLruPerEndpoint: number;
  saturationQueue: number;
  saturationKv: number;
}

/** GIE's default profile (queue 2, kv 2, prefix 3, max-score) in flat form. */
export const DEFAULT_FLAT: FlatProfile = {
  queueWeight: 2,
  kvWeight: 2,
  prefixWeight: 3,
  loraWeight: 0,
  runningWeight: 0,
  picker: "max-score-picker",
  fallbackCount: 0,
  prefixBlockChars: DEFAULT_PREFIX.blockSizeChars,
  prefixMaxBlocks: DEFAULT_PREFIX.maxPrefixBlocksToMatch,
  prefixLruPerEndpoint: DEFAULT_PREFIX.lruCapacityPerServer,
  saturationQueue: DEFAULT_SATURATION.queueDepthThreshold,
  saturationKv: DEFAULT_SATURATION.kvCacheUtilThreshold,
};

/** The plugin list of GIE's default profile with `changes` applied (weights of 0 leave a scorer out). */
export function profileOf(changes: Partial<FlatProfile> = {}): SchedulingProfile {
  const f = { ...DEFAULT_FLAT, ...changes };
  const scorer = (type: string, weight: number, parameters: ProfilePlugin["parameters"] = {}): ProfilePlugin[] =>
    weight > 0 ? [{ role: "scorer", type, weight, parameters }] : [];
  return {
    plugins: [
      ...scorer("queue-scorer", f.queueWeight),
      ...scorer("kv-cache-utilization-scorer", f.kvWeight),
      ...scorer("prefix-cache-scorer", f.prefixWeight, {
        blockSizeChars: f.prefixBlockChars,
        maxPrefixBlocksToMatch: f.prefixMaxBlocks,
        lruCapacityPerServer: f.prefixLruPerEndpoint,
      }),
      ...scorer("lora-affinity-scorer", f.loraWeight),
      ...scorer("running-requests-size-scorer", f.runningWeight),
      { role: "picker", type: f.picker, weight: 0, parameters: { maxNumOfEndpoints: f.fallbackCount + 1 } },
      {
        role: "saturation-detector",
        type: "utilization-detector",
        weight: 0,
        parameters: { queueDepthThreshold: f.saturationQueue, kvCacheUtilThreshold: f.saturationKv },
      },
    ],
  };
}

/** A profile back in flat form (for asserting what a config resolved to). */
export function flatOf(profile: SchedulingProfile): FlatProfile {
  const out: FlatProfile = {
    ...DEFAULT_FLAT,
    queueWeight: 0,
    kvWeight: 0,
    prefixWeight: 0,
    loraWeight: 0,
    runningWeight: 0,
  };
  const weightField: Record<string, keyof FlatProfile> = {
    "queue-scorer": "queueWeight",
    "kv-cache-utilization-scorer": "kvWeight",
    "prefix-cache-scorer": "prefixWeight",
    "lora-affinity-scorer": "loraWeight",
    "running-requests-size-scorer": "runningWeight",
  };
  for (const p of profile.plugins) {
    const n = (name: string): number => p.parameters[name] as number;
    if (p.role === "scorer") (out[weightField[p.type]] as number) += p.weight;
    if (p.type === "prefix-cache-scorer") {
      out.prefixBlockChars = n("blockSizeChars");
      out.prefixMaxBlocks = n("maxPrefixBlocksToMatch");
      out.prefixLruPerEndpoint = n("lruCapacityPerServer");
    }
    if (p.role === "picker") {
      out.picker = p.type as PickerKind;
      out.fallbackCount = n("maxNumOfEndpoints") - 1;
    }
    if (p.role === "saturation-detector") {
      out.saturationQueue = n("queueDepthThreshold");
      out.saturationKv = n("kvCacheUtilThreshold");
    }
  }
  return out;
}
