// Endpoint state (staleness), snapshot versioning and long polling, with a controlled clock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EndpointStore } from "../../companion/endpoint-state";
import { loadPickerConfig } from "../../companion/picker-config";
import { SnapshotPublisher } from "../../companion/snapshot-publisher";
import { decodeSnapshot, encodeSnapshot } from "../../companion/snapshot";
import { DEFAULT_PROFILE } from "../../companion/profile-config";
import type { PoolTarget } from "../../companion/types";

const engines = loadPickerConfig(null).engines;
const target = (address: string, labels: Record<string, string> = {}): PoolTarget => {
  const [ip, port] = address.split(":");
  return { address, ip, port: Number(port), labels };
};
const metrics = (queued: number, models: string[] = []) => ({
  queued,
  running: 1,
  kvUsage: 0.5,
  lora: null,
  cache: null,
  models,
});

test("staleness: never scraped and older than the threshold are stale; errors keep the last metrics", () => {
  const store = new EndpointStore(engines, 2000);
  store.setTargets([
    target("10.0.0.1:8000"),
    target("10.0.0.2:8000", { "inference.networking.k8s.io/engine-type": "sglang" }),
  ]);
  assert.deepEqual(
    store.views(0).map((v) => [v.address, v.engine, v.stale]),
    [
      ["10.0.0.1:8000", "vllm", true],
      ["10.0.0.2:8000", "sglang", true],
    ],
  );
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(3), 1000);
  assert.equal(store.views(3000)[0].stale, false, "2000 ms old is not older than the threshold");
  assert.equal(store.views(3001)[0].stale, true);
  assert.equal(store.nextStaleAt(1500), 3001);
  assert.equal(store.staleCount(1500), 1);
  store.recordFailure("10.0.0.1:8000", "vllm", "timeout");
  const [v] = store.views(1500);
  assert.deepEqual([v.queued, v.error, v.ageMs, v.stale], [3, "timeout", 500, false]);
  const [e] = store.snapshotEndpoints(1500);
  assert.deepEqual([e.error, e.queued], [true, 3]);
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(4), 1600);
  assert.equal(store.views(1600)[0].error, null, "a good scrape clears the error");
  store.recordSuccess("10.0.0.9:8000", "vllm", metrics(1), 1600); // left the pool mid-scrape: ignored
  assert.equal(store.size, 2);
});

test("a refused metrics connection marks the endpoint unreachable in the snapshot; a page that fails does not", () => {
  const store = new EndpointStore(engines, 2000);
  store.setTargets([target("10.0.0.1:8000"), target("10.0.0.2:8000")]);
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(1), 1000);
  store.recordSuccess("10.0.0.2:8000", "vllm", metrics(1), 1000);
  store.recordFailure("10.0.0.1:8000", "vllm", "GET /metrics: connect ECONNREFUSED", true);
  store.recordFailure("10.0.0.2:8000", "vllm", "HTTP 404", false);
  const [gone, degraded] = store.snapshotEndpoints(1500);
  assert.deepEqual([gone.error, gone.unreachable, degraded.error, degraded.unreachable], [true, true, true, undefined]);
  const snap = decodeSnapshot(
    encodeSnapshot({
      version: 1n,
      generatedAtMs: 0,
      profile: DEFAULT_PROFILE,
      endpoints: [gone, degraded],
      baseModels: [],
    }),
  );
  assert.deepEqual(
    snap.endpoints.map((e) => [e.address, e.error, e.unreachable ?? false]),
    [
      ["10.0.0.1:8000", true, true],
      ["10.0.0.2:8000", true, false],
    ],
  );
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(2), 1600);
  assert.equal(store.snapshotEndpoints(1600)[0].unreachable, undefined, "a good scrape clears it");
});

test("the pool's base models are the union of the endpoints' served models", () => {
  const store = new EndpointStore(engines, 2000);
  store.setTargets([target("10.0.0.1:8000"), target("10.0.0.2:8000"), target("10.0.0.3:8000")]);
  assert.deepEqual(store.baseModels(), []);
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(0, ["llama"]), 1000);
  store.recordSuccess("10.0.0.2:8000", "vllm", metrics(0, ["qwen", "llama"]), 1000);
  store.recordSuccess("10.0.0.3:8000", "vllm", metrics(0), 1000);
  assert.deepEqual(store.baseModels(), ["llama", "qwen"]);
  assert.deepEqual(
    store.views(1000).map((v) => v.models),
    [["llama"], ["qwen", "llama"], []],
  );
});

