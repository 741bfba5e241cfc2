// `schedulingProfiles` (+ the scorer, picker, prefix and saturation plugins) of an EndpointPickerConfig, mapped
// to the SchedulingProfile the filter applies: a list of plugins with resolved parameters. GIE's semantics: a
// scorer referenced without a weight weighs 1; a profile without a picker gets max-score-picker; with no
// `schedulingProfiles` the profile holds every scorer and picker plugin defined. Where the config defines no
// scorer at all we use GIE's default profile (queue 2, kv 2, prefix 3) rather than GIE's literal result for
// such a file (no scorers, random ties).
import type { Disaggregation, ProfilePlugin, SchedulingProfile } from "./snapshot";
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
import {
  APPROX_PRODUCER_TYPE,
  PRODUCER_NAME_KEY,
  fallbackProducers,
  fallbackWarning,
  scorerProducer,
} from "./prefix-producers";
import { ABSENT_DATA_PLUGINS } from "./absent-data-plugins";

export const PREFIX_SCORER_TYPE = "prefix-cache-scorer";
export const PREFIX_PRODUCER_TYPE = APPROX_PRODUCER_TYPE;
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
  /** Receives the notes for the log (plugins accepted and not run). */
  notes?: string[];
}

/** A profile plugin's role; plugins over data this project lacks keep theirs, to be left out (absent-data-plugins.ts). */
const roleIn = (type: string): string | undefined => roleOf(type) ?? ABSENT_DATA_PLUGINS[type]?.role;
const isScorer = (type: string): boolean => roleIn(type) === "scorer";
const isPicker = (type: string): boolean => roleIn(type) === "picker";
const isFilter = (type: string): boolean => roleIn(type) === "filter";
const isAbsent = (type: string): boolean => ABSENT_DATA_PLUGINS[type] !== undefined;

/** llm-d-router's profile handlers (P/D, E/P/D, data parallel) and stage deciders, read below. */
export const PD_HANDLER_TYPE = "disagg-profile-handler";
/** Deprecated since llm-d-router v0.7.0; its parameters are the flat ones. */
export const LEGACY_PD_HANDLER_TYPE = "pd-profile-handler";
export const PREFIX_PD_DECIDER_TYPE = "prefix-based-pd-decider";
export const ALWAYS_PD_DECIDER_TYPE = "always-disagg-pd-decider";
/** llm-d-router's encode decider: encode when the request carries images, video or audio. */
export const MULTIMODAL_DECIDER_TYPE = "always-disagg-multimodal-decider";
/** Deprecated since Istio 1.28.1 (llm-d-router): one profile, the pick's port rewritten to `primaryPort`. */
export const DP_HANDLER_TYPE = "data-parallel-profile-handler";
export const PD_PLUGIN_TYPES = [
  PD_HANDLER_TYPE,
  LEGACY_PD_HANDLER_TYPE,
  PREFIX_PD_DECIDER_TYPE,
  ALWAYS_PD_DECIDER_TYPE,
  MULTIMODAL_DECIDER_TYPE,
  DP_HANDLER_TYPE,
];
/** llm-d-router's token estimate without a tokenizer: 4 prompt bytes per token. */
export const PD_BYTES_PER_TOKEN = 4;
const DECODE_FILTER_TYPE = "decode-filter";
const PREFILL_FILTER_TYPE = "prefill-filter";

interface Ref {
  plugin: PluginDecl;
  weight: number | undefined;
  path: string;
}

interface ProfileDecl {
  name: string;
  /** `schedulingProfiles[i]`, or "" for the profile made of every plugin (no `schedulingProfiles`). */
  path: string;
  refs: Ref[];
}

