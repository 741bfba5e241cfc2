// The peer companions this one relays its gateway reports to (docs/GATEWAYS.md): a static list (`--peers`)
// and/or the addresses of a headless Service (`--peers-dns`, resolved every 5 s), this process excluded.
// Every 20 ms the reports received directly since the last round go to each peer as POST /v1/gateway-relay,
// one request at a time per peer over a keep-alive connection, with a 1 s deadline. A failing peer is
// counted and logged when its state changes, never fatal; a peer that answers 409 is this companion itself
// (reached through an address not recognised as its own) and is left alone from then on.
import http from "node:http";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import type { GatewayExchange } from "./gateway-exchange";
import { RELAY_CONTENT_TYPE } from "./gateway-wire";
import type { Logger } from "./log";

export const RELAY_INTERVAL_MS = 20;
export const RELAY_TIMEOUT_MS = 1000;
export const PEER_RESOLVE_INTERVAL_MS = 5000;
/** Relay bodies waiting for one peer at most (one second of rounds); the oldest are dropped beyond. */
const MAX_QUEUED_BODIES = 20;

export interface PeerAddress {
  host: string;
  port: number;
}

export type RelaySendResult = "ok" | "error" | "rejected" | "dropped" | "self";

export interface PeerOptions {
  /** `--peers`: host names or literal IPs. */
  peers: PeerAddress[];
  /** `--peers-dns`: a name whose A/AAAA records are the peers, all on `port`. */
  dns: PeerAddress | undefined;
  apiToken: string | undefined;
  intervalMs?: number;
  timeoutMs?: number;
  resolveIntervalMs?: number;
}

export interface PeerDeps {
  /** The addresses of a name (default: node:dns lookup, A and AAAA, /etc/hosts and the search path too). */
  resolve?: (name: string) => Promise<string[]>;
  /** This host's addresses (default: os.networkInterfaces()). */
  localAddresses?: () => Set<string>;
  onSend?: (result: RelaySendResult) => void;
}

export interface PeerStatus {
  peer: string;
  source: "static" | "dns";
  state: "new" | "ok" | "failing" | "self";
  sent: number;
  failed: number;
  dropped: number;
  lastError: string | null;
}

interface Peer extends PeerStatus {
  host: string;
  port: number;
  queue: Uint8Array[];
  sending: http.ClientRequest | null;
}

export function peerKey(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1" || ip.startsWith("::ffff:127.");
}

function defaultLocalAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

async function defaultResolve(name: string): Promise<string[]> {
  return (await lookup(name, { all: true })).map((a) => a.address);
}

/**
 * Whether `host:port` is this process. A static peer: a literal IP of this host (or loopback) at the own
 * port. A DNS peer: any address of this host that is not loopback (a headless Service lists this pod), or
 * loopback at the own port (two companions on one machine peer through 127.0.0.1 with different ports).
 */
export function isOwnAddress(
  host: string,
  port: number,
  ownPort: number,
  local: Set<string>,
  source: "static" | "dns",
): boolean {
  if (isIP(host) === 0) return false;
  if (isLoopback(host)) return port === ownPort;
  if (!local.has(host)) return false;
  return source === "dns" || port === ownPort;
}

export class PeerRelay {
  private readonly peers = new Map<string, Peer>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private timer: NodeJS.Timeout | null = null;
  private resolveTimer: NodeJS.Timeout | null = null;
  private ownPort = 0;
  private dnsFailing: string | null = null;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly resolveIntervalMs: number;
  private readonly resolve: (name: string) => Promise<string[]>;
  private readonly localAddresses: () => Set<string>;

  constructor(
    private readonly exchange: Pick<GatewayExchange, "takeRelay">,
    private readonly options: PeerOptions,
    private readonly log: Logger,
    private readonly deps: PeerDeps = {},
  ) {
    this.intervalMs = options.intervalMs ?? RELAY_INTERVAL_MS;
    this.timeoutMs = options.timeoutMs ?? RELAY_TIMEOUT_MS;
    this.resolveIntervalMs = options.resolveIntervalMs ?? PEER_RESOLVE_INTERVAL_MS;
    this.resolve = deps.resolve ?? defaultResolve;
    this.localAddresses = deps.localAddresses ?? defaultLocalAddresses;
  }

  /** Whether any peer is configured (a companion without peers keeps no relay queue). */
  static configured(options: Pick<PeerOptions, "peers" | "dns">): boolean {
    return options.peers.length > 0 || options.dns !== undefined;
  }

