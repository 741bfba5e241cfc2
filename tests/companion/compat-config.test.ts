// EndpointPickerConfig files of GIE 1.2-1.5 and llm-d-router load as upstream reads them. Where upstream has
// unit tests for a behaviour, their inputs and expected outcomes are mirrored here (named after the upstream
// test); the code under test is ours.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPickerConfig } from "../../companion/picker-config";
import { formatMetricSpec } from "../../companion/metric-spec";
import type { EngineFlags } from "../../companion/engine-config";
import { DEFAULT_FLAT, flatOf } from "../helpers/profile";

const HEAD = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n";

/** The saturation detector's parameters a config resolves to. */
const detector = (text: string) => {
  const cfg = loadPickerConfig(text);
  const sat = flatOf(cfg.profile);
  return { queue: sat.saturationQueue, kv: sat.saturationKv, warnings: cfg.warnings };
};

test("dataLayer (GIE 1.5, llm-d-router) is accepted like data (GIE 1.3-1.4); both at once is an error", () => {
  // GIE 1.5 pkg/epp/config/loader/testdata_test.go: successSchedulerConfigText, successDataLayerNoSourcesText.
  const gie15 = loadPickerConfig(`${HEAD}plugins:
- name: maxScorePicker
  type: max-score-picker
- name: profileHandler
  type: single-profile-handler
- name: queue
  type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue
    weight: 50
  - pluginRef: maxScorePicker
dataLayer:
  sources:
  - pluginRef: testSource
    extractors:
    - pluginRef: testExtractor
featureGates:
- dataLayer
- flowControl
`);
  assert.deepEqual(flatOf(gie15.profile), { ...DEFAULT_FLAT, queueWeight: 50, kvWeight: 0, prefixWeight: 0 });
  assert.match(gie15.notes.join("\n"), /section dataLayer is accepted and ignored/);
  assert.match(loadPickerConfig(`${HEAD}dataLayer: {}\n`).notes.join("\n"), /section dataLayer is accepted/);
  assert.match(loadPickerConfig(`${HEAD}data:\n  sources: []\n`).notes.join("\n"), /section data is accepted/);
  assert.throws(() => loadPickerConfig(`${HEAD}data: {}\ndataLayer: {}\n`), {
    message:
      'dataLayer: the data layer section is data (GIE 1.3-1.4) or dataLayer (GIE 1.5, llm-d-router), not both (no GIE version reads both), got ["data","dataLayer"]',
  });
  // llm-d-router's other sections and data layer fields.
  const llmd = loadPickerConfig(
    `${HEAD}dataLayer:\n  injectDefaults: false\n  discovery: {pluginRef: files}\nrequestHandler:\n  parser: {pluginRef: openai-parser}\n`,
  );
  assert.match(llmd.notes.join("\n"), /section requestHandler is accepted and ignored/);
});

