// The scheduling-profile plugins this companion knows, by GIE type name: what each does in the decision and
// how its parameters resolve into the values the filter applies (the filter keeps no defaults of its own).
// Adding a plugin: one line here (with a parameter resolver when it takes parameters), one file in
// filter/scoring/ and its registration there (docs/ARCHITECTURE.md, "Adding a scorer").
import { onlyKeys, optNumber, type Fields } from "./config-fields";
import type { ParamValue, PluginRole } from "./snapshot";
import { resolveSessionAffinity } from "./session-affinity-config";

/** Resolves a plugin's `parameters` (undefined when absent) into wire parameters; throws ConfigError. */
export type ParameterResolver = (params: Fields | undefined, path: string) => Record<string, ParamValue>;

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

const scorer = (resolve: ParameterResolver = none): ProfilePluginType => ({ role: "scorer", resolve });
const picker: ProfilePluginType = { role: "picker", resolve: pickerParameters };

export const PROFILE_PLUGIN_TYPES: Readonly<Record<string, ProfilePluginType>> = {
  "queue-scorer": scorer(),
  "kv-cache-utilization-scorer": scorer(),
  // Its parameters are resolved with approx-prefix-cache-producer's, which can give them too (profile-config.ts).
  "prefix-cache-scorer": scorer(() => ({})),
  "lora-affinity-scorer": scorer(),
  "running-requests-size-scorer": scorer(),
  "max-score-picker": picker,
  "random-picker": picker,
  "weighted-random-picker": picker,
  // llm-d-router's; agent-identity, its companion plugin, is read in session-affinity-config.ts.
  "session-affinity-scorer": scorer(resolveSessionAffinity),
  // llm-d-router's role filters (the `llm-d.ai/role` label; prefill/decode disaggregation, profile-config.ts).
  "decode-filter": { role: "filter", resolve: none },
  "prefill-filter": { role: "filter", resolve: none },
};

export const roleOf = (type: string): PluginRole | undefined => PROFILE_PLUGIN_TYPES[type]?.role;
