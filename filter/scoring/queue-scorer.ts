// queue-scorer (GIE): the less loaded an endpoint, the higher its score. The load is the decision's
// "outstanding" count (the proxy's own requests in flight, plus half of what the metrics show beyond them),
// normalised min-max as GIE does, but over at least LOAD_SPAN_FLOOR requests: between nearly idle endpoints
// half a request of difference is noise, and min-max alone would turn it into the whole weight.
import { ScorerPlugin, Profile } from "./plugin";

export const LOAD_SPAN_FLOOR: f64 = 4;

export class QueueScorer extends ScorerPlugin {
  join(profile: Profile): void {
    profile.queueWeight += this.weight;
  }
}

/** Per request: the slope of the term, weight per request of load above the least loaded. */
// @ts-ignore: decorator
@inline export function queueSlope(weight: f64, minLoad: f64, maxLoad: f64): f64 {
  return weight / max(maxLoad - minLoad, LOAD_SPAN_FLOOR);
}

/** The term: weight at the least loaded endpoint, falling by `slope` per request above it. */
// @ts-ignore: decorator
@inline export function queueTerm(weight: f64, slope: f64, minLoad: f64, load: f64): f64 {
  return weight - slope * (load - minLoad);
}
