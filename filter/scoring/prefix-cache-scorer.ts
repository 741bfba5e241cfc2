// prefix-cache-scorer (GIE): the share of the request's prompt blocks an endpoint was last sent (the prefix
// index, filter/prefix.ts), times the weight. Ours: the credit yields to load. An endpoint busier than the
// least busy keeps it only within a slack that grows with the load and with how much more of the prompt it
// holds than the least-matching candidate (a long cached prefix is worth more waiting than a short one).
import { ScorerPlugin, Profile, Params } from "./plugin";

/** Outstanding requests above the least busy endpoint that keep full prefix credit: absolute + relative. */
const SLACK_ABS: f64 = 2;
const SLACK_REL: f64 = 0.25;
const SLACK_PER_BLOCK: f64 = 0.15;
/** Limits of the parameters (the prompt copy a request keeps is bounded elsewhere too). */
const MAX_PARAM: f64 = 65535;

export class PrefixCacheScorer extends ScorerPlugin {
  blockChars: i32 = 0;
  maxBlocks: i32 = 0;
  lruPerEndpoint: i32 = 0;

  configure(params: Params): string {
    const chars = params.number("blockSizeChars"),
      blocks = params.number("maxPrefixBlocksToMatch"),
      lru = params.number("lruCapacityPerServer");
    if (!(chars >= 1 && chars <= MAX_PARAM)) return "blockSizeChars missing or out of range";
    if (!(blocks >= 1 && blocks <= MAX_PARAM)) return "maxPrefixBlocksToMatch missing or out of range";
    if (!(lru >= 1 && lru <= MAX_PARAM)) return "lruCapacityPerServer missing or out of range";
    this.blockChars = <i32>chars;
    this.maxBlocks = <i32>blocks;
    this.lruPerEndpoint = <i32>lru;
    return "";
  }

  join(profile: Profile): void {
    profile.prefixWeight += this.weight;
    profile.prefixBlockChars = this.blockChars;
    profile.prefixMaxBlocks = this.maxBlocks;
    profile.prefixLruPerEndpoint = this.lruPerEndpoint;
  }
}

/**
 * The term of an endpoint holding `matched` of the request's blocks: `scale` (weight / blocks) per block,
 * damped once it is busier than the least busy (`excess` outstanding requests) by more than the slack.
 */
// @ts-ignore: decorator
@inline export function prefixTerm(scale: f64, matched: f64, minMatched: f64, excess: f64, minLoad: f64): f64 {
  const allowed = SLACK_ABS + SLACK_REL * minLoad + SLACK_PER_BLOCK * (matched - minMatched);
  const damp = excess <= allowed ? 1.0 : max(0.0, 1.0 - (excess - allowed) / allowed);
  return scale * matched * damp;
}
