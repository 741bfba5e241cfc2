// weighted-random-picker (GIE): at random with probability proportional to the score (scores at or below 0
// never win); uniformly when no candidate scores above 0.
import { PickerPlugin, DecisionState } from "./plugin";
import { pickUniformly } from "./random-picker";
import { nextFloat } from "../rng";

export class WeightedRandomPicker extends PickerPlugin {
  pick(d: DecisionState): i32 {
    const list = d.candidates,
      count = d.candidateCount,
      scores = d.scores;
    let total: f64 = 0;
    for (let k = 0; k < count; k++) total += max(unchecked(scores[unchecked(list[k])]), 0);
    if (total <= 0) return pickUniformly(d);
    let r = nextFloat() * total;
    let last = -1;
    for (let k = 0; k < count; k++) {
      const i = unchecked(list[k]);
      const s = max(unchecked(scores[i]), 0);
      if (s <= 0) continue;
      last = i;
      if (r < s) return i;
      r -= s;
    }
    return last; // rounding left r just above the last weight
  }
}
