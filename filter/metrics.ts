// The filter's proxy-wasm metrics. Envoy shows them under `wasmcustom.` in /stats (docs/FILTER.md lists
// them). Ids are per VM; Envoy aggregates counters and histograms of the same name across workers.
import { defineMetric, incrementMetric, recordMetric, NO_METRIC } from "./host";
import { OUTCOME_PICKED, OUTCOME_SHED, OUTCOME_DENIED } from "./scoring/decision";
import { Snapshot } from "./snapshot";

const COUNTER = 0,
  GAUGE = 1,
  HISTOGRAM = 2;

export class Metrics {
  picked: u32 = NO_METRIC;
  shed: u32 = NO_METRIC;
  noEndpoint: u32 = NO_METRIC;
  failOpen: u32 = NO_METRIC;
  failClose: u32 = NO_METRIC;
  decisionUs: u32 = NO_METRIC;
  snapshotAgeMs: u32 = NO_METRIC;
  endpoints: u32 = NO_METRIC;
  fetchOk: u32 = NO_METRIC;
  fetchNotModified: u32 = NO_METRIC;
  fetchError: u32 = NO_METRIC;
  prefixHits: u32 = NO_METRIC;
  reportsSent: u32 = NO_METRIC;
  reportsOk: u32 = NO_METRIC;
  reportsFailed: u32 = NO_METRIC;
  gateways: u32 = NO_METRIC;
  degraded: u32 = NO_METRIC;
  ejected: u32 = NO_METRIC;
  ejections: u32 = NO_METRIC;
  ejectionsCapped: u32 = NO_METRIC;
  modelRewrites: u32 = NO_METRIC;
  /** Pick counters per endpoint, keyed by address hash (defined on first use). */
  private pickIds: Map<u32, u32> = new Map();

  define(): void {
    this.picked = defineMetric(COUNTER, "endpoint_picker.decisions.picked");
    this.shed = defineMetric(COUNTER, "endpoint_picker.decisions.shed");
    this.noEndpoint = defineMetric(COUNTER, "endpoint_picker.decisions.no_endpoint");
    this.failOpen = defineMetric(COUNTER, "endpoint_picker.decisions.fail_open");
    this.failClose = defineMetric(COUNTER, "endpoint_picker.decisions.fail_close");
    this.decisionUs = defineMetric(HISTOGRAM, "endpoint_picker.decision_us");
    this.snapshotAgeMs = defineMetric(GAUGE, "endpoint_picker.snapshot_age_ms");
    this.endpoints = defineMetric(GAUGE, "endpoint_picker.endpoints");
    this.fetchOk = defineMetric(COUNTER, "endpoint_picker.fetch.ok");
    this.fetchNotModified = defineMetric(COUNTER, "endpoint_picker.fetch.not_modified");
    this.fetchError = defineMetric(COUNTER, "endpoint_picker.fetch.error");
    this.prefixHits = defineMetric(COUNTER, "endpoint_picker.prefix_hits");
    this.reportsSent = defineMetric(COUNTER, "endpoint_picker.gateway_reports.sent");
    this.reportsOk = defineMetric(COUNTER, "endpoint_picker.gateway_reports.ok");
    this.reportsFailed = defineMetric(COUNTER, "endpoint_picker.gateway_reports.failed");
    this.gateways = defineMetric(GAUGE, "endpoint_picker.gateways");
    this.degraded = defineMetric(GAUGE, "endpoint_picker.endpoints_degraded");
    this.ejected = defineMetric(GAUGE, "endpoint_picker.outliers.ejected");
    this.ejections = defineMetric(COUNTER, "endpoint_picker.outliers.ejections");
    this.ejectionsCapped = defineMetric(COUNTER, "endpoint_picker.outliers.ejections_capped");
    this.modelRewrites = defineMetric(COUNTER, "endpoint_picker.model_rewrites");
  }

  outcome(outcome: i32): void {
    // An admission plugin's refusal is a 429 as shedding is.
    const shed = outcome == OUTCOME_SHED || outcome == OUTCOME_DENIED;
    incrementMetric(outcome == OUTCOME_PICKED ? this.picked : shed ? this.shed : this.noEndpoint, 1);
  }

  /** Counts a pick of endpoint `i` (stat name: its address with dots and colons as underscores). */
  pick(snap: Snapshot, i: i32): void {
    const hash = snap.addrHash[i];
    let id = NO_METRIC;
    if (this.pickIds.has(hash)) {
      id = this.pickIds.get(hash);
    } else if (this.pickIds.size < 4096) {
      // bound the stats a churning pool can create
      id = defineMetric(
        COUNTER,
        "endpoint_picker.picks." +
          snap.address(i).replaceAll(".", "_").replaceAll(":", "_").replaceAll("[", "").replaceAll("]", ""),
      );
      this.pickIds.set(hash, id);
    }
    incrementMetric(id, 1);
  }

  record(id: u32, value: u64): void {
    recordMetric(id, value);
  }
  count(id: u32): void {
    incrementMetric(id, 1);
  }
}