/** The configured profiles; null: no `schedulingProfiles` and no scorer (GIE's default profile applies). */
function profileDecls(input: ProfileInput): ProfileDecl[] | null {
  const raw = input.schedulingProfiles;
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) {
    const refs = [...input.plugins.values()]
      .filter((p) => isScorer(p.type) || isPicker(p.type))
      .map((plugin) => ({ plugin, weight: undefined, path: plugin.path }));
    return refs.some((r) => isScorer(r.plugin.type)) ? [{ name: "", path: "", refs }] : null;
  }
  if (!Array.isArray(raw)) fail("schedulingProfiles", "must be a list", raw);
  const seen = new Set<string>();
  return raw.map((item, i) => {
    const path = `schedulingProfiles[${i}]`;
    const profile = asObject(item, path);
    onlyKeys(profile, path, ["name", "plugins"]);
    const name = optString(profile, "name", path);
    if (!name) fail(join(path, "name"), "a scheduling profile needs a name", profile.name);
    if (seen.has(name)) fail(join(path, "name"), "profile name used twice", name);
    seen.add(name);
    const list = optArray(profile, "plugins", path) ?? [];
    return { name, path, refs: list.map((item, j) => profileRef(input, join(join(path, "plugins"), j), item)) };
  });
}

function profileRef(input: ProfileInput, refPath: string, item: unknown): Ref {
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
  if (!isScorer(plugin.type) && !isPicker(plugin.type) && !isFilter(plugin.type)) {
    fail(
      join(refPath, "pluginRef"),
      `plugin "${pluginRef}" has type ${plugin.type}, which is neither a scorer nor a picker`,
      pluginRef,
    );
  }
  const weight = optNumber(ref, "weight", refPath, { min: 0 });
  if (weight !== undefined && !isScorer(plugin.type))
    fail(join(refPath, "weight"), `a ${roleIn(plugin.type)} has no weight`, weight);
  return { plugin, weight, path: refPath };
}

/** The P/D handler's settings (llm-d-router's names and defaults). */
interface HandlerSettings {
  decode: string;
  prefill: string;
  encode: string;
  /** The prefill decider's plugin name (undefined: none, P/D off; legacy handler: its default). */
  decider: string | undefined;
  deciderPath: string;
  /** The encode decider's plugin name (undefined: none, no encode stage). */
  encodeDecider: string | undefined;
  encodeDeciderPath: string;
  prefillFirst: boolean;
}

const FLAT_HANDLER_KEYS = [
  "decodeProfile",
  "prefillProfile",
  "encodeProfile",
  "prefillDeciderPluginName",
  "encodeDeciderPluginName",
  "deciderPluginName",
];

