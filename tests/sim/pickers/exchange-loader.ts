// The companion's GatewayExchange (companion/gateway-exchange.ts) as the simulator's companion replicas:
// companion ids fixed per replica (random in a real companion) keep runs deterministic, and a companion
// without peers keeps nothing for relays (nothing would take it).
import { GatewayExchange } from "../../../companion/gateway-exchange";
import type { GatewayExchangeLike } from "./exchange";

export function companionExchange(replica: number, replicas: number): GatewayExchangeLike {
  return new GatewayExchange({ relay: replicas > 1, companionId: BigInt(replica + 1) });
}
