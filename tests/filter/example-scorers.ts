// Two scorers that are not part of the filter, written the way a new one is (docs/ARCHITECTURE.md, "Adding a
// scorer"): one class each, registered by tests/filter/new-scorer.spec.ts with one line each.
import { ScorerPlugin, Params, DecisionState } from "../../filter/scoring/plugin";
import { Snapshot } from "../../filter/snapshot";

/** From the snapshot alone: 1 for the endpoint at the `address` parameter, 0 for the others. */
export class PinnedAddressScorer extends ScorerPlugin {
  address: string = "";

  constructor() {
    super();
    this.perSnapshot = true;
  }

  configure(params: Params): string {
    const a = params.text("address");
    if (a == null) return "address missing";
    this.address = a;
    return "";
  }

  scoreEndpoint(snap: Snapshot, i: i32): f64 {
    return snap.address(i) == this.address ? 1.0 : 0.0;
  }
}

/** Per request: 1 for the candidates with the fewest waiting requests as the decision sees them, else 0. */
export class FewestWaitingScorer extends ScorerPlugin {
  scoreRequest(d: DecisionState, out: StaticArray<f64>): void {
    let least = f64.MAX_VALUE;
    for (let k = 0; k < d.candidateCount; k++) least = min(least, d.waiting[d.candidates[k]]);
    for (let k = 0; k < d.candidateCount; k++) {
      const i = d.candidates[k];
      if (d.waiting[i] == least) out[i] += this.weight;
    }
  }
}
