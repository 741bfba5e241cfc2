// Snapshot section 5 (model rewrites) in the filter's decoder: the rule columns, the first matching rule,
// the weighted draw, targets that could not be written into a body, and corrupt sections.
import { decodeSnapshot, Snapshot } from "../../filter/snapshot";
import { fnv1a32 } from "../../filter/hash";
import { seedRandom } from "../../filter/rng";
import { buildBlobWith, TestEndpoint, TestProfile, TestRewrite } from "./blob";

function decode(rules: TestRewrite[]): Snapshot {
  const s = decodeSnapshot(buildBlobWith(1, [new TestEndpoint("10.0.0.1:8000")], new TestProfile(), null, rules));
  expect(s).not.toBeNull();
  return s!;
}

function ruleFor(s: Snapshot, model: string): i32 {
  const b = String.UTF8.encode(model);
  return s.rewriteRuleFor(fnv1a32(changetype<usize>(b), b.byteLength), changetype<usize>(b), b.byteLength);
}

function target(s: Snapshot, t: i32): string {
  return String.UTF8.decodeUnsafe(s.base + <usize>s.rwTargetOff[t], <usize>s.rwTargetLen[t]);
}

describe("model rewrites (snapshot section 5)", () => {
  it("is empty without the section", () => {
    const s = decode([]);
    expect(s.rewriteCount).toBe(0);
    expect(ruleFor(s, "m")).toBe(-1);
  });

  it("decodes the rules in order and finds the first that matches (match-all rules match every model)", () => {
    const s = decode([
      new TestRewrite(["a", "b"]).to("a-new", 1),
      new TestRewrite(["b"]).to("never", 1),
      new TestRewrite([]).to("generic", 1),
      new TestRewrite(["c"]).to("never", 1),
    ]);
    expect(s.rewriteCount).toBe(4);
    expect(ruleFor(s, "a")).toBe(0);
    expect(ruleFor(s, "b")).toBe(0);
    expect(ruleFor(s, "c")).toBe(2);
    expect(ruleFor(s, "anything")).toBe(2);
    expect(target(s, s.rwTargetStart[2])).toBe("generic");
    expect(s.rwTotal[0]).toBe(1);
  });

  it("draws targets in proportion to their weights; zero weights never", () => {
    const s = decode([new TestRewrite(["m"]).to("v1", 90).to("v2", 10).to("off", 0)]);
    seedRandom(42, 1);
    let v1 = 0,
      v2 = 0;
    for (let i = 0; i < 20000; i++) {
      const t = target(s, s.drawRewriteTarget(0));
      if (t == "v1") v1++;
      else if (t == "v2") v2++;
      else expect(t).toBe("<never>");
    }
    expect(<f64>v1 / 20000.0).toBeCloseTo(0.9, 1);
    expect(v1 + v2).toBe(20000);
  });

  it("never draws a target that could not be written into a JSON body; no weight left: no target", () => {
    const s = decode([
      new TestRewrite(["m"]).to('bad"quote', 5).to("bad\\\\slash", 5).to("", 5).to("ok", 1),
      new TestRewrite(["n"]).to('only"bad', 3),
      new TestRewrite(["o"]),
    ]);
    for (let i = 0; i < 100; i++) expect(target(s, s.drawRewriteTarget(0))).toBe("ok");
    expect(s.rwTotal[0]).toBe(1);
    expect(s.drawRewriteTarget(1)).toBe(-1);
    expect(s.drawRewriteTarget(2)).toBe(-1);
  });

  it("refuses a corrupt section without trapping (random bytes with a valid checksum)", () => {
    const blob = buildBlobWith(1, [new TestEndpoint("10.0.0.1:8000")], new TestProfile(), null, [
      new TestRewrite(["food-review"]).to("food-review-v1", 90).to("food-review-v2", 10),
      new TestRewrite([]).to("generic", 1),
    ]);
    const whole = Uint8Array.wrap(blob);
    // The section is last: corrupt only its bytes.
    let start = whole.length - 1;
    while (!(whole[start] == 5 && whole[start + 1] == 0 && whole[start + 6] == 2)) start--;
    let seed: u32 = 777;
    for (let round = 0; round < 1000; round++) {
      const copy = blob.slice(0);
      const b = Uint8Array.wrap(copy);
      for (let k = 0; k < 2; k++) {
        seed = seed * 1103515245 + 12345;
        const at = start + <i32>((seed >> 8) % <u32>(b.length - start));
        b[at] = <u8>(seed >> 24);
      }
      let h: u32 = 0x811c9dc5;
      for (let i = 32; i < b.length; i++) {
        h ^= <u32>b[i];
        h *= 0x01000193;
      }
      store<u32>(changetype<usize>(copy), h, 28);
      const s = decodeSnapshot(copy);
      if (s != null) {
        expect(s.rewriteCount).toBeLessThanOrEqual(<i32>(b.length - start));
        for (let r = 0; r < s.rewriteCount; r++) {
          const t = s.drawRewriteTarget(r);
          if (t >= 0) expect(s.rwTargetLen[t]).toBeGreaterThan(0);
        }
      }
    }
  });
});
