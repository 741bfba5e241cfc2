// Hashes the filter needs, all deterministic across worker VMs (they share tables keyed by these values).

/** FNV-1a 32 over `len` bytes at `ptr`: endpoint identities (address strings) in the shared tables. */
export function fnv1a32(ptr: usize, len: i32): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i = 0; i < len; i++) {
    h ^= <u32>load<u8>(ptr + <usize>i);
    h *= 0x01000193;
  }
  return h;
}

/**
 * Chained block hash for prefix affinity: mixes `len` bytes at `ptr` into `seed`, eight bytes at a time
 * (a byte-wise hash over a 16 KiB prompt costs more than the whole decision).
 */
export function blockHash(seed: u32, ptr: usize, len: i32): u32 {
  let h: u64 = ((<u64>seed) << 32) ^ 0x9e3779b97f4a7c15 ^ (<u64>len);
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    h ^= load<u64>(ptr + <usize>i);
    h *= 0xff51afd7ed558ccd;
    h ^= h >> 29;
  }
  let tail: u64 = 0;
  for (let k = 0; i < len; i++, k += 8) tail |= (<u64>load<u8>(ptr + <usize>i)) << k;
  h ^= tail;
  h *= 0xc4ceb9fe1a85ec53;
  h ^= h >> 32;
  h *= 0xff51afd7ed558ccd;
  h ^= h >> 29;
  const out = (<u32>h) ^ (<u32>(h >> 32));
  // 0 marks an empty slot in the shared tables; never hand it out.
  return out == 0 ? 1 : out;
}
