// The load balancer in front of the gateway replicas (docs/SIMULATOR.md, "Gateway replicas"): a cloud or
// Kubernetes L4/L7 balancer spreading requests over R Envoy gateways. Per request, no stickiness: a client's
// next request may reach another replica (what makes sharing state between replicas matter).
import type { Rng } from "../rng";

export const LB_KINDS = ["round-robin", "random"] as const;
export type LbKind = (typeof LB_KINDS)[number];

export interface GatewayBalancer {
  readonly kind: LbKind;
  readonly gateways: number;
  /** The gateway replica (0..gateways-1) the next request goes to. */
  next(): number;
}

/** Round-robin: request i goes to gateway i mod R. Random: uniform, drawn from `rng` (seeded). */
export function makeBalancer(kind: LbKind, gateways: number, rng: Rng): GatewayBalancer {
  if (!Number.isInteger(gateways) || gateways < 1) throw new Error(`gateways must be an integer >= 1, not ${gateways}`);
  let i = 0;
  switch (kind) {
    case "round-robin":
      return { kind, gateways, next: () => i++ % gateways };
    case "random":
      return { kind, gateways, next: () => (gateways === 1 ? 0 : rng.int(gateways)) };
    default:
      throw new Error(`unknown load balancer "${kind as string}" (${LB_KINDS.join(", ")})`);
  }
}

export function isLbKind(s: string): s is LbKind {
  return (LB_KINDS as readonly string[]).includes(s);
}
