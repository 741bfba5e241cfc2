// Endpoint addresses: literal `IP:PORT`, IPv6 as `[addr]:port`. Envoy's ORIGINAL_DST header only accepts
// literal IPs, so host names are refused here rather than at routing time.
import { isIPv4, isIPv6 } from "node:net";
import type { EndpointAddress } from "./types";

export function formatAddress(ip: string, port: number): string {
  return isIPv6(ip) ? `[${canonicalIPv6(ip)}]:${port}` : `${ip}:${port}`;
}

/** Canonical (compressed, lower-case) IPv6 text, so two spellings of one address compare equal. */
function canonicalIPv6(ip: string): string {
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

export function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : null;
}

/** Parses `10.0.0.1:8000` or `[fd00::1]:8000`; throws an Error naming what is wrong. */
export function parseEndpointAddress(text: string): EndpointAddress {
  const trimmed = text.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(trimmed);
  if (v6) {
    host = v6[1];
    portText = v6[2];
    if (!isIPv6(host)) throw new Error(`"${text}": "${host}" is not an IPv6 address`);
  } else {
    const colon = trimmed.lastIndexOf(":");
    if (colon < 0) throw new Error(`"${text}": expected IP:PORT`);
    host = trimmed.slice(0, colon);
    portText = trimmed.slice(colon + 1);
    if (isIPv6(host)) throw new Error(`"${text}": write IPv6 addresses as [addr]:port`);
    if (!isIPv4(host))
      throw new Error(
        `"${text}": "${host}" is not an IP address (host names are not allowed: the destination header must be a literal IP)`,
      );
  }
  const port = parsePort(portText);
  if (port === null) throw new Error(`"${text}": port "${portText}" is not a number from 1 to 65535`);
  return { ip: v6 ? canonicalIPv6(host) : host, port, address: formatAddress(host, port) };
}
