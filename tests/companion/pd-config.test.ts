// Prefill/decode disaggregation in the companion: llm-d-router's disagg-profile-handler (and the deprecated
// pd-profile-handler), prefix-based-pd-decider and the role filters in the EndpointPickerConfig; pod roles
// from the llm-d.ai/role label; both in the snapshot (sections 7 and 8), and older snapshots still read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPickerConfig } from "../../companion/picker-config";
import { podRole } from "../../companion/kube-pool";
import { EndpointStore } from "../../companion/endpoint-state";
import { llmdPdConfig } from "../helpers/pd-config";
import {
  decodeSnapshot,
  encodeSnapshot,
  fnv1a,
  POD_ROLE_DECODE,
  POD_ROLE_LABELED,
  POD_ROLE_PREFILL,
  type Snapshot,
} from "../../companion/snapshot";

// llm-d-router's deploy/config/pd-epp-config.yaml, in shape.
const PD = llmdPdConfig(
  16,
  "- type: approx-prefix-cache-producer\n  parameters:\n    maxPrefixTokensToMatch: 16384\n    lruCapacityPerServer: 31250\n",
);

const types = (plugins: Array<{ role: string; type: string; weight: number }>) =>
  plugins.map((p) => `${p.role}:${p.type}${p.role === "scorer" ? `*${p.weight}` : ""}`);

test("llm-d-router's P/D config: the decode profile is the primary, the prefill profile and decider ride along", () => {
  const cfg = loadPickerConfig(PD);
  assert.deepEqual(types(cfg.profile.plugins), [
    "filter:decode-filter",
    "scorer:prefix-cache-scorer*2",
    "scorer:queue-scorer*1",
    "picker:max-score-picker",
    "saturation-detector:utilization-detector",
  ]);
  const pd = cfg.profile.disaggregation!;
  assert.equal(pd.decider, "prefix-based");
  assert.equal(pd.nonCachedTokens, 16);
  assert.equal(pd.promptTokens, 0);
  assert.equal(pd.bytesPerToken, 4);
  assert.deepEqual(types(pd.prefill), [
    "filter:prefill-filter",
    "scorer:prefix-cache-scorer*2",
    "scorer:queue-scorer*1",
    "picker:max-score-picker",
    "saturation-detector:utilization-detector",
  ]);
  // The prefix parameters are the producer's, in both profiles.
  assert.equal(pd.prefill[1].parameters.maxPrefixBlocksToMatch, 1024);
});

test("deprecated forms: flat parameters, pd-profile-handler with its default decider name, promptTokens", () => {
  const flat = PD.replace(
    "    deciders:\n      prefill: prefix-based-pd-decider",
    "    deciderPluginName: prefix-based-pd-decider",
  ).replace("    nonCachedTokens: 16", "    nonCachedTokens: 256\n    promptTokens: 1024");
  const a = loadPickerConfig(flat).profile.disaggregation!;
  assert.deepEqual([a.decider, a.nonCachedTokens, a.promptTokens], ["prefix-based", 256, 1024]);
  const legacy = PD.replace(
    "- type: disagg-profile-handler\n  parameters:\n    deciders:\n      prefill: prefix-based-pd-decider",
    "- type: pd-profile-handler\n  parameters:\n    primaryPort: 8000",
  );
  assert.equal(loadPickerConfig(legacy).profile.disaggregation!.nonCachedTokens, 16);
});

test("no decider: P/D off for every request; prefill-first or always-disagg-pd-decider: always; no prefill profile: no stage", () => {
  const none = PD.replace("    deciders:\n      prefill: prefix-based-pd-decider", "    stageOrder: Decode_First");
  assert.equal(loadPickerConfig(none).profile.disaggregation!.decider, "none");
  const first = PD.replace("    deciders:\n      prefill: prefix-based-pd-decider", "    stageOrder: prefill-first");
  assert.equal(loadPickerConfig(first).profile.disaggregation!.decider, "always");
  const always = PD.replace(
    "- type: prefix-based-pd-decider\n  parameters:\n    nonCachedTokens: 16",
    "- name: prefix-based-pd-decider\n  type: always-disagg-pd-decider",
  );
  assert.equal(loadPickerConfig(always).profile.disaggregation!.decider, "always");
  const decodeOnly = PD.replace(/- name: prefill\n(  .*\n)+?- name: decode/, "- name: decode");
  const cfg = loadPickerConfig(decodeOnly);
  assert.equal(cfg.profile.disaggregation, undefined);
  assert.equal(cfg.profile.plugins[0].type, "decode-filter");
});

