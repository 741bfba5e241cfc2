// LoRA adapter residency, vLLM-like: at most maxLoras adapters are resident; a request for an adapter that
// is not resident waits while it loads (loadDelayMs), which can start only when a slot is free or held by an
// adapter no running request uses (least recently used goes first). Requests for the base model never wait.
import type { Clock } from "./clock";

// A freshly loaded adapter is protected until the request it was loaded for uses it, so two waiting
// requests for different adapters cannot evict each other's adapter forever.
interface Slot {
  state: "loading" | "ready";
  lastUsed: number;
  used: boolean;
}

export class LoraSlots {
  private readonly slots = new Map<string, Slot>();
  /** Adapter loads started so far. */
  loads = 0;

  constructor(
    private readonly clock: Clock,
    readonly maxLoras: number,
    readonly loadDelayMs: number,
    private readonly onLoaded: () => void,
  ) {}

  /** Resident and ready adapters. */
  get resident(): string[] {
    return [...this.slots].filter(([, s]) => s.state === "ready").map(([n]) => n);
  }
  isReady(adapter: string): boolean {
    return this.slots.get(adapter)?.state === "ready";
  }
  isLoading(adapter: string): boolean {
    return this.slots.get(adapter)?.state === "loading";
  }

  /**
   * True if a request for `adapter` can run now. Otherwise starts loading it when a slot can be had (an
   * empty one, or the least recently used adapter that `busy` says no running request needs) and returns
   * false; the engine is woken through onLoaded when the load completes.
   */
  acquire(adapter: string | null, busy: (adapter: string) => boolean): boolean {
    if (adapter === null) return true;
    const slot = this.slots.get(adapter);
    if (slot) {
      if (slot.state === "ready") {
        slot.lastUsed = this.clock.now();
        slot.used = true;
        return true;
      }
      return false;
    }
    if (this.slots.size >= this.maxLoras) {
      let victim: string | null = null;
      let oldest = Infinity;
      for (const [name, s] of this.slots) {
        if (s.state === "ready" && s.used && !busy(name) && s.lastUsed < oldest) {
          oldest = s.lastUsed;
          victim = name;
        }
      }
      if (victim === null) return false;
      this.slots.delete(victim);
    }
    const loading: Slot = { state: "loading", lastUsed: this.clock.now(), used: false };
    this.slots.set(adapter, loading);
    this.loads++;
    this.clock.at(this.clock.now() + this.loadDelayMs, () => {
      loading.state = "ready";
      this.onLoaded();
    });
    return false;
  }
}
