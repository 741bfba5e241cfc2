// The filter's decoder against the companion's golden sample (tests/fixtures/snapshot/): golden.bin, and
// golden-later.bin (fields and a section of a later format revision), both decode to golden.json.
import { JSON } from "assemblyscript-json/assembly";
import {
  decodeSnapshot,
  Snapshot,
  FLAG_STALE,
  FLAG_ERROR,
  FLAG_QUEUE,
  FLAG_RUNNING,
  FLAG_KV,
  FLAG_LORA,
} from "../../filter/snapshot";
import { ROLE_FILTER, ROLE_SCORER, ROLE_PICKER, ROLE_SATURATION_DETECTOR } from "../../filter/scoring/plugin";
import { WeightedRandomPicker } from "../../filter/scoring/weighted-random-picker";
import { fnv1a32 } from "../../filter/hash";
import { fixtureBytes, fixtureText } from "./fixtures";

function num(v: JSON.Value): f64 {
  return v.isInteger ? <f64>(<JSON.Integer>v).valueOf() : (<JSON.Float>v).valueOf();
}

function str(v: JSON.Value): string {
  return (<JSON.Str>v).valueOf();
}

function hashOf(s: string): u32 {
  const b = String.UTF8.encode(s);
  return fnv1a32(changetype<usize>(b), b.byteLength);
}

function roleOf(name: string): u8 {
  if (name == "filter") return ROLE_FILTER;
  if (name == "scorer") return ROLE_SCORER;
  if (name == "picker") return ROLE_PICKER;
  return name == "saturation-detector" ? ROLE_SATURATION_DETECTOR : 0;
}

/** A decoded column's count and flag agree with the JSON field (null = flag absent). */
function expectCount(s: Snapshot, i: i32, flag: u8, column: StaticArray<f64>, v: JSON.Value): void {
  if (v.isNull) {
    expect(s.has(i, flag)).toBe(false);
    return;
  }
  expect(s.has(i, flag)).toBe(true);
  expect(column[i]).toBe(<f64>(<f32>num(v)));
}

function expectGolden(s: Snapshot, golden: JSON.Obj): void {
  expect(s.version.toString()).toBe(golden.getString("version")!.valueOf());
  expect(s.generatedAtMs).toBe(<u64>num(golden.get("generatedAtMs")!));

  const endpoints = golden.getArr("endpoints")!.valueOf();
  expect(s.count).toBe(endpoints.length);
  for (let i = 0; i < endpoints.length; i++) {
    const e = <JSON.Obj>endpoints[i];
    expect(s.address(i)).toBe(e.getString("address")!.valueOf());
    expect(s.has(i, FLAG_STALE)).toBe(e.getBool("stale")!.valueOf());
    expect(s.has(i, FLAG_ERROR)).toBe(e.getBool("error")!.valueOf());
    expectCount(s, i, FLAG_QUEUE, s.queued, e.get("queued")!);
    expectCount(s, i, FLAG_RUNNING, s.running, e.get("running")!);
    expectCount(s, i, FLAG_KV, s.kv, e.get("kvUsage")!);
    const lora = e.get("lora")!;
    expect(s.has(i, FLAG_LORA)).toBe(!lora.isNull);
    if (lora.isNull) continue;
    const l = <JSON.Obj>lora;
    expect(s.loraMax[i]).toBe(<i32>num(l.get("max")!));
    const running = l.getArr("running")!.valueOf(),
      waiting = l.getArr("waiting")!.valueOf();
    expect(s.runCount[i]).toBe(running.length);
    expect(s.waitCount[i]).toBe(waiting.length);
    for (let k = 0; k < running.length; k++) expect(s.runningAdapter(i, k)).toBe(str(running[k]));
    for (let k = 0; k < waiting.length; k++) expect(s.waitingAdapter(i, k)).toBe(str(waiting[k]));
  }

  const plugins = (<JSON.Obj>golden.get("profile")!).getArr("plugins")!.valueOf();
  expect(s.entries.length).toBe(plugins.length);
  for (let k = 0; k < plugins.length; k++) {
    const p = <JSON.Obj>plugins[k],
      e = s.entries[k];
    expect(e.role).toBe(roleOf(p.getString("role")!.valueOf()));
    expect(e.type).toBe(p.getString("type")!.valueOf());
    expect(e.weight).toBe(<f64>(<f32>num(p.get("weight")!)));
    const params = <JSON.Obj>p.get("parameters")!;
    const names = params.keys;
    expect(e.params.names.length).toBe(names.length);
    for (let j = 0; j < names.length; j++) {
      const v = params.get(names[j])!;
      if (v.isString) expect(e.params.text(names[j])).toBe(str(v));
      else expect(e.params.number(names[j])).toBe(num(v));
    }
  }

  const bases = golden.getArr("baseModels")!.valueOf();
  expect(s.baseSet.length).toBe(bases.length);
  for (let k = 0; k < bases.length; k++) expect(s.isBaseModel(hashOf(str(bases[k])))).toBe(true);
}

function golden(): JSON.Obj {
  return <JSON.Obj>JSON.parse(fixtureText("snapshot/golden.json"));
}

describe("the golden snapshot sample", () => {
  it("golden.bin decodes to golden.json", () => {
    const s = decodeSnapshot(fixtureBytes("snapshot/golden.bin"));
    expect(s).not.toBeNull();
    expectGolden(s!, golden());
  });

  it("golden-later.bin (unknown fields in every entry, record and section, an unknown section) decodes to golden.json", () => {
    const later = fixtureBytes("snapshot/golden-later.bin");
    expect(later.byteLength).toBeGreaterThan(fixtureBytes("snapshot/golden.bin").byteLength);
    const s = decodeSnapshot(later);
    expect(s).not.toBeNull();
    expectGolden(s!, golden());
  });

  it("its profile: every scorer's weight, the prefix parameters, the picker, the detector; the unknown filter left out", () => {
    const p = decodeSnapshot(fixtureBytes("snapshot/golden.bin"))!.profile;
    expect(p.queueWeight).toBe(2.0);
    expect(p.kvWeight).toBe(1.5);
    expect(p.prefixWeight).toBe(3.0);
    expect(p.loraWeight).toBe(1.0);
    expect(p.runningWeight).toBe(0.25);
    expect(p.prefixBlockChars).toBe(64);
    expect(p.prefixMaxBlocks).toBe(256);
    expect(p.prefixLruPerEndpoint).toBe(31250);
    expect(p.picker instanceof WeightedRandomPicker).toBe(true);
    expect(p.fallbackCount).toBe(2);
    expect(p.saturationQueue).toBe(5.0);
    expect(p.saturationKv).toBe(0.8);
    expect(p.problems.length).toBe(1);
    expect(p.problems[0]).toBe("by-label-filter: unknown plugin type (left out)");
  });
});