test("a stage profile without a role filter gets its stage's filter, with a warning", () => {
  const bare = PD.replace("  - pluginRef: prefill-filter\n", "").replace("  - pluginRef: decode-filter\n", "");
  const cfg = loadPickerConfig(bare);
  assert.equal(cfg.profile.plugins[0].type, "decode-filter");
  assert.equal(cfg.profile.disaggregation!.prefill[0].type, "prefill-filter");
  assert.ok(cfg.warnings.some((w) => w.includes("no role filter; prefill-filter applies")));
});

test("profiles that are no stage, or an encode profile without an encode decider, load and are never run, as in llm-d-router", () => {
  for (const [name, warning] of [
    ["prefil", /schedulingProfiles\[0\]\.name \(prefil\): not a stage of disagg-profile-handler .*never run/],
    ["encode", /schedulingProfiles\[0\]\.name \(encode\): no encode decider \(deciders\.encode\)/],
  ] as const) {
    const cfg = loadPickerConfig(PD.replace("- name: prefill\n", `- name: ${name}\n`));
    assert.ok(
      cfg.warnings.some((w) => warning.test(w)),
      cfg.warnings.join("\n"),
    );
    // Without its prefill profile the handler runs decode alone: no P/D stage, the decode profile as before.
    assert.equal(cfg.profile.disaggregation, undefined);
    assert.equal(cfg.profile.plugins[0].type, "decode-filter");
  }
});

test("P/D config errors name the field", () => {
  const cases: Array<[string, RegExp]> = [
    [
      PD.replace("nonCachedTokens: 16", "nonCachedTokens: -1"),
      /plugins\[7\]\.parameters\.nonCachedTokens: must be at least 0/,
    ],
    [
      PD.replace("nonCachedTokens: 16", "nonCachedToken: 16"),
      /plugins\[7\]\.parameters\.nonCachedToken: unknown field/,
    ],
    [
      PD.replace("      prefill: prefix-based-pd-decider", "      prefill: nope"),
      /plugins\[6\]\.parameters\.deciders\.prefill: no plugin of that name/,
    ],
    [
      PD.replace("      prefill: prefix-based-pd-decider", "      prefill: queue-scorer"),
      /which is not a prefill decider/,
    ],
    [
      PD.replace("    deciders:", "    stageOrder: prefill-first\n    deciders:"),
      /plugins\[6\]\.parameters\.stageOrder: prefill-first takes no prefill decider/,
    ],
    [
      PD.replace("    deciders:", "    stageOrder: sideways\n    deciders:"),
      /plugins\[6\]\.parameters\.stageOrder: must be decode-first or prefill-first/,
    ],
    [
      PD.replace("    deciders:", "    decodeProfile: decode\n    deciders:"),
      /plugins\[6\]\.parameters\.decodeProfile: the deprecated flat parameters and deciders cannot be mixed/,
    ],
    [
      PD.replace("    deciders:", "    profiles:\n      decoder: decode\n    deciders:"),
      /plugins\[6\]\.parameters\.profiles\.decoder: unknown field/,
    ],
    [PD.replace("- name: decode\n", "- name: prefill\n"), /schedulingProfiles\[1\]\.name: profile name used twice/],
    [
      PD.replace(/schedulingProfiles:[\s\S]*$/, ""),
      /schedulingProfiles: disagg-profile-handler needs scheduling profiles/,
    ],
    [
      PD.replace(
        "- type: prefix-based-pd-decider",
        "- name: other\n  type: pd-profile-handler\n- type: prefix-based-pd-decider",
      ),
      /plugins\[7\]\.type: one profile handler at most/,
    ],
    [
      PD.replace("  - pluginRef: decode-filter\n", "  - pluginRef: decode-filter\n    weight: 2\n"),
      /schedulingProfiles\[1\]\.plugins\[0\]\.weight: a filter has no weight/,
    ],
    [
      PD.replace("- type: decode-filter", "- type: decode-filter\n  parameters:\n    x: 1"),
      /plugins\[4\]\.parameters\.x: unknown field/,
    ],
  ];
  for (const [text, want] of cases) assert.throws(() => loadPickerConfig(text), want, String(want));
});

