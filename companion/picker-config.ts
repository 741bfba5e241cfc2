// EndpointPickerConfig (GIE's YAML, `--config-file` / `--config-text`) -> engines, scheduling profile and
// scrape settings. One file drives both the companion and, through the snapshot, the filter.
import YAML from "yaml";
import {
  ConfigError,
  asObject,
  fail,
  join,
  onlyKeys,
  optBool,
  optGoDuration,
  optNumber,
  optString,
  isObject,
} from "./config-fields";
import { METRICS_PLUGIN_TYPES, parseMetricsPluginParams, resolveEngines, type EngineFlags } from "./engine-config";
import { EngineRegistry, type EngineMapping } from "./engines";
import {
  PD_PLUGIN_TYPES,
  PREFIX_PRODUCER_TYPE,
  SATURATION_DETECTOR_TYPE,
  buildProfile,
  type PluginDecl,
} from "./profile-config";
import { PROFILE_PLUGIN_TYPES } from "./profile-plugins";
import { AGENT_IDENTITY_TYPE, withAgentIdentity } from "./session-affinity-config";
import { PRECISE_PRODUCER_TYPE, BURST_PRODUCER_TYPE } from "./prefix-producers";
import { ABSENT_DATA_PLUGINS, absentDataWarnings } from "./absent-data-plugins";
import { ADMITTER_TYPES, withAdmitters } from "./admission-config";
import { TOKEN_PRODUCER_TYPES, tokenProducerLines } from "./token-producer";
import { FLOW_CONTROL_PLUGIN_TYPES, describeFlowControl, resolveFlowControl } from "./flow-control-config";
import type { SchedulingProfile, SnapshotFlowControl } from "./snapshot";

export const DATA_SOURCE_TYPE = "metrics-data-source";

/**
 * Plugin types that only matter inside GIE's own EPP and change nothing about what we scrape or how the
 * filter picks. They are accepted (so a GIE config loads unchanged) and ignored.
 */
export const IGNORED_PLUGIN_TYPES: Readonly<Record<string, string>> = {
  "single-profile-handler": "one profile is all the filter applies",
  "openai-parser": "the filter parses OpenAI request bodies itself",
  "inflight-load-producer": "the filter counts its own in-flight requests",
  "endpoint-notification-source":
    "it only tells llm-d-router's extractors of endpoints coming and going; the companion follows the pool itself",
};

const TOP_LEVEL_KEYS = [
  "apiVersion",
  "kind",
  "featureGates",
  "plugins",
  "schedulingProfiles",
  "saturationDetector",
  "data",
  "dataLayer",
  "flowControl",
  "requestHandler",
  "parser",
];
/**
 * Sections GIE or llm-d-router read that have no effect here. The data layer section is `data` in GIE 1.3-1.4
 * and `dataLayer` in GIE 1.5 and llm-d-router (each version's strict decoding refuses the other name, so a
 * file never has both); `requestHandler` is llm-d-router's. `featureGates` and `flowControl` are read by
 * flow-control-config.ts (gates other than flowControl are ignored with a note).
 */
const IGNORED_SECTIONS = ["data", "dataLayer", "requestHandler", "parser"];

export interface ScrapeSettings {
  scheme: "http" | "https";
  /** Default metrics path for engines without their own `metricsPath`. */
  path: string;
  insecureSkipVerify: boolean;
}

/** metrics-data-source parameters of llm-d-router that the scraper cannot honour: refused, not ignored. */
const UNSUPPORTED_SOURCE_KEYS: Readonly<Record<string, string>> = {
  caCertPath: "verifying model servers against a CA bundle",
  clientCertPath: "client certificates (mTLS) toward model servers",
  clientKeyPath: "client certificates (mTLS) toward model servers",
};

export const DEFAULT_SCRAPE: ScrapeSettings = { scheme: "http", path: "/metrics", insecureSkipVerify: true };

export interface PickerConfig {
  engines: EngineRegistry;
  profile: SchedulingProfile;
  /** Flow control (the `flowControl` section) while the `flowControl` feature gate is on; else null. */
  flowControl: SnapshotFlowControl | null;
  scrape: ScrapeSettings;
  /** Notes for the log: ignored plugins and sections, precedence decisions; `warnings` included. */
  notes: string[];
  /** The notes that deserve a warning: values replaced by GIE's defaults. */
  warnings: string[];
}

