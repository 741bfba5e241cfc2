// llm-d-router's token-producer (and its old name `tokenizer`): it tokenizes the prompt, through vLLM's /render
// endpoint, a UDS tokenizer or a byte-packing estimate, for the producers and deciders that count tokens. The
// filter counts by its own estimates (prefix blocks of 4 characters per token, P/D's prompt bytes / 4, which
// is llm-d-router's estimate backend), so the plugin is accepted and ignored; its parameters are checked as
// llm-d-router checks them. With a real tokenizer (vllm, UDS) and a P/D decider, the decider's token counts
// are estimates here, which can tip a borderline prompt: that combination gets a warning, not a note.
import { asObject, fail, join, onlyKeys, optGoDuration, optString, type Fields } from "./config-fields";
import type { PluginDecl } from "./profile-config";

export const TOKEN_PRODUCER_TYPES = ["token-producer", "tokenizer"];

const sub = (obj: Fields, key: string, path: string): Fields | undefined =>
  obj[key] == null ? undefined : asObject(obj[key], join(path, key));

/** The backend the parameters select ("estimate" is llm-d-router's zero-config default). */
function backend(plugin: PluginDecl): "estimate" | "vllm" | "uds" {
  const path = join(plugin.path, "parameters");
  const p = plugin.parameters == null ? {} : asObject(plugin.parameters, path);
  onlyKeys(p, path, ["modelName", "vllm", "udsTokenizerConfig", "estimate"]);
  const model = optString(p, "modelName", path);
  const vllm = sub(p, "vllm", path);
  if (vllm) {
    const vp = join(path, "vllm");
    onlyKeys(vllm, vp, ["url", "timeout", "mmTimeout"]);
    optString(vllm, "url", vp);
    optGoDuration(vllm, "timeout", vp);
    optGoDuration(vllm, "mmTimeout", vp);
  }
  const uds = sub(p, "udsTokenizerConfig", path);
  const estimate = sub(p, "estimate", path);
  if (estimate) onlyKeys(estimate, join(path, "estimate"), ["image", "video"]);
  const chosen = [estimate && "estimate", (vllm || model) && "vllm", uds && Object.keys(uds).length > 0 && "uds"];
  const set = chosen.filter(Boolean) as Array<"estimate" | "vllm" | "uds">;
  if (set.length > 1) fail(path, "only one of estimate, vllm (or modelName) and udsTokenizerConfig may be set", p);
  if ((set[0] === "vllm" || set[0] === "uds") && !model)
    fail(join(path, "modelName"), "must be set with the vllm or udsTokenizerConfig backend", p.modelName);
  return set[0] ?? "estimate";
}

/**
 * Checks every token-producer; returns its log line: a note, or a warning when a real tokenizer's counts
 * would have fed a P/D decider (`counting`: a prefix-based-pd-decider is configured).
 */
export function tokenProducerLines(
  plugins: ReadonlyMap<string, PluginDecl>,
  counting: boolean,
): Array<{ line: string; warn: boolean }> {
  const out: Array<{ line: string; warn: boolean }> = [];
  for (const p of plugins.values()) {
    if (!TOKEN_PRODUCER_TYPES.includes(p.type)) continue;
    const b = backend(p);
    const real = b !== "estimate" && counting;
    out.push({
      warn: real,
      line: real
        ? `plugin ${p.name} (${p.type}) is not run: prefix-based-pd-decider counts estimated tokens (prompt bytes / 4) instead of the ${b} tokenizer's, which can change whether a prompt near nonCachedTokens is prefilled elsewhere`
        : `plugin ${p.name} (${p.type}) is accepted and ignored: the filter estimates tokens itself (prefix blocks of 4 characters per token, P/D's prompt bytes / 4)`,
    });
  }
  return out;
}
