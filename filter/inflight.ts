// Requests this proxy has sent to each endpoint and not yet finished. Scraped metrics lag (the companion
// scrapes every 50 ms and vLLM's own gauges trail by seconds), so between scrapes a burst would all land on
// the pod that looked idle; the in-flight counts close that gap.
//
// Each worker VM counts its own streams exactly (no shared-data write per request) and publishes them as its
// section of one shared table on every tick (compare-and-swap); each VM adds the other sections (at most a
// tick old) to its own counts. One key, so reading every VM's counts is one shared-data read.
// Counts are keyed by the endpoint's address hash, so they survive snapshot changes; the arrays used for
// scoring are aligned with the current snapshot's endpoint order. Each section also carries the VM's
// requests per (endpoint, LoRA adapter) (adapters.ts).
import { Snapshot } from "./snapshot";
import { AdapterLoad } from "./adapters";

/** A published table older than this belongs to a VM that stopped ticking (crashed or torn down). */
export const REMOTE_MAX_AGE_MS: u64 = 2000;
const TABLE_MAGIC: u32 = 0x33464c49; // "ILF3"

export class InFlight {
  /** This VM's counts, aligned with `snap`. */
  local: StaticArray<i32> = new StaticArray<i32>(0);
  /** Other VMs' counts as last read, aligned with `snap`. */
  remote: StaticArray<i32> = new StaticArray<i32>(0);
  private snap: Snapshot | null = null;
  /** Local counts of endpoints that left the snapshot while requests were still out: hash, count. */
  private orphanHash: u32[] = [];
  private orphanCount: i32[] = [];
  changed: bool = true;
  /** Ids of the other VMs with a fresh section, as of the last `readOthers`. */
  otherVms: Array<u32> = new Array<u32>();
  /** Live gateway replicas sharing their counts (1: this one alone, or the companion not answering). */
  gateways: i32 = 1;
  /**
   * Per endpoint, this gateway's own order of preference among near-equally loaded endpoints (0..1, from a
   * hash of the gateway id, the address and the epoch; scaled by GATEWAY_SPREAD of the mean load). The other gateways' counts arrive tens of
   * milliseconds late; gateways that all ranked endpoints alike would all send that window's requests to
   * the same least loaded one. Used only while other gateways share their counts.
   */
  spread: StaticArray<f64> = new StaticArray<f64>(0);
  private gatewayId: u64 = 0;
  private spreadEpoch: u64 = 0;
  /** Requests in flight per (endpoint, adapter), this VM's and the others'. */
  adapters: AdapterLoad = new AdapterLoad();

  /** Re-aligns the counts with a new snapshot (endpoints are matched by address hash). */
  rebase(next: Snapshot): void {
    const local = new StaticArray<i32>(next.count);
    const remote = new StaticArray<i32>(next.count);
    const prev = this.snap;
    if (prev != null) {
      for (let i = 0; i < prev.count; i++) {
        const n = unchecked(this.local[i]);
        if (n > 0) this.carry(next, local, unchecked(prev.addrHash[i]), n);
        const r = unchecked(this.remote[i]);
        if (r > 0) {
          const j = next.indexOfHash(unchecked(prev.addrHash[i]));
          if (j >= 0) unchecked((remote[j] += r));
        }
      }
    }
    // Endpoints that come back (a pod flapping Ready) get their counts back.
    for (let k = this.orphanHash.length - 1; k >= 0; k--) {
      const j = next.indexOfHash(unchecked(this.orphanHash[k]));
      if (j >= 0) {
        unchecked((local[j] += this.orphanCount[k]));
        this.orphanHash.splice(k, 1);
        this.orphanCount.splice(k, 1);
      }
    }
    this.local = local;
    this.remote = remote;
    this.snap = next;
    this.spread = spreadOf(next, this.gatewayId, this.spreadEpoch);
    this.adapters.rebase(next);
    this.changed = true;
  }

  private carry(next: Snapshot, local: StaticArray<i32>, hash: u32, n: i32): void {
    const j = next.indexOfHash(hash);
    if (j >= 0) {
      unchecked((local[j] += n));
      return;
    }
    this.orphanHash.push(hash);
    this.orphanCount.push(n);
  }

  /** This Envoy's gateway id (once the reporter has created it). */
  setGateway(id: u64): void {
    if (id == this.gatewayId) return;
    this.gatewayId = id;
    const s = this.snap;
    if (s != null) this.spread = spreadOf(s, id, this.spreadEpoch);
  }

