// The `featureGates` and `flowControl` sections of an EndpointPickerConfig (llm-d-router's field names, types
// and defaults: apix/config/v1alpha1 FlowControlConfig, pkg/epp/config/loader/flowcontrol.go), resolved into
// the SnapshotFlowControl the filter applies (docs/SNAPSHOT.md, section 6). The filter keeps no defaults: every
// limit, TTL and policy is resolved here. The saturation detector the section names
// (`flowControl.saturationDetector.pluginRef`) is resolved with the profile (profile-config.ts).
import {
  asObject,
  fail,
  join,
  onlyKeys,
  optArray,
  optBool,
  optGoDuration,
  optNumber,
  optQuantity,
  optString,
  type Fields,
} from "./config-fields";
import type { PluginDecl } from "./profile-config";
import type {
  FlowBand,
  FlowFairness,
  FlowHoldback,
  FlowOrdering,
  FlowProgramAware,
  SnapshotFlowControl,
} from "./snapshot";

/** llm-d-router's feature gate (pkg/epp/flowcontrol/config.go `FeatureGate`), off by default. */
export const FLOW_CONTROL_GATE = "flowControl";

/** Fairness policy plugin types, by the value the snapshot carries. */
export const FAIRNESS_POLICY_TYPES: Readonly<Record<string, FlowFairness>> = {
  "global-strict-fairness-policy": "global-strict",
  "round-robin-fairness-policy": "round-robin",
  "program-aware-fairness": "program-aware",
};
/** Ordering policy plugin types, by the value the snapshot carries. */
export const ORDERING_POLICY_TYPES: Readonly<Record<string, FlowOrdering>> = {
  "fcfs-ordering-policy": "fcfs",
  "edf-ordering-policy": "edf",
  "slo-deadline-ordering-policy": "slo-deadline",
};
export const STATIC_USAGE_LIMIT_TYPE = "static-usage-limit-policy";
export const HOLDBACK_USAGE_LIMIT_TYPE = "priority-holdback-policy";
export const SOFT_REFLECTIVE_TYPE = "soft-reflective-ceiling-policy";
export const PROGRAM_AWARE_TYPE = "program-aware-fairness";
export const DEFAULT_FAIRNESS_TYPE = "global-strict-fairness-policy";
export const DEFAULT_ORDERING_TYPE = "fcfs-ordering-policy";

/** The flow-control plugin types `plugins:` may declare (in the order the supported-types message lists them). */
export const FLOW_CONTROL_PLUGIN_TYPES: readonly string[] = [
  "fcfs-ordering-policy",
  "edf-ordering-policy",
  "slo-deadline-ordering-policy",
  "global-strict-fairness-policy",
  "round-robin-fairness-policy",
  PROGRAM_AWARE_TYPE,
  STATIC_USAGE_LIMIT_TYPE,
  HOLDBACK_USAGE_LIMIT_TYPE,
  SOFT_REFLECTIVE_TYPE,
];

/** llm-d-router's system defaults (pkg/epp/flowcontrol/controller/config.go, registry/config.go). */
export const DEFAULT_REQUEST_TTL_MS = 60_000;
export const DEFAULT_BAND_MAX_REQUESTS = 5000;
export const DEFAULT_BAND_MAX_BYTES = 1_000_000_000;
export const DEFAULT_USAGE_LIMIT = 1.0;

/** A band with the system defaults (its priority is given). */
export const defaultBand = (priority = 0): FlowBand => ({
  priority,
  maxRequests: DEFAULT_BAND_MAX_REQUESTS,
  maxBytes: DEFAULT_BAND_MAX_BYTES,
  fairness: FAIRNESS_POLICY_TYPES[DEFAULT_FAIRNESS_TYPE],
  ordering: ORDERING_POLICY_TYPES[DEFAULT_ORDERING_TYPE],
});

/** What the gate turns on when the config has no `flowControl` section. */
export const DEFAULT_FLOW_CONTROL: SnapshotFlowControl = {
  defaultRequestTtlMs: DEFAULT_REQUEST_TTL_MS,
  noEndpointRequestTtlMs: DEFAULT_REQUEST_TTL_MS,
  maxRequests: 0,
  maxBytes: 0,
  usageLimit: DEFAULT_USAGE_LIMIT,
  defaultBand: defaultBand(),
  defaultNegativeBand: defaultBand(),
  bands: [],
};

