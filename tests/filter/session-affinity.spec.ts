// session-affinity-scorer: the pinned endpoint wins while it is a candidate and not saturated, loses its
// bonus when ejected or saturated; the token codec (ours, garbage, llm-d's namespace/name form); cookies;
// the session table's TTL, bound and the merge of other VMs' journals; agent-identity's entry.
import { decodeSnapshot, Snapshot } from "../../filter/snapshot";
import { InFlight } from "../../filter/inflight";
import { Decision, OUTCOME_PICKED } from "../../filter/scoring/decision";
import { RequestFacts } from "../../filter/scoring/plugin";
import {
  decodeToken,
  writeToken,
  cookieValue,
  sessionHash,
  TOKEN_BYTES,
} from "../../filter/scoring/session-affinity-scorer";
import { SessionTable } from "../../filter/session-table";
import { seedRandom } from "../../filter/rng";
import { fnv1a32 } from "../../filter/hash";
import { buildBlobWith, TestEndpoint, TestProfile, TestEntry } from "./blob";

function sessionEntry(weight: f32 = 10, ttl: f64 = 300): TestEntry {
  return new TestEntry(2, "session-affinity-scorer", weight)
    .text("tokenHeader", "x-session-token")
    .text("sessionHeaders", "x-session-id,x-claude-code-session-id")
    .text("cookieName", "")
    .param("evictionTtlSeconds", ttl);
}

function snapshotOf(eps: TestEndpoint[], extra: TestEntry[]): Snapshot {
  const p = new TestProfile();
  p.prefix = 0;
  p.lora = 0;
  p.extra = extra;
  return decodeSnapshot(buildBlobWith(1, eps, p))!;
}

function three(queued0: u32 = 0): TestEndpoint[] {
  return [
    new TestEndpoint("10.0.0.1:1", 4 | 8 | 16, queued0, 0.2),
    new TestEndpoint("10.0.0.2:1", 4 | 8 | 16, 0, 0.2),
    new TestEndpoint("10.0.0.3:1", 4 | 8 | 16, 0, 0.2),
  ];
}

function hashOf(address: string): u32 {
  const b = String.UTF8.encode(address);
  return fnv1a32(changetype<usize>(b), b.byteLength);
}

function tokenText(hash: u32): string {
  const out = new ArrayBuffer(TOKEN_BYTES);
  writeToken(hash, changetype<usize>(out));
  return String.UTF8.decode(out);
}

function decodeText(s: string): u32 {
  const b = String.UTF8.encode(s);
  return decodeToken(changetype<usize>(b), b.byteLength);
}

/** The picks of `n` requests whose token names `pinned` (and whose session id is bound to `bound`). */
function picks(snap: Snapshot, token: u32, bound: u32, ejected: StaticArray<u8> | null = null): Map<string, i32> {
  const f = new InFlight();
  f.rebase(snap);
  const d = new Decision();
  const out = new Map<string, i32>();
  for (let k = 0; k < 40; k++) {
    const facts = new RequestFacts();
    facts.sessionToken = token;
    facts.sessionBound = bound;
    expect(d.decide(snap, snap.profile, f, facts, ejected)).toBe(OUTCOME_PICKED);
    const a = snap.address(d.primary);
    out.set(a, (out.has(a) ? out.get(a) : 0) + 1);
  }
  return out;
}

function value(header: string, name: string): string | null {
  const b = String.UTF8.encode(header);
  const at = cookieValue(changetype<usize>(b), b.byteLength, String.UTF8.encode(name));
  if (at < 0) return null;
  return String.UTF8.decodeUnsafe(changetype<usize>(b) + <usize>(at >> 32), <usize>(<i32>at));
}

function key(s: string): u64 {
  const b = String.UTF8.encode(s);
  return sessionHash(changetype<usize>(b), b.byteLength);
}

