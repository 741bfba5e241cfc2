// llm-d-router plugins that read data this project does not collect: GPU utilization from DCGM, pod topology
// labels, multimodal (image) content. Each is accepted with its parameters checked as llm-d-router checks them,
// and resolves to what llm-d-router itself does when that data is missing on every endpoint: the filters keep
// every endpoint and the scorers score every endpoint 0, so they are left out of the profile (which picks the
// same) with a warning at load saying what is lost. A configuration whose missing-data behaviour would reject
// every endpoint is refused instead.
import {
  asObject,
  fail,
  join,
  onlyKeys,
  optBool,
  optGoDuration,
  optNumber,
  optString,
  type Fields,
} from "./config-fields";
import type { PluginDecl } from "./profile-config";

type Check = (params: Fields, path: string) => void;

export interface AbsentDataPlugin {
  /** What the plugin is in a scheduling profile; "data": a source, extractor or producer (never referenced). */
  role: "scorer" | "filter" | "data";
  check: Check;
  /** What the filter does instead, for the warning. */
  instead: string;
}

const none: Check = (params, path) => onlyKeys(params, path, []);

const oneOf = (obj: Fields, key: string, path: string, values: string[], def?: string): string | undefined => {
  const v = optString(obj, key, path) || def;
  if (v !== undefined && !values.includes(v)) fail(join(path, key), `must be one of ${values.join(", ")}`, v);
  return v;
};

const sub = (obj: Fields, key: string, path: string): Fields | undefined =>
  obj[key] == null ? undefined : asObject(obj[key], join(path, key));

const GPU = "GPU metrics (DCGM exporter) are not scraped here";
const ATTRIBUTES = "the companion collects no endpoint attributes (DCGM, custom metrics), so every endpoint lacks";

/** endpoint-attribute-filter: threshold algorithm; onMissing Pass (default) or Fail, fallbackOnEmpty. */
const attributeFilter: Check = (params, path) => {
  onlyKeys(params, path, ["attribute", "producer", "onMissing", "fallbackOnEmpty", "algorithm"]);
  if (!optString(params, "attribute", path))
    fail(join(path, "attribute"), "must be a non-empty string", params.attribute);
  optString(params, "producer", path);
  const onMissing = oneOf(params, "onMissing", path, ["Pass", "Fail"], "Pass");
  const fallback = optBool(params, "fallbackOnEmpty", path) ?? false;
  const algo = sub(params, "algorithm", path) ?? {};
  const ap = join(path, "algorithm");
  onlyKeys(algo, ap, ["type", "threshold"]);
  if (optString(algo, "type", ap) !== "threshold") fail(join(ap, "type"), 'must be "threshold"', algo.type);
  const t = sub(algo, "threshold", ap);
  if (!t) fail(join(ap, "threshold"), "is required with type threshold");
  const tp = join(ap, "threshold");
  onlyKeys(t, tp, ["operator", "value"]);
  const ops = ["LessThan", "LessThanOrEqual", "GreaterThan", "GreaterThanOrEqual", "Equal", "NotEqual"];
  if (!oneOf(t, "operator", tp, ops)) fail(join(tp, "operator"), `must be one of ${ops.join(", ")}`, t.operator);
  optNumber(t, "value", tp);
  // Every endpoint lacks the attribute here: Fail without fallbackOnEmpty would leave no endpoint at all.
  if (onMissing === "Fail" && !fallback)
    fail(
      join(path, "onMissing"),
      `Fail without fallbackOnEmpty would reject every endpoint: ${ATTRIBUTES} ${String(params.attribute)}; use Pass or set fallbackOnEmpty`,
      onMissing,
    );
};

/** endpoint-attribute-scorer: linear lower/higher is better, fixedRange (min < max) or adaptiveRange. */
const attributeScorer: Check = (params, path) => {
  onlyKeys(params, path, ["attributeKey", "producer", "algorithm"]);
  if (!optString(params, "attributeKey", path))
    fail(join(path, "attributeKey"), "must be a non-empty string", params.attributeKey);
  optString(params, "producer", path);
  const algo = sub(params, "algorithm", path) ?? {};
  const ap = join(path, "algorithm");
  onlyKeys(algo, ap, ["type", "normalization"]);
  const types = ["linear_lower_is_better", "linear_higher_is_better"];
  if (!oneOf(algo, "type", ap, types)) fail(join(ap, "type"), `must be one of ${types.join(", ")}`, algo.type);
  const n = sub(algo, "normalization", ap) ?? {};
  const np = join(ap, "normalization");
  onlyKeys(n, np, ["fixedRange", "adaptiveRange"]);
  const fixed = sub(n, "fixedRange", np);
  const adaptive = sub(n, "adaptiveRange", np);
  if (fixed && adaptive) fail(np, "at most one of fixedRange and adaptiveRange");
  if (adaptive) onlyKeys(adaptive, join(np, "adaptiveRange"), []);
  if (fixed) {
    const fp = join(np, "fixedRange");
    onlyKeys(fixed, fp, ["min", "max"]);
    const lo = optNumber(fixed, "min", fp) ?? 0;
    const hi = optNumber(fixed, "max", fp) ?? 0;
    if (lo >= hi) fail(fp, "min must be below max", fixed);
  }
};

