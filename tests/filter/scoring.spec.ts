import { decodeSnapshot, Snapshot } from "../../filter/snapshot";
import { InFlight } from "../../filter/inflight";
import { Decision, OUTCOME_PICKED, OUTCOME_SHED, OUTCOME_NO_ENDPOINT } from "../../filter/scoring/decision";
import { RequestFacts } from "../../filter/scoring/plugin";
import { loraScore } from "../../filter/scoring/lora-affinity-scorer";

const PICKER_RANDOM: u8 = 1,
  PICKER_WEIGHTED_RANDOM: u8 = 2;
import { fnv1a32 } from "../../filter/hash";
import { seedRandom } from "../../filter/rng";
import { buildBlobWith, TestEndpoint, TestProfile } from "./blob";

const STALE: u8 = 1,
  ERROR: u8 = 2,
  Q: u8 = 4,
  R: u8 = 8,
  KV: u8 = 16,
  LORA: u8 = 32,
  UNREACHABLE: u8 = 64;

function ep(address: string, queued: u32, kv: f32, flags: u8 = Q | R | KV): TestEndpoint {
  return new TestEndpoint(address, flags, queued, kv);
}

/** A profile with just these weights and saturation out of the way (scorer tests). */
function only(p: TestProfile, queue: f32, kv: f32, prefix: f32, lora: f32, running: f32): TestProfile {
  p.queue = queue;
  p.kv = kv;
  p.prefix = prefix;
  p.lora = lora;
  p.running = running;
  p.satQueue = 1e9;
  p.satKv = 2;
  return p;
}

function snapOf(eps: TestEndpoint[], p: TestProfile = new TestProfile()): Snapshot {
  return decodeSnapshot(buildBlobWith(1, eps, p))!;
}

function flight(s: Snapshot): InFlight {
  const f = new InFlight();
  f.rebase(s);
  return f;
}

function modelFacts(name: string): RequestFacts {
  const f = new RequestFacts();
  const b = String.UTF8.encode(name);
  f.modelPtr = changetype<usize>(b);
  f.modelLen = b.byteLength;
  f.modelHash = fnv1a32(f.modelPtr, f.modelLen);
  keep = b;
  return f;
}
let keep: ArrayBuffer = new ArrayBuffer(0); // keeps the model bytes alive while a spec uses them

