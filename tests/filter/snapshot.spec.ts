import { decodeSnapshot, peekVersion, lastError, FLAG_QUEUE } from "../../filter/snapshot";
import { buildBlob, TestEndpoint } from "./blob";

describe("snapshot decoding", () => {
  it("decodes every field of a well-formed blob", () => {
    const a = new TestEndpoint("10.0.0.1:8000", 4 | 8 | 16 | 32, 3, 0.25);
    a.runningAdapters = ["sql-lora"];
    a.waitingAdapters = ["tweet-lora", "x"];
    a.loraMax = 4;
    const blob = buildBlob(42, [a, new TestEndpoint("10.0.0.2:8000")]);
    const snap = decodeSnapshot(blob);
    expect(snap).not.toBeNull();
    const s = snap!;
    expect(s.version).toBe(42);
    expect(peekVersion(blob)).toBe(42);
    expect(s.profile.queueWeight).toBe(<f32>2);
    expect(s.profile.prefixWeight).toBe(<f32>3);
    expect(s.profile.saturationKv).toBe(<f32>0.8);
    expect(s.endpoints.length).toBe(2);
    expect(s.endpoints[0].address).toBe("10.0.0.1:8000");
    expect(s.endpoints[0].queued).toBe(3);
    expect(s.endpoints[0].kvUsage).toBe(<f32>0.25);
    expect(s.endpoints[0].has(FLAG_QUEUE)).toBe(true);
    expect(s.endpoints[0].runningAdapters[0]).toBe("sql-lora");
    expect(s.endpoints[0].waitingAdapters.length).toBe(2);
    expect(s.endpoints[0].loraMax).toBe(4);
    expect(s.endpoints[1].address).toBe("10.0.0.2:8000");
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

  it("refuses a bad magic and an unknown format", () => {
    const blob = buildBlob(7, [new TestEndpoint("10.0.0.1:8000")]);
    const bytes = Uint8Array.wrap(blob);
    bytes[4] = 2;
    expect(decodeSnapshot(blob)).toBeNull();
    expect(lastError).toBe("unsupported format 2");
    bytes[0] = 0x58;
    expect(decodeSnapshot(blob)).toBeNull();
    expect(lastError).toBe("bad magic");
  });
});
