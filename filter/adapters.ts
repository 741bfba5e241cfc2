// Which models this worker VM recently sent to each endpoint. vLLM's vllm:lora_requests_info lists only the
// adapters of running and waiting requests, and it lags like every gauge: a burst for an adapter would
// all land on a pod with a "free slot" before any scrape shows the adapter there. Remembering our own
// sends for a few seconds closes that gap: a recent send counts as the adapter being active there, and
// recent adapters the metrics do not show yet count against the endpoint's free slots.
import { Snapshot } from "./snapshot";

/** How long a send counts as the adapter being resident (above vLLM's gauge lag). */
export const RECENT_MS: u64 = 3000;
const SLOTS: i32 = 8;
const UNLISTED_CACHE_MS: u64 = 100;

export class RecentAdapters {
  private snap: Snapshot | null = null;
  private models: StaticArray<u32> = new StaticArray<u32>(0);
  private until: StaticArray<u64> = new StaticArray<u64>(0);
  /** Endpoints with an entry that may not have expired (so a request looks at these, not at every endpoint). */
  touched: Array<i32> = new Array<i32>();
  private isTouched: StaticArray<bool> = new StaticArray<bool>(0);
  private unlistedAt: StaticArray<u64> = new StaticArray<u64>(0);
  private unlistedCount: StaticArray<i32> = new StaticArray<i32>(0);

  /** Re-aligns with a new snapshot, keeping entries of endpoints still in it. */
  rebase(next: Snapshot): void {
    const models = new StaticArray<u32>(next.count * SLOTS);
    const until = new StaticArray<u64>(next.count * SLOTS);
    const prev = this.snap;
    if (prev != null) {
      for (let i = 0; i < prev.count; i++) {
        const j = next.indexOfHash(unchecked(prev.addrHash[i]));
        if (j < 0) continue;
        memory.copy(changetype<usize>(models) + <usize>(j * SLOTS * 4), changetype<usize>(this.models) + <usize>(i * SLOTS * 4), <usize>(SLOTS * 4));
        memory.copy(changetype<usize>(until) + <usize>(j * SLOTS * 8), changetype<usize>(this.until) + <usize>(i * SLOTS * 8), <usize>(SLOTS * 8));
      }
    }
    this.models = models;
    this.until = until;
    this.snap = next;
    this.isTouched = new StaticArray<bool>(next.count);
    this.unlistedAt = new StaticArray<u64>(next.count);
    this.unlistedCount = new StaticArray<i32>(next.count);
    this.touched.length = 0;
    for (let j = 0; j < next.count; j++) {
      for (let k = j * SLOTS; k < (j + 1) * SLOTS; k++) {
        if (unchecked(until[k]) > 0) { this.touched.push(j); unchecked(this.isTouched[j] = true); break; }
      }
    }
  }

  /** Drops endpoints whose entries have all expired from `touched`. */
  prune(nowMs: u64): void {
    let kept = 0;
    for (let t = 0; t < this.touched.length; t++) {
      const i = unchecked(this.touched[t]);
      let live = false;
      for (let k = i * SLOTS; k < (i + 1) * SLOTS; k++) if (unchecked(this.until[k]) > nowMs) { live = true; break; }
      if (live) unchecked(this.touched[kept++] = i);
      else unchecked(this.isTouched[i] = false);
    }
    this.touched.length = kept;
  }

  /** Endpoint `i` was sent `model` at `nowMs`. */
  note(i: i32, model: u32, nowMs: u64): void {
    if (i < 0 || (i + 1) * SLOTS > this.models.length) return;
    const base = i * SLOTS;
    let slot = base;
    for (let k = base; k < base + SLOTS; k++) {
      if (unchecked(this.models[k]) == model) { slot = k; break; }
      if (unchecked(this.until[k]) < unchecked(this.until[slot])) slot = k; // else the oldest
    }
    unchecked(this.models[slot] = model);
    unchecked(this.until[slot] = nowMs + RECENT_MS);
    unchecked(this.unlistedAt[i] = 0);
    if (!unchecked(this.isTouched[i])) { unchecked(this.isTouched[i] = true); this.touched.push(i); }
  }

  isRecent(i: i32, model: u32, nowMs: u64): bool {
    const base = i * SLOTS;
    if (base + SLOTS > this.models.length) return false;
    for (let k = base; k < base + SLOTS; k++) {
      if (unchecked(this.models[k]) == model && unchecked(this.until[k]) > nowMs) return true;
    }
    return false;
  }

  /**
   * Recent models at endpoint `i` that are known adapters (some endpoint lists them) but `i` does not list.
   * Cached per endpoint for UNLISTED_CACHE_MS: it changes with sends and snapshots, not per request.
   */
  unlisted(i: i32, snap: Snapshot, nowMs: u64): i32 {
    const base = i * SLOTS;
    if (base + SLOTS > this.models.length) return 0;
    const at = unchecked(this.unlistedAt[i]);
    if (at != 0 && nowMs >= at && nowMs - at < UNLISTED_CACHE_MS) return unchecked(this.unlistedCount[i]);
    const n = this.countUnlisted(i, snap, nowMs);
    unchecked(this.unlistedAt[i] = nowMs == 0 ? 1 : nowMs);
    unchecked(this.unlistedCount[i] = n);
    return n;
  }

  private countUnlisted(i: i32, snap: Snapshot, nowMs: u64): i32 {
    const base = i * SLOTS;
    let n = 0;
    for (let k = base; k < base + SLOTS; k++) {
      const m = unchecked(this.models[k]);
      if (unchecked(this.until[k]) <= nowMs || !snap.isAdapter(m)) continue;
      if (!snap.listsAdapter(i, m)) n++;
    }
    return n;
  }
}