describe("scorers", () => {
  beforeEach(() => {
    seedRandom(42, 1);
  });

  it("queue-scorer: falls from 1 over the spread of loads, never over less than 4 requests; equal loads all score 1", () => {
    const s = snapOf(
      [ep("10.0.0.1:1", 0, 0), ep("10.0.0.2:1", 4, 0), ep("10.0.0.3:1", 2, 0)],
      only(new TestProfile(), 1, 0, 0, 0, 0),
    );
    const sc = new Decision();
    const f = flight(s);
    for (let k = 0; k < 16; k++) f.started(1); // requests of ours in flight count in full
    for (let k = 0; k < 8; k++) f.started(2);
    expect(sc.decide(s, s.profile, f, new RequestFacts())).toBe(OUTCOME_PICKED);
    expect(sc.scores[0]).toBe(1.0);
    expect(sc.scores[1]).toBe(0.0);
    expect(sc.scores[2]).toBe(0.5);
    expect(sc.primary).toBe(0);
    // Scraped queues the proxy did not send count half (they may be another gateway's, or stale); a spread
    // of loads under 4 requests moves the score by spread / 4 only.
    const small = snapOf([ep("10.0.0.1:1", 0, 0), ep("10.0.0.2:1", 2, 0)], only(new TestProfile(), 1, 0, 0, 0, 0));
    sc.decide(small, small.profile, flight(small), new RequestFacts());
    expect(sc.scores[0]).toBe(1.0);
    expect(sc.scores[1]).toBe(0.75);
    const same = snapOf([ep("10.0.0.1:1", 3, 0), ep("10.0.0.2:1", 3, 0)], only(new TestProfile(), 1, 0, 0, 0, 0));
    sc.decide(same, same.profile, flight(same), new RequestFacts());
    expect(sc.scores[0]).toBe(1.0);
    expect(sc.scores[1]).toBe(1.0);
  });

  it("kv-cache-utilization-scorer: 1 - usage; an engine without the metric counts as half full", () => {
    const s = snapOf(
      [ep("10.0.0.1:1", 0, 0.25), ep("10.0.0.2:1", 0, 0.9), ep("10.0.0.3:1", 0, 0, Q | R)],
      only(new TestProfile(), 0, 1, 0, 0, 0),
    );
    const sc = new Decision();
    sc.decide(s, s.profile, flight(s), new RequestFacts());
    expect(sc.scores[0]).toBe(0.75);
    expect(sc.scores[1]).toBeCloseTo(0.1);
    expect(sc.scores[2]).toBe(0.5);
  });

  it("running-requests-size-scorer: fewer running requests score higher", () => {
    const a = ep("10.0.0.1:1", 0, 0),
      b = ep("10.0.0.2:1", 0, 0);
    a.running = 8;
    b.running = 2;
    const s = snapOf([a, b], only(new TestProfile(), 0, 0, 0, 0, 1));
    const sc = new Decision();
    sc.decide(s, s.profile, flight(s), new RequestFacts());
    expect(sc.scores[0]).toBe(0.0);
    expect(sc.scores[1]).toBe(1.0);
  });

  it("in-flight requests the metrics have not seen yet count as waiting", () => {
    const s = snapOf([ep("10.0.0.1:1", 0, 0), ep("10.0.0.2:1", 1, 0)], only(new TestProfile(), 1, 0, 0, 0, 0));
    const f = flight(s);
    for (let i = 0; i < 5; i++) f.started(0); // a burst sent to the idle-looking pod
    const sc = new Decision();
    sc.decide(s, s.profile, f, new RequestFacts());
    expect(sc.waiting[0]).toBe(5.0);
    expect(sc.primary).toBe(1);
  });

  it("prefix-cache-scorer: matched blocks over the request's blocks", () => {
    const s = snapOf([ep("10.0.0.1:1", 0, 0), ep("10.0.0.2:1", 0, 0)], only(new TestProfile(), 0, 0, 1, 0, 0));
    const facts = new RequestFacts();
    facts.chainBlocks = 8;
    facts.matched = new StaticArray<i32>(2);
    facts.matched[1] = 6;
    const sc = new Decision();
    sc.decide(s, s.profile, flight(s), facts);
    expect(sc.scores[0]).toBe(0.0);
    expect(sc.scores[1]).toBe(0.75);
    expect(sc.primary).toBe(1);
  });

  it("lora-affinity-scorer: active 1.0, free slot 0.8, waiting 0.6, full 0, no LoRA data 0.8", () => {
    const active = ep("10.0.0.1:1", 0, 0, Q | LORA);
    active.runningAdapters = ["sql-lora"];
    active.loraMax = 1;
    const free = ep("10.0.0.2:1", 0, 0, Q | LORA);
    free.runningAdapters = ["other"];
    free.loraMax = 2;
    const waiting = ep("10.0.0.3:1", 0, 0, Q | LORA);
    waiting.runningAdapters = ["other"];
    waiting.waitingAdapters = ["sql-lora"];
    waiting.loraMax = 2;
    const full = ep("10.0.0.4:1", 0, 0, Q | LORA);
    full.runningAdapters = ["a", "b"];
    full.loraMax = 2;
    const none = ep("10.0.0.5:1", 0, 0, Q);
    const s = snapOf([active, free, waiting, full, none], only(new TestProfile(), 0, 0, 0, 1, 0));
    const facts = modelFacts("sql-lora");
    expect(loraScore(s, 0, facts)).toBe(1.0);
    expect(loraScore(s, 1, facts)).toBe(0.8);
    expect(loraScore(s, 2, facts)).toBe(0.6);
    expect(loraScore(s, 3, facts)).toBe(0.0);
    expect(loraScore(s, 4, facts)).toBe(0.8);
    const sc = new Decision();
    sc.decide(s, s.profile, flight(s), facts);
    expect(sc.primary).toBe(0);
    expect(loraScore(s, 0, modelFacts("sql-loraX"))).toBe(0.0); // same prefix, other adapter: the slot is full
  });

  it("weights add up the scorers", () => {
    const s = snapOf([ep("10.0.0.1:1", 0, 0.5), ep("10.0.0.2:1", 2, 0.0)]); // queue 2, kv 2, prefix 3, lora 1
    const sc = new Decision();
    sc.decide(s, s.profile, flight(s), new RequestFacts());
    expect(sc.scores[0]).toBe(2.0 * 1 + 2.0 * 0.5);
    expect(sc.scores[1]).toBe(2.0 * 0.75 + 2.0 * 1);
  });
});

