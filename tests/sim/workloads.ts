// Workloads as the field benchmarks routing (docs/SIMULATOR.md "Workloads"): seeded, so the same seed gives
// the same requests; contents are drawn independently of arrival times, so the same requests can be
// replayed at several loads. Every request is a real JSON body: OpenAI chat or completions, and for the
// agent workload (agent-workload.ts) also Anthropic /v1/messages and OpenAI /v1/responses.
import { agentWorkload } from "./agent-workload";
import { type Api, type ParsedRequest, parseRequest, sequenceFor } from "./openai";
import type { EngineProfile } from "./profile";
import { Rng, intNormal } from "./rng";
import { type ChatMessage, type TokenSequence, synthText } from "./text";

export interface WorkloadRequest {
  id: string;
  /** Open-loop arrival (ms of virtual time); follow-up rounds get theirs from the previous round's end. */
  arrivalMs: number;
  api: Api;
  /** The JSON body exactly as a client sends it. */
  bodyText: string;
  /** The conversation so far (multi-round chat). */
  messages?: ChatMessage[];
  session?: { id: number; round: number };
  /** Extra request headers the client sends (objective, fairness id: the flow-control workloads). */
  headers?: [string, string][];
  /** For the reports: the request's tenant (fairness id) and objective, as its headers name them. */
  tenant?: string;
  objective?: string;
}

export interface Workload {
  name: string;
  /** Requests known up front, by arrival time. */
  requests: WorkloadRequest[];
  /** Requests in total, follow-ups included. */
  total: number;
  /** LoRA adapters the pods must serve. */
  adapters: string[];
  /** Mean request rate the arrivals were drawn at. */
  ratePerSec: number;
  /** Closed loop: the request that follows `done` (finished at finishedMs with `answer`), if any. */
  next?(done: WorkloadRequest, finishedMs: number, answer: string): WorkloadRequest | null;
  /** Requests that would follow `req` in its session (dropped when it fails). */
  followUps?(req: WorkloadRequest): number;
}

export const WORKLOAD_KINDS = ["sharegpt", "prefix-a", "prefix-c", "multi-round", "multi-lora", "agent"] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

export interface WorkloadOptions {
  seed?: number;
  /** Requests in total. */
  count: number;
  /** Mean request rate (Poisson arrivals), requests per second of virtual time. */
  ratePerSec: number;
  /** Base model name the bodies ask for. */
  model: string;
}

export interface Prepared {
  parsed: ParsedRequest;
  seq: TokenSequence;
}

// Parsed bodies by body text: equal bodies (repeated prompts, replays at other loads) share one
// TokenSequence, whose block hashes are then computed once.
const preparedCache = new Map<string, { profile: EngineProfile; prepared: Prepared }>();

/** Parses a request as a pod would (memoised per body and profile). Throws ApiError on a bad body. */
export function prepare(req: WorkloadRequest, profile: EngineProfile): Prepared {
  const hit = preparedCache.get(req.bodyText);
  if (hit && hit.profile === profile) return hit.prepared;
  const parsed = parseRequest(req.api, req.bodyText, profile);
  const prepared = { parsed, seq: sequenceFor(parsed) };
  preparedCache.set(req.bodyText, { profile, prepared });
  return prepared;
}

/** Drops memoised parses (frees memory between benchmark workloads). */
export function clearPrepared(): void {
  preparedCache.clear();
}

/** The same requests at another mean rate: arrival times scaled (a scaled Poisson process is Poisson). */
export function atRate(w: Workload, ratePerSec: number): Workload {
  const factor = w.ratePerSec / ratePerSec;
  return { ...w, ratePerSec, requests: w.requests.map((r) => ({ ...r, arrivalMs: r.arrivalMs * factor })) };
}

/** The chat template's wrapper around one message (role header and end of turn, ~54 characters). */
const MESSAGE_OVERHEAD_TOKENS = 14;

/** Message text such that the message, template wrapper included, is `tokens` tokens long. */
export const content = (rng: Rng, tokens: number) => synthText(rng, Math.max(1, tokens - MESSAGE_OVERHEAD_TOKENS));

