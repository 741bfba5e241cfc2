// GIE's default scheduling profile, re-implemented from its sources (EPP config/loader/defaults.go and the
// scorer plugins): queue-scorer weight 2 (min-max over waiting requests; all equal -> 1), kv-cache-
// utilization-scorer weight 2 (1 - usage), prefix-cache-scorer weight 3 (matched / total blocks from the
// approximate prefix index), max-score picker with a random tie-break. It sees only scraped metrics,
// refreshed every 50 ms, which lag the pods by their metrics lag.
//
// The approximate prefix index (approximateprefix plugin, AutoTune on by default): block size = the first
// endpoint's reported KV block size in tokens x 4 characters; at most 256 blocks; the user input is the JSON
// of the chat messages (or the completion prompt), hashed in chained blocks seeded by the model name, the
// last partial block included; after each pick the chosen pod's LRU (capacity = its reported number of GPU
// blocks) records the request's blocks. Matching walks the blocks in order, crediting every server that
// holds each block, and stops at the first block no server holds (as GIE does).
//
// With `loraWeight` > 0 the profile also has lora-affinity-scorer: for a request naming an adapter, 1.0 where
// the (scraped) running list has it, 0.8 where the distinct adapters of both lists leave a slot free, 0.6
// where it is waiting, else 0. The scraped lists are the raw labels (a vLLM V1 pod names every adapter in
// flight in both). Distinct adapters as llm-d-router's scorer counts them since its PR #2625; before, the
// lengths of the two lists were added, which counts every adapter twice against current vLLM V1.
//
// With `shed` (GIE-style shedding, llm-d-router's admission with the flowControl feature gate off): a request
// whose objective header (`x-llm-d-inference-objective`, then `x-gateway-inference-objective`) names an
// objective of negative priority is rejected with 429 when the pool's saturation is >= 1.0: the
// utilization-detector's mean over the endpoints of max(waiting / queueDepthThreshold, kv /
// kvCacheUtilThreshold) (5 and 0.8), from the scraped view. Upstream sends no reason header; the simulator
// labels these rejections `gie-shed-saturated`. Other requests are never shed. With no pod up: 503.
import { hashString } from "../rng";
import { NO_HEALTHY_UPSTREAM } from "./basic";
import { chainHash } from "../text";
import type { Picker, PickerContext, ScrapedMetrics } from "./picker";

const WEIGHTS = { queue: 2, kv: 2, prefix: 3 };
const DEFAULT_BLOCK_TOKENS = 16;
const MAX_PREFIX_BLOCKS = 256;
const DEFAULT_LRU_PER_SERVER = 31250;
const REFRESH_MS = 50;
/** utilization-detector's defaults (GIE and llm-d-router). */
export const SATURATION_QUEUE_DEPTH = 5;
export const SATURATION_KV = 0.8;
/** The objective headers, llm-d-router's name first, then GIE's. */
export const OBJECTIVE_HEADERS = ["x-llm-d-inference-objective", "x-gateway-inference-objective"];
/** The label of GIE-style shedding's 429 (upstream sends no reason header). */
export const GIE_SHED_REASON = "gie-shed-saturated";

/** The utilization-detector's pool saturation: mean endpoint score; an empty pool is saturated (1.0). */
export function poolSaturation(
  view: readonly ScrapedMetrics[],
  queueDepth = SATURATION_QUEUE_DEPTH,
  kv = SATURATION_KV,
) {
  if (view.length === 0) return 1;
  let sum = 0;
  for (const m of view) sum += Math.max(m.queued / queueDepth, m.kvUsage / kv);
  return sum / view.length;
}

/** The priority a request's objective header gives (0 when absent or unknown). */
export function requestPriority(
  headers: readonly (readonly [string, string])[] | undefined,
  priorities: Record<string, number>,
): number {
  for (const name of OBJECTIVE_HEADERS) {
    const v = headers?.find(([k]) => k.toLowerCase() === name)?.[1];
    if (v !== undefined && v !== "") return priorities[v] ?? 0;
  }
  return 0;
}

export interface GiePickerOptions {
  loraWeight?: number;
  /** GIE-style shedding of sheddable requests (priority < 0 by these objective priorities) when saturated. */
  shed?: { objectivePriorities: Record<string, number> };
}

/** The user input GIE hashes: json.Marshal of the chat messages, or the completion prompt. */
function userInput(bodyText: string): { model: string; text: string } {
  const body = JSON.parse(bodyText) as { model?: string; messages?: unknown; prompt?: unknown };
  const text =
    body.messages !== undefined
      ? JSON.stringify(body.messages)
      : typeof body.prompt === "string"
        ? body.prompt
        : JSON.stringify(body.prompt ?? "");
  return { model: body.model ?? "", text };
}

const hashCache = new Map<string, number[]>();

