// Snapshot delivery inside the filter: one leased fetcher per process long-polls the companion, writes what
// it gets into shared data, backs off on errors, and is replaced when its VM dies.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PickerHost, completion, endpoint } from "./harness";
import { type HttpCallContext, type HttpCallOutcome } from "../../envoy/emulator/host";
import { encodeSnapshot } from "../../companion/snapshot";
import { DEFAULT_PROFILE } from "../../companion/profile-config";
import { SNAPSHOT_META_KEY } from "../helpers/filter-contract";

const A = "10.0.0.1:8000",
  B = "10.0.0.2:8000";

function blob(version: bigint, addresses: string[]): Uint8Array {
  return new Uint8Array(
    encodeSnapshot({
      version,
      generatedAtMs: 0,
      profile: DEFAULT_PROFILE,
      endpoints: addresses.map(endpoint),
      baseModels: [],
    }),
  );
}

/** A companion on the other end of proxy_http_call: records calls, answers when the test says so. */
class FakeCompanion {
  calls: HttpCallContext[] = [];
  handler = (call: HttpCallContext): undefined => {
    this.calls.push(call);
    return undefined;
  };
  get pending(): HttpCallContext[] {
    return this.calls.filter((c) => !(c as { done?: boolean }).done);
  }
  answer(outcome: HttpCallOutcome): HttpCallContext {
    const c = this.pending[0];
    assert.ok(c, "a poll is waiting");
    (c as { done?: boolean }).done = true;
    c.respond(outcome);
    return c;
  }
  path(c: HttpCallContext): string {
    return c.headers.find(([k]) => k === ":path")![1];
  }
}

function meta(h: PickerHost): { version: bigint; contactMs: number } | null {
  const m = h.host.sharedData.get(SNAPSHOT_META_KEY);
  if (!m) return null;
  const v = new DataView(m.value.buffer, m.value.byteOffset, 16);
  return { version: v.getBigUint64(0, true), contactMs: Number(v.getBigUint64(8, true)) };
}

test("one worker VM per process polls; each new snapshot is delivered to every VM and the next poll asks for a newer one", () => {
  const companion = new FakeCompanion();
  const h = new PickerHost({
    concurrency: 4,
    httpCallHandler: companion.handler,
    config: { fetchSnapshots: true, shareWithGateways: false, apiToken: "s3cret" },
  });
  h.advance(25);
  // Writing the absent lease key cannot be a compare-and-swap (in Envoy every worker may do it at once):
  // it only claims; the claimer leads after renewing with a real CAS on its next tick.
  assert.equal(companion.calls.length, 0, "a claim of the absent lease is not leadership yet");
  h.advance(275);
  assert.equal(companion.calls.length, 1, "exactly one fetcher");
  const first = companion.calls[0];
  assert.equal(companion.path(first), "/v1/snapshot");
  assert.deepEqual(
    first.headers.find(([k]) => k === "authorization"),
    ["authorization", "Bearer s3cret"],
  );
  assert.equal(first.timeoutMs, 2500);
  companion.answer({ headers: [[":status", "200"]], body: blob(1000n, [A]) });
  assert.equal(meta(h)?.version, 1000n);
  assert.equal(companion.pending.length, 1, "the next long poll goes out at once");
  assert.equal(companion.path(companion.pending[0]), "/v1/snapshot?after=1000");
  for (let w = 0; w < 4; w++) assert.equal(h.pick({ worker: w, body: completion("m", "x") }).dest, A);
  h.advance(40);
  companion.answer({ headers: [[":status", "200"]], body: blob(1001n, [B]) });
  for (let w = 0; w < 4; w++) assert.equal(h.pick({ worker: w, body: completion("m", "x") }).dest, B);
  assert.equal(h.counter("endpoint_picker.fetch.ok"), 2);
});

