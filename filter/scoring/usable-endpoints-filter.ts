// Ours, always first (not a profile plugin): the candidates of a snapshot. Never an endpoint with an address
// that cannot go into a header. An endpoint whose metrics cannot be read (FLAG_ERROR, FLAG_STALE) is still a
// candidate: the companion lists only discovered, Ready pods, so it most likely serves inference, and the
// decision scores it by the proxy's own in-flight counts (a metrics outage must not become a traffic outage;
// a pod that fails requests is the outlier detector's job). One whose metrics port refused the connection
// (FLAG_UNREACHABLE: the pod is probably gone) is used only when no other endpoint is left.
import { Snapshot, FLAG_UNUSABLE, FLAG_UNREACHABLE } from "../snapshot";

/** Writes the candidates' indices to `out` (sized to the snapshot) and returns how many there are. */
export function usableEndpoints(snap: Snapshot, out: StaticArray<i32>): i32 {
  const n = snap.count;
  let reachable = 0;
  for (let i = 0; i < n; i++) if ((unchecked(snap.flags[i]) & (FLAG_UNUSABLE | FLAG_UNREACHABLE)) == 0) reachable++;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const f = unchecked(snap.flags[i]);
    if ((f & FLAG_UNUSABLE) != 0) continue;
    if (reachable > 0 && (f & FLAG_UNREACHABLE) != 0) continue;
    unchecked((out[count++] = i));
  }
  return count;
}
