// The `model-server-protocol-metrics` plugin (GIE's later name: `core-metrics-extractor`) and the Helm-style
// metric flags, resolved into one EngineRegistry.
//
// How the sources combine (docs/COMPANION.md, "Engines"):
//   1. Built-in engines (vllm, sglang, triton-tensorrt-llm, trtllm-serve, triton).
//   2. `engineConfigs` entries: a built-in name replaces that engine's mapping entirely; other names add engines.
//   3. The default engine (used for pods without the engine label) is `defaultEngine` from the file, else
//      `--model-server-type`, else vllm. The file wins because the Helm chart always passes the flag.
//   4. `--total-queued-requests-metric` & co. override the specs of the unlabelled-pod mapping only
//      (a copy of the default engine's): pods that name their engine keep that engine's names.
import {
  ConfigError,
  asObject,
  fail,
  join,
  onlyKeys,
  optArray,
  optNumber,
  optString,
  type Fields,
} from "./config-fields";
import {
  BUILTIN_ENGINES,
  DEFAULT_ENGINE,
  ENGINE_SPEC_FIELDS,
  EngineRegistry,
  RESERVED_ENGINE_NAME,
  engineLabelKeys,
  buildMapping,
  withVllmV0Fallback,
  type EngineConfigEntry,
  type EngineMapping,
  type ModelServerType,
} from "./engines";
import { MetricSpecError, parseMetricSpec, type MetricSpec } from "./metric-spec";

export const METRICS_PLUGIN_TYPES = ["model-server-protocol-metrics", "core-metrics-extractor"] as const;

export interface MetricsPluginParams {
  engineLabelKey?: string;
  defaultEngine?: string;
  engineConfigs?: EngineConfigEntry[];
  /** Things accepted and ignored (llm-d-router's `customMetrics`), for the log. */
  notes?: string[];
}

/**
 * The flags the config is resolved with; `undefined` = not given. The metric specs are Helm-style (`""`
 * disables that metric). The `metrics*` flags are GIE's `--model-server-metrics-*`: defaults of the scrape
 * settings that the `metrics-data-source` parameters override (GIE's order: built-in, flag, parameters).
 */
export interface EngineFlags {
  modelServerType?: ModelServerType;
  totalQueuedRequestsMetric?: string;
  totalRunningRequestsMetric?: string;
  kvCacheUsagePercentageMetric?: string;
  loraInfoMetric?: string;
  cacheInfoMetric?: string;
  /** `--model-server-metrics-scheme`. */
  metricsScheme?: "http" | "https";
  /** `--model-server-metrics-path`. */
  metricsPath?: string;
  /** `--model-server-metrics-https-insecure-skip-verify`. */
  metricsInsecureSkipVerify?: boolean;
}

export const ENGINE_FLAG_NAMES: Record<
  Exclude<keyof EngineFlags, "modelServerType" | "metricsScheme" | "metricsPath" | "metricsInsecureSkipVerify">,
  string
> = {
  totalQueuedRequestsMetric: "--total-queued-requests-metric",
  totalRunningRequestsMetric: "--total-running-requests-metric",
  kvCacheUsagePercentageMetric: "--kv-cache-usage-percentage-metric",
  loraInfoMetric: "--lora-info-metric",
  cacheInfoMetric: "--cache-info-metric",
};

const ENTRY_KEYS = [
  "name",
  ...ENGINE_SPEC_FIELDS,
  "cacheBlockSizeLabelName",
  "cacheNumBlocksLabelName",
  "metricsPath",
  "metricsPort",
  "customMetrics",
];

function specAt(path: string, text: string): MetricSpec | null {
  try {
    return parseMetricSpec(text);
  } catch (e) {
    if (e instanceof MetricSpecError) throw new ConfigError(`${path}: ${e.message}`);
    throw e;
  }
}

/**
 * llm-d-router's `customMetrics` (`attributeKey`, `metricSpec`): extra scalars stored as endpoint attributes
 * for llm-d-router's own plugins. Their shape is checked (not the specs: nothing here reads them), then they
 * are ignored; returns the note.
 */
function checkCustomMetrics(obj: Fields, path: string, engine: string): string | null {
  const list = optArray(obj, "customMetrics", path);
  if (!list) return null;
  list.forEach((item, i) => {
    const at = join(join(path, "customMetrics"), i);
    const m = asObject(item, at);
    onlyKeys(m, at, ["attributeKey", "metricSpec"]);
    optString(m, "attributeKey", at);
    optString(m, "metricSpec", at);
  });
  return list.length
    ? `${join(path, "customMetrics")} of engine ${engine} is accepted and ignored: llm-d-router stores them as endpoint attributes for its own plugins, none of which run here`
    : null;
}