  /** Starts relaying; `ownPort` is the port this companion listens on (to recognise itself). */
  start(ownPort: number): void {
    this.ownPort = ownPort;
    const local = this.localAddresses();
    for (const p of this.options.peers) {
      if (isOwnAddress(p.host, p.port, ownPort, local, "static")) {
        this.log.info("--peers: skipping this companion's own address", { peer: peerKey(p.host, p.port) });
        continue;
      }
      this.add(p.host, p.port, "static");
    }
    if (this.options.dns) {
      void this.refreshDns();
      this.resolveTimer = setInterval(() => void this.refreshDns(), this.resolveIntervalMs);
      this.resolveTimer.unref();
    }
    this.timer = setInterval(() => this.round(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.resolveTimer) clearInterval(this.resolveTimer);
    for (const p of this.peers.values()) p.sending?.destroy();
    this.peers.clear();
    this.agent.destroy();
  }

  /** Peers relayed to (this companion excluded). */
  get count(): number {
    let n = 0;
    for (const p of this.peers.values()) if (p.state !== "self") n++;
    return n;
  }

  status(): PeerStatus[] {
    return [...this.peers.values()].map(({ peer, source, state, sent, failed, dropped, lastError }) => ({
      peer,
      source,
      state,
      sent,
      failed,
      dropped,
      lastError,
    }));
  }

  private add(host: string, port: number, source: "static" | "dns"): void {
    const key = peerKey(host, port);
    if (this.peers.has(key)) return;
    this.peers.set(key, {
      peer: key,
      host,
      port,
      source,
      state: "new",
      sent: 0,
      failed: 0,
      dropped: 0,
      lastError: null,
      queue: [],
      sending: null,
    });
    this.log.info("relaying gateway reports to peer", { peer: key, source });
  }

  private async refreshDns(): Promise<void> {
    const dns = this.options.dns!;
    let addresses: string[];
    try {
      addresses = await this.resolve(dns.host);
    } catch (e) {
      const error = (e as Error).message;
      if (this.dnsFailing === null)
        this.log.warn("--peers-dns: resolving failed; keeping the peers known", { name: dns.host, error });
      this.dnsFailing = error;
      return;
    }
    if (this.stopped) return;
    if (this.dnsFailing !== null) this.log.info("--peers-dns: resolving again", { name: dns.host });
    this.dnsFailing = null;
    const local = this.localAddresses();
    const wanted = new Set<string>();
    for (const a of addresses) {
      if (isOwnAddress(a, dns.port, this.ownPort, local, "dns")) continue;
      wanted.add(peerKey(a, dns.port));
      this.add(a, dns.port, "dns");
    }
    for (const [key, p] of this.peers) {
      if (p.source !== "dns" || wanted.has(key)) continue;
      p.sending?.destroy();
      this.peers.delete(key);
      this.log.info("peer left --peers-dns", { peer: key });
    }
  }

  /** One relay round: every body taken from the exchange goes to every peer's queue. */
  private round(): void {
    const bodies: Uint8Array[] = [];
    for (let b = this.exchange.takeRelay(); b !== null; b = this.exchange.takeRelay()) bodies.push(b);
    if (bodies.length === 0) return;
    for (const p of this.peers.values()) {
      if (p.state === "self") continue;
      for (const b of bodies) p.queue.push(b);
      while (p.queue.length > MAX_QUEUED_BODIES) {
        p.queue.shift();
        p.dropped++;
        this.deps.onSend?.("dropped");
      }
      this.pump(p);
    }
  }

  private pump(p: Peer): void {
    if (p.sending || this.stopped || p.state === "self") return;
    const body = p.queue.shift();
    if (!body) return;
    this.send(p, body, (result, error) => {
      p.sending = null;
      if (this.stopped) return;
      this.deps.onSend?.(result);
      this.settle(p, result, error);
      if (this.peers.get(p.peer) === p) this.pump(p);
    });
  }

  private send(p: Peer, body: Uint8Array, done: (result: RelaySendResult, error: string | null) => void): void {
    let settled = false;
    const finish = (result: RelaySendResult, error: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      done(result, error);
    };
    const headers: http.OutgoingHttpHeaders = {
      "content-type": RELAY_CONTENT_TYPE,
      "content-length": body.length,
    };
    if (this.options.apiToken !== undefined) headers.authorization = `Bearer ${this.options.apiToken}`;
    const req = http.request(
      { host: p.host, port: p.port, method: "POST", path: "/v1/gateway-relay", agent: this.agent, headers },
      (res) => {
        res.resume();
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) finish("ok", null);
          else if (status === 409) finish("self", null);
          else finish("rejected", `HTTP ${status}`);
        });
        res.on("error", (e) => finish("error", e.message));
      },
    );
    p.sending = req;
    const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${this.timeoutMs}ms`)), this.timeoutMs);
    req.on("error", (e) => finish("error", e.message || (e as NodeJS.ErrnoException).code || "request failed"));
    req.end(body);
  }

  /** Counts a send and logs the peer's state changes (ok <-> failing, self) once each. */
  private settle(p: Peer, result: RelaySendResult, error: string | null): void {
    if (result === "ok") {
      p.sent++;
      if (p.state === "failing") this.log.info("peer reachable again", { peer: p.peer, failed: p.failed });
      p.state = "ok";
      p.lastError = null;
    } else if (result === "self") {
      p.state = "self";
      p.queue = [];
      this.log.info("peer is this companion itself (it answered 409); not relaying to it", { peer: p.peer });
    } else {
      p.failed++;
      p.lastError = error;
      if (p.state !== "failing") this.log.warn("relay to peer failing", { peer: p.peer, result, error });
      p.state = "failing";
    }
  }
}
