// llm-d-router's probabilistic-admitter through the whole path: its EndpointPickerConfig (the shape of
// llm-d-router's deploy/config/probabilistic-admitter-epp-config.yaml) through the companion's loader, the
// snapshot, and the real filter: requests of negative priority get 429 under saturation, others never; with
// flow control on, the admitter still sees the request's priority after the flow-control dispatch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PickerHost, endpoint, completion } from "./harness";
import { loadPickerConfig } from "../../companion/picker-config";
import { encodeSnapshot, type SnapshotEndpoint } from "../../companion/snapshot";
import { publishSnapshot } from "../helpers/filter-contract";

const CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- {type: probabilistic-admitter}
- {type: random-picker}
- type: utilization-detector
  parameters: {queueDepthThreshold: 999999999, kvCacheUtilThreshold: 1.0}
flowControl:
  saturationDetector: {pluginRef: utilization-detector}
schedulingProfiles:
- {name: default, plugins: [{pluginRef: random-picker}]}
`;

let version = 0n;

function publish(h: PickerHost, text: string, endpoints: Array<Partial<SnapshotEndpoint>>): void {
  const cfg = loadPickerConfig(text);
  const blob = encodeSnapshot({
    version: ++version,
    generatedAtMs: h.nowMs,
    profile: cfg.profile,
    endpoints: endpoints.map((e) => ({ ...endpoint(e.address!), ...e })),
    baseModels: [],
    objectives: [],
    modelRewrites: [],
    flowControl: cfg.flowControl,
  });
  publishSnapshot(h.host.sharedData, new Uint8Array(blob), h.nowMs);
}

const BATCH: [string, string][] = [["x-llm-d-inference-objective", "batch"]];
const CHAT: [string, string][] = [["x-llm-d-inference-objective", "chat"]];
// Saturation (4/5 and 0.5/0.8 for both) 0.8: 0.8^5 x 300 > 1, every sheddable request refused.
const BUSY = [
  { address: "10.0.0.1:8000", queued: 4, kvUsage: 0.5 },
  { address: "10.0.0.2:8000", queued: 4, kvUsage: 0.5 },
];
// Running 50: the requests this test leaves in flight are not waiting ones.
const IDLE = [
  { address: "10.0.0.1:8000", queued: 0, running: 50, kvUsage: 0 },
  { address: "10.0.0.2:8000", queued: 0, running: 50, kvUsage: 0 },
];

test("probabilistic-admitter: 429 for negative priority under saturation, never for the others, none when idle", () => {
  const h = new PickerHost({ config: { objectivePriorities: { batch: -1, chat: 1 } } });
  publish(h, CONFIG, BUSY);
  const refused = h.send({ headers: BATCH, body: completion("m", "x") });
  assert.equal(refused.localReply?.status, 429);
  assert.equal(refused.localReply?.details, "endpoint_picker_admission_denied");
  assert.ok(h.pick({ headers: CHAT, body: completion("m", "x") }).dest, "priority >= 0 is always admitted");
  assert.ok(h.pick({ body: completion("m", "x") }).dest, "no objective: priority 0");
  assert.equal(h.counter("endpoint_picker.decisions.shed"), 1);
  publish(h, CONFIG, IDLE);
  for (let k = 0; k < 10; k++) assert.ok(h.pick({ headers: BATCH, body: completion("m", "x") }).dest);
});

test("probabilistic-admitter with flow control: the request is dispatched, then the admitter refuses it", () => {
  const h = new PickerHost({ config: { objectivePriorities: { batch: -1 } } });
  // The neutered detector keeps the pool below flow control's usage limit: nothing is held.
  publish(h, `featureGates: [flowControl]\n${CONFIG}`, BUSY);
  const refused = h.send({ headers: BATCH, body: completion("m", "x") });
  assert.equal(refused.localReply?.status, 429);
  assert.equal(refused.localReply?.details, "endpoint_picker_admission_denied");
  assert.ok(h.pick({ body: completion("m", "x") }).dest);
});
