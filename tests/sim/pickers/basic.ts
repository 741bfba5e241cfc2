// Load-balancer baselines: random, round-robin, and Envoy's LEAST_REQUEST (unweighted hosts: power of two
// choices on the gateway's own active-request counts, the first drawn host winning a tie). With no pod up,
// Envoy's router answers 503 no_healthy_upstream.
import type { Pick, Picker } from "./picker";

/** Envoy's answer when the cluster has no host: 503, response code details no_healthy_upstream. */
export const NO_HEALTHY_UPSTREAM: Pick = { reject: 503, reason: "no_healthy_upstream" };

export function randomPicker(): Picker {
  return {
    name: "random",
    start() {},
    pick: (_r, _p, ctx) => (ctx.pods.length === 0 ? NO_HEALTHY_UPSTREAM : { pod: ctx.rng.int(ctx.pods.length) }),
  };
}

export function roundRobinPicker(): Picker {
  let next = 0;
  return {
    name: "round-robin",
    start() {
      next = 0;
    },
    pick: (_r, _p, ctx) => (ctx.pods.length === 0 ? NO_HEALTHY_UPSTREAM : { pod: next++ % ctx.pods.length }),
  };
}

export function leastRequestPicker(): Picker {
  return {
    name: "least-request",
    start() {},
    pick(_r, _p, ctx) {
      const n = ctx.pods.length;
      if (n === 0) return NO_HEALTHY_UPSTREAM;
      if (n === 1) return { pod: 0 };
      const a = ctx.rng.int(n);
      let b = ctx.rng.int(n - 1);
      if (b >= a) b++;
      return { pod: ctx.pods[b].inFlight < ctx.pods[a].inFlight ? b : a };
    },
  };
}
