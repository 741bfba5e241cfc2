// Turns the samples of one page into normalised metrics for one engine mapping.
//
// Several series can match one spec: vLLM data-parallel ranks (label `engine`), SGLang `dp_rank`, several
// models in one Triton. Counts (queued, running) are summed: they add up to the pod's load. KV-cache
// utilisation is the mean: each rank has an equal share of the pod's cache and the engine's own balancer
// (vLLM's DP coordinator) places a new request on a free rank, so the mean is the fraction of the pod's
// cache in use, while the max would call a pod full because one of its ranks is. LoRA info: the series with
// the largest value (its last-update timestamp) is current; its adapter lists are made disjoint (normaliseLora:
// current vLLM V1 writes every adapter in flight into both). Cache info: block sizes must agree; block counts
// are summed over ranks. Served models: the `model_name` label (vLLM, SGLang, trtllm-serve) of the load
// series, the base model(s) the pod serves, so the filter can tell a request for a LoRA adapter nobody runs
// yet from one for the base model.
import type { EngineMapping } from "./engines";
import type { MetricSpec } from "./metric-spec";
import { specMatches } from "./metric-spec";
import type { ParsedPage, Sample } from "./prom-parser";

export interface LoraState {
  running: string[];
  waiting: string[];
  max: number;
}
export interface CacheState {
  blockSize: number;
  numBlocks: number;
}

export interface EndpointMetrics {
  queued: number | null;
  running: number | null;
  kvUsage: number | null;
  lora: LoraState | null;
  cache: CacheState | null;
  /** Base models the endpoint serves (`model_name` labels of its load series), sorted. */
  models: string[];
}

export class ExtractError extends Error {}

/** Slack for utilisations written as 1.0000001 by float arithmetic in the engine. */
const KV_SLACK = 1e-6;

/** The samples a spec selects: its own family's, else its fallback's (vLLM V0 KV-cache name). */
function select(page: ParsedPage, spec: MetricSpec): { spec: MetricSpec; samples: Sample[] } {
  for (let s: MetricSpec | undefined = spec; s; s = s.fallback) {
    const matching = (page.samples.get(s.name) ?? []).filter((x) => specMatches(s!, x.labels));
    if (matching.length > 0) return { spec: s, samples: matching };
  }
  return { spec, samples: [] };
}

function finite(spec: MetricSpec, v: number, what: string): number {
  if (!Number.isFinite(v)) throw new ExtractError(`${spec.name}: ${what} ${v} is not a finite number`);
  return v;
}

/** The values of the series a spec selects, each finite and checked by `check` (null: no series). */
function values(
  page: ParsedPage,
  spec: MetricSpec | null,
  what: string,
  check: (v: number) => string | null,
): number[] | null {
  if (!spec) return null;
  const { spec: used, samples } = select(page, spec);
  if (samples.length === 0) return null;
  return samples.map((s) => {
    const v = finite(used, s.value, what);
    const problem = check(v);
    if (problem) throw new ExtractError(`${used.name}: ${problem}`);
    return v;
  });
}

function sumCounts(page: ParsedPage, spec: MetricSpec | null): number | null {
  const vs = values(page, spec, "value", (v) => (v < 0 ? `negative count ${v}` : null));
  return vs && vs.reduce((a, b) => a + b, 0);
}

function meanUtilisation(page: ParsedPage, spec: MetricSpec | null): number | null {
  const vs = values(page, spec, "utilisation", (v) =>
    v < 0 || v > 1 + KV_SLACK ? `utilisation ${v} is outside 0..1` : null,
  );
  return vs && vs.reduce((a, b) => a + Math.min(1, b), 0) / vs.length;
}

/** Bounds on what a page may put into the snapshot (its strings and lists have u16 lengths). */
const MAX_ADAPTERS = 1024;
const MAX_ADAPTER_NAME_BYTES = 1024;
const MAX_MODELS = 16;
const MODEL_LABEL = "model_name";

/** The distinct `model_name` values of the series the load specs select. */
function servedModels(page: ParsedPage, specs: (MetricSpec | null)[]): string[] {
  const names = new Set<string>();
  for (const spec of specs) {
    if (!spec) continue;
    for (const s of select(page, spec).samples) {
      const m = s.labels[MODEL_LABEL];
      if (m !== undefined && m !== "" && Buffer.byteLength(m) <= MAX_ADAPTER_NAME_BYTES) names.add(m);
    }
  }
  if (names.size > MAX_MODELS)
    throw new ExtractError(`${names.size} different ${MODEL_LABEL} labels (more than ${MAX_MODELS})`);
  return [...names].sort();
}

function adapters(spec: MetricSpec, label: string, csv: string | undefined): string[] {
  const list = (csv ?? "")
    .split(",")
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
  if (list.length > MAX_ADAPTERS)
    throw new ExtractError(`${spec.name}: ${list.length} adapters in ${label} (more than ${MAX_ADAPTERS})`);
  for (const a of list) {
    if (Buffer.byteLength(a) > MAX_ADAPTER_NAME_BYTES)
      throw new ExtractError(
        `${spec.name}: an adapter name in ${label} is longer than ${MAX_ADAPTER_NAME_BYTES} bytes`,
      );
  }
  return list;
}