test("relabelling to another engine re-resolves at once and drops the other engine's metrics", () => {
  const store = new EndpointStore(engines, 2000);
  store.setTargets([target("10.0.0.1:8000")]);
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(3), 1000);
  store.setTargets([target("10.0.0.1:8000", { app: "x" })]);
  assert.equal(store.views(1000)[0].queued, 3, "a label change that keeps the engine keeps the metrics");
  store.setTargets([target("10.0.0.1:8000", { "inference.networking.k8s.io/engine-type": "sglang" })]);
  assert.deepEqual([store.views(1000)[0].engine, store.views(1000)[0].queued], ["sglang", null]);
});

test("a scrape outcome for the engine an endpoint had before a relabel or reload is ignored", () => {
  const store = new EndpointStore(engines, 2000);
  const sglang = { "inference.networking.k8s.io/engine-type": "sglang" };
  let changes = 0;
  store.onChange(() => changes++);
  store.setTargets([target("10.0.0.1:8000"), target("10.0.0.2:8000")]);
  store.recordSuccess("10.0.0.2:8000", "vllm", metrics(5), 900);
  // Both scrapes started as vllm; the pods were relabelled to sglang while they were in flight.
  store.setTargets([target("10.0.0.1:8000", sglang), target("10.0.0.2:8000", sglang)]);
  changes = 0;
  assert.equal(store.recordSuccess("10.0.0.1:8000", "vllm", metrics(3), 1000), false);
  assert.equal(store.recordFailure("10.0.0.2:8000", "vllm", "vllm:num_requests_waiting missing"), false);
  assert.equal(changes, 0, "nothing changed");
  assert.deepEqual(
    store.views(1000).map((v) => [v.engine, v.queued, v.updatedAt, v.error]),
    [
      ["sglang", null, null, null],
      ["sglang", null, null, null],
    ],
  );
  assert.equal(store.allAttempted(), false, "a stale outcome does not count as a scrape of the current engine");
  assert.equal(store.recordSuccess("10.0.0.1:8000", "sglang", metrics(4), 1100), true);
  assert.deepEqual([store.views(1100)[0].engine, store.views(1100)[0].queued], ["sglang", 4]);

  // A config reload that moves unlabelled pods to another default engine: the same.
  const reloaded = loadPickerConfig(null, { modelServerType: "sglang" }).engines;
  const plain = new EndpointStore(engines, 2000);
  plain.setTargets([target("10.0.0.3:8000")]);
  plain.setEngines(reloaded);
  assert.equal(plain.recordSuccess("10.0.0.3:8000", "vllm", metrics(7), 1000), false);
  assert.deepEqual([plain.views(1000)[0].engine, plain.views(1000)[0].queued], ["sglang", null]);
});

function publisherWith(store: EndpointStore, clock: { now: number }) {
  const published: bigint[] = [];
  const pub = new SnapshotPublisher(
    (now) => ({ profile: DEFAULT_PROFILE, endpoints: store.snapshotEndpoints(now), baseModels: store.baseModels() }),
    {
      minIntervalMs: 50,
      now: () => clock.now,
      nextChangeAt: (now) => store.nextStaleAt(now),
      onPublish: (s) => published.push(s.version),
    },
  );
  return { pub, published };
}