const SECTION_KEYS = [
  "maxBytes",
  "maxRequests",
  "defaultRequestTTL",
  "noEndpointRequestTTL",
  "defaultPriorityBand",
  "defaultNegativePriorityBand",
  "priorityBands",
  "usageLimitPolicyPluginRef",
  "saturationDetector",
  "enableEviction",
];
const BAND_KEYS = ["priority", "maxBytes", "maxRequests", "fairnessPolicyRef", "orderingPolicyRef"];

/** The wire carries counts and TTLs as u32. */
const U32_MAX = 0xffff_ffff;
const I32_MIN = -0x8000_0000,
  I32_MAX = 0x7fff_ffff;

/**
 * `featureGates`: entries `name`, `name=true` or `name=false` (llm-d-router's syntax); a later entry for the
 * same gate wins. Returns each named gate's value.
 */
export function parseFeatureGates(raw: unknown): Map<string, boolean> {
  const gates = new Map<string, boolean>();
  if (raw === undefined || raw === null) return gates;
  if (!Array.isArray(raw)) fail("featureGates", "must be a list", raw);
  raw.forEach((g, i) => {
    const path = `featureGates[${i}]`;
    if (typeof g !== "string") fail(path, "must be a string", g);
    const m = /^([^=\s]+)(?:=(.*))?$/.exec(g.trim());
    if (!m || (m[2] !== undefined && m[2] !== "true" && m[2] !== "false"))
      fail(path, 'must be "name", "name=true" or "name=false"', g);
    gates.set(m[1], m[2] !== "false");
  });
  return gates;
}

export interface FlowControlInput {
  /** The raw `featureGates` value. */
  featureGates: unknown;
  /** The raw `flowControl` value. */
  flowControl: unknown;
  plugins: ReadonlyMap<string, PluginDecl>;
  /** Receives a note per ignored gate or plugin. */
  notes: string[];
  /** Receives a warning when the section is given while the gate is off. */
  warnings: string[];
}

/** A plugin's `parameters` as a mapping (undefined when absent). */
function paramsOf(plugin: PluginDecl): { params: Fields | undefined; path: string } {
  const path = join(plugin.path, "parameters");
  const params =
    plugin.parameters === undefined || plugin.parameters === null ? undefined : asObject(plugin.parameters, path);
  return { params, path };
}

/** static-usage-limit-policy's `threshold` (default 1.0): dispatch while the pool's saturation is below it. */
function usageThreshold(plugin: PluginDecl | undefined): number {
  if (!plugin) return DEFAULT_USAGE_LIMIT;
  const { params, path } = paramsOf(plugin);
  if (!params) return DEFAULT_USAGE_LIMIT;
  onlyKeys(params, path, ["threshold"]);
  return optNumber(params, "threshold", path, { minExclusive: 0 }) ?? DEFAULT_USAGE_LIMIT;
}

/** priority-holdback-policy's parameters (llm-d-router's rules: minCeiling required, shape linear). */
function holdbackParams(plugin: PluginDecl): FlowHoldback {
  const { params, path } = paramsOf(plugin);
  const fields = params ?? {};
  onlyKeys(fields, path, ["shape", "domain", "minCeiling", "maxCeiling"]);
  const shape = optString(fields, "shape", path) ?? "linear";
  if (shape !== "linear") fail(join(path, "shape"), 'must be "linear" (the only shape)', fields.shape);
  const domain = optString(fields, "domain", path) ?? "rank";
  if (domain !== "rank" && domain !== "value") fail(join(path, "domain"), 'must be "rank" or "value"', fields.domain);
  const minCeiling = optNumber(fields, "minCeiling", path, { min: 0 });
  if (minCeiling === undefined) fail(join(path, "minCeiling"), "is required (in [0, 1))", fields.minCeiling);
  if (minCeiling >= 1) fail(join(path, "minCeiling"), "must be in [0, 1)", fields.minCeiling);
  const maxCeiling = optNumber(fields, "maxCeiling", path, { minExclusive: 0 }) ?? 1.0;
  if (maxCeiling > 1) fail(join(path, "maxCeiling"), "must be in (0, 1]", fields.maxCeiling);
  if (!(minCeiling < maxCeiling))
    fail(join(path, "minCeiling"), `must be below maxCeiling (${maxCeiling})`, fields.minCeiling);
  return { domain, minCeiling, maxCeiling };
}

