// Capacity of a fleet for a workload: the throughput (requests/s) it sustains when saturated, measured in a
// closed loop (a fixed number of requests always in flight) with least-request routing, between the 25th
// and the 75th percentile of completions (past the warm-up, before the drain). The benchmark's loads are
// fractions of this number.
import { profileFor, runFleet } from "./fleet";
import { leastRequestPicker } from "./pickers/basic";
import type { EngineKind, EngineProfile } from "./profile";
import { percentile } from "./results";
import { type Workload, prepare } from "./workloads";

export interface CapacityOptions {
  pods: number;
  engines?: EngineKind[];
  profile: EngineProfile;
  workload: Workload;
  /** Requests in flight per pod; default: twice what the KV cache holds at the workload's mean length, capped at max-num-seqs. */
  concurrencyPerPod?: number;
  seed?: number;
}

export interface Capacity {
  requestsPerSec: number;
  concurrency: number;
  measuredRequests: number;
}

export function measureCapacity(o: CapacityOptions): Capacity {
  const profile = profileFor(o.profile, o.workload);
  const sample = o.workload.requests.slice(0, 200).map((r) => prepare(r, profile));
  const meanTokens =
    sample.reduce((a, p) => a + p.seq.promptTokens + p.parsed.outputTokens, 0) / Math.max(1, sample.length);
  const perPod =
    o.concurrencyPerPod ??
    Math.max(2, Math.min(o.profile.scheduler.maxNumSeqs, Math.round((2 * o.profile.kv.cacheTokens) / meanTokens)));
  const concurrency = perPod * o.pods;
  const r = runFleet({
    pods: o.pods,
    engines: o.engines,
    profile,
    picker: leastRequestPicker(),
    workload: o.workload,
    seed: o.seed,
    closedLoop: { concurrency },
  });
  const done = r.records.filter((x) => x.status === "ok").map((x) => x.finishedMs);
  const from = percentile(done, 0.25),
    to = percentile(done, 0.75);
  const inWindow = done.filter((t) => t > from && t <= to).length;
  return { requestsPerSec: to > from ? (inWindow * 1000) / (to - from) : 0, concurrency, measuredRequests: inWindow };
}
