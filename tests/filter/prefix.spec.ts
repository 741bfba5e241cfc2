import { decodeSnapshot, Snapshot } from "../../filter/snapshot";
import {
  PrefixChain, modelSeed, lookupBucket, insertIntoBucket, storedCount, bucketBudget, PREFIX_BUCKETS, TOUCH_INTERVAL_MS,
} from "../../filter/prefix";
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

function matchedBy(bucket: ArrayBuffer | null, chain: PrefixChain, snap: Snapshot): StaticArray<i32> {
  const m = new StaticArray<i32>(snap.count);
  if (bucket != null) lookupBucket(changetype<usize>(bucket), bucket.byteLength, chain, snap, m);
  return m;
}

function record(bucket: ArrayBuffer | null, chain: PrefixChain, snap: Snapshot, i: i32, now: u32, budget: i32 = 4096): ArrayBuffer | null {
  const ptr: usize = bucket == null ? 0 : changetype<usize>(bucket);
  const len = bucket == null ? 0 : bucket.byteLength;
  return insertIntoBucket(ptr, len, chain, snap.addrHash[i], now, budget, snap);
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
    expect(a.bucket()).toBe(b.bucket());
    expect(a.bucket()).toBeLessThan(PREFIX_BUCKETS);
  });

  it("are seeded with the model: the same prompt under another model shares nothing", () => {
    const a = chainOf("llama", "aaaaaaaabbbbbbbb");
    const b = chainOf("sql-lora", "aaaaaaaabbbbbbbb");
    expect(a.hashes[0]).not.toBe(b.hashes[0]);
  });

  it("keep every level up to 16, then about 8 per doubling, and always the last", () => {
    expect(storedCount(1)).toBe(1);
    expect(storedCount(16)).toBe(16);
    expect(storedCount(17)).toBe(17);
    expect(storedCount(256)).toBeLessThan(60);
    expect(storedCount(256)).toBeGreaterThan(40);
  });
});

describe("shared prefix buckets", () => {
  it("find the longest prefix each endpoint served", () => {
    const snap = snapOf(3);
    let text = "";
    for (let k = 0; k < 40; k++) text += "block" + (k < 10 ? "00" : "0") + k.toString();
    const full = chainOf("m", text);
    expect(full.count).toBe(40);
    let bucket = record(null, full, snap, 1, 1000);
    const half = chainOf("m", text.slice(0, 8 * 20) + "X".repeat(8 * 20));
    bucket = record(bucket, half, snap, 2, 1000);
    const probe = chainOf("m", text.slice(0, 8 * 30) + "Y".repeat(8 * 10));
    const m = matchedBy(bucket, probe, snap);
    expect(m[0]).toBe(0);
    // Levels above 16 are sampled: a match is known to within 1/8 of its length, never over.
    expect(m[1]).toBeLessThanOrEqual(30);
    expect(m[1]).toBeGreaterThanOrEqual(28);
    expect(m[2]).toBe(20);
  });

  it("skip a write when the record already covers the chain and was used recently", () => {
    const snap = snapOf(2);
    const c = chainOf("m", "x".repeat(64));
    const b = record(null, c, snap, 0, 1000);
    expect(record(b, c, snap, 0, 1000 + TOUCH_INTERVAL_MS - 1)).toBeNull();
    const touched = record(b, c, snap, 0, 1000 + TOUCH_INTERVAL_MS);
    expect(touched).not.toBeNull();
    expect(touched!.byteLength).toBe(b!.byteLength);
  });

  it("replace a record its endpoint extended, instead of keeping both", () => {
    const snap = snapOf(1);
    const short = chainOf("m", "s".repeat(32));
    const long = chainOf("m", "s".repeat(64));
    const b1 = record(null, short, snap, 0, 1000)!;
    const b2 = record(b1, long, snap, 0, 1001)!;
    expect(b2.byteLength - b1.byteLength).toBe(4 * (storedCount(8) - storedCount(4)));
  });

  it("stay within their byte budget, evicting endpoints gone from the snapshot first, then the least recently used", () => {
    const snap = snapOf(4);
    let bucket: ArrayBuffer | null = null;
    const budget = 100; // three 4-block records (8 + 3 x 28 bytes)
    const chains: PrefixChain[] = [];
    for (let k = 0; k < 4; k++) chains.push(chainOf("m", "p".repeat(8) + k.toString().repeat(24)));
    for (let k = 0; k < 4; k++) bucket = record(bucket, chains[k], snap, k, 1000 + k * 10, budget);
    expect(bucket!.byteLength).toBeLessThanOrEqual(budget);
    const m = matchedBy(bucket, chains[0], snap);
    expect(m[0]).toBeLessThan(4); // the oldest full record was evicted (its first block may survive in others)
    const newest = matchedBy(bucket, chains[3], snap);
    expect(newest[3]).toBe(4);
    // endpoint 3 leaves the snapshot: its record goes first even though it is the newest
    const smaller = snapOf(3);
    bucket = record(bucket, chainOf("m", "p".repeat(8) + "z".repeat(24)), smaller, 0, 2000, budget);
    expect(matchedBy(bucket, chains[2], smaller)[2]).toBe(4);
  });

  it("treat a corrupt bucket as empty and never trap on it", () => {
    const snap = snapOf(2);
    const c = chainOf("m", "q".repeat(80));
    const junk = new ArrayBuffer(64);
    store<u32>(changetype<usize>(junk), 0x31585045);
    store<u32>(changetype<usize>(junk), 9999, 4);
    expect(matchedBy(junk, c, snap)[0]).toBe(0);
    const rebuilt = record(junk, c, snap, 1, 5);
    expect(matchedBy(rebuilt, c, snap)[1]).toBe(10);
  });

  it("size their budget from the profile's blocks per endpoint, within 4..32 KiB", () => {
    expect(bucketBudget(100, 2)).toBe(4096);
    expect(bucketBudget(31250, 1024)).toBe(32768);
    expect(bucketBudget(31250, 64)).toBe(15625);
  });
});
