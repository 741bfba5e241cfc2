import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPickerConfig } from "../../companion/picker-config";
import { DEFAULT_FLAT, flatOf } from "../helpers/profile";
import { readFileSync } from "node:fs";

const HEAD = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n";
const metricsPlugin = (params: string): string =>
  `${HEAD}plugins:\n- name: model-server-protocol-metrics\n  type: model-server-protocol-metrics\n  parameters:\n${params.replace(/^/gm, "    ")}\n`;

test("engine config errors name the field path and the value", () => {
  const cases: Array<[string, string]> = [
    [
      metricsPlugin("engineConfigs:\n- name: default\n  queuedRequestsSpec: q"),
      'plugins[0].parameters.engineConfigs[0].name: "default" is reserved (it names the mapping for pods without the engine label), got "default"',
    ],
    [
      metricsPlugin('defaultEngine: "tgi"'),
      'plugins[0].parameters.defaultEngine: unknown engine (known: vllm, sglang, triton-tensorrt-llm, trtllm-serve, triton), got "tgi"',
    ],
    [
      metricsPlugin('engineConfigs:\n- name: x\n  kvUsageSpec: "kv{a!=b}"'),
      'plugins[0].parameters.engineConfigs[0].kvUsageSpec: invalid metric spec "kv{a!=b}": only "=" matchers are supported, label "a" uses "!="',
    ],
    [
      metricsPlugin("engineConfigs:\n- name: has space"),
      'plugins[0].parameters.engineConfigs[0].name: must be a valid label value (letters, digits, - _ ., at most 63), got "has space"',
    ],
    [
      metricsPlugin("engineConfigs:\n- name: x\n- name: x"),
      'plugins[0].parameters.engineConfigs[1].name: engine defined twice, got "x"',
    ],
    [
      metricsPlugin("engineConfigs:\n- queuedRequestsSpec: q"),
      "plugins[0].parameters.engineConfigs[0].name: an engine needs a name, got nothing",
    ],
    [
      metricsPlugin("engineLabelkey: x"),
      'plugins[0].parameters.engineLabelkey: unknown field (known fields: engineLabelKey, defaultEngine, engineConfigs), got "x"',
    ],
    [metricsPlugin("engineConfigs: vllm"), 'plugins[0].parameters.engineConfigs: must be a list, got "vllm"'],
    [
      metricsPlugin("engineConfigs:\n- name: x\n  queuedRequestsSpec: 3"),
      "plugins[0].parameters.engineConfigs[0].queuedRequestsSpec: must be a string, got 3",
    ],
    [
      `${HEAD}plugins:\n- type: latency-scorer`,
      'plugins[0].type: unsupported plugin type (supported: model-server-protocol-metrics, core-metrics-extractor, metrics-data-source, queue-scorer, kv-cache-utilization-scorer, prefix-cache-scorer, lora-affinity-scorer, running-requests-size-scorer, load-aware-scorer, no-hit-lru-scorer, max-score-picker, random-picker, weighted-random-picker, session-affinity-scorer, decode-filter, prefill-filter, encode-filter, approx-prefix-cache-producer, precise-prefix-cache-producer, burst-prefix-cache-producer, utilization-detector, agent-identity, disagg-profile-handler, pd-profile-handler, prefix-based-pd-decider, always-disagg-pd-decider, always-disagg-multimodal-decider, data-parallel-profile-handler, single-profile-handler, openai-parser, inflight-load-producer, endpoint-notification-source, token-producer, tokenizer, probabilistic-admitter, dcgm-data-source, dcgm-extractor, endpoint-attribute-filter, endpoint-attribute-scorer, topology-extractor, topology-affinity-filter, topology-affinity-scorer, mm-embeddings-cache-producer, mm-embeddings-cache-scorer, fcfs-ordering-policy, edf-ordering-policy, slo-deadline-ordering-policy, global-strict-fairness-policy, round-robin-fairness-policy, program-aware-fairness, static-usage-limit-policy, priority-holdback-policy, soft-reflective-ceiling-policy), got "latency-scorer"',
    ],
    [
      `${HEAD}plugins:\n- type: queue-scorer\n- type: queue-scorer`,
      'plugins[1].name: plugin name used twice (plugins[0] has it too), got "queue-scorer"',
    ],
    [
      `${HEAD}plugin: []`,
      "plugin: unknown field (known fields: apiVersion, kind, featureGates, plugins, schedulingProfiles, saturationDetector, data, dataLayer, flowControl, requestHandler, parser), got []",
    ],
    [
      `apiVersion: v1\nkind: EndpointPickerConfig\n`,
      'apiVersion: must be an inference.networking or llm-d.ai API version such as inference.networking.x-k8s.io/v1alpha1 or llm-d.ai/v1alpha1, got "v1"',
    ],
    [`kind: Pod\n`, 'kind: must be "EndpointPickerConfig", got "Pod"'],
    ["- a\n- b\n", '(document): an EndpointPickerConfig must be a mapping, got ["a","b"]'],
    [
      "plugins: [\n",
      "not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1:",
    ],
    ["a: 1\na: 2\n", "not valid YAML: Map keys must be unique at line 2, column 1:"],
  ];
  for (const [text, message] of cases) assert.throws(() => loadPickerConfig(text), { message }, text);
});

