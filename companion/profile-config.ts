// `schedulingProfiles` (+ the scorer, picker, prefix and saturation plugins) of an EndpointPickerConfig, mapped
// to the SchedulingProfile the filter applies: a list of plugins with resolved parameters. GIE's semantics: a
// scorer referenced without a weight weighs 1; a profile without a picker gets max-score-picker; with no
// `schedulingProfiles` the profile holds every scorer and picker plugin defined. Where the config defines no
// scorer at all we use GIE's default profile (queue 2, kv 2, prefix 3) rather than GIE's literal result for
// such a file (no scorers, random ties).
import type { ProfilePlugin, SchedulingProfile } from "./snapshot";
import { PROFILE_PLUGIN_TYPES, roleOf } from "./profile-plugins";
import {
  asObject,
  fail,
  join,
  onlyKeys,
  optArray,
  optBool,
  optGoDuration,
  optNumber,
  optString,
  type Fields,
} from "./config-fields";

export const PREFIX_SCORER_TYPE = "prefix-cache-scorer";
export const PREFIX_PRODUCER_TYPE = "approx-prefix-cache-producer";
export const SATURATION_DETECTOR_TYPE = "utilization-detector";
export const DEFAULT_PICKER_TYPE = "max-score-picker";

/** GIE's estimate of characters per token, used to turn token block sizes into prompt characters. */
const CHARS_PER_TOKEN = 4;

/** GIE's defaults (prefix-cache-scorer and utilization-detector), resolved as the filter applies them. */
export const DEFAULT_PREFIX = { blockSizeChars: 64, maxPrefixBlocksToMatch: 256, lruCapacityPerServer: 31250 };
export const DEFAULT_SATURATION = { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 };
/** GIE's default metricsStalenessThreshold of the utilization detector (accepted; staleness is --staleness-threshold). */
const DEFAULT_DETECTOR_STALENESS = "200ms";

const scorerEntry = (type: string, weight: number): ProfilePlugin => ({
  role: "scorer",
  type,
  weight,
  parameters: type === PREFIX_SCORER_TYPE ? { ...DEFAULT_PREFIX } : {},
});

/** GIE's default profile: queue 2, kv 2, prefix 3, max-score picker, utilization detector. */
export const DEFAULT_PROFILE: SchedulingProfile = {
  plugins: [
    scorerEntry("queue-scorer", 2),
    scorerEntry("kv-cache-utilization-scorer", 2),
    scorerEntry(PREFIX_SCORER_TYPE, 3),
    { role: "picker", type: DEFAULT_PICKER_TYPE, weight: 0, parameters: { maxNumOfEndpoints: 1 } },
    { role: "saturation-detector", type: SATURATION_DETECTOR_TYPE, weight: 0, parameters: { ...DEFAULT_SATURATION } },
  ],
};

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
  /** The raw `flowControl` value: llm-d-router's `flowControl.saturationDetector.pluginRef` is read from it. */
  flowControl?: unknown;
  /** Receives a warning per value replaced by GIE's default (GIE falls back the same way, with a log line). */
  warnings?: string[];
}

const isScorer = (type: string): boolean => roleOf(type) === "scorer";
const isPicker = (type: string): boolean => roleOf(type) === "picker";

interface Ref {
  plugin: PluginDecl;
  weight: number | undefined;
  path: string;
}

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
    fail(
      "schedulingProfiles",
      "only one scheduling profile is supported (the filter applies one profile to every request)",
      names,
    );
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
    if (!plugin)
      fail(
        join(refPath, "pluginRef"),
        `no plugin of that name in plugins (defined: ${[...input.plugins.keys()].join(", ") || "none"})`,
        pluginRef,
      );
    if (!isScorer(plugin.type) && !isPicker(plugin.type)) {
      fail(
        join(refPath, "pluginRef"),
        `plugin "${pluginRef}" has type ${plugin.type}, which is neither a scorer nor a picker`,
        pluginRef,
      );
    }
    const weight = optNumber(ref, "weight", refPath, { min: 0 });
    if (weight !== undefined && isPicker(plugin.type)) fail(join(refPath, "weight"), "a picker has no weight", weight);
    return { plugin, weight, path: refPath };
  });
}

/** A plugin's own parameters, resolved by its type's resolver (validates them). */
function ownParameters(plugin: PluginDecl): ProfilePlugin["parameters"] {
  const path = join(plugin.path, "parameters");
  const params =
    plugin.parameters === undefined || plugin.parameters === null ? undefined : asObject(plugin.parameters, path);
  return PROFILE_PLUGIN_TYPES[plugin.type].resolve(params, path);
}