test("saturationDetector's inline thresholds (GIE 1.2-1.4) map onto the utilization-detector entry", () => {
  // GIE 1.4 pkg/epp/config/loader/configloader_test.go, TestBuildSaturationConfig.
  assert.deepEqual(
    detector(
      `${HEAD}saturationDetector:\n  queueDepthThreshold: 20\n  kvCacheUtilThreshold: 0.9\n  metricsStalenessThreshold: 500ms\n`,
    ),
    { queue: 20, kv: 0.9, warnings: [] },
  );
  assert.deepEqual(detector(HEAD), { queue: 5, kv: 0.8, warnings: [] });
  const invalid = detector(
    `${HEAD}saturationDetector:\n  queueDepthThreshold: -5\n  kvCacheUtilThreshold: 1.5\n  metricsStalenessThreshold: -10s\n`,
  );
  assert.deepEqual([invalid.queue, invalid.kv], [5, 0.8], "out of range: GIE's defaults");
  assert.deepEqual(invalid.warnings, [
    "saturationDetector.queueDepthThreshold: -5 is not positive; GIE's default 5 applies instead, as in GIE",
    "saturationDetector.kvCacheUtilThreshold: 1.5 is outside (0, 1); GIE's default 0.8 applies instead, as in GIE",
    `saturationDetector.metricsStalenessThreshold: "-10s" is not positive; GIE would use its default 200ms (the companion's staleness is --staleness-threshold either way)`,
  ]);
  // GIE 1.4 testdata_test.go: the complete config's section.
  assert.deepEqual(
    detector(
      `${HEAD}saturationDetector:\n  queueDepthThreshold: 10\n  kvCacheUtilThreshold: 0.8\n  metricsStalenessThreshold: 100ms\n`,
    ),
    { queue: 10, kv: 0.8, warnings: [] },
  );
  // The loader keeps only 0 < kv < 1: 1 itself and 0 take the default too.
  assert.equal(detector(`${HEAD}saturationDetector: {kvCacheUtilThreshold: 1}\n`).kv, 0.8);
  assert.equal(detector(`${HEAD}saturationDetector: {kvCacheUtilThreshold: 0, queueDepthThreshold: 0}\n`).queue, 5);
  // The snapshot entry carries them as the filter reads them.
  const entry = loadPickerConfig(
    `${HEAD}saturationDetector: {queueDepthThreshold: 7, kvCacheUtilThreshold: 0.5}\n`,
  ).profile.plugins.find((p) => p.role === "saturation-detector");
  assert.deepEqual(entry, {
    role: "saturation-detector",
    type: "utilization-detector",
    weight: 0,
    parameters: { queueDepthThreshold: 7, kvCacheUtilThreshold: 0.5 },
  });
});

test("saturationDetector: wrong types stay errors; inline thresholds and a detector plugin are not combined", () => {
  const cases: Array<[string, string]> = [
    [
      `${HEAD}saturationDetector: {queueDepthThreshold: 2.5}\n`,
      "saturationDetector.queueDepthThreshold: must be a whole number, got 2.5",
    ],
    [
      `${HEAD}saturationDetector: {metricsStalenessThreshold: 100}\n`,
      'saturationDetector.metricsStalenessThreshold: must be a duration such as "200ms" or "1.5s", got 100',
    ],
    [
      `${HEAD}saturationDetector: {queueDepth: 3}\n`,
      "saturationDetector.queueDepth: unknown field (known fields: pluginRef, queueDepthThreshold, kvCacheUtilThreshold, metricsStalenessThreshold), got 3",
    ],
    [
      `${HEAD}plugins:\n- name: sat\n  type: utilization-detector\nsaturationDetector: {pluginRef: sat, queueDepthThreshold: 3}\n`,
      'saturationDetector: inline thresholds (GIE 1.2-1.4) and a detector plugin (saturationDetector.pluginRef, GIE 1.5) both configure the saturation detector; give one, got {"queueDepthThreshold":3}',
    ],
    [
      `${HEAD}plugins:\n- type: utilization-detector\n  parameters: {queueDepthThreshold: 4}\nsaturationDetector: {queueDepthThreshold: 3}\n`,
      'saturationDetector: inline thresholds (GIE 1.2-1.4) and a detector plugin (plugins[0], GIE 1.5) both configure the saturation detector; give one, got {"queueDepthThreshold":3}',
    ],
  ];
  for (const [text, message] of cases) assert.throws(() => loadPickerConfig(text), { message }, text);
});

test("utilization-detector parameters (GIE 1.5): invalid values are errors, as the plugin's factory refuses them", () => {
  // GIE 1.5 pkg/epp/framework/plugins/flowcontrol/saturationdetector/utilization/detector_test.go,
  // TestUtilizationDetectorFactory.
  const plugin = (params: string) => `${HEAD}plugins:\n- type: utilization-detector\n  parameters: ${params}\n`;
  const ok = ['{"queueDepthThreshold": 5, "kvCacheUtilThreshold": 0.8}', "{}", '{"headroom": 2.0}'];
  for (const p of ok) assert.doesNotThrow(() => loadPickerConfig(plugin(p)), p);
  const bad = [
    '{"queueDepthThreshold": "invalid_type"}',
    '{"queueDepthThreshold": 0}',
    '{"kvCacheUtilThreshold": 1.5}',
    '{"kvCacheUtilThreshold": 0.0}',
    '{"metricsStalenessThreshold": "0s"}',
    '{"headroom": -0.5}',
  ];
  for (const p of bad) assert.throws(() => loadPickerConfig(plugin(p)), { message: /^plugins\[0\]\.parameters\./ }, p);
});

