// kv-cache-utilization-scorer (GIE): 1 - KV cache usage. It depends on the snapshot alone, so the decision
// computes it once per snapshot version. An engine that reports no usage counts as half full (neither
// attractive nor repellent).
import { ScorerPlugin, Profile } from "./plugin";
import { Snapshot, FLAG_KV } from "../snapshot";

const KV_UNKNOWN: f64 = 0.5;

export class KvCacheUtilizationScorer extends ScorerPlugin {
  constructor() {
    super();
    this.perSnapshot = true;
  }

  scoreEndpoint(snap: Snapshot, i: i32): f64 {
    return 1.0 - ((unchecked(snap.flags[i]) & FLAG_KV) != 0 ? unchecked(snap.kv[i]) : KV_UNKNOWN);
  }

  join(profile: Profile): void {
    profile.kvWeight += this.weight;
    super.join(profile);
  }
}