  /**
   * Draws new preferences every SPREAD_EPOCH_MS (every VM of this Envoy alike): a preference held for good
   * could leave an endpoint last in every gateway's order, idle until the others are SPREAD requests busier.
   */
  refreshSpread(nowMs: u64): void {
    const epoch = nowMs / SPREAD_EPOCH_MS;
    if (epoch == this.spreadEpoch) return;
    this.spreadEpoch = epoch;
    const s = this.snap;
    if (s != null) this.spread = spreadOf(s, this.gatewayId, epoch);
  }

  total(i: i32): i32 {
    return unchecked(this.local[i]) + unchecked(this.remote[i]);
  }

  /** A stream was sent to endpoint `i` of the current snapshot. */
  started(i: i32): void {
    if (i < 0 || i >= this.local.length) return;
    unchecked(this.local[i]++);
    this.changed = true;
  }

  /** A stream sent to the endpoint with address hash `hash` finished. */
  finished(hash: u32): void {
    this.changed = true;
    const s = this.snap;
    if (s != null) {
      const j = s.indexOfHash(hash);
      if (j >= 0 && j < this.local.length && unchecked(this.local[j]) > 0) {
        unchecked(this.local[j]--);
        return;
      }
    }
    for (let k = 0; k < this.orphanHash.length; k++) {
      if (unchecked(this.orphanHash[k]) == hash) {
        if (--this.orphanCount[k] <= 0) {
          this.orphanHash.splice(k, 1);
          this.orphanCount.splice(k, 1);
        }
        return;
      }
    }
  }

  /**
   * Bytes of this VM's section: u32 vmId, u32 pairs, u32 triples, u32 0, u64 publishedAtMs, then pairs of
   * (u32 address hash, u32 count), then triples of (u32 address hash, u32 adapter hash, u32 count).
   */
  private sectionSize(): i32 {
    const s = this.snap;
    let pairs = this.orphanHash.length;
    if (s != null) for (let i = 0; i < s.count; i++) if (unchecked(this.local[i]) > 0) pairs++;
    return SECTION_HEADER + 8 * pairs + 12 * this.adapters.localEntries();
  }

  private writeSection(at: usize, vm: u32, nowMs: u64): void {
    const s = this.snap;
    let w = at + SECTION_HEADER;
    if (s != null) {
      for (let i = 0; i < s.count; i++) {
        const n = unchecked(this.local[i]);
        if (n <= 0) continue;
        store<u32>(w, unchecked(s.addrHash[i]));
        store<u32>(w, <u32>n, 4);
        w += 8;
      }
    }
    for (let k = 0; k < this.orphanHash.length; k++) {
      store<u32>(w, unchecked(this.orphanHash[k]));
      store<u32>(w, <u32>unchecked(this.orphanCount[k]), 4);
      w += 8;
    }
    const pairsEnd = w;
    w = this.adapters.writeEntries(w);
    store<u32>(at, vm);
    store<u32>(at, <u32>((pairsEnd - at - SECTION_HEADER) / 8), 4);
    store<u32>(at, <u32>((w - pairsEnd) / 12), 8);
    store<u32>(at, 0, 12);
    store<u64>(at, nowMs, 16);
  }

  /**
   * The shared table after this VM publishes: `old` (may be null or malformed) with this VM's section
   * replaced and sections of VMs that stopped publishing dropped.
   */
  publish(old: ArrayBuffer | null, vm: u32, nowMs: u64): ArrayBuffer {
    const size = this.sectionSize();
    const table = replaceSection(old, vm, size, nowMs);
    this.writeSection(changetype<usize>(table.buffer) + <usize>table.at, vm, nowMs);
    this.changed = false;
    return table.buffer;
  }

