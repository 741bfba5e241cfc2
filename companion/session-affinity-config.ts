// Session affinity in the EndpointPickerConfig: llm-d-router's `session-affinity-scorer` parameters and its
// `agent-identity` plugin, resolved into what the filter reads (docs/FILTER.md, "Session affinity"):
//
//   session-affinity-scorer -> tokenHeader (encodedEndpointHeaderConfig.header, x-session-token),
//     sessionHeaders (sessionIdConfig.sources' headers, in order; `attribute: agent-identity` is the agent
//     headers; default x-session-id), cookieName (a `cookie` source, ours; "" none), evictionTtlSeconds (300).
//   agent-identity -> a plugin entry of role filter whose `headers` (additionalSessionHeaders, then llm-d's
//     built-ins) are flow control's fairness id when a request names none.
//
// Unlike llm-d-router, both strategies read the token and the session ids (the token first) and write the
// token back: the token pins a session across gateway replicas, which share no session table.
import { asObject, fail, join, onlyKeys, optArray, optNumber, optString, type Fields } from "./config-fields";
import type { ParamValue, ProfilePlugin, SchedulingProfile } from "./snapshot";
import type { PluginDecl } from "./profile-config";

export const SESSION_AFFINITY_TYPE = "session-affinity-scorer";
export const AGENT_IDENTITY_TYPE = "agent-identity";
export const DEFAULT_TOKEN_HEADER = "x-session-token";
export const DEFAULT_SESSION_HEADER = "x-session-id";
export const DEFAULT_EVICTION_TTL_SECONDS = 300;
/** llm-d-router's agent-identity built-ins, in its order: Claude Code, OpenCode, Codex, Codex (legacy). */
export const AGENT_SESSION_HEADERS = ["x-claude-code-session-id", "x-session-affinity", "session-id", "session_id"];
const STRATEGIES = ["encoded_endpoint_header", "session_id"];
/** Stands for the agent headers in a resolved header list until the agent-identity plugin is known. */
const AGENT_MARK = "@agent-identity";
/** The filter caps binding lifetimes at 300 days (its stamps' range). */
const MAX_TTL_SECONDS = 300 * 24 * 3600;

/** An HTTP header or cookie name (RFC 9110 token), lowercased for headers as Envoy keys them. */
function tokenName(value: unknown, path: string, lower: boolean): string {
  if (typeof value !== "string") fail(path, "must be a string", value);
  const name = lower ? value.trim().toLowerCase() : value.trim();
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) fail(path, "must be a header or cookie name", value);
  return name;
}

