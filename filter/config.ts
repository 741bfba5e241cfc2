// Plugin configuration: the JSON in Envoy's `configuration` (or Istio's `pluginConfig`). Every error names
// the field, so `on_configure` can refuse the configuration with a log line an operator can act on.
import { JSON } from "assemblyscript-json/assembly";
import { jsonSyntaxError } from "./json-check";

export const FAIL_CLOSE: i32 = 0;
export const FAIL_OPEN: i32 = 1;

export class PluginConfig {
  companionCluster: string = "endpoint-picker-companion";
  companionAuthority: string = "endpoint-picker-companion";
  snapshotPath: string = "/v1/snapshot";
  /**
   * Timeout of one long poll: the liveness window of a companion replica. The companion answers 304 every
   * --long-poll-timeout (1000 ms) when nothing changed, so a poll unanswered after this is a hung replica;
   * the next poll goes to another (docs/DEPLOY.md, "Companion failover").
   */
  pollTimeoutMs: u32 = 2500;
  /** Sent as `authorization: Bearer <token>` to the companion when not empty. */
  apiToken: string = "";
  destinationHeader: string = "x-gateway-destination-endpoint";
  fallbackHeader: string = "x-gateway-destination-endpoint-fallback";
  /** Response header naming the endpoint that served the request; empty (the default): not added. */
  servedHeader: string = "";
  failureMode: i32 = FAIL_CLOSE;
  /** A snapshot without contact with the companion for longer than this is stale. */
  stalenessLimitMs: u32 = 5000;
  /** Bytes of request body scanned for `model` and the prompt at most. */
  maxBodyBytes: u32 = 262144;
  /** A companion answer (snapshot or gateway view) larger than this is refused unread. */
  maxSnapshotBytes: u32 = 16777216;
  /** False: snapshots are written into shared data by someone else (tests, the simulator). */
  fetchSnapshots: bool = true;
  /**
   * Share requests in flight and prefix chains with the other gateway replicas through the companion
   * (docs/GATEWAYS.md). Unset: as fetchSnapshots (a filter fed by someone else has no companion to report to).
   */
  shareWithGateways: bool = true;
  gatewayReportPath: string = "/v1/gateway-report";
  /**
   * Request headers naming the InferenceObjective, the first present one counts: llm-d-router's, then its
   * legacy alias, GIE's. Empty: the headers are ignored (nothing is sheddable).
   */
  objectiveHeaders: string[] = ["x-llm-d-inference-objective", "x-gateway-inference-objective"];
  /** Outlier detection of endpoints that fail requests (filter/outliers.ts); maxEjectionPercent 0: off. */
  consecutive5xx: i32 = 5;
  consecutiveGatewayFailure: i32 = 3;
  baseEjectionTimeMs: u32 = 10000;
  maxEjectionTimeMs: u32 = 30000;
  maxEjectionPercent: i32 = 50;
  /** InferenceObjective priorities by name (header objectiveHeader); negative = sheddable. */
  objectiveNames: string[] = [];
  objectivePriorities: i32[] = [];

  priorityOf(objective: string): i32 {
    return this.priorityFor(objective, 0);
  }

  /** The configured priority of `objective`, or `fallback` when objectivePriorities does not name it. */
  priorityFor(objective: string, fallback: i32): i32 {
    for (let i = 0; i < this.objectiveNames.length; i++) {
      if (unchecked(this.objectiveNames[i]) == objective) return unchecked(this.objectivePriorities[i]);
    }
    return fallback;
  }
}

export class ConfigResult {
  config: PluginConfig | null = null;
  error: string = "";
}

function fail(message: string): ConfigResult {
  const r = new ConfigResult();
  r.error = "configuration" + message;
  return r;
}

