// The `featureGates` and `flowControl` sections of an EndpointPickerConfig (llm-d-router's field names, types
// and defaults) resolved into the snapshot's flow control: defaults, every field, Kubernetes quantities, Go
// durations, policy plugins, errors naming the field, the gate off, and llm-d-router's own example.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPickerConfig } from "../../companion/picker-config";
import { parseQuantity } from "../../companion/config-fields";
import { DEFAULT_FLOW_CONTROL, parseFeatureGates } from "../../companion/flow-control-config";
import type { FlowBand, SnapshotFlowControl } from "../../companion/snapshot";
import { flatOf } from "../helpers/profile";

const HEAD = "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n";
const ON = `${HEAD}featureGates: ["flowControl"]\n`;

const fc = (text: string): SnapshotFlowControl | null => loadPickerConfig(text).flowControl;
const band = (priority: number, over: Partial<FlowBand> = {}): FlowBand => ({
  priority,
  maxRequests: 5000,
  maxBytes: 1e9,
  fairness: "global-strict",
  ordering: "fcfs",
  ...over,
});

test("the gate: off by default; name, name=true and name=false as llm-d-router reads them", () => {
  assert.equal(fc(HEAD), null, "no gate, no flow control");
  assert.equal(fc(`${HEAD}featureGates: [dataLayer]\n`), null);
  assert.deepEqual(fc(ON), DEFAULT_FLOW_CONTROL, "the gate alone: llm-d-router's defaults");
  assert.deepEqual(fc(`${HEAD}featureGates: ["flowControl=true"]\n`), DEFAULT_FLOW_CONTROL);
  assert.equal(fc(`${HEAD}featureGates: ["flowControl=false"]\n`), null);
  assert.equal(fc(`${HEAD}featureGates: [flowControl, "flowControl=false"]\n`), null, "the later entry wins");
  assert.deepEqual(
    [...parseFeatureGates(["a", "b=true", "c=false"])],
    [
      ["a", true],
      ["b", true],
      ["c", false],
    ],
  );
  const other = loadPickerConfig(`${HEAD}featureGates: [dataLayer, "prepareDataPlugins=false"]\n`);
  assert.ok(other.notes.includes("feature gate dataLayer is accepted and ignored"), other.notes.join("\n"));
  assert.ok(other.notes.includes("feature gate prepareDataPlugins=false is accepted and ignored"));
  for (const [text, message] of [
    [`${HEAD}featureGates: flowControl\n`, 'featureGates: must be a list, got "flowControl"'],
    [`${HEAD}featureGates: [3]\n`, "featureGates[0]: must be a string, got 3"],
    [
      `${HEAD}featureGates: ["flowControl=yes"]\n`,
      'featureGates[0]: must be "name", "name=true" or "name=false", got "flowControl=yes"',
    ],
    [`${HEAD}featureGates: ["=true"]\n`, 'featureGates[0]: must be "name", "name=true" or "name=false", got "=true"'],
  ])
    assert.throws(() => loadPickerConfig(text), { message }, text);
});

test("defaults: 60 s TTLs, no global limits, usage limit 1.0, bands of 5000 requests and 1e9 bytes", () => {
  assert.deepEqual(DEFAULT_FLOW_CONTROL, {
    defaultRequestTtlMs: 60_000,
    noEndpointRequestTtlMs: 60_000,
    maxRequests: 0,
    maxBytes: 0,
    usageLimit: 1,
    defaultBand: band(0),
    defaultNegativeBand: band(0),
    bands: [],
  });
  assert.deepEqual(fc(`${ON}flowControl: {}\n`), DEFAULT_FLOW_CONTROL);
  // A band's limits of 0 or omitted take the system defaults (band limits are always bounded upstream).
  assert.deepEqual(
    fc(`${ON}flowControl:\n  priorityBands:\n  - {priority: 5, maxRequests: 0, maxBytes: "0"}\n`)!.bands,
    [band(5)],
  );
});