export function chatBody(model: string, messages: ChatMessage[], maxTokens: number): string {
  return JSON.stringify({
    model,
    messages,
    max_tokens: maxTokens,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });
}

export function poissonArrivals(rng: Rng, count: number, ratePerSec: number): number[] {
  let t = 0;
  return Array.from({ length: count }, () => (t += rng.exponential(1000 / ratePerSec)));
}

/** One ShareGPT-like request's prompt and output lengths (see shareGpt). */
export function shareGptLengths(rng: Rng): { promptTokens: number; outputTokens: number } {
  const promptTokens = Math.min(1024, Math.max(4, Math.round(rng.logNormal(140, 1.0))));
  const outputTokens = Math.min(1024, Math.max(4, Math.round(rng.logNormal(120, 1.0))));
  return { promptTokens, outputTokens };
}

/**
 * ShareGPT-like lengths without the dataset: log-normal prompt and output lengths whose means (~230 and
 * ~200 tokens) and long right tails approximate ShareGPT_V3 as vLLM's benchmark_serving filters it
 * (prompts <= 1024 tokens). Every prompt is unique: little prefix sharing, as on ShareGPT.
 */
export function shareGpt(o: WorkloadOptions, adapters: string[] = []): Workload {
  const rng = new Rng(`sharegpt:${o.seed ?? 1}`);
  const arrivals = poissonArrivals(new Rng(`sharegpt-arrivals:${o.seed ?? 1}`), o.count, o.ratePerSec);
  // Adapter popularity for multi-LoRA: Zipf-like (1/rank), so a few adapters are hot and many are cold.
  const weights = adapters.map((_, i) => 1 / (i + 1));
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const pickAdapter = () => {
    let x = rng.next() * totalWeight;
    for (let i = 0; i < adapters.length; i++) if ((x -= weights[i]) < 0) return adapters[i];
    return adapters[adapters.length - 1];
  };
  const requests = arrivals.map((arrivalMs, i) => {
    const { promptTokens, outputTokens } = shareGptLengths(rng);
    const model = adapters.length > 0 ? pickAdapter() : o.model;
    const messages = [{ role: "user", content: content(rng, promptTokens) }];
    return {
      id: `${adapters.length > 0 ? "lora" : "sharegpt"}-${i}`,
      arrivalMs,
      api: "chat" as const,
      bodyText: chatBody(model, messages, outputTokens),
    };
  });
  return {
    name: adapters.length > 0 ? "multi-lora" : "sharegpt",
    requests,
    total: requests.length,
    adapters,
    ratePerSec: o.ratePerSec,
  };
}

export interface SharedPrefixShape {
  groups: number;
  promptsPerGroup: number;
  systemTokens: number;
  question: { mean: number; sd: number };
  output: { mean: number; sd: number };
}

/** llm-d's shared-prefix scenario A (6 groups x 1000, system 1000, question 30+-9, output 1000+-300), scaled. */
export const SCENARIO_A: SharedPrefixShape = {
  groups: 6,
  promptsPerGroup: 200,
  systemTokens: 1000,
  question: { mean: 30, sd: 9 },
  output: { mean: 250, sd: 75 },
};
/** llm-d's cache-pressure scenario C (150 groups x 5, system 6000, question 1200+-360), scaled by half. */
export const SCENARIO_C: SharedPrefixShape = {
  groups: 40,
  promptsPerGroup: 5,
  systemTokens: 3000,
  question: { mean: 600, sd: 180 },
  output: { mean: 250, sd: 75 },
};

/**
 * inference-perf `shared_prefix`: `groups` system prompts, `promptsPerGroup` questions each; every request
 * draws one (group, question) pair at random, so system prompts and some whole prompts repeat.
 */