function supportedTypes(): string[] {
  return [
    ...METRICS_PLUGIN_TYPES,
    DATA_SOURCE_TYPE,
    ...Object.keys(PROFILE_PLUGIN_TYPES),
    PREFIX_PRODUCER_TYPE,
    PRECISE_PRODUCER_TYPE,
    BURST_PRODUCER_TYPE,
    SATURATION_DETECTOR_TYPE,
    AGENT_IDENTITY_TYPE,
    ...PD_PLUGIN_TYPES,
    ...Object.keys(IGNORED_PLUGIN_TYPES),
    ...TOKEN_PRODUCER_TYPES,
    ...ADMITTER_TYPES,
    ...Object.keys(ABSENT_DATA_PLUGINS),
    ...FLOW_CONTROL_PLUGIN_TYPES,
  ];
}

function parsePlugins(raw: unknown): Map<string, PluginDecl> {
  const plugins = new Map<string, PluginDecl>();
  if (raw === undefined || raw === null) return plugins;
  if (!Array.isArray(raw)) fail("plugins", "must be a list", raw);
  raw.forEach((item, i) => {
    const path = `plugins[${i}]`;
    const obj = asObject(item, path);
    onlyKeys(obj, path, ["name", "type", "parameters"]);
    const type = optString(obj, "type", path);
    if (!type) fail(join(path, "type"), "a plugin needs a type", obj.type);
    if (!supportedTypes().includes(type))
      fail(join(path, "type"), `unsupported plugin type (supported: ${supportedTypes().join(", ")})`, type);
    const name = optString(obj, "name", path) || type; // GIE: the name defaults to the type
    if (plugins.has(name))
      fail(join(path, "name"), `plugin name used twice (${plugins.get(name)!.path} has it too)`, name);
    plugins.set(name, { name, type, parameters: obj.parameters, path });
  });
  return plugins;
}

/**
 * The scrape settings: built-in defaults, then the `--model-server-metrics-*` flags, then the
 * `metrics-data-source` parameters (GIE's order: the flags are the source's defaults). llm-d-router's `port`
 * becomes the metrics port of every engine without its own `metricsPort` (so it wins over
 * `--model-server-metrics-port` too); its `interval` is accepted and ignored.
 */
function scrapeSettings(
  plugins: ReadonlyMap<string, PluginDecl>,
  flags: EngineFlags,
  notes: string[],
): { scrape: ScrapeSettings; port: number | undefined } {
  const sources = [...plugins.values()].filter((p) => p.type === DATA_SOURCE_TYPE);
  if (sources.length > 1)
    fail(join(sources[1].path, "type"), `only one ${DATA_SOURCE_TYPE} is supported`, sources[1].type);
  const out: ScrapeSettings = {
    scheme: flags.metricsScheme ?? DEFAULT_SCRAPE.scheme,
    path: flags.metricsPath ?? DEFAULT_SCRAPE.path,
    insecureSkipVerify: flags.metricsInsecureSkipVerify ?? DEFAULT_SCRAPE.insecureSkipVerify,
  };
  const src = sources[0];
  if (!src || src.parameters == null) return { scrape: out, port: undefined };
  const path = join(src.path, "parameters");
  const params = asObject(src.parameters, path);
  onlyKeys(params, path, [
    "scheme",
    "path",
    "insecureSkipVerify",
    "port",
    "interval",
    ...Object.keys(UNSUPPORTED_SOURCE_KEYS),
  ]);
  for (const [key, what] of Object.entries(UNSUPPORTED_SOURCE_KEYS)) {
    if (params[key] !== undefined && params[key] !== null && params[key] !== "")
      fail(
        join(path, key),
        `${what} is not supported by the companion's scraper (it would be ignored, which changes what is trusted); leave it out, or serve metrics over http`,
        params[key],
      );
  }
  const scheme = optString(params, "scheme", path);
  if (scheme !== undefined && scheme !== "http" && scheme !== "https")
    fail(join(path, "scheme"), 'must be "http" or "https"', scheme);
  if (scheme) out.scheme = scheme as "http" | "https";
  const p = optString(params, "path", path);
  if (p !== undefined && p !== "" && !p.startsWith("/")) fail(join(path, "path"), "must start with /", p);
  if (p) out.path = p;
  out.insecureSkipVerify = optBool(params, "insecureSkipVerify", path) ?? out.insecureSkipVerify;
  const port = optNumber(params, "port", path, { integer: true, min: 1, max: 65535 });
  const interval = optGoDuration(params, "interval", path);
  if (interval !== undefined)
    notes.push(`${join(path, "interval")} is accepted and ignored: every endpoint is scraped every --refresh-interval`);
  return { scrape: out, port };
}

