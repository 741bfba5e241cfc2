// llm-d-router's shipped EndpointPickerConfigs (its deploy/config/*.yaml) that name plugins beyond GIE's: each
// shape below has the same plugin types, parameters and profiles as one of those files (written here, not
// read from upstream), and the test pins what the loader makes of it: the profile the filter applies, and the
// notes and warnings that say what is ignored or done differently.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPickerConfig, type PickerConfig } from "../../companion/picker-config";
import type { ProfilePlugin } from "../../companion/snapshot";

const HEAD = "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n";

/** A profile as `role:type*weight {parameters}` lines (weight for scorers only, parameters when any). */
const lines = (plugins: ProfilePlugin[]): string[] =>
  plugins.map(
    (p) =>
      `${p.role}:${p.type}${p.role === "scorer" ? `*${p.weight}` : ""}` +
      (Object.keys(p.parameters).length ? ` ${JSON.stringify(p.parameters)}` : ""),
  );

const DETECTOR = 'saturation-detector:utilization-detector {"queueDepthThreshold":5,"kvCacheUtilThreshold":0.8}';
const PICKER = 'picker:max-score-picker {"maxNumOfEndpoints":1}';
const prefix = (weight: number, chars: number, blocks = 256) =>
  `scorer:prefix-cache-scorer*${weight} {"blockSizeChars":${chars},"maxPrefixBlocksToMatch":${blocks},"lruCapacityPerServer":31250}`;

/** The config's warnings and its other notes, each matched by one pattern (in any order). */
function logs(cfg: PickerConfig, want: { warnings: RegExp[]; notes: RegExp[] }): void {
  const notes = cfg.notes.filter((n) => !cfg.warnings.includes(n));
  for (const [got, patterns, what] of [
    [cfg.warnings, want.warnings, "warnings"],
    [notes, want.notes, "notes"],
  ] as const) {
    assert.equal(got.length, patterns.length, `${what}:\n${got.join("\n")}`);
    for (const p of patterns)
      assert.ok(
        got.some((l) => p.test(l)),
        `${what} lack ${p}:\n${got.join("\n")}`,
      );
  }
  for (const n of cfg.warnings) assert.ok(cfg.notes.includes(n), "every warning is logged with the notes");
}

const SINGLE = /single-profile-handler \(single-profile-handler\) is accepted and ignored/;
const TOKENS = /token-producer \(token-producer\) is accepted and ignored: the filter estimates tokens itself/;
const DATA_LAYER = /section dataLayer is accepted and ignored/;
const NOTIFICATIONS = /endpoint-notification-source \(endpoint-notification-source\) is accepted and ignored/;

test("dp-epp-config: data-parallel-profile-handler routes to the picked rank itself, with a warning", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- {type: prefix-cache-scorer}
- {type: decode-filter}
- {type: max-score-picker}
- type: data-parallel-profile-handler
  parameters: {primaryPort: 8000}
schedulingProfiles:
- name: default
  plugins: [{pluginRef: decode-filter}, {pluginRef: max-score-picker}, {pluginRef: prefix-cache-scorer, weight: 2}]
`);
  assert.deepEqual(lines(cfg.profile.plugins), ["filter:decode-filter", prefix(2, 64), PICKER, DETECTOR]);
  assert.equal(cfg.profile.disaggregation, undefined);
  logs(cfg, {
    warnings: [
      /data-parallel-profile-handler \(data-parallel-profile-handler\): requests go to the picked rank's own IP:PORT, not to primaryPort 8000 with x-data-parallel-host-port/,
    ],
    notes: [],
  });
});

test("epp-burst-prefix-cache-config: the burst producer's blocks on the approximate index, load-aware-scorer", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- type: token-producer
  parameters:
    modelName: hf-repo/model-name
    vllm: {url: "http://vllm.ns.svc.cluster.local:8000"}
- {type: single-profile-handler}
- {type: decode-filter}
- type: burst-prefix-cache-producer
  parameters: {windowDurationMs: 100, maxPerReplica: -1, minColocateBlocks: 0}
- type: prefix-cache-scorer
  parameters: {prefixMatchInfoProducerName: burst-prefix-cache-producer}
- {type: load-aware-scorer}
- {type: max-score-picker}
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: decode-filter}
  - {pluginRef: prefix-cache-scorer, weight: 2.0}
  - {pluginRef: load-aware-scorer, weight: 1.0}
  - {pluginRef: max-score-picker}
`);
  assert.deepEqual(lines(cfg.profile.plugins), [
    "filter:decode-filter",
    prefix(2, 256), // the burst producer's 64-token blocks
    'scorer:load-aware-scorer*1 {"threshold":128}',
    PICKER,
    DETECTOR,
  ]);
  logs(cfg, {
    warnings: [
      /burst-prefix-cache-producer \(burst-prefix-cache-producer\): requests are not held in batch windows here; .* approximate prefix index .* blocks of 64 tokens \(256 characters\)/,
    ],
    notes: [SINGLE, TOKENS],
  });
});

