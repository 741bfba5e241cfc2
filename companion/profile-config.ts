// `schedulingProfiles` (+ the scorer, picker, prefix and saturation plugins) of an EndpointPickerConfig, mapped
// to the SchedulingProfile the filter applies. GIE's semantics: a scorer referenced without a weight weighs 1;
// a profile without a picker gets max-score-picker; with no `schedulingProfiles` the profile holds every
// scorer and picker plugin defined. Where the config defines no scorer at all we use GIE's default profile
// (queue 2, kv 2, prefix 3) rather than GIE's literal result for such a file (no scorers, random ties).
import { DEFAULT_PROFILE, type PickerKind, type SchedulingProfile } from "./snapshot";
import { asObject, fail, join, onlyKeys, optArray, optBool, optNumber, optString, type Fields } from "./config-fields";

export const SCORER_WEIGHT_FIELDS = {
  "queue-scorer": "queueWeight",
  "kv-cache-utilization-scorer": "kvWeight",
  "prefix-cache-scorer": "prefixWeight",
  "lora-affinity-scorer": "loraWeight",
  "running-requests-size-scorer": "runningWeight",
} as const;
export type ScorerType = keyof typeof SCORER_WEIGHT_FIELDS;
export const PICKER_TYPES: readonly PickerKind[] = ["max-score-picker", "random-picker", "weighted-random-picker"];
export const PREFIX_PRODUCER_TYPE = "approx-prefix-cache-producer";
export const SATURATION_DETECTOR_TYPE = "utilization-detector";

/** GIE's estimate of characters per token, used to turn token block sizes into prompt characters. */
const CHARS_PER_TOKEN = 4;
const U16_MAX = 0xffff;
const U8_MAX = 0xff;

export interface PluginDecl {
  name: string;
  type: string;
  parameters: unknown;
  /** `plugins[i]`, for error messages. */
  path: string;
}

export interface ProfileInput {
  plugins: ReadonlyMap<string, PluginDecl>;
  /** The raw `schedulingProfiles` value (validated here). */
  schedulingProfiles: unknown;
  /** The raw `saturationDetector` value. */
  saturationDetector: unknown;
}

const isScorer = (type: string): type is ScorerType => type in SCORER_WEIGHT_FIELDS;
const isPicker = (type: string): type is PickerKind => (PICKER_TYPES as readonly string[]).includes(type);

interface Ref { plugin: PluginDecl; weight: number | undefined; path: string }

function profileRefs(input: ProfileInput): Ref[] | null {
  const raw = input.schedulingProfiles;
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) {
    const refs = [...input.plugins.values()]
      .filter((p) => isScorer(p.type) || isPicker(p.type))
      .map((plugin) => ({ plugin, weight: undefined, path: plugin.path }));
    return refs.some((r) => isScorer(r.plugin.type)) ? refs : null;
  }
  if (!Array.isArray(raw)) fail("schedulingProfiles", "must be a list", raw);
  if (raw.length > 1) {
    const names = raw.map((p) => (p && typeof p === "object" ? (p as Fields).name : p));
    fail("schedulingProfiles", "only one scheduling profile is supported (the filter applies one profile to every request)", names);
  }
  const path = "schedulingProfiles[0]";
  const profile = asObject(raw[0], path);
  onlyKeys(profile, path, ["name", "plugins"]);
  const name = optString(profile, "name", path);
  if (!name) fail(join(path, "name"), "a scheduling profile needs a name", profile.name);
  const list = optArray(profile, "plugins", path) ?? [];
  return list.map((item, j) => {
    const refPath = join(join(path, "plugins"), j);
    const ref = asObject(item, refPath);
    onlyKeys(ref, refPath, ["pluginRef", "weight"]);
    const pluginRef = optString(ref, "pluginRef", refPath);
    if (!pluginRef) fail(join(refPath, "pluginRef"), "missing plugin reference", ref.pluginRef);
    const plugin = input.plugins.get(pluginRef);
    if (!plugin) fail(join(refPath, "pluginRef"), `no plugin of that name in plugins (defined: ${[...input.plugins.keys()].join(", ") || "none"})`, pluginRef);
    if (!isScorer(plugin.type) && !isPicker(plugin.type)) {
      fail(join(refPath, "pluginRef"), `plugin "${pluginRef}" has type ${plugin.type}, which is neither a scorer nor a picker`, pluginRef);
    }
    const weight = optNumber(ref, "weight", refPath, { min: 0 });
    if (weight !== undefined && isPicker(plugin.type)) fail(join(refPath, "weight"), "a picker has no weight", weight);
    return { plugin, weight, path: refPath };
  });
}

