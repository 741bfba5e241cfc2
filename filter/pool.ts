// This worker VM's view of the pool: the decoded snapshot, how fresh it is, the in-flight counts aligned
// with it, and the shared-data keys every VM of the plugin uses (docs/FILTER.md lists them).
import { decodeSnapshot, Snapshot, lastError } from "./snapshot";
import { InFlight } from "./inflight";
import { getShared, encode, logWarn, scratch, readSharedToScratch } from "./host";

export const SNAPSHOT_KEY = encode("endpoint-picker.snapshot");
/** 16 bytes: u64 version, u64 proxy-clock ms of the last contact with the companion. */
export const META_KEY = encode("endpoint-picker.snapshot.meta");
export const LEASE_KEY = encode("endpoint-picker.lease");
/** u32 counter handing out worker VM numbers (part of each VM's identity). */
export const VM_COUNTER_KEY = encode("endpoint-picker.vms");
/** Every worker VM's in-flight counts, one section per VM (filter/inflight.ts). */
export const INFLIGHT_KEY = encode("endpoint-picker.inflight");
/** u64: this Envoy's gateway id in the exchange between gateway replicas (gateway-reporter.ts). */
export const GATEWAY_KEY = encode("endpoint-picker.gateway");

export class Meta {
  version: u64 = 0;
  contactMs: u64 = 0;
}

export function readMeta(out: Meta): bool {
  if (readSharedToScratch(META_KEY) != 16) return false; // read per request: no allocation
  out.version = load<u64>(scratch);
  out.contactMs = load<u64>(scratch, 8);
  return true;
}

export function encodeMeta(version: u64, contactMs: u64): ArrayBuffer {
  const out = new ArrayBuffer(16);
  store<u64>(changetype<usize>(out), version);
  store<u64>(changetype<usize>(out), contactMs, 8);
  return out;
}

export class Pool {
  snapshot: Snapshot | null = null;
  inflight: InFlight = new InFlight();
  /** Proxy-clock ms of the last contact with the companion, as the fetcher recorded it. */
  contactMs: u64 = 0;
  private meta: Meta = new Meta();
  /** Version whose blob failed to decode (logged once, not retried until the version changes). */
  private badVersion: u64 = 0;
  /**
   * The meta version this VM last loaded the blob for. Compared with the meta key, not with the blob's own
   * version: should two writers ever leave them different, a VM would otherwise decode on every request.
   */
  private loadedMeta: u64 = 0;

  /**
   * Brings the view up to date: reads the small meta key and decodes the snapshot only when its version
   * changed. Returns false when no snapshot has ever been delivered.
   */
  refresh(): bool {
    if (!readMeta(this.meta)) return this.snapshot != null;
    this.contactMs = this.meta.contactMs;
    const current = this.snapshot;
    if (
      (current != null && this.loadedMeta == this.meta.version) ||
      (this.badVersion != 0 && this.meta.version == this.badVersion)
    )
      return current != null;
    const blob = getShared(SNAPSHOT_KEY);
    if (blob == null) return current != null;
    const decoded = decodeSnapshot(blob);
    if (decoded == null) {
      this.badVersion = this.meta.version;
      logWarn("ignoring snapshot " + this.meta.version.toString() + ": " + lastError);
      return current != null;
    }
    this.adopt(decoded);
    this.loadedMeta = this.meta.version;
    return true;
  }

  /** Takes a snapshot this VM decoded itself (the fetcher's own copy, published under `metaVersion`). */
  adoptPublished(decoded: Snapshot, metaVersion: u64): void {
    this.adopt(decoded);
    this.loadedMeta = metaVersion;
  }

  adopt(decoded: Snapshot): void {
    this.reportProblems(decoded);
    this.snapshot = decoded;
    this.inflight.rebase(decoded);
  }

  /** Profile entries this filter cannot use, logged when they change (not on every version). */
  private problems: string = "";

  private reportProblems(snap: Snapshot): void {
    const problems = snap.profile.problems.join("; ");
    if (problems == this.problems) return;
    this.problems = problems;
    if (problems.length > 0) logWarn("snapshot profile: " + problems);
  }

  /** No snapshot, or no contact with the companion for longer than `limitMs` (a clock that went back counts as fresh). */
  isStale(nowMs: u64, limitMs: u64): bool {
    return this.snapshot == null || (nowMs > this.contactMs && nowMs - this.contactMs > limitMs);
  }
}
