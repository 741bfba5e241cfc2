// llm-d-router's plugins the filter runs: load-aware-scorer, no-hit-lru-scorer, probabilistic-admitter,
// encode-filter, and prefix-cache-scorer's match-length term. Each changes the picks as llm-d-router's
// formula says, and an entry without its parameters is left out with the reason.
import { decodeSnapshot, Snapshot, POD_ROLE_ENCODE, POD_ROLE_PREFILL, POD_ROLE_DECODE } from "../../filter/snapshot";
import { InFlight } from "../../filter/inflight";
import { Decision, OUTCOME_PICKED, OUTCOME_DENIED } from "../../filter/scoring/decision";
import { RequestFacts } from "../../filter/scoring/plugin";
import { ProbabilisticAdmitter } from "../../filter/scoring/probabilistic-admitter";
import { resetColdPicks } from "../../filter/scoring/no-hit-lru-scorer";
import { lengthCredit } from "../../filter/scoring/prefix-cache-scorer";
import { seedRandom } from "../../filter/rng";
import { buildBlobWith, BlobWriter, TestEndpoint, TestEntry, TestProfile, sealBlob } from "./blob";

/** A profile of nothing but `extra` (and max-score, the detector at queue 5 / kv 0.8). */
function only(extra: TestEntry[]): TestProfile {
  const p = new TestProfile();
  p.queue = 0;
  p.kv = 0;
  p.prefix = 0;
  p.lora = 0;
  p.extra = extra;
  return p;
}

function ep(address: string, queued: u32, kv: f32 = 0): TestEndpoint {
  return new TestEndpoint(address, 4 | 8 | 16, queued, kv);
}

function flight(s: Snapshot): InFlight {
  const f = new InFlight();
  f.rebase(s);
  return f;
}

function snapshot(eps: TestEndpoint[], p: TestProfile): Snapshot {
  return decodeSnapshot(buildBlobWith(1, eps, p))!;
}

function lruSnapshot(n: i32): Snapshot {
  const eps = new Array<TestEndpoint>();
  for (let i = 0; i < n; i++) eps.push(ep("10.0.0." + (i + 1).toString() + ":1", 0));
  return snapshot(eps, only([new TestEntry(2, "no-hit-lru-scorer", 1).param("lruSize", 16)]));
}

function admitter(power: f64 = 5, k: f64 = 300): TestEntry {
  return new TestEntry(5, "probabilistic-admitter")
    .param("queueDepthThreshold", 5)
    .param("kvCacheUtilThreshold", 0.8)
    .param("power", power)
    .param("k", k);
}

function low(): RequestFacts {
  const f = new RequestFacts();
  f.negativePriority = true;
  return f;
}

describe("load-aware-scorer", () => {
  it("0.5 with an empty queue, falling linearly to 0 at threshold waiting requests", () => {
    const s = snapshot(
      [ep("10.0.0.1:1", 0), ep("10.0.0.2:1", 4), ep("10.0.0.3:1", 8), ep("10.0.0.4:1", 20)],
      only([new TestEntry(2, "load-aware-scorer", 2).param("threshold", 8)]),
    );
    expect(s.profile.problems.length).toBe(0);
    const d = new Decision();
    expect(d.decide(s, s.profile, flight(s), new RequestFacts())).toBe(OUTCOME_PICKED);
    expect(d.scores[0]).toBeCloseTo(1.0); // weight 2 x 0.5
    expect(d.scores[1]).toBeCloseTo(0.5); // 2 x 0.5 x (1 - 4/8)
    expect(d.scores[2]).toBeCloseTo(0.0);
    expect(d.scores[3]).toBeCloseTo(0.0); // beyond the threshold: 0, never negative
    expect(d.primary).toBe(0);
  });

  it("counts the proxy's own requests beyond what the endpoint runs as waiting", () => {
    const s = snapshot(
      [ep("10.0.0.1:1", 0), ep("10.0.0.2:1", 0)],
      only([new TestEntry(2, "load-aware-scorer", 1).param("threshold", 4)]),
    );
    const f = flight(s);
    f.local[0] = 2; // running 0 reported: both wait
    const d = new Decision();
    d.decide(s, s.profile, f, new RequestFacts());
    expect(d.scores[0]).toBeCloseTo(0.25);
    expect(d.primary).toBe(1);
  });

  it("without threshold the entry is left out with the reason", () => {
    const s = snapshot([ep("10.0.0.1:1", 0)], only([new TestEntry(2, "load-aware-scorer", 1)]));
    expect(s.profile.problems[0]).toBe("load-aware-scorer: threshold missing or below 1 (left out)");
    expect(s.profile.requestScorers.length).toBe(0);
  });
});