test("epp-estimate-prefix-cache-config: load-aware-scorer beside the prefix scorer, nothing left out", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- {type: single-profile-handler}
- {type: decode-filter}
- {type: prefix-cache-scorer}
- {type: load-aware-scorer}
- {type: max-score-picker}
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: decode-filter}
  - {pluginRef: prefix-cache-scorer, weight: 1.0}
  - {pluginRef: load-aware-scorer, weight: 1.0}
  - {pluginRef: max-score-picker}
`);
  assert.deepEqual(lines(cfg.profile.plugins), [
    "filter:decode-filter",
    prefix(1, 64),
    'scorer:load-aware-scorer*1 {"threshold":128}',
    PICKER,
    DETECTOR,
  ]);
  logs(cfg, { warnings: [], notes: [SINGLE] });
});

const PRECISE_PLUGINS = `- type: token-producer
  parameters:
    modelName: hf-repo/model-name
    vllm: {url: "http://localhost:8000"}
- {type: endpoint-notification-source}
- {type: metrics-data-source}
- {type: core-metrics-extractor}
- type: precise-prefix-cache-producer
  parameters:
    tokenProcessorConfig: {blockSize: 64}
    indexerConfig:
      kvBlockIndexConfig: {enableMetrics: true}
- type: prefix-cache-scorer
  parameters: {prefixMatchInfoProducerName: precise-prefix-cache-producer}
- {type: queue-scorer}
- {type: max-score-picker}
- {type: single-profile-handler}
- {type: decode-filter}
`;
const PRECISE_WARNING =
  /precise-prefix-cache-producer \(precise-prefix-cache-producer\): the engines' KV-cache events are not consumed here; prefix-cache-scorer scores from the filter's approximate prefix index .* blocks of (\d+) tokens \((\d+) characters\)/;

test("epp-mm-embeddings-cache-config: mm scorer left out with a warning, precise producer on the approximate index", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
${PRECISE_PLUGINS}- type: mm-embeddings-cache-producer
  parameters: {cacheSizeInMB: 2048}
- {type: mm-embeddings-cache-scorer}
dataLayer:
  sources:
  - pluginRef: metrics-data-source
    extractors: [{pluginRef: core-metrics-extractor}]
  - pluginRef: endpoint-notification-source
    extractors: [{pluginRef: mm-embeddings-cache-producer}, {pluginRef: precise-prefix-cache-producer}]
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: decode-filter}
  - {pluginRef: prefix-cache-scorer, weight: 10}
  - {pluginRef: mm-embeddings-cache-scorer, weight: 4}
  - {pluginRef: queue-scorer, weight: 1}
  - {pluginRef: max-score-picker}
`);
  assert.deepEqual(lines(cfg.profile.plugins), [
    "filter:decode-filter",
    prefix(10, 256), // tokenProcessorConfig.blockSize 64 tokens
    "scorer:queue-scorer*1",
    PICKER,
    DETECTOR,
  ]);
  logs(cfg, {
    warnings: [
      PRECISE_WARNING,
      /mm-embeddings-cache-producer \(mm-embeddings-cache-producer\): the filter does not read a request's images, video or audio/,
      /mm-embeddings-cache-scorer \(mm-embeddings-cache-scorer\) \(left out of every profile that references it\): .* multimodal requests lose their affinity .* text-only requests are unaffected/,
    ],
    notes: [SINGLE, TOKENS, DATA_LAYER, NOTIFICATIONS],
  });
});