test("every field resolves: quantities, durations, templates, bands sorted highest first, policies", () => {
  const cfg = fc(`${ON}plugins:
- type: round-robin-fairness-policy
- name: deadline
  type: edf-ordering-policy
- type: slo-deadline-ordering-policy
- name: limit
  type: static-usage-limit-policy
  parameters: {threshold: 0.9}
flowControl:
  maxBytes: 10Gi
  maxRequests: 2k
  defaultRequestTTL: 30s
  noEndpointRequestTTL: 5m
  defaultPriorityBand: {priority: 77, maxRequests: "100", maxBytes: 500M, fairnessPolicyRef: round-robin-fairness-policy}
  defaultNegativePriorityBand: {maxRequests: 50, orderingPolicyRef: deadline}
  priorityBands:
  - priority: -10
    maxBytes: 1Mi
  - priority: 100
    maxRequests: "1.5k"
    fairnessPolicyRef: round-robin-fairness-policy
    orderingPolicyRef: slo-deadline-ordering-policy
  - priority: 0
    orderingPolicyRef: edf-ordering-policy
  usageLimitPolicyPluginRef: limit
  saturationDetector: {pluginRef: utilization-detector}
  enableEviction: false
`);
  assert.deepEqual(cfg, {
    defaultRequestTtlMs: 30_000,
    noEndpointRequestTtlMs: 300_000,
    maxRequests: 2000,
    maxBytes: 10 * 2 ** 30,
    usageLimit: 0.9,
    defaultBand: band(0, { maxRequests: 100, maxBytes: 500e6, fairness: "round-robin" }),
    defaultNegativeBand: band(0, { maxRequests: 50, ordering: "edf" }),
    bands: [
      band(100, { maxRequests: 1500, fairness: "round-robin", ordering: "slo-deadline" }),
      band(0, { ordering: "edf" }), // a plugin referenced by its type (declared under the name "deadline")
      band(-10, { maxBytes: 2 ** 20 }),
    ],
  });
});

test("TTLs: noEndpointRequestTTL follows defaultRequestTTL when omitted; 0s disables; fractions round up", () => {
  const ttls = (section: string) => {
    const r = fc(`${ON}flowControl: ${section}\n`)!;
    return [r.defaultRequestTtlMs, r.noEndpointRequestTtlMs];
  };
  assert.deepEqual(ttls("{defaultRequestTTL: 90s}"), [90_000, 90_000]);
  assert.deepEqual(ttls("{noEndpointRequestTTL: 300s}"), [60_000, 300_000]);
  assert.deepEqual(ttls('{defaultRequestTTL: "0s"}'), [0, 0], "explicit 0s: no expiry; the other follows");
  assert.deepEqual(ttls('{defaultRequestTTL: 1m30s, noEndpointRequestTTL: "0"}'), [90_000, 0]);
  assert.deepEqual(ttls("{defaultRequestTTL: 1500us}"), [2, 2], "never rounded down to 0 (= no expiry)");
});

test("Kubernetes quantities as Quantity.Value() reads them", () => {
  const cases: Array<[number | string, number | null]> = [
    ["1Gi", 2 ** 30],
    ["500M", 500e6],
    ["1k", 1000],
    ["1.1k", 1100],
    ["1.5", 2],
    ["500m", 1],
    ["0.1", 1],
    ["2e3", 2000],
    ["1E2", 100],
    ["+7", 7],
    ["0", 0],
    ["007", 7],
    [".5Ki", 512],
    [100, 100],
    [2.5, 3],
    ["-1", -1],
    ["-500m", -1],
    ["1 Gi", null],
    ["1GB", null],
    ["Gi", null],
    ["", null],
    ["1e100", null],
    ["10Ei", null], // beyond an int64
  ];
  for (const [text, value] of cases) assert.equal(parseQuantity(text), value, String(text));
});

