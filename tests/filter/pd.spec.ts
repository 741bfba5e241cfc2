// Prefill/decode disaggregation in the filter: the snapshot's roles (section 7) and P/D stage (section 8),
// the role filters, the prefix-based decider and the prefill pick with its stage-aware saturation.
import { decodeSnapshot, Snapshot, POD_ROLE_PREFILL, POD_ROLE_DECODE } from "../../filter/snapshot";
import { InFlight } from "../../filter/inflight";
import { Decision, OUTCOME_PICKED, OUTCOME_NO_ENDPOINT } from "../../filter/scoring/decision";
import { RequestFacts } from "../../filter/scoring/plugin";
import { PdConfig, wantsPrefill, pickPrefill, DECIDER_PREFIX, DECIDER_ALWAYS, DECIDER_NONE } from "../../filter/pd";
import { seedRandom } from "../../filter/rng";
import { buildBlobWith, BlobWriter, TestEndpoint, TestEntry, TestProfile, writeEntries, sealBlob } from "./blob";

const LABELED: u8 = 0x80;
const PREFILL: u8 = LABELED | POD_ROLE_PREFILL;
const DECODE: u8 = LABELED | POD_ROLE_DECODE;
const BOTH: u8 = LABELED | POD_ROLE_PREFILL | POD_ROLE_DECODE;

function ep(address: string, queued: u32): TestEndpoint {
  return new TestEndpoint(address, 4 | 8 | 16, queued, 0);
}

/** A stage profile: its role filter, the queue scorer, max-score, the utilization detector (queue 5). */
function stage(filter: string): TestProfile {
  const p = new TestProfile();
  p.kv = 0;
  p.prefix = 0;
  p.lora = 0;
  if (filter.length > 0) p.extra.push(new TestEntry(1, filter));
  return p;
}

/** Appends sections to a blob and fixes its size and checksum. */
function withSections(blob: ArrayBuffer, extra: BlobWriter): ArrayBuffer {
  const src = Uint8Array.wrap(blob);
  const out = new Uint8Array(src.length + extra.bytes.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i];
  for (let i = 0; i < extra.bytes.length; i++) out[src.length + i] = extra.bytes[i];
  return sealBlob(out);
}

function rolesSection(w: BlobWriter, roles: u8[]): void {
  w.u16(7);
  const at = w.start();
  w.u32(roles.length);
  for (let k = 0; k < roles.length; k++) w.u8(roles[k]);
  w.end(at);
}

function pdSection(w: BlobWriter, decider: u8, nonCached: u32, promptTokens: u32, prefill: TestProfile): void {
  w.u16(8);
  const at = w.start();
  w.u8(decider).u32(nonCached).u32(promptTokens).u16(4);
  writeEntries(w, prefill.entries());
  w.end(at);
}

/** Endpoints .1 prefill (idle), .2 decode (queue 2), .3 decode (queue 3), .4 unlabeled (queue 4). */
function pdSnapshot(prefillQueue: u32 = 0, decider: u8 = DECIDER_PREFIX): Snapshot {
  const eps = [
    ep("10.0.0.1:8000", prefillQueue),
    ep("10.0.0.2:8000", 2),
    ep("10.0.0.3:8000", 3),
    ep("10.0.0.4:8000", 4),
  ];
  const w = new BlobWriter();
  rolesSection(w, [PREFILL, DECODE, DECODE, 0]);
  pdSection(w, decider, 100, 0, stage("prefill-filter"));
  return decodeSnapshot(withSections(buildBlobWith(1, eps, stage("decode-filter")), w))!;
}

function flight(s: Snapshot): InFlight {
  const f = new InFlight();
  f.rebase(s);
  return f;
}

function pd(decider: u8, nonCached: i64, promptTokens: i64): PdConfig {
  const c = new PdConfig();
  c.decider = decider;
  c.nonCachedTokens = nonCached;
  c.promptTokens = promptTokens;
  c.bytesPerToken = 4;
  return c;
}

describe("prefix-based-pd-decider", () => {
  it("prefills elsewhere when the uncached tokens reach nonCachedTokens", () => {
    const c = pd(DECIDER_PREFIX, 100, 0);
    expect(wantsPrefill(c, 400, 0)).toBe(true); // 100 tokens, none cached
    expect(wantsPrefill(c, 397, 0)).toBe(true); // 99.25 rounds up to 100
    expect(wantsPrefill(c, 396, 0)).toBe(false); // 99: short prompt
    expect(wantsPrefill(c, 800, 400)).toBe(true); // 200 - 100 cached = 100
    expect(wantsPrefill(c, 800, 404)).toBe(false); // 99 uncached: mostly cached on the decode pod
    expect(wantsPrefill(c, 800, 10000)).toBe(false); // a cache count past the prompt: no P/D
  });
  it("promptTokens is a minimum prompt; nonCachedTokens 0, no decider or no estimate never prefill; always does", () => {
    expect(wantsPrefill(pd(DECIDER_PREFIX, 100, 1000), 3996, 0)).toBe(false);
    expect(wantsPrefill(pd(DECIDER_PREFIX, 100, 1000), 4000, 0)).toBe(true);
    expect(wantsPrefill(pd(DECIDER_PREFIX, 0, 0), 1 << 20, 0)).toBe(false);
    expect(wantsPrefill(pd(DECIDER_NONE, 1, 0), 1 << 20, 0)).toBe(false);
    const noEstimate = pd(DECIDER_PREFIX, 1, 0);
    noEstimate.bytesPerToken = 0;
    expect(wantsPrefill(noEstimate, 1 << 20, 0)).toBe(false);
    expect(wantsPrefill(pd(DECIDER_ALWAYS, 0, 0), 0, 0)).toBe(true);
  });
});

