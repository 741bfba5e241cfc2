// The producers behind llm-d-router's prefix-cache-scorer. A scorer names the producer of its prefix matches
// (`prefixMatchInfoProducerName`; none: the approximate one). The filter keeps one prefix index, the
// approximate one (what it sent where), so every producer resolves into that index's block settings:
// approx-prefix-cache-producer's own parameters (profile-config.ts), and for the two the filter cannot run
// their block size, with a warning: precise-prefix-cache-producer needs the engines' KV-cache events (ZMQ),
// burst-prefix-cache-producer holds requests for a batch window to place prompt groups jointly.
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

export const APPROX_PRODUCER_TYPE = "approx-prefix-cache-producer";
export const PRECISE_PRODUCER_TYPE = "precise-prefix-cache-producer";
export const BURST_PRODUCER_TYPE = "burst-prefix-cache-producer";
export const PREFIX_PRODUCER_TYPES = [APPROX_PRODUCER_TYPE, PRECISE_PRODUCER_TYPE, BURST_PRODUCER_TYPE];
/** The plugins that read prefix matches by producer name. */
const CONSUMER_TYPES = ["prefix-cache-scorer", "no-hit-lru-scorer"];
export const PRODUCER_NAME_KEY = "prefixMatchInfoProducerName";

/** llm-d-router's defaults: the precise producer's token processor (vLLM's 16) and the burst producer's blocks. */
const PRECISE_BLOCK_TOKENS = 16;
const BURST_BLOCK_TOKENS = 64;

/** What a producer the filter does not run leaves to the approximate index: its blocks (tokens). */
export interface ProducerBlocks {
  blockSizeTokens: number;
  /** 0: the index's default reach. */
  maxPrefixTokensToMatch: number;
}

const params = (plugin: PluginDecl): Fields =>
  plugin.parameters == null ? {} : asObject(plugin.parameters, join(plugin.path, "parameters"));

/** A mapping the companion does not interpret (it configures machinery that does not run here). */
function opaque(obj: Fields, key: string, path: string): Fields | undefined {
  return obj[key] == null ? undefined : asObject(obj[key], join(path, key));
}

/** precise-prefix-cache-producer's parameters, checked; its token block size (llm-d-router's rules). */
function preciseBlocks(plugin: PluginDecl): ProducerBlocks {
  const path = join(plugin.path, "parameters");
  const p = params(plugin);
  onlyKeys(p, path, [
    "tokenProcessorConfig",
    "indexerConfig",
    "kvEventsConfig",
    "speculativeIndexing",
    "speculativeTTL",
  ]);
  const indexer = opaque(p, "indexerConfig", path);
  if (indexer?.tokenizersPoolConfig != null)
    fail(
      join(join(path, "indexerConfig"), "tokenizersPoolConfig"),
      "is not supported (llm-d-router refuses it too: configure a token-producer plugin instead)",
      indexer.tokenizersPoolConfig,
    );
  opaque(p, "kvEventsConfig", path);
  optBool(p, "speculativeIndexing", path);
  optGoDuration(p, "speculativeTTL", path);
  const tp = opaque(p, "tokenProcessorConfig", path);
  let tokens = PRECISE_BLOCK_TOKENS;
  if (tp) {
    const tpPath = join(path, "tokenProcessorConfig");
    onlyKeys(tp, tpPath, ["blockSize", "blockSizeTokens", "hashSeed", "hashAlgorithm"]);
    optString(tp, "hashSeed", tpPath);
    const algo = optString(tp, "hashAlgorithm", tpPath);
    if (algo && algo !== "cbor-fnv" && algo !== "xxh64")
      fail(join(tpPath, "hashAlgorithm"), 'must be "cbor-fnv" or "xxh64"', algo);
    // blockSizeTokens wins; 0 means unset; the deprecated blockSize applies when it alone is set.
    const bst = optNumber(tp, "blockSizeTokens", tpPath, { integer: true }) ?? 0;
    const bs = optNumber(tp, "blockSize", tpPath, { integer: true }) ?? 0;
    const chosen = bst !== 0 ? ["blockSizeTokens", bst] : bs !== 0 ? ["blockSize", bs] : null;
    if (chosen && (chosen[1] as number) <= 0)
      fail(join(tpPath, chosen[0] as string), "must be greater than 0", chosen[1]);
    if (chosen) tokens = chosen[1] as number;
  }
  return { blockSizeTokens: tokens, maxPrefixTokensToMatch: 0 };
}