test("epp-precise-prefix-cache-config: the precise producer's 64-token blocks, kv and queue scorers as given", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
${PRECISE_PLUGINS}- {type: kv-cache-utilization-scorer}
dataLayer:
  sources:
  - {pluginRef: metrics-data-source, extractors: [{pluginRef: core-metrics-extractor}]}
  - {pluginRef: endpoint-notification-source, extractors: [{pluginRef: precise-prefix-cache-producer}]}
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: decode-filter}
  - {pluginRef: prefix-cache-scorer, weight: 2.0}
  - {pluginRef: kv-cache-utilization-scorer, weight: 1.0}
  - {pluginRef: queue-scorer, weight: 1.0}
  - {pluginRef: max-score-picker}
`);
  assert.deepEqual(lines(cfg.profile.plugins), [
    "filter:decode-filter",
    prefix(2, 256),
    "scorer:kv-cache-utilization-scorer*1",
    "scorer:queue-scorer*1",
    PICKER,
    DETECTOR,
  ]);
  logs(cfg, { warnings: [PRECISE_WARNING], notes: [SINGLE, TOKENS, DATA_LAYER, NOTIFICATIONS] });
});

test("pd-topology-epp-config: topology filter and scorer left out of the prefill profile, with warnings", () => {
  const stage = (name: string, filters: string, scorers: string) => `- name: ${name}
  plugins:
  - {pluginRef: ${name}-filter}
${filters}  - {pluginRef: max-score-picker}
  - {pluginRef: prefix-cache-scorer, weight: 2}
  - {pluginRef: queue-scorer, weight: 1}
${scorers}`;
  const cfg = loadPickerConfig(`${HEAD}plugins:
- type: approx-prefix-cache-producer
  parameters: {maxPrefixTokensToMatch: 16384, lruCapacityPerServer: 31250}
- {type: prefix-cache-scorer}
- {type: queue-scorer}
- {type: prefill-filter}
- {type: decode-filter}
- {type: max-score-picker}
- {type: topology-extractor}
- {type: topology-affinity-filter}
- {type: topology-affinity-scorer}
- type: disagg-profile-handler
  parameters: {deciders: {prefill: prefix-based-pd-decider}}
- type: prefix-based-pd-decider
  parameters: {nonCachedTokens: 16}