function handlerSettings(handler: PluginDecl, warnings: string[]): HandlerSettings {
  const path = join(handler.path, "parameters");
  const params = handler.parameters == null ? {} : asObject(handler.parameters, path);
  const str = (obj: Fields, key: string, p: string, def: string): string => optString(obj, key, p) || def;
  if (handler.type === LEGACY_PD_HANDLER_TYPE) {
    // The prefix plugin names change nothing here; primaryPort is data parallel's (dataParallel below).
    onlyKeys(params, path, [
      "decodeProfile",
      "prefillProfile",
      "deciderPluginName",
      "primaryPort",
      "prefixMatchInfoProducerName",
      "prefixPluginType",
      "prefixPluginName",
    ]);
    const port = optNumber(params, "primaryPort", path, { integer: true, min: 0, max: 65535 }) ?? 0;
    if (port > 0) warnings.push(primaryPortWarning(handler, port));
    for (const k of ["prefixMatchInfoProducerName", "prefixPluginType", "prefixPluginName"]) optString(params, k, path);
    return {
      decode: str(params, "decodeProfile", path, "decode"),
      prefill: str(params, "prefillProfile", path, "prefill"),
      encode: "encode",
      decider: str(params, "deciderPluginName", path, PREFIX_PD_DECIDER_TYPE),
      deciderPath: join(path, "deciderPluginName"),
      encodeDecider: undefined,
      encodeDeciderPath: "",
      prefillFirst: false,
    };
  }
  onlyKeys(params, path, ["profiles", "deciders", "stageOrder", ...FLAT_HANDLER_KEYS]);
  const flat = FLAT_HANDLER_KEYS.filter((k) => params[k] !== undefined && params[k] !== null);
  const nested = ["profiles", "deciders"].filter((k) => params[k] !== undefined && params[k] !== null);
  if (flat.length > 0 && nested.length > 0)
    fail(
      join(path, flat[0]),
      `the deprecated flat parameters and ${nested.join("/")} cannot be mixed; use one schema`,
      params[flat[0]],
    );
  let settings: HandlerSettings;
  if (flat.length > 0) {
    for (const k of FLAT_HANDLER_KEYS) optString(params, k, path);
    if (params.prefillDeciderPluginName != null && params.deciderPluginName != null)
      fail(
        join(path, "deciderPluginName"),
        "prefillDeciderPluginName is given too (deciderPluginName is its alias)",
        params.deciderPluginName,
      );
    const deciderKey = params.prefillDeciderPluginName != null ? "prefillDeciderPluginName" : "deciderPluginName";
    settings = {
      decode: str(params, "decodeProfile", path, "decode"),
      prefill: str(params, "prefillProfile", path, "prefill"),
      encode: str(params, "encodeProfile", path, "encode"),
      decider: optString(params, deciderKey, path) || undefined,
      deciderPath: join(path, deciderKey),
      encodeDecider: optString(params, "encodeDeciderPluginName", path) || undefined,
      encodeDeciderPath: join(path, "encodeDeciderPluginName"),
      prefillFirst: false,
    };
  } else {
    const pp = join(path, "profiles");
    const profiles = params.profiles == null ? {} : asObject(params.profiles, pp);
    onlyKeys(profiles, pp, ["decode", "prefill", "encode"]);
    const dp = join(path, "deciders");
    const deciders = params.deciders == null ? {} : asObject(params.deciders, dp);
    onlyKeys(deciders, dp, ["prefill", "encode"]);
    settings = {
      decode: str(profiles, "decode", pp, "decode"),
      prefill: str(profiles, "prefill", pp, "prefill"),
      encode: str(profiles, "encode", pp, "encode"),
      decider: optString(deciders, "prefill", dp) || undefined,
      deciderPath: join(dp, "prefill"),
      encodeDecider: optString(deciders, "encode", dp) || undefined,
      encodeDeciderPath: join(dp, "encode"),
      prefillFirst: false,
    };
  }
  // llm-d-router: case-insensitive, '-' and '_' ignored; "" means decode-first.
  const order = (optString(params, "stageOrder", path) ?? "").toLowerCase().replace(/[-_]/g, "");
  if (order === "prefill" || order === "prefillfirst") settings.prefillFirst = true;
  else if (order !== "" && order !== "decode" && order !== "decodefirst")
    fail(join(path, "stageOrder"), "must be decode-first or prefill-first", params.stageOrder);
  if (settings.prefillFirst && settings.decider !== undefined)
    fail(
      join(path, "stageOrder"),
      "prefill-first takes no prefill decider (deciders.prefill is set)",
      params.stageOrder,
    );
  return settings;
}

const DECIDER_TYPES = [PREFIX_PD_DECIDER_TYPE, ALWAYS_PD_DECIDER_TYPE, MULTIMODAL_DECIDER_TYPE];

/** The decider plugin a handler names (any of llm-d-router's deciders may serve either stage). */
function deciderPlugin(input: ProfileInput, name: string, path: string, stage: string): PluginDecl {
  const plugin = input.plugins.get(name);
  if (!plugin) fail(path, "no plugin of that name in plugins", name);
  if (!DECIDER_TYPES.includes(plugin.type))
    fail(
      path,
      `plugin "${name}" has type ${plugin.type}, which is not ${stage === "encode" ? "an" : "a"} ${stage} decider`,
      name,
    );
  return plugin;
}

