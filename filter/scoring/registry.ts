// The profile plugins this filter knows, by GIE type name, and the Profile built from a snapshot's entries.
// Adding a plugin: its own file in this folder and one `register` line below (docs/ARCHITECTURE.md, "Adding
// a scorer"). Entries of unknown types are left out with a problem noted (a newer companion may send them).
import {
  ProfilePlugin,
  Profile,
  PluginEntry,
  ROLE_SCORER,
  ROLE_PICKER,
  ROLE_SATURATION_DETECTOR,
  ROLE_FILTER,
  ROLE_ADMITTER,
  ScorerPlugin,
} from "./plugin";
import { QueueScorer } from "./queue-scorer";
import { KvCacheUtilizationScorer } from "./kv-cache-utilization-scorer";
import { PrefixCacheScorer } from "./prefix-cache-scorer";
import { LoraAffinityScorer } from "./lora-affinity-scorer";
import { RunningRequestsSizeScorer } from "./running-requests-size-scorer";
import { MaxScorePicker } from "./max-score-picker";
import { RandomPicker } from "./random-picker";
import { WeightedRandomPicker } from "./weighted-random-picker";
import { UtilizationDetector } from "./utilization-detector";
import { DecodeFilter, PrefillFilter, EncodeFilter } from "./role-filters";
import { LoadAwareScorer } from "./load-aware-scorer";
import { NoHitLruScorer } from "./no-hit-lru-scorer";
import { ProbabilisticAdmitter } from "./probabilistic-admitter";
import { SessionAffinityScorer } from "./session-affinity-scorer";
import { AgentIdentity } from "./agent-identity";

export type PluginFactory = () => ProfilePlugin;

class Registration {
  constructor(
    public role: u8,
    public type: string,
    public create: PluginFactory,
  ) {}
}

let registrations: Registration[] | null = null;

function builtIns(): Registration[] {
  const r = new Array<Registration>();
  registrations = r;
  register(ROLE_SCORER, "queue-scorer", (): ProfilePlugin => new QueueScorer());
  register(ROLE_SCORER, "kv-cache-utilization-scorer", (): ProfilePlugin => new KvCacheUtilizationScorer());
  register(ROLE_SCORER, "prefix-cache-scorer", (): ProfilePlugin => new PrefixCacheScorer());
  register(ROLE_SCORER, "lora-affinity-scorer", (): ProfilePlugin => new LoraAffinityScorer());
  register(ROLE_SCORER, "running-requests-size-scorer", (): ProfilePlugin => new RunningRequestsSizeScorer());
  register(ROLE_PICKER, "max-score-picker", (): ProfilePlugin => new MaxScorePicker());
  register(ROLE_PICKER, "random-picker", (): ProfilePlugin => new RandomPicker());
  register(ROLE_PICKER, "weighted-random-picker", (): ProfilePlugin => new WeightedRandomPicker());
  register(ROLE_SATURATION_DETECTOR, "utilization-detector", (): ProfilePlugin => new UtilizationDetector());
  register(ROLE_FILTER, "decode-filter", (): ProfilePlugin => new DecodeFilter());
  register(ROLE_FILTER, "prefill-filter", (): ProfilePlugin => new PrefillFilter());
  register(ROLE_SCORER, "session-affinity-scorer", (): ProfilePlugin => new SessionAffinityScorer());
  register(ROLE_FILTER, "agent-identity", (): ProfilePlugin => new AgentIdentity());
  register(ROLE_FILTER, "encode-filter", (): ProfilePlugin => new EncodeFilter());
  register(ROLE_SCORER, "load-aware-scorer", (): ProfilePlugin => new LoadAwareScorer());
  register(ROLE_SCORER, "no-hit-lru-scorer", (): ProfilePlugin => new NoHitLruScorer());
  register(ROLE_ADMITTER, "probabilistic-admitter", (): ProfilePlugin => new ProbabilisticAdmitter());
  return r;
}

function all(): Registration[] {
  const r = registrations;
  return r != null ? r : builtIns();
}

/** Makes a plugin type known (a later registration of the same role and type replaces the earlier one). */
export function register(role: u8, type: string, create: PluginFactory): void {
  const list = all();
  for (let k = 0; k < list.length; k++) {
    if (list[k].role == role && list[k].type == type) {
      list[k].create = create;
      return;
    }
  }
  list.push(new Registration(role, type, create));
}

function find(role: u8, type: string): Registration | null {
  const list = all();
  for (let k = 0; k < list.length; k++) if (list[k].role == role && list[k].type == type) return list[k];
  return null;
}

/** The Profile of a snapshot's plugin entries; what could not be used is in `problems`. */
export function buildProfile(entries: PluginEntry[]): Profile {
  const profile = new Profile();
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k];
    const reg = find(e.role, e.type);
    if (reg == null) {
      profile.problems.push(e.type + ": unknown plugin type (left out)");
      continue;
    }
    const plugin = reg.create();
    const problem = plugin.configure(e.params);
    if (problem.length > 0) {
      profile.problems.push(e.type + ": " + problem + " (left out)");
      continue;
    }
    if (e.role == ROLE_SCORER) {
      // A weight that is not a positive number switches the scorer off (a NaN would poison every score).
      const w = e.weight;
      if (!(isFinite(w) && w > 0)) continue;
      (<ScorerPlugin>plugin).weight = w;
    }
    plugin.join(profile);
  }
  if (profile.picker == null) profile.problems.push("no picker this filter knows: max-score-picker applies");
  return profile;
}
