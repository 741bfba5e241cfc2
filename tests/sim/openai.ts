// The OpenAI-compatible API as vLLM serves it: request bodies to engine requests (validation and errors
// as vLLM answers them), and response bodies and stream chunks back. The HTTP pods and the virtual-time
// fleet both go through parseRequest, so a workload's JSON is read the same way in both.
import type { EngineProfile } from "./profile";
import { Rng, hashString } from "./rng";
import { type ChatMessage, TokenSequence, answerText, applyChatTemplate, tokensOf } from "./text";

export type Api = "chat" | "completions";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status === 404 ? "NotFoundError" : "BadRequestError",
  ) {
    super(message);
  }
  body(): string {
    return JSON.stringify({ object: "error", message: this.message, type: this.type, param: null, code: this.status });
  }
}

export interface ParsedRequest {
  api: Api;
  /** `model` as the client sent it (base model or an adapter); the base model when absent. */
  model: string;
  adapter: string | null;
  /** The text the engine tokenizes: the prompt, or the chat template applied to the messages. */
  promptText: string;
  /** Tokens to generate, and the reason reported when they are done. */
  outputTokens: number;
  finishReason: "length" | "stop";
  maxTokensParam: number | null;
  stream: boolean;
  includeUsage: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function messageText(content: unknown, at: string): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part, i) => {
        if (isObject(part) && part.type === "text" && typeof part.text === "string") return part.text;
        throw new ApiError(400, `${at}[${i}]: only text content parts are supported`);
      })
      .join("");
  }
  throw new ApiError(400, `${at}: must be a string or a list of content parts`);
}

/** Parses and validates a request body; throws ApiError (400 bad body, 404 unknown model). */
export function parseRequest(api: Api, bodyText: string, profile: EngineProfile): ParsedRequest {
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch (e) {
    throw new ApiError(400, `JSON decode error: ${(e as Error).message}`);
  }
  if (!isObject(body)) throw new ApiError(400, "request body must be a JSON object");
  const model = body.model === undefined || body.model === null ? profile.model : body.model;
  if (typeof model !== "string") throw new ApiError(400, "model: must be a string");
  if (model !== profile.model && !profile.lora.adapters.includes(model))
    throw new ApiError(404, `The model \`${model}\` does not exist.`);

  let promptText: string;
  if (api === "chat") {
    if (!Array.isArray(body.messages) || body.messages.length === 0)
      throw new ApiError(400, "messages: must be a non-empty list");
    const messages: ChatMessage[] = body.messages.map((m, i) => {
      if (!isObject(m) || typeof m.role !== "string")
        throw new ApiError(400, `messages[${i}]: must be an object with a role`);
      return { role: m.role, content: messageText(m.content, `messages[${i}].content`) };
    });
    promptText = applyChatTemplate(messages);
  } else {
    const p = body.prompt;
    if (typeof p === "string") promptText = p;
    else if (Array.isArray(p) && p.length === 1 && typeof p[0] === "string") promptText = p[0];
    else throw new ApiError(400, "prompt: must be a string (or a list of one string)");
    if (promptText.length === 0) throw new ApiError(400, "prompt: must not be empty");
  }

  const rawMax = api === "chat" ? (body.max_completion_tokens ?? body.max_tokens) : body.max_tokens;
  let maxTokensParam: number | null = null;
  if (rawMax !== undefined && rawMax !== null) {
    if (typeof rawMax !== "number" || !Number.isInteger(rawMax) || rawMax < 1)
      throw new ApiError(400, "max_tokens: must be a positive integer");
    maxTokensParam = rawMax;
  }
  if (body.stream !== undefined && typeof body.stream !== "boolean")
    throw new ApiError(400, "stream: must be a boolean");
  const promptTokens = tokensOf(promptText);
  const room = profile.maxModelLen - promptTokens;
  if (room < 1 || (maxTokensParam !== null && maxTokensParam > room)) {
    const asked = promptTokens + (maxTokensParam ?? 1);
    throw new ApiError(
      400,
      `This model's maximum context length is ${profile.maxModelLen} tokens. However, you requested ${asked} tokens (${promptTokens} in the messages, ${maxTokensParam ?? 1} in the completion). Please reduce the length of the messages or completion.`,
    );
  }
  // Without ignore_eos the "model" stops on its own: a length drawn from the profile, seeded by the prompt.
  const natural = Math.min(
    profile.defaultOutput.max,
    Math.max(
      1,
      Math.round(new Rng(hashString(promptText)).logNormal(profile.defaultOutput.median, profile.defaultOutput.sigma)),
    ),
  );
  const ignoreEos = body.ignore_eos === true;
  const cap = Math.min(maxTokensParam ?? room, room);
  const outputTokens = ignoreEos ? cap : Math.min(natural, cap);
  const streamOptions = isObject(body.stream_options) ? body.stream_options : {};
  return {
    api,
    model,
    adapter: model === profile.model ? null : model,
    promptText,
    outputTokens,
    finishReason: maxTokensParam !== null && outputTokens === maxTokensParam ? "length" : "stop",
    maxTokensParam,
    stream: body.stream === true,
    includeUsage: streamOptions.include_usage === true,
  };
}