function pickerSettings(plugin: PluginDecl): Pick<SchedulingProfile, "picker" | "fallbackCount"> {
  const path = join(plugin.path, "parameters");
  let maxNumOfEndpoints = 1;
  if (plugin.parameters !== undefined && plugin.parameters !== null) {
    const params = asObject(plugin.parameters, path);
    onlyKeys(params, path, ["maxNumOfEndpoints"]);
    maxNumOfEndpoints = optNumber(params, "maxNumOfEndpoints", path, { integer: true, min: 1 }) ?? 1;
  }
  // The picked endpoint plus `maxNumOfEndpoints - 1` fallbacks; the snapshot carries the count as a u8.
  return { picker: plugin.type as PickerKind, fallbackCount: Math.min(U8_MAX, maxNumOfEndpoints - 1) };
}

const PREFIX_KEYS = ["autoTune", "blockSizeTokens", "blockSize", "hashBlockSize", "maxPrefixBlocksToMatch", "maxPrefixTokensToMatch", "lruCapacityPerServer"];

/**
 * Prefix-cache parameters, from `prefix-cache-scorer` (GIE up to v1.5) or `approx-prefix-cache-producer`
 * (later GIE). `blockSizeTokens` is in tokens (x4 characters); the legacy `blockSize` (v1.1-v1.3) and
 * `hashBlockSize` (v1.0) were already in characters. `autoTune` is accepted and has no effect here: the
 * snapshot carries each endpoint's own cache block size for the filter.
 */
function prefixSettings(plugins: ReadonlyMap<string, PluginDecl>): Pick<SchedulingProfile, "prefixBlockChars" | "prefixMaxBlocks" | "prefixLruPerEndpoint"> {
  const sources = [...plugins.values()].filter((p) => (p.type === "prefix-cache-scorer" || p.type === PREFIX_PRODUCER_TYPE) && p.parameters != null);
  const out = { prefixBlockChars: DEFAULT_PROFILE.prefixBlockChars, prefixMaxBlocks: DEFAULT_PROFILE.prefixMaxBlocks, prefixLruPerEndpoint: DEFAULT_PROFILE.prefixLruPerEndpoint };
  if (sources.length === 0) return out;
  if (sources.length > 1) fail(join(sources[1].path, "parameters"), `prefix-cache parameters are already given by ${sources[0].path} (${sources[0].name})`, sources[1].parameters);
  const src = sources[0];
  const path = join(src.path, "parameters");
  const params = asObject(src.parameters, path);
  onlyKeys(params, path, PREFIX_KEYS);
  optBool(params, "autoTune", path);
  const tokens = optNumber(params, "blockSizeTokens", path, { integer: true, min: 1 });
  const chars = optNumber(params, "blockSize", path, { integer: true, min: 1 }) ?? optNumber(params, "hashBlockSize", path, { integer: true, min: 1 });
  const blockChars = tokens !== undefined ? tokens * CHARS_PER_TOKEN : chars ?? out.prefixBlockChars;
  if (blockChars > U16_MAX) fail(join(path, tokens !== undefined ? "blockSizeTokens" : "blockSize"), `block of ${blockChars} characters is more than the snapshot carries (${U16_MAX})`, tokens ?? chars);
  out.prefixBlockChars = blockChars;
  const maxBlocks = optNumber(params, "maxPrefixBlocksToMatch", path, { integer: true, min: 1, max: U16_MAX });
  const maxTokens = optNumber(params, "maxPrefixTokensToMatch", path, { integer: true, min: 0 });
  if (maxTokens !== undefined && maxTokens > 0) {
    const blocks = Math.max(1, Math.floor(maxTokens / ((tokens ?? blockChars / CHARS_PER_TOKEN) || 1)));
    if (blocks > U16_MAX) fail(join(path, "maxPrefixTokensToMatch"), `${blocks} blocks is more than the snapshot carries (${U16_MAX})`, maxTokens);
    out.prefixMaxBlocks = blocks;
  } else if (maxBlocks !== undefined) {
    out.prefixMaxBlocks = maxBlocks;
  }
  const lru = optNumber(params, "lruCapacityPerServer", path, { integer: true, min: 1, max: U16_MAX });
  if (lru !== undefined) out.prefixLruPerEndpoint = lru;
  return out;
}