  /** Replaces `remote` (and the adapters' remote counts) with the sums of the other VMs' fresh sections. */
  readOthers(table: ArrayBuffer | null, vm: u32, nowMs: u64): void {
    for (let i = 0; i < this.remote.length; i++) unchecked((this.remote[i] = 0));
    this.adapters.clearRemote();
    this.otherVms.length = 0;
    this.gateways = 1;
    const s = this.snap;
    const walker = new SectionWalker(table);
    while (walker.next()) {
      if (walker.vm == vm || !fresh(walker.publishedAtMs, nowMs)) continue;
      this.otherVms.push(walker.vm);
      if (walker.vm == PEERS_VM) this.gateways = max(<i32>walker.extra, 1);
      if (s == null) continue;
      const base = changetype<usize>(table) + <usize>walker.at + SECTION_HEADER;
      for (let k = 0; k < walker.pairs; k++) {
        const j = s.indexOfHash(load<u32>(base + <usize>(8 * k)));
        const n = load<u32>(base + <usize>(8 * k), 4);
        if (j >= 0 && n < 0x100000) unchecked((this.remote[j] += <i32>n));
      }
      const triples = base + <usize>(8 * walker.pairs);
      for (let k = 0; k < walker.triples; k++) {
        const n = load<u32>(triples + <usize>(12 * k), 8);
        if (n < 0x100000)
          this.adapters.addRemote(
            load<u32>(triples + <usize>(12 * k)),
            load<u32>(triples + <usize>(12 * k), 4),
            <i32>n,
          );
      }
    }
    this.adapters.retouch();
  }
}

/** The widest preference offset between two endpoints, as a share of the mean load (see InFlight.spread). */
export const GATEWAY_SPREAD: f64 = 1.0;

const SPREAD_EPOCH_MS: u64 = 1000;

function spreadOf(s: Snapshot, gatewayId: u64, epoch: u64): StaticArray<f64> {
  const out = new StaticArray<f64>(s.count);
  for (let i = 0; i < s.count; i++) {
    let h =
      (gatewayId ^ (<u64>unchecked(s.addrHash[i]) * 0x9e3779b97f4a7c15) ^ (epoch * 0xd6e8feb86659fd93)) +
      0x632be59bd9b4e019;
    h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9;
    h ^= h >> 32;
    unchecked((out[i] = <f64>(h >> 11) / 9007199254740992.0));
  }
  return out;
}

const TABLE_HEADER: i32 = 8;
const SECTION_HEADER: i32 = 24;
/**
 * The section of the other gateway replicas (docs/GATEWAYS.md): written by this Envoy's reporter from the
 * companion's answer under this id, which no worker VM has (VM ids are never 0). Every VM adds it to its
 * remote counts like another VM's, and it ages out like one when the answers stop.
 */
export const PEERS_VM: u32 = 0;

class NewTable {
  constructor(
    public buffer: ArrayBuffer,
    public at: i32,
  ) {}
}

/** `old` with `vm`'s section dropped (and stale ones), room for a new section of `size` bytes at the end. */
function replaceSection(old: ArrayBuffer | null, vm: u32, size: i32, nowMs: u64): NewTable {
  const keepAt = new Array<i32>();
  const keepSize = new Array<i32>();
  let total = TABLE_HEADER + size;
  const walker = new SectionWalker(old);
  while (walker.next()) {
    if (walker.vm == vm || !fresh(walker.publishedAtMs, nowMs)) continue;
    keepAt.push(walker.at);
    keepSize.push(walker.size);
    total += walker.size;
  }
  const out = new ArrayBuffer(total);
  const o = changetype<usize>(out);
  store<u32>(o, TABLE_MAGIC);
  store<u32>(o, <u32>(keepAt.length + 1), 4);
  let w = o + TABLE_HEADER;
  for (let k = 0; k < keepAt.length; k++) {
    memory.copy(w, changetype<usize>(old) + <usize>keepAt[k], <usize>keepSize[k]);
    w += <usize>keepSize[k];
  }
  return new NewTable(out, <i32>(w - o));
}

/**
 * `old` with the section of `vm` replaced by `pairs` (address hash, count) and `triples` (address hash,
 * adapter hash, count) copied from `src` (8 * pairs bytes, then 12 * triples).
 */
export function withSection(
  old: ArrayBuffer | null,
  vm: u32,
  src: usize,
  pairs: i32,
  triples: i32,
  nowMs: u64,
  extra: u32 = 0,
): ArrayBuffer {
  const bytes = 8 * pairs + 12 * triples;
  const table = replaceSection(old, vm, SECTION_HEADER + bytes, nowMs);
  const at = changetype<usize>(table.buffer) + <usize>table.at;
  store<u32>(at, vm);
  store<u32>(at, <u32>pairs, 4);
  store<u32>(at, <u32>triples, 8);
  store<u32>(at, extra, 12);
  store<u64>(at, nowMs, 16);
  memory.copy(at + <usize>SECTION_HEADER, src, <usize>bytes);
  return table.buffer;
}

