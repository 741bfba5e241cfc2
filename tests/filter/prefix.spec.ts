import { decodeSnapshot, Snapshot } from "../../filter/snapshot";
import { PrefixChain, PrefixIndex, modelSeed, storedCount, indexCapacity } from "../../filter/prefix";
import { JournalWriter, JournalReader } from "../../filter/journal";
import { buildBlob, TestEndpoint } from "./blob";

function snapOf(n: i32): Snapshot {
  const eps: TestEndpoint[] = [];
  for (let i = 0; i < n; i++) eps.push(new TestEndpoint("10.0.0." + i.toString() + ":8000"));
  return decodeSnapshot(buildBlob(1, eps))!;
}

function chainOf(model: string, prompt: string, blockChars: i32 = 8, maxBlocks: i32 = 256): PrefixChain {
  const m = String.UTF8.encode(model);
  const p = String.UTF8.encode(prompt);
  const c = new PrefixChain();
  c.compute(modelSeed(changetype<usize>(m), m.byteLength), changetype<usize>(p), p.byteLength, blockChars, maxBlocks);
  return c;
}

function matchedBy(index: PrefixIndex, chain: PrefixChain, snap: Snapshot): StaticArray<i32> {
  const m = new StaticArray<i32>(snap.count);
  index.lookup(chain, snap, m, new StaticArray<i32>(snap.count));
  return m;
}

function blocks(tag: string, n: i32): string {
  let s = "";
  for (let k = 0; k < n; k++) s += (tag + "-" + k.toString() + "________").slice(0, 8);
  return s;
}

describe("prefix chains", () => {
  it("hash only full blocks, at most maxBlocks, and equal prefixes give equal hashes", () => {
    const a = chainOf("m", "aaaaaaaabbbbbbbbcccccccc");
    const b = chainOf("m", "aaaaaaaabbbbbbbbdddddddd");
    expect(a.count).toBe(3);
    expect(chainOf("m", "aaaaaaaabbbbbbbbccc").count).toBe(2);
    expect(chainOf("m", "aaaaaaaabbbbbbbbcccccccc", 8, 2).count).toBe(2);
    expect(a.hashes[0]).toBe(b.hashes[0]);
    expect(a.hashes[1]).toBe(b.hashes[1]);
    expect(a.hashes[2]).not.toBe(b.hashes[2]);
  });

  it("are seeded with the model: the same prompt under another model shares nothing", () => {
    expect(chainOf("llama", "aaaaaaaabbbbbbbb").hashes[0]).not.toBe(chainOf("sql-lora", "aaaaaaaabbbbbbbb").hashes[0]);
  });

  it("keep every level up to 8, then 4 per doubling, and always the last", () => {
    expect(storedCount(1)).toBe(1);
    expect(storedCount(8)).toBe(8);
    expect(storedCount(9)).toBe(9); // 1..8 and 9 itself
    expect(storedCount(16)).toBe(12); // 1..8, 10, 12, 14, 16
    expect(storedCount(256)).toBe(28);
  });
});

