// Envoy's route matching: virtual host by :authority, first matching route; and the ORIGINAL_DST header
// parse. (The host of a route's cluster comes from upstream.ts, the request's journey from router-filter.ts.)
import { isIP } from "node:net";
import { HeaderMatch, Route, SocketAddress, VirtualHost } from "./bootstrap";
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
  // A request without :path (an HTTP/1.1 CONNECT) has the empty path: no "/" prefix matches it, as in Envoy.
  const path = (firstValue(headers, ":path") ?? "").split("?")[0];
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