describe("no-hit-lru-scorer", () => {
  beforeEach(() => {
    resetColdPicks();
    seedRandom(5, 1);
  });

  it("cold requests go round the endpoints: never used first, then the least recently used", () => {
    const s = lruSnapshot(4);
    const d = new Decision();
    const f = flight(s);
    const order = new Array<i32>();
    for (let k = 0; k < 8; k++) {
      expect(d.decide(s, s.profile, f, new RequestFacts())).toBe(OUTCOME_PICKED);
      order.push(d.primary);
    }
    // Never used first in candidate order, then the least recent (the first picked) again.
    expect(order.toString()).toBe("0,1,2,3,0,1,2,3");
  });

  it("scores: never used 1, 2/3, ... in candidate order; used by recency after them", () => {
    const s = lruSnapshot(4);
    const d = new Decision();
    const f = flight(s);
    d.decide(s, s.profile, f, new RequestFacts()); // 0 becomes used
    d.decide(s, s.profile, f, new RequestFacts()); // 1 too, after 0
    expect(d.decide(s, s.profile, f, new RequestFacts())).toBe(OUTCOME_PICKED);
    // This third request saw: 2 and 3 never used (1, 2/3), then 0 (rank 2: 1/3) and 1 (rank 3: 0).
    expect(d.scores[2]).toBeCloseTo(1.0);
    expect(d.scores[3]).toBeCloseTo(2.0 / 3.0);
    expect(d.scores[0]).toBeCloseTo(1.0 / 3.0);
    expect(d.scores[1]).toBeCloseTo(0.0);
  });

  it("a request that hits somewhere scores 0.5 everywhere and moves nothing", () => {
    const s = lruSnapshot(3);
    const d = new Decision();
    const f = flight(s);
    const hit = new RequestFacts();
    hit.chainBlocks = 4;
    hit.matched = new StaticArray<i32>(3);
    hit.matched[2] = 1;
    d.decide(s, s.profile, f, hit);
    expect(d.scores[0]).toBeCloseTo(0.5);
    expect(d.scores[2]).toBeCloseTo(0.5);
    // Nothing was recorded: the next cold request still starts with the first never-used endpoint.
    d.decide(s, s.profile, f, new RequestFacts());
    expect(d.primary).toBe(0);
    expect(d.scores[0]).toBeCloseTo(1.0);
  });

  it("one candidate scores 1; without lruSize the entry is left out", () => {
    const one = lruSnapshot(1);
    const d = new Decision();
    d.decide(one, one.profile, flight(one), new RequestFacts());
    expect(d.scores[0]).toBeCloseTo(1.0);
    const s = snapshot([ep("10.0.0.1:1", 0)], only([new TestEntry(2, "no-hit-lru-scorer", 1)]));
    expect(s.profile.problems[0]).toBe("no-hit-lru-scorer: lruSize missing or below 1 (left out)");
  });

  it("keeps only lruSize endpoints: the least recent is forgotten and counts as never used", () => {
    const eps = [ep("10.0.0.1:1", 0), ep("10.0.0.2:1", 0), ep("10.0.0.3:1", 0)];
    const s = snapshot(eps, only([new TestEntry(2, "no-hit-lru-scorer", 1).param("lruSize", 2)]));
    const d = new Decision();
    const f = flight(s);
    for (let k = 0; k < 3; k++) d.decide(s, s.profile, f, new RequestFacts()); // 0, 1, 2: 0 forgotten
    d.decide(s, s.profile, f, new RequestFacts());
    expect(d.primary).toBe(0);
    expect(d.scores[0]).toBeCloseTo(1.0); // never used again
    expect(d.scores[1]).toBeCloseTo(0.5); // rank 1 of 3 candidates
    expect(d.scores[2]).toBeCloseTo(0.0);
  });
});