const PREFIX_KEYS = [
  "autoTune",
  "blockSizeTokens",
  "blockSize",
  "hashBlockSize",
  "maxPrefixBlocksToMatch",
  "maxPrefixTokensToMatch",
  "lruCapacityPerServer",
];

/**
 * A whole-number parameter that GIE replaces by its default when it is zero or less (with a log line): its
 * value, undefined when absent or not positive, and for the latter `warn`, which makes the warning once the
 * caller knows what applies instead.
 */
function positiveOrDefault(
  params: Fields,
  key: string,
  path: string,
  check: { max?: number } = {},
): { value: number | undefined; warn: ((instead: string) => string) | null } {
  const v = optNumber(params, key, path, { integer: true, ...check });
  if (v === undefined || v > 0) return { value: v, warn: null };
  return {
    value: undefined,
    warn: (instead) => `${join(path, key)}: ${v} is not positive; ${instead} applies instead, as in GIE`,
  };
}

/**
 * Prefix-cache parameters, from `prefix-cache-scorer` (GIE up to v1.5) or `approx-prefix-cache-producer`
 * (later GIE). `blockSizeTokens` is in tokens (x4 characters); the legacy `blockSize` (v1.1-v1.3) and
 * `hashBlockSize` (v1.0) were already in characters. `autoTune` is accepted and has no effect here. Sizes and
 * counts of zero or less fall back to GIE's defaults as GIE's prefix plugin does (v1.2-v1.4: "is not
 * positive, using default value"; v1.0-v1.1 for lruCapacityPerServer only), with a warning; a
 * `blockSizeTokens` of zero or less counts as not given (what GIE's decoding makes of a 0), so a `blockSize`
 * beside it still applies.
 */
function prefixSettings(plugins: ReadonlyMap<string, PluginDecl>, warnings: string[]): typeof DEFAULT_PREFIX {
  const sources = [...plugins.values()].filter(
    (p) => (p.type === PREFIX_SCORER_TYPE || p.type === PREFIX_PRODUCER_TYPE) && p.parameters != null,
  );
  const out = { ...DEFAULT_PREFIX };
  if (sources.length === 0) return out;
  if (sources.length > 1)
    fail(
      join(sources[1].path, "parameters"),
      `prefix-cache parameters are already given by ${sources[0].path} (${sources[0].name})`,
      sources[1].parameters,
    );
  const src = sources[0];
  const path = join(src.path, "parameters");
  const params = asObject(src.parameters, path);
  onlyKeys(params, path, PREFIX_KEYS);
  optBool(params, "autoTune", path);
  const sizes = ["blockSizeTokens", "blockSize", "hashBlockSize"].map((key) => positiveOrDefault(params, key, path));
  const tokens = sizes[0].value;
  const chars = sizes[1].value ?? sizes[2].value;
  const blockChars = tokens !== undefined ? tokens * CHARS_PER_TOKEN : (chars ?? out.blockSizeChars);
  const applies =
    tokens !== undefined
      ? `blockSizeTokens ${tokens} (${blockChars} characters)`
      : chars !== undefined
        ? `a block of ${chars} characters`
        : `GIE's default block of 16 tokens (${blockChars} characters)`;
  for (const s of sizes) if (s.warn) warnings.push(s.warn(applies));
  if (blockChars > MAX_BLOCK_CHARS)
    fail(
      join(path, tokens !== undefined ? "blockSizeTokens" : "blockSize"),
      `a block of ${blockChars} characters is more than the filter hashes (${MAX_BLOCK_CHARS})`,
      tokens ?? chars,
    );
  out.blockSizeChars = blockChars;
  const maxBlocks = positiveOrDefault(params, "maxPrefixBlocksToMatch", path, { max: MAX_BLOCKS });
  if (maxBlocks.warn) warnings.push(maxBlocks.warn(`GIE's default ${DEFAULT_PREFIX.maxPrefixBlocksToMatch}`));
  const maxTokens = optNumber(params, "maxPrefixTokensToMatch", path, { integer: true, min: 0 });
  if (maxTokens !== undefined && maxTokens > 0) {
    const blocks = Math.max(1, Math.floor(maxTokens / ((tokens ?? blockChars / CHARS_PER_TOKEN) || 1)));
    if (blocks > MAX_BLOCKS)
      fail(
        join(path, "maxPrefixTokensToMatch"),
        `${blocks} blocks is more than the filter matches (${MAX_BLOCKS})`,
        maxTokens,
      );
    out.maxPrefixBlocksToMatch = blocks;
  } else if (maxBlocks.value !== undefined) {
    out.maxPrefixBlocksToMatch = maxBlocks.value;
  }
  const lru = positiveOrDefault(params, "lruCapacityPerServer", path, { max: MAX_LRU });
  if (lru.warn) warnings.push(lru.warn(`GIE's default ${DEFAULT_PREFIX.lruCapacityPerServer}`));
  if (lru.value !== undefined) out.lruCapacityPerServer = lru.value;
  return out;
}