test("Helm-style flag specs are checked with the flag's name", () => {
  assert.throws(() => loadPickerConfig(null, { kvCacheUsagePercentageMetric: "x{" }), {
    message: '--kv-cache-usage-percentage-metric: invalid metric spec "x{": missing "}" at end of spec',
  });
});

test("core-metrics-extractor is the same plugin; a second metrics plugin is refused", () => {
  const cfg = loadPickerConfig(
    `${HEAD}plugins:\n- type: core-metrics-extractor\n  parameters:\n    defaultEngine: trtllm-serve\n`,
  );
  assert.equal(cfg.engines.defaultEngine, "trtllm-serve");
  assert.throws(
    () => loadPickerConfig(`${HEAD}plugins:\n- type: core-metrics-extractor\n- type: model-server-protocol-metrics\n`),
    {
      message:
        'plugins[1].type: only one metrics plugin is supported (plugins[0] is one), got "model-server-protocol-metrics"',
    },
  );
});

test("engineConfigs extensions: label names for info gauges, metricsPath, metricsPort", () => {
  const cfg = loadPickerConfig(
    metricsPlugin(
      [
        "engineLabelKey: example.com/engine",
        "engineConfigs:",
        "- name: custom",
        "  queuedRequestsSpec: custom_waiting",
        "  cacheInfoSpec: custom_cache_info",
        "  cacheBlockSizeLabelName: page",
        "  cacheNumBlocksLabelName: pages",
        "  metricsPath: /stats/prometheus",
        "  metricsPort: 8002",
      ].join("\n"),
    ),
  );
  const m = cfg.engines.resolve({ "example.com/engine": "custom" }).mapping;
  assert.equal(m.name, "custom");
  assert.deepEqual(
    [m.cacheBlockSizeLabel, m.cacheNumBlocksLabel, m.metricsPath, m.metricsPort],
    ["page", "pages", "/stats/prometheus", 8002],
  );
  assert.equal(
    cfg.engines.resolve({ "llm-d.ai/engine-type": "custom" }).mapping.name,
    "vllm",
    "the configured label key replaces llm-d-router's default one",
  );
  assert.equal(
    cfg.engines.resolve({ "inference.networking.k8s.io/engine-type": "custom", "example.com/engine": "" }).mapping.name,
    "custom",
    "GIE's label key is read after the configured one, as llm-d-router reads it",
  );
  const unknown = cfg.engines.resolve({ "example.com/engine": "tgi" });
  assert.deepEqual([unknown.mapping.name, unknown.unknownLabel], ["vllm", "tgi"]);
});