/** The token sequence the engine runs for a parsed request (prompt + the answer it will generate). */
export function sequenceFor(p: ParsedRequest): TokenSequence {
  return new TokenSequence(p.promptText, answerText(p.promptText, p.model, p.outputTokens), p.model);
}

export interface Usage {
  prompt_tokens: number;
  total_tokens: number;
  completion_tokens: number;
  prompt_tokens_details: { cached_tokens: number } | null;
}

export const usage = (prompt: number, completion: number, cached: number | null = null): Usage => ({
  prompt_tokens: prompt,
  total_tokens: prompt + completion,
  completion_tokens: completion,
  prompt_tokens_details: cached === null ? null : { cached_tokens: cached },
});

export function responseBody(
  p: ParsedRequest,
  id: string,
  created: number,
  text: string,
  finish: string,
  u: Usage,
): unknown {
  if (p.api === "chat") {
    return {
      id,
      object: "chat.completion",
      created,
      model: p.model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: text, refusal: null, tool_calls: [], reasoning_content: null },
          logprobs: null,
          finish_reason: finish,
          stop_reason: null,
        },
      ],
      usage: u,
      prompt_logprobs: null,
    };
  }
  return {
    id,
    object: "text_completion",
    created,
    model: p.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null, prompt_logprobs: null }],
    usage: u,
  };
}

/** One stream chunk; `text` null is the chat role header, `finish` set on the last content chunk. */
export function chunkBody(
  p: ParsedRequest,
  id: string,
  created: number,
  text: string | null,
  finish: string | null,
): unknown {
  if (p.api === "chat") {
    const delta = text === null ? { role: "assistant", content: "" } : { content: text };
    return {
      id,
      object: "chat.completion.chunk",
      created,
      model: p.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish, stop_reason: null }],
    };
  }
  return {
    id,
    object: "text_completion",
    created,
    model: p.model,
    choices: [{ index: 0, text: text ?? "", logprobs: null, finish_reason: finish, stop_reason: null }],
  };
}

export function usageChunk(p: ParsedRequest, id: string, created: number, u: Usage): unknown {
  return {
    id,
    object: p.api === "chat" ? "chat.completion.chunk" : "text_completion",
    created,
    model: p.model,
    choices: [],
    usage: u,
  };
}

export function modelsBody(profile: EngineProfile, created: number): unknown {
  const card = (id: string, root: string, parent: string | null) => ({
    id,
    object: "model",
    created,
    owned_by: "vllm",
    root,
    parent,
    max_model_len: profile.maxModelLen,
    permission: [
      {
        id: `modelperm-${hashString(id).toString(16)}`,
        object: "model_permission",
        created,
        allow_create_engine: false,
        allow_sampling: true,
        allow_logprobs: true,
        allow_search_indices: false,
        allow_view: true,
        allow_fine_tuning: false,
        organization: "*",
        group: null,
        is_blocking: false,
      },
    ],
  });
  return {
    object: "list",
    data: [
      card(profile.model, profile.model, null),
      ...profile.lora.adapters.map((a) => card(a, `/adapters/${a}`, profile.model)),
    ],
  };
}