test("llm-d-router's flowControl.saturationDetector.pluginRef names the detector and wins over the old field", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- name: strict
  type: utilization-detector
  parameters: {queueDepthThreshold: 2, kvCacheUtilThreshold: 0.6}
- name: loose
  type: utilization-detector
  parameters: {queueDepthThreshold: 9}
saturationDetector: {pluginRef: loose}
flowControl:
  saturationDetector: {pluginRef: strict}
`);
  assert.deepEqual([flatOf(cfg.profile).saturationQueue, flatOf(cfg.profile).saturationKv], [2, 0.6]);
  assert.throws(() => loadPickerConfig(`${HEAD}flowControl:\n  saturationDetector: {pluginRef: nope}\n`), {
    message: 'flowControl.saturationDetector.pluginRef: no plugin of that name in plugins, got "nope"',
  });
});

test("prefix-cache parameters of zero or less fall back to GIE's defaults, with a warning", () => {
  // GIE 1.4 pkg/epp/framework/plugins/scheduling/scorer/prefix/plugin_test.go, TestNew_InvalidConfigFallbacks:
  // [blockSizeTokens, maxPrefixBlocksToMatch, lruCapacityPerServer] -> [block tokens, max blocks, capacity].
  const cases: Array<[string, [number, number, number], number]> = [
    ["all zero", [0, 0, 0], 3],
    ["negative values", [-5, -10, -100], 3],
    ["mixed valid and invalid", [32, -1, 50000], 1],
    ["all valid", [64, 200, 30000], 0],
  ];
  const expected: Record<string, [number, number, number]> = {
    "all zero": [16, 256, 31250],
    "negative values": [16, 256, 31250],
    "mixed valid and invalid": [32, 256, 50000],
    "all valid": [64, 200, 30000],
  };
  for (const [name, [tokens, blocks, lru], warnings] of cases) {
    const cfg = loadPickerConfig(
      `${HEAD}plugins:\n- type: prefix-cache-scorer\n  parameters: {blockSizeTokens: ${tokens}, maxPrefixBlocksToMatch: ${blocks}, lruCapacityPerServer: ${lru}}\n`,
    );
    const f = flatOf(cfg.profile);
    assert.deepEqual([f.prefixBlockChars / 4, f.prefixMaxBlocks, f.prefixLruPerEndpoint], expected[name], name);
    assert.equal(cfg.warnings.length, warnings, name);
  }
  const zero = loadPickerConfig(
    `${HEAD}plugins:\n- type: prefix-cache-scorer\n  parameters: {blockSizeTokens: 0, maxPrefixBlocksToMatch: 0, lruCapacityPerServer: 0}\n`,
  );
  assert.deepEqual(zero.warnings, [
    "plugins[0].parameters.blockSizeTokens: 0 is not positive; GIE's default block of 16 tokens (64 characters) applies instead, as in GIE",
    "plugins[0].parameters.maxPrefixBlocksToMatch: 0 is not positive; GIE's default 256 applies instead, as in GIE",
    "plugins[0].parameters.lruCapacityPerServer: 0 is not positive; GIE's default 31250 applies instead, as in GIE",
  ]);
  for (const w of zero.warnings) assert.ok(zero.notes.includes(w), "warnings are logged with the notes");
});

test("prefix: blockSizeTokens 0 with autoTune (GIE 1.5's default), legacy blockSize 0, the producer", () => {
  const chars = (params: string, type = "prefix-cache-scorer") => {
    const scorer = type === "prefix-cache-scorer" ? "" : "- type: prefix-cache-scorer\n";
    return flatOf(loadPickerConfig(`${HEAD}plugins:\n- type: ${type}\n  parameters: ${params}\n${scorer}`).profile)
      .prefixBlockChars;
  };
  assert.equal(chars("{blockSizeTokens: 0, autoTune: true}", "approx-prefix-cache-producer"), 64);
  assert.equal(chars("{blockSizeTokens: 0, autoTune: false}", "approx-prefix-cache-producer"), 64);
  // GIE 1.2-1.3: "BlockSize is not positive, using default value" (64 characters).
  assert.equal(chars("{blockSize: 0}"), 64);
  assert.equal(chars("{hashBlockSize: -1}"), 64);
  // A blockSizeTokens of 0 counts as not given: a legacy blockSize beside it applies.
  assert.equal(chars("{blockSizeTokens: 0, blockSize: 128}"), 128);
  // Still errors: wrong types, too large for the filter, a negative token limit (GIE 1.5 refuses it too).
  assert.throws(() => chars("{blockSizeTokens: 1.5}"), { message: /blockSizeTokens: must be a whole number/ });
  assert.throws(() => chars("{maxPrefixBlocksToMatch: 70000}"), { message: /must be at most 65535/ });
  assert.throws(() => chars("{maxPrefixTokensToMatch: -1}"), { message: /must be at least 0/ });
});

test("metrics-data-source parameters win over the --model-server-metrics-* flags (GIE's order)", () => {
  // GIE 1.5 pkg/epp/framework/plugins/datalayer/source/metrics/datasource_config_test.go.
  const source = (params: string | null, flags: EngineFlags) =>
    loadPickerConfig(
      params === null ? HEAD : `${HEAD}plugins:\n- type: metrics-data-source\n  parameters: ${params}\n`,
      flags,
    ).scrape;
  // UsesBuiltInDefaults
  assert.deepEqual(source(null, {}), { scheme: "http", path: "/metrics", insecureSkipVerify: true });
  // CLIOverridesDefaults
  const cli: EngineFlags = { metricsScheme: "https", metricsPath: "/custom", metricsInsecureSkipVerify: false };
  assert.deepEqual(source(null, cli), { scheme: "https", path: "/custom", insecureSkipVerify: false });
  // ConfigOverridesCLI
  assert.deepEqual(source("{scheme: http, path: /config, insecureSkipVerify: true}", { ...cli, metricsPath: "/cli" }), {
    scheme: "http",
    path: "/config",
    insecureSkipVerify: true,
  });
  // PartialConfigOverride
  assert.deepEqual(source("{path: /config}", { metricsScheme: "https", metricsPath: "/cli" }), {
    scheme: "https",
    path: "/config",
    insecureSkipVerify: true,
  });
  // BoolCLIOnlyWhenChanged
  assert.equal(source(null, { metricsScheme: "https" }).insecureSkipVerify, true);
});

test("metrics-data-source: llm-d-router's port and interval are accepted; its TLS material is refused", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- type: metrics-data-source
  parameters: {port: 8002, interval: 1s}
- type: core-metrics-extractor
  parameters:
    engineConfigs:
    - name: own-port
      queuedRequestsSpec: q
      metricsPort: 9400
`);
  assert.equal(cfg.engines.unlabelled.metricsPort, 8002);
  assert.equal(cfg.engines.engines.get("sglang")!.metricsPort, 8002);
  assert.equal(cfg.engines.engines.get("own-port")!.metricsPort, 9400, "an engine's own metricsPort wins");
  assert.match(cfg.notes.join("\n"), /interval is accepted and ignored/);
  assert.throws(
    () => loadPickerConfig(`${HEAD}plugins:\n- type: metrics-data-source\n  parameters: {caCertPath: /etc/ca.pem}\n`),
    {
      message:
        'plugins[0].parameters.caCertPath: verifying model servers against a CA bundle is not supported by the companion\'s scraper (it would be ignored, which changes what is trusted); leave it out, or serve metrics over http, got "/etc/ca.pem"',
    },
  );
  assert.throws(() => loadPickerConfig(`${HEAD}plugins:\n- type: metrics-data-source\n  parameters: {port: 0}\n`), {
    message: "plugins[0].parameters.port: must be at least 1, got 0",
  });
});

