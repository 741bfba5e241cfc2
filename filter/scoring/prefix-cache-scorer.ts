// prefix-cache-scorer (GIE): the share of the request's prompt blocks an endpoint was last sent (the prefix
// index, filter/prefix.ts), times the weight; with llm-d-router's match-length weight w above 0,
// w x min(1, matched characters / matchLengthScaleChars)^2 + (1 - w) x the share. Ours: the credit yields to
// load. An endpoint busier than the least busy keeps it only within a slack that grows with the load and with
// how much more of the prompt it holds than the least-matching candidate (a long cached prefix is worth more
// waiting than a short one).
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
  lengthWeight: f64 = 0;
  lengthScaleChars: f64 = 0;

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
    // Optional (written only when on): absent is the plain share.
    const w = params.number("matchLengthWeight");
    if (!isNaN(w)) {
      const scale = params.number("matchLengthScaleChars");
      if (!(w >= 0 && w <= 1)) return "matchLengthWeight out of range";
      if (w > 0 && !(scale >= 1)) return "matchLengthScaleChars missing or below 1";
      this.lengthWeight = w;
      this.lengthScaleChars = scale;
    }
    return "";
  }

  join(profile: Profile): void {
    profile.prefixWeight += this.weight;
    profile.prefixBlockChars = this.blockChars;
    profile.prefixMaxBlocks = this.maxBlocks;
    profile.prefixLruPerEndpoint = this.lruPerEndpoint;
    profile.prefixLengthWeight = this.lengthWeight;
    profile.prefixLengthScaleChars = this.lengthScaleChars;
  }
}

/**
 * The term of an endpoint holding `matched` of the request's blocks: its `credit` (weight x its score),
 * damped once it is busier than the least busy (`excess` outstanding requests) by more than the slack.
 */
// @ts-ignore: decorator
@inline export function prefixTerm(credit: f64, matched: f64, minMatched: f64, excess: f64, minLoad: f64): f64 {
  const allowed = SLACK_ABS + SLACK_REL * minLoad + SLACK_PER_BLOCK * (matched - minMatched);
  const damp = excess <= allowed ? 1.0 : max(0.0, 1.0 - (excess - allowed) / allowed);
  return credit * damp;
}

/** The match-length credit: weight x (w x min(1, matched x perBlock)^2 + (1 - w) x matched / blocks). */
// @ts-ignore: decorator
@inline export function lengthCredit(weight: f64, w: f64, perBlock: f64, matched: f64, blocks: f64): f64 {
  const length = min(1.0, matched * perBlock);
  return weight * (w * length * length + (1.0 - w) * (matched / blocks));
}