test("profile: GIE's complete example (prefix-cache-scorer weight 50, blockSizeTokens 5)", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- type: prefix-cache-scorer
  parameters:
    blockSizeTokens: 5
    maxPrefixBlocksToMatch: 256
    lruCapacityPerServer: 31250
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
    weight: 50
`);
  assert.deepEqual(flatOf(cfg.profile), {
    ...DEFAULT_FLAT,
    queueWeight: 0,
    kvWeight: 0,
    prefixWeight: 50,
    prefixBlockChars: 20,
    prefixMaxBlocks: 256,
    prefixLruPerEndpoint: 31250,
  });
});

test("profile: every scorer and picker, named plugins, default weight 1, fallback from maxNumOfEndpoints", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- {name: q, type: queue-scorer}
- {name: kv, type: kv-cache-utilization-scorer}
- {name: lora, type: lora-affinity-scorer}
- {name: run, type: running-requests-size-scorer}
- {name: prefix, type: prefix-cache-scorer}
- {name: pick, type: weighted-random-picker, parameters: {maxNumOfEndpoints: 3}}
- {type: single-profile-handler}
- name: sat
  type: utilization-detector
  parameters: {queueDepthThreshold: 8, kvCacheUtilThreshold: 0.9, metricsStalenessThreshold: 150ms, headroom: 0.2}
saturationDetector:
  pluginRef: sat
schedulingProfiles:
- name: only
  plugins:
  - {pluginRef: q, weight: 1.5}
  - {pluginRef: kv}
  - {pluginRef: lora, weight: 4}
  - {pluginRef: run, weight: 0.5}
  - {pluginRef: pick}
`);
  assert.deepEqual(flatOf(cfg.profile), {
    ...DEFAULT_FLAT,
    queueWeight: 1.5,
    kvWeight: 1,
    prefixWeight: 0,
    loraWeight: 4,
    runningWeight: 0.5,
    picker: "weighted-random-picker",
    fallbackCount: 2,
    saturationQueue: 8,
    saturationKv: 0.9,
  });
  assert.match(cfg.notes.join("\n"), /single-profile-handler\) is accepted and ignored/);
});

test("profile: no schedulingProfiles -> every scorer defined, weight 1 (GIE); no scorers at all -> GIE's default", () => {
  const auto = loadPickerConfig(
    `${HEAD}plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\n- type: random-picker\n`,
  );
  assert.deepEqual(flatOf(auto.profile), {
    ...DEFAULT_FLAT,
    queueWeight: 1,
    kvWeight: 1,
    prefixWeight: 0,
    picker: "random-picker",
  });
  const none = loadPickerConfig(
    `${HEAD}plugins:\n- type: model-server-protocol-metrics\n- type: utilization-detector\n  parameters: {queueDepthThreshold: 3}\n`,
  );
  assert.deepEqual(flatOf(none.profile), { ...DEFAULT_FLAT, saturationQueue: 3 });
});

test("profile: legacy prefix sizes in characters, token limits, the approx-prefix-cache-producer", () => {
  const legacy = loadPickerConfig(
    `${HEAD}plugins:\n- type: prefix-cache-scorer\n  parameters: {blockSize: 128, lruCapacityPerServer: 1000}\n`,
  );
  assert.deepEqual([flatOf(legacy.profile).prefixBlockChars, flatOf(legacy.profile).prefixLruPerEndpoint], [128, 1000]);
  const v10 = loadPickerConfig(`${HEAD}plugins:\n- type: prefix-cache-scorer\n  parameters: {hashBlockSize: 32}\n`);
  assert.equal(flatOf(v10.profile).prefixBlockChars, 32);
  const producer = loadPickerConfig(
    `${HEAD}plugins:\n- type: approx-prefix-cache-producer\n  parameters: {blockSizeTokens: 32, maxPrefixTokensToMatch: 2048, autoTune: false}\n- type: prefix-cache-scorer\n`,
  );
  assert.deepEqual(
    [
      flatOf(producer.profile).prefixBlockChars,
      flatOf(producer.profile).prefixMaxBlocks,
      flatOf(producer.profile).prefixWeight,
    ],
    [128, 64, 1],
  );
});

