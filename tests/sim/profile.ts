// Engine profiles: every number the engine model uses, loaded from YAML/JSON under tests/sim/profiles/.
// A profile file may give only some fields; the rest come from DEFAULT_PROFILE (the Dynamo mocker fit for an
// 8B model on one H100, docs/SIMULATOR.md says where each number comes from). Unknown fields are errors.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { parse as parseYaml } from "yaml";

export const ENGINE_KINDS = ["vllm-v1", "vllm-v0", "sglang", "triton-trtllm", "trtllm-serve"] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];

/** KV block size families: vLLM's own default 16 tokens, SGLang's page of 1 token, TensorRT-LLM's 32. */
export type BlockFamily = "vllm" | "sglang" | "trtllm";
export const blockFamily = (k: EngineKind): BlockFamily =>
  k.startsWith("vllm") ? "vllm" : k === "sglang" ? "sglang" : "trtllm";

export interface DynamoFitLatency {
  kind: "dynamo-fit";
  /** prefill_ms = a*T^2 + b*T + c, T = uncached prompt tokens in the step. */
  prefill: { a: number; b: number; c: number };
  /** decode_ms = a*u^2 + b*u + c, u = fraction of KV blocks in use; at least floorMs. */
  decode: { a: number; b: number; c: number; floorMs: number };
}

export interface PerTokenLatency {
  kind: "per-token";
  /** Prefill of a step: ttftBaseMs + ttftPerTokenMs per uncached token. */
  ttftBaseMs: number;
  ttftPerTokenMs: number;
  /** Decode step: itlMs +- itlJitterMs, scaled linearly from 1x (one running) to loadFactorAtMaxSeqs (max-num-seqs). */
  itlMs: number;
  itlJitterMs: number;
  loadFactorAtMaxSeqs: number;
}

export interface EngineProfile {
  name: string;
  /** Served base model name (what `model` must say, and what /v1/models lists first). */
  model: string;
  maxModelLen: number;
  latency: DynamoFitLatency | PerTokenLatency;
  scheduler: {
    maxNumSeqs: number;
    /** Chunked-prefill token budget of one step (decode tokens count against it too). */
    maxNumBatchedTokens: number;
  };
  kv: {
    /** KV cache capacity in tokens; blocks = floor(cacheTokens / blockSize). */
    cacheTokens: number;
    blockSize: Record<BlockFamily, number>;
    enablePrefixCaching: boolean;
  };
  lora: {
    /** Adapters the server knows (served names); requests may name any of them as `model`. */
    adapters: string[];
    /** Adapters resident at once (vLLM --max-loras). */
    maxLoras: number;
    /** Time to load an adapter that is not resident. */
    loadDelayMs: number;
  };
  /** Gauges (queue, running, KV usage, LoRA info) show the state of this many ms ago. */
  metricsLagMs: number;
  /** Output length when a request gives no max_tokens: log-normal, clamped to [1, max]. */
  defaultOutput: { median: number; sigma: number; max: number };
}

export const DEFAULT_PROFILE: EngineProfile = {
  name: "vllm-8b-h100",
  model: "meta-llama/Llama-3.1-8B-Instruct",
  maxModelLen: 32768,
  latency: {
    kind: "dynamo-fit",
    prefill: { a: 4.209989e-7, b: 1.518344e-2, c: 16.5 },
    decode: { a: -25.74, b: 54.01, c: 5.74, floorMs: 1 },
  },
  scheduler: { maxNumSeqs: 256, maxNumBatchedTokens: 8192 },
  kv: { cacheTokens: 500_000, blockSize: { vllm: 16, sglang: 1, trtllm: 32 }, enablePrefixCaching: true },
  lora: { adapters: [], maxLoras: 4, loadDelayMs: 300 },
  metricsLagMs: 1000,
  defaultOutput: { median: 120, sigma: 1.0, max: 1024 },
};

/** tests/sim/profiles of the checkout this module runs from (sources, build/tests/sim or build/sim.mjs). */
export const PROFILES_DIR = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const candidate = path.join(dir, "tests", "sim", "profiles");
    if (existsSync(candidate)) return candidate;
  }
  return path.join(process.cwd(), "tests", "sim", "profiles");
})();

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === "object" && v !== null && !Array.isArray(v);

/** Deep-merges `patch` onto `base`; a key `base` does not have is an error naming its path. */
function merge(base: unknown, patch: unknown, at: string): unknown {
  if (isPlain(base) && isPlain(patch)) {
    const out: Plain = { ...base };
    for (const [k, v] of Object.entries(patch)) {
      if (!(k in base)) throw new Error(`profile ${at}${k}: unknown field`);
      out[k] = merge(base[k], v, `${at}${k}.`);
    }
    return out;
  }
  return patch;
}