function saturationSettings(input: ProfileInput): Pick<SchedulingProfile, "saturationQueue" | "saturationKv"> {
  let ref = SATURATION_DETECTOR_TYPE;
  if (input.saturationDetector !== undefined && input.saturationDetector !== null) {
    const sd = asObject(input.saturationDetector, "saturationDetector");
    onlyKeys(sd, "saturationDetector", ["pluginRef"]);
    ref = optString(sd, "pluginRef", "saturationDetector") || SATURATION_DETECTOR_TYPE;
    const plugin = input.plugins.get(ref);
    if (!plugin && ref !== SATURATION_DETECTOR_TYPE) fail("saturationDetector.pluginRef", "no plugin of that name in plugins", ref);
    if (plugin && plugin.type !== SATURATION_DETECTOR_TYPE) fail("saturationDetector.pluginRef", `plugin "${ref}" has type ${plugin.type}; only ${SATURATION_DETECTOR_TYPE} is supported`, ref);
  }
  const out = { saturationQueue: DEFAULT_PROFILE.saturationQueue, saturationKv: DEFAULT_PROFILE.saturationKv };
  const plugin = input.plugins.get(ref);
  if (!plugin || plugin.type !== SATURATION_DETECTOR_TYPE || plugin.parameters == null) return out;
  const path = join(plugin.path, "parameters");
  const params = asObject(plugin.parameters, path);
  // metricsStalenessThreshold and headroom are accepted; staleness is the companion's --staleness-threshold.
  onlyKeys(params, path, ["queueDepthThreshold", "kvCacheUtilThreshold", "metricsStalenessThreshold", "headroom"]);
  out.saturationQueue = optNumber(params, "queueDepthThreshold", path, { integer: true, min: 1 }) ?? out.saturationQueue;
  out.saturationKv = optNumber(params, "kvCacheUtilThreshold", path, { minExclusive: 0, max: 1 }) ?? out.saturationKv;
  const staleness = params.metricsStalenessThreshold;
  if (staleness !== undefined && typeof staleness !== "string") fail(join(path, "metricsStalenessThreshold"), "must be a duration string such as \"200ms\"", staleness);
  optNumber(params, "headroom", path, { min: 0 });
  return out;
}

/** Validates scorer plugins that take no parameters. */
function checkParameterlessScorer(plugin: PluginDecl): void {
  if (plugin.type === "prefix-cache-scorer" || plugin.parameters == null) return;
  const path = join(plugin.path, "parameters");
  onlyKeys(asObject(plugin.parameters, path), path, []);
}

export function buildProfile(input: ProfileInput): SchedulingProfile {
  for (const p of input.plugins.values()) {
    if (isScorer(p.type)) checkParameterlessScorer(p);
    if (isPicker(p.type)) pickerSettings(p); // validate even when unreferenced
  }
  const refs = profileRefs(input);
  const weights: Pick<SchedulingProfile, "queueWeight" | "kvWeight" | "prefixWeight" | "loraWeight" | "runningWeight"> = refs
    ? { queueWeight: 0, kvWeight: 0, prefixWeight: 0, loraWeight: 0, runningWeight: 0 }
    : { queueWeight: DEFAULT_PROFILE.queueWeight, kvWeight: DEFAULT_PROFILE.kvWeight, prefixWeight: DEFAULT_PROFILE.prefixWeight, loraWeight: DEFAULT_PROFILE.loraWeight, runningWeight: DEFAULT_PROFILE.runningWeight };
  let picker: Pick<SchedulingProfile, "picker" | "fallbackCount"> = { picker: DEFAULT_PROFILE.picker, fallbackCount: DEFAULT_PROFILE.fallbackCount };
  let pickerRef: Ref | null = null;
  for (const ref of refs ?? []) {
    if (isScorer(ref.plugin.type)) {
      weights[SCORER_WEIGHT_FIELDS[ref.plugin.type]] += ref.weight ?? 1; // GIE: a scorer without a weight weighs 1
    } else {
      if (pickerRef) fail(ref.path, `a profile takes one picker; ${pickerRef.plugin.name} is already its picker`, ref.plugin.name);
      pickerRef = ref;
      picker = pickerSettings(ref.plugin);
    }
  }
  return { ...DEFAULT_PROFILE, ...weights, ...picker, ...prefixSettings(input.plugins), ...saturationSettings(input) };
}