describe("session-affinity-scorer", () => {
  beforeEach(() => {
    seedRandom(11, 3);
  });

  it("is configured from its entry; keys without any source are left out with the reason", () => {
    const snap = snapshotOf(three(), [sessionEntry()]);
    expect(snap.profile.problems.length).toBe(0);
    const keys = snap.profile.session!;
    expect(keys.headers.length).toBe(2);
    expect(String.UTF8.decode(keys.tokenHeader)).toBe("x-session-token");
    expect(keys.ttlMs).toBe(300000);
    const none = new TestEntry(2, "session-affinity-scorer", 1)
      .text("tokenHeader", "")
      .text("sessionHeaders", " , ")
      .text("cookieName", "")
      .param("evictionTtlSeconds", 300);
    const bad = snapshotOf(three(), [none]);
    expect(bad.profile.session).toBeNull();
    expect(bad.profile.problems[0]).toBe(
      "session-affinity-scorer: no token header, session header or cookie to read (left out)",
    );
    const missing = snapshotOf(three(), [new TestEntry(2, "session-affinity-scorer", 1)]);
    expect(missing.profile.problems[0]).toBe("session-affinity-scorer: tokenHeader missing (left out)");
    // llm-d-router's per-stage instance (profileName: prefill): accepted by the companion, left out here.
    const stage = snapshotOf(three(), [sessionEntry().text("profileName", "prefill")]);
    expect(stage.profile.session).toBeNull();
    expect(stage.profile.problems[0]).toBe(
      "session-affinity-scorer: profileName prefill: only the decode pick is pinned, not llm-d-router's per-stage instances (left out)",
    );
  });

  it("pins every pick to the token's endpoint, and to the bound one when the token names none", () => {
    const snap = snapshotOf(three(), [sessionEntry()]);
    const byToken = picks(snap, hashOf("10.0.0.2:1"), 0);
    expect(byToken.size).toBe(1);
    expect(byToken.get("10.0.0.2:1")).toBe(40);
    const byBinding = picks(snap, 0, hashOf("10.0.0.3:1"));
    expect(byBinding.get("10.0.0.3:1")).toBe(40);
    // a token naming no endpoint of the snapshot: the binding decides
    const stale = picks(snap, 12345, hashOf("10.0.0.1:1"));
    expect(stale.get("10.0.0.1:1")).toBe(40);
    // neither: the load scorers alone spread the picks
    expect(picks(snap, 0, 0).size).toBe(3);
  });

  it("gives a saturated endpoint no bonus, so the pick moves", () => {
    // 10.0.0.1 waits 5 requests: saturated at the detector's queueDepthThreshold 5
    const snap = snapshotOf(three(5), [sessionEntry()]);
    const out = picks(snap, hashOf("10.0.0.1:1"), 0);
    expect(out.has("10.0.0.1:1")).toBe(false);
    // and a saturated token endpoint falls back to the binding
    const both = picks(snap, hashOf("10.0.0.1:1"), hashOf("10.0.0.3:1"));
    expect(both.get("10.0.0.3:1")).toBe(40);
  });

  it("gives an ejected endpoint no bonus", () => {
    const snap = snapshotOf(three(), [sessionEntry()]);
    const ejected = new StaticArray<u8>(3);
    ejected[1] = 1;
    const out = picks(snap, hashOf("10.0.0.2:1"), 0, ejected);
    expect(out.has("10.0.0.2:1")).toBe(false);
  });

  it("yields to load when its weight is small (a scorer, not a filter)", () => {
    // weight 0.5 against queue 2 + kv 2: an endpoint with 3 waiting loses to idle ones despite the pin
    const eps = three();
    eps[0].queued = 3;
    eps[0].kv = 0.7;
    const snap = snapshotOf(eps, [sessionEntry(0.5)]);
    const out = picks(snap, hashOf("10.0.0.1:1"), 0);
    expect(out.has("10.0.0.1:1")).toBe(false);
  });
});

describe("session tokens", () => {
  it("round-trip: base64 of ep: and the address hash in hex", () => {
    const h = hashOf("10.0.0.2:1");
    const t = tokenText(h);
    expect(t.length).toBe(16);
    expect(t.endsWith("=")).toBe(true);
    expect(decodeText(t)).toBe(h);
    expect(decodeText(t.slice(0, 15))).toBe(h); // without its padding
    expect(decodeText(tokenText(0xdeadbeef))).toBe(0xdeadbeef);
    expect(decodeText("ZXA6MDAwMDAwMDE=")).toBe(1); // base64("ep:00000001")
  });

  it("garbage, other texts and llm-d's namespace/name tokens name no endpoint", () => {
    expect(decodeText("")).toBe(0);
    expect(decodeText("!!!not base64!!!")).toBe(0);
    expect(decodeText("====")).toBe(0);
    expect(decodeText("ZGVmYXVsdC92bGxtLTA=")).toBe(0); // base64("default/vllm-0")
    expect(decodeText("ZXA6eHl6MDAwMDA=")).toBe(0); // base64("ep:xyz00000"): not hex
    expect(decodeText("ZXA6MDAwMDAwMDAx")).toBe(0); // base64("ep:000000001"): too long
    expect(decodeText("A".repeat(200))).toBe(0);
    // 88 characters once decoded to 66 bytes past a 64-byte buffer; every length is refused before that.
    for (let n = 16; n <= 90; n++) expect(decodeText("A".repeat(n))).toBe(0);
  });
});