/** session-affinity-scorer's parameters (llm-d-router's names and defaults), as the filter reads them. */
export function resolveSessionAffinity(params: Fields | undefined, path: string): Record<string, ParamValue> {
  const p = params ?? {};
  onlyKeys(p, path, ["strategy", "profileName", "encodedEndpointHeaderConfig", "sessionIdConfig"]);
  const strategy = optString(p, "strategy", path) ?? STRATEGIES[0];
  if (!STRATEGIES.includes(strategy)) fail(join(path, "strategy"), `must be ${STRATEGIES.join(" or ")}`, strategy);
  // llm-d-router's second instance for P/D (`profileName: prefill`, writing x-session-token-prefill) is
  // accepted; the filter leaves it out with a logged problem: only the decode pick is pinned.
  const profileName = optString(p, "profileName", path) ?? "";
  let tokenHeader = DEFAULT_TOKEN_HEADER;
  if (p.encodedEndpointHeaderConfig != null) {
    const ep = join(path, "encodedEndpointHeaderConfig");
    const e = asObject(p.encodedEndpointHeaderConfig, ep);
    onlyKeys(e, ep, ["header"]);
    const h = optString(e, "header", ep);
    if (h !== undefined && h.trim() !== "") tokenHeader = tokenName(h, join(ep, "header"), true);
  }
  const headers: string[] = [];
  let cookie = "";
  let ttl = DEFAULT_EVICTION_TTL_SECONDS;
  const sp = join(path, "sessionIdConfig");
  const s = p.sessionIdConfig == null ? {} : asObject(p.sessionIdConfig, sp);
  onlyKeys(s, sp, ["sources", "evictionTtlSeconds", "evictionSweepSeconds"]);
  const sources = optArray(s, "sources", sp) ?? [];
  sources.forEach((raw, i) => {
    const at = join(join(sp, "sources"), i);
    const src = asObject(raw, at);
    onlyKeys(src, at, ["header", "attribute", "producer", "cookie"]);
    const given = ["header", "attribute", "cookie"].filter((k) => src[k] != null && src[k] !== "");
    if (given.length !== 1) fail(at, "exactly one of header, attribute or cookie must be set", src);
    if (given[0] === "header") headers.push(tokenName(src.header, join(at, "header"), true));
    else if (given[0] === "cookie") {
      if (cookie) fail(join(at, "cookie"), `one cookie source at most (${cookie} is one)`, src.cookie);
      cookie = tokenName(src.cookie, join(at, "cookie"), false);
    } else {
      const attribute = optString(src, "attribute", at)!;
      optString(src, "producer", at);
      if (attribute !== AGENT_IDENTITY_TYPE)
        fail(join(at, "attribute"), `only ${AGENT_IDENTITY_TYPE} is supported`, attribute);
      headers.push(AGENT_MARK);
    }
  });
  if (sources.length === 0) headers.push(DEFAULT_SESSION_HEADER);
  // llm-d-router: a zero (unset) TTL or sweep takes the default, a negative one is refused.
  const t = optNumber(s, "evictionTtlSeconds", sp, { min: 0, max: MAX_TTL_SECONDS });
  if (t) ttl = t;
  optNumber(s, "evictionSweepSeconds", sp, { min: 0 }); // the filter checks ages on lookup: no sweep
  return {
    tokenHeader,
    sessionHeaders: headers.join(","),
    cookieName: cookie,
    evictionTtlSeconds: ttl,
    ...(profileName !== "" ? { profileName } : {}),
  };
}

/** agent-identity's header list (additionalSessionHeaders first, then the built-ins), lowercased. */
function agentHeaders(plugin: PluginDecl | undefined): string[] {
  if (!plugin || plugin.parameters == null) return [...AGENT_SESSION_HEADERS];
  const path = join(plugin.path, "parameters");
  const params = asObject(plugin.parameters, path);
  onlyKeys(params, path, ["additionalSessionHeaders"]);
  const extra = (optArray(params, "additionalSessionHeaders", path) ?? []).map((h, i) =>
    tokenName(h, join(join(path, "additionalSessionHeaders"), i), true),
  );
  return [...extra, ...AGENT_SESSION_HEADERS];
}

/**
 * The profile with session affinity's agent headers filled in: `attribute: agent-identity` sources become the
 * agent-identity plugin's headers (its built-ins when the config declares none), and a declared agent-identity
 * plugin becomes an entry the filter reads for flow control's fairness id.
 */
export function withAgentIdentity(
  profile: SchedulingProfile,
  plugins: ReadonlyMap<string, PluginDecl>,
): SchedulingProfile {
  const declared = [...plugins.values()].filter((p) => p.type === AGENT_IDENTITY_TYPE);
  if (declared.length > 1)
    fail(join(declared[1].path, "type"), `one ${AGENT_IDENTITY_TYPE} plugin at most (${declared[0].path} is one)`);
  const headers = agentHeaders(declared[0]);
  const expand = (list: ProfilePlugin[]): ProfilePlugin[] =>
    list.map((p) => {
      const h = p.parameters.sessionHeaders;
      if (p.type !== SESSION_AFFINITY_TYPE || typeof h !== "string" || !h.split(",").includes(AGENT_MARK)) return p;
      const names = h.split(",").flatMap((n) => (n === AGENT_MARK ? headers : [n]));
      return { ...p, parameters: { ...p.parameters, sessionHeaders: [...new Set(names)].join(",") } };
    });
  const out: SchedulingProfile = { ...profile, plugins: expand(profile.plugins) };
  if (profile.disaggregation)
    out.disaggregation = { ...profile.disaggregation, prefill: expand(profile.disaggregation.prefill) };
  if (declared.length === 1)
    out.plugins.push({
      role: "filter",
      type: AGENT_IDENTITY_TYPE,
      weight: 0,
      parameters: { headers: headers.join(",") },
    });
  return out;
}