/** Parses YAML text into an object; YAML errors become ConfigErrors with line and column. */
export function parseConfigText(text: string): Record<string, unknown> | null {
  let doc: unknown;
  try {
    doc = YAML.parse(text, { uniqueKeys: true, strict: true, prettyErrors: true });
  } catch (e) {
    throw new ConfigError(`not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return null;
  if (!isObject(doc)) fail("(document)", "an EndpointPickerConfig must be a mapping", doc);
  return doc;
}

/**
 * Loads a config (`text` null or empty = no config: built-ins and GIE's default profile) together with the
 * engine flags. Throws ConfigError naming the field path and the value.
 */
export function loadPickerConfig(text: string | null, flags: EngineFlags = {}): PickerConfig {
  const doc = text === null ? null : parseConfigText(text);
  const cfg = doc ?? {};
  onlyKeys(cfg, "", TOP_LEVEL_KEYS);
  const kind = optString(cfg, "kind", "");
  if (kind !== undefined && kind !== "EndpointPickerConfig") fail("kind", 'must be "EndpointPickerConfig"', kind);
  const apiVersion = optString(cfg, "apiVersion", "");
  // GIE's group, or llm-d-router's (`llm-d.ai/v1alpha1`; its guides also write llm-d.ai/v1).
  if (apiVersion !== undefined && !/^(inference\.networking\.(x-)?k8s\.io|llm-d\.ai)\/[a-z0-9]+$/.test(apiVersion)) {
    fail(
      "apiVersion",
      "must be an inference.networking or llm-d.ai API version such as inference.networking.x-k8s.io/v1alpha1 or llm-d.ai/v1alpha1",
      apiVersion,
    );
  }
  if (cfg.data !== undefined && cfg.dataLayer !== undefined)
    fail(
      "dataLayer",
      "the data layer section is data (GIE 1.3-1.4) or dataLayer (GIE 1.5, llm-d-router), not both (no GIE version reads both)",
      Object.keys(cfg).filter((k) => k === "data" || k === "dataLayer"),
    );

  const notes: string[] = [];
  const plugins = parsePlugins(cfg.plugins);
  const metricsPlugins = [...plugins.values()].filter((p) =>
    (METRICS_PLUGIN_TYPES as readonly string[]).includes(p.type),
  );
  if (metricsPlugins.length > 1)
    fail(
      join(metricsPlugins[1].path, "type"),
      `only one metrics plugin is supported (${metricsPlugins[0].path} is one)`,
      metricsPlugins[1].type,
    );
  const metricsPlugin = metricsPlugins[0];
  const paramsPath = metricsPlugin ? join(metricsPlugin.path, "parameters") : "";
  const params = metricsPlugin ? parseMetricsPluginParams(metricsPlugin.parameters, paramsPath) : null;
  const engines = resolveEngines(params, flags, paramsPath);
  notes.push(...engines.warnings);
  for (const p of plugins.values()) {
    if (p.type in IGNORED_PLUGIN_TYPES)
      notes.push(`plugin ${p.name} (${p.type}) is accepted and ignored: ${IGNORED_PLUGIN_TYPES[p.type]}`);
  }
  for (const section of IGNORED_SECTIONS)
    if (cfg[section] !== undefined) notes.push(`section ${section} is accepted and ignored`);
  const warnings: string[] = [];
  const flowControl = resolveFlowControl({
    featureGates: cfg.featureGates,
    flowControl: cfg.flowControl,
    plugins,
    notes,
    warnings,
  });
  if (flowControl) notes.push(describeFlowControl(flowControl));
  warnings.push(...absentDataWarnings(plugins));
  const profile = withAdmitters(
    withAgentIdentity(
      buildProfile({
        plugins,
        schedulingProfiles: cfg.schedulingProfiles,
        saturationDetector: cfg.saturationDetector,
        flowControl: cfg.flowControl,
        warnings,
        notes,
      }),
      plugins,
    ),
    plugins,
  );
  const counting = profile.disaggregation?.decider === "prefix-based";
  for (const { line, warn } of tokenProducerLines(plugins, counting)) (warn ? warnings : notes).push(line);
  const { scrape, port } = scrapeSettings(plugins, flags, notes);
  notes.push(...warnings);
  return { engines: withMetricsPort(engines.registry, port), profile, flowControl, scrape, notes, warnings };
}

/** The registry with `port` as the metrics port of every mapping that has none of its own. */
function withMetricsPort(registry: EngineRegistry, port: number | undefined): EngineRegistry {
  if (port === undefined) return registry;
  const withPort = (m: EngineMapping): EngineMapping => (m.metricsPort === null ? { ...m, metricsPort: port } : m);
  const engines = new Map([...registry.engines].map(([name, m]) => [name, withPort(m)]));
  return new EngineRegistry(
    registry.engineLabelKey,
    registry.defaultEngine,
    engines,
    withPort(registry.unlabelled),
    registry.engineLabelKeys.slice(1),
  );
}