schedulingProfiles:
${stage("prefill", "  - {pluginRef: topology-affinity-filter}\n", "  - {pluginRef: topology-affinity-scorer, weight: 1}\n")}${stage("decode", "", "")}`);
  const stagePlugins = (filter: string) => [
    `filter:${filter}`,
    prefix(2, 64, 1024),
    "scorer:queue-scorer*1",
    PICKER,
    DETECTOR,
  ];
  assert.deepEqual(lines(cfg.profile.plugins), stagePlugins("decode-filter"));
  const pd = cfg.profile.disaggregation!;
  assert.deepEqual([pd.decider, pd.nonCachedTokens], ["prefix-based", 16]);
  assert.deepEqual(lines(pd.prefill), stagePlugins("prefill-filter"));
  logs(cfg, {
    warnings: [
      /topology-extractor \(topology-extractor\): pod topology labels are not collected here/,
      /topology-affinity-filter \(topology-affinity-filter\) \(left out of every profile that references it\): .* keeps every candidate, as llm-d-router's does without topology/,
      /topology-affinity-scorer \(topology-affinity-scorer\) \(left out of every profile that references it\): .* scores every candidate 0/,
    ],
    notes: [],
  });
});

test("probabilistic-admitter-epp-config: an admitter entry with llm-d-router's defaults, the neutered detector as given", () => {
  const cfg = loadPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- {type: probabilistic-admitter}
- {type: random-picker}
- type: utilization-detector
  parameters: {queueDepthThreshold: 999999999, kvCacheUtilThreshold: 1.0}
flowControl:
  saturationDetector: {pluginRef: utilization-detector}
schedulingProfiles:
- name: default
  plugins: [{pluginRef: random-picker}]
`);
  assert.deepEqual(lines(cfg.profile.plugins), [
    'picker:random-picker {"maxNumOfEndpoints":1}',
    'saturation-detector:utilization-detector {"queueDepthThreshold":999999999,"kvCacheUtilThreshold":1}',
    'admitter:probabilistic-admitter {"queueDepthThreshold":5,"kvCacheUtilThreshold":0.8,"power":5,"k":300}',
  ]);
  assert.equal(cfg.flowControl, null); // the flowControl section without the feature gate only names the detector
  logs(cfg, { warnings: [], notes: [] });
});

test("sim-e-p-d-epp-config: the encode stage is checked and not run; decode and prefill stages as given", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- {type: queue-scorer}
- {type: encode-filter}
- {type: prefill-filter}
- {type: decode-filter}
- type: disagg-profile-handler
  parameters:
    deciders: {encode: always-disagg-multimodal-decider, prefill: prefix-based-pd-decider}
- {type: always-disagg-multimodal-decider}
- type: prefix-based-pd-decider
  parameters: {nonCachedTokens: 16}
schedulingProfiles:
- {name: encode, plugins: [{pluginRef: encode-filter}]}
- {name: prefill, plugins: [{pluginRef: prefill-filter}, {pluginRef: queue-scorer, weight: 1}]}
- {name: decode, plugins: [{pluginRef: decode-filter}, {pluginRef: queue-scorer, weight: 1}]}
`);
  assert.deepEqual(lines(cfg.profile.plugins), ["filter:decode-filter", "scorer:queue-scorer*1", PICKER, DETECTOR]);
  const pd = cfg.profile.disaggregation!;
  assert.deepEqual([pd.decider, pd.nonCachedTokens], ["prefix-based", 16]);
  assert.deepEqual(lines(pd.prefill), ["filter:prefill-filter", "scorer:queue-scorer*1", PICKER, DETECTOR]);
  logs(cfg, {
    warnings: [
      /^schedulingProfiles\[0\] \(encode\): the encode stage \(always-disagg-multimodal-decider, always-disagg-multimodal-decider\) is not run: requests carry no x-encoder-hosts-ports, so the decode pod \(or the prefill pod\) encodes images, video and audio itself/,
    ],
    notes: [],
  });
});

test("sim-e-pd-epp-config: encode and decode only, no prefill stage", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- {type: encode-filter}
- {type: decode-filter}
- {type: max-score-picker}
- {type: always-disagg-multimodal-decider}
- type: disagg-profile-handler
  parameters: {deciders: {encode: always-disagg-multimodal-decider}}
schedulingProfiles:
- {name: encode, plugins: [{pluginRef: encode-filter}]}
- {name: decode, plugins: [{pluginRef: decode-filter}]}
`);
  assert.deepEqual(lines(cfg.profile.plugins), ["filter:decode-filter", PICKER, DETECTOR]);
  assert.equal(cfg.profile.disaggregation, undefined);
  logs(cfg, { warnings: [/schedulingProfiles\[0\] \(encode\): the encode stage .* is not run/], notes: [] });
});