test("llm-d-router's built-in triton engine, its label key, customMetrics", () => {
  // llm-d-router pkg/epp/framework/plugins/datalayer/extractor/metrics/factories.go, defaultEngineConfigs.
  const cfg = loadPickerConfig(null, { modelServerType: "triton" });
  const m = cfg.engines.unlabelled;
  assert.deepEqual(
    [m.queued, m.running, m.kvUsage, m.lora, m.cacheInfo, m.cacheBlockSize, m.cacheNumBlocks].map(formatMetricSpec),
    ["nv_inference_pending_request_count", "nv_inference_exec_count", "", "", "", "", ""],
  );
  assert.equal(cfg.engines.resolve({ "llm-d.ai/engine-type": "triton" }).mapping.name, "triton");
  assert.ok(cfg.engines.engines.has("triton-tensorrt-llm"), "our triton-tensorrt-llm stays");
  const custom = loadPickerConfig(`${HEAD}plugins:
- type: core-metrics-extractor
  parameters:
    engineLabelKey: llm-d.ai/engine-type
    engineConfigs:
    - name: vllm
      queuedRequestsSpec: vllm:num_requests_waiting
      customMetrics:
      - attributeKey: prefill-tokens
        metricSpec: vllm:num_prefill_tokens
`);
  assert.match(custom.notes.join("\n"), /engineConfigs\[0\]\.customMetrics of engine vllm is accepted and ignored/);
  assert.throws(
    () =>
      loadPickerConfig(
        `${HEAD}plugins:\n- type: core-metrics-extractor\n  parameters:\n    engineConfigs:\n    - name: x\n      customMetrics: [{attribute: a}]\n`,
      ),
    { message: /customMetrics\[0\]\.attribute: unknown field \(known fields: attributeKey, metricSpec\)/ },
  );
});

