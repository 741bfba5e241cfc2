// Prefill/decode disaggregation (llm-d-router's disagg-profile-handler, decode-first): every request gets a
// decode pick under the snapshot's profile; then the prefill decider (prefix-based-pd-decider over the
// prompt's estimated tokens and what the decode pod already holds) says whether a prefill pod does the
// prompt first, picked under the prefill profile. The picker sends the prefill pod's address to the decode
// pod's sidecar in `x-prefiller-host-port` (docs/FILTER.md, "Prefill/decode disaggregation").
import { Profile, PluginEntry, RequestFacts } from "./scoring/plugin";
import { Decision, OUTCOME_PICKED } from "./scoring/decision";
import { Snapshot } from "./snapshot";
import { InFlight } from "./inflight";

/** The header llm-d's decode sidecar reads: where to prefill (`ip:port`). */
export const PREFILLER_HEADER = "x-prefiller-host-port";
/**
 * Every header llm-d's sidecar takes a host from (pkg/common/routing): the prefiller, the encoders, a KV
 * source and a data-parallel rank. Only the filter may set them; a client's are removed.
 */
export const SIDECAR_HOST_HEADERS: string[] = [
  PREFILLER_HEADER,
  "x-encoder-hosts-ports",
  "x-kv-cache-source-host-port",
  "x-data-parallel-host-port",
];

export const DECIDER_NONE: u8 = 0;
export const DECIDER_PREFIX: u8 = 1;
export const DECIDER_ALWAYS: u8 = 2;

/** Section 8 of the snapshot: the decider and the prefill profile. */
export class PdConfig {
  decider: u8 = DECIDER_NONE;
  nonCachedTokens: i64 = 0;
  promptTokens: i64 = 0;
  bytesPerToken: i64 = 0;
  entries: PluginEntry[] = [];
  prefill: Profile = new Profile();
}

/**
 * prefix-based-pd-decider: prefill elsewhere when the prompt has at least `promptTokens` tokens (0: no
 * minimum) and at least `nonCachedTokens` of them are not cached on the decode pod (0: never). Tokens are
 * estimated as llm-d-router's estimate backend does, bytes / bytesPerToken rounded up; the cached ones are
 * the prefix blocks the decode pod matched, in bytes, over the same ratio.
 */
export function wantsPrefill(pd: PdConfig, promptBytes: i64, cachedBytes: i64): bool {
  if (pd.decider == DECIDER_ALWAYS) return true;
  if (pd.decider != DECIDER_PREFIX || pd.nonCachedTokens <= 0 || pd.bytesPerToken <= 0) return false;
  const tokens = (max<i64>(promptBytes, 0) + pd.bytesPerToken - 1) / pd.bytesPerToken;
  if (pd.promptTokens > 0 && tokens < pd.promptTokens) return false;
  if (tokens < pd.nonCachedTokens) return false;
  // The uncached part rounded up as a whole, as llm-d-router pads to whole tokens before counting blocks.
  const uncached = (max<i64>(promptBytes - max<i64>(cachedBytes, 0), 0) + pd.bytesPerToken - 1) / pd.bytesPerToken;
  return uncached >= pd.nonCachedTokens;
}

/**
 * The prefill pick: an endpoint index, or -1 when the prefill stage is skipped (every prefill candidate
 * saturated under the prefill profile's detector, or none at all: the decode pod then prefills itself, as in
 * aggregated serving). The facts are the decode pick's; the request counts as sheddable here only, so a
 * saturated prefill pool skips the stage instead of turning the request away.
 */
export function pickPrefill(
  d: Decision,
  snap: Snapshot,
  pd: PdConfig,
  inflight: InFlight,
  facts: RequestFacts,
  ejected: StaticArray<u8> | null,
): i32 {
  const sheddable = facts.sheddable;
  facts.sheddable = true;
  const outcome = d.decide(snap, pd.prefill, inflight, facts, ejected);
  facts.sheddable = sheddable;
  return outcome == OUTCOME_PICKED ? d.primary : -1;
}