test("errors name the field path and the value", () => {
  const cases: Array<[string, string]> = [
    ["flowControl: {maxBytes: -1}", "flowControl.maxBytes: must be non-negative, got -1"],
    ['flowControl: {maxRequests: "-1k"}', 'flowControl.maxRequests: must be non-negative, got "-1k"'],
    ["flowControl: {maxRequests: 5G}", 'flowControl.maxRequests: must be at most 4294967295, got "5G"'],
    [
      "flowControl: {maxBytes: lots}",
      'flowControl.maxBytes: must be a Kubernetes quantity such as "1Gi", "500M", "1k" or a whole number, got "lots"',
    ],
    [
      "flowControl: {maxBytes: true}",
      'flowControl.maxBytes: must be a Kubernetes quantity such as "1Gi", "500M", "1k" or a whole number, got true',
    ],
    ["flowControl: {defaultRequestTTL: -5s}", 'flowControl.defaultRequestTTL: must not be negative, got "-5s"'],
    [
      "flowControl: {noEndpointRequestTTL: 300}",
      'flowControl.noEndpointRequestTTL: must be a duration such as "200ms" or "1.5s", got 300',
    ],
    [
      "flowControl: {defaultRequestTTL: 2000h}",
      'flowControl.defaultRequestTTL: must be at most 4294967295ms (about 49 days), got "2000h"',
    ],
    [
      "flowControl: {maxQueue: 3}",
      "flowControl.maxQueue: unknown field (known fields: maxBytes, maxRequests, defaultRequestTTL, noEndpointRequestTTL, defaultPriorityBand, defaultNegativePriorityBand, priorityBands, usageLimitPolicyPluginRef, saturationDetector, enableEviction), got 3",
    ],
    ["flowControl: [1]", "flowControl: must be a mapping, got [1]"],
    [
      "flowControl: {priorityBands: [{priority: 1, maxRequest: 3}]}",
      "flowControl.priorityBands[0].maxRequest: unknown field (known fields: priority, maxBytes, maxRequests, fairnessPolicyRef, orderingPolicyRef), got 3",
    ],
    [
      "flowControl: {priorityBands: [{priority: 1, maxBytes: -3}]}",
      "flowControl.priorityBands[0].maxBytes: must be non-negative, got -3",
    ],
    [
      "flowControl: {defaultPriorityBand: {maxRequests: -2}}",
      "flowControl.defaultPriorityBand.maxRequests: must be non-negative, got -2",
    ],
    [
      "flowControl: {priorityBands: [{maxRequests: 3}]}",
      "flowControl.priorityBands[0].priority: a priority band needs a priority, got nothing",
    ],
    [
      "flowControl: {priorityBands: [{priority: 1.5}]}",
      "flowControl.priorityBands[0].priority: must be a whole number, got 1.5",
    ],
    [
      "flowControl: {priorityBands: [{priority: 3000000000}]}",
      "flowControl.priorityBands[0].priority: must be at most 2147483647, got 3000000000",
    ],
    [
      "flowControl: {priorityBands: [{priority: 10}, {priority: 5}, {priority: 10}]}",
      "flowControl.priorityBands[2].priority: duplicate priority level 10 (flowControl.priorityBands[0] has it too), got 10",
    ],
    ["flowControl: {priorityBands: {priority: 1}}", 'flowControl.priorityBands: must be a list, got {"priority":1}'],
    [
      "flowControl: {saturationDetector: {pluginRef: utilization-detector, thresholds: 1}}",
      "flowControl.saturationDetector.thresholds: unknown field (known fields: pluginRef), got 1",
    ],
    [
      "flowControl: {enableEviction: true}",
      "flowControl.enableEviction: not supported: in-flight eviction (the filter never ends a request it has already sent to a model server); leave it out or set it to false, got true",
    ],
    ['flowControl: {enableEviction: "no"}', 'flowControl.enableEviction: must be true or false, got "no"'],
  ];
  for (const [section, message] of cases) assert.throws(() => fc(`${ON}${section}\n`), { message }, section);
});

