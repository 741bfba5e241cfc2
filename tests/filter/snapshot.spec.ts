import { decodeSnapshot, peekVersion, lastError, FLAG_QUEUE, FLAG_UNUSABLE, FLAG_LORA } from "../../filter/snapshot";
import { buildBlob, TestEndpoint } from "./blob";

describe("snapshot decoding", () => {
  it("decodes every field of a well-formed blob", () => {
    const a = new TestEndpoint("10.0.0.1:8000", 4 | 8 | 16 | 32, 3, 0.25);
    a.runningAdapters = ["sql-lora"];
    a.waitingAdapters = ["tweet-lora", "x"];
    a.loraMax = 4;
    a.running = 7;
    const blob = buildBlob(42, [a, new TestEndpoint("10.0.0.2:8000")]);
    const snap = decodeSnapshot(blob);
    expect(snap).not.toBeNull();
    const s = snap!;
    expect(s.version).toBe(42);
    expect(peekVersion(blob)).toBe(42);
    expect(s.profile.queueWeight).toBe(2.0);
    expect(s.profile.prefixWeight).toBe(3.0);
    expect(s.profile.saturationKv).toBeCloseTo(0.8);
    expect(s.count).toBe(2);
    expect(s.address(0)).toBe("10.0.0.1:8000");
    expect(s.queued[0]).toBe(3.0);
    expect(s.running[0]).toBe(7.0);
    expect(s.kv[0]).toBe(0.25);
    expect(s.has(0, FLAG_QUEUE)).toBe(true);
    expect(s.has(0, FLAG_LORA)).toBe(true);
    expect(s.anyLora).toBe(true);
    expect(s.runningAdapter(0, 0)).toBe("sql-lora");
    expect(s.waitCount[0]).toBe(2);
    expect(s.waitingAdapter(0, 1)).toBe("x");
    expect(s.loraMax[0]).toBe(4);
    expect(s.address(1)).toBe("10.0.0.2:8000");
    expect(s.runCount[1]).toBe(0);
  });

  it("finds endpoints by address hash", () => {
    const eps: TestEndpoint[] = [];
    for (let i = 0; i < 40; i++) eps.push(new TestEndpoint("10.0.1." + i.toString() + ":8000"));
    const s = decodeSnapshot(buildBlob(1, eps))!;
    for (let i = 0; i < 40; i++) expect(s.indexOfHash(s.addrHash[i])).toBe(i);
    expect(s.indexOfHash(12345)).toBe(-1);
  });

  it("zeroes counts whose metric flag is absent and clamps kv usage", () => {
    const e = new TestEndpoint("10.0.0.1:8000", 0, 9, 1.7);
    const s = decodeSnapshot(buildBlob(1, [e, new TestEndpoint("10.0.0.2:8000", 16, 0, -3)]))!;
    expect(s.queued[0]).toBe(0.0);
    expect(s.kv[0]).toBe(1.0);
    expect(s.kv[1]).toBe(0.0);
  });

  it("marks a second endpoint with the same address unusable (counts are keyed by address)", () => {
    const s = decodeSnapshot(
      buildBlob(1, [new TestEndpoint("10.0.0.1:80"), new TestEndpoint("10.0.0.2:80"), new TestEndpoint("10.0.0.1:80")]),
    )!;
    expect(s.has(0, FLAG_UNUSABLE)).toBe(false);
    expect(s.has(1, FLAG_UNUSABLE)).toBe(false);
    expect(s.has(2, FLAG_UNUSABLE)).toBe(true);
    expect(s.indexOfHash(s.addrHash[2])).toBe(0);
  });

  it("marks addresses that cannot go into a header as unusable", () => {
    const s = decodeSnapshot(
      buildBlob(1, [
        new TestEndpoint("10.0.0.1:80\r\nx: y"),
        new TestEndpoint(""),
        new TestEndpoint("a,b:1"),
        new TestEndpoint("10.0.0.9:80"),
      ]),
    )!;
    expect(s.has(0, FLAG_UNUSABLE)).toBe(true);
    expect(s.has(1, FLAG_UNUSABLE)).toBe(true);
    expect(s.has(2, FLAG_UNUSABLE)).toBe(true);
    expect(s.has(3, FLAG_UNUSABLE)).toBe(false);
  });

  it("refuses every truncation of a blob without trapping", () => {
    const blob = buildBlob(7, [new TestEndpoint("10.0.0.1:8000"), new TestEndpoint("10.0.0.2:8000")]);
    for (let n = 0; n < blob.byteLength; n++) {
      expect(decodeSnapshot(blob.slice(0, n))).toBeNull();
    }
  });

  it("refuses a blob with a flipped byte (checksum)", () => {
    const blob = buildBlob(7, [new TestEndpoint("10.0.0.1:8000")]);
    const bytes = Uint8Array.wrap(blob);
    bytes[bytes.length - 3] ^= 0x55;
    expect(decodeSnapshot(blob)).toBeNull();
    expect(lastError).toBe("checksum mismatch");
  });

  it("refuses a bad magic, an unknown format and a lying endpoint count", () => {
    const blob = buildBlob(7, [new TestEndpoint("10.0.0.1:8000")]);
    const bytes = Uint8Array.wrap(blob);
    bytes[4] = 1;
    expect(decodeSnapshot(blob)).toBeNull();
    expect(lastError).toBe("unsupported format 1 (the companion is older than this filter: upgrade it)");
    bytes[4] = 3;
    expect(decodeSnapshot(blob)).toBeNull();
    expect(lastError).toBe("unsupported format 3 (the companion is newer than this filter)");
    bytes[0] = 0x58;
    expect(decodeSnapshot(blob)).toBeNull();
    expect(lastError).toBe("bad magic");
  });

  it("survives random corruption with a valid checksum (never traps, never reads past the end)", () => {
    const blob = buildBlob(7, [new TestEndpoint("10.0.0.1:8000"), new TestEndpoint("10.0.0.2:8000")]);
    let seed: u32 = 12345;
    for (let round = 0; round < 500; round++) {
      const copy = blob.slice(0);
      const b = Uint8Array.wrap(copy);
      for (let k = 0; k < 3; k++) {
        seed = seed * 1103515245 + 12345;
        const at = 32 + <i32>((seed >> 8) % <u32>(b.length - 32));
        b[at] = <u8>(seed >> 24);
      }
      let h: u32 = 0x811c9dc5;
      for (let i = 32; i < b.length; i++) {
        h ^= <u32>b[i];
        h *= 0x01000193;
      }
      store<u32>(changetype<usize>(copy), h, 28);
      const s = decodeSnapshot(copy);
      if (s != null) expect(s.count).toBeLessThanOrEqual(2);
    }
  });
});
