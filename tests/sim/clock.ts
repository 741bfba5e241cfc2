// The one time source of the engine model: real time (timers, optionally sped up) for the HTTP pods, or
// virtual time (an event queue run as fast as the CPU allows) for the fleet simulation.

export interface Cancel {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds of simulated time since the clock started. */
  now(): number;
  /** Runs fn when simulated time reaches timeMs (at once if it already has, but never inline). */
  at(timeMs: number, fn: () => void): Cancel;
  /** Unix epoch ms of simulated time 0 (what a server's wall clock would read then). */
  readonly epochMs: number;
}

interface Event {
  t: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Discrete-event clock: a binary heap ordered by time, then by scheduling order (deterministic). */
export class VirtualClock implements Clock {
  private time = 0;
  private seq = 0;
  private heap: Event[] = [];
  readonly epochMs: number;

  constructor(epochMs = Date.UTC(2025, 0, 1)) {
    this.epochMs = epochMs;
  }

  now(): number {
    return this.time;
  }

  at(timeMs: number, fn: () => void): Cancel {
    const e: Event = { t: Math.max(timeMs, this.time), seq: this.seq++, fn, cancelled: false };
    this.push(e);
    return {
      cancel: () => {
        e.cancelled = true;
      },
    };
  }

  get pending(): number {
    return this.heap.length;
  }

  /** Runs events in order until none is left, or the next one is after `untilMs`. Returns events run. */
  run(untilMs = Infinity): number {
    let n = 0;
    while (this.heap.length > 0 && this.heap[0].t <= untilMs) {
      const e = this.pop();
      if (e.cancelled) continue;
      this.time = e.t;
      e.fn();
      n++;
    }
    // Time moves to untilMs only if something is still scheduled after it (an idle clock stays put).
    if (untilMs !== Infinity && untilMs > this.time && this.heap.length > 0) this.time = untilMs;
    return n;
  }

  private less(a: Event, b: Event): boolean {
    return a.t < b.t || (a.t === b.t && a.seq < b.seq);
  }

  private push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): Event {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/** Wall-clock time scaled by `timeScale` (10 = ten simulated seconds per real second). */
export class RealClock implements Clock {
  private readonly start = performance.now();
  readonly epochMs = Date.now();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(readonly timeScale = 1) {
    if (!(timeScale > 0)) throw new Error(`time scale must be > 0 (got ${timeScale})`);
  }

  now(): number {
    return (performance.now() - this.start) * this.timeScale;
  }

  at(timeMs: number, fn: () => void): Cancel {
    const t = setTimeout(
      () => {
        this.timers.delete(t);
        fn();
      },
      Math.max(0, (timeMs - this.now()) / this.timeScale),
    );
    this.timers.add(t);
    return {
      cancel: () => {
        clearTimeout(t);
        this.timers.delete(t);
      },
    };
  }

  /** Cancels every pending timer (shutdown). */
  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
