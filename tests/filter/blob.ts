// Builds EPS1 snapshot blobs for specs (docs/SNAPSHOT.md), so decoding is tested against the written format.
export class BlobWriter {
  bytes: u8[] = [];
  u8(v: u8): BlobWriter { this.bytes.push(v); return this; }
  u16(v: u16): BlobWriter { this.u8(<u8>(v & 0xff)); return this.u8(<u8>(v >> 8)); }
  u32(v: u32): BlobWriter { this.u16(<u16>(v & 0xffff)); return this.u16(<u16>(v >> 16)); }
  u64(v: u64): BlobWriter { this.u32(<u32>(v & 0xffffffff)); return this.u32(<u32>(v >> 32)); }
  f32(v: f32): BlobWriter { return this.u32(reinterpret<u32>(v)); }
  str(s: string): BlobWriter {
    const b = Uint8Array.wrap(String.UTF8.encode(s));
    this.u16(<u16>b.length);
    for (let i = 0; i < b.length; i++) this.u8(b[i]);
    return this;
  }
}

export class TestEndpoint {
  constructor(public address: string, public flags: u8 = 4 | 8 | 16, public queued: u32 = 0, public kv: f32 = 0) {}
  running: u32 = 0;
  loraMax: u16 = 0;
  runningAdapters: string[] = [];
  waitingAdapters: string[] = [];
}

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
}

export function buildBlob(version: u64, endpoints: TestEndpoint[], picker: u8 = 0): ArrayBuffer {
  const p = new TestProfile();
  p.picker = picker;
  return buildBlobWith(version, endpoints, p);
}

/** `baseModels` null: a blob without the trailing base-model section (what older companions send). */
export function buildBlobWith(version: u64, endpoints: TestEndpoint[], p: TestProfile, baseModels: string[] | null = null): ArrayBuffer {
  const w = new BlobWriter();
  w.u8(0x45).u8(0x50).u8(0x53).u8(0x31).u16(1).u16(32).u64(version).u64(1700000000000).u32(0).u32(0);
  const profileStart = w.bytes.length;
  w.u16(0).f32(p.queue).f32(p.kv).f32(p.prefix).f32(p.lora).f32(p.running).u8(p.picker).u8(p.fallbacks)
    .u16(p.blockChars).u16(p.maxBlocks).u16(p.lruPerEndpoint).f32(p.satQueue).f32(p.satKv);
  const profileSize = w.bytes.length - profileStart;
  w.bytes[profileStart] = <u8>profileSize;
  w.u32(endpoints.length);
  for (let i = 0; i < endpoints.length; i++) {
    const e = endpoints[i];
    w.str(e.address).str("vllm").u8(e.flags).u32(e.queued).u32(e.running).f32(e.kv).u32(10).u16(e.loraMax);
    w.u16(<u16>e.runningAdapters.length);
    for (let k = 0; k < e.runningAdapters.length; k++) w.str(e.runningAdapters[k]);
    w.u16(<u16>e.waitingAdapters.length);
    for (let k = 0; k < e.waitingAdapters.length; k++) w.str(e.waitingAdapters[k]);
    w.u32(16).u32(1000);
  }
  if (baseModels != null) {
    w.u16(<u16>baseModels.length);
    for (let k = 0; k < baseModels.length; k++) w.str(baseModels[k]);
  }
  const out = new Uint8Array(w.bytes.length);
  for (let i = 0; i < w.bytes.length; i++) out[i] = w.bytes[i];
  store<u32>(out.dataStart, out.length, 24);
  let h: u32 = 0x811c9dc5;
  for (let i = 32; i < out.length; i++) { h ^= <u32>out[i]; h *= 0x01000193; }
  store<u32>(out.dataStart, h, 28);
  return out.buffer;
}
