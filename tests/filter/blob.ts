// Builds snapshot blobs (format 2, docs/SNAPSHOT.md) for specs, so decoding and scoring are tested against
// the written format. tests/filter/golden.spec.ts checks this writer against the companion's golden sample.
export class BlobWriter {
  bytes: u8[] = [];
  u8(v: u8): BlobWriter {
    this.bytes.push(v);
    return this;
  }
  u16(v: u16): BlobWriter {
    this.u8(<u8>(v & 0xff));
    return this.u8(<u8>(v >> 8));
  }
  u32(v: u32): BlobWriter {
    this.u16(<u16>(v & 0xffff));
    return this.u16(<u16>(v >> 16));
  }
  u64(v: u64): BlobWriter {
    this.u32(<u32>(v & 0xffffffff));
    return this.u32(<u32>(v >> 32));
  }
  f32(v: f32): BlobWriter {
    return this.u32(reinterpret<u32>(v));
  }
  f64(v: f64): BlobWriter {
    return this.u64(reinterpret<u64>(v));
  }
  str(s: string): BlobWriter {
    const b = Uint8Array.wrap(String.UTF8.encode(s));
    this.u16(<u16>b.length);
    for (let i = 0; i < b.length; i++) this.u8(b[i]);
    return this;
  }
  /** A u32 length placeholder; `end` fills in the bytes written after it. */
  start(): i32 {
    const at = this.bytes.length;
    this.u32(0);
    return at;
  }
  end(at: i32): void {
    const n = <u32>(this.bytes.length - at - 4);
    this.bytes[at] = <u8>(n & 0xff);
    this.bytes[at + 1] = <u8>((n >> 8) & 0xff);
    this.bytes[at + 2] = <u8>((n >> 16) & 0xff);
    this.bytes[at + 3] = <u8>(n >> 24);
  }
}

export class TestEndpoint {
  constructor(
    public address: string,
    public flags: u8 = 4 | 8 | 16,
    public queued: u32 = 0,
    public kv: f32 = 0,
  ) {}
  running: u32 = 0;
  loraMax: u16 = 0;
  runningAdapters: string[] = [];
  waitingAdapters: string[] = [];
}

/** A plugin entry (role: 1 filter, 2 scorer, 3 picker, 4 saturation detector) with its parameters. */
export class TestEntry {
  names: string[] = [];
  values: f64[] = [];
  texts: Array<string | null> = [];
  constructor(
    public role: u8,
    public type: string,
    public weight: f32 = 0,
  ) {}
  param(name: string, value: f64): TestEntry {
    this.names.push(name);
    this.values.push(value);
    this.texts.push(null);
    return this;
  }
  text(name: string, value: string): TestEntry {
    this.names.push(name);
    this.values.push(0);
    this.texts.push(value);
    return this;
  }
}

/** A model rewrite rule (section 5): exact matches (none: every model) and weighted targets. */
export class TestRewrite {
  targets: string[] = [];
  weights: u32[] = [];
  constructor(public matches: string[] = []) {}
  to(model: string, weight: u32): TestRewrite {
    this.targets.push(model);
    this.weights.push(weight);
    return this;
  }
}

export const PICKERS: string[] = ["max-score-picker", "random-picker", "weighted-random-picker"];

/** GIE's scorers and settings as weights; `extra` entries follow them. */
export class TestProfile {
  queue: f32 = 2;
  kv: f32 = 2;
  prefix: f32 = 3;
  lora: f32 = 1;
  running: f32 = 0;
  picker: u8 = 0;
  fallbacks: u8 = 0;
  blockChars: u16 = 64;
  maxBlocks: u16 = 256;
  lruPerEndpoint: u16 = 1000;
  satQueue: f32 = 5;
  satKv: f32 = 0.8;
  extra: TestEntry[] = [];

  entries(): TestEntry[] {
    const out = new Array<TestEntry>();
    if (this.queue > 0) out.push(new TestEntry(2, "queue-scorer", this.queue));
    if (this.kv > 0) out.push(new TestEntry(2, "kv-cache-utilization-scorer", this.kv));
    if (this.prefix > 0)
      out.push(
        new TestEntry(2, "prefix-cache-scorer", this.prefix)
          .param("blockSizeChars", this.blockChars)
          .param("maxPrefixBlocksToMatch", this.maxBlocks)
          .param("lruCapacityPerServer", this.lruPerEndpoint),
      );
    if (this.lora > 0) out.push(new TestEntry(2, "lora-affinity-scorer", this.lora));
    if (this.running > 0) out.push(new TestEntry(2, "running-requests-size-scorer", this.running));
    out.push(new TestEntry(3, PICKERS[this.picker]).param("maxNumOfEndpoints", <f64>this.fallbacks + 1));
    out.push(
      new TestEntry(4, "utilization-detector")
        .param("queueDepthThreshold", this.satQueue)
        .param("kvCacheUtilThreshold", this.satKv),
    );
    for (let k = 0; k < this.extra.length; k++) out.push(this.extra[k]);
    return out;
  }
}

export function buildBlob(version: u64, endpoints: TestEndpoint[], picker: u8 = 0): ArrayBuffer {
  const p = new TestProfile();
  p.picker = picker;
  return buildBlobWith(version, endpoints, p);
}

