// Ours, always first (not a profile plugin): the candidates of a snapshot. Never an endpoint in error or with
// an address that cannot go into a header; endpoints with stale metrics only when no endpoint is fresh
// (then the proxy's own in-flight counts still spread the load).
import { Snapshot, FLAG_ERROR, FLAG_UNUSABLE, FLAG_STALE } from "../snapshot";

/** Writes the candidates' indices to `out` (sized to the snapshot) and returns how many there are. */
export function usableEndpoints(snap: Snapshot, out: StaticArray<i32>): i32 {
  const n = snap.count;
  let fresh = 0;
  for (let i = 0; i < n; i++) if ((unchecked(snap.flags[i]) & (FLAG_ERROR | FLAG_UNUSABLE | FLAG_STALE)) == 0) fresh++;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const f = unchecked(snap.flags[i]);
    if ((f & (FLAG_ERROR | FLAG_UNUSABLE)) != 0) continue;
    if (fresh > 0 && (f & FLAG_STALE) != 0) continue;
    unchecked((out[count++] = i));
  }
  return count;
}