test("sim-epp-gpu-config: DCGM source, extractor, attribute filter and scorer: no GPU data, upstream's missing-data result", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- name: dcgm-source
  type: dcgm-data-source
  parameters: {port: 9400, interval: "1s"}
- {name: dcgm-extractor, type: dcgm-extractor}
- name: gpu-utilization-filter
  type: endpoint-attribute-filter
  parameters:
    attribute: GPUUtilization
    producer: dcgm-extractor
    onMissing: Pass
    fallbackOnEmpty: true
    algorithm:
      type: threshold
      threshold: {operator: LessThanOrEqual, value: 0.90}
- name: gpu-utilization-scorer
  type: endpoint-attribute-scorer
  parameters:
    attributeKey: GPUUtilization
    producer: dcgm-extractor
    algorithm:
      type: linear_lower_is_better
      normalization: {fixedRange: {min: 0.0, max: 1.0}}
- {type: kv-cache-utilization-scorer}
- {type: max-score-picker}
- {type: single-profile-handler}
- {type: decode-filter}
dataLayer:
  sources: [{pluginRef: dcgm-source, extractors: [{pluginRef: dcgm-extractor}]}]
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: decode-filter}
  - {pluginRef: gpu-utilization-filter}
  - {pluginRef: gpu-utilization-scorer, weight: 2.0}
  - {pluginRef: kv-cache-utilization-scorer, weight: 1.0}
  - {pluginRef: max-score-picker}
`);
  assert.deepEqual(lines(cfg.profile.plugins), [
    "filter:decode-filter",
    "scorer:kv-cache-utilization-scorer*1",
    PICKER,
    DETECTOR,
  ]);
  logs(cfg, {
    warnings: [
      /dcgm-source \(dcgm-data-source\): GPU metrics \(DCGM exporter\) are not scraped here/,
      /dcgm-extractor \(dcgm-extractor\): GPU metrics/,
      /gpu-utilization-filter \(endpoint-attribute-filter\) \(left out of every profile that references it\): .* keeps every endpoint/,
      /gpu-utilization-scorer \(endpoint-attribute-scorer\) \(left out of every profile that references it\): .* scores every endpoint 0/,
    ],
    notes: [SINGLE, DATA_LAYER],
  });
});

/** sim-epp-kvcache-config, sim-epp-no-hit-lru and sim-epp-tokenizer-vllm-http-config: a precise producer's shapes. */
const preciseSim = (producerParams: string, extraPlugins = "", extraRefs = "") => `${HEAD}plugins:
- type: token-producer
  parameters:
    modelName: TinyLlama/TinyLlama-1.1B-Chat-v1.0
    vllm: {url: "http://localhost:8000"}
- type: precise-prefix-cache-producer
  parameters:
${producerParams}- type: prefix-cache-scorer
  parameters: {prefixMatchInfoProducerName: precise-prefix-cache-producer}
${extraPlugins}- {type: decode-filter}
- {type: max-score-picker}
- {type: single-profile-handler}
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: decode-filter}
  - {pluginRef: max-score-picker}
  - {pluginRef: prefix-cache-scorer, weight: 10}
${extraRefs}`;

test("sim-epp-kvcache-config: 16-token blocks from tokenProcessorConfig; KV events and index settings accepted", () => {
  const cfg = loadPickerConfig(
    preciseSim(`    tokenProcessorConfig: {blockSize: 16}
    kvEventsConfig: {zmqEndpoint: "tcp://0.0.0.0:5557"}
    indexerConfig:
      kvBlockIndexConfig: {enableMetrics: false, metricsLoggingInterval: 60000000000}