/** program-aware-fairness's parameters (strategy las; llm-d-router's defaults). */
function programAwareParams(plugin: PluginDecl): FlowProgramAware {
  const { params, path } = paramsOf(plugin);
  const fields = params ?? {};
  onlyKeys(fields, path, [
    "strategy",
    "lasWeightService",
    "lasWeightHeadWait",
    "lasHalfLifeSeconds",
    "evictionTtlSeconds",
    "evictionSweepSeconds",
    "heavyFlowHeadroom",
  ]);
  const strategy = optString(fields, "strategy", path) ?? "las";
  if (strategy !== "las") fail(join(path, "strategy"), 'must be "las" (the only strategy)', fields.strategy);
  optNumber(fields, "evictionSweepSeconds", path, { minExclusive: 0 }); // checked; the filter sweeps every minute
  // Ours, not llm-d-router's: the share of the band's ceiling that flows served above the mean leave free.
  const heavyFlowHeadroom = optNumber(fields, "heavyFlowHeadroom", path, { min: 0 }) ?? 0;
  if (heavyFlowHeadroom >= 1) fail(join(path, "heavyFlowHeadroom"), "must be in [0, 1)", fields.heavyFlowHeadroom);
  return {
    ...(heavyFlowHeadroom > 0 ? { heavyFlowHeadroom } : {}),
    weightService: optNumber(fields, "lasWeightService", path, { min: 0 }) ?? 0.8,
    weightHeadWait: optNumber(fields, "lasWeightHeadWait", path, { min: 0 }) ?? 0.2,
    halfLifeSeconds: optNumber(fields, "lasHalfLifeSeconds", path, { min: 0 }) ?? 60,
    evictionTtlSeconds: optNumber(fields, "evictionTtlSeconds", path, { min: 0 }) ?? 3600,
  };
}

/** Checks the parameters of every declared flow-control plugin (validated even when unreferenced). */
function checkPolicyPlugins(plugins: ReadonlyMap<string, PluginDecl>): void {
  for (const p of plugins.values()) {
    if (p.type === STATIC_USAGE_LIMIT_TYPE) usageThreshold(p);
    else if (p.type === HOLDBACK_USAGE_LIMIT_TYPE) holdbackParams(p);
    else if (p.type === SOFT_REFLECTIVE_TYPE) {
      const { params, path } = paramsOf(p);
      if (params) onlyKeys(params, path, []); // llm-d-router: no parameters, a non-empty block is refused
    } else if (p.type === PROGRAM_AWARE_TYPE) programAwareParams(p);
    else if (p.type in FAIRNESS_POLICY_TYPES || p.type in ORDERING_POLICY_TYPES) {
      const { params, path } = paramsOf(p);
      if (params) onlyKeys(params, path, []); // llm-d-router's policies take no parameters
    }
  }
}

/**
 * The plugin a policy reference names: a plugin of `plugins:` by name, else one declared with that type, else
 * the default type itself (llm-d-router registers its default policies without a declaration).
 */
function resolveRef<T>(
  ref: string,
  path: string,
  kinds: Readonly<Record<string, T>>,
  defaultType: string,
  what: string,
  plugins: ReadonlyMap<string, PluginDecl>,
): { value: T; plugin: PluginDecl | undefined } {
  const plugin = plugins.get(ref) ?? [...plugins.values()].find((p) => p.type === ref);
  if (plugin) {
    if (!(plugin.type in kinds))
      fail(
        path,
        `plugin "${ref}" has type ${plugin.type}, which is not a ${what} (${Object.keys(kinds).join(", ")})`,
        ref,
      );
    return { value: kinds[plugin.type], plugin };
  }
  if (ref === defaultType) return { value: kinds[ref], plugin: undefined };
  if (ref in kinds) fail(path, `no plugin of that name in plugins; declare it there (- type: ${ref}) to use it`, ref);
  fail(
    path,
    `no plugin of that name in plugins (defined: ${[...plugins.keys()].join(", ") || "none"}; ${what} types: ${Object.keys(kinds).join(", ")})`,
    ref,
  );
}

function policyRef<T>(
  obj: Fields,
  key: string,
  path: string,
  kinds: Readonly<Record<string, T>>,
  defaultType: string,
  what: string,
  plugins: ReadonlyMap<string, PluginDecl>,
): T {
  const ref = optString(obj, key, path);
  if (!ref) return kinds[defaultType];
  return resolveRef(ref, join(path, key), kinds, defaultType, what, plugins).value;
}

/**
 * A PriorityBandConfig. Limits of 0 or omitted take the system defaults (5000 requests, 1e9 bytes), as in
 * llm-d-router: band limits are always bounded. `priority` is required in `priorityBands`; a template's is
 * ignored (written as 0).
 */
