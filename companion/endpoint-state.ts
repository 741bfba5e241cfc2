// The normalised state of every endpoint in the pool: the last good metrics, when they were read, the last
// error. Staleness is computed on read from the clock, so it never lags behind a timer.
import type { EngineRegistry } from "./engines";
import type { EndpointMetrics } from "./extract";
import { byAddress, type PoolTarget } from "./types";
import type { SnapshotEndpoint } from "./snapshot";
import { podRole } from "./kube-pool";

/** The snapshot's role field of a target (its `llm-d.ai/role` label), absent without the label. */
function roleOf(t: PoolTarget): { role?: number } {
  const { role } = podRole(t.labels);
  return role !== 0 ? { role } : {};
}

interface Entry {
  target: PoolTarget;
  engine: string;
  metrics: EndpointMetrics | null;
  /** Wall clock (ms) of the last successful scrape. */
  updatedAt: number | null;
  error: string | null;
  /** The last scrape's connection was refused (nothing listens: the pod is probably gone). */
  unreachable: boolean;
  /** A scrape has completed (successfully or not) since the endpoint joined. */
  attempted: boolean;
}

/** What operators see (`GET /v1/endpoints`, `--once`): the last good metrics and where they stand. */
export interface EndpointView extends EndpointMetrics {
  address: string;
  engine: string;
  pod?: string;
  updatedAt: string | null;
  ageMs: number | null;
  stale: boolean;
  error: string | null;
}

export class EndpointStore {
  private entries = new Map<string, Entry>();
  private listeners: Array<() => void> = [];

  constructor(
    private engines: EngineRegistry,
    private readonly stalenessMs: number,
  ) {}

  /** Called after every change that can alter the snapshot. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  /** Replaces the pool. Known endpoints keep their metrics; a label change re-resolves the engine now. */
  setTargets(targets: readonly PoolTarget[]): void {
    const next = new Map<string, Entry>();
    for (const t of targets) {
      const old = this.entries.get(t.address);
      const engine = this.engines.resolve(t.labels).mapping.name;
      if (old && old.engine === engine) next.set(t.address, { ...old, target: t });
      else
        next.set(t.address, {
          target: t,
          engine,
          metrics: null,
          updatedAt: null,
          error: null,
          unreachable: false,
          attempted: false,
        });
    }
    this.entries = next;
    this.changed();
  }

  /** New engine definitions (config reload): engines are re-resolved, metrics of re-assigned endpoints dropped. */
  setEngines(engines: EngineRegistry): void {
    this.engines = engines;
    this.setTargets([...this.entries.values()].map((e) => e.target));
  }

  /**
   * The entry a scrape outcome may update, or null for an outcome that is out of date: the endpoint left the
   * pool, or its engine changed (relabel, config reload) while the scrape was in flight. The store and the
   * scraper resolve engines from the same registry, so a different engine can only be such a stale result;
   * applying it would bring the old engine (and its metrics) back until the next scrape.
   */
  private current(address: string, engine: string): Entry | null {
    const e = this.entries.get(address);
    return e !== undefined && e.engine === engine ? e : null;
  }

  /** Applies a successful scrape; false (nothing changed) when the outcome is out of date. */
  recordSuccess(address: string, engine: string, metrics: EndpointMetrics, at: number): boolean {
    const e = this.current(address, engine);
    if (!e) return false;
    Object.assign(e, { metrics, updatedAt: at, error: null, unreachable: false, attempted: true });
    this.changed();
    return true;
  }

  /**
   * Applies a failed scrape (the last good metrics are kept); false when the outcome is out of date. The
   * endpoint stays in the snapshot, flagged: the filter keeps routing to it by its own in-flight counts
   * (a metrics outage is not a traffic outage), unless `unreachable` (connection refused) and others are left.
   */
  recordFailure(address: string, engine: string, error: string, unreachable = false): boolean {
    const e = this.current(address, engine);
    if (!e) return false;
    Object.assign(e, { error, unreachable, attempted: true });
    this.changed();
    return true;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every endpoint has been scraped at least once (the readiness condition). */
  allAttempted(): boolean {
    for (const e of this.entries.values()) if (!e.attempted) return false;
    return true;
  }

  private isStale(e: Entry, now: number): boolean {
    return e.updatedAt === null || now - e.updatedAt > this.stalenessMs;
  }

  staleCount(now: number): number {
    let n = 0;
    for (const e of this.entries.values()) if (this.isStale(e, now)) n++;
    return n;
  }

  errorCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.error !== null) n++;
    return n;
  }

  /** The next instant at which a fresh endpoint turns stale (null when none will). */
  nextStaleAt(now: number): number | null {
    let next: number | null = null;
    for (const e of this.entries.values()) {
      if (e.updatedAt === null || this.isStale(e, now)) continue;
      const at = e.updatedAt + this.stalenessMs + 1;
      if (next === null || at < next) next = at;
    }
    return next;
  }

  private sorted(): Entry[] {
    return [...this.entries.values()].sort((a, b) => byAddress(a.target, b.target));
  }

  views(now: number): EndpointView[] {
    return this.sorted().map((e) => ({
      address: e.target.address,
      engine: e.engine,
      ...(e.target.pod ? { pod: e.target.pod } : {}),
      queued: e.metrics?.queued ?? null,
      running: e.metrics?.running ?? null,
      kvUsage: e.metrics?.kvUsage ?? null,
      lora: e.metrics?.lora ?? null,
      cache: e.metrics?.cache ?? null,
      models: e.metrics?.models ?? [],
      updatedAt: e.updatedAt === null ? null : new Date(e.updatedAt).toISOString(),
      ageMs: e.updatedAt === null ? null : now - e.updatedAt,
      stale: this.isStale(e, now),
      error: e.error,
    }));
  }

  /** The base models the pool's endpoints serve (what a request naming anything else asks of a LoRA adapter), sorted. */
  baseModels(): string[] {
    const names = new Set<string>();
    for (const e of this.entries.values()) for (const m of e.metrics?.models ?? []) names.add(m);
    return [...names].sort();
  }

  /** Snapshot records, sorted by address so equal pools encode to equal bytes. */
  snapshotEndpoints(now: number): SnapshotEndpoint[] {
    return this.sorted().map((e) => ({
      address: e.target.address,
      stale: this.isStale(e, now),
      error: e.error !== null,
      ...(e.error !== null && e.unreachable ? { unreachable: true } : {}),
      queued: e.metrics?.queued ?? null,
      running: e.metrics?.running ?? null,
      kvUsage: e.metrics?.kvUsage ?? null,
      lora: e.metrics?.lora ?? null,
      ...roleOf(e.target),
    }));
  }
}