test("policy references: declared plugins by name or type, the defaults built in, anything else an error", () => {
  const refs = (plugins: string, bandFields: string) =>
    fc(`${ON}plugins:\n${plugins}flowControl:\n  priorityBands:\n  - {priority: 1, ${bandFields}}\n`)!.bands[0];
  assert.equal(refs("", "fairnessPolicyRef: global-strict-fairness-policy").fairness, "global-strict");
  assert.equal(refs("", "orderingPolicyRef: fcfs-ordering-policy").ordering, "fcfs");
  assert.equal(
    refs("- {name: rr, type: round-robin-fairness-policy}\n", "fairnessPolicyRef: rr").fairness,
    "round-robin",
  );
  assert.equal(
    refs("- {type: edf-ordering-policy, parameters: {}}\n", "orderingPolicyRef: edf-ordering-policy").ordering,
    "edf",
  );
  const cases: Array<[string, string, string]> = [
    [
      "",
      "fairnessPolicyRef: round-robin-fairness-policy",
      'flowControl.priorityBands[0].fairnessPolicyRef: no plugin of that name in plugins; declare it there (- type: round-robin-fairness-policy) to use it, got "round-robin-fairness-policy"',
    ],
    [
      "- type: queue-scorer\n",
      "orderingPolicyRef: queue-scorer",
      'flowControl.priorityBands[0].orderingPolicyRef: plugin "queue-scorer" has type queue-scorer, which is not a ordering policy (fcfs-ordering-policy, edf-ordering-policy, slo-deadline-ordering-policy), got "queue-scorer"',
    ],
    [
      "- {name: rr, type: round-robin-fairness-policy}\n",
      "orderingPolicyRef: rr",
      'flowControl.priorityBands[0].orderingPolicyRef: plugin "rr" has type round-robin-fairness-policy, which is not a ordering policy (fcfs-ordering-policy, edf-ordering-policy, slo-deadline-ordering-policy), got "rr"',
    ],
    [
      "",
      "fairnessPolicyRef: fair",
      'flowControl.priorityBands[0].fairnessPolicyRef: no plugin of that name in plugins (defined: none; fairness policy types: global-strict-fairness-policy, round-robin-fairness-policy, program-aware-fairness), got "fair"',
    ],
    [
      "- {type: fcfs-ordering-policy, parameters: {capacity: 3}}\n",
      "orderingPolicyRef: fcfs-ordering-policy",
      "plugins[0].parameters.capacity: unknown field (this takes no parameters), got 3",
    ],
  ];
  for (const [plugins, fields, message] of cases)
    assert.throws(() => refs(plugins, fields), { message }, `${plugins} ${fields}`);
});