/** burst-prefix-cache-producer's parameters, checked as llm-d-router does; its token block size and reach. */
function burstBlocks(plugin: PluginDecl): ProducerBlocks {
  const path = join(plugin.path, "parameters");
  const p = params(plugin);
  onlyKeys(p, path, [
    "windowDurationMs",
    "maxPerReplica",
    "blockSizeTokens",
    "maxPrefixTokensToMatch",
    "minColocateBlocks",
    "maxBatchSize",
    "balanceBy",
  ]);
  const int = (key: string, check: { min?: number; max?: number } = {}) =>
    optNumber(p, key, path, { integer: true, ...check });
  int("windowDurationMs", { min: 1, max: 10000 });
  for (const key of ["maxPerReplica", "maxBatchSize"]) {
    const v = int(key);
    if (v !== undefined && v !== -1 && v < 1) fail(join(path, key), "must be -1 (unlimited) or at least 1", v);
  }
  int("minColocateBlocks", { min: 0 });
  const balance = optString(p, "balanceBy", path);
  if (balance && balance !== "requests" && balance !== "tokens")
    fail(join(path, "balanceBy"), 'must be "requests" or "tokens"', balance);
  const tokens = int("blockSizeTokens", { min: 1 }) ?? BURST_BLOCK_TOKENS;
  const max = int("maxPrefixTokensToMatch", { min: 0 }) ?? 0;
  if (max > 0 && max < tokens)
    fail(join(path, "maxPrefixTokensToMatch"), `must be 0 or at least blockSizeTokens (${tokens})`, max);
  return { blockSizeTokens: tokens, maxPrefixTokensToMatch: max };
}

/** Checks every precise and burst producer's parameters (referenced or not); their blocks by plugin name. */
export function fallbackProducers(plugins: ReadonlyMap<string, PluginDecl>): Map<string, ProducerBlocks> {
  const out = new Map<string, ProducerBlocks>();
  for (const p of plugins.values()) {
    if (p.type === PRECISE_PRODUCER_TYPE) out.set(p.name, preciseBlocks(p));
    if (p.type === BURST_PRODUCER_TYPE) out.set(p.name, burstBlocks(p));
  }
  return out;
}

/**
 * The producer prefix-cache-scorer reads: the plugin its `prefixMatchInfoProducerName` names (null: none
 * named, the approximate index as configured by approx-prefix-cache-producer or the scorer itself). Every
 * consumer's name must be a declared prefix producer, and all prefix-cache-scorers must read the same one
 * (the filter keeps one index).
 */
export function scorerProducer(plugins: ReadonlyMap<string, PluginDecl>): PluginDecl | null {
  let chosen: { producer: PluginDecl | null; path: string } | null = null;
  for (const c of plugins.values()) {
    if (!CONSUMER_TYPES.includes(c.type)) continue;
    const path = join(c.path, "parameters");
    const name = c.parameters == null ? undefined : optString(asObject(c.parameters, path), PRODUCER_NAME_KEY, path);
    let producer: PluginDecl | null = null;
    if (name) {
      producer = plugins.get(name) ?? null;
      if (!producer) fail(join(path, PRODUCER_NAME_KEY), "no plugin of that name in plugins", name);
      if (!PREFIX_PRODUCER_TYPES.includes(producer.type))
        fail(
          join(path, PRODUCER_NAME_KEY),
          `plugin "${name}" has type ${producer.type}, which is not a prefix producer (${PREFIX_PRODUCER_TYPES.join(", ")})`,
          name,
        );
    }
    if (c.type !== "prefix-cache-scorer") continue;
    if (chosen && chosen.producer?.name !== producer?.name)
      fail(
        join(path, PRODUCER_NAME_KEY),
        `the filter keeps one prefix index, and ${chosen.path} reads ${chosen.producer?.name ?? "the approximate one"}`,
        name ?? null,
      );
    chosen = { producer, path };
  }
  return chosen?.producer ?? null;
}

/** The warning for a producer the filter does not run, once its blocks are known. */
export function fallbackWarning(producer: PluginDecl, blocks: ProducerBlocks, chars: number): string {
  const why =
    producer.type === PRECISE_PRODUCER_TYPE
      ? "the engines' KV-cache events are not consumed here"
      : "requests are not held in batch windows here; the approximate index records each pick at once, so a burst of one prompt still lands together while the load slack allows";
  return `plugin ${producer.name} (${producer.type}): ${why}; prefix-cache-scorer scores from the filter's approximate prefix index (what it sent where) instead, with blocks of ${blocks.blockSizeTokens} tokens (${chars} characters)`;
}