export function sharedPrefix(o: WorkloadOptions, shape: SharedPrefixShape, name: string): Workload {
  const rng = new Rng(`${name}:${o.seed ?? 1}`);
  const systems = Array.from({ length: shape.groups }, () => content(rng, shape.systemTokens));
  const questions = systems.map(() =>
    Array.from({ length: shape.promptsPerGroup }, () =>
      content(rng, intNormal(rng, shape.question.mean, shape.question.sd, 4)),
    ),
  );
  const outputs = systems.map(() =>
    Array.from({ length: shape.promptsPerGroup }, () => intNormal(rng, shape.output.mean, shape.output.sd, 4)),
  );
  const arrivals = poissonArrivals(new Rng(`${name}-arrivals:${o.seed ?? 1}`), o.count, o.ratePerSec);
  const requests = arrivals.map((arrivalMs, i) => {
    const g = rng.int(shape.groups),
      q = rng.int(shape.promptsPerGroup);
    const messages = [
      { role: "system", content: systems[g] },
      { role: "user", content: questions[g][q] },
    ];
    return {
      id: `${name}-${i}`,
      arrivalMs,
      api: "chat" as const,
      bodyText: chatBody(o.model, messages, outputs[g][q]),
    };
  });
  return { name, requests, total: requests.length, adapters: [], ratePerSec: o.ratePerSec };
}

export interface MultiRoundShape {
  rounds: number;
  systemTokens: number;
  question: { mean: number; sd: number };
  answerTokens: number;
  thinkMs: number;
}
export const MULTI_ROUND: MultiRoundShape = {
  rounds: 5,
  systemTokens: 1000,
  question: { mean: 60, sd: 20 },
  answerTokens: 100,
  thinkMs: 2000,
};

/**
 * Multi-round chat: users x rounds over one shared 1000-token system prompt; each round sends the whole
 * history (the previous answers are the text the engine generated) plus a new question and asks for a
 * 100-token answer, after the previous answer arrived and the user thought (exponential, mean thinkMs).
 * Sessions start as a Poisson process; count / rounds sessions.
 */
export function multiRound(o: WorkloadOptions, shape: MultiRoundShape = MULTI_ROUND): Workload {
  const seed = o.seed ?? 1;
  const rng = new Rng(`multi-round:${seed}`);
  const system = content(rng, shape.systemTokens);
  const sessions = Math.max(1, Math.round(o.count / shape.rounds));
  const starts = poissonArrivals(new Rng(`multi-round-arrivals:${seed}`), sessions, o.ratePerSec / shape.rounds);
  const question = (session: number, round: number) => {
    const r = new Rng(`multi-round-q:${seed}:${session}:${round}`);
    return content(r, intNormal(r, shape.question.mean, shape.question.sd, 4));
  };
  const make = (session: number, round: number, arrivalMs: number, messages: ChatMessage[]): WorkloadRequest => ({
    id: `chat-${session}-${round}`,
    arrivalMs,
    api: "chat",
    messages,
    session: { id: session, round },
    bodyText: chatBody(o.model, messages, shape.answerTokens),
  });
  const requests = starts.map((t, s) =>
    make(s, 0, t, [
      { role: "system", content: system },
      { role: "user", content: question(s, 0) },
    ]),
  );
  return {
    name: "multi-round",
    requests,
    total: sessions * shape.rounds,
    adapters: [],
    ratePerSec: o.ratePerSec,
    followUps: (req) => shape.rounds - 1 - (req.session?.round ?? shape.rounds - 1),
    next(done, finishedMs, answer) {
      const s = done.session!;
      if (s.round + 1 >= shape.rounds) return null;
      const think = new Rng(`multi-round-think:${seed}:${s.id}:${s.round}`).exponential(shape.thinkMs);
      return make(s.id, s.round + 1, finishedMs + think, [
        ...done.messages!,
        { role: "assistant", content: answer },
        { role: "user", content: question(s.id, s.round + 1) },
      ]);
    },
  };
}

export const LORA_ADAPTERS = Array.from({ length: 12 }, (_, i) => `adapter-${String(i).padStart(2, "0")}`);

export function makeWorkload(kind: WorkloadKind, o: WorkloadOptions): Workload {
  switch (kind) {
    case "sharegpt":
      return shareGpt(o);
    case "prefix-a":
      return sharedPrefix(o, SCENARIO_A, "prefix-a");
    case "prefix-c":
      return sharedPrefix(o, SCENARIO_C, "prefix-c");
    case "multi-round":
      return multiRound(o);
    case "multi-lora":
      return shareGpt(o, LORA_ADAPTERS);
    case "agent":
      return agentWorkload(o);
  }
}