/** Limits the filter applies to the prefix parameters (docs/FILTER.md). */
const MAX_BLOCK_CHARS = 0xffff,
  MAX_BLOCKS = 0xffff,
  MAX_LRU = 0xffff;

/** The inline thresholds of `saturationDetector` in GIE 1.2-1.4 (1.5 and llm-d-router: `pluginRef` only). */
const INLINE_SATURATION_KEYS = ["queueDepthThreshold", "kvCacheUtilThreshold", "metricsStalenessThreshold"];

/**
 * GIE 1.2-1.4's inline `saturationDetector` thresholds, with their loader's fallbacks: a queue depth of zero or
 * less, a KV-cache threshold outside (0, 1) (1 itself included) and a staleness of zero or less take GIE's
 * defaults, each with a warning. Wrong types stay errors, as GIE's strict decoding refuses them.
 */
function inlineSaturation(sd: Fields, warnings: string[]): typeof DEFAULT_SATURATION {
  const out = { ...DEFAULT_SATURATION };
  const path = "saturationDetector";
  const fallback = (key: string, value: unknown, range: string, def: unknown) =>
    warnings.push(`${join(path, key)}: ${value} is ${range}; GIE's default ${def} applies instead, as in GIE`);
  const queue = optNumber(sd, "queueDepthThreshold", path, { integer: true });
  if (queue !== undefined && queue > 0) out.queueDepthThreshold = queue;
  else if (queue !== undefined) fallback("queueDepthThreshold", queue, "not positive", out.queueDepthThreshold);
  const kv = optNumber(sd, "kvCacheUtilThreshold", path);
  if (kv !== undefined && kv > 0 && kv < 1) out.kvCacheUtilThreshold = kv;
  else if (kv !== undefined) fallback("kvCacheUtilThreshold", kv, "outside (0, 1)", out.kvCacheUtilThreshold);
  const staleness = optGoDuration(sd, "metricsStalenessThreshold", path);
  if (staleness !== undefined && staleness <= 0)
    warnings.push(
      `${join(path, "metricsStalenessThreshold")}: ${JSON.stringify(sd.metricsStalenessThreshold)} is not positive; GIE would use its default ${DEFAULT_DETECTOR_STALENESS} (the companion's staleness is --staleness-threshold either way)`,
    );
  return out;
}

/**
 * The saturation detector: the plugin `saturationDetector.pluginRef` names (llm-d-router:
 * `flowControl.saturationDetector.pluginRef`, which wins), else the plugin named `utilization-detector`, else
 * GIE 1.2-1.4's inline thresholds, else GIE's defaults.
 */
