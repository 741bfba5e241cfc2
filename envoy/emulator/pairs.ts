// Header maps cross the ABI in the proxy-wasm "pairs" format:
//   u32 count, count x (u32 key_len, u32 value_len), then each key and value followed by a NUL byte.

export type Pairs = [string, string][];

const enc = new TextEncoder();
const dec = new TextDecoder();

export function serializePairs(pairs: Pairs): Uint8Array {
  const parts = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)] as const);
  let size = 4 + 8 * parts.length;
  for (const [k, v] of parts) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, parts.length, true);
  let at = 4;
  for (const [k, v] of parts) {
    view.setUint32(at, k.length, true);
    view.setUint32(at + 4, v.length, true);
    at += 8;
  }
  for (const [k, v] of parts) {
    out.set(k, at);
    at += k.length + 1;
    out.set(v, at);
    at += v.length + 1;
  }
  return out;
}

/** cpp-host limits.h: PROXY_WASM_HOST_PAIRS_MAX_BYTES and PROXY_WASM_HOST_PAIRS_MAX_COUNT. */
export const PAIRS_MAX_BYTES = 1024 * 1024;
export const PAIRS_MAX_COUNT = 1024;

/**
 * Like cpp-host's PairsUtil::toPairs (src/pairs_util.cc): anything malformed yields no pairs rather than an
 * error: a buffer over 1 MiB, more than 1024 pairs, a size table or string running past the end, a key or
 * value not followed by its NUL, or bytes left over after the last value.
 */
export function parsePairs(bytes: Uint8Array): Pairs {
  if (bytes.length < 4 || bytes.length > PAIRS_MAX_BYTES) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  if (count > PAIRS_MAX_COUNT || 4 + count * 8 > bytes.length) return [];
  const sizes: number[] = [];
  for (let i = 0; i < count; i++) sizes.push(view.getUint32(4 + i * 8, true), view.getUint32(8 + i * 8, true));
  let at = 4 + count * 8;
  const out: Pairs = [];
  for (let i = 0; i < count; i++) {
    const kl = sizes[2 * i],
      vl = sizes[2 * i + 1];
    if (at + kl + 1 > bytes.length || bytes[at + kl] !== 0) return [];
    const k = dec.decode(bytes.subarray(at, at + kl));
    at += kl + 1;
    if (at + vl + 1 > bytes.length || bytes[at + vl] !== 0) return [];
    const v = dec.decode(bytes.subarray(at, at + vl));
    at += vl + 1;
    out.push([k, v]);
  }
  return at === bytes.length ? out : [];
}

// Header map operations with Envoy's semantics: keys are lower-cased, pseudo-headers stay in front,
// get returns the first value, replace removes every value and adds one.

export function headerGet(map: Pairs, key: string): string | undefined {
  const k = key.toLowerCase();
  for (const [n, v] of map) if (n === k) return v;
  return undefined;
}

export function headerAdd(map: Pairs, key: string, value: string): void {
  const k = key.toLowerCase();
  if (k.startsWith(":")) {
    let i = 0;
    while (i < map.length && map[i][0].startsWith(":")) i++;
    map.splice(i, 0, [k, value]);
  } else {
    map.push([k, value]);
  }
}

export function headerRemove(map: Pairs, key: string): void {
  const k = key.toLowerCase();
  for (let i = map.length - 1; i >= 0; i--) if (map[i][0] === k) map.splice(i, 1);
}

export function headerReplace(map: Pairs, key: string, value: string): void {
  headerRemove(map, key);
  headerAdd(map, key, value);
}

/** HeaderMap::byteSize(): the sum of key and value lengths. */
export function headerByteSize(map: Pairs): number {
  let n = 0;
  for (const [k, v] of map) n += Buffer.byteLength(k) + Buffer.byteLength(v);
  return n;
}
