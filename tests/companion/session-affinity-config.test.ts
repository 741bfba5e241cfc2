// session-affinity-scorer and agent-identity in the EndpointPickerConfig: llm-d-router's parameters and
// defaults resolved into the profile entries the filter reads; errors name the field; the snapshot carries them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPickerConfig } from "../../companion/picker-config";
import { decodeSnapshot, encodeSnapshot, type ProfilePlugin } from "../../companion/snapshot";
import { llmdPdConfig } from "../helpers/pd-config";

const HEAD = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n";

/** A config with queue-scorer, the session scorer (its `parameters` YAML) at `weight`, and `more` plugins. */
function config(params: string | null, weight = 5, more = ""): string {
  const p = params === null ? "" : `\n  parameters:\n${params.replace(/^/gm, "    ")}`;
  return (
    `${HEAD}plugins:\n- type: queue-scorer\n- type: session-affinity-scorer${p}\n${more}` +
    `schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue-scorer\n    weight: 2\n` +
    `  - pluginRef: session-affinity-scorer\n    weight: ${weight}\n`
  );
}

const entry = (plugins: ProfilePlugin[], type: string) => plugins.find((p) => p.type === type);

test("llm-d-router's defaults: x-session-token, x-session-id, 300 s; the weight is the reference's", () => {
  const { profile } = loadPickerConfig(config(null));
  const e = entry(profile.plugins, "session-affinity-scorer");
  assert.deepEqual(e, {
    role: "scorer",
    type: "session-affinity-scorer",
    weight: 5,
    parameters: {
      tokenHeader: "x-session-token",
      sessionHeaders: "x-session-id",
      cookieName: "",
      evictionTtlSeconds: 300,
    },
  });
  assert.equal(entry(profile.plugins, "agent-identity"), undefined, "agent-identity only when declared");
});

test("sources in order, a cookie, the agent headers; the token header lowercased", () => {
  const { profile } = loadPickerConfig(
    config(
      [
        "strategy: session_id",
        "encodedEndpointHeaderConfig:",
        "  header: ' X-My-Token '",
        "sessionIdConfig:",
        "  sources:",
        "  - header: X-Conversation",
        "  - attribute: agent-identity",
        "  - cookie: llm-d-session",
        "  evictionTtlSeconds: 60",
        "  evictionSweepSeconds: 5",
      ].join("\n"),
    ),
  );
  assert.deepEqual(entry(profile.plugins, "session-affinity-scorer")!.parameters, {
    tokenHeader: "x-my-token",
    sessionHeaders: "x-conversation,x-claude-code-session-id,x-session-affinity,session-id,session_id",
    cookieName: "llm-d-session",
    evictionTtlSeconds: 60,
  });
});

test("a declared agent-identity: its extra headers come first, for affinity and as its own entry", () => {
  const more = "- type: agent-identity\n  parameters:\n    additionalSessionHeaders: [X-Agent]\n";
  const { profile } = loadPickerConfig(config("sessionIdConfig:\n  sources:\n  - attribute: agent-identity", 1, more));
  const agents = "x-agent,x-claude-code-session-id,x-session-affinity,session-id,session_id";
  assert.equal(entry(profile.plugins, "session-affinity-scorer")!.parameters.sessionHeaders, agents);
  assert.deepEqual(entry(profile.plugins, "agent-identity"), {
    role: "filter",
    type: "agent-identity",
    weight: 0,
    parameters: { headers: agents },
  });
  // Without the scorer too: flow control's fairness reads it.
  const alone = loadPickerConfig(`${HEAD}plugins:\n- type: queue-scorer\n- type: agent-identity\n`);
  assert.equal(entry(alone.profile.plugins, "agent-identity")!.parameters.headers, agents.slice("x-agent,".length));
  // And the snapshot carries both entries to the filter.
  const decoded = decodeSnapshot(
    encodeSnapshot({
      version: 1n,
      generatedAtMs: 0,
      profile,
      endpoints: [],
      baseModels: [],
      objectives: [],
      modelRewrites: [],
      flowControl: null,
    }),
  );
  assert.deepEqual(entry(decoded.profile.plugins, "agent-identity"), entry(profile.plugins, "agent-identity"));
  assert.equal(entry(decoded.profile.plugins, "session-affinity-scorer")!.parameters.tokenHeader, "x-session-token");
});

test("errors name the field", () => {
  const cases: Array<[string, RegExp]> = [
    ["strategy: sticky", /plugins\[1\]\.parameters\.strategy: must be encoded_endpoint_header or session_id/],
    ["sessionIdConfig:\n  sources:\n  - {}", /sources\[0\]: exactly one of header, attribute or cookie must be set/],
    [
      "sessionIdConfig:\n  sources:\n  - header: a\n    cookie: b",
      /sources\[0\]: exactly one of header, attribute or cookie/,
    ],
    [
      "sessionIdConfig:\n  sources:\n  - attribute: tenant",
      /sources\[0\]\.attribute: only agent-identity is supported/,
    ],
    ["sessionIdConfig:\n  sources:\n  - header: 'bad header'", /sources\[0\]\.header: must be a header or cookie name/],
    ["sessionIdConfig:\n  sources:\n  - cookie: a\n  - cookie: b", /sources\[1\]\.cookie: one cookie source at most/],
    ["sessionIdConfig:\n  evictionTtlSeconds: -1", /evictionTtlSeconds: must be at least 0/],
    ["sessionIdConfig:\n  ttl: 5", /sessionIdConfig\.ttl: unknown field/],
  ];
  for (const [params, error] of cases) assert.throws(() => loadPickerConfig(config(params)), error, params);
  assert.throws(
    () => loadPickerConfig(config(null, 1, "- type: agent-identity\n- name: again\n  type: agent-identity\n")),
    /plugins\[3\]\.type: one agent-identity plugin at most/,
  );
  assert.throws(
    () => loadPickerConfig(config(null, 1, "- type: agent-identity\n  parameters:\n    headers: [x]\n")),
    /agent-identity\.parameters\.headers: unknown field|plugins\[2\]\.parameters\.headers: unknown field/,
  );
});

test("llm-d-router's P/D session config loads: one instance per stage, the prefill one (profileName) left to the filter to skip", () => {
  const extra =
    "- {name: session-affinity-decode, type: session-affinity-scorer, parameters: {encodedEndpointHeaderConfig: {header: x-session-token}}}\n" +
    "- {name: session-affinity-prefill, type: session-affinity-scorer, parameters: {profileName: prefill, encodedEndpointHeaderConfig: {header: x-session-token-prefill}}}\n";
  const text = llmdPdConfig(256, extra)
    .replace(
      "- name: prefill\n  plugins:\n",
      "- name: prefill\n  plugins:\n  - pluginRef: session-affinity-prefill\n    weight: 10\n",
    )
    .replace(
      "- name: decode\n  plugins:\n",
      "- name: decode\n  plugins:\n  - pluginRef: session-affinity-decode\n    weight: 10\n",
    );
  const { profile } = loadPickerConfig(text);
  const decode = entry(profile.plugins, "session-affinity-scorer")!;
  assert.equal(decode.parameters.tokenHeader, "x-session-token");
  assert.equal(decode.parameters.profileName, undefined);
  const prefill = entry(profile.disaggregation!.prefill, "session-affinity-scorer")!;
  assert.deepEqual(
    [prefill.parameters.tokenHeader, prefill.parameters.profileName],
    ["x-session-token-prefill", "prefill"],
  );
});