function parseBand(
  raw: unknown,
  path: string,
  template: boolean,
  plugins: ReadonlyMap<string, PluginDecl>,
  programAware: Map<string, FlowProgramAware>,
): FlowBand {
  const obj = asObject(raw, path);
  onlyKeys(obj, path, BAND_KEYS);
  const priority = optNumber(obj, "priority", path, { integer: true, min: I32_MIN, max: I32_MAX });
  if (priority === undefined && !template)
    fail(join(path, "priority"), "a priority band needs a priority", obj.priority);
  const maxRequests = optQuantity(obj, "maxRequests", path, U32_MAX) || DEFAULT_BAND_MAX_REQUESTS;
  const maxBytes = optQuantity(obj, "maxBytes", path) || DEFAULT_BAND_MAX_BYTES;
  let fairness = FAIRNESS_POLICY_TYPES[DEFAULT_FAIRNESS_TYPE];
  const fairnessRef = optString(obj, "fairnessPolicyRef", path);
  if (fairnessRef) {
    const refPath = join(path, "fairnessPolicyRef");
    const ref = resolveRef(
      fairnessRef,
      refPath,
      FAIRNESS_POLICY_TYPES,
      DEFAULT_FAIRNESS_TYPE,
      "fairness policy",
      plugins,
    );
    fairness = ref.value;
    if (ref.plugin && ref.plugin.type === PROGRAM_AWARE_TYPE) programAware.set(refPath, programAwareParams(ref.plugin));
  }
  return {
    priority: template ? 0 : priority!,
    maxRequests,
    maxBytes,
    fairness,
    ordering: policyRef(
      obj,
      "orderingPolicyRef",
      path,
      ORDERING_POLICY_TYPES,
      DEFAULT_ORDERING_TYPE,
      "ordering policy",
      plugins,
    ),
  };
}

/** A Go duration TTL in whole milliseconds (a positive fraction rounds up, so it never becomes 0 = no expiry). */
function ttl(obj: Fields, key: string, path: string): number | undefined {
  const ms = optGoDuration(obj, key, path);
  if (ms === undefined) return undefined;
  if (ms < 0) fail(join(path, key), "must not be negative", obj[key]);
  const whole = Math.ceil(ms);
  if (whole > U32_MAX) fail(join(path, key), `must be at most ${U32_MAX}ms (about 49 days)`, obj[key]);
  return whole;
}

/** The `flowControl` section resolved; throws ConfigError naming the field. */
export function parseFlowControl(raw: unknown, plugins: ReadonlyMap<string, PluginDecl>): SnapshotFlowControl {
  checkPolicyPlugins(plugins);
  const path = "flowControl";
  const fc = raw === undefined || raw === null ? {} : asObject(raw, path);
  onlyKeys(fc, path, SECTION_KEYS);
  if (fc.saturationDetector !== undefined && fc.saturationDetector !== null) {
    const sdPath = join(path, "saturationDetector");
    onlyKeys(asObject(fc.saturationDetector, sdPath), sdPath, ["pluginRef"]); // resolved with the profile
  }
  if (optBool(fc, "enableEviction", path))
    fail(
      join(path, "enableEviction"),
      "not supported: in-flight eviction (the filter never ends a request it has already sent to a model server); leave it out or set it to false",
      fc.enableEviction,
    );
  const defaultRequestTtlMs = ttl(fc, "defaultRequestTTL", path);
  // program-aware-fairness parameters by the band field that references them (the filter applies one set).
  const aware = new Map<string, FlowProgramAware>();
  const noEndpointRequestTtlMs = ttl(fc, "noEndpointRequestTTL", path);
  const template =
    fc.defaultPriorityBand === undefined || fc.defaultPriorityBand === null
      ? defaultBand()
      : parseBand(fc.defaultPriorityBand, join(path, "defaultPriorityBand"), true, plugins, aware);
  const negative =
    fc.defaultNegativePriorityBand === undefined || fc.defaultNegativePriorityBand === null
      ? { ...template }
      : parseBand(fc.defaultNegativePriorityBand, join(path, "defaultNegativePriorityBand"), true, plugins, aware);
  const bands: FlowBand[] = [];
  const seen = new Map<number, string>();
  (optArray(fc, "priorityBands", path) ?? []).forEach((item, i) => {
    const bandPath = join(join(path, "priorityBands"), i);
    const band = parseBand(item, bandPath, false, plugins, aware);
    const before = seen.get(band.priority);
    if (before !== undefined)
      fail(
        join(bandPath, "priority"),
        `duplicate priority level ${band.priority} (${before} has it too)`,
        band.priority,
      );
    seen.set(band.priority, bandPath);
    bands.push(band);
  });
  bands.sort((a, b) => b.priority - a.priority);
  let usageLimit = DEFAULT_USAGE_LIMIT;
  let holdback: FlowHoldback | null = null;
  let softReflective = false;
  const usageRef = optString(fc, "usageLimitPolicyPluginRef", path);
  if (usageRef) {
    const { plugin } = resolveRef(
      usageRef,
      join(path, "usageLimitPolicyPluginRef"),
      { [STATIC_USAGE_LIMIT_TYPE]: true, [HOLDBACK_USAGE_LIMIT_TYPE]: true, [SOFT_REFLECTIVE_TYPE]: true },
      STATIC_USAGE_LIMIT_TYPE,
      "usage-limit policy",
      plugins,
    );
    if (plugin && plugin.type === HOLDBACK_USAGE_LIMIT_TYPE) holdback = holdbackParams(plugin);
    else if (plugin && plugin.type === SOFT_REFLECTIVE_TYPE) softReflective = true;
    else usageLimit = usageThreshold(plugin);
  } else usageLimit = usageThreshold(plugins.get(STATIC_USAGE_LIMIT_TYPE));
  const awareSets = [...aware.entries()];
  for (const [refPath, params] of awareSets.slice(1))
    if (JSON.stringify(params) !== JSON.stringify(awareSets[0][1]))
      fail(
        refPath,
        `names a program-aware-fairness plugin whose parameters differ from the one ${awareSets[0][0]} names; the filter applies one set of program-aware-fairness parameters`,
        refPath,
      );
  return {
    defaultRequestTtlMs: defaultRequestTtlMs ?? DEFAULT_REQUEST_TTL_MS,
    // llm-d-router: noEndpointRequestTTL follows defaultRequestTTL when omitted; 60 s when neither is set.
    noEndpointRequestTtlMs: noEndpointRequestTtlMs ?? defaultRequestTtlMs ?? DEFAULT_REQUEST_TTL_MS,
    maxRequests: optQuantity(fc, "maxRequests", path, U32_MAX) ?? 0,
    maxBytes: optQuantity(fc, "maxBytes", path) ?? 0,
    usageLimit,
    defaultBand: template,
    defaultNegativeBand: negative,
    bands,
    ...(holdback ? { holdback } : {}),
    ...(softReflective ? { softReflective } : {}),
    ...(awareSets.length > 0 ? { programAware: awareSets[0][1] } : {}),
  };
}

