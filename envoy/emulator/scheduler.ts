// Timers for ticks and http-call timeouts: real (setTimeout) or virtual (advanced by the caller).

export interface Timer {
  cancel(): void;
}

export interface Scheduler {
  nowMs(): number;
  after(ms: number, fn: () => void): Timer;
}

export class RealScheduler implements Scheduler {
  nowMs(): number {
    return performance.now();
  }
  after(ms: number, fn: () => void): Timer {
    // Unref'd: a host's ticks never keep a process (a test, a script) alive on their own.
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  }
}

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Virtual time: nothing fires until advance(); due timers fire in time order, then insertion order. */
export class VirtualScheduler implements Scheduler {
  private now = 0;
  private seq = 0;
  private pending: Pending[] = [];
  nowMs(): number {
    return this.now;
  }
  after(ms: number, fn: () => void): Timer {
    const p: Pending = { at: this.now + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.pending.push(p);
    return {
      cancel: () => {
        p.cancelled = true;
      },
    };
  }
  advance(ms: number): void {
    const target = this.now + ms;
    for (;;) {
      this.pending = this.pending.filter((p) => !p.cancelled);
      let next: Pending | undefined;
      for (const p of this.pending)
        if (p.at <= target && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq))) next = p;
      if (!next) break;
      this.pending.splice(this.pending.indexOf(next), 1);
      this.now = next.at;
      next.fn();
    }
    this.now = target;
  }
}