function parseEntry(raw: unknown, path: string, notes: string[]): EngineConfigEntry {
  const obj = asObject(raw, path);
  onlyKeys(obj, path, ENTRY_KEYS);
  const name = optString(obj, "name", path);
  if (name === undefined || name.trim() === "") fail(join(path, "name"), "an engine needs a name", obj.name);
  // Pods name their engine in a label, so an engine name must be a valid label value.
  if (!/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(name))
    fail(join(path, "name"), "must be a valid label value (letters, digits, - _ ., at most 63)", name);
  if (name === RESERVED_ENGINE_NAME)
    fail(
      join(path, "name"),
      `"${RESERVED_ENGINE_NAME}" is reserved (it names the mapping for pods without the engine label)`,
      name,
    );
  const entry: EngineConfigEntry = { name };
  for (const field of ENGINE_SPEC_FIELDS) {
    const text = optString(obj, field, path);
    if (text !== undefined) {
      specAt(join(path, field), text);
      entry[field] = text;
    }
  }
  for (const key of ["cacheBlockSizeLabelName", "cacheNumBlocksLabelName"] as const) {
    const label = optString(obj, key, path);
    if (label !== undefined && label !== "" && !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label))
      fail(join(path, key), "must be a Prometheus label name", label);
    if (label) entry[key] = label;
  }
  const metricsPath = optString(obj, "metricsPath", path);
  if (metricsPath !== undefined) {
    if (!metricsPath.startsWith("/")) fail(join(path, "metricsPath"), "must start with /", metricsPath);
    entry.metricsPath = metricsPath;
  }
  const metricsPort = optNumber(obj, "metricsPort", path, { integer: true, min: 1, max: 65535 });
  if (metricsPort !== undefined) entry.metricsPort = metricsPort;
  const custom = checkCustomMetrics(obj, path, name);
  if (custom) notes.push(custom);
  return entry;
}

/** Validates the plugin's `parameters` (spec strings included). */
export function parseMetricsPluginParams(raw: unknown, path: string): MetricsPluginParams {
  if (raw === undefined || raw === null) return {};
  const obj: Fields = asObject(raw, path);
  onlyKeys(obj, path, ["engineLabelKey", "defaultEngine", "engineConfigs"]);
  const params: MetricsPluginParams = {};
  const labelKey = optString(obj, "engineLabelKey", path);
  if (labelKey !== undefined && labelKey !== "") {
    if (/\s/.test(labelKey)) fail(join(path, "engineLabelKey"), "must be a pod label key", labelKey);
    params.engineLabelKey = labelKey;
  }
  const defaultEngine = optString(obj, "defaultEngine", path);
  if (defaultEngine !== undefined && defaultEngine !== "") params.defaultEngine = defaultEngine;
  const list = optArray(obj, "engineConfigs", path);
  if (list) {
    const seen = new Set<string>();
    const notes: string[] = [];
    params.engineConfigs = list.map((item, i) => {
      const entry = parseEntry(item, join(join(path, "engineConfigs"), i), notes);
      if (seen.has(entry.name))
        fail(join(join(join(path, "engineConfigs"), i), "name"), "engine defined twice", entry.name);
      seen.add(entry.name);
      return entry;
    });
    if (notes.length) params.notes = notes;
  }
  return params;
}

export interface ResolvedEngines {
  registry: EngineRegistry;
  /** Things worth a log line (e.g. the file's defaultEngine overriding --model-server-type). */
  warnings: string[];
}

/**
 * Resolves built-ins, the plugin parameters (null when the config has no metrics plugin) and the flags.
 * `paramsPath` is where the parameters came from, for error messages.
 */
export function resolveEngines(
  params: MetricsPluginParams | null,
  flags: EngineFlags,
  paramsPath = "plugins[?].parameters",
): ResolvedEngines {
  const warnings: string[] = [...(params?.notes ?? [])];
  const entries = new Map<string, EngineConfigEntry>();
  for (const builtin of BUILTIN_ENGINES) entries.set(builtin.name, builtin);
  for (const entry of params?.engineConfigs ?? []) entries.set(entry.name, entry); // full replacement per name
  const engines = new Map<string, EngineMapping>();
  for (const [name, entry] of entries) engines.set(name, buildMapping(entry));

  let defaultEngine = params?.defaultEngine ?? flags.modelServerType ?? DEFAULT_ENGINE;
  if (params?.defaultEngine && flags.modelServerType && flags.modelServerType !== params.defaultEngine) {
    warnings.push(
      `defaultEngine "${params.defaultEngine}" from the config file is used; --model-server-type=${flags.modelServerType} only sets the default when the file does not`,
    );
  }
  const base = engines.get(defaultEngine);
  if (!base) {
    const where = params?.defaultEngine ? join(paramsPath, "defaultEngine") : "--model-server-type";
    fail(where, `unknown engine (known: ${[...engines.keys()].join(", ")})`, defaultEngine);
  }
  defaultEngine = base.name;

  const unlabelled: EngineMapping = { ...base };
  const override = (flag: keyof typeof ENGINE_FLAG_NAMES): MetricSpec | null | undefined => {
    const text = flags[flag];
    return text === undefined ? undefined : specAt(ENGINE_FLAG_NAMES[flag], text);
  };
  const queued = override("totalQueuedRequestsMetric");
  if (queued !== undefined) unlabelled.queued = queued;
  const running = override("totalRunningRequestsMetric");
  if (running !== undefined) unlabelled.running = running;
  const kv = override("kvCacheUsagePercentageMetric");
  if (kv !== undefined) unlabelled.kvUsage = withVllmV0Fallback(kv);
  const lora = override("loraInfoMetric");
  if (lora !== undefined) unlabelled.lora = lora;
  const cacheInfo = override("cacheInfoMetric");
  if (cacheInfo !== undefined) {
    // The flag names the one source of cache information, replacing gauge-style sources too.
    unlabelled.cacheInfo = cacheInfo;
    unlabelled.cacheBlockSize = null;
    unlabelled.cacheNumBlocks = null;
  }
  const [labelKey, ...fallbackKeys] = engineLabelKeys(params?.engineLabelKey);
  return {
    registry: new EngineRegistry(labelKey, defaultEngine, engines, unlabelled, fallbackKeys),
    warnings,
  };
}