describe("probabilistic-admitter", () => {
  beforeEach(() => {
    seedRandom(11, 1);
  });

  it("saturation: the candidates' mean of max(waiting / queue, kv / kv threshold), stale endpoints 1", () => {
    const stale = new TestEndpoint("10.0.0.3:1", 1, 0, 0);
    const s = snapshot([ep("10.0.0.1:1", 5, 0.2), ep("10.0.0.2:1", 0, 0.4), stale], only([admitter()]));
    expect(s.profile.admitters.length).toBe(1);
    const d = new Decision();
    d.decide(s, s.profile, flight(s), new RequestFacts()); // fills the decision's load view
    const a = <ProbabilisticAdmitter>s.profile.admitters[0];
    // (max(1, 0.25) + max(0, 0.5) + 1) / 3
    expect(a.saturation(d)).toBeCloseTo(2.5 / 3.0);
    expect(a.refusal(d)).toBe(1.0);
  });

  it("the refusal probability is min(saturation^power x k, 1)", () => {
    const s = snapshot([ep("10.0.0.1:1", 1), ep("10.0.0.2:1", 0)], only([admitter(2, 10)]));
    const d = new Decision();
    d.decide(s, s.profile, flight(s), new RequestFacts());
    const a = <ProbabilisticAdmitter>s.profile.admitters[0];
    expect(a.saturation(d)).toBeCloseTo(0.1);
    expect(a.refusal(d)).toBeCloseTo(0.1); // 0.01 x 10
  });

  it("refuses requests of negative priority under saturation; never the others; admits all when idle", () => {
    const busy = snapshot([ep("10.0.0.1:1", 4, 0.5), ep("10.0.0.2:1", 4, 0.5)], only([admitter()]));
    const d = new Decision();
    // Saturation 0.8: 0.8^5 x 300 > 1, every such request refused (the detector at 5 is not reached).
    for (let k = 0; k < 20; k++) expect(d.decide(busy, busy.profile, flight(busy), low())).toBe(OUTCOME_DENIED);
    expect(d.decide(busy, busy.profile, flight(busy), new RequestFacts())).toBe(OUTCOME_PICKED);
    const idle = snapshot([ep("10.0.0.1:1", 0), ep("10.0.0.2:1", 0)], only([admitter()]));
    for (let k = 0; k < 20; k++) expect(d.decide(idle, idle.profile, flight(idle), low())).toBe(OUTCOME_PICKED);
  });

  it("draws: about the refusal probability of such requests is refused", () => {
    // Saturation (1/5 + 0.24/0.8) / 2 = 0.25, with power 1 and k 2: half refused.
    const s = snapshot([ep("10.0.0.1:1", 1, 0), ep("10.0.0.2:1", 0, 0.24)], only([admitter(1, 2)]));
    const d = new Decision();
    d.decide(s, s.profile, flight(s), new RequestFacts());
    expect((<ProbabilisticAdmitter>s.profile.admitters[0]).refusal(d)).toBeCloseTo(0.5);
    let refused = 0;
    for (let k = 0; k < 400; k++) if (d.decide(s, s.profile, flight(s), low()) == OUTCOME_DENIED) refused++;
    expect(refused).toBeGreaterThan(160);
    expect(refused).toBeLessThan(240);
  });

  it("an entry without its parameters is left out with the reason", () => {
    const s = snapshot(
      [ep("10.0.0.1:1", 0)],
      only([new TestEntry(5, "probabilistic-admitter").param("queueDepthThreshold", 5)]),
    );
    expect(s.profile.admitters.length).toBe(0);
    expect(s.profile.problems[0]).toBe(
      "probabilistic-admitter: kvCacheUtilThreshold missing or not above 0 (left out)",
    );
  });
});

