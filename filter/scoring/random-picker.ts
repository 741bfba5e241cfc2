// random-picker (GIE): uniformly among the candidates no filter excluded.
import { PickerPlugin, DecisionState, EXCLUDED } from "./plugin";
import { nextBelow } from "../rng";

export class RandomPicker extends PickerPlugin {
  pick(d: DecisionState): i32 {
    return pickUniformly(d);
  }
}

export function pickUniformly(d: DecisionState): i32 {
  const list = d.candidates,
    count = d.candidateCount,
    scores = d.scores;
  let admitted = 0;
  for (let k = 0; k < count; k++) if (unchecked(scores[unchecked(list[k])]) != EXCLUDED) admitted++;
  if (admitted == 0) return -1;
  let r = nextBelow(admitted);
  for (let k = 0; k < count; k++) {
    const i = unchecked(list[k]);
    if (unchecked(scores[i]) != EXCLUDED && r-- == 0) return i;
  }
  return -1;
}