test("304 keeps the snapshot fresh; errors and corrupt snapshots keep the last good one and back off", () => {
  const companion = new FakeCompanion();
  const h = new PickerHost({
    httpCallHandler: companion.handler,
    config: { fetchSnapshots: true, shareWithGateways: false, stalenessLimitMs: 5000 },
  });
  h.advance(100);
  companion.answer({ headers: [[":status", "200"]], body: blob(7n, [A]) });
  h.advance(1000); // the companion's heartbeat: a 304 every --long-poll-timeout (1 s)
  companion.answer({ headers: [[":status", "304"]] });
  assert.equal(meta(h)?.contactMs, h.nowMs, "contact recorded without a new version");
  h.advance(2000); // 2 s after the last contact, the next poll still within pollTimeoutMs: fresh
  assert.equal(h.pick({ body: completion("m", "x") }).dest, A);

  const corrupt = blob(8n, [B]);
  corrupt[corrupt.length - 1] ^= 0xff;
  companion.answer({ headers: [[":status", "200"]], body: corrupt });
  assert.equal(meta(h)?.version, 7n, "a corrupt snapshot is never written");
  assert.ok(h.logs.some((l) => /does not decode: checksum mismatch/.test(l)));
  assert.equal(companion.pending.length, 0, "backing off");
  h.advance(100);
  companion.answer({ failure: "reset" });
  h.advance(100);
  assert.equal(companion.pending.length, 0, "the backoff doubled");
  h.advance(100);
  companion.answer({ headers: [[":status", "503"]], body: "no healthy upstream" });
  h.advance(300);
  assert.equal(companion.pending.length, 0);
  h.advance(200);
  assert.equal(companion.pending.length, 1, "retried after 400 ms");
  assert.equal(h.pick({ body: completion("m", "x") }).dest, A, "the last good snapshot still serves");
  assert.equal(h.counter("endpoint_picker.fetch.error"), 3);
  assert.equal(
    h.logs.filter((l) => /retrying with backoff/.test(l)).length,
    1,
    "one warning per outage, not per retry",
  );
});

test("a companion that stays away makes the snapshot stale after stalenessLimitMs (FailClose: 503)", () => {
  const companion = new FakeCompanion();
  const h = new PickerHost({
    httpCallHandler: companion.handler,
    config: { fetchSnapshots: true, shareWithGateways: false, stalenessLimitMs: 2000 },
  });
  h.advance(100);
  companion.answer({ headers: [[":status", "200"]], body: blob(1n, [A]) });
  for (let t = 0; t < 25; t++) {
    h.advance(100);
    if (companion.pending.length) companion.answer({ failure: "reset" });
  }
  const s = h.send({ body: completion("m", "x") });
  assert.equal(s.localReply?.status, 503);
});

test("a fetcher whose VM dies is replaced once its lease expires", () => {
  const companion = new FakeCompanion();
  const h = new PickerHost({
    concurrency: 3,
    httpCallHandler: companion.handler,
    config: { fetchSnapshots: true, shareWithGateways: false },
  });
  h.advance(100);
  const leader = companion.calls[0].worker;
  companion.answer({ headers: [[":status", "200"]], body: blob(1n, [A]) });
  h.advance(100); // the next long poll is out (polls start >= 20 ms apart)
  const before = companion.calls.length;
  assert.equal(companion.calls[before - 1].worker, leader);
  h.host.workers[leader].failed = true; // its VM stops (as after a trap): no more ticks, no more polls
  h.advance(500);
  assert.equal(companion.calls.length, before, "the lease has not expired yet");
  h.advance(700);
  assert.equal(companion.calls.length, before + 1, "another worker took over");
  const next = companion.calls[before];
  assert.notEqual(next.worker, leader);
  assert.equal(companion.path(next), "/v1/snapshot?after=1");
});

test("a companion answer over maxSnapshotBytes is refused unread: a clear log line, the last snapshot stays, memory does not grow", () => {
  const companion = new FakeCompanion();
  const h = new PickerHost({
    httpCallHandler: companion.handler,
    config: { fetchSnapshots: true, shareWithGateways: false, maxSnapshotBytes: 65536 },
  });
  h.advance(100);
  companion.answer({ headers: [[":status", "200"]], body: blob(1n, [A]) });
  h.pick({ body: completion("m", "warm up") });
  const pages = h.host.memoryPages();
  h.advance(100);
  // 64 MB of garbage: refused by its size before any byte is copied into the VM.
  companion.answer({ headers: [[":status", "200"]], body: new Uint8Array(64 * 1024 * 1024) });
  assert.ok(
    h.logs.some((l) => /sent a snapshot of 67108864 bytes, over maxSnapshotBytes 65536/.test(l)),
    h.logs.join("\n"),
  );
  assert.equal(meta(h)?.version, 1n);
  assert.equal(h.pick({ body: completion("m", "x") }).dest, A, "the last good snapshot still serves");
  // A copy would take 1,024 pages of 64 KiB.
  h.host.memoryPages().forEach((n, w) => assert.ok(n - pages[w] < 64, `worker ${w}: ${pages[w]} -> ${n} pages`));
});