function loraEp(address: string, queued: u32, running: string[], max: u16): TestEndpoint {
  const e = ep(address, queued, 0, Q | LORA);
  e.runningAdapters = running;
  e.loraMax = max;
  return e;
}
/** Queue weight 2 and LoRA weight 1: by weights alone load would win. */
function loraProfile(): TestProfile {
  return only(new TestProfile(), 2, 0, 0, 1, 0);
}
function withAdapters(f: RequestFacts, s: Snapshot, inflight: InFlight): RequestFacts {
  f.adapters = inflight.adapters;
  return f;
}

describe("LoRA filters", () => {
  beforeEach(() => {
    seedRandom(11, 1);
  });

  it("an endpoint whose slots other adapters hold is no choice while another can load the adapter", () => {
    const full = loraEp("10.0.0.1:1", 0, ["a", "b"], 2);
    const roomy = loraEp("10.0.0.2:1", 3, ["x"], 2);
    const s = decodeSnapshot(buildBlobWith(1, [full, roomy], loraProfile(), ["base"]))!;
    const sc = new Decision();
    const f = flight(s);
    expect(sc.decide(s, s.profile, f, withAdapters(modelFacts("sql-lora"), s, f))).toBe(OUTCOME_PICKED);
    expect(sc.primary).toBe(1);
    expect(sc.scores[0]).toBe(-f64.MAX_VALUE);
    // The base model is no adapter: by load.
    expect(sc.decide(s, s.profile, f, withAdapters(modelFacts("base"), s, f))).toBe(OUTCOME_PICKED);
    expect(sc.primary).toBe(0);
  });

  it("without the pool's base models, only a name some endpoint lists is an adapter", () => {
    const full = loraEp("10.0.0.1:1", 0, ["a", "b"], 2);
    const roomy = loraEp("10.0.0.2:1", 3, ["x"], 2);
    const s = decodeSnapshot(buildBlobWith(1, [full, roomy], loraProfile()))!;
    expect(s.namesAdapter(fnv1a32(changetype<usize>(String.UTF8.encode("x")), 1))).toBe(true);
    const sc = new Decision();
    const f = flight(s);
    sc.decide(s, s.profile, f, withAdapters(modelFacts("sql-lora"), s, f));
    expect(sc.primary).toBe(0); // unknown name: by load
  });

  it("endpoints running the adapter come first while within a load slack of the least busy", () => {
    const running = loraEp("10.0.0.1:1", 0, ["sql-lora"], 4);
    const idle = loraEp("10.0.0.2:1", 0, [], 4);
    const s = decodeSnapshot(buildBlobWith(1, [running, idle], loraProfile(), ["base"]))!;
    const sc = new Decision();
    const f = flight(s);
    for (let k = 0; k < 8; k++) f.started(0); // 8 requests more than the idle one: within the slack
    sc.decide(s, s.profile, f, withAdapters(modelFacts("sql-lora"), s, f));
    expect(sc.primary).toBe(0);
    expect(sc.scores[1]).toBe(-f64.MAX_VALUE);
    for (let k = 0; k < 4; k++) f.started(0); // 12 more: beyond it, both compete on score
    sc.decide(s, s.profile, f, withAdapters(modelFacts("sql-lora"), s, f));
    expect(sc.primary).toBe(1);
    expect(sc.scores[0]).toBeGreaterThan(-1.0);
  });

  it("the proxy's own adapter requests in flight count before the metrics show them", () => {
    // adapter-1 is known (the busy third endpoint lists it waiting); no scrape shows it at endpoint 0 yet.
    const a = loraEp("10.0.0.1:1", 0, [], 1);
    const b = loraEp("10.0.0.2:1", 0, [], 1);
    const c = loraEp("10.0.0.3:1", 60, ["x"], 4);
    c.waitingAdapters = ["adapter-1"];
    const s = decodeSnapshot(buildBlobWith(1, [a, b, c], loraProfile(), ["base"]))!;
    const sc = new Decision();
    const f = flight(s);
    const one = modelFacts("adapter-1");
    f.started(0);
    f.adapters.started(0, one.modelHash);
    sc.decide(s, s.profile, f, withAdapters(one, s, f));
    expect(sc.primary).toBe(0); // running there: first, though endpoint 0 is busier
    const two = modelFacts("adapter-2");
    sc.decide(s, s.profile, f, withAdapters(two, s, f));
    expect(sc.primary).toBe(1); // endpoint 0's only slot is held by adapter-1
    expect(sc.scores[0]).toBe(-f64.MAX_VALUE);
    // Drained: the slot is free again.
    f.finished(s.addrHash[0]);
    f.adapters.finished(s.addrHash[0], one.modelHash);
    f.adapters.retouch();
    sc.decide(s, s.profile, f, withAdapters(two, s, f));
    expect(sc.scores[0]).toBeGreaterThan(-1.0);
  });

  it("a name no endpoint lists (an adapter not yet running, or a base-model alias) is not concentrated and holds no slot", () => {
    const a = loraEp("10.0.0.1:1", 0, [], 1);
    const b = loraEp("10.0.0.2:1", 0, [], 1);
    const s = decodeSnapshot(buildBlobWith(1, [a, b], loraProfile(), ["base"]))!;
    const sc = new Decision();
    const f = flight(s);
    const alias = modelFacts("base-alias");
    for (let k = 0; k < 3; k++) {
      f.started(0);
      f.adapters.started(0, alias.modelHash);
    }
    sc.decide(s, s.profile, f, withAdapters(alias, s, f));
    expect(sc.primary).toBe(1); // by load: not held on endpoint 0 by running-first
    sc.decide(s, s.profile, f, withAdapters(modelFacts("other"), s, f));
    expect(sc.scores[0]).toBeGreaterThan(-1.0); // the alias in flight at endpoint 0 holds no adapter slot there
  });

  it("an engine without max_lora: slots unknown, nobody excluded for want of one", () => {
    const running = loraEp("10.0.0.1:1", 0, ["x"], 0);
    const other = loraEp("10.0.0.2:1", 0, ["y"], 0);
    const s = decodeSnapshot(buildBlobWith(1, [running, other], loraProfile(), ["base"]))!;
    const facts = modelFacts("x");
    expect(loraScore(s, 0, facts)).toBe(1.0);
    expect(loraScore(s, 1, facts)).toBe(0.8);
    const sc = new Decision();
    const f = flight(s);
    for (let k = 0; k < 12; k++) f.started(0); // beyond the running-first slack: both compete
    sc.decide(s, s.profile, f, withAdapters(facts, s, f));
    expect(sc.primary).toBe(1);
  });

  it("random pickers never draw an excluded endpoint", () => {
    const full = loraEp("10.0.0.1:1", 0, ["a"], 1);
    const roomy = loraEp("10.0.0.2:1", 0, [], 1);
    const p = loraProfile();
    p.picker = PICKER_RANDOM;
    const s = decodeSnapshot(buildBlobWith(1, [full, roomy], p, ["base"]))!;
    const sc = new Decision();
    const f = flight(s);
    for (let k = 0; k < 50; k++) {
      sc.decide(s, s.profile, f, withAdapters(modelFacts("sql-lora"), s, f));
      expect(sc.primary).toBe(1);
    }
  });
});

