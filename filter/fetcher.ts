// Delivery of snapshots into shared data: the worker VM holding the lease long-polls the companion
// (GET <snapshotPath>?after=<version>) with proxy_http_call and writes each new snapshot, then its meta key,
// into shared data. On errors it backs off and the last snapshot stays. Every VM reads the result (pool.ts).
import { BufferTypeValues } from "@solo-io/proxy-runtime/assembly";
import { PluginConfig } from "./config";
import { Pool, Meta, readMeta, encodeMeta, SNAPSHOT_KEY, META_KEY, LEASE_KEY } from "./pool";
import { decodeSnapshot, lastError, Snapshot } from "./snapshot";
import { Lease } from "./lease";
import { CompanionCall } from "./companion-call";
import { getShared, setShared, lastCas, httpCallHeader, getBuffer, encode, logInfo, logWarn } from "./host";
import { Metrics } from "./metrics";

const BACKOFF_MIN_MS: u32 = 100;
const BACKOFF_MAX_MS: u32 = 5000;
/** Polls start at least this far apart even when answers come at once (a companion ignoring `after`). */
const MIN_POLL_GAP_MS: u64 = 20;
const STATUS = encode(":status");

export class Fetcher {
  private lease: Lease;
  private token: u32 = 0;
  private nextPollMs: u64 = 0;
  private lastPollMs: u64 = 0;
  private backoffMs: u32 = 0;
  private failing: bool = false;
  private call: CompanionCall;
  private meta: Meta = new Meta();

  constructor(
    private cfg: PluginConfig,
    private vm: u32,
    private pool: Pool,
    private metrics: Metrics,
  ) {
    this.call = new CompanionCall(cfg);
    this.lease = new Lease(LEASE_KEY, vm);
  }

  /** Called on every tick: take or renew the lease, and poll when leading and idle. */
  tick(nowMs: u64): void {
    if (this.lease.renew(nowMs)) logInfo("this worker now fetches snapshots from " + this.cfg.companionCluster);
    if (this.leader && this.token == 0 && nowMs >= this.nextPollMs) this.poll(nowMs);
  }

  get leader(): bool {
    return this.lease.leader;
  }

  private poll(nowMs: u64): void {
    this.lastPollMs = nowMs;
    const known = readMeta(this.meta) ? this.meta.version : 0;
    const path = known > 0 ? this.cfg.snapshotPath + "?after=" + known.toString() : this.cfg.snapshotPath;
    this.token = this.call.start(
      "GET",
      path,
      "application/vnd.endpoint-picker.snapshot; format=2",
      this.cfg.pollTimeoutMs,
    );
    if (this.token == 0)
      this.failed(
        nowMs,
        "the host refused the call to cluster " +
          this.cfg.companionCluster +
          " (is it defined, with a reachable host?)",
      );
  }

  /** The root context's http-call callback; returns false for a token that is not ours. */
  onResponse(token: u32, headers: u32, bodySize: u32, nowMs: u64): bool {
    if (token != this.token || token == 0) return false;
    this.token = 0;
    const status: ArrayBuffer | null = headers == 0 ? null : httpCallHeader(STATUS);
    const code = status == null ? "" : String.UTF8.decode(status!);
    if (code == "200" && bodySize > this.cfg.maxSnapshotBytes) {
      // Never copied into the VM: a runaway or hostile answer costs Envoy's buffer, not this VM's memory.
      this.failed(
        nowMs,
        "the companion sent a snapshot of " +
          bodySize.toString() +
          " bytes, over maxSnapshotBytes " +
          this.cfg.maxSnapshotBytes.toString(),
      );
    } else if (code == "200") {
      const body = getBuffer(BufferTypeValues.HttpCallResponseBody, 0, bodySize);
      const decoded: Snapshot | null = body == null ? null : decodeSnapshot(body!);
      if (decoded == null) {
        this.failed(
          nowMs,
          "the companion sent a snapshot that does not decode: " + (body == null ? "no body" : lastError),
        );
        return true;
      }
      const known = readMeta(this.meta) ? this.meta.version : 0;
      // Only the lease holder writes (an answer to a poll sent before losing the lease is dropped), and
      // never an older version over a newer one another fetcher wrote meanwhile.
      if (this.leader && decoded.version >= known) {
        setShared(SNAPSHOT_KEY, body!);
        setShared(META_KEY, encodeMeta(decoded.version, nowMs));
        this.pool.adoptPublished(decoded, decoded.version);
        this.pool.contactMs = nowMs;
      }
      this.metrics.count(this.metrics.fetchOk);
      this.succeeded(nowMs);
    } else if (code == "304") {
      // Refresh the contact time without racing a writer of a new version (compare-and-swap on the meta key).
      const meta = getShared(META_KEY);
      if (this.leader && meta != null && meta.byteLength == 16) {
        setShared(META_KEY, encodeMeta(load<u64>(changetype<usize>(meta)), nowMs), lastCas);
      }
      this.pool.contactMs = nowMs;
      this.metrics.count(this.metrics.fetchNotModified);
      this.succeeded(nowMs);
    } else {
      this.failed(
        nowMs,
        code.length == 0
          ? "the call to the companion failed (connection reset or refused, or an answer over Envoy's 32 MiB async-client limit)"
          : "the companion answered " + code + (code == "401" || code == "403" ? " (check apiToken)" : ""),
      );
    }
    return true;
  }

  private succeeded(nowMs: u64): void {
    if (this.failing) logInfo("snapshots flow again from " + this.cfg.companionCluster);
    this.failing = false;
    this.backoffMs = 0;
    this.nextPollMs = this.lastPollMs + MIN_POLL_GAP_MS;
    // The next long poll at once (the companion holds it until something changes), else on a tick.
    if (this.leader && nowMs >= this.nextPollMs) this.poll(nowMs);
  }

  private failed(nowMs: u64, why: string): void {
    this.metrics.count(this.metrics.fetchError);
    if (!this.failing) logWarn("" + why + "; keeping the last snapshot and retrying with backoff");
    this.failing = true;
    this.backoffMs = this.backoffMs == 0 ? BACKOFF_MIN_MS : min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.nextPollMs = nowMs + <u64>this.backoffMs;
  }
}
