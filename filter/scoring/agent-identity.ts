// agent-identity (llm-d-router's request-header plugin): the session header a coding agent sends on every
// request (Claude Code's `x-claude-code-session-id`, OpenCode's `x-session-affinity`, Codex's `session-id` and
// `session_id`) is the flow-control fairness id when the request names none, so each agent session is its
// own flow. The companion resolves the header list (additionalSessionHeaders first, then llm-d's built-ins);
// filter/picker.ts reads them. Session affinity on these headers is the session-affinity-scorer's
// (sessionIdConfig's `attribute: agent-identity` source).
import { ProfilePlugin, Profile, Params } from "./plugin";
import { headerList } from "./session-affinity-scorer";

export class AgentIdentity extends ProfilePlugin {
  headers: ArrayBuffer[] = [];

  configure(params: Params): string {
    const list = params.text("headers");
    if (list == null) return "headers missing";
    this.headers = headerList(list);
    if (this.headers.length == 0) return "no header to read";
    return "";
  }

  join(profile: Profile): void {
    profile.agentHeaders = this.headers;
  }
}
