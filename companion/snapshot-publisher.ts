// Builds EPS1 snapshots and decides their versions; holds long-poll requests until a newer version exists.
//
// A new version is published only when the encoded content (profile, endpoints, base models) changes.
// Versions are `max(previous + 1, Date.now())`: strictly increasing within a process, and comparable across a
// restart or between two replicas behind one Service, since both follow the wall clock. Rebuilds are coalesced to at most one per `minIntervalMs` (the refresh interval), so a pool
// of many endpoints scraped at different instants yields one version per interval, not one per scrape.
import { encodeSnapshot, type SnapshotContent } from "./snapshot";
import { encodeFormat1 } from "./snapshot-format1";

export type { SnapshotContent };

export interface PublishedSnapshot {
  version: bigint;
  blob: Buffer;
  builtAtMs: number;
  /** The same snapshot in format 1, for filters that predate format 2 (made on their first request). */
  format1(): Buffer;
}

interface Waiter {
  after: bigint;
  resolve: (snapshot: PublishedSnapshot | null) => void;
  timer: NodeJS.Timeout;
}

export interface PublisherOptions {
  minIntervalMs: number;
  now?: () => number;
  /** Called when a version is published (metrics). */
  onPublish?: (snapshot: PublishedSnapshot) => void;
  /** A rebuild failed (the previous snapshot stays current). */
  onError?: (error: Error) => void;
  /** When the content will change by itself (the next endpoint turning stale); null = never. */
  nextChangeAt?: (now: number) => number | null;
}

export class SnapshotPublisher {
  private currentSnapshot: PublishedSnapshot;
  private contentKey: Buffer;
  private waiters = new Set<Waiter>();
  private pending: NodeJS.Timeout | null = null;
  private expiryTimer: NodeJS.Timeout | null = null;
  private lastBuildAt = -Infinity;
  private readonly now: () => number;
  private stopped = false;

  constructor(
    private readonly build: (now: number) => SnapshotContent,
    private readonly opts: PublisherOptions,
  ) {
    this.now = opts.now ?? Date.now;
    const now = this.now();
    const content = build(now);
    this.contentKey = this.keyOf(content);
    this.currentSnapshot = this.encode(BigInt(Math.floor(now)), content, now);
    this.opts.onPublish?.(this.currentSnapshot);
    this.armExpiry(now);
  }

  get current(): PublishedSnapshot {
    return this.currentSnapshot;
  }

  get waiting(): number {
    return this.waiters.size;
  }

  /** The whole content encoded with the volatile fields zeroed: equal keys mean nothing a picker uses changed. */
  private keyOf(content: SnapshotContent): Buffer {
    return encodeSnapshot({ ...content, version: 0n, generatedAtMs: 0 });
  }

  private encode(version: bigint, content: SnapshotContent, now: number): PublishedSnapshot {
    const snapshot = { version, generatedAtMs: now, ...content };
    let format1: Buffer | null = null;
    return {
      version,
      blob: encodeSnapshot(snapshot),
      builtAtMs: now,
      format1: () => (format1 ??= encodeFormat1(snapshot)),
    };
  }

  /** Something changed: rebuild now, or at the end of the current coalescing window. */
  requestUpdate(): void {
    if (this.pending || this.stopped) return;
    const wait = Math.max(0, this.lastBuildAt + this.opts.minIntervalMs - this.now());
    this.pending = setTimeout(() => {
      this.pending = null;
      this.safeRebuild();
    }, wait);
  }

  /** Rebuilds immediately; publishes a new version if the content changed. Returns whether it did. */
  rebuild(): boolean {
    const now = this.now();
    this.lastBuildAt = now;
    const content = this.build(now);
    this.armExpiry(now);
    const key = this.keyOf(content);
    if (key.equals(this.contentKey)) return false;
    this.contentKey = key;
    const prev = this.currentSnapshot.version;
    const wall = BigInt(Math.floor(now));
    this.currentSnapshot = this.encode(wall > prev ? wall : prev + 1n, content, now);
    this.opts.onPublish?.(this.currentSnapshot);
    for (const w of [...this.waiters]) {
      if (this.currentSnapshot.version > w.after) this.settle(w, this.currentSnapshot);
    }
    return true;
  }

  /** Timer-driven rebuilds must not take the process down; the previous snapshot stays served. */
  private safeRebuild(): void {
    try {
      this.rebuild();
    } catch (e) {
      this.opts.onError?.(e as Error);
    }
  }

  /** Staleness flips without any scrape: rebuild when the next endpoint turns stale. */
  private armExpiry(now: number): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    const at = this.opts.nextChangeAt?.(now) ?? null;
    if (at === null || this.stopped) return;
    this.expiryTimer = setTimeout(
      () => {
        this.expiryTimer = null;
        this.safeRebuild();
      },
      Math.max(0, at - now),
    );
    this.expiryTimer.unref();
  }

  private settle(w: Waiter, value: PublishedSnapshot | null): void {
    clearTimeout(w.timer);
    this.waiters.delete(w);
    w.resolve(value);
  }

  /**
   * The current snapshot if its version is above `after`, else waits until one is or `timeoutMs` passes
   * (null). `cancel()` drops the wait (client went away).
   */
  waitForNewer(after: bigint, timeoutMs: number): { result: Promise<PublishedSnapshot | null>; cancel: () => void } {
    if (this.currentSnapshot.version > after)
      return { result: Promise.resolve(this.currentSnapshot), cancel: () => {} };
    let waiter!: Waiter;
    const result = new Promise<PublishedSnapshot | null>((resolve) => {
      waiter = { after, resolve, timer: setTimeout(() => this.settle(waiter, null), timeoutMs) };
      this.waiters.add(waiter);
    });
    return {
      result,
      cancel: () => {
        if (this.waiters.has(waiter)) this.settle(waiter, null);
      },
    };
  }

  stop(): void {
    this.stopped = true;
    if (this.pending) clearTimeout(this.pending);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    for (const w of [...this.waiters]) this.settle(w, null);
  }
}