/** Profile with overrides applied; throws with the field path on an unknown field or a bad value. */
export function makeProfile(overrides: unknown = {}): EngineProfile {
  const o = isPlain(overrides) ? overrides : {};
  // The latency kinds have different fields: take the override's kind wholesale.
  const lat = isPlain(o.latency) ? o.latency : undefined;
  const base: EngineProfile =
    lat && lat.kind === "per-token"
      ? {
          ...DEFAULT_PROFILE,
          latency: {
            kind: "per-token",
            ttftBaseMs: 30,
            ttftPerTokenMs: 0.25,
            itlMs: 12,
            itlJitterMs: 2,
            loadFactorAtMaxSeqs: 2,
          },
        }
      : DEFAULT_PROFILE;
  const p = merge(base, o, "") as EngineProfile;
  validate(p);
  return p;
}

export function loadProfile(file: string): EngineProfile {
  const resolved =
    file.includes("/") || file.includes("\\")
      ? file
      : `${PROFILES_DIR}/${file}${/\.(ya?ml|json)$/.test(file) ? "" : ".yaml"}`;
  let data: unknown;
  try {
    data = parseYaml(readFileSync(resolved, "utf8"));
  } catch (e) {
    throw new Error(`profile ${resolved}: ${(e as Error).message}`);
  }
  try {
    return makeProfile(data ?? {});
  } catch (e) {
    throw new Error(`${resolved}: ${(e as Error).message}`);
  }
}

function validate(p: EngineProfile): void {
  const positive = (v: unknown, at: string, integer = false) => {
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
      throw new Error(`profile ${at}: must be a positive ${integer ? "integer" : "number"} (got ${JSON.stringify(v)})`);
    }
  };
  const finite = (v: unknown, at: string) => {
    if (typeof v !== "number" || !Number.isFinite(v))
      throw new Error(`profile ${at}: must be a number (got ${JSON.stringify(v)})`);
  };
  if (typeof p.name !== "string" || typeof p.model !== "string" || p.model === "")
    throw new Error("profile model: must be a non-empty string");
  positive(p.maxModelLen, "maxModelLen", true);
  if (p.latency.kind === "dynamo-fit") {
    for (const k of ["a", "b", "c"] as const) {
      finite(p.latency.prefill[k], `latency.prefill.${k}`);
      finite(p.latency.decode[k], `latency.decode.${k}`);
    }
    positive(p.latency.decode.floorMs, "latency.decode.floorMs");
  } else if (p.latency.kind === "per-token") {
    for (const k of ["ttftBaseMs", "ttftPerTokenMs", "itlMs", "loadFactorAtMaxSeqs"] as const)
      positive(p.latency[k], `latency.${k}`);
    finite(p.latency.itlJitterMs, "latency.itlJitterMs");
  } else {
    throw new Error(
      `profile latency.kind: must be dynamo-fit or per-token (got ${JSON.stringify((p.latency as { kind: unknown }).kind)})`,
    );
  }
  positive(p.scheduler.maxNumSeqs, "scheduler.maxNumSeqs", true);
  positive(p.scheduler.maxNumBatchedTokens, "scheduler.maxNumBatchedTokens", true);
  positive(p.kv.cacheTokens, "kv.cacheTokens", true);
  for (const f of ["vllm", "sglang", "trtllm"] as const) positive(p.kv.blockSize[f], `kv.blockSize.${f}`, true);
  if (
    !Array.isArray(p.lora.adapters) ||
    p.lora.adapters.some((a) => typeof a !== "string" || a === "" || a === p.model)
  ) {
    throw new Error("profile lora.adapters: must be a list of adapter names, none equal to the base model");
  }
  positive(p.lora.maxLoras, "lora.maxLoras", true);
  if (!(p.lora.loadDelayMs >= 0)) throw new Error("profile lora.loadDelayMs: must be >= 0");
  if (!(p.metricsLagMs >= 0)) throw new Error("profile metricsLagMs: must be >= 0");
  positive(p.defaultOutput.median, "defaultOutput.median");
  positive(p.defaultOutput.max, "defaultOutput.max", true);
  for (const f of ["vllm", "sglang", "trtllm"] as const) {
    if (Math.floor(p.kv.cacheTokens / p.kv.blockSize[f]) * p.kv.blockSize[f] < p.maxModelLen) {
      throw new Error(
        `profile kv.cacheTokens: ${p.kv.cacheTokens} tokens cannot hold one maxModelLen (${p.maxModelLen}) sequence`,
      );
    }
  }
}