test("engine label: llm-d.ai/engine-type first, then inference.networking.k8s.io/engine-type", () => {
  // llm-d-router pkg/epp/framework/plugins/datalayer/extractor/metrics/extractor_test.go,
  // TestGetEngineTypeFromEndpoint (plus an empty new label, which the extractor also skips).
  const engines = loadPickerConfig(null).engines;
  const engine = (labels: Record<string, string>) => engines.resolve(labels).mapping.name;
  assert.equal(engine({ "llm-d.ai/engine-type": "sglang" }), "sglang", "new label key");
  assert.equal(engine({ "inference.networking.k8s.io/engine-type": "sglang" }), "sglang", "legacy GIE key fallback");
  assert.equal(
    engine({ "llm-d.ai/engine-type": "trtllm-serve", "inference.networking.k8s.io/engine-type": "sglang" }),
    "trtllm-serve",
    "new label key takes precedence over legacy GIE key",
  );
  assert.equal(engine({}), "vllm", "no labels: the default engine");
  assert.equal(engine({ "llm-d.ai/engine-type": "", "inference.networking.k8s.io/engine-type": "sglang" }), "sglang");
  assert.deepEqual(engines.engineLabelKeys, ["llm-d.ai/engine-type", "inference.networking.k8s.io/engine-type"]);
  // A configured key is read first, GIE's key after it; GIE's key configured is read alone.
  const gie = loadPickerConfig(
    `${HEAD}plugins:\n- type: model-server-protocol-metrics\n  parameters: {engineLabelKey: inference.networking.k8s.io/engine-type}\n`,
  ).engines;
  assert.deepEqual(gie.engineLabelKeys, ["inference.networking.k8s.io/engine-type"]);
  assert.equal(gie.resolve({ "llm-d.ai/engine-type": "sglang" }).mapping.name, "vllm");
});
