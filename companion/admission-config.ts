// llm-d-router's admission plugins (requestcontrol Admitter): asked once per request, after flow control and
// before the scheduling, whether the request may be served. Every declared one is active (they are not
// referenced by a scheduling profile), so each becomes an `admitter` entry of the primary (decode) profile.
// probabilistic-admitter: a request of negative priority is refused with probability
// min(saturation^power x k, 1), saturation = the mean over the candidates of
// max(waiting / queueDepthThreshold, KV usage / kvCacheUtilThreshold) (filter/scoring/probabilistic-admitter.ts).
import { asObject, join, onlyKeys, optNumber } from "./config-fields";
import type { PluginDecl } from "./profile-config";
import type { ProfilePlugin, SchedulingProfile } from "./snapshot";

export const PROBABILISTIC_ADMITTER_TYPE = "probabilistic-admitter";
export const ADMITTER_TYPES = [PROBABILISTIC_ADMITTER_TYPE];

/** llm-d-router's defaults; every value must be above 0 (its factory refuses the others). */
const DEFAULTS = { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, power: 5, k: 300 };

function probabilistic(plugin: PluginDecl): ProfilePlugin {
  const path = join(plugin.path, "parameters");
  const p = plugin.parameters == null ? {} : asObject(plugin.parameters, path);
  onlyKeys(p, path, Object.keys(DEFAULTS));
  const num = (key: keyof typeof DEFAULTS, integer = false): number =>
    optNumber(p, key, path, { minExclusive: 0, integer }) ?? DEFAULTS[key];
  return {
    role: "admitter",
    type: PROBABILISTIC_ADMITTER_TYPE,
    weight: 0,
    parameters: {
      queueDepthThreshold: num("queueDepthThreshold", true),
      kvCacheUtilThreshold: num("kvCacheUtilThreshold"),
      power: num("power"),
      k: num("k"),
    },
  };
}

/** The profile with an admitter entry per declared admission plugin, in declaration order. */
export function withAdmitters(profile: SchedulingProfile, plugins: ReadonlyMap<string, PluginDecl>): SchedulingProfile {
  const admitters = [...plugins.values()].filter((p) => p.type === PROBABILISTIC_ADMITTER_TYPE).map(probabilistic);
  return admitters.length === 0 ? profile : { ...profile, plugins: [...profile.plugins, ...admitters] };
}