test("usage limit: static-usage-limit-policy's threshold (1.0 by default), or priority-holdback-policy", () => {
  const limit = (text: string) => fc(`${ON}${text}`)!.usageLimit;
  assert.equal(limit(""), 1);
  assert.equal(limit("plugins:\n- type: static-usage-limit-policy\n"), 1);
  assert.equal(
    limit("plugins:\n- type: static-usage-limit-policy\n  parameters: {threshold: 0.8}\n"),
    0.8,
    "the default name",
  );
  assert.equal(
    limit(
      "plugins:\n- {name: strict, type: static-usage-limit-policy, parameters: {threshold: 0.5}}\nflowControl: {usageLimitPolicyPluginRef: strict}\n",
    ),
    0.5,
  );
  assert.equal(limit("flowControl: {usageLimitPolicyPluginRef: static-usage-limit-policy}\n"), 1, "built in");
  const cases: Array<[string, string]> = [
    [
      "flowControl: {usageLimitPolicyPluginRef: priority-holdback-policy}\n",
      'flowControl.usageLimitPolicyPluginRef: no plugin of that name in plugins; declare it there (- type: priority-holdback-policy) to use it, got "priority-holdback-policy"',
    ],
    [
      "plugins:\n- type: priority-holdback-policy\n",
      "plugins[0].parameters.minCeiling: is required (in [0, 1)), got nothing",
    ],
    [
      "plugins:\n- type: priority-holdback-policy\n  parameters: {minCeiling: 0.9, maxCeiling: 0.8}\n",
      "plugins[0].parameters.minCeiling: must be below maxCeiling (0.8), got 0.9",
    ],
    [
      "plugins:\n- type: priority-holdback-policy\n  parameters: {minCeiling: 0.5, shape: sigmoid}\n",
      'plugins[0].parameters.shape: must be "linear" (the only shape), got "sigmoid"',
    ],
    [
      "plugins:\n- type: soft-reflective-ceiling-policy\n  parameters: {threshold: 1}\n",
      "plugins[0].parameters.threshold: unknown field (this takes no parameters), got 1",
    ],
    [
      "flowControl: {usageLimitPolicyPluginRef: nope}\n",
      'flowControl.usageLimitPolicyPluginRef: no plugin of that name in plugins (defined: none; usage-limit policy types: static-usage-limit-policy, priority-holdback-policy, soft-reflective-ceiling-policy), got "nope"',
    ],
    [
      "plugins:\n- type: fcfs-ordering-policy\nflowControl: {usageLimitPolicyPluginRef: fcfs-ordering-policy}\n",
      'flowControl.usageLimitPolicyPluginRef: plugin "fcfs-ordering-policy" has type fcfs-ordering-policy, which is not a usage-limit policy (static-usage-limit-policy, priority-holdback-policy, soft-reflective-ceiling-policy), got "fcfs-ordering-policy"',
    ],
    [
      "plugins:\n- type: static-usage-limit-policy\n  parameters: {threshold: -0.1}\n",
      "plugins[0].parameters.threshold: must be greater than 0, got -0.1",
    ],
    [
      "plugins:\n- type: static-usage-limit-policy\n  parameters: {ceiling: 1}\n",
      "plugins[0].parameters.ceiling: unknown field (known fields: threshold), got 1",
    ],
  ];
  for (const [text, message] of cases) assert.throws(() => fc(`${ON}${text}`), { message }, text);
  // llm-d-router's README example: rank by default, maxCeiling 1.0 by default.
  const hb = fc(
    `${ON}plugins:\n- type: priority-holdback-policy\n  name: my-holdback-policy\n  parameters: {shape: linear, domain: rank, minCeiling: 0.4, maxCeiling: 0.9}\nflowControl: {usageLimitPolicyPluginRef: my-holdback-policy}\n`,
  )!;
  assert.deepEqual(hb.holdback, { domain: "rank", minCeiling: 0.4, maxCeiling: 0.9 });
  // llm-d-router's soft-reflective-ceiling-policy (deploy/config/soft-reflective-ceiling-epp-config.yaml's form).
  const soft = fc(
    `${ON}plugins:\n- type: soft-reflective-ceiling-policy\nflowControl: {usageLimitPolicyPluginRef: soft-reflective-ceiling-policy}\n`,
  )!;
  assert.equal(soft.softReflective, true);
  assert.equal(soft.holdback, undefined);
  assert.deepEqual(
    fc(
      `${ON}plugins:\n- {type: priority-holdback-policy, parameters: {domain: value, minCeiling: 0}}\nflowControl: {usageLimitPolicyPluginRef: priority-holdback-policy}\n`,
    )!.holdback,
    { domain: "value", minCeiling: 0, maxCeiling: 1 },
  );
});

