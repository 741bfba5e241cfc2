// A cluster as Envoy's cluster manager holds it: its hosts (keyed "ip:port" / "[v6]:port" like Envoy's
// host map), requests in flight per host, outlier ejections, and the load balancer that picks a host for a
// request (round robin, least request, random, override_host with a fallback policy, ORIGINAL_DST).
// One UpstreamCluster per cluster per "Envoy process": the router and proxy_http_call share it, so an
// ejection seen by one applies to the other (Envoy has one outlier detector per cluster).
import { isIP } from "node:net";
import { Cluster, LbConfig, OutlierConfig, SocketAddress } from "./bootstrap";
import { OutlierDetector } from "./outlier";
import { Pairs } from "./pairs";
import { parseIpPort } from "./router";
import { RealScheduler, Scheduler } from "./scheduler";

export interface UpstreamHost {
  readonly address: string;
  readonly port: number;
  /** Envoy's address string: "10.0.0.1:8000", "[::1]:8000" (the host map key, upstream.address). */
  readonly key: string;
  /** Requests in flight to this host (least request). */
  active: number;
  /** Envoy's FAILED_OUTLIER_CHECK health flag. */
  ejected: boolean;
}

export function hostKey(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function newHost(address: string, port: number): UpstreamHost {
  return { address, port, key: hostKey(address, port), active: 0, ejected: false };
}

/** What a load balancer sees of a request (Envoy's LoadBalancerContext); one per request, kept across retries. */
export interface LbContext {
  /** The request headers as the router has them (after the filters). */
  headers: Pairs;
  /** override_host's per-request list (Envoy keeps it in filter state): built on the first pick, consumed by each. */
  overrideHosts?: string[];
  /** Retry host predicates (previous_hosts): true = pick again. */
  shouldSelectAnotherHost?(host: UpstreamHost): boolean;
  /** host_selection_retry_max_attempts. */
  hostSelectionRetryCount?: number;
}

/** The parts of a cluster's configuration the upstream side needs (a bootstrap Cluster has them all). */
export type UpstreamClusterConfig = Pick<
  Cluster,
  "name" | "type" | "lb" | "originalDstHeader" | "connectTimeoutMs" | "endpoints" | "outlierDetection"
>;

interface LoadBalancer {
  chooseHost(ctx: LbContext): UpstreamHost | null;
}

export class UpstreamCluster {
  readonly hosts: UpstreamHost[];
  private readonly byKey = new Map<string, UpstreamHost>();
  readonly outlier: OutlierDetector | null;
  private readonly lb: LoadBalancer;

  constructor(
    readonly config: UpstreamClusterConfig,
    scheduler: Scheduler = new RealScheduler(),
    private readonly random: () => number = Math.random,
  ) {
    // Each address is one host (Envoy's host map has one entry per address).
    this.hosts = [];
    for (const e of config.endpoints) {
      const h = newHost(e.address, e.port);
      if (this.byKey.has(h.key)) continue;
      this.byKey.set(h.key, h);
      this.hosts.push(h);
    }
    this.outlier = config.outlierDetection
      ? new OutlierDetector(config.outlierDetection, this.hosts, scheduler, random)
      : null;
    this.lb = config.type === "ORIGINAL_DST" ? new OriginalDstLb(config.originalDstHeader!) : this.makeLb(config.lb!);
  }

  get name(): string {
    return this.config.name;
  }
  get connectTimeoutMs(): number {
    return this.config.connectTimeoutMs;
  }

  host(key: string): UpstreamHost | undefined {
    return this.byKey.get(key);
  }

  /** A host for the request, or null (Envoy: no healthy upstream). */
  chooseHost(ctx: LbContext): UpstreamHost | null {
    return this.lb.chooseHost(ctx);
  }

  /**
   * The hosts a load balancer picks from: the healthy (not ejected) ones, or all of them when fewer than
   * the panic threshold (50%, Envoy's default healthy_panic_threshold) are healthy.
   */
  hostsToUse(): UpstreamHost[] {
    const healthy = this.hosts.filter((h) => !h.ejected);
    if (this.hosts.length === 0) return healthy;
    return (100 * healthy.length) / this.hosts.length < 50 ? this.hosts : healthy;
  }

  close(): void {
    this.outlier?.close();
  }

  private makeLb(c: LbConfig): LoadBalancer {
    switch (c.kind) {
      case "round_robin":
        return new RoundRobinLb(this);
      case "least_request":
        return new LeastRequestLb(this, this.random, c.choiceCount);
      case "random":
        return new RandomLb(this, this.random);
      case "override_host":
        return new OverrideHostLb(this, c.headers, this.makeLb(c.fallback));
    }
  }
}

/**
 * Envoy's ZoneAwareLoadBalancerBase::chooseHost: up to host_selection_retry_max_attempts extra picks while a
 * retry host predicate rejects the host; after the last one the host is used anyway.
 */
abstract class BaseLb implements LoadBalancer {
  constructor(protected readonly cluster: UpstreamCluster) {}
  chooseHost(ctx: LbContext): UpstreamHost | null {
    const attempts = (ctx.hostSelectionRetryCount ?? 0) + 1;
    let host: UpstreamHost | null = null;
    for (let i = 0; i < attempts; i++) {
      host = this.chooseHostOnce();
      if (!host || !ctx.shouldSelectAnotherHost || !ctx.shouldSelectAnotherHost(host)) return host;
    }
    return host;
  }
  protected abstract chooseHostOnce(): UpstreamHost | null;
}

/** Unweighted round robin over the hosts to use (Envoy starts at a random index per worker; this at 0). */
class RoundRobinLb extends BaseLb {
  private next = 0;
  protected chooseHostOnce(): UpstreamHost | null {
    const hosts = this.cluster.hostsToUse();
    if (hosts.length === 0) return null;
    return hosts[this.next++ % hosts.length];
  }
}

/** Envoy's unweighted least request: the fewest active requests of `choiceCount` random draws (first wins ties). */
class LeastRequestLb extends BaseLb {
  constructor(
    cluster: UpstreamCluster,
    private readonly random: () => number,
    private readonly choiceCount: number,
  ) {
    super(cluster);
  }
  protected chooseHostOnce(): UpstreamHost | null {
    const hosts = this.cluster.hostsToUse();
    if (hosts.length === 0) return null;
    if (hosts.length === 1) return hosts[0];
    let best: UpstreamHost | null = null;
    for (let i = 0; i < this.choiceCount; i++) {
      const c = hosts[Math.floor(this.random() * hosts.length)];
      if (!best || c.active < best.active) best = c;
    }
    return best;
  }
}

class RandomLb extends BaseLb {
  constructor(
    cluster: UpstreamCluster,
    private readonly random: () => number,
  ) {
    super(cluster);
  }
  protected chooseHostOnce(): UpstreamHost | null {
    const hosts = this.cluster.hostsToUse();
    if (hosts.length === 0) return null;
    return hosts[Math.floor(this.random() * hosts.length)];
  }
}

/**
 * envoy.load_balancing_policies.override_host (load_balancer.cc): on the request's first pick, the list is
 * built from each source in order: the first value of the header, split on ",", empty pieces skipped, each
 * trimmed. Every pick (first attempt and each retry) consumes entries until one names a host of the cluster;
 * entries the cluster does not know are skipped. An empty or exhausted list leaves the pick to the fallback
 * policy. Override hosts are not checked for health, and the retry host predicates do not apply to them.
 */
class OverrideHostLb implements LoadBalancer {
  constructor(
    private readonly cluster: UpstreamCluster,
    private readonly headers: string[],
    private readonly fallback: LoadBalancer,
  ) {}
  chooseHost(ctx: LbContext): UpstreamHost | null {
    if (ctx.overrideHosts === undefined) ctx.overrideHosts = overrideHostList(ctx.headers, this.headers);
    while (ctx.overrideHosts.length > 0) {
      const host = this.cluster.host(ctx.overrideHosts.shift()!);
      if (host) return host;
    }
    return this.fallback.chooseHost(ctx);
  }
}

export function overrideHostList(request: Pairs, sources: string[]): string[] {
  const out: string[] = [];
  for (const name of sources) {
    const first = request.find(([k]) => k === name);
    if (!first) continue;
    for (const piece of first[1].split(",")) {
      const t = piece.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, "");
      if (t) out.push(t);
    }
  }
  return out;
}