export function giePromptHashes(bodyText: string, blockChars: number): number[] {
  const key = `${blockChars}\u0000${bodyText}`;
  const hit = hashCache.get(key);
  if (hit) return hit;
  const { model, text } = userInput(bodyText);
  const out: number[] = [];
  if (text.length >= blockChars) {
    const input = text.slice(0, blockChars * MAX_PREFIX_BLOCKS);
    let prev = hashString(model) * 4096 + 11;
    for (let i = 0; i < input.length; i += blockChars) {
      prev = chainHash(prev, input, i, Math.min(i + blockChars, input.length));
      out.push(prev);
    }
  }
  if (hashCache.size > 50_000) hashCache.clear();
  hashCache.set(key, out);
  return out;
}

/** Per-server LRU of block hashes plus the reverse index, as GIE's indexer keeps them. */
class PrefixIndexer {
  private readonly hashToPods = new Map<number, Set<number>>();
  private readonly lrus = new Map<number, Map<number, true>>();

  add(hashes: readonly number[], pod: number, capacity: number): void {
    let lru = this.lrus.get(pod);
    if (!lru) {
      lru = new Map();
      this.lrus.set(pod, lru);
    }
    for (const h of hashes) {
      if (lru.has(h)) lru.delete(h);
      lru.set(h, true);
      if (lru.size > capacity) {
        const oldest = lru.keys().next().value!;
        lru.delete(oldest);
        const pods = this.hashToPods.get(oldest);
        if (pods) {
          pods.delete(pod);
          if (pods.size === 0) this.hashToPods.delete(oldest);
        }
      }
      let pods = this.hashToPods.get(h);
      if (!pods) {
        pods = new Set();
        this.hashToPods.set(h, pods);
      }
      pods.add(pod);
    }
  }

  matchLongestPrefix(hashes: readonly number[]): Map<number, number> {
    const res = new Map<number, number>();
    for (const h of hashes) {
      const pods = this.hashToPods.get(h);
      if (!pods || pods.size === 0) break;
      for (const p of pods) res.set(p, (res.get(p) ?? 0) + 1);
    }
    return res;
  }
}

function loraAffinity(m: ScrapedMetrics, adapter: string): number {
  if (m.loraRunning.includes(adapter)) return 1;
  if (new Set([...m.loraRunning, ...m.loraWaiting]).size < m.maxLora) return 0.8;
  if (m.loraWaiting.includes(adapter)) return 0.6;
  return 0;
}

export function giePicker(opts: GiePickerOptions = {}): Picker {
  let view: ScrapedMetrics[] = [];
  let indexer = new PrefixIndexer();
  let shed = 0;
  const loraWeight = opts.loraWeight ?? 0;
  return {
    name: opts.shed ? "gie-shed" : "gie",
    start(ctx: PickerContext) {
      indexer = new PrefixIndexer();
      shed = 0;
      view = ctx.scrape();
      ctx.every(REFRESH_MS, () => {
        view = ctx.scrape();
      });
    },
    pick(req, prepared, ctx) {
      // Pods that joined after the last refresh are not in the view yet (GIE's datastore learns of them later).
      if (ctx.pods.length === 0 || view.length === 0) return NO_HEALTHY_UPSTREAM;
      if (opts.shed && requestPriority(req.headers, opts.shed.objectivePriorities) < 0 && poolSaturation(view) >= 1) {
        shed++;
        return { reject: 429, reason: GIE_SHED_REASON };
      }
      const adapter = loraWeight > 0 ? prepared.parsed.adapter : null;
      const pods = ctx.pods;
      const blockTokens = view[0]?.blockSize > 0 ? view[0].blockSize : DEFAULT_BLOCK_TOKENS;
      const hashes = giePromptHashes(req.bodyText, blockTokens * 4);
      const matches = indexer.matchLongestPrefix(hashes);
      let minQ = Infinity,
        maxQ = -Infinity;
      for (const m of view) {
        minQ = Math.min(minQ, m.queued);
        maxQ = Math.max(maxQ, m.queued);
      }
      // Shuffle, then keep the first highest score: a uniformly random tie-break, as GIE's max-score picker.
      const order = pods.filter((p) => p.index < view.length).map((p) => p.index);
      for (let i = order.length - 1; i > 0; i--) {
        const j = ctx.rng.int(i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      let best = order[0],
        bestScore = -Infinity;
      for (const i of order) {
        const m = view[i];
        const queue = maxQ === minQ ? 1 : (maxQ - m.queued) / (maxQ - minQ);
        const kv = 1 - m.kvUsage;
        const prefix = hashes.length > 0 ? (matches.get(i) ?? 0) / hashes.length : 0;
        const lora = adapter !== null ? loraWeight * loraAffinity(m, adapter) : 0;
        const score = WEIGHTS.queue * queue + WEIGHTS.kv * kv + WEIGHTS.prefix * prefix + lora;
        if (score > bestScore) {
          bestScore = score;
          best = i;
        }
      }
      indexer.add(hashes, best, view[best]?.numBlocks > 0 ? view[best].numBlocks : DEFAULT_LRU_PER_SERVER);
      return { pod: best };
    },
    stats: (): Record<string, number> => (opts.shed ? { shed } : {}),
  };
}