`),
  );
  assert.deepEqual(lines(cfg.profile.plugins), ["filter:decode-filter", prefix(10, 64), PICKER, DETECTOR]);
  logs(cfg, { warnings: [PRECISE_WARNING], notes: [SINGLE, TOKENS] });
  assert.match(cfg.warnings[0], /blocks of 16 tokens \(64 characters\)/);
});

test("sim-epp-no-hit-lru: no-hit-lru-scorer with its lruSize, blockSizeTokens 5 on the approximate index", () => {
  const cfg = loadPickerConfig(
    preciseSim(
      "    tokenProcessorConfig: {blockSizeTokens: 5}\n",
      "- type: no-hit-lru-scorer\n  parameters: {lruSize: 2048}\n",
      "  - {pluginRef: no-hit-lru-scorer, weight: 1}\n",
    ).replace(/- type: token-producer\n(  .*\n)+/, ""),
  );
  assert.deepEqual(lines(cfg.profile.plugins), [
    "filter:decode-filter",
    prefix(10, 20),
    'scorer:no-hit-lru-scorer*1 {"lruSize":2048}',
    PICKER,
    DETECTOR,
  ]);
  logs(cfg, { warnings: [PRECISE_WARNING], notes: [SINGLE] });
  assert.match(cfg.warnings[0], /blocks of 5 tokens \(20 characters\)/);
});

test("sim-epp-tokenizer-vllm-http-config: a vLLM render sidecar's token-producer is ignored; hashSeed accepted", () => {
  const cfg = loadPickerConfig(
    preciseSim(`    tokenProcessorConfig: {blockSize: 16, hashSeed: "42"}
    kvEventsConfig: {zmqEndpoint: "tcp://0.0.0.0:5557"}
    indexerConfig:
      kvBlockIndexConfig: {enableMetrics: false}