test("pod roles from llm-d.ai/role (llm-d-router's values, both = prefill-decode, no label = 0)", () => {
  const role = (v?: string) => podRole(v === undefined ? { app: "x" } : { "llm-d.ai/role": v }).role;
  assert.equal(role(), 0);
  assert.equal(role("prefill"), POD_ROLE_LABELED | POD_ROLE_PREFILL);
  assert.equal(role("decode"), POD_ROLE_LABELED | POD_ROLE_DECODE);
  assert.equal(role("both"), role("prefill-decode"));
  assert.equal(role("prefill-decode"), POD_ROLE_LABELED | POD_ROLE_PREFILL | POD_ROLE_DECODE);
  assert.equal(
    role("encode-prefill-decode") & (POD_ROLE_PREFILL | POD_ROLE_DECODE),
    POD_ROLE_PREFILL | POD_ROLE_DECODE,
  );
  const odd = podRole({ "llm-d.ai/role": "prefiller" });
  assert.deepEqual(odd, { role: POD_ROLE_LABELED, unknown: "prefiller" });
});

const endpoint = (address: string, role?: number) => ({
  address,
  stale: false,
  error: false,
  queued: 1,
  running: 2,
  kvUsage: 0.5,
  lora: null,
  ...(role ? { role } : {}),
});

test("the snapshot carries roles (section 7) and the P/D stage (section 8); without them it encodes as before", () => {
  const profile = loadPickerConfig(PD).profile;
  const s: Snapshot = {
    version: 7n,
    generatedAtMs: 1000,
    profile,
    endpoints: [
      endpoint("10.0.0.1:8000", POD_ROLE_LABELED | POD_ROLE_PREFILL),
      endpoint("10.0.0.2:8000"),
      endpoint("10.0.0.3:8000", POD_ROLE_LABELED | POD_ROLE_DECODE),
    ],
    baseModels: [],
  };
  const back = decodeSnapshot(encodeSnapshot(s));
  assert.deepEqual(back, s);
  // Without roles and P/D: no sections 7 and 8, byte for byte what the previous writer made.
  const plain: Snapshot = {
    ...s,
    profile: { plugins: profile.plugins },
    endpoints: s.endpoints.map((e) => endpoint(e.address)),
  };
  const blob = encodeSnapshot(plain);
  const ids: number[] = [];
  for (let at = 32; at < blob.length;) {
    ids.push(blob.readUInt16LE(at));
    at += 6 + blob.readUInt32LE(at + 2);
  }
  assert.deepEqual(ids, [1, 2]);
  assert.deepEqual(decodeSnapshot(blob), plain);
});

test("a role section whose count disagrees with the endpoints is refused", () => {
  const s: Snapshot = {
    version: 1n,
    generatedAtMs: 1,
    profile: { plugins: [] },
    endpoints: [endpoint("10.0.0.1:8000", POD_ROLE_LABELED | POD_ROLE_DECODE)],
    baseModels: [],
  };
  const blob = Buffer.from(encodeSnapshot(s));
  // Section 7 is last: its u32 count sits 4 + 1 bytes before the end.
  blob.writeUInt32LE(2, blob.length - 5);
  blob.writeUInt32LE(fnv1a(blob, 32, blob.length), 28);
  assert.throws(() => decodeSnapshot(blob), /roles for 1 endpoints|truncated/);
});

test("a pod's role label reaches its snapshot record, and a relabel changes it", () => {
  const store = new EndpointStore(loadPickerConfig(null).engines, 60_000);
  const target = (address: string, labels: Record<string, string>) => ({
    address,
    ip: address.split(":")[0],
    port: 8000,
    labels,
  });
  store.setTargets([target("10.0.0.1:8000", { "llm-d.ai/role": "prefill" }), target("10.0.0.2:8000", {})]);
  assert.deepEqual(
    store.snapshotEndpoints(0).map((e) => e.role),
    [POD_ROLE_LABELED | POD_ROLE_PREFILL, undefined],
  );
  store.setTargets([target("10.0.0.1:8000", { "llm-d.ai/role": "decode" }), target("10.0.0.2:8000", {})]);
  assert.equal(store.snapshotEndpoints(0)[0].role, POD_ROLE_LABELED | POD_ROLE_DECODE);
});