const topologyLabels: Check = (params, path) => {
  onlyKeys(params, path, ["hostname", "rack", "zone", "region"]);
  for (const k of ["hostname", "rack", "zone", "region"]) optString(params, k, path);
};

const topologyFilter: Check = (params, path) => {
  onlyKeys(params, path, ["minAffinity", "topologyProducerName"]);
  oneOf(params, "minAffinity", path, ["host", "rack", "zone", "region"]);
  optString(params, "topologyProducerName", path);
};

const TOPOLOGY = "pod topology labels are not collected here";
const MULTIMODAL = "the filter does not read a request's images, video or audio";

export const ABSENT_DATA_PLUGINS: Readonly<Record<string, AbsentDataPlugin>> = {
  "dcgm-data-source": {
    role: "data",
    check: (params, path) => {
      onlyKeys(params, path, ["scheme", "path", "port", "insecureSkipVerify", "useNodeAddress", "interval"]);
      oneOf(params, "scheme", path, ["http", "https"]);
      optString(params, "path", path);
      optNumber(params, "port", path, { integer: true, min: 1, max: 65535 });
      optBool(params, "insecureSkipVerify", path);
      optBool(params, "useNodeAddress", path);
      optGoDuration(params, "interval", path);
    },
    instead: `${GPU}; every endpoint's GPUUtilization is missing, as when llm-d-router cannot read the exporter`,
  },
  "dcgm-extractor": { role: "data", check: none, instead: `${GPU}; it publishes nothing` },
  "endpoint-attribute-filter": {
    role: "filter",
    check: attributeFilter,
    instead: `${ATTRIBUTES} the attribute, and this filter keeps every endpoint (onMissing Pass, or fallbackOnEmpty), as llm-d-router's does without the data`,
  },
  "endpoint-attribute-scorer": {
    role: "scorer",
    check: attributeScorer,
    instead: `${ATTRIBUTES} the attribute, and this scorer scores every endpoint 0, as llm-d-router's does without the data`,
  },
  "topology-extractor": { role: "data", check: topologyLabels, instead: `${TOPOLOGY}; it publishes nothing` },
  "topology-affinity-filter": {
    role: "filter",
    check: topologyFilter,
    instead: `${TOPOLOGY}, so the prefill pick does not prefer pods near the decode pod; the filter keeps every candidate, as llm-d-router's does without topology`,
  },
  "topology-affinity-scorer": {
    role: "scorer",
    check: (params, path) => {
      onlyKeys(params, path, ["topologyProducerName"]);
      optString(params, "topologyProducerName", path);
    },
    instead: `${TOPOLOGY}, so the prefill pick does not prefer pods near the decode pod; the scorer scores every candidate 0, as llm-d-router's does without topology`,
  },
  "mm-embeddings-cache-producer": {
    role: "data",
    check: (params, path) => {
      // llm-d-router's field is cacheSizeInMBPerServer; its shipped example writes cacheSizeInMB (which its
      // strict decoding refuses): both are accepted, neither is used.
      onlyKeys(params, path, ["cacheSizeInMBPerServer", "cacheSizeInMB"]);
      optNumber(params, "cacheSizeInMBPerServer", path, { integer: true });
      optNumber(params, "cacheSizeInMB", path, { integer: true });
    },
    instead: `${MULTIMODAL}; it tracks nothing`,
  },
  "mm-embeddings-cache-scorer": {
    role: "scorer",
    check: (params, path) => {
      onlyKeys(params, path, ["producerName"]);
      optString(params, "producerName", path);
    },
    instead: `${MULTIMODAL}, so multimodal requests lose their affinity to pods that encoded the same items; text-only requests are unaffected (llm-d-router scores them 0 everywhere)`,
  },
};

/** Checks every such plugin's parameters; returns the warning for each declared one, in declaration order. */
export function absentDataWarnings(plugins: ReadonlyMap<string, PluginDecl>): string[] {
  const out: string[] = [];
  for (const p of plugins.values()) {
    const spec = ABSENT_DATA_PLUGINS[p.type];
    if (!spec) continue;
    const path = join(p.path, "parameters");
    spec.check(p.parameters == null ? {} : asObject(p.parameters, path), path);
    const where = spec.role === "data" ? "" : " (left out of every profile that references it)";
    out.push(`plugin ${p.name} (${p.type})${where}: ${spec.instead}`);
  }
  return out;
}