/** The prefill decider named by the handler, resolved. */
function deciderSettings(
  input: ProfileInput,
  s: HandlerSettings,
): Pick<Disaggregation, "decider" | "nonCachedTokens" | "promptTokens"> {
  if (s.prefillFirst) return { decider: "always", nonCachedTokens: 0, promptTokens: 0 };
  if (s.decider === undefined) return { decider: "none", nonCachedTokens: 0, promptTokens: 0 };
  const plugin = deciderPlugin(input, s.decider, s.deciderPath, "prefill");
  if (plugin.type === MULTIMODAL_DECIDER_TYPE)
    input.warnings?.push(
      `${s.deciderPath}: ${plugin.name} (${MULTIMODAL_DECIDER_TYPE}) prefills elsewhere only multimodal requests, and the filter does not read a request's images, video or audio: no request is prefilled elsewhere`,
    );
  return deciderOf(plugin);
}

/** A decider plugin's parameters, checked (every decider is, referenced or not). */
function deciderOf(plugin: PluginDecl): Pick<Disaggregation, "decider" | "nonCachedTokens" | "promptTokens"> {
  const path = join(plugin.path, "parameters");
  const params = plugin.parameters == null ? {} : asObject(plugin.parameters, path);
  if (plugin.type === ALWAYS_PD_DECIDER_TYPE || plugin.type === MULTIMODAL_DECIDER_TYPE) {
    onlyKeys(params, path, []);
    const decider = plugin.type === ALWAYS_PD_DECIDER_TYPE ? "always" : "none";
    return { decider, nonCachedTokens: 0, promptTokens: 0 };
  }
  onlyKeys(params, path, ["nonCachedTokens", "promptTokens"]);
  return {
    decider: "prefix-based",
    nonCachedTokens: optNumber(params, "nonCachedTokens", path, { integer: true, min: 0, max: 0xffffffff }) ?? 0,
    promptTokens: optNumber(params, "promptTokens", path, { integer: true, min: 0, max: 0xffffffff }) ?? 0,
  };
}

/**
 * The encode stage (llm-d-router's E/PD, E/P/D): its profile is checked and not run. The decode pod's sidecar
 * then gets no `x-encoder-hosts-ports`, and the decode (or prefill) pod encodes a request's images, video and
 * audio itself, as llm-d's sidecar does whenever no encoder is named; the decode and prefill picks are the
 * same. A profile named for the encode stage without an encode decider never runs in llm-d-router either.
 */
function encodeStage(input: ProfileInput, s: HandlerSettings, decl: ProfileDecl): void {
  if (s.encodeDecider === undefined)
    return void input.warnings?.push(
      `${join(decl.path, "name")} (${decl.name}): no encode decider (deciders.encode), so llm-d-router never runs this profile: nor does the filter`,
    );
  const decider = deciderPlugin(input, s.encodeDecider, s.encodeDeciderPath, "encode");
  input.warnings?.push(
    `${decl.path} (${decl.name}): the encode stage (${decider.name}, ${decider.type}) is not run: requests carry no x-encoder-hosts-ports, so the decode pod (or the prefill pod) encodes images, video and audio itself, as llm-d's sidecar does when no encoder is named; the decode and prefill picks are unchanged`,
  );
}

/**
 * data-parallel-profile-handler: one profile, as a single-profile handler. llm-d-router sends the request to
 * the pod's `primaryPort` with the picked rank in `x-data-parallel-host-port` (a workaround for Istio before
 * 1.28.1, deprecated there in favour of single-profile-handler); here the request goes to the picked rank's
 * own IP:PORT, which llm-d's sidecar serves too: the same rank serves it.
 */
function dataParallel(handler: PluginDecl, warnings: string[]): void {
  const path = join(handler.path, "parameters");
  const params = handler.parameters == null ? {} : asObject(handler.parameters, path);
  onlyKeys(params, path, ["primaryPort"]);
  const port = optNumber(params, "primaryPort", path, { integer: true, min: 0, max: 65535 }) ?? 8000;
  warnings.push(primaryPortWarning(handler, port));
}

