// How in-process callers (tests, the virtual-time simulator) feed the filter and read its decision,
// without a companion: the same shared-data keys the filter's own fetcher writes (docs/SNAPSHOT.md).

/** Shared-data keys of the filter (vm_id scoped). */
export const SNAPSHOT_KEY = "endpoint-picker.snapshot";
/** 16 bytes: u64 snapshot version, u64 proxy-clock ms of the last contact with the companion. */
export const SNAPSHOT_META_KEY = "endpoint-picker.snapshot.meta";
export const DESTINATION_HEADER = "x-gateway-destination-endpoint";
export const FALLBACK_HEADER = "x-gateway-destination-endpoint-fallback";
export const SERVED_HEADER = "x-gateway-destination-endpoint-served";

export interface SharedDataLike {
  set(key: string, value: Uint8Array | string, cas?: number): number;
}

/**
 * Publishes `blob` as the fetcher would: the snapshot first, then the meta key that tells worker VMs a new
 * version exists. `nowMs` is the proxy clock (the emulator's `clock`, in ms) at delivery.
 */
export function publishSnapshot(shared: SharedDataLike, blob: Uint8Array, nowMs: number): void {
  const version = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getBigUint64(8, true);
  shared.set(SNAPSHOT_KEY, blob);
  shared.set(SNAPSHOT_META_KEY, snapshotMeta(version, nowMs));
}

export function snapshotMeta(version: bigint, contactMs: number): Uint8Array {
  const meta = new Uint8Array(16);
  const view = new DataView(meta.buffer);
  view.setBigUint64(0, version, true);
  view.setBigUint64(8, BigInt(Math.max(0, Math.floor(contactMs))), true);
  return meta;
}
