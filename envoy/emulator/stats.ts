// Plugin metrics as Envoy keeps them: one stat per name for the whole process (all worker VMs add to
// the same counter), names prefixed with "wasmcustom.", ids per VM with the type in the low 2 bits.
import { CUSTOM_STAT_NAMESPACE } from "./abi";

export interface MetricsSnapshot {
  counters: Record<string, number>;
  gauges: Record<string, number>;
  histograms: Record<string, number[]>;
}

export class Stats {
  readonly counters = new Map<string, bigint>();
  readonly gauges = new Map<string, bigint>();
  readonly histograms = new Map<string, number[]>();

  static fullName(name: string): string {
    return `${CUSTOM_STAT_NAMESPACE}.${name}`;
  }

  snapshot(): MetricsSnapshot {
    const num = (m: Map<string, bigint>) => Object.fromEntries([...m].map(([k, v]) => [k, Number(v)]));
    return {
      counters: num(this.counters),
      gauges: num(this.gauges),
      histograms: Object.fromEntries([...this.histograms].map(([k, v]) => [k, [...v]])),
    };
  }
}