test("saturation detector: flowControl.saturationDetector.pluginRef or GIE 1.5's top-level placement", () => {
  const queue = (text: string) => flatOf(loadPickerConfig(text).profile).saturationQueue;
  const plugins = "plugins:\n- {name: tight, type: utilization-detector, parameters: {queueDepthThreshold: 2}}\n";
  assert.equal(queue(`${ON}${plugins}flowControl:\n  saturationDetector: {pluginRef: tight}\n`), 2);
  assert.equal(queue(`${ON}${plugins}saturationDetector: {pluginRef: tight}\n`), 2, "GIE 1.5's placement");
  assert.equal(queue(`${ON}flowControl:\n  saturationDetector: {pluginRef: utilization-detector}\n`), 5, "built in");
  assert.throws(() => loadPickerConfig(`${ON}flowControl:\n  saturationDetector: {pluginRef: concurrency}\n`), {
    message: 'flowControl.saturationDetector.pluginRef: no plugin of that name in plugins, got "concurrency"',
  });
});

test("the gate off: the section is still checked, then ignored with a warning", () => {
  const cfg = loadPickerConfig(
    `${HEAD}plugins:\n- type: round-robin-fairness-policy\nflowControl:\n  maxRequests: 10\n  saturationDetector: {pluginRef: utilization-detector}\n`,
  );
  assert.equal(cfg.flowControl, null);
  assert.deepEqual(cfg.warnings, [
    'flowControl: ignored: the flowControl feature gate is off (featureGates: ["flowControl"] turns it on); its saturationDetector.pluginRef still names the saturation detector',
  ]);
  assert.ok(cfg.notes.includes(cfg.warnings[0]), "warnings are logged with the notes");
  assert.ok(
    cfg.notes.includes(
      "plugin round-robin-fairness-policy (round-robin-fairness-policy) is accepted and ignored: the flowControl feature gate is off",
    ),
  );
  assert.deepEqual(
    loadPickerConfig(`${HEAD}flowControl:\n  saturationDetector: {pluginRef: utilization-detector}\n`).warnings,
    [],
    "a section holding only the detector loses nothing",
  );
  assert.throws(() => loadPickerConfig(`${HEAD}flowControl: {maxRequests: -1}\n`), {
    message: "flowControl.maxRequests: must be non-negative, got -1",
  });
  // With the gate on, a note says what applies.
  assert.ok(
    loadPickerConfig(`${ON}flowControl: {priorityBands: [{priority: 9}]}\n`).notes.some((n) =>
      n.startsWith("flow control on: defaultRequestTTL 60000ms, noEndpointRequestTTL 60000ms, maxRequests none"),
    ),
  );
});

