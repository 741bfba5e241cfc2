// Upgrades: a filter released before snapshot format 2 (tests/fixtures/snapshot/filter-format1.wasm, the
// filter as built at the last format-1 commit) picks correctly from what the companion serves it in
// format 1, and refuses format 2 cleanly (docs/SNAPSHOT.md, "Upgrades").
import { test } from "node:test";
import assert from "node:assert/strict";
import { PickerHost, endpoint, header, completion } from "./harness";
import { encodeSnapshot, type Snapshot, type SnapshotEndpoint } from "../../companion/snapshot";
import { encodeFormat1 } from "../../companion/snapshot-format1";
import { isFormat1Request } from "../../companion/http-server";
import { profileOf, type FlatProfile } from "../helpers/profile";
import { publishSnapshot, FALLBACK_HEADER } from "../helpers/filter-contract";

const OLD_FILTER = "tests/fixtures/snapshot/filter-format1.wasm";
let version = 0n;

function snapshot(h: PickerHost, endpoints: Partial<SnapshotEndpoint>[], profile: Partial<FlatProfile>): Snapshot {
  version += 1n;
  return {
    version,
    generatedAtMs: h.nowMs,
    profile: profileOf(profile),
    baseModels: ["base"],
    endpoints: endpoints.map((e) => ({ ...endpoint(e.address!), ...e })),
  };
}

test("a format-1 filter picks by load, LoRA adapter and fallbacks from the companion's format-1 answer", () => {
  const h = new PickerHost({ wasm: OLD_FILTER, concurrency: 2 });
  const s = snapshot(
    h,
    [
      { address: "10.0.0.1:8000", queued: 9, running: 9 },
      { address: "10.0.0.2:8000", queued: 0, running: 1, lora: { running: ["sql-lora"], waiting: [], max: 2 } },
      { address: "10.0.0.3:8000", queued: 4, running: 4, lora: { running: [], waiting: [], max: 2 } },
    ],
    { prefixWeight: 0, loraWeight: 1, fallbackCount: 2 },
  );
  publishSnapshot(h.host.sharedData, encodeFormat1(s), h.nowMs);
  for (let i = 0; i < 4; i++) {
    const { stream, dest } = h.pick({ worker: i % 2, body: completion("sql-lora", `q${i}`) });
    assert.equal(dest, "10.0.0.2:8000", "the endpoint running the adapter");
    stream.finish();
  }
  const { stream, dest } = h.pick({ body: completion("base", "q") });
  assert.equal(dest, "10.0.0.2:8000", "the least loaded");
  assert.deepEqual(
    header(stream.forwarded.requestHeaders, FALLBACK_HEADER),
    ["10.0.0.3:8000,10.0.0.1:8000"],
    "two fallbacks, best first",
  );
  assert.ok(!h.logs.some((l) => /ignoring snapshot/.test(l)), h.logs.join("\n"));
});

test("a format-1 filter refuses a format-2 snapshot with a log line and keeps the one it has", () => {
  const h = new PickerHost({ wasm: OLD_FILTER, config: { failureMode: "FailClose" } });
  const s = snapshot(h, [{ address: "10.0.0.1:8000" }], {});
  publishSnapshot(h.host.sharedData, encodeFormat1(s), h.nowMs);
  assert.equal(h.pick({ body: completion("base", "x") }).dest, "10.0.0.1:8000");
  const next = snapshot(h, [{ address: "10.0.0.9:8000" }], {});
  publishSnapshot(h.host.sharedData, encodeSnapshot(next), h.nowMs);
  assert.equal(h.pick({ body: completion("base", "y") }).dest, "10.0.0.1:8000", "the last good snapshot stays");
  assert.ok(
    h.logs.some((l) => /ignoring snapshot .*unsupported format 2/.test(l)),
    h.logs.join("\n"),
  );
});

test("the companion answers format 1 only to a request for the media type without a format", () => {
  assert.equal(isFormat1Request("application/vnd.endpoint-picker.snapshot"), true);
  assert.equal(isFormat1Request("application/vnd.endpoint-picker.snapshot; format=2"), false);
  assert.equal(isFormat1Request("Application/Vnd.Endpoint-Picker.Snapshot;Format=2"), false);
  assert.equal(isFormat1Request(undefined), false);
  assert.equal(isFormat1Request("*/*"), false);
});