/** A header name Envoy accepts: lower-case token characters (RFC 9110), not a pseudo-header. */
function validHeaderName(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok =
      (c >= 0x61 && c <= 0x7a) ||
      (c >= 0x30 && c <= 0x39) ||
      c == 0x2d ||
      c == 0x5f ||
      c == 0x2e ||
      c == 0x21 ||
      c == 0x23 ||
      c == 0x24 ||
      c == 0x25 ||
      c == 0x26 ||
      c == 0x27 ||
      c == 0x2a ||
      c == 0x2b ||
      c == 0x5e ||
      c == 0x60 ||
      c == 0x7c ||
      c == 0x7e;
    if (!ok) return false;
  }
  return true;
}

function integerIn(v: JSON.Value, field: string, min: i64, max: i64, out: ConfigResult): i64 {
  if (!v.isInteger) {
    out.error = "configuration." + field + ": must be an integer";
    return 0;
  }
  const n = (<JSON.Integer>v).valueOf();
  if (n < min || n > max) {
    out.error =
      "configuration." + field + ": " + n.toString() + " is outside " + min.toString() + ".." + max.toString();
  }
  return n;
}

/** Parses the plugin configuration; an empty configuration means all defaults. */
export function parseConfig(text: string): ConfigResult {
  const cfg = new PluginConfig();
  const ok = new ConfigResult();
  ok.config = cfg;
  const trimmed = text.trim();
  if (trimmed.length == 0) return ok;
  const syntax = jsonSyntaxError(trimmed);
  if (syntax.length > 0) return fail(": not valid JSON: " + syntax);
  const value = JSON.parse(trimmed);
  if (!value.isObj) return fail(": must be a JSON object");
  const obj = <JSON.Obj>value;
  const keys = obj.keys;
  const err = new ConfigResult();
  let shareSet = false;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const v = obj.get(key)!;
    if (
      key == "companionCluster" ||
      key == "companionAuthority" ||
      key == "snapshotPath" ||
      key == "gatewayReportPath" ||
      key == "apiToken" ||
      key == "destinationHeader" ||
      key == "fallbackHeader" ||
      key == "servedHeader" ||
      key == "failureMode"
    ) {
      if (!v.isString) return fail("." + key + ": must be a string");
      const s = (<JSON.Str>v).valueOf();
      if (key == "apiToken") {
        cfg.apiToken = s;
        continue;
      }
      if (key == "servedHeader" && s.length == 0) {
        cfg.servedHeader = "";
        continue;
      }
      if (s.length == 0) return fail("." + key + ": must not be empty");
      if (key == "companionCluster") cfg.companionCluster = s;
      else if (key == "companionAuthority") cfg.companionAuthority = s;
      else if (key == "snapshotPath") {
        if (!s.startsWith("/") || s.includes("?"))
          return fail('.snapshotPath: "' + s + '" must be a path starting with / and without a query');
        cfg.snapshotPath = s;
      } else if (key == "gatewayReportPath") {
        if (!s.startsWith("/") || s.includes("?"))
          return fail('.gatewayReportPath: "' + s + '" must be a path starting with / and without a query');
        cfg.gatewayReportPath = s;
      } else if (key == "failureMode") {
        if (s == "FailClose") cfg.failureMode = FAIL_CLOSE;
        else if (s == "FailOpen") cfg.failureMode = FAIL_OPEN;
        else return fail('.failureMode: "' + s + '" is not FailClose or FailOpen');
      } else {
        const name = s.toLowerCase();
        if (!validHeaderName(name)) return fail("." + key + ': "' + s + '" is not a valid header name');
        if (key == "destinationHeader") cfg.destinationHeader = name;
        else if (key == "fallbackHeader") cfg.fallbackHeader = name;
        else cfg.servedHeader = name;
      }
    } else if (key == "pollTimeoutMs") {
      cfg.pollTimeoutMs = <u32>integerIn(v, key, 100, 600000, err);
    } else if (key == "stalenessLimitMs") {
      cfg.stalenessLimitMs = <u32>integerIn(v, key, 100, 3600000, err);
    } else if (key == "maxBodyBytes") {
      cfg.maxBodyBytes = <u32>integerIn(v, key, 0, 16777216, err);
    } else if (key == "maxSnapshotBytes") {
      cfg.maxSnapshotBytes = <u32>integerIn(v, key, 1024, 268435456, err);
    } else if (key == "fetchSnapshots" || key == "shareWithGateways") {
      if (!v.isBool) return fail("." + key + ": must be true or false");
      if (key == "fetchSnapshots") cfg.fetchSnapshots = (<JSON.Bool>v).valueOf();
      else {
        cfg.shareWithGateways = (<JSON.Bool>v).valueOf();
        shareSet = true;
      }
    } else if (key == "objectiveHeader") {
      // A header name, a list of them (the first present one counts), or "" / [] to ignore objectives.
      const names = new Array<string>();
      if (v.isString) {
        const s = (<JSON.Str>v).valueOf();
        if (s.length > 0) names.push(s);
      } else if (v.isArr) {
        const arr = (<JSON.Arr>v).valueOf();
        for (let k = 0; k < arr.length; k++) {
          if (!arr[k].isString) return fail(".objectiveHeader[" + k.toString() + "]: must be a string");
          names.push((<JSON.Str>arr[k]).valueOf());
        }
      } else return fail(".objectiveHeader: must be a header name or a list of them");
      cfg.objectiveHeaders = [];
      for (let k = 0; k < names.length; k++) {
        const name = names[k].toLowerCase();
        if (!validHeaderName(name)) return fail('.objectiveHeader: "' + names[k] + '" is not a valid header name');
        cfg.objectiveHeaders.push(name);
      }
    } else if (key == "outlierDetection") {
      if (!v.isObj) return fail(".outlierDetection: must be an object");
      const o = <JSON.Obj>v;
      const names = o.keys;
      for (let k = 0; k < names.length; k++) {
        const name = names[k];
        const f = "outlierDetection." + name;
        const x = o.get(name)!;
        if (name == "consecutive5xx") cfg.consecutive5xx = <i32>integerIn(x, f, 1, 1000, err);
        else if (name == "consecutiveGatewayFailure")
          cfg.consecutiveGatewayFailure = <i32>integerIn(x, f, 1, 1000, err);
        else if (name == "baseEjectionTimeMs") cfg.baseEjectionTimeMs = <u32>integerIn(x, f, 100, 3600000, err);
        else if (name == "maxEjectionTimeMs") cfg.maxEjectionTimeMs = <u32>integerIn(x, f, 100, 3600000, err);
        else if (name == "maxEjectionPercent") cfg.maxEjectionPercent = <i32>integerIn(x, f, 0, 100, err);
        else return fail("." + f + ": unknown field");
        if (err.error.length > 0) return err;
      }
      if (cfg.maxEjectionTimeMs < cfg.baseEjectionTimeMs)
        return fail(".outlierDetection.maxEjectionTimeMs: must not be below baseEjectionTimeMs");
    } else if (key == "objectivePriorities") {
      if (!v.isObj) return fail(".objectivePriorities: must be an object of objective name to integer priority");
      const o = <JSON.Obj>v;
      const names = o.keys;
      for (let k = 0; k < names.length; k++) {
        const p = integerIn(o.get(names[k])!, "objectivePriorities." + names[k], -2147483648, 2147483647, err);
        if (err.error.length > 0) return err;
        cfg.objectiveNames.push(names[k]);
        cfg.objectivePriorities.push(<i32>p);
      }
    } else {
      return fail("." + key + ": unknown field");
    }
    if (err.error.length > 0) return err;
  }
  if (cfg.destinationHeader == cfg.fallbackHeader) return fail(".fallbackHeader: must differ from destinationHeader");
  if (!shareSet) cfg.shareWithGateways = cfg.fetchSnapshots;
  return ok;
}
