// Which LoRA adapters this proxy has requests in flight for, per endpoint.
//
// vLLM runs a LoRA request only while its adapter holds one of the endpoint's max_lora slots, and frees a
// slot only when no running request uses its adapter: a request sent where every slot is held by other
// busy adapters waits until one of them drains, which under steady traffic can be never. The metrics
// (vllm:lora_requests_info: adapters of running and waiting requests) show this, but lag like every gauge,
// so a burst for an adapter would all land on a pod that "had a free slot". The proxy's own requests per
// (endpoint, adapter) are exact and current: each worker VM counts its own and shares them through the
// in-flight table (inflight.ts), so each VM also sees the others' within a tick.
import { Snapshot } from "./snapshot";

/** Distinct adapters tracked per endpoint (vLLM's --max-loras is at most a few; more are not tracked). */
const SLOTS: i32 = 16;

export class AdapterLoad {
  private snap: Snapshot | null = null;
  /** Per endpoint of `snap`, SLOTS entries: adapter (model hash, 0 = free), this VM's and other VMs' counts. */
  private models: StaticArray<u32> = new StaticArray<u32>(0);
  private local: StaticArray<i32> = new StaticArray<i32>(0);
  private remote: StaticArray<i32> = new StaticArray<i32>(0);
  /** Endpoints with an adapter in flight (so a request corrects these, not every endpoint). */
  touched: Array<i32> = new Array<i32>();
  private isTouched: StaticArray<bool> = new StaticArray<bool>(0);

  /** Re-aligns with a new snapshot: this VM's counts follow their endpoints (by address); others' are re-read on the tick. */
  rebase(next: Snapshot): void {
    const n = next.count * SLOTS;
    const models = new StaticArray<u32>(n);
    const local = new StaticArray<i32>(n);
    const prev = this.snap;
    if (prev != null) {
      for (let i = 0; i < prev.count; i++) {
        const j = next.indexOfHash(unchecked(prev.addrHash[i]));
        if (j < 0) continue; // requests still out to a departed endpoint no longer occupy anything we route to
        memory.copy(
          changetype<usize>(models) + <usize>(j * SLOTS * 4),
          changetype<usize>(this.models) + <usize>(i * SLOTS * 4),
          <usize>(SLOTS * 4),
        );
        memory.copy(
          changetype<usize>(local) + <usize>(j * SLOTS * 4),
          changetype<usize>(this.local) + <usize>(i * SLOTS * 4),
          <usize>(SLOTS * 4),
        );
      }
    }
    this.models = models;
    this.local = local;
    this.remote = new StaticArray<i32>(n);
    this.isTouched = new StaticArray<bool>(next.count);
    this.snap = next;
    this.retouch();
  }

  /** The slot of `model` at endpoint `i`, or -1. */
  private slotOf(i: i32, model: u32): i32 {
    const base = i * SLOTS;
    if (i < 0 || base + SLOTS > this.models.length) return -1;
    for (let k = base; k < base + SLOTS; k++) if (unchecked(this.models[k]) == model) return k;
    return -1;
  }

  /** A slot for `model` at endpoint `i`: its own, else one no count holds (-1 when all are held). */
  private claim(i: i32, model: u32): i32 {
    const own = this.slotOf(i, model);
    if (own >= 0) return own;
    const base = i * SLOTS;
    if (i < 0 || base + SLOTS > this.models.length) return -1;
    for (let k = base; k < base + SLOTS; k++) {
      if (unchecked(this.local[k]) == 0 && unchecked(this.remote[k]) == 0) {
        unchecked((this.models[k] = model));
        return k;
      }
    }
    return -1;
  }

  private touch(i: i32): void {
    if (!unchecked(this.isTouched[i])) {
      unchecked((this.isTouched[i] = true));
      this.touched.push(i);
    }
  }

  /** This VM sent a request for adapter `model` to endpoint `i`. */
  started(i: i32, model: u32): void {
    if (model == 0) return;
    const k = this.claim(i, model);
    if (k < 0) return;
    unchecked(this.local[k]++);
    this.touch(i);
  }

  /** A request of this VM for adapter `model` to the endpoint with address hash `hash` finished. */
  finished(hash: u32, model: u32): void {
    const s = this.snap;
    if (s == null || model == 0) return;
    const k = this.slotOf(s.indexOfHash(hash), model);
    if (k >= 0 && unchecked(this.local[k]) > 0) unchecked(this.local[k]--);
  }

  /** Some request (of any VM of this proxy) for `model` is in flight at endpoint `i`. */
  busy(i: i32, model: u32): bool {
    const k = this.slotOf(i, model);
    return k >= 0 && unchecked(this.local[k]) + unchecked(this.remote[k]) > 0;
  }

  /**
   * Adapters in flight at endpoint `i` that its metrics do not list yet (each holds a slot the metrics do
   * not show). Only names some endpoint lists count: a name never listed anywhere may be an alias of the
   * base model, which holds no slot.
   */
  unlisted(i: i32, snap: Snapshot): i32 {
    const base = i * SLOTS;
    if (i < 0 || base + SLOTS > this.models.length) return 0;
    let n = 0;
    for (let k = base; k < base + SLOTS; k++) {
      if (unchecked(this.local[k]) + unchecked(this.remote[k]) <= 0) continue;
      const model = unchecked(this.models[k]);
      if (snap.isAdapter(model) && !snap.listsAdapter(i, model)) n++;
    }
    return n;
  }

  /** Rebuilds `touched` from the counts (on the tick: endpoints whose adapters all drained leave it). */
  retouch(): void {
    const s = this.snap;
    this.touched.length = 0;
    if (s == null) return;
    for (let i = 0; i < s.count; i++) {
      let any = false;
      for (let k = i * SLOTS; k < (i + 1) * SLOTS; k++) {
        if (unchecked(this.local[k]) + unchecked(this.remote[k]) > 0) {
          any = true;
          break;
        }
      }
      unchecked((this.isTouched[i] = any));
      if (any) this.touched.push(i);
    }
  }

  // Sharing with the other VMs, as (endpoint address hash, adapter hash, count) triples of this VM's counts.

  localEntries(): i32 {
    let n = 0;
    for (let k = 0; k < this.local.length; k++) if (unchecked(this.local[k]) > 0) n++;
    return n;
  }

  /** Writes this VM's triples at `w` (12 bytes each); returns the address after them. */
  writeEntries(w: usize): usize {
    const s = this.snap;
    if (s == null) return w;
    for (let k = 0; k < this.local.length; k++) {
      const n = unchecked(this.local[k]);
      if (n <= 0) continue;
      store<u32>(w, unchecked(s.addrHash[k / SLOTS]));
      store<u32>(w, unchecked(this.models[k]), 4);
      store<u32>(w, <u32>n, 8);
      w += 12;
    }
    return w;
  }

  clearRemote(): void {
    memory.fill(changetype<usize>(this.remote), 0, <usize>(this.remote.length << 2));
  }

  /** Adds another VM's count for `model` at the endpoint with address hash `hash`. */
  addRemote(hash: u32, model: u32, n: i32): void {
    const s = this.snap;
    if (s == null || model == 0 || n <= 0) return;
    const k = this.claim(s.indexOfHash(hash), model);
    if (k >= 0) unchecked((this.remote[k] += n));
  }
}
