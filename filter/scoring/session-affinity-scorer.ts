// session-affinity-scorer (llm-d-router): 1 for the endpoint the request's session is pinned to, 0 for the
// others, so a session's requests stay on the pod that served it (its KV cache holds the conversation). The
// pin is either the token the filter wrote on the session's last response (llm-d's `x-session-token`:
// stateless, so it works across gateway replicas) or the binding of the request's session id (a header, a
// cookie or an agent's session header) in the table the worker VMs share (filter/session-table.ts). The token
// comes first. An endpoint that is not a candidate (ejected by the outlier detector, unusable, unreachable
// while others are left) or that is saturated (the utilization detector's thresholds) gets no bonus, so the
// pick moves, and the session is pinned again to wherever it goes. The filter reads the keys in the headers
// callback and binds the session after the pick (filter/picker.ts); this file is the pure part.
import { ScorerPlugin, Profile, Params, DecisionState, SessionKeys } from "./plugin";
import { FLAG_STALE, FLAG_KV } from "../snapshot";

/** Session ids and tokens longer than this are not keys (a header is the client's word, not a bound). */
export const MAX_SESSION_ID_BYTES: i32 = 256;
/** Our tokens are 11 bytes (15 base64 characters unpadded): anything longer names no endpoint of ours. */
const MAX_TOKEN_CHARS: i32 = 16;
/** Our token's text before base64: "ep:" and the endpoint's address hash in 8 hex digits. */
export const TOKEN_BYTES: i32 = 16; // base64 of the 11 bytes

export class SessionAffinityScorer extends ScorerPlugin {
  keys: SessionKeys = new SessionKeys();

  configure(params: Params): string {
    const token = params.text("tokenHeader");
    const headers = params.text("sessionHeaders");
    const cookie = params.text("cookieName");
    const ttl = params.number("evictionTtlSeconds");
    if (token == null) return "tokenHeader missing";
    if (headers == null) return "sessionHeaders missing";
    if (cookie == null) return "cookieName missing";
    if (!(ttl > 0)) return "evictionTtlSeconds missing or not above 0";
    const stage = params.text("profileName");
    if (stage != null && stage.length > 0)
      return "profileName " + stage + ": only the decode pick is pinned, not llm-d-router's per-stage instances";
    const keys = new SessionKeys();
    keys.tokenHeader = String.UTF8.encode(token);
    keys.headers = headerList(headers);
    keys.cookie = String.UTF8.encode(cookie);
    keys.ttlMs = <u64>min(ttl * 1000.0, 1e12);
    if (keys.tokenHeader.byteLength == 0 && keys.headers.length == 0 && keys.cookie.byteLength == 0)
      return "no token header, session header or cookie to read";
    this.keys = keys;
    return "";
  }

  join(profile: Profile): void {
    profile.session = this.keys;
    super.join(profile);
  }

  scoreRequest(d: DecisionState, out: StaticArray<f64>): void {
    const i = sessionTarget(d);
    if (i >= 0) unchecked((out[i] += this.weight));
  }
}

/** A comma-separated list of header names as keys (empty names dropped). */
export function headerList(list: string): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  const parts = list.split(",");
  for (let k = 0; k < parts.length; k++) {
    const name = parts[k].trim();
    if (name.length > 0) out.push(String.UTF8.encode(name));
  }
  return out;
}

/**
 * The candidate the request's session is pinned to, or -1: the token's endpoint if it may have the bonus,
 * else the session id's. Only a candidate that is not saturated may.
 */
export function sessionTarget(d: DecisionState): i32 {
  const facts = d.facts;
  let i = eligible(d, facts.sessionToken);
  if (i < 0 && facts.sessionBound != facts.sessionToken) i = eligible(d, facts.sessionBound);
  return i;
}

function eligible(d: DecisionState, hash: u32): i32 {
  if (hash == 0) return -1;
  const snap = d.snapshot!;
  const i = snap.indexOfHash(hash);
  if (i < 0) return -1;
  let candidate = false;
  for (let k = 0; k < d.candidateCount; k++)
    if (unchecked(d.candidates[k]) == i) {
      candidate = true;
      break;
    }
  if (!candidate) return -1;
  return saturatedAt(d, i) ? -1 : i;
}

/** The utilization detector's rule, as the decision's load pass applies it (nothing without a detector). */
export function saturatedAt(d: DecisionState, i: i32): bool {
  const p = d.profile;
  if (p.saturationQueue == Infinity) return false;
  const snap = d.snapshot!;
  const f = unchecked(snap.flags[i]);
  if ((f & FLAG_STALE) != 0) return true;
  if (i < d.waiting.length && unchecked(d.waiting[i]) >= p.saturationQueue) return true;
  return (f & FLAG_KV) != 0 && unchecked(snap.kv[i]) >= p.saturationKv;
}

/** 64-bit FNV-1a of a session id (0 is "no session", never handed out). */
export function sessionHash(ptr: usize, len: i32): u64 {
  let h: u64 = 0xcbf29ce484222325;
  for (let i = 0; i < len; i++) {
    h ^= <u64>load<u8>(ptr + <usize>i);
    h *= 0x100000001b3;
  }
  return h == 0 ? 1 : h;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX = "0123456789abcdef";

function b64Value(c: u32): i32 {
  if (c >= 0x41 && c <= 0x5a) return <i32>(c - 0x41);
  if (c >= 0x61 && c <= 0x7a) return <i32>(c - 0x61 + 26);
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30 + 52);
  if (c == 0x2b || c == 0x2d) return 62; // '+' (standard) or '-' (URL-safe)
  if (c == 0x2f || c == 0x5f) return 63; // '/' or '_'
  return -1;
}