describe("candidates, saturation and outcomes", () => {
  beforeEach(() => {
    seedRandom(7, 1);
  });

  it("keeps an endpoint whose metrics fail; an unreachable one only when nothing else is left", () => {
    // In error (its last metrics still fresh) it competes on them: the idle one wins.
    const s = snapOf([ep("10.0.0.1:1", 0, 0, Q | ERROR), ep("10.0.0.2:1", 9, 0.7)]);
    const sc = new Decision();
    expect(sc.decide(s, s.profile, flight(s), new RequestFacts())).toBe(OUTCOME_PICKED);
    expect(sc.primary).toBe(0);
    expect(sc.candidateCount).toBe(2);
    // Its metrics port refused the connection: never picked while another endpoint is there.
    const gone = snapOf([ep("10.0.0.1:1", 0, 0, Q | ERROR | UNREACHABLE), ep("10.0.0.2:1", 9, 0.7)]);
    for (let k = 0; k < 20; k++) {
      expect(sc.decide(gone, gone.profile, flight(gone), new RequestFacts())).toBe(OUTCOME_PICKED);
      expect(sc.primary).toBe(1);
    }
    const last = snapOf([ep("10.0.0.1:1", 0, 0, Q | ERROR | UNREACHABLE)]);
    expect(sc.decide(last, last.profile, flight(last), new RequestFacts())).toBe(OUTCOME_PICKED);
    const empty = snapOf([]);
    expect(sc.decide(empty, empty.profile, flight(empty), new RequestFacts())).toBe(OUTCOME_NO_ENDPOINT);
  });

  it("scores an endpoint with stale metrics by the proxy's own requests in flight", () => {
    // Its stale queue of 30 is ignored: with nothing in flight it is the least loaded.
    const s = snapOf([ep("10.0.0.1:1", 30, 0.9, Q | R | KV | STALE), ep("10.0.0.2:1", 4, 0.7)]);
    const sc = new Decision();
    const f = flight(s);
    sc.decide(s, s.profile, f, new RequestFacts());
    expect(sc.primary).toBe(0);
    for (let k = 0; k < 4; k++) f.started(0);
    sc.decide(s, s.profile, f, new RequestFacts());
    expect(sc.primary).toBe(1);
    const stale = snapOf([ep("10.0.0.1:1", 0, 0, Q | STALE)]);
    expect(sc.decide(stale, stale.profile, flight(stale), new RequestFacts())).toBe(OUTCOME_PICKED);
  });

  it("skips ejected endpoints, unless every candidate is ejected", () => {
    const s = snapOf([ep("10.0.0.1:1", 0, 0), ep("10.0.0.2:1", 6, 0), ep("10.0.0.3:1", 3, 0)]);
    const sc = new Decision();
    const ejected = new StaticArray<u8>(3);
    sc.decide(s, s.profile, flight(s), new RequestFacts(), ejected);
    expect(sc.primary).toBe(0);
    ejected[0] = 1;
    for (let k = 0; k < 10; k++) {
      sc.decide(s, s.profile, flight(s), new RequestFacts(), ejected);
      expect(sc.primary).toBe(2);
    }
    ejected[1] = 1;
    ejected[2] = 1;
    expect(sc.decide(s, s.profile, flight(s), new RequestFacts(), ejected)).toBe(OUTCOME_PICKED);
    expect(sc.candidateCount).toBe(3);
    // The next request without ejections sees every usable endpoint again.
    sc.decide(s, s.profile, flight(s), new RequestFacts());
    expect(sc.primary).toBe(0);
  });

  it("sheds a sheddable request only when every endpoint is saturated (queue >= 5 or kv >= 0.8)", () => {
    const sat = snapOf([ep("10.0.0.1:1", 5, 0), ep("10.0.0.2:1", 0, 0.85)]);
    const sc = new Decision();
    const shed = new RequestFacts();
    shed.sheddable = true;
    expect(sc.decide(sat, sat.profile, flight(sat), shed)).toBe(OUTCOME_SHED);
    expect(sc.decide(sat, sat.profile, flight(sat), new RequestFacts())).toBe(OUTCOME_PICKED);
    const one = snapOf([ep("10.0.0.1:1", 5, 0), ep("10.0.0.2:1", 4, 0.79)]);
    expect(sc.decide(one, one.profile, flight(one), shed)).toBe(OUTCOME_PICKED);
  });
});