describe("session cookies", () => {
  it("finds the named cookie among others, quoted or not", () => {
    expect(value("a=1; llm-d-session=abc; b=2", "llm-d-session")).toBe("abc");
    expect(value("llm-d-session=abc", "llm-d-session")).toBe("abc");
    expect(value('x=1;llm-d-session="q v"', "llm-d-session")).toBe("q v");
    expect(value("xllm-d-session=abc; llm-d-session=def", "llm-d-session")).toBe("def");
  });

  it("no such cookie, an empty one or a bad header: none", () => {
    expect(value("a=1; b=2", "llm-d-session")).toBeNull();
    expect(value("llm-d-session=", "llm-d-session")).toBeNull();
    expect(value("llm-d-session", "llm-d-session")).toBeNull();
    expect(value(";;; ;", "llm-d-session")).toBeNull();
    expect(value("", "llm-d-session")).toBeNull();
  });
});

describe("session table", () => {
  it("binds, refreshes and forgets after the TTL", () => {
    const t = new SessionTable(16);
    t.bind(key("s1"), 7, 1000000);
    expect(t.lookup(key("s1"), 1000000 + 299000, 300000)).toBe(7);
    t.bind(key("s1"), 7, 1000000 + 299000); // used again: the TTL starts over
    expect(t.lookup(key("s1"), 1000000 + 500000, 300000)).toBe(7);
    expect(t.lookup(key("s1"), 1000000 + 700000, 300000)).toBe(0);
    expect(t.lookup(key("s2"), 1000000, 300000)).toBe(0);
  });

  it("holds at most two generations: the least recently used go first", () => {
    const t = new SessionTable(4);
    for (let i = 0; i < 20; i++) t.bind(key("s" + i.toString()), 1 + <u32>i, 5000);
    expect(t.size).toBeLessThanOrEqual(8);
    expect(t.lookup(key("s19"), 5000, 300000)).toBe(20);
    expect(t.lookup(key("s0"), 5000, 300000)).toBe(0);
  });

  it("merges another VM's journal: the newer binding wins on both sides", () => {
    const a = new SessionTable(),
      b = new SessionTable();
    a.bind(key("s"), 1, 100000); // VM a bound the session first
    b.bind(key("s"), 2, 100500); // VM b, not knowing yet, half a second later
    const ja = a.publish(),
      jb = b.publish();
    a.apply(jb);
    b.apply(ja);
    expect(a.lookup(key("s"), 101000, 300000)).toBe(2);
    expect(b.lookup(key("s"), 101000, 300000)).toBe(2);
    // the next tick republishes the last one's bindings; applying them again changes nothing
    a.apply(b.publish());
    expect(a.lookup(key("s"), 101000, 300000)).toBe(2);
    // a VM that knew the old binding rebinds within the same stamp: its binding is still the newer one
    // (endpoint 1 < 2: a tie broken by hash would keep 2)
    b.bind(key("s"), 1, 100500);
    expect(b.lookup(key("s"), 100500, 300000)).toBe(1); // stamped ahead of the clock, still found
    a.bind(key("s"), 2, 100500); // a refresh of the old one at the same moment on the other VM
    a.apply(b.publish());
    expect(a.lookup(key("s"), 101000, 300000)).toBe(1);
    b.apply(a.publish());
    expect(b.lookup(key("s"), 101000, 300000)).toBe(1);
    b.publish();
    // then an empty journal once, then nothing
    const empty = b.publish();
    expect(empty).not.toBeNull();
    expect(empty!.byteLength).toBe(8);
    expect(b.publish()).toBeNull();
  });

  it("ignores corrupt journals", () => {
    const t = new SessionTable();
    t.apply(null);
    t.apply(new ArrayBuffer(3));
    const j = new ArrayBuffer(24);
    store<u32>(changetype<usize>(j), 0x31535045);
    store<u32>(changetype<usize>(j) + 4, 1000); // more records than bytes
    t.apply(j);
    expect(t.size).toBe(0);
  });
});

describe("agent-identity", () => {
  it("gives the profile its headers", () => {
    const e = new TestEntry(1, "agent-identity").text("headers", "x-my-agent,x-claude-code-session-id");
    const snap = snapshotOf(three(), [e]);
    expect(snap.profile.problems.length).toBe(0);
    expect(snap.profile.agentHeaders.length).toBe(2);
    const bad = snapshotOf(three(), [new TestEntry(1, "agent-identity")]);
    expect(bad.profile.problems[0]).toBe("agent-identity: headers missing (left out)");
  });
});