/** What a handler's `primaryPort` (data parallel, also pd-profile-handler's) does upstream and here. */
function primaryPortWarning(handler: PluginDecl, port: number): string {
  return `plugin ${handler.name} (${handler.type}): requests go to the picked rank's own IP:PORT, not to primaryPort ${port} with x-data-parallel-host-port (llm-d-router's workaround for Istio before 1.28.1); llm-d's sidecar serves every rank's port, so the same rank serves the request, provided the pool's cluster knows every rank's port (the InferencePool's targetPorts)`;
}

/** A plugin's own parameters, resolved by its type's resolver (validates them). */
function ownParameters(plugin: PluginDecl, warnings: string[]): ProfilePlugin["parameters"] {
  const path = join(plugin.path, "parameters");
  const params =
    plugin.parameters === undefined || plugin.parameters === null ? undefined : asObject(plugin.parameters, path);
  return PROFILE_PLUGIN_TYPES[plugin.type].resolve(params, path, (w) => warnings.push(w));
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

/** The prefix index's settings and prefix-cache-scorer's match-length term (written only when it is on). */
export type PrefixSettings = typeof DEFAULT_PREFIX & { matchLengthWeight?: number; matchLengthScaleChars?: number };

/** llm-d-router's prefix-cache-scorer parameters: the producer it reads, and the weight of the match's length. */
const SCORER_KEYS = [PRODUCER_NAME_KEY, "matchLengthWeight", "matchLengthScaleTokens"];
/** llm-d-router's default matchLengthScaleTokens. */
const MATCH_LENGTH_SCALE_TOKENS = 8192;

/**
 * prefix-cache-scorer's match-length term (llm-d-router): score = w x min(1, matched tokens / scale)^2 +
 * (1 - w) x matched / total blocks; w = 0 (the default) is the plain ratio and adds no parameter.
 */
function matchLength(plugins: ReadonlyMap<string, PluginDecl>): Partial<PrefixSettings> {
  let out: Partial<PrefixSettings> = {};
  let from: string | null = null;
  for (const p of plugins.values()) {
    if (p.type !== PREFIX_SCORER_TYPE || p.parameters == null) continue;
    const path = join(p.path, "parameters");
    const params = asObject(p.parameters, path);
    onlyKeys(params, path, [...PREFIX_KEYS, ...SCORER_KEYS]);
    const w = optNumber(params, "matchLengthWeight", path, { min: 0, max: 1 }) ?? 0;
    const scale = optNumber(params, "matchLengthScaleTokens", path, { integer: true }) ?? MATCH_LENGTH_SCALE_TOKENS;
    if (w > 0 && scale <= 0)
      fail(join(path, "matchLengthScaleTokens"), "must be greater than 0 when matchLengthWeight is", scale);
    const mine: Partial<PrefixSettings> =
      w > 0 ? { matchLengthWeight: w, matchLengthScaleChars: Math.min(scale * CHARS_PER_TOKEN, MAX_SCALE_CHARS) } : {};
    if (from !== null && JSON.stringify(mine) !== JSON.stringify(out))
      fail(join(path, "matchLengthWeight"), `differs from ${from}'s (one prefix-cache-scorer entry per profile)`, w);
    [out, from] = [mine, p.path];
  }
  return out;
}

/**
 * Prefix-cache parameters, from `prefix-cache-scorer` (GIE up to v1.5) or `approx-prefix-cache-producer`
 * (later GIE, llm-d-router), or the block size of the producer the scorer names when the filter cannot run it
 * (precise, burst: prefix-producers.ts, with a warning). `blockSizeTokens` is in tokens (x4 characters); the
 * legacy `blockSize` (v1.1-v1.3) and `hashBlockSize` (v1.0) were already in characters. `autoTune` is
 * accepted and has no effect here. Sizes and counts of zero or less fall back to GIE's defaults as GIE's
 * prefix plugin does (v1.2-v1.4: "is not positive, using default value"; v1.0-v1.1 for lruCapacityPerServer
 * only), with a warning; a `blockSizeTokens` of zero or less counts as not given (what GIE's decoding makes
 * of a 0), so a `blockSize` beside it still applies.
 */
function prefixSettings(plugins: ReadonlyMap<string, PluginDecl>, warnings: string[], notes: string[]): PrefixSettings {
  const fallbacks = fallbackProducers(plugins);
  const producer = scorerProducer(plugins);
  const out: PrefixSettings = { ...DEFAULT_PREFIX, ...matchLength(plugins) };
  const scorerBlocks = (p: PluginDecl): boolean =>
    p.parameters != null && PREFIX_KEYS.some((k) => (p.parameters as Fields)[k] !== undefined);
  const sources = [...plugins.values()].filter(
    (p) =>
      (p.type === PREFIX_SCORER_TYPE && scorerBlocks(p)) ||
      (p.type === PREFIX_PRODUCER_TYPE && p.parameters != null && (!producer || producer.name === p.name)),
  );
  for (const name of fallbacks.keys())
    if (producer?.name !== name)
      notes.push(
        `plugin ${name} (${plugins.get(name)!.type}) is accepted and not run: no prefix-cache-scorer reads it (prefixMatchInfoProducerName)`,
      );
  const named = producer ? fallbacks.get(producer.name) : undefined;
  if (producer && named) {
    const own = sources.find((p) => p.type === PREFIX_SCORER_TYPE);
    if (own)
      fail(
        join(own.path, "parameters"),
        `the prefix blocks are ${producer.name}'s (prefixMatchInfoProducerName); give them there`,
        own.parameters,
      );
    const chars = named.blockSizeTokens * CHARS_PER_TOKEN;
    if (chars > MAX_BLOCK_CHARS)
      fail(
        join(producer.path, "parameters"),
        `a block of ${chars} characters is more than the filter hashes (${MAX_BLOCK_CHARS})`,
        named.blockSizeTokens,
      );
    out.blockSizeChars = chars;
    if (named.maxPrefixTokensToMatch > 0)
      out.maxPrefixBlocksToMatch = Math.min(
        MAX_BLOCKS,
        Math.max(1, Math.floor(named.maxPrefixTokensToMatch / named.blockSizeTokens)),
      );
    warnings.push(fallbackWarning(producer, named, chars));
    return out;
  }
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
  onlyKeys(params, path, src.type === PREFIX_SCORER_TYPE ? [...PREFIX_KEYS, ...SCORER_KEYS] : PREFIX_KEYS);
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
  MAX_LRU = 0xffff,
  MAX_SCALE_CHARS = 1e9;

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
  const warnings = input.warnings ?? [];
  const resolved = new Map<string, ProfilePlugin["parameters"]>();
  for (const p of input.plugins.values()) if (roleOf(p.type)) resolved.set(p.name, ownParameters(p, warnings)); // validate even when unreferenced
  const prefix = prefixSettings(input.plugins, warnings, input.notes ?? []);
  for (const p of input.plugins.values()) if (DECIDER_TYPES.includes(p.type)) deciderOf(p);
  const decls = profileDecls(input);
  const handlers = [...input.plugins.values()].filter(
    (p) => p.type === PD_HANDLER_TYPE || p.type === LEGACY_PD_HANDLER_TYPE || p.type === DP_HANDLER_TYPE,
  );
  if (handlers.length > 1)
    fail(join(handlers[1].path, "type"), `one profile handler at most (${handlers[0].path} is one)`, handlers[1].type);
  const handler = handlers[0];
  if (handler?.type === DP_HANDLER_TYPE) dataParallel(handler, warnings); // then one profile, as without a handler
  if (!handler || handler.type === DP_HANDLER_TYPE) {
    if (decls && decls.length > 1)
      fail(
        "schedulingProfiles",
        `only one scheduling profile is supported (the filter applies one profile to every request)`,
        decls.map((d) => d.name),
      );
    if (!decls) return defaultProfile(input, prefix);
    return { plugins: profilePlugins(decls[0].refs, input, resolved, prefix) };
  }
  // Prefill/decode disaggregation: the decode profile is the one every request runs (section 1), the prefill
  // profile runs when the decider says so (section 8).
  const s = handlerSettings(handler, warnings);
  if (s.encodeDecider !== undefined) deciderOf(deciderPlugin(input, s.encodeDecider, s.encodeDeciderPath, "encode"));
  if (!decls || decls[0].path === "")
    fail(
      "schedulingProfiles",
      `${handler.type} needs scheduling profiles named "${s.decode}" and "${s.prefill}"`,
      input.schedulingProfiles ?? [],
    );
  for (const d of decls) {
    if (d.name === s.encode) {
      profilePlugins(d.refs, input, resolved, prefix); // checked (one picker...), not run
      encodeStage(input, s, d);
      continue;
    }
    // llm-d-router runs its stages' profiles by name and never looks at others: loaded, never run.
    if (d.name !== s.decode && d.name !== s.prefill)
      input.warnings?.push(
        `${join(d.path, "name")} (${d.name}): not a stage of ${handler.type} (decode "${s.decode}", prefill "${s.prefill}"): this profile is never run`,
      );
  }
  const decode = decls.find((d) => d.name === s.decode);
  if (!decode)
    fail(
      "schedulingProfiles",
      `no profile named "${s.decode}" (${handler.type}'s decode profile)`,
      decls.map((d) => d.name),
    );
  const decider = deciderSettings(input, s);
  const prefill = decls.find((d) => d.name === s.prefill);
  const decodePlugins = withRoleFilter(
    profilePlugins(decode.refs, input, resolved, prefix),
    DECODE_FILTER_TYPE,
    decode,
    warnings,
  );
  if (!prefill) return { plugins: decodePlugins }; // llm-d-router: no prefill profile, no prefill stage
  return {
    plugins: decodePlugins,
    disaggregation: {
      ...decider,
      bytesPerToken: PD_BYTES_PER_TOKEN,
      prefill: withRoleFilter(
        profilePlugins(prefill.refs, input, resolved, prefix),
        PREFILL_FILTER_TYPE,
        prefill,
        warnings,
      ),
    },
  };
}

/**
 * A stage's profile without any role filter gets its stage's (decode-filter, prefill-filter): a prefill-only
 * pod cannot decode, and an unlabeled pod is not a prefill server.
 */
function withRoleFilter(
  plugins: ProfilePlugin[],
  type: string,
  decl: ProfileDecl,
  warnings: string[],
): ProfilePlugin[] {
  if (plugins.some((p) => p.type === DECODE_FILTER_TYPE || p.type === PREFILL_FILTER_TYPE)) return plugins;
  warnings.push(`${decl.path} (${decl.name}): no role filter; ${type} applies`);
  return [{ role: "filter", type, weight: 0, parameters: {} }, ...plugins];
}

function defaultProfile(input: ProfileInput, prefix: PrefixSettings): SchedulingProfile {
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

/** One profile's plugins: filters (once per type), scorers, the picker and the saturation detector. */
function profilePlugins(
  refs: Ref[],
  input: ProfileInput,
  resolved: Map<string, ProfilePlugin["parameters"]>,
  prefix: PrefixSettings,
): ProfilePlugin[] {
  // Scorers in reference order; a scorer referenced twice adds its weights (one entry per type).
  const filters = new Map<string, ProfilePlugin>();
  const scorers = new Map<string, ProfilePlugin>();
  let picker: ProfilePlugin | null = null;
  let pickerRef: Ref | null = null;
  for (const ref of refs) {
    const type = ref.plugin.type;
    if (isAbsent(type)) continue; // no data here: upstream's missing-data result is a no-op (absent-data-plugins.ts)
    if (isFilter(type)) {
      if (!filters.has(type))
        filters.set(type, { role: "filter", type, weight: 0, parameters: resolved.get(ref.plugin.name)! });
    } else if (isScorer(type)) {
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
  return [
    ...filters.values(),
    ...scorers.values(),
    ...pickerAndDetector(picker ?? DEFAULT_PROFILE.plugins.find((p) => p.role === "picker")!, input),
  ];
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
