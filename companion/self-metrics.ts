// The companion's own Prometheus metrics (`GET /metrics`), on a private prom-client registry.
import client from "prom-client";

const PREFIX = "endpoint_picker_companion_";
/** llm-d-router's name for the queue depth, which users' KEDA and HPA rules already query. */
export const LLM_D_QUEUE_SIZE = "llm_d_epp_flow_control_queue_size";
/**
 * A priority whose queues emptied keeps a 0 series this long (llm-d-router collects an idle priority band
 * after 10 minutes), so dashboards and autoscalers see the drop to 0 instead of the series vanishing.
 */
export const QUEUE_SERIES_HOLD_MS = 600_000;
/** Zero series kept at most (the most recently busy priorities). */
const MAX_HELD_QUEUE_SERIES = 256;

/** What the gateways hold in their flow-control queues, summed over the live gateways. */
export interface FlowControlQueueState {
  /** The InferencePool's name (the `inference_pool` label); "" without one (a static list or a selector). */
  pool: string;
  sizes: Array<{ priority: number; queued: number }>;
}

export class SelfMetrics {
  readonly registry = new client.Registry();
  readonly scrapeDuration = new client.Histogram({
    name: `${PREFIX}scrape_duration_seconds`,
    help: "Time to fetch and parse one endpoint's metrics page, successful or not.",
    labelNames: ["result"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly scrapeErrors = new client.Counter({
    name: `${PREFIX}scrape_errors_total`,
    help: "Failed scrapes by endpoint and reason (timeout, refused, connect, http_status, too_large, content_type, parse, metrics).",
    labelNames: ["endpoint", "reason"] as const,
    registers: [this.registry],
  });
  /** Pool gauges are computed when scraped, from the provider the companion installs. */
  poolState: () => { endpoints: number; stale: number; errors: number } = () => ({ endpoints: 0, stale: 0, errors: 0 });

  readonly snapshotVersion = new client.Gauge({
    name: `${PREFIX}snapshot_version`,
    help: "Version of the current snapshot (Unix ms or above).",
    registers: [this.registry],
  });
  readonly snapshotBytes = new client.Gauge({
    name: `${PREFIX}snapshot_bytes`,
    help: "Size of the current encoded snapshot.",
    registers: [this.registry],
  });
  readonly snapshotVersions = new client.Counter({
    name: `${PREFIX}snapshot_versions_total`,
    help: "Snapshot versions published.",
    registers: [this.registry],
  });
  readonly longPollWaiters = new client.Gauge({
    name: `${PREFIX}long_poll_waiters`,
    help: "GET /v1/snapshot?after= requests being held.",
    registers: [this.registry],
  });
  readonly configReloads = new client.Counter({
    name: `${PREFIX}config_reloads_total`,
    help: "Reloads of --config-file by result.",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly watchRestarts = new client.Counter({
    name: `${PREFIX}kube_watch_restarts_total`,
    help: "Kubernetes list/watch restarts after errors, by resource.",
    labelNames: ["resource"] as const,
    registers: [this.registry],
  });
  /** Endpoints per page mode (companion/page-selection.ts), computed when scraped. */
  pageModes: () => Record<string, number> = () => ({});
  // The gateway exchange (docs/GATEWAYS.md).
  /** Gateway gauges are computed when scraped, from the provider the companion installs. */
  gatewayState: () => { liveGateways: number; records: number; peers: number } = () => ({
    liveGateways: 0,
    records: 0,
    peers: 0,
  });
  readonly gatewayReports = new client.Counter({
    name: `${PREFIX}gateway_reports_total`,
    help: "POST /v1/gateway-report by result (ok, too_large, malformed, unauthorized).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly gatewayAnswerBytes = new client.Counter({
    name: `${PREFIX}gateway_answer_bytes_total`,
    help: "Bytes of the merged views sent back to gateways.",
    registers: [this.registry],
  });
  readonly gatewayRelaysReceived = new client.Counter({
    name: `${PREFIX}gateway_relays_received_total`,
    help: "POST /v1/gateway-relay from peers by result (ok, too_large, malformed, unauthorized, self).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly gatewayRelayedReports = new client.Counter({
    name: `${PREFIX}gateway_relayed_reports_total`,
    help: "Reports inside peers' relays by result (applied, duplicate, malformed).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly gatewayRelaySends = new client.Counter({
    name: `${PREFIX}gateway_relay_sends_total`,
    help: "Relays sent to peers by result (ok, error, rejected, dropped, self).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  /** Flow-control queue gauges are computed when scraped, from the provider the companion installs. */
  flowControlQueue: () => FlowControlQueueState = () => ({ pool: "", sizes: [] });
  /** When each priority last had requests queued (for its 0 series). */
  private queueSeenAt = new Map<number, number>();
  private reasonsByEndpoint = new Map<string, Set<string>>();

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    this.poolGauge("pool_endpoints", "Endpoints in the pool.", (s) => s.endpoints);
    this.poolGauge(
      "stale_endpoints",
      "Endpoints whose metrics are older than the staleness threshold (or were never read).",
      (s) => s.stale,
    );
    this.poolGauge("error_endpoints", "Endpoints whose last scrape failed.", (s) => s.errors);
    const pageModes = () => this.pageModes();
    new client.Gauge({
      name: `${PREFIX}scrape_page_endpoints`,
      help: "Endpoints by what is asked of their metrics page: probe (full page, first scrape), restricted (name[] filter), full.",
      labelNames: ["page"],
      registers: [this.registry],
      collect() {
        for (const [page, n] of Object.entries(pageModes())) this.set({ page }, n);
      },
    });
    const queue = (now: number) => this.queueSeries(now);
    new client.Gauge({
      name: `${PREFIX}flow_control_queue_size`,
      help: "Requests held in the gateways' flow-control queues, by priority (summed over the live gateways).",
      labelNames: ["priority"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [priority, n] of queue(Date.now()).series) this.set({ priority }, n);
      },
    });
    new client.Gauge({
      name: LLM_D_QUEUE_SIZE,
      help: "Requests held in the gateways' flow-control queues, by priority: llm-d-router's metric, for KEDA and HPA rules written for it.",
      labelNames: ["priority", "inference_pool"],
      registers: [this.registry],
      collect() {
        this.reset();
        const { pool, series } = queue(Date.now());
        for (const [priority, n] of series) this.set({ priority, inference_pool: pool }, n);
      },
    });
    const gateway = () => this.gatewayState();
    for (const [name, help, pick] of [
      ["gateways_live", "Gateway replicas whose last report (direct or relayed) is under 3 s old.", "liveGateways"],
      ["gateway_records", "Prefix chain records held for the gateways (at most --exchange-records, 10 s).", "records"],
      ["gateway_peers", "Peer companions relayed to (--peers, --peers-dns), this companion excluded.", "peers"],
    ] as const) {
      new client.Gauge({
        name: `${PREFIX}${name}`,
        help,
        registers: [this.registry],
        collect() {
          this.set(gateway()[pick]);
        },
      });
    }
  }

  /** The queue series to export now: each busy priority, and 0 for those busy within QUEUE_SERIES_HOLD_MS. */
  private queueSeries(now: number): { pool: string; series: Array<[priority: string, queued: number]> } {
    const { pool, sizes } = this.flowControlQueue();
    const out = new Map<number, number>();
    for (const { priority, queued } of sizes) {
      if (queued <= 0) continue;
      out.set(priority, queued);
      this.queueSeenAt.delete(priority); // re-inserted last: the map stays ordered by last busy time
      this.queueSeenAt.set(priority, now);
    }
    for (const [priority, at] of this.queueSeenAt)
      if (now - at >= QUEUE_SERIES_HOLD_MS || this.queueSeenAt.size > MAX_HELD_QUEUE_SERIES)
        this.queueSeenAt.delete(priority);
      else if (!out.has(priority)) out.set(priority, 0);
    return { pool, series: [...out].map(([p, n]) => [String(p), n]) };
  }

  private poolGauge(name: string, help: string, pick: (s: ReturnType<SelfMetrics["poolState"]>) => number): void {
    const state = () => this.poolState();
    new client.Gauge({
      name: `${PREFIX}${name}`,
      help,
      registers: [this.registry],
      collect() {
        this.set(pick(state()));
      },
    });
  }

  scrapeError(endpoint: string, reason: string): void {
    this.scrapeErrors.inc({ endpoint, reason });
    let reasons = this.reasonsByEndpoint.get(endpoint);
    if (!reasons) this.reasonsByEndpoint.set(endpoint, (reasons = new Set()));
    reasons.add(reason);
  }

  /** Drops the per-endpoint series of endpoints that left the pool, so label sets do not pile up. */
  forgetEndpointsExcept(current: ReadonlySet<string>): void {
    for (const [endpoint, reasons] of this.reasonsByEndpoint) {
      if (current.has(endpoint)) continue;
      for (const reason of reasons) this.scrapeErrors.remove({ endpoint, reason });
      this.reasonsByEndpoint.delete(endpoint);
    }
  }
}
