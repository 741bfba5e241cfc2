// A scorer from outside the filter's own list, registered with one line and named by a snapshot's profile
// entry, changes the picks; before its registration the same entry is left out as an unknown type.
import { decodeSnapshot } from "../../filter/snapshot";
import { InFlight } from "../../filter/inflight";
import { Decision, OUTCOME_PICKED } from "../../filter/scoring/decision";
import { RequestFacts, ProfilePlugin, ROLE_SCORER } from "../../filter/scoring/plugin";
import { register } from "../../filter/scoring/registry";
import { seedRandom } from "../../filter/rng";
import { buildBlobWith, TestEndpoint, TestProfile, TestEntry } from "./blob";
import { PinnedAddressScorer, FewestWaitingScorer } from "./example-scorers";

/** Three endpoints alike to GIE's default scorers (queue 2, kv 2), plus the `extra` entry. */
function picks(extra: TestEntry, queued: u32 = 0): Map<string, i32> {
  const p = new TestProfile();
  p.prefix = 0;
  p.lora = 0;
  p.extra = [extra];
  const eps = [
    new TestEndpoint("10.0.0.1:1", 4 | 8 | 16, queued, 0.2),
    new TestEndpoint("10.0.0.2:1", 4 | 8 | 16, 0, 0.2),
    new TestEndpoint("10.0.0.3:1", 4 | 8 | 16, 0, 0.2),
  ];
  const snap = decodeSnapshot(buildBlobWith(1, eps, p))!;
  const f = new InFlight();
  f.rebase(snap);
  const d = new Decision();
  const out = new Map<string, i32>();
  for (let k = 0; k < 60; k++) {
    expect(d.decide(snap, snap.profile, f, new RequestFacts())).toBe(OUTCOME_PICKED);
    const a = snap.address(d.primary);
    out.set(a, (out.has(a) ? out.get(a) : 0) + 1);
  }
  return out;
}

describe("adding a scorer", () => {
  beforeEach(() => {
    seedRandom(7, 1);
  });

  it("a snapshot-only scorer: unknown until registered, then its entry pins the pick", () => {
    const entry = new TestEntry(2, "pinned-address-scorer", 5).text("address", "10.0.0.3:1");
    const before = picks(entry);
    expect(before.size).toBe(3); // left out: ties between three equal endpoints are broken at random
    register(ROLE_SCORER, "pinned-address-scorer", (): ProfilePlugin => new PinnedAddressScorer());
    const after = picks(entry);
    expect(after.size).toBe(1);
    expect(after.get("10.0.0.3:1")).toBe(60);
  });

  it("a per-request scorer reads the decision's load view and changes picks", () => {
    // 10.0.0.1 waits 1 request: the queue-scorer alone (weight 2 over a span of at least 4) leaves the
    // other two ahead; the new scorer at weight 3 adds to them only, so 10.0.0.1 is never picked either way,
    // and with a second queued endpoint it decides between the remaining two.
    const entry = new TestEntry(2, "fewest-waiting-scorer", 3);
    register(ROLE_SCORER, "fewest-waiting-scorer", (): ProfilePlugin => new FewestWaitingScorer());
    const withIt = picks(entry, 1);
    expect(withIt.has("10.0.0.1:1")).toBe(false);
    const p = new TestProfile();
    p.prefix = 0;
    p.lora = 0;
    p.queue = 0.01; // load barely counts: only the new scorer separates them
    p.extra = [entry];
    const eps = [
      new TestEndpoint("10.0.0.1:1", 4 | 8 | 16, 3, 0.2),
      new TestEndpoint("10.0.0.2:1", 4 | 8 | 16, 0, 0.2),
    ];
    const snap = decodeSnapshot(buildBlobWith(2, eps, p))!;
    const f = new InFlight();
    f.rebase(snap);
    const d = new Decision();
    d.decide(snap, snap.profile, f, new RequestFacts());
    expect(d.scores[1] - d.scores[0]).toBeGreaterThan(2.9); // the new scorer's weight, on the one not waiting
    expect(d.primary).toBe(1);
  });

  it("a scorer whose parameters are missing is left out with the reason", () => {
    register(ROLE_SCORER, "pinned-address-scorer", (): ProfilePlugin => new PinnedAddressScorer());
    const p = new TestProfile();
    p.extra = [new TestEntry(2, "pinned-address-scorer", 5)];
    const snap = decodeSnapshot(buildBlobWith(1, [new TestEndpoint("10.0.0.1:1")], p))!;
    expect(snap.profile.problems.length).toBe(1);
    expect(snap.profile.problems[0]).toBe("pinned-address-scorer: address missing (left out)");
    expect(snap.profile.snapshotScorers.length).toBe(1); // the kv-cache-utilization-scorer only
  });
});