test("profile errors name the field path and the value", () => {
  const cases: Array<[string, string]> = [
    [
      `${HEAD}schedulingProfiles:\n- name: a\n- name: b\n`,
      'schedulingProfiles: only one scheduling profile is supported (the filter applies one profile to every request), got ["a","b"]',
    ],
    [
      `${HEAD}plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: a\n  plugins:\n  - pluginRef: kv\n`,
      'schedulingProfiles[0].plugins[0].pluginRef: no plugin of that name in plugins (defined: queue-scorer), got "kv"',
    ],
    [
      `${HEAD}plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: a\n  plugins:\n  - {pluginRef: queue-scorer, weight: -1}\n`,
      "schedulingProfiles[0].plugins[0].weight: must be at least 0, got -1",
    ],
    [
      `${HEAD}plugins:\n- type: max-score-picker\n- type: random-picker\nschedulingProfiles:\n- name: a\n  plugins:\n  - pluginRef: max-score-picker\n  - pluginRef: random-picker\n`,
      'schedulingProfiles[0].plugins[1]: a profile takes one picker; max-score-picker is already its picker, got "random-picker"',
    ],
    [
      `${HEAD}plugins:\n- type: max-score-picker\n  parameters: {maxNumOfEndpoints: 0}\n`,
      "plugins[0].parameters.maxNumOfEndpoints: must be at least 1, got 0",
    ],
    [
      `${HEAD}plugins:\n- type: prefix-cache-scorer\n  parameters: {lruCapacityPerServer: 100000}\n`,
      "plugins[0].parameters.lruCapacityPerServer: must be at most 65535, got 100000",
    ],
    [
      `${HEAD}plugins:\n- type: queue-scorer\n  parameters: {threshold: 3}\n`,
      "plugins[0].parameters.threshold: unknown field (this takes no parameters), got 3",
    ],
    [
      `${HEAD}plugins:\n- type: utilization-detector\n  parameters: {kvCacheUtilThreshold: 1.5}\n`,
      "plugins[0].parameters.kvCacheUtilThreshold: must be at most 1, got 1.5",
    ],
    [
      `${HEAD}plugins:\n- type: queue-scorer\nsaturationDetector: {pluginRef: queue-scorer}\n`,
      'saturationDetector.pluginRef: plugin "queue-scorer" has type queue-scorer; only utilization-detector is supported, got "queue-scorer"',
    ],
    [
      `${HEAD}plugins:\n- type: model-server-protocol-metrics\nschedulingProfiles:\n- name: a\n  plugins:\n  - pluginRef: model-server-protocol-metrics\n`,
      'schedulingProfiles[0].plugins[0].pluginRef: plugin "model-server-protocol-metrics" has type model-server-protocol-metrics, which is neither a scorer nor a picker, got "model-server-protocol-metrics"',
    ],
  ];
  for (const [text, message] of cases) assert.throws(() => loadPickerConfig(text), { message }, text);
});

test("metrics-data-source: scheme, path and insecureSkipVerify", () => {
  const cfg = loadPickerConfig(
    `${HEAD}plugins:\n- type: metrics-data-source\n  parameters: {scheme: https, path: /m, insecureSkipVerify: false}\n`,
  );
  assert.deepEqual(cfg.scrape, { scheme: "https", path: "/m", insecureSkipVerify: false });
  assert.throws(() => loadPickerConfig(`${HEAD}plugins:\n- type: metrics-data-source\n  parameters: {scheme: ftp}\n`), {
    message: 'plugins[0].parameters.scheme: must be "http" or "https", got "ftp"',
  });
});

test("envoy/examples/lora-profile.yaml: GIE's default profile plus lora-affinity-scorer weight 1", () => {
  const cfg = loadPickerConfig(readFileSync("envoy/examples/lora-profile.yaml", "utf8"));
  assert.deepEqual(flatOf(cfg.profile), { ...DEFAULT_FLAT, loraWeight: 1 });
});