describe("pickers", () => {
  it("max-score breaks ties at random, over all tied endpoints", () => {
    seedRandom(1, 1);
    const s = snapOf([ep("10.0.0.1:1", 0, 0), ep("10.0.0.2:1", 0, 0), ep("10.0.0.3:1", 0, 0), ep("10.0.0.4:1", 9, 0)]);
    const sc = new Decision();
    const seen = new StaticArray<i32>(4);
    for (let k = 0; k < 300; k++) {
      sc.decide(s, s.profile, flight(s), new RequestFacts());
      seen[sc.primary]++;
    }
    expect(seen[3]).toBe(0);
    for (let i = 0; i < 3; i++) expect(seen[i]).toBeGreaterThan(60);
  });

  it("random picks every candidate, weighted-random follows the scores", () => {
    seedRandom(2, 1);
    const p = only(new TestProfile(), 1, 0, 0, 0, 0);
    p.picker = PICKER_RANDOM;
    const s = snapOf([ep("10.0.0.1:1", 0, 0), ep("10.0.0.2:1", 10, 0)], p);
    const sc = new Decision();
    let second = 0;
    for (let k = 0; k < 400; k++) {
      sc.decide(s, s.profile, flight(s), new RequestFacts());
      if (sc.primary == 1) second++;
    }
    expect(second).toBeGreaterThan(150);
    expect(second).toBeLessThan(250);
    p.picker = PICKER_WEIGHTED_RANDOM;
    const w = snapOf([ep("10.0.0.1:1", 0, 0), ep("10.0.0.2:1", 10, 0), ep("10.0.0.3:1", 5, 0)], p); // scores 1, 0, 0.5
    const seen = new StaticArray<i32>(3);
    for (let k = 0; k < 600; k++) {
      sc.decide(w, w.profile, flight(w), new RequestFacts());
      seen[sc.primary]++;
    }
    expect(seen[1]).toBe(0);
    expect(seen[0]).toBeGreaterThan(seen[2]);
    expect(seen[2]).toBeGreaterThan(100);
  });

  it("lists the next best endpoints as fallbacks, best first", () => {
    seedRandom(3, 1);
    const p = only(new TestProfile(), 1, 0, 0, 0, 0);
    p.fallbacks = 2;
    const s = snapOf(
      [ep("10.0.0.1:1", 8, 0), ep("10.0.0.2:1", 0, 0), ep("10.0.0.3:1", 4, 0), ep("10.0.0.4:1", 2, 0, Q | UNREACHABLE)],
      p,
    );
    const sc = new Decision();
    sc.decide(s, s.profile, flight(s), new RequestFacts());
    expect(sc.primary).toBe(1);
    expect(sc.fallbacks.length).toBe(2);
    expect(sc.fallbacks[0]).toBe(2);
    expect(sc.fallbacks[1]).toBe(0);
  });
});