describe("encode-filter", () => {
  it("keeps encode-capable pods only: encode, encode-prefill, encode-prefill-decode", () => {
    const L: u8 = 0x80;
    const roles: u8[] = [
      L | POD_ROLE_ENCODE,
      L | POD_ROLE_ENCODE | POD_ROLE_PREFILL,
      L | POD_ROLE_ENCODE | POD_ROLE_PREFILL | POD_ROLE_DECODE,
      L | POD_ROLE_DECODE,
      0,
    ];
    const eps = new Array<TestEndpoint>();
    for (let i = 0; i < roles.length; i++) eps.push(ep("10.0.0." + (i + 1).toString() + ":1", 0));
    const blob = Uint8Array.wrap(buildBlobWith(1, eps, only([new TestEntry(1, "encode-filter")])));
    const w = new BlobWriter();
    w.u16(7);
    const at = w.start();
    w.u32(roles.length);
    for (let k = 0; k < roles.length; k++) w.u8(roles[k]);
    w.end(at);
    const out = new Uint8Array(blob.length + w.bytes.length);
    for (let i = 0; i < blob.length; i++) out[i] = blob[i];
    for (let i = 0; i < w.bytes.length; i++) out[blob.length + i] = w.bytes[i];
    const s = decodeSnapshot(sealBlob(out))!;
    const d = new Decision();
    seedRandom(3, 1);
    const seen = new Set<i32>();
    for (let k = 0; k < 60; k++) {
      expect(d.decide(s, s.profile, flight(s), new RequestFacts())).toBe(OUTCOME_PICKED);
      seen.add(d.primary);
    }
    expect(seen.size).toBe(3);
    expect(seen.has(3)).toBe(false);
    expect(seen.has(4)).toBe(false);
  });
});

describe("prefix-cache-scorer's match-length term", () => {
  it("w x min(1, matched characters / scale)^2 + (1 - w) x matched / blocks, times the weight", () => {
    // 2 of 8 blocks of 64 characters against a 256-character scale: length (128/256)^2 = 0.25, share 0.25.
    expect(lengthCredit(3, 0.5, 64.0 / 256.0, 2, 8)).toBeCloseTo(3 * (0.5 * 0.25 + 0.5 * 0.25));
    expect(lengthCredit(3, 1.0, 64.0 / 256.0, 8, 8)).toBeCloseTo(3); // capped at 1
  });

  it("with weight 1 on a short scale, a long match is full credit: the decision's scores follow", () => {
    const p = only([]);
    p.prefix = 2;
    p.extra = [];
    const s0 = snapshot([ep("10.0.0.1:1", 0), ep("10.0.0.2:1", 0)], p);
    const facts = new RequestFacts();
    facts.chainBlocks = 8;
    facts.matched = new StaticArray<i32>(2);
    facts.matched[0] = 2;
    facts.matched[1] = 4;
    const d = new Decision();
    d.decide(s0, s0.profile, flight(s0), facts);
    expect(d.scores[0]).toBeCloseTo(0.5); // plain share: 2 x 2/8
    expect(d.scores[1]).toBeCloseTo(1.0);
    // The same profile with matchLengthWeight 1 and a 256-character scale: 2 blocks = 128 chars -> 0.25.
    const blob = buildBlobWith(2, [ep("10.0.0.1:1", 0), ep("10.0.0.2:1", 0)], withLength(p, 1.0, 256));
    const s1 = decodeSnapshot(blob)!;
    expect(s1.profile.prefixLengthWeight).toBe(1.0);
    d.decide(s1, s1.profile, flight(s1), facts);
    expect(d.scores[0]).toBeCloseTo(2 * 0.25);
    expect(d.scores[1]).toBeCloseTo(2 * 1.0); // 256 characters: the whole scale
  });
});

/** The profile with its prefix-cache-scorer entry carrying the match-length parameters. */
function withLength(p: TestProfile, w: f64, scaleChars: f64): TestProfile {
  const q = only([]);
  q.extra = [
    new TestEntry(2, "prefix-cache-scorer", p.prefix)
      .param("blockSizeChars", 64)
      .param("maxPrefixBlocksToMatch", 256)
      .param("lruCapacityPerServer", 1000)
      .param("matchLengthWeight", w)
      .param("matchLengthScaleChars", scaleChars),
  ];
  return q;
}
