// Text as the simulator sees it: 4 characters are 1 token (the same rule GIE's prefix scorer and the filter
// use), KV blocks are runs of blockSize tokens (4 * blockSize characters), and a block's identity is a hash
// chained over all blocks before it, so two prompts share a cached block only if they share the whole prefix
// up to it. Prompts and answers are real text built from a deterministic pseudo-vocabulary.
import { Rng, hashString } from "./rng";

export const CHARS_PER_TOKEN = 4;

export const tokensOf = (text: string): number => Math.ceil(text.length / CHARS_PER_TOKEN);

/**
 * 53-bit chained block hash: two 32-bit FNV-style lanes over the block's characters, seeded by the previous
 * block's hash (or the salt for block 0). Exact integers, so usable as Map keys.
 */
export function chainHash(prev: number, text: string, start: number, end: number): number {
  let a = (0x811c9dc5 ^ (prev % 4294967296)) >>> 0;
  let b = (0x9e3779b9 ^ Math.floor(prev / 4294967296)) >>> 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  return (a >>> 0) * 2097152 + ((b >>> 0) & 0x1fffff);
}

/**
 * A request's full token sequence: the templated prompt followed by the answer the engine will generate.
 * Block hashes are computed lazily and memoised per block size, so a request hashed once is never hashed
 * again (across engines of a fleet and across benchmark runs that reuse the workload).
 */
export class TokenSequence {
  readonly promptTokens: number;
  private readonly text: string;
  private readonly salt: number;
  private readonly chains = new Map<number, number[]>();

  constructor(
    readonly prompt: string,
    readonly answer: string,
    salt: string,
  ) {
    this.promptTokens = tokensOf(prompt);
    this.text = prompt + answer;
    this.salt = hashString(salt) * 1024 + 7;
  }

  get totalTokens(): number {
    return this.promptTokens + tokensOf(this.answer);
  }

  /** Hash of block k (0-based) for the given block size in tokens; the block must lie within the text. */
  blockHash(blockSize: number, k: number): number {
    let chain = this.chains.get(blockSize);
    if (!chain) {
      chain = [];
      this.chains.set(blockSize, chain);
    }
    const width = blockSize * CHARS_PER_TOKEN;
    for (let i = chain.length; i <= k; i++) {
      const start = i * width;
      chain.push(
        chainHash(i === 0 ? this.salt : chain[i - 1], this.text, start, Math.min(start + width, this.text.length)),
      );
    }
    return chain[k];
  }

  /** Number of whole blocks the prompt covers. */
  fullPromptBlocks(blockSize: number): number {
    return Math.floor(this.promptTokens / blockSize);
  }
}

// A pseudo-vocabulary of pronounceable words: enough variety that unrelated prompts never share a block.
const SYLLABLES = [
  "ka",
  "lo",
  "mi",
  "ne",
  "ru",
  "sa",
  "te",
  "vo",
  "zi",
  "pa",
  "do",
  "ge",
  "hu",
  "ja",
  "be",
  "co",
  "fa",
  "li",
  "mo",
  "nu",
  "ri",
  "se",
  "ta",
  "vi",
  "we",
  "xo",
  "yu",
  "qua",
  "tri",
  "spe",
  "lan",
  "mor",
  "ven",
  "dal",
];
const VOCABULARY: string[] = (() => {
  const r = new Rng("vocabulary");
  const words = new Set<string>([
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "with",
    "on",
    "as",
    "it",
    "by",
  ]);
  while (words.size < 4000) {
    let w = "";
    for (let n = 1 + r.int(3); n > 0; n--) w += r.pick(SYLLABLES);
    words.add(w);
  }
  return [...words];
})();

/** Exactly `tokens` tokens (4 * tokens characters) of sentence-like text. */
export function synthText(rng: Rng, tokens: number): string {
  const want = tokens * CHARS_PER_TOKEN;
  const parts: string[] = [];
  let len = 0;
  let sentence = 0;
  while (len < want) {
    let w = VOCABULARY[rng.int(VOCABULARY.length)];
    if (sentence === 0) w = w[0].toUpperCase() + w.slice(1);
    sentence++;
    if (sentence > 6 && rng.next() < 0.2) {
      w += ".";
      sentence = 0;
    }
    parts.push(w);
    len += w.length + 1;
  }
  return parts.join(" ").slice(0, want).padEnd(want, " ");
}

/** The answer an engine generates for a prompt: deterministic, so a client can put it in the next round. */
export function answerText(prompt: string, model: string, tokens: number): string {
  return synthText(new Rng(hashString(model) ^ hashString(prompt)), tokens);
}

export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * A Llama-3 style chat template. A conversation's next prompt starts with the previous prompt plus the
 * previous answer, as with vLLM's real templates, so multi-round chat reuses cached blocks.
 */
export function applyChatTemplate(messages: readonly ChatMessage[]): string {
  let out = "<|begin_of_text|>";
  for (const m of messages) out += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${m.content}<|eot_id|>`;
  return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
}