`).replace("modelName: TinyLlama/TinyLlama-1.1B-Chat-v1.0", 'modelName: "${MODEL_NAME}"'),
  );
  assert.deepEqual(lines(cfg.profile.plugins), ["filter:decode-filter", prefix(10, 64), PICKER, DETECTOR]);
  logs(cfg, { warnings: [PRECISE_WARNING], notes: [SINGLE, TOKENS] });
});

test("what the new plugins refuse, as llm-d-router does or because nothing would be left to route to", () => {
  const cases: Array<[string, RegExp]> = [
    [
      `${HEAD}plugins:\n- type: endpoint-attribute-filter\n  parameters: {attribute: GPUUtilization, onMissing: Fail, algorithm: {type: threshold, threshold: {operator: LessThan, value: 0.9}}}`,
      /plugins\[0\]\.parameters\.onMissing: Fail without fallbackOnEmpty would reject every endpoint/,
    ],
    [
      `${HEAD}plugins:\n- type: endpoint-attribute-scorer\n  parameters: {attributeKey: x, algorithm: {type: linear_lower_is_better, normalization: {fixedRange: {min: 1, max: 1}}}}`,
      /plugins\[0\]\.parameters\.algorithm\.normalization\.fixedRange: min must be below max/,
    ],
    [
      `${HEAD}plugins:\n- type: prefix-cache-scorer\n  parameters: {prefixMatchInfoProducerName: nope}`,
      /plugins\[0\]\.parameters\.prefixMatchInfoProducerName: no plugin of that name in plugins/,
    ],
    [
      `${HEAD}plugins:\n- type: queue-scorer\n- type: prefix-cache-scorer\n  parameters: {prefixMatchInfoProducerName: queue-scorer}`,
      /has type queue-scorer, which is not a prefix producer/,
    ],
    [
      `${HEAD}plugins:\n- type: precise-prefix-cache-producer\n  parameters: {indexerConfig: {tokenizersPoolConfig: {}}}`,
      /indexerConfig\.tokenizersPoolConfig: is not supported \(llm-d-router refuses it too/,
    ],
    [
      `${HEAD}plugins:\n- type: precise-prefix-cache-producer\n  parameters: {tokenProcessorConfig: {blockSizeTokens: -1}}`,
      /tokenProcessorConfig\.blockSizeTokens: must be greater than 0/,
    ],
    [
      `${HEAD}plugins:\n- type: burst-prefix-cache-producer\n  parameters: {windowDurationMs: 0}`,
      /plugins\[0\]\.parameters\.windowDurationMs: must be at least 1/,
    ],
    [
      `${HEAD}plugins:\n- type: burst-prefix-cache-producer\n  parameters: {maxPerReplica: 0}`,
      /maxPerReplica: must be -1 \(unlimited\) or at least 1/,
    ],
    [
      `${HEAD}plugins:\n- type: token-producer\n  parameters: {vllm: {url: "http://x"}}`,
      /plugins\[0\]\.parameters\.modelName: must be set with the vllm or udsTokenizerConfig backend/,
    ],
    [
      `${HEAD}plugins:\n- type: token-producer\n  parameters: {modelName: m, estimate: {}}`,
      /only one of estimate, vllm \(or modelName\) and udsTokenizerConfig may be set/,
    ],
    [`${HEAD}plugins:\n- type: probabilistic-admitter\n  parameters: {k: 0}`, /parameters\.k: must be greater than 0/],
    [
      `${HEAD}plugins:\n- type: probabilistic-admitter\n  parameters: {queueDepthThreshold: 2.5}`,
      /queueDepthThreshold: must be a whole number/,
    ],
    [
      `${HEAD}plugins:\n- type: data-parallel-profile-handler\n  parameters: {primaryPort: 70000}`,
      /plugins\[0\]\.parameters\.primaryPort: must be at most 65535/,
    ],
    [
      `${HEAD}plugins:\n- type: queue-scorer\n- type: data-parallel-profile-handler\nschedulingProfiles:\n- {name: a, plugins: [{pluginRef: queue-scorer}]}\n- {name: b, plugins: [{pluginRef: queue-scorer}]}`,
      /schedulingProfiles: only one scheduling profile is supported/,
    ],
    [
      `${HEAD}plugins:\n- type: topology-affinity-filter\n  parameters: {minAffinity: building}`,
      /minAffinity: must be one of host, rack, zone, region/,
    ],
    [
      `${HEAD}plugins:\n- type: decode-filter\n- type: queue-scorer\n- type: disagg-profile-handler\n  parameters: {deciders: {encode: queue-scorer}}\nschedulingProfiles:\n- {name: decode, plugins: [{pluginRef: decode-filter}]}`,
      /deciders\.encode: plugin "queue-scorer" has type queue-scorer, which is not an encode decider/,
    ],
    [
      `${HEAD}plugins:\n- type: prefix-cache-scorer\n  parameters: {matchLengthWeight: 1.5}`,
      /matchLengthWeight: must be at most 1/,
    ],
  ];
  for (const [text, want] of cases) assert.throws(() => loadPickerConfig(text), want, String(want));
});

test("load-aware-scorer and no-hit-lru-scorer parameters; a zero threshold takes llm-d-router's default with a warning", () => {
  const scorer = (type: string, params: string) =>
    loadPickerConfig(`${HEAD}plugins:\n- type: ${type}\n  parameters: ${params}\n`).profile.plugins[0];
  assert.deepEqual(scorer("load-aware-scorer", "{threshold: 16}").parameters, { threshold: 16 });
  const zero = loadPickerConfig(`${HEAD}plugins:\n- type: load-aware-scorer\n  parameters: {threshold: 0}\n`);
  assert.deepEqual(zero.profile.plugins[0].parameters, { threshold: 128 });
  assert.match(
    zero.warnings.join("\n"),
    /plugins\[0\]\.parameters\.threshold: 0 is not positive; llm-d-router's default 128/,
  );
  assert.deepEqual(scorer("no-hit-lru-scorer", "{lruSize: 0}").parameters, { lruSize: 1024 });
  assert.deepEqual(scorer("no-hit-lru-scorer", "{prefixPluginType: x, prefixPluginName: y}").parameters, {
    lruSize: 1024,
  });
  assert.throws(
    () => scorer("load-aware-scorer", "{queueThreshold: 3}"),
    /threshold: unknown field|queueThreshold: unknown field/,
  );
});

test("prefix-cache-scorer's match-length term is written only when its weight is above 0", () => {
  const cfg = loadPickerConfig(
    `${HEAD}plugins:\n- type: prefix-cache-scorer\n  parameters: {matchLengthWeight: 0.25, matchLengthScaleTokens: 1024}\n`,
  );
  assert.deepEqual(cfg.profile.plugins[0].parameters, {
    blockSizeChars: 64,
    maxPrefixBlocksToMatch: 256,
    lruCapacityPerServer: 31250,
    matchLengthWeight: 0.25,
    matchLengthScaleChars: 4096,
  });
  const off = loadPickerConfig(`${HEAD}plugins:\n- type: prefix-cache-scorer\n  parameters: {matchLengthWeight: 0}\n`);
  assert.deepEqual(Object.keys(off.profile.plugins[0].parameters), [
    "blockSizeChars",
    "maxPrefixBlocksToMatch",
    "lruCapacityPerServer",
  ]);
});

test("a real tokenizer feeding prefix-based-pd-decider is a warning (token counts become estimates); the estimate backend a note", () => {
  const pd = (tokenizer: string) => `${HEAD}plugins:
${tokenizer}- {type: decode-filter}
- {type: prefill-filter}
- {type: queue-scorer}
- type: disagg-profile-handler
  parameters: {deciders: {prefill: prefix-based-pd-decider}}
- type: prefix-based-pd-decider
  parameters: {nonCachedTokens: 256}
schedulingProfiles:
- {name: prefill, plugins: [{pluginRef: prefill-filter}, {pluginRef: queue-scorer}]}
- {name: decode, plugins: [{pluginRef: decode-filter}, {pluginRef: queue-scorer}]}
`;
  const real = loadPickerConfig(pd("- type: token-producer\n  parameters: {modelName: m}\n"));
  assert.match(
    real.warnings.join("\n"),
    /token-producer \(token-producer\) is not run: prefix-based-pd-decider counts estimated tokens \(prompt bytes \/ 4\) instead of the vllm tokenizer's/,
  );
  const estimate = loadPickerConfig(pd("- name: tok\n  type: tokenizer\n  parameters: {estimate: {}}\n"));
  assert.equal(estimate.warnings.length, 0, estimate.warnings.join("\n"));
  assert.match(estimate.notes.join("\n"), /plugin tok \(tokenizer\) is accepted and ignored/);
});

test("a precise producer no prefix-cache-scorer reads is noted as not run; the encode filter is a real filter", () => {
  const cfg = loadPickerConfig(`${HEAD}plugins:
- {type: precise-prefix-cache-producer}
- {type: prefix-cache-scorer}
- {type: encode-filter}
schedulingProfiles:
- {name: default, plugins: [{pluginRef: encode-filter}, {pluginRef: prefix-cache-scorer}]}
`);
  assert.deepEqual(lines(cfg.profile.plugins), ["filter:encode-filter", prefix(1, 64), PICKER, DETECTOR]);
  assert.equal(cfg.warnings.length, 0);
  assert.match(
    cfg.notes.join("\n"),
    /precise-prefix-cache-producer \(precise-prefix-cache-producer\) is accepted and not run: no prefix-cache-scorer reads it/,
  );
});

test("pd-profile-handler's primaryPort gets data-parallel-profile-handler's warning; 0 none", () => {
  const pd = (port: number) => `${HEAD}plugins:
- {type: decode-filter}
- {type: prefill-filter}
- {type: prefix-cache-scorer}
- {type: prefix-based-pd-decider}
- type: pd-profile-handler
  parameters: {primaryPort: ${port}}
schedulingProfiles:
- {name: prefill, plugins: [{pluginRef: prefill-filter}, {pluginRef: prefix-cache-scorer}]}
- {name: decode, plugins: [{pluginRef: decode-filter}, {pluginRef: prefix-cache-scorer}]}
`;
  assert.match(
    loadPickerConfig(pd(8000)).warnings.join("\n"),
    /pd-profile-handler \(pd-profile-handler\): requests go to the picked rank's own IP:PORT, not to primaryPort 8000/,
  );
  assert.deepEqual(loadPickerConfig(pd(0)).warnings, []);
});