function saturationSettings(input: ProfileInput): typeof DEFAULT_SATURATION {
  const warnings = input.warnings ?? [];
  let ref = SATURATION_DETECTOR_TYPE;
  let refPath: string | null = null;
  let inline: Fields | null = null;
  if (input.saturationDetector !== undefined && input.saturationDetector !== null) {
    const sd = asObject(input.saturationDetector, "saturationDetector");
    onlyKeys(sd, "saturationDetector", ["pluginRef", ...INLINE_SATURATION_KEYS]);
    if (INLINE_SATURATION_KEYS.some((k) => sd[k] !== undefined && sd[k] !== null)) inline = sd;
    const r = optString(sd, "pluginRef", "saturationDetector");
    if (r) [ref, refPath] = [r, "saturationDetector.pluginRef"];
  }
  const fc = input.flowControl;
  if (fc !== null && typeof fc === "object" && !Array.isArray(fc)) {
    const fsd = (fc as Fields).saturationDetector;
    if (fsd !== undefined && fsd !== null) {
      const path = "flowControl.saturationDetector";
      const r = optString(asObject(fsd, path), "pluginRef", path);
      if (r) [ref, refPath] = [r, join(path, "pluginRef")];
    }
  }
  const plugin = input.plugins.get(ref);
  if (refPath !== null) {
    if (!plugin && ref !== SATURATION_DETECTOR_TYPE) fail(refPath, "no plugin of that name in plugins", ref);
    if (plugin && plugin.type !== SATURATION_DETECTOR_TYPE)
      fail(refPath, `plugin "${ref}" has type ${plugin.type}; only ${SATURATION_DETECTOR_TYPE} is supported`, ref);
  }
  const configured = plugin && plugin.type === SATURATION_DETECTOR_TYPE && plugin.parameters != null;
  if (inline) {
    // No GIE version takes both: 1.2-1.4 know only the inline thresholds, 1.5 only pluginRef.
    if (refPath !== null || configured)
      fail(
        "saturationDetector",
        `inline thresholds (GIE 1.2-1.4) and a detector plugin (${refPath ?? plugin!.path}, GIE 1.5) both configure the saturation detector; give one`,
        Object.fromEntries(INLINE_SATURATION_KEYS.filter((k) => k in inline!).map((k) => [k, inline![k]])),
      );
    return inlineSaturation(inline, warnings);
  }
  const out = { ...DEFAULT_SATURATION };
  if (!configured) return out;
  const path = join(plugin.path, "parameters");
  const params = asObject(plugin.parameters, path);
  // metricsStalenessThreshold and headroom are accepted; staleness is the companion's --staleness-threshold.
  onlyKeys(params, path, ["queueDepthThreshold", "kvCacheUtilThreshold", "metricsStalenessThreshold", "headroom"]);
  out.queueDepthThreshold =
    optNumber(params, "queueDepthThreshold", path, { integer: true, min: 1 }) ?? out.queueDepthThreshold;
  out.kvCacheUtilThreshold =
    optNumber(params, "kvCacheUtilThreshold", path, { minExclusive: 0, max: 1 }) ?? out.kvCacheUtilThreshold;
  // GIE 1.5's plugin refuses a staleness of zero or less (its loader's inline fallback is gone).
  const staleness = optGoDuration(params, "metricsStalenessThreshold", path);
  if (staleness !== undefined && staleness <= 0)
    fail(join(path, "metricsStalenessThreshold"), "must be positive", params.metricsStalenessThreshold);
  optNumber(params, "headroom", path, { min: 0 });
  return out;
}

export function buildProfile(input: ProfileInput): SchedulingProfile {
  const resolved = new Map<string, ProfilePlugin["parameters"]>();
  for (const p of input.plugins.values()) if (roleOf(p.type)) resolved.set(p.name, ownParameters(p)); // validate even when unreferenced
  const prefix = prefixSettings(input.plugins, input.warnings ?? []);
  const refs = profileRefs(input);
  if (!refs) {
    const plugins = DEFAULT_PROFILE.plugins
      .filter((p) => p.role === "scorer")
      .map((p) => (p.type === PREFIX_SCORER_TYPE ? { ...p, parameters: { ...prefix } } : p));
    return {
      plugins: [
        ...plugins,
        ...pickerAndDetector(
          DEFAULT_PROFILE.plugins.find((p) => p.role === "picker")!,
          input,
        ),
      ],
    };
  }
  // Scorers in reference order; a scorer referenced twice adds its weights (one entry per type).
  const scorers = new Map<string, ProfilePlugin>();
  let picker: ProfilePlugin | null = null;
  let pickerRef: Ref | null = null;
  for (const ref of refs) {
    const type = ref.plugin.type;
    if (isScorer(type)) {
      const weight = ref.weight ?? 1; // GIE: a scorer without a weight weighs 1
      const entry = scorers.get(type);
      if (entry) entry.weight += weight;
      else
        scorers.set(type, {
          role: "scorer",
          type,
          weight,
          parameters: type === PREFIX_SCORER_TYPE ? { ...prefix } : resolved.get(ref.plugin.name)!,
        });
    } else {
      if (pickerRef)
        fail(ref.path, `a profile takes one picker; ${pickerRef.plugin.name} is already its picker`, ref.plugin.name);
      pickerRef = ref;
      picker = { role: "picker", type, weight: 0, parameters: resolved.get(ref.plugin.name)! };
    }
  }
  return {
    plugins: [
      ...scorers.values(),
      ...pickerAndDetector(picker ?? DEFAULT_PROFILE.plugins.find((p) => p.role === "picker")!, input),
    ],
  };
}

function pickerAndDetector(picker: ProfilePlugin, input: ProfileInput): ProfilePlugin[] {
  return [
    picker,
    {
      role: "saturation-detector",
      type: SATURATION_DETECTOR_TYPE,
      weight: 0,
      parameters: { ...saturationSettings(input) },
    },
  ];
}

/** The weight of each scorer type in a profile (0 when absent): for logs, tests and tools. */
export function scorerWeights(profile: SchedulingProfile): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of profile.plugins) if (p.role === "scorer") out[p.type] = (out[p.type] ?? 0) + p.weight;
  return out;
}
