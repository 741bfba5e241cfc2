// max-score-picker (GIE): the highest score; ties are broken uniformly at random. The decision's loop
// tracks the endpoints tied for the best score as it scores, so this picker only draws among them.
import { PickerPlugin, DecisionState } from "./plugin";
import { nextBelow } from "../rng";

export class MaxScorePicker extends PickerPlugin {
  pick(d: DecisionState): i32 {
    return pickMaxScore(d);
  }
}

export function pickMaxScore(d: DecisionState): i32 {
  const ties = d.tiedCount;
  if (ties == 0) return -1;
  return unchecked(d.tied[ties == 1 ? 0 : nextBelow(ties)]);
}