/**
 * This Envoy's requests in flight (every fresh section but the peers'), summed per endpoint into `pairs`
 * (address hash, count) and per (endpoint, adapter) into `triples` (address hash, adapter hash, count), as
 * the gateway report carries them.
 */
export function collectCounts(table: ArrayBuffer | null, nowMs: u64, pairs: Array<u32>, triples: Array<u32>): void {
  const perEndpoint = new Map<u32, u32>();
  const perAdapter = new Map<u64, u32>();
  const walker = new SectionWalker(table);
  while (walker.next()) {
    if (walker.vm == PEERS_VM || !fresh(walker.publishedAtMs, nowMs)) continue;
    const base = changetype<usize>(table) + <usize>walker.at + SECTION_HEADER;
    for (let k = 0; k < walker.pairs; k++) {
      const h = load<u32>(base + <usize>(8 * k));
      const n = load<u32>(base + <usize>(8 * k), 4);
      perEndpoint.set(h, (perEndpoint.has(h) ? perEndpoint.get(h) : 0) + n);
    }
    const t = base + <usize>(8 * walker.pairs);
    for (let k = 0; k < walker.triples; k++) {
      const key = ((<u64>load<u32>(t + <usize>(12 * k))) << 32) | (<u64>load<u32>(t + <usize>(12 * k), 4));
      const n = load<u32>(t + <usize>(12 * k), 8);
      perAdapter.set(key, (perAdapter.has(key) ? perAdapter.get(key) : 0) + n);
    }
  }
  const hashes = perEndpoint.keys();
  for (let k = 0; k < hashes.length; k++) {
    const n = perEndpoint.get(hashes[k]);
    if (n == 0) continue;
    pairs.push(hashes[k]);
    pairs.push(n);
  }
  const keys = perAdapter.keys();
  for (let k = 0; k < keys.length; k++) {
    const n = perAdapter.get(keys[k]);
    if (n == 0) continue;
    triples.push(<u32>(keys[k] >> 32));
    triples.push(<u32>keys[k]);
    triples.push(n);
  }
}

/** Published within REMOTE_MAX_AGE_MS either way (a clock stepped back does not keep a dead VM fresh). */
function fresh(publishedAtMs: u64, nowMs: u64): bool {
  return publishedAtMs >= nowMs
    ? publishedAtMs - nowMs <= REMOTE_MAX_AGE_MS
    : nowMs - publishedAtMs <= REMOTE_MAX_AGE_MS;
}

/** Walks the sections of a shared in-flight table, stopping at the first malformed byte. */
class SectionWalker {
  at: i32 = 0;
  size: i32 = 0;
  vm: u32 = 0;
  pairs: i32 = 0;
  triples: i32 = 0;
  publishedAtMs: u64 = 0;
  /** The section's fourth word: 0 for a VM's; the peers' section puts the live gateway count there. */
  extra: u32 = 0;
  private left: i32 = 0;
  private len: i32 = 0;
  private ptr: usize = 0;

  constructor(table: ArrayBuffer | null) {
    if (table != null && table.byteLength >= TABLE_HEADER && load<u32>(changetype<usize>(table)) == TABLE_MAGIC) {
      this.ptr = changetype<usize>(table);
      this.len = table.byteLength;
      this.left = <i32>load<u32>(this.ptr, 4);
      this.at = TABLE_HEADER;
    }
  }

  next(): bool {
    if (this.left <= 0) return false;
    if (this.size > 0) this.at += this.size;
    if (this.at > this.len - SECTION_HEADER) {
      this.left = 0;
      return false;
    }
    const p = this.ptr + <usize>this.at;
    const pairs = <i32>load<u32>(p, 4);
    const room = this.len - this.at - SECTION_HEADER;
    if (pairs < 0 || pairs > room / 8) {
      this.left = 0;
      return false;
    }
    const triples = <i32>load<u32>(p, 8);
    if (triples < 0 || triples > (room - 8 * pairs) / 12) {
      this.left = 0;
      return false;
    }
    this.vm = load<u32>(p);
    this.pairs = pairs;
    this.triples = triples;
    this.publishedAtMs = load<u64>(p, 16);
    this.extra = load<u32>(p, 12);
    this.size = SECTION_HEADER + 8 * pairs + 12 * triples;
    this.left--;
    return true;
  }
}