test("llm-d-router's example (README of pkg/epp/flowcontrol) loads as upstream reads it", () => {
  const cfg = loadPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates: ["flowControl"]
plugins:
- type: utilization-detector
  parameters: {queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, metricsStalenessThreshold: 200ms, headroom: 0.0}
- type: round-robin-fairness-policy
flowControl:
  maxBytes: 10Gi            # optional global
  maxRequests: "0"          # optional global, 0 = unlimited
  defaultRequestTTL: 60s
  noEndpointRequestTTL: 300s
  defaultPriorityBand: {maxRequests: "5000", maxBytes: 1G}
  defaultNegativePriorityBand: {maxRequests: "50"}
  priorityBands:
  - priority: 100
    maxRequests: "1k"
    fairnessPolicyRef: round-robin-fairness-policy
    orderingPolicyRef: fcfs-ordering-policy
  saturationDetector: {pluginRef: utilization-detector}
`);
  assert.deepEqual(cfg.flowControl, {
    defaultRequestTtlMs: 60_000,
    noEndpointRequestTtlMs: 300_000,
    maxRequests: 0,
    maxBytes: 10 * 2 ** 30,
    usageLimit: 1,
    defaultBand: band(0),
    defaultNegativeBand: band(0, { maxRequests: 50 }),
    bands: [band(100, { maxRequests: 1000, fairness: "round-robin" })],
  });
  assert.deepEqual(cfg.warnings, []);
  const sat = flatOf(cfg.profile);
  assert.deepEqual([sat.saturationQueue, sat.saturationKv], [5, 0.8]);
  // GIE's group still loads, and so does the llm-d KEDA guide's llm-d.ai/v1.
  assert.doesNotThrow(() =>
    loadPickerConfig("apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"),
  );
  assert.doesNotThrow(() => loadPickerConfig("apiVersion: llm-d.ai/v1\nkind: EndpointPickerConfig\n"));
});

test("program-aware-fairness: llm-d-router's parameters and defaults; one parameter set for every band", () => {
  const pa = fc(
    `${ON}plugins:\n- type: program-aware-fairness\nflowControl:\n  defaultPriorityBand: {fairnessPolicyRef: program-aware-fairness}\n`,
  )!;
  assert.equal(pa.defaultBand.fairness, "program-aware");
  assert.deepEqual(pa.programAware, {
    weightService: 0.8,
    weightHeadWait: 0.2,
    halfLifeSeconds: 60,
    evictionTtlSeconds: 3600,
  });
  const tuned = fc(
    `${ON}plugins:\n- {name: las, type: program-aware-fairness, parameters: {strategy: las, lasWeightService: 0.5, lasWeightHeadWait: 0.5, lasHalfLifeSeconds: 0, evictionTtlSeconds: 60, evictionSweepSeconds: 10}}\nflowControl:\n  priorityBands: [{priority: 5, fairnessPolicyRef: las}]\n`,
  )!;
  assert.equal(tuned.bands[0].fairness, "program-aware");
  assert.equal(tuned.defaultBand.fairness, "global-strict");
  assert.deepEqual(tuned.programAware, {
    weightService: 0.5,
    weightHeadWait: 0.5,
    halfLifeSeconds: 0,
    evictionTtlSeconds: 60,
  });
  // Ours: heavyFlowHeadroom (flows above the mean service stop below the ceiling; off by default).
  const headroom = fc(
    `${ON}plugins:\n- {type: program-aware-fairness, parameters: {heavyFlowHeadroom: 0.1}}\nflowControl:\n  defaultPriorityBand: {fairnessPolicyRef: program-aware-fairness}\n`,
  )!;
  assert.equal(headroom.programAware!.heavyFlowHeadroom, 0.1);
  const cases: Array<[string, string]> = [
    [
      "plugins:\n- {type: program-aware-fairness, parameters: {strategy: wfq}}\n",
      'plugins[0].parameters.strategy: must be "las" (the only strategy), got "wfq"',
    ],
    [
      "plugins:\n- {type: program-aware-fairness, parameters: {heavyFlowHeadroom: 1}}\n",
      "plugins[0].parameters.heavyFlowHeadroom: must be in [0, 1), got 1",
    ],
    [
      "plugins:\n- {type: program-aware-fairness, parameters: {evictionSweepSeconds: 0}}\n",
      "plugins[0].parameters.evictionSweepSeconds: must be greater than 0, got 0",
    ],
    [
      "plugins:\n- {name: a, type: program-aware-fairness}\n- {name: b, type: program-aware-fairness, parameters: {lasHalfLifeSeconds: 5}}\nflowControl:\n  defaultPriorityBand: {fairnessPolicyRef: a}\n  priorityBands: [{priority: 1, fairnessPolicyRef: b}]\n",
      'flowControl.priorityBands[0].fairnessPolicyRef: names a program-aware-fairness plugin whose parameters differ from the one flowControl.defaultPriorityBand.fairnessPolicyRef names; the filter applies one set of program-aware-fairness parameters, got "flowControl.priorityBands[0].fairnessPolicyRef"',
    ],
  ];
  for (const [text, message] of cases) assert.throws(() => fc(`${ON}${text}`), { message }, text);
});