describe("roles and stages", () => {
  beforeEach(() => {
    seedRandom(42, 1);
  });

  it("decodes sections 7 and 8: roles per endpoint, the decider and the prefill profile", () => {
    const s = pdSnapshot();
    expect(s.roleOf(0)).toBe(PREFILL);
    expect(s.roleOf(3)).toBe(0);
    expect(s.pd).not.toBeNull();
    const c = s.pd!;
    expect(c.decider).toBe(DECIDER_PREFIX);
    expect(c.nonCachedTokens).toBe(100);
    expect(c.bytesPerToken).toBe(4);
    expect(c.prefill.filters.length).toBe(1);
    expect(c.prefill.queueWeight).toBe(2);
    expect(s.profile.filters.length).toBe(1);
  });

  it("the decode pick never takes a prefill-only pod; unlabeled pods decode (llm-d's decode-filter)", () => {
    const s = pdSnapshot();
    const d = new Decision();
    expect(d.decide(s, s.profile, flight(s), new RequestFacts())).toBe(OUTCOME_PICKED);
    expect(d.primary).toBe(1); // .1 is idler but prefill-only
    expect(d.candidateCount).toBe(3);
  });

  it("the prefill pick takes prefill-capable pods only, under the prefill profile", () => {
    const s = pdSnapshot();
    const k = pickPrefill(new Decision(), s, s.pd!, flight(s), new RequestFacts(), null);
    expect(k).toBe(0);
  });

  it("a saturated prefill pool skips the stage (the decode pod prefills), and the request stays unsheddable", () => {
    const s = pdSnapshot(9); // queue 9 >= the detector's 5
    const facts = new RequestFacts();
    expect(pickPrefill(new Decision(), s, s.pd!, flight(s), facts, null)).toBe(-1);
    expect(facts.sheddable).toBe(false);
  });

  it("no prefill-capable pod: no prefill pick, no error", () => {
    const eps = [ep("10.0.0.2:8000", 2), ep("10.0.0.4:8000", 4)];
    const w = new BlobWriter();
    rolesSection(w, [DECODE, 0]);
    pdSection(w, DECIDER_PREFIX, 100, 0, stage("prefill-filter"));
    const s = decodeSnapshot(withSections(buildBlobWith(1, eps, stage("decode-filter")), w))!;
    expect(pickPrefill(new Decision(), s, s.pd!, flight(s), new RequestFacts(), null)).toBe(-1);
  });

  it("only prefill pods: the decode pick finds no endpoint (503, as llm-d's 'no decode workers')", () => {
    const eps = [ep("10.0.0.1:8000", 0)];
    const w = new BlobWriter();
    rolesSection(w, [PREFILL]);
    const s = decodeSnapshot(withSections(buildBlobWith(1, eps, stage("decode-filter")), w))!;
    expect(new Decision().decide(s, s.profile, flight(s), new RequestFacts())).toBe(OUTCOME_NO_ENDPOINT);
  });

  it("both (prefill-decode) pods pass both filters; a snapshot without roles keeps every pod for decode", () => {
    const eps = [ep("10.0.0.1:8000", 0), ep("10.0.0.2:8000", 1)];
    const w = new BlobWriter();
    rolesSection(w, [BOTH, DECODE]);
    pdSection(w, DECIDER_PREFIX, 100, 0, stage("prefill-filter"));
    const s = decodeSnapshot(withSections(buildBlobWith(1, eps, stage("decode-filter")), w))!;
    const d = new Decision();
    d.decide(s, s.profile, flight(s), new RequestFacts());
    expect(d.primary).toBe(0);
    expect(pickPrefill(new Decision(), s, s.pd!, flight(s), new RequestFacts(), null)).toBe(0);
    const old = decodeSnapshot(buildBlobWith(1, eps, stage("decode-filter")))!;
    expect(old.pd).toBeNull();
    const d2 = new Decision();
    d2.decide(old, old.profile, flight(old), new RequestFacts());
    expect(d2.candidateCount).toBe(2);
  });

  it("a role count that disagrees with the endpoints refuses the snapshot", () => {
    const w = new BlobWriter();
    rolesSection(w, [DECODE]);
    const eps = [ep("10.0.0.1:8000", 0), ep("10.0.0.2:8000", 1)];
    expect(decodeSnapshot(withSections(buildBlobWith(1, eps, stage("")), w))).toBeNull();
  });
});