/** A flow-control section (6) as the companion writes it: the template and explicit bands (priority, fairness, ordering). */
export class TestFlow {
  defaultTtlMs: u32 = 60000;
  noEndpointTtlMs: u32 = 60000;
  maxRequests: u32 = 0;
  maxBytes: f64 = 0;
  usageLimit: f64 = 1.0;
  bandMaxRequests: u32 = 5000;
  bandFairness: u8 = 0;
  bandOrdering: u8 = 0;
  /** Explicit bands: priority, maxRequests, fairness, ordering. */
  bands: i32[][] = [];
  /** priority-holdback-policy: domain (0 rank, 1 value), min and max ceiling; domain -1: none. */
  holdbackDomain: i32 = -1;
  /** soft-reflective-ceiling-policy instead (when no holdback). */
  softReflective: bool = false;
  minCeiling: f64 = 0;
  maxCeiling: f64 = 1;
  /** program-aware-fairness parameters: written when lasWeightService >= 0. */
  lasWeightService: f64 = -1;
  lasWeightHeadWait: f64 = 0.2;
  lasHalfLifeS: f64 = 60;
  heavyFlowHeadroom: f64 = 0;
}

/** A profile's plugin entries as the snapshot carries them: u16 count, then each entry with its length. */
export function writeEntries(w: BlobWriter, entries: TestEntry[]): void {
  w.u16(<u16>entries.length);
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k];
    const at = w.start();
    w.u8(e.role)
      .str(e.type)
      .f32(e.weight)
      .u16(<u16>e.names.length);
    for (let j = 0; j < e.names.length; j++) {
      const t = e.texts[j];
      if (t != null) w.str(e.names[j]).u8(1).str(t);
      else w.str(e.names[j]).u8(0).f64(e.values[j]);
    }
    w.end(at);
  }
}

/** `baseModels` null or empty: no base-model section. */
export function buildBlobWith(
  version: u64,
  endpoints: TestEndpoint[],
  p: TestProfile,
  baseModels: string[] | null = null,
  rewrites: TestRewrite[] | null = null,
  flow: TestFlow | null = null,
): ArrayBuffer {
  const w = new BlobWriter();
  w.u8(0x45).u8(0x50).u8(0x53).u8(0x31).u16(2).u16(32).u64(version).u64(1700000000000).u32(0).u32(0);
  w.u16(1);
  let section = w.start();
  writeEntries(w, p.entries());
  w.end(section);
  w.u16(2);
  section = w.start();
  w.u32(endpoints.length);
  for (let i = 0; i < endpoints.length; i++) {
    const e = endpoints[i];
    const at = w.start();
    w.u8(e.flags).u32(e.queued).u32(e.running).f32(e.kv).u16(e.loraMax).str(e.address);
    w.u16(<u16>e.runningAdapters.length);
    for (let k = 0; k < e.runningAdapters.length; k++) w.str(e.runningAdapters[k]);
    w.u16(<u16>e.waitingAdapters.length);
    for (let k = 0; k < e.waitingAdapters.length; k++) w.str(e.waitingAdapters[k]);
    w.end(at);
  }
  w.end(section);
  if (baseModels != null && baseModels.length > 0) {
    w.u16(3);
    section = w.start();
    w.u16(<u16>baseModels.length);
    for (let k = 0; k < baseModels.length; k++) w.str(baseModels[k]);
    w.end(section);
  }
  if (rewrites != null && rewrites.length > 0) {
    w.u16(5);
    section = w.start();
    w.u16(<u16>rewrites.length);
    for (let k = 0; k < rewrites.length; k++) {
      const r = rewrites[k];
      const at = w.start();
      w.u16(<u16>r.matches.length);
      for (let j = 0; j < r.matches.length; j++) w.str(r.matches[j]);
      w.u16(<u16>r.targets.length);
      for (let j = 0; j < r.targets.length; j++) w.str(r.targets[j]).u32(r.weights[j]);
      w.end(at);
    }
    w.end(section);
  }
  if (flow != null) {
    w.u16(6);
    section = w.start();
    w.u32(flow.defaultTtlMs).u32(flow.noEndpointTtlMs).u32(flow.maxRequests).f64(flow.maxBytes).f64(flow.usageLimit);
    for (let t = 0; t < 2; t++) w.u32(0).u32(flow.bandMaxRequests).f64(1e9).u8(flow.bandFairness).u8(flow.bandOrdering);
    w.u16(<u16>flow.bands.length);
    for (let k = 0; k < flow.bands.length; k++) {
      const b = flow.bands[k];
      w.u32(<u32>b[0])
        .u32(<u32>b[1])
        .f64(1e9)
        .u8(<u8>b[2])
        .u8(<u8>b[3]);
    }
    w.u8(flow.holdbackDomain >= 0 ? 1 : flow.softReflective ? 2 : 0);
    if (flow.holdbackDomain >= 0)
      w.u8(<u8>flow.holdbackDomain)
        .f64(flow.minCeiling)
        .f64(flow.maxCeiling);
    w.u8(flow.lasWeightService >= 0 ? 1 : 0);
    if (flow.lasWeightService >= 0)
      w.f64(flow.lasWeightService)
        .f64(flow.lasWeightHeadWait)
        .f64(flow.lasHalfLifeS)
        .f64(3600)
        .f64(flow.heavyFlowHeadroom);
    w.end(section);
  }
  const out = new Uint8Array(w.bytes.length);
  for (let i = 0; i < w.bytes.length; i++) out[i] = w.bytes[i];
  return sealBlob(out);
}

/** Writes a blob's total size and its FNV-1a checksum of the bytes after the header into the header. */
export function sealBlob(out: Uint8Array): ArrayBuffer {
  store<u32>(out.dataStart, out.length, 24);
  let h: u32 = 0x811c9dc5;
  for (let i = 32; i < out.length; i++) {
    h ^= <u32>out[i];
    h *= 0x01000193;
  }
  store<u32>(out.dataStart, h, 28);
  return out.buffer;
}
