// probabilistic-admitter (llm-d-router): a request of negative priority is refused with probability
// min(saturation^power x k, 1), where saturation is the mean over the candidates of
// max(waiting / queueDepthThreshold, KV usage / kvCacheUtilThreshold); an endpoint with stale metrics counts
// 1 (llm-d-router: no metrics), one without a KV metric counts its queue only. Other requests always pass.
// Waiting is the decision's, as best known (the scraped queue, or more in flight than the endpoint runs).
import { AdmitterPlugin, Params, DecisionState } from "./plugin";
import { FLAG_KV, FLAG_STALE } from "../snapshot";
import { nextFloat } from "../rng";

export class ProbabilisticAdmitter extends AdmitterPlugin {
  queue: f64 = 0;
  kv: f64 = 0;
  power: f64 = 0;
  k: f64 = 0;

  configure(params: Params): string {
    this.queue = params.number("queueDepthThreshold");
    this.kv = params.number("kvCacheUtilThreshold");
    this.power = params.number("power");
    this.k = params.number("k");
    if (!(this.queue > 0)) return "queueDepthThreshold missing or not above 0";
    if (!(this.kv > 0)) return "kvCacheUtilThreshold missing or not above 0";
    if (!(this.power > 0)) return "power missing or not above 0";
    if (!(this.k > 0)) return "k missing or not above 0";
    return "";
  }

  /** The candidates' mean saturation (0 with no candidate). */
  saturation(d: DecisionState): f64 {
    const snap = d.snapshot!;
    const n = d.candidateCount;
    if (n == 0) return 0;
    let total = 0.0;
    for (let c = 0; c < n; c++) {
      const i = unchecked(d.candidates[c]);
      const f = unchecked(snap.flags[i]);
      if ((f & FLAG_STALE) != 0) {
        total += 1.0;
        continue;
      }
      const kv = (f & FLAG_KV) != 0 ? unchecked(snap.kv[i]) / this.kv : 0.0;
      total += max(unchecked(d.waiting[i]) / this.queue, kv);
    }
    return total / <f64>n;
  }

  /** The probability of refusing a request of negative priority now. */
  refusal(d: DecisionState): f64 {
    return min(Math.pow(this.saturation(d), this.power) * this.k, 1.0);
  }

  admits(d: DecisionState): bool {
    if (d.candidateCount == 0) return true; // llm-d-router admits when there are no pods
    return nextFloat() >= this.refusal(d);
  }
}