/** ORIGINAL_DST with use_http_header: the first value of the header, as it is, must be a literal IP:port. */
class OriginalDstLb implements LoadBalancer {
  constructor(private readonly header: string) {}
  chooseHost(ctx: LbContext): UpstreamHost | null {
    const first = ctx.headers.find(([k]) => k === this.header);
    const a = first ? parseIpPort(first[1]) : null;
    return a ? newHost(a.address, a.port) : null;
  }
}

/** The upstream clusters of one Envoy process, by name. */
export class ClusterManager {
  private readonly clusters = new Map<string, UpstreamCluster>();
  constructor(
    private readonly scheduler: Scheduler = new RealScheduler(),
    private readonly random: () => number = Math.random,
  ) {}
  add(config: UpstreamClusterConfig): UpstreamCluster {
    this.clusters.get(config.name)?.close();
    const c = new UpstreamCluster(config, this.scheduler, this.random);
    this.clusters.set(config.name, c);
    return c;
  }
  get(name: string): UpstreamCluster | undefined {
    return this.clusters.get(name);
  }
  has(name: string): boolean {
    return this.clusters.has(name);
  }
  close(): void {
    for (const c of this.clusters.values()) c.close();
  }
}

/** A static round-robin cluster of `endpoints` (the in-process API's ClusterSpec). */
export function staticCluster(
  name: string,
  endpoints: SocketAddress[],
  opts: { lb?: LbConfig; outlierDetection?: OutlierConfig | null; connectTimeoutMs?: number } = {},
): UpstreamClusterConfig {
  return {
    name,
    type: "STATIC",
    lb: opts.lb ?? { kind: "round_robin" },
    originalDstHeader: null,
    connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
    endpoints,
    outlierDetection: opts.outlierDetection ?? null,
  };
}
