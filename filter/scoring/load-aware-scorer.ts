// load-aware-scorer (llm-d-router): 0.5 for an endpoint with no waiting request, falling linearly to 0 at
// `threshold` waiting requests (and beyond). Waiting is the decision's, as best known: the scraped queue, or
// more when this proxy has sent more than the endpoint reports running.
import { ScorerPlugin, Params, DecisionState } from "./plugin";

export class LoadAwareScorer extends ScorerPlugin {
  threshold: f64 = 0;

  configure(params: Params): string {
    const t = params.number("threshold");
    if (!(t >= 1)) return "threshold missing or below 1";
    this.threshold = t;
    return "";
  }

  scoreRequest(d: DecisionState, out: StaticArray<f64>): void {
    for (let k = 0; k < d.candidateCount; k++) {
      const i = unchecked(d.candidates[k]);
      const waiting = min(unchecked(d.waiting[i]), this.threshold);
      unchecked((out[i] += this.weight * 0.5 * (1.0 - waiting / this.threshold)));
    }
  }
}