describe("prefix index", () => {
  it("finds the longest prefix each endpoint was sent", () => {
    const snap = snapOf(3);
    const text = blocks("sys", 40);
    const index = new PrefixIndex(4096);
    index.record(chainOf("m", text), snap.addrHash[1]);
    index.record(chainOf("m", text.slice(0, 8 * 20) + blocks("other", 20)), snap.addrHash[2]);
    const probe = chainOf("m", text.slice(0, 8 * 30) + blocks("new", 10));
    const m = matchedBy(index, probe, snap);
    expect(m[0]).toBe(0);
    // Levels above 8 are sampled: a match is known to within 1/4 of its length, never over.
    expect(m[1]).toBeLessThanOrEqual(30);
    expect(m[1]).toBeGreaterThanOrEqual(24);
    expect(m[2]).toBe(20);
  });

  it("gives every endpoint its own depth when the whole pool shares the first blocks", () => {
    const snap = snapOf(6);
    const text = blocks("shared", 64);
    const index = new PrefixIndex(4096);
    // Endpoint e was sent the probe's first depths[e] blocks, then something of its own.
    const depths: i32[] = [0, 1, 3, 8, 16, 64];
    for (let e = 1; e < 6; e++) {
      index.record(chainOf("m", text.slice(0, 8 * depths[e]) + blocks("own" + e.toString(), 8)), snap.addrHash[e]);
    }
    const m = matchedBy(index, chainOf("m", text), snap);
    for (let e = 0; e < 6; e++) expect(m[e]).toBe(depths[e]); // all of these depths are stored levels
  });

  it("records a pair once, and finds a match kept only in the older generation", () => {
    const snap = snapOf(2);
    const index = new PrefixIndex(64);
    const hot = chainOf("m", blocks("hot", 16));
    index.record(hot, snap.addrHash[1]);
    const size = index.size;
    index.record(hot, snap.addrHash[1]);
    expect(index.size).toBe(size);
    // Fill the current generation with others until it rolls over: "hot" is now only in the older one.
    let f = 0;
    while (index.size < 64 + size) index.record(chainOf("m", blocks("fill" + (f++).toString(), 8)), snap.addrHash[0]);
    const m = new StaticArray<i32>(2),
      cur = new StaticArray<i32>(2);
    index.lookup(hot, snap, m, cur);
    expect(m[1]).toBe(16);
    expect(cur[1]).toBe(0); // so the pick records it again, into the current generation
  });

  it("keeps a long chain in one generation, so a prefix in use never ages out in parts", () => {
    const snap = snapOf(2);
    const index = new PrefixIndex(40);
    for (let f = 0; f < 30; f++) index.insert(<u32>(1000 + f), snap.addrHash[0]); // 30 of 40 pairs used
    const long = chainOf("m", blocks("long", 256)); // 28 levels: does not fit in the 10 left
    for (let round = 0; round < 6; round++) {
      const m = new StaticArray<i32>(2),
        cur = new StaticArray<i32>(2);
      index.lookup(long, snap, m, cur);
      if (round > 0) expect(m[1]).toBe(256);
      index.record(long, snap.addrHash[1], cur[1]);
      for (let f = 0; f < 12; f++) index.insert(<u32>(5000 + round * 100 + f), snap.addrHash[0]); // other traffic
    }
  });

  it("ignores endpoints no longer in the snapshot", () => {
    const index = new PrefixIndex(4096);
    const big = snapOf(5);
    const c = chainOf("m", blocks("x", 10));
    index.record(c, big.addrHash[4]);
    const small = snapOf(2);
    const m = matchedBy(index, c, small);
    expect(m[0]).toBe(0);
    expect(m[1]).toBe(0);
  });

  it("evicts by generations: what was used recently stays, the oldest goes", () => {
    const snap = snapOf(2);
    const index = new PrefixIndex(64); // 64 pairs per generation
    const keep = chainOf("m", blocks("keep", 8));
    const old = chainOf("m", blocks("old", 8));
    index.record(old, snap.addrHash[0]);
    index.record(keep, snap.addrHash[1]);
    for (let round = 0; round < 20; round++) {
      index.record(chainOf("m", blocks("filler" + round.toString(), 8)), snap.addrHash[0]);
      index.record(keep, snap.addrHash[1]); // used again: moves to the current generation
    }
    expect(matchedBy(index, keep, snap)[1]).toBe(8);
    expect(matchedBy(index, old, snap)[0]).toBe(0);
    expect(index.size).toBeLessThanOrEqual(128);
  });

  it("keeps a prefix in use: levels found only in the older generation are recorded again", () => {
    const snap = snapOf(2);
    const index = new PrefixIndex(64);
    const keep = chainOf("m", blocks("hot", 8));
    for (let round = 0; round < 40; round++) {
      // What the filter does per request: look up, then record what the current generation lacks.
      const m = new StaticArray<i32>(2),
        cur = new StaticArray<i32>(2);
      index.lookup(keep, snap, m, cur);
      if (round > 0) expect(m[1]).toBe(8);
      index.record(keep, snap.addrHash[1], cur[1]);
      for (let f = 0; f < 3; f++)
        index.record(chainOf("m", blocks("cold" + round.toString() + "-" + f.toString(), 8)), snap.addrHash[0]);
    }
  });

  it("sizes itself from the profile's blocks per endpoint", () => {
    expect(indexCapacity(100, 2)).toBe(4096);
    expect(indexCapacity(31250, 8)).toBe(62500);
    expect(indexCapacity(31250, 1024)).toBe(262144);
  });
});

