// utilization-detector (GIE's saturation detector): an endpoint is saturated when its waiting requests reach
// queueDepthThreshold or its KV cache usage reaches kvCacheUtilThreshold (or its metrics are stale). When
// every candidate is saturated, a sheddable request gets 429. The decision's load pass applies the check.
import { ProfilePlugin, Profile, Params } from "./plugin";

export class UtilizationDetector extends ProfilePlugin {
  queue: f64 = 0;
  kv: f64 = 0;

  configure(params: Params): string {
    this.queue = params.number("queueDepthThreshold");
    this.kv = params.number("kvCacheUtilThreshold");
    if (!(this.queue > 0)) return "queueDepthThreshold missing or not above 0";
    if (!(this.kv > 0)) return "kvCacheUtilThreshold missing or not above 0";
    return "";
  }

  join(profile: Profile): void {
    profile.saturationQueue = this.queue;
    profile.saturationKv = this.kv;
  }
}
