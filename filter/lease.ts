// Leases: one worker VM per Envoy process long-polls the companion (fetcher.ts), one reports to it
// (gateway-reporter.ts). The lease lives in shared
// data (12 bytes: u32 owner, u64 expiresAtMs); a VM takes or renews it with compare-and-swap, so two VMs
// racing for an expired lease cannot both win, and a VM that stops ticking (crashed, torn down) loses it
// when it expires. An absent key cannot be compared (cas 0 always sets), so writing one only claims the
// lease: the VM leads once it renews its own claim with a real CAS on the next tick.
import { WasmResultValues } from "@solo-io/proxy-runtime/assembly";
import { getShared, setShared, lastCas } from "./host";

export const LEASE_TTL_MS: u64 = 1000;

export function encodeLease(owner: u32, expiresAtMs: u64): ArrayBuffer {
  const out = new ArrayBuffer(12);
  store<u32>(changetype<usize>(out), owner);
  store<u64>(changetype<usize>(out), expiresAtMs, 4);
  return out;
}

export function leaseOwner(value: ArrayBuffer | null): u32 {
  if (value == null || value.byteLength != 12) return 0;
  return load<u32>(changetype<usize>(value));
}

export function leaseExpiry(value: ArrayBuffer | null): u64 {
  if (value == null || value.byteLength != 12) return 0;
  return load<u64>(changetype<usize>(value), 4);
}

/**
 * Whether VM `me` should write the lease now: it holds it (renewal), or the lease is absent, malformed or
 * expired. The write itself must use the CAS read with `value`, so only one contender succeeds.
 */
export function shouldTakeLease(value: ArrayBuffer | null, me: u32, nowMs: u64): bool {
  const owner = leaseOwner(value);
  if (owner == 0 || owner == me) return true;
  const expiry = leaseExpiry(value);
  // An expiry further ahead than two TTLs was written by a clock that has since stepped back: expired. (Not
  // one TTL: the holder may have renewed a moment after this VM read its clock.)
  return nowMs >= expiry || expiry - nowMs > 2 * LEASE_TTL_MS;
}

/** One lease under `key`, taken or renewed by VM `vm` on every tick. */
export class Lease {
  leader: bool = false;

  constructor(
    private key: ArrayBuffer,
    private vm: u32,
  ) {}

  /** Takes or renews the lease; returns true when this VM has just become the leader. */
  renew(nowMs: u64): bool {
    const lease = getShared(this.key);
    const cas = lastCas;
    const was = this.leader;
    if (!shouldTakeLease(lease, this.vm, nowMs)) {
      this.leader = false;
      return false;
    }
    // Writing an absent key cannot be compared-and-swapped (cas 0 sets unconditionally), so every VM of a
    // new vm_id would win: that write only claims; the last claimer renews with a real CAS next tick.
    const ok =
      setShared(this.key, encodeLease(this.vm, nowMs + LEASE_TTL_MS), lease == null ? 0 : cas) == WasmResultValues.Ok;
    this.leader = ok && lease != null;
    return this.leader && !was;
  }
}
