// Envoy's router decisions: virtual host by :authority, first matching route, and the upstream host of
// the route's cluster (ORIGINAL_DST from a request header, or a load-balanced static endpoint).
import { isIP } from "node:net";
import { Cluster, HeaderMatch, Route, SocketAddress, VirtualHost } from "./bootstrap";
import { Pairs } from "./pairs";

function firstValue(headers: Pairs, name: string): string | undefined {
  for (const [k, v] of headers) if (k === name) return v;
  return undefined;
}

function domainMatches(domain: string, host: string): boolean {
  if (domain === "*") return true;
  const bare = host.replace(/:\d+$/, "");
  if (domain === host || domain === bare) return true;
  if (domain.startsWith("*")) return host.endsWith(domain.slice(1)) || bare.endsWith(domain.slice(1));
  if (domain.endsWith("*")) return host.startsWith(domain.slice(0, -1));
  return false;
}

function headerMatches(m: HeaderMatch, headers: Pairs): boolean {
  const v = firstValue(headers, m.name);
  let ok: boolean;
  if (m.kind === "present") ok = (v !== undefined) === m.present;
  else if (v === undefined)
    return false; // Envoy: a value matcher never matches an absent header, inverted or not
  else if (m.kind === "exact") ok = v === m.value;
  else if (m.kind === "prefix") ok = v.startsWith(m.value);
  else if (m.kind === "suffix") ok = v.endsWith(m.value);
  else ok = v.includes(m.value);
  return m.invert ? !ok : ok;
}

export function matchRoute(vhosts: VirtualHost[], headers: Pairs): Route | null {
  const authority = (firstValue(headers, ":authority") ?? "").toLowerCase();
  const vh = vhosts.find((v) => v.domains.some((d) => domainMatches(d, authority)));
  if (!vh) return null;
  const fullPath = firstValue(headers, ":path") ?? "/";
  const path = fullPath.split("?")[0];
  for (const r of vh.routes) {
    if (r.prefix !== undefined && !path.startsWith(r.prefix)) continue;
    if (r.path !== undefined && path !== r.path) continue;
    if (!r.headers.every((m) => headerMatches(m, headers))) continue;
    return r;
  }
  return null;
}

/**
 * Envoy's parse of an ORIGINAL_DST header (Network::Utility::parseInternetAddressAndPortNoThrow): "[v6]:port"
 * split at the last "]:", else "v4:port" split at the last ":"; the address must be a literal IP (inet_pton,
 * no names, no surrounding spaces); the port goes through absl::SimpleAtoi into a uint64 (ASCII whitespace
 * around it and a leading "+" are accepted, leading zeros too) and must be <= 65535. Port 0 parses: such a
 * host exists and the connection to it fails.
 */
export function parseIpPort(value: string): SocketAddress | null {
  let ip: string, portText: string, family: 4 | 6;
  if (value.startsWith("[")) {
    const at = value.lastIndexOf("]:");
    if (at < 0) return null;
    ip = value.slice(1, at);
    portText = value.slice(at + 2);
    family = 6;
  } else {
    const at = value.lastIndexOf(":");
    if (at < 0) return null;
    ip = value.slice(0, at);
    portText = value.slice(at + 1);
    family = 4;
  }
  const m = /^[ \t\n\v\f\r]*\+?(\d+)[ \t\n\v\f\r]*$/.exec(portText);
  if (!m) return null;
  const port = Number(m[1]);
  if (port > 65535) return null;
  if (isIP(ip) !== family) return null;
  return { address: ip, port };
}

/** A cluster's host picker; `done` must be called when the request to the host ends (LEAST_REQUEST). */
export class ClusterPicker {
  private rr = 0;
  private active: number[];
  constructor(
    readonly cluster: Cluster,
    private random: () => number = Math.random,
  ) {
    this.active = cluster.endpoints.map(() => 0);
  }

  pick(headers: Pairs): { host: SocketAddress; done: () => void } | null {
    const c = this.cluster;
    if (c.type === "ORIGINAL_DST") {
      // Only the first value counts, as it is (no trimming); anything but a literal IP:port means no host.
      const v = firstValue(headers, c.originalDstHeader!);
      const host = v === undefined ? null : parseIpPort(v);
      return host ? { host, done: () => {} } : null;
    }
    const n = c.endpoints.length;
    if (n === 0) return null;
    let i: number;
    if (c.lbPolicy === "RANDOM") i = Math.floor(this.random() * n);
    else if (c.lbPolicy === "LEAST_REQUEST" && n > 1) {
      // Envoy's unweighted least-request: best of two random choices (choice_count 2).
      const a = Math.floor(this.random() * n),
        b = Math.floor(this.random() * n);
      i = this.active[b] < this.active[a] ? b : a;
    } else {
      i = this.rr % n;
      this.rr = (this.rr + 1) % n;
    }
    this.active[i]++;
    let released = false;
    return {
      host: c.endpoints[i],
      done: () => {
        if (!released) {
          released = true;
          this.active[i]--;
        }
      },
    };
  }

  activeRequests(): number[] {
    return [...this.active];
  }
}