/**
 * Flow control as the config sets it: the resolved section while the `flowControl` gate is on (defaults
 * without a section), else null. The section is checked either way (a typo fails at load); while the gate is
 * off it is ignored with a warning, as llm-d-router logs one.
 */
export function resolveFlowControl(input: FlowControlInput): SnapshotFlowControl | null {
  const gates = parseFeatureGates(input.featureGates);
  for (const [name, on] of gates)
    if (name !== FLOW_CONTROL_GATE)
      input.notes.push(`feature gate ${name}${on ? "" : "=false"} is accepted and ignored`);
  const on = gates.get(FLOW_CONTROL_GATE) ?? false;
  const resolved = parseFlowControl(input.flowControl, input.plugins);
  if (on) return resolved;
  // Only saturationDetector.pluginRef applies without the gate (it names the profile's detector); a section
  // holding nothing else loses nothing.
  const fc = input.flowControl as Fields | null | undefined;
  if (fc && Object.keys(fc).some((k) => k !== "saturationDetector"))
    input.warnings.push(
      `flowControl: ignored: the flowControl feature gate is off (featureGates: ["flowControl"] turns it on)${fc.saturationDetector != null ? "; its saturationDetector.pluginRef still names the saturation detector" : ""}`,
    );
  for (const p of input.plugins.values())
    if (FLOW_CONTROL_PLUGIN_TYPES.includes(p.type))
      input.notes.push(`plugin ${p.name} (${p.type}) is accepted and ignored: the flowControl feature gate is off`);
  return null;
}

/** One line for the log: what flow control applies. */
export function describeFlowControl(fc: SnapshotFlowControl): string {
  const limit = (n: number) => (n === 0 ? "none" : String(n));
  return (
    `flow control on: defaultRequestTTL ${fc.defaultRequestTtlMs}ms, noEndpointRequestTTL ${fc.noEndpointRequestTtlMs}ms, ` +
    `maxRequests ${limit(fc.maxRequests)}, maxBytes ${limit(fc.maxBytes)}, ` +
    (fc.holdback
      ? `priority holdback ${fc.holdback.maxCeiling} down to ${fc.holdback.minCeiling} by ${fc.holdback.domain}, `
      : fc.softReflective
        ? "soft reflective ceilings, "
        : `usage limit ${fc.usageLimit}, `) +
    `bands ${fc.bands.map((b) => b.priority).join(", ") || "none listed"} (others from the templates)`
  );
}