test("versions: new only when content changes (not age), strictly increasing, at least the wall clock", (t) => {
  const clock = { now: 1_700_000_000_000 };
  const store = new EndpointStore(engines, 2000);
  const { pub, published } = publisherWith(store, clock);
  t.after(() => pub.stop());
  assert.deepEqual(published, [1_700_000_000_000n]);
  assert.equal(pub.rebuild(), false, "nothing changed");

  store.setTargets([target("10.0.0.1:8000")]);
  clock.now += 1;
  assert.equal(pub.rebuild(), true);
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(3), clock.now);
  assert.equal(pub.rebuild(), true, "stale flips to fresh, metrics appear");
  const v = pub.current.version;
  assert.equal(v, 1_700_000_000_001n + 1n, "the same millisecond: previous + 1");

  clock.now += 500;
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(3), clock.now);
  assert.equal(pub.rebuild(), false, "same values, only the age differs: no new version");
  assert.equal(pub.current.version, v);

  clock.now += 100;
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(4), clock.now);
  assert.equal(pub.rebuild(), true);
  assert.equal(pub.current.version, BigInt(clock.now), "a later change takes the wall clock");

  clock.now += 2001;
  assert.equal(pub.rebuild(), true, "turning stale is a change");
  const snap = decodeSnapshot(pub.current.blob);
  assert.deepEqual([snap.endpoints[0].stale, snap.generatedAtMs], [true, clock.now]);
  assert.equal(snap.version, pub.current.version);

  const restarted = publisherWith(store, { now: clock.now - 10 }).pub; // a restart with a clock slightly behind
  t.after(() => restarted.stop());
  assert.ok(restarted.current.version < pub.current.version, "versions follow the wall clock, not a counter");
});

test("a change of base models alone is a new version (they are part of the content)", (t) => {
  const clock = { now: 1_700_000_000_000 };
  const store = new EndpointStore(engines, 60_000);
  store.setTargets([target("10.0.0.1:8000")]);
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(3, ["base-a"]), clock.now);
  const { pub } = publisherWith(store, clock);
  t.after(() => pub.stop());
  assert.deepEqual(decodeSnapshot(pub.current.blob).baseModels, ["base-a"]);
  clock.now += 100;
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(3, ["base-a", "base-b"]), clock.now);
  assert.equal(pub.rebuild(), true, "same load, new base model: a new version");
  assert.deepEqual(decodeSnapshot(pub.current.blob).baseModels, ["base-a", "base-b"]);
});

test("staleness publishes by itself: the expiry timer rebuilds when an endpoint turns stale", async (t) => {
  const store = new EndpointStore(engines, 30);
  store.setTargets([target("10.0.0.1:8000")]);
  store.recordSuccess("10.0.0.1:8000", "vllm", metrics(1), Date.now());
  const pub = new SnapshotPublisher(
    (now) => ({ profile: DEFAULT_PROFILE, endpoints: store.snapshotEndpoints(now), baseModels: store.baseModels() }),
    { minIntervalMs: 10, nextChangeAt: (now) => store.nextStaleAt(now) },
  );
  t.after(() => pub.stop());
  assert.equal(decodeSnapshot(pub.current.blob).endpoints[0].stale, false);
  const { result } = pub.waitForNewer(pub.current.version, 2000);
  const next = await result;
  assert.ok(next, "a new version before the long-poll timeout");
  assert.equal(decodeSnapshot(next.blob).endpoints[0].stale, true);
});

test("long poll: answered at once when newer, held until a change, null on timeout, cancellable; coalescing", async (t) => {
  const store = new EndpointStore(engines, 60_000);
  const pub = new SnapshotPublisher(
    (now) => ({ profile: DEFAULT_PROFILE, endpoints: store.snapshotEndpoints(now), baseModels: store.baseModels() }),
    { minIntervalMs: 40 },
  );
  t.after(() => pub.stop());
  const v0 = pub.current.version;
  assert.equal(await pub.waitForNewer(v0 - 1n, 1000).result, pub.current, "older version: at once");

  const timedOut = pub.waitForNewer(v0, 30);
  assert.equal(await timedOut.result, null);
  const cancelled = pub.waitForNewer(v0, 10_000);
  assert.equal(pub.waiting, 1);
  cancelled.cancel();
  assert.equal(await cancelled.result, null);
  assert.equal(pub.waiting, 0);

  const held = pub.waitForNewer(v0, 5000);
  for (let i = 0; i < 5; i++) {
    // five changes in quick succession ...
    store.setTargets([target(`10.0.0.${i + 1}:8000`)]);
    pub.requestUpdate();
  }
  const got = await held.result;
  assert.ok(got && got.version > v0);
  await new Promise((r) => setTimeout(r, 100));
  const versions = new Set([v0, got.version, pub.current.version]);
  assert.ok(versions.size <= 3, "... give at most two versions (one per coalescing window)");
  assert.equal(decodeSnapshot(pub.current.blob).endpoints[0].address, "10.0.0.5:8000");
});
