// The pickers the fleet and the routing benchmark compare, by name.
import { leastRequestPicker, randomPicker, roundRobinPicker } from "./basic";
import { type FilterPickerOptions, filterPicker } from "./filter";
import { giePicker } from "./gie";
import { oraclePicker } from "./oracle";
import type { Picker } from "./picker";

export const PICKER_NAMES = ["random", "round-robin", "least-request", "gie", "filter", "oracle"] as const;
export type PickerName = (typeof PICKER_NAMES)[number];

/** `loraWeight`: the lora-affinity-scorer weight the GIE and filter pickers' profile adds (0: GIE's default profile). */
export function createPicker(name: PickerName, filter: FilterPickerOptions = {}, loraWeight = 0): Picker {
  switch (name) {
    case "random":
      return randomPicker();
    case "round-robin":
      return roundRobinPicker();
    case "least-request":
      return leastRequestPicker();
    case "gie":
      return giePicker({ loraWeight });
    case "filter":
      return filterPicker({ ...filter, profile: { ...filter.profile, ...(loraWeight > 0 ? { loraWeight } : {}) } });
    case "oracle":
      return oraclePicker();
  }
}

export type { Picker, PickerContext, Pick, FleetPod, ScrapedMetrics } from "./picker";
