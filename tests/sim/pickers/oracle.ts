// The oracle: reads every pod's true state (queue, running requests, KV blocks, actual prefix-cache
// contents, resident adapters) at decision time and sends the request where its estimated time to first
// token is least. It is an estimate from the engine model, not a clairvoyant optimum:
//   wait for a batch slot (max-num-seqs) and for KV blocks (running requests' remaining decodes x the
//   decode step), + adapter load if not resident, + prefill of everything queued ahead plus this prompt's
//   uncached tokens, spread over steps of the chunked-prefill budget, each step also paying a decode.
import { decodeMs, prefillMs } from "../latency";
import { NO_HEALTHY_UPSTREAM } from "./basic";
import type { FleetPod, Picker } from "./picker";
import type { Prepared } from "../workloads";

export function estimateTtftMs(pod: FleetPod, prepared: Prepared): number {
  const e = pod.engine;
  const profile = e.profile;
  const seq = prepared.seq;
  const cached = e.probeCachedTokens(seq);
  const uncached = seq.promptTokens - cached;
  const backlog = e.backlogPrefillTokens();
  const running = e.numRunning;
  const decodeStep = decodeMs(
    profile,
    { prefillTokens: 0, decodeRequests: running > 0 ? 1 : 0, kvUsage: e.kvUsage, batchSize: running + 1 },
    null,
  );
  const load = e.runningLoad().sort((a, b) => a.remaining - b.remaining);
  let waitMs = 0;
  // A batch slot: the (excess + 1)-th running request to finish frees one.
  const excess = running + e.numWaiting - profile.scheduler.maxNumSeqs;
  if (excess >= 0 && load.length > 0) waitMs = load[Math.min(load.length - 1, excess)].remaining * decodeStep;
  // KV blocks: wait until enough running requests finish to free what this request needs.
  const blocksNeeded =
    Math.ceil((seq.promptTokens + prepared.parsed.outputTokens) / e.blockSize) - Math.floor(cached / e.blockSize);
  let short = blocksNeeded - e.pool.freeBlocks;
  for (const r of load) {
    if (short <= 0) break;
    short -= r.blocks;
    waitMs = Math.max(waitMs, r.remaining * decodeStep);
  }
  const adapter = prepared.parsed.adapter;
  if (adapter !== null && !e.isAdapterResident(adapter)) waitMs += profile.lora.loadDelayMs;
  const tokens = backlog + uncached;
  const steps = Math.max(1, Math.ceil(tokens / profile.scheduler.maxNumBatchedTokens));
  return waitMs + prefillMs(profile, tokens) + (running > 0 ? steps * decodeStep : 0);
}

export function oraclePicker(): Picker {
  return {
    name: "oracle",
    start() {},
    pick(_req, prepared, ctx) {
      if (ctx.pods.length === 0) return NO_HEALTHY_UPSTREAM;
      let best = 0,
        bestCost = Infinity;
      for (const pod of ctx.pods) {
        // Ties (e.g. idle pods) go to the pod with the fewest requests in flight, then the lowest index.
        const cost = estimateTtftMs(pod, prepared) + pod.inFlight * 1e-6;
        if (cost < bestCost) {
          bestCost = cost;
          best = pod.index;
        }
      }
      return { pod: best };
    },
  };
}