function latestLora(page: ParsedPage, spec: MetricSpec | null): LoraState | null {
  if (!spec) return null;
  const { spec: used, samples } = select(page, spec);
  let latest: Sample | null = null;
  for (const s of samples) {
    finite(used, s.value, "timestamp");
    if (!latest || s.value > latest.value) latest = s;
  }
  if (!latest) return null;
  const maxText = latest.labels.max_lora ?? "";
  let max = 0;
  if (maxText !== "") {
    if (!/^\d+$/.test(maxText))
      throw new ExtractError(`${used.name}: max_lora ${JSON.stringify(maxText)} is not a whole number`);
    max = Number(maxText);
  }
  return normaliseLora(
    adapters(used, "running_lora_adapters", latest.labels.running_lora_adapters),
    adapters(used, "waiting_lora_adapters", latest.labels.waiting_lora_adapters),
    max,
  );
}

/**
 * The adapter lists as the filter reads them: disjoint, each adapter once (it counts running + waiting
 * against `max`). vLLM V0 (`LLMEngine._get_stats`) and V1 until PR #26801 (`LoRARequestStates`) list the
 * adapters of running requests and those of waiting requests apart, so an adapter with requests in both is
 * in both labels: it runs, and holds one slot. Current V1 (`LoRARequestStates.update_scheduler_stats`)
 * writes every adapter with a request in flight, running or queued, into both labels alike: read as
 * running, each once. A page alone cannot tell the two V1 readings apart when the labels are equal, and
 * "in both = running" is right for either. One exception shows on the page: more adapters running than
 * `max_lora` slots cannot be (the scheduler batches at most that many), so the list is current V1's
 * in-flight set with some adapters only queued for a slot, which ones unknown: then none is reported as
 * running, all as holding or waiting for slots (the pod is full; an adapter listed there may wait).
 */
export function normaliseLora(running: readonly string[], waiting: readonly string[], max: number): LoraState {
  const run = [...new Set(running)];
  const seen = new Set(run);
  const wait: string[] = [];
  for (const a of waiting) {
    if (seen.has(a)) continue;
    seen.add(a);
    wait.push(a);
  }
  if (max > 0 && run.length > max) return { running: [], waiting: [...run, ...wait], max };
  return { running: run, waiting: wait, max };
}

/** A whole number from a label, or null for values such as vLLM's "None" before the cache is profiled. */
const wholeLabel = (text: string | undefined): number | null =>
  text !== undefined && /^\d+$/.test(text) ? Number(text) : null;

function cacheInfo(page: ParsedPage, mapping: EngineMapping): { found: boolean; cache: CacheState | null } {
  let blockSize: number | null = null;
  let numBlocks: number | null = null;
  let found = false;
  const agreeOnBlockSize = (name: string, b: number): void => {
    if (blockSize !== null && blockSize !== b)
      throw new ExtractError(`${name}: ranks disagree on the cache block size (${blockSize} and ${b})`);
    blockSize = b;
  };
  if (mapping.cacheInfo) {
    const { spec, samples } = select(page, mapping.cacheInfo);
    for (const s of samples) {
      found = true;
      const b = wholeLabel(s.labels[mapping.cacheBlockSizeLabel]);
      if (b !== null) agreeOnBlockSize(spec.name, b);
      const n = wholeLabel(s.labels[mapping.cacheNumBlocksLabel]);
      if (n !== null) numBlocks = (numBlocks ?? 0) + n;
    }
  }
  const whole =
    (what: string) =>
    (v: number): string | null =>
      v < 0 || !Number.isInteger(v) ? `${what} ${v} is not a whole number` : null;
  const sizes = values(page, mapping.cacheBlockSize, "block size", whole("block size"));
  for (const v of sizes ?? []) agreeOnBlockSize(mapping.cacheBlockSize!.name, v);
  const counts = values(page, mapping.cacheNumBlocks, "block count", whole("block count"));
  for (const v of counts ?? []) numBlocks = (numBlocks ?? 0) + v;
  found ||= sizes !== null || counts !== null;
  return {
    found,
    cache: blockSize === null && numBlocks === null ? null : { blockSize: blockSize ?? 0, numBlocks: numBlocks ?? 0 },
  };
}

/**
 * Normalised metrics of one page. A disabled spec, or one whose series are absent, gives null. A page on
 * which none of the mapping's enabled metrics appear is an error (wrong engine label, wrong port or path),
 * unless LoRA info is the only metric wanted: vLLM has that family only when it serves adapters, and GIE's
 * extractor skips it silently when absent (it errs only on the absence of the other families). So a page with
 * nothing on it, even an empty one, is fine when nothing (or only LoRA info) is wanted.
 */
export function extractMetrics(page: ParsedPage, mapping: EngineMapping): EndpointMetrics {
  const queued = sumCounts(page, mapping.queued);
  const running = sumCounts(page, mapping.running);
  const kvUsage = meanUtilisation(page, mapping.kvUsage);
  const lora = latestLora(page, mapping.lora);
  const { found: cacheFound, cache } = cacheInfo(page, mapping);
  const enabled = [
    mapping.queued,
    mapping.running,
    mapping.kvUsage,
    mapping.lora,
    mapping.cacheInfo,
    mapping.cacheBlockSize,
    mapping.cacheNumBlocks,
  ].filter((s): s is MetricSpec => s !== null);
  const required = enabled.some((s) => s !== mapping.lora);
  if (required && queued === null && running === null && kvUsage === null && lora === null && !cacheFound) {
    const names = enabled
      .map((s) => s.name)
      .filter((n, i, a) => a.indexOf(n) === i)
      .join(", ");
    throw new ExtractError(
      page.empty
        ? `empty metrics page: none of engine ${mapping.name}'s metrics are on it (looked for ${names})`
        : `none of engine ${mapping.name}'s metrics are on the page (looked for ${names})`,
    );
  }
  return {
    queued,
    running,
    kvUsage,
    lora,
    cache,
    models: servedModels(page, [mapping.queued, mapping.running, mapping.kvUsage]),
  };
}