describe("prefix journals", () => {
  it("carry one VM's records to another VM's index, each record once", () => {
    const snap = snapOf(2);
    const writer = new JournalWriter();
    const reader = new JournalReader();
    const theirs = new PrefixIndex(4096);
    const c = chainOf("m", blocks("j", 12));
    writer.note(c, snap.addrHash[1]);
    const j1 = writer.publish()!;
    expect(reader.apply(7, j1, theirs)).toBe(1);
    expect(matchedBy(theirs, c, snap)[1]).toBe(12);
    // The next journal repeats the previous tick's records: a reader does not apply them twice.
    const c2 = chainOf("m", blocks("k", 4));
    writer.note(c2, snap.addrHash[0]);
    const j2 = writer.publish()!;
    expect(reader.apply(7, j2, theirs)).toBe(1);
    expect(matchedBy(theirs, c2, snap)[0]).toBe(4);
    // A reader that missed j1 still gets it from j2.
    const late = new JournalReader();
    const lateIndex = new PrefixIndex(4096);
    expect(late.apply(7, j2, lateIndex)).toBe(2);
    expect(writer.publish()).not.toBeNull(); // the previous tick's records once more
    const emptied = writer.publish()!; // then, once, an empty journal (readers stop copying the last one)
    expect(emptied.byteLength).toBe(12); // magic, no records, the seq reached
    expect(new JournalReader().apply(7, emptied, lateIndex)).toBe(0);
    expect(writer.publish()).toBeNull(); // then nothing new
  });

  it("continue under a new writer of the same key, even after the last one was emptied", () => {
    // The other gateways' journal changes hands with the reporter's lease: readers that applied the old
    // writer's records must take the new writer's.
    const snap = snapOf(1);
    const old = new JournalWriter();
    const reader = new JournalReader();
    const index = new PrefixIndex(4096);
    for (let k = 0; k < 5; k++) {
      old.note(chainOf("m", blocks("o" + k.toString(), 2)), snap.addrHash[0]);
      expect(reader.apply(0, old.publish()!, index)).toBe(1);
    }
    old.publish();
    const emptied = old.publish()!;
    const next = new JournalWriter();
    next.continueAfter(emptied);
    const c = chainOf("m", blocks("new", 6));
    next.note(c, snap.addrHash[0]);
    expect(reader.apply(0, next.publish()!, index)).toBe(1);
    expect(matchedBy(index, c, snap)[0]).toBe(6);
    // And after a journal that still holds records.
    const busy = new JournalWriter();
    busy.continueAfter(next.publish());
    busy.note(chainOf("m", blocks("b", 3)), snap.addrHash[0]);
    expect(reader.apply(0, busy.publish()!, index)).toBe(1);
  });

  it("stop at the first malformed record without trapping", () => {
    const snap = snapOf(1);
    const writer = new JournalWriter();
    writer.note(chainOf("m", blocks("a", 3)), snap.addrHash[0]);
    writer.note(chainOf("m", blocks("b", 3)), snap.addrHash[0]);
    const j = writer.publish()!;
    store<u32>(changetype<usize>(j), 999, 8 + 16 + 12 + 12); // second record: a c that does not match its n
    const index = new PrefixIndex(4096);
    expect(new JournalReader().apply(1, j, index)).toBe(1);
    expect(new JournalReader().apply(1, j.slice(0, 20), index)).toBe(0);
    expect(new JournalReader().apply(1, new ArrayBuffer(3), index)).toBe(0);
  });
});