function hexValue(c: u32): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30);
  if (c >= 0x61 && c <= 0x66) return <i32>(c - 0x61 + 10);
  if (c >= 0x41 && c <= 0x46) return <i32>(c - 0x41 + 10);
  return -1;
}

/** Decoded bytes of the last token (at most 12: 16 base64 characters). */
const TOKEN_TEXT = memory.data(16);

/**
 * The endpoint address hash a session token names, or 0 (no affinity) for anything else: not base64, too
 * long, or naming a pod in a form this snapshot cannot match (llm-d-router's `<namespace>/<name>`: the
 * snapshot carries no pod names). Never throws.
 */
export function decodeToken(ptr: usize, len: i32): u32 {
  while (len > 0 && load<u8>(ptr + <usize>(len - 1)) == 0x3d) len--; // padding is optional
  if (len <= 0 || len > MAX_TOKEN_CHARS) return 0;
  let acc: u32 = 0,
    bits = 0,
    n = 0;
  for (let i = 0; i < len; i++) {
    const v = b64Value(<u32>load<u8>(ptr + <usize>i));
    if (v < 0) return 0;
    acc = (acc << 6) | (<u32>v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n >= 16) return 0; // never past the buffer, whatever the length check above says
      store<u8>(TOKEN_TEXT + <usize>(n++), <u8>(acc >> (<u32>bits)));
    }
  }
  // "ep:" + 8 hex digits
  if (n != 11 || load<u8>(TOKEN_TEXT) != 0x65 || load<u8>(TOKEN_TEXT + 1) != 0x70 || load<u8>(TOKEN_TEXT + 2) != 0x3a)
    return 0;
  let h: u32 = 0;
  for (let i = 3; i < 11; i++) {
    const v = hexValue(<u32>load<u8>(TOKEN_TEXT + <usize>i));
    if (v < 0) return 0;
    h = (h << 4) | (<u32>v);
  }
  return h;
}

/** Writes the token naming the endpoint of address hash `hash` (TOKEN_BYTES of base64) at `out`. */
export function writeToken(hash: u32, out: usize): i32 {
  const text = TOKEN_TEXT;
  store<u8>(text, 0x65);
  store<u8>(text + 1, 0x70);
  store<u8>(text + 2, 0x3a);
  for (let i = 0; i < 8; i++) store<u8>(text + 3 + <usize>i, <u8>HEX.charCodeAt((hash >> (<u32>(28 - 4 * i))) & 15));
  store<u8>(text + 11, 0); // the last group's missing byte
  let o = 0;
  for (let g = 0; g < 12; g += 3) {
    const v =
      ((<u32>load<u8>(text + <usize>g)) << 16) |
      ((<u32>load<u8>(text + <usize>(g + 1))) << 8) |
      (<u32>load<u8>(text + <usize>(g + 2)));
    store<u8>(out + <usize>(o++), <u8>B64.charCodeAt((v >> 18) & 63));
    store<u8>(out + <usize>(o++), <u8>B64.charCodeAt((v >> 12) & 63));
    store<u8>(out + <usize>(o++), <u8>B64.charCodeAt((v >> 6) & 63));
    store<u8>(out + <usize>(o++), <u8>B64.charCodeAt(v & 63));
  }
  store<u8>(out + <usize>(TOKEN_BYTES - 1), 0x3d); // 11 bytes: one '=' of padding
  return TOKEN_BYTES;
}

/**
 * Where the value of cookie `name` is in a `cookie` header value (`len` bytes at `ptr`): its offset in the
 * high 32 bits and its length in the low ones, or -1 when the header has no such cookie (or an empty one).
 */
export function cookieValue(ptr: usize, len: i32, name: ArrayBuffer): i64 {
  const nameLen = name.byteLength;
  if (nameLen == 0) return -1;
  const nameP = changetype<usize>(name);
  let i = 0;
  while (i < len) {
    while (i < len && (load<u8>(ptr + <usize>i) == 0x20 || load<u8>(ptr + <usize>i) == 0x3b)) i++; // "; "
    const start = i;
    while (i < len && load<u8>(ptr + <usize>i) != 0x3b) i++;
    // one pair: [start, i)
    if (
      i - start > nameLen &&
      load<u8>(ptr + <usize>(start + nameLen)) == 0x3d &&
      memory.compare(ptr + <usize>start, nameP, <usize>nameLen) == 0
    ) {
      let vs = start + nameLen + 1,
        ve = i;
      while (ve > vs && load<u8>(ptr + <usize>(ve - 1)) == 0x20) ve--;
      if (ve - vs >= 2 && load<u8>(ptr + <usize>vs) == 0x22 && load<u8>(ptr + <usize>(ve - 1)) == 0x22) {
        vs++; // a quoted value (RFC 6265 allows DQUOTEs around it)
        ve--;
      }
      return ve > vs ? ((<i64>vs) << 32) | (<i64>(ve - vs)) : -1;
    }
  }
  return -1;
}
