// The filter's only source of randomness: xorshift64* seeded from the proxy clock and the context id.
// (Math.random would import env.seed, which Envoy does not provide.)

let state: u64 = 0x2545f4914f6cdd1d;

function splitmix(x: u64): u64 {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

export function seedRandom(nowNs: u64, contextId: u32): void {
  state = splitmix(nowNs ^ ((<u64>contextId) << 40) ^ state);
  if (state == 0) state = 0x2545f4914f6cdd1d;
}

export function nextU64(): u64 {
  let x = state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  state = x;
  return x * 0x2545f4914f6cdd1d;
}

/** Uniform in [0, 1). */
export function nextFloat(): f64 {
  return <f64>(nextU64() >> 11) * (1.0 / 9007199254740992.0);
}

/** Uniform in [0, n) for n > 0. */
export function nextBelow(n: i32): i32 {
  return <i32>((nextU64() >> 33) % <u64>n);
}
