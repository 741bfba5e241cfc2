// The scheduling-profile plugins this companion knows, by GIE type name: what each does in the decision and
// how its parameters resolve into the values the filter applies (the filter keeps no defaults of its own).
// Adding a plugin: one line here (with a parameter resolver when it takes parameters), one file in
// filter/scoring/ and its registration there (docs/ARCHITECTURE.md, "Adding a scorer").
import { onlyKeys, optNumber, optString, type Fields } from "./config-fields";
import type { ParamValue, PluginRole } from "./snapshot";
import { resolveSessionAffinity } from "./session-affinity-config";

/**
 * Resolves a plugin's `parameters` (undefined when absent) into wire parameters; throws ConfigError. `warn`
 * takes a warning for the log (a value replaced by the default, as upstream does with a log line).
 */
export type ParameterResolver = (
  params: Fields | undefined,
  path: string,
  warn: (warning: string) => void,
) => Record<string, ParamValue>;

export interface ProfilePluginType {
  role: PluginRole;
  resolve: ParameterResolver;
}

/** A plugin that takes no parameters (an empty `parameters` mapping is accepted). */
const none: ParameterResolver = (params, path) => {
  if (params) onlyKeys(params, path, []);
  return {};
};

/** Pickers: `maxNumOfEndpoints` is the pick plus the fallbacks listed in the fallback header. */
const pickerParameters: ParameterResolver = (params, path) => {
  if (params) onlyKeys(params, path, ["maxNumOfEndpoints"]);
  const max = (params && optNumber(params, "maxNumOfEndpoints", path, { integer: true, min: 1 })) ?? 1;
  return { maxNumOfEndpoints: Math.min(max, 256) };
};

/** llm-d-router's load-aware-scorer: `threshold`, the queue length that scores 0 (default 128). */
const loadAwareParameters: ParameterResolver = (params, path, warn) => {
  if (params) onlyKeys(params, path, ["threshold"]);
  const t = params && optNumber(params, "threshold", path, { integer: true });
  if (t !== undefined && t <= 0)
    warn(`${path}.threshold: ${t} is not positive; llm-d-router's default 128 applies instead, as in llm-d-router`);
  return { threshold: t !== undefined && t > 0 ? t : 128 };
};

/**
 * llm-d-router's no-hit-lru-scorer: `lruSize` endpoints remembered (1024 when absent or not positive, as in
 * llm-d-router); `prefixMatchInfoProducerName` is checked in prefix-producers.ts; its two deprecated fields
 * were never used.
 */
const noHitLruParameters: ParameterResolver = (params, path) => {
  if (params) {
    onlyKeys(params, path, ["lruSize", "prefixMatchInfoProducerName", "prefixPluginType", "prefixPluginName"]);
    for (const k of ["prefixMatchInfoProducerName", "prefixPluginType", "prefixPluginName"]) optString(params, k, path);
  }
  const size = params && optNumber(params, "lruSize", path, { integer: true, max: 0x7fffffff });
  return { lruSize: size !== undefined && size > 0 ? size : 1024 };
};

const scorer = (resolve: ParameterResolver = none): ProfilePluginType => ({ role: "scorer", resolve });
const picker: ProfilePluginType = { role: "picker", resolve: pickerParameters };

export const PROFILE_PLUGIN_TYPES: Readonly<Record<string, ProfilePluginType>> = {
  "queue-scorer": scorer(),
  "kv-cache-utilization-scorer": scorer(),
  // Its parameters are resolved with approx-prefix-cache-producer's, which can give them too (profile-config.ts).
  "prefix-cache-scorer": scorer(() => ({})),
  "lora-affinity-scorer": scorer(),
  "running-requests-size-scorer": scorer(),
  // llm-d-router's scorers over the queue (waiting requests) and over cold requests' recent picks.
  "load-aware-scorer": scorer(loadAwareParameters),
  "no-hit-lru-scorer": scorer(noHitLruParameters),
  "max-score-picker": picker,
  "random-picker": picker,
  "weighted-random-picker": picker,
  // llm-d-router's; agent-identity, its companion plugin, is read in session-affinity-config.ts.
  "session-affinity-scorer": scorer(resolveSessionAffinity),
  // llm-d-router's role filters (the `llm-d.ai/role` label; prefill/decode disaggregation, profile-config.ts).
  "decode-filter": { role: "filter", resolve: none },
  "prefill-filter": { role: "filter", resolve: none },
  "encode-filter": { role: "filter", resolve: none },
};

export const roleOf = (type: string): PluginRole | undefined => PROFILE_PLUGIN_TYPES[type]?.role;
