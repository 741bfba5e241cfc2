// The OpenAI-compatible API as vLLM serves it: request bodies to engine requests (validation and errors
// as vLLM answers them), and response bodies and stream chunks back. The HTTP pods and the virtual-time
// fleet both go through parseRequest, so a workload's JSON is read the same way in both. Besides chat and
// completions, the fleet reads the request bodies agents send (Anthropic /v1/messages, OpenAI /v1/responses,
// chat with tools): every shape becomes the same chat template input, in the template's order (tools,
// system, conversation), so the engine's prefix cache sees one conversation alike whatever JSON carried it.
import type { EngineProfile } from "./profile";
import { Rng, hashString } from "./rng";
import { type ChatMessage, TokenSequence, answerText, applyChatTemplate, tokensOf } from "./text";

export type Api = "chat" | "completions" | "messages" | "responses";

/** The path each API is served on (`/v1/messages`: vLLM's Anthropic-compatible endpoint). */
export const API_PATHS: Record<Api, string> = {
  chat: "/v1/chat/completions",
  completions: "/v1/completions",
  messages: "/v1/messages",
  responses: "/v1/responses",
};

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
  if (api !== "completions") {
    promptText = applyChatTemplate(templateMessages(api, body));
  } else {
    const p = body.prompt;
    if (typeof p === "string") promptText = p;
    else if (Array.isArray(p) && p.length === 1 && typeof p[0] === "string") promptText = p[0];
    else throw new ApiError(400, "prompt: must be a string (or a list of one string)");
    if (promptText.length === 0) throw new ApiError(400, "prompt: must not be empty");
  }

  const rawMax =
    api === "chat"
      ? (body.max_completion_tokens ?? body.max_tokens)
      : api === "responses"
        ? body.max_output_tokens
        : body.max_tokens;
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

/** How a chat template renders a tool call in the assistant's turn (after any text it wrote). */
export const toolCallText = (name: string, args: unknown): string =>
  `<tool_call>{"name":${JSON.stringify(name)},"arguments":${JSON.stringify(args)}}</tool_call>`;

/** Tool definitions as the template renders them: one `{name, description, parameters}` line per tool. */
function toolsText(tools: unknown, api: Api): string {
  if (tools === undefined || tools === null) return "";
  if (!Array.isArray(tools)) throw new ApiError(400, "tools: must be a list");
  return tools
    .map((t, i) => {
      // chat: {type: "function", function: {...}}; responses: {type: "function", name, ...}; messages: {name, input_schema}
      const f = api === "chat" && isObject(t) ? t.function : t;
      if (!isObject(f) || typeof f.name !== "string") throw new ApiError(400, `tools[${i}]: must name a function`);
      const parameters = api === "messages" ? f.input_schema : f.parameters;
      return JSON.stringify({ name: f.name, description: f.description ?? "", parameters: parameters ?? {} });
    })
    .join("\n");
}

/** A tool call's arguments: an object (Anthropic's `input`) or its JSON text (OpenAI's `arguments`). */
function callArguments(args: unknown, at: string): unknown {
  if (typeof args !== "string") return args ?? {};
  try {
    return JSON.parse(args);
  } catch {
    throw new ApiError(400, `${at}: arguments must be JSON`);
  }
}

/** Text of Anthropic or Responses content: a string or a list of text blocks. */
function blocksText(content: unknown, at: string): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw new ApiError(400, `${at}: must be a string or a list of blocks`);
  return content
    .map((b, i) => {
      if (isObject(b) && typeof b.text === "string") return b.text;
      throw new ApiError(400, `${at}[${i}]: only text blocks are supported`);
    })
    .join("");
}

/** Appends an assistant's tool call to the conversation: to the assistant turn just before, or as one. */
function pushCall(out: ChatMessage[], call: string): void {
  const last = out[out.length - 1];
  if (last && last.role === "assistant") last.content += call;
  else out.push({ role: "assistant", content: call });
}

function chatMessages(messages: unknown[], out: ChatMessage[]): void {
  messages.forEach((m, i) => {
    if (!isObject(m) || typeof m.role !== "string")
      throw new ApiError(400, `messages[${i}]: must be an object with a role`);
    const calls = Array.isArray(m.tool_calls) ? m.tool_calls : [];
    const text =
      calls.length > 0 && (m.content === null || m.content === undefined)
        ? ""
        : messageText(m.content, `messages[${i}].content`);
    out.push({ role: m.role, content: text });
    calls.forEach((c, k) => {
      const f = isObject(c) ? c.function : null;
      if (!isObject(f) || typeof f.name !== "string")
        throw new ApiError(400, `messages[${i}].tool_calls[${k}]: must name a function`);
      pushCall(out, toolCallText(f.name, callArguments(f.arguments, `messages[${i}].tool_calls[${k}]`)));
    });
  });
}

/** Anthropic messages: text, tool_use (the assistant's calls) and tool_result blocks (tool turns). */
function anthropicMessages(messages: unknown[], out: ChatMessage[]): void {
  messages.forEach((m, i) => {
    if (!isObject(m) || (m.role !== "user" && m.role !== "assistant"))
      throw new ApiError(400, `messages.${i}: role must be user or assistant`);
    const role = m.role;
    if (typeof m.content === "string") {
      out.push({ role, content: m.content });
      return;
    }
    if (!Array.isArray(m.content)) throw new ApiError(400, `messages.${i}.content: must be a string or a list`);
    let text: string | null = null;
    const flush = () => {
      if (text !== null) out.push({ role, content: text });
      text = null;
    };
    m.content.forEach((b, k) => {
      const at = `messages.${i}.content.${k}`;
      if (!isObject(b)) throw new ApiError(400, `${at}: must be a block`);
      if (b.type === "text" && typeof b.text === "string") text = (text ?? "") + b.text;
      else if (b.type === "tool_use" && role === "assistant" && typeof b.name === "string") {
        flush();
        pushCall(out, toolCallText(b.name, callArguments(b.input, at)));
      } else if (b.type === "tool_result" && role === "user") {
        flush();
        out.push({ role: "tool", content: blocksText(b.content ?? "", `${at}.content`) });
      } else throw new ApiError(400, `${at}: unsupported block`);
    });
    flush();
  });
}

/** Responses API input: a string, or items (messages, function calls and their outputs). */
function responsesInput(input: unknown, out: ChatMessage[]): void {
  if (typeof input === "string") {
    out.push({ role: "user", content: input });
    return;
  }
  if (!Array.isArray(input) || input.length === 0) throw new ApiError(400, "input: must be a string or a list");
  input.forEach((item, i) => {
    const at = `input[${i}]`;
    if (!isObject(item)) throw new ApiError(400, `${at}: must be an object`);
    if (item.type === "function_call" && typeof item.name === "string")
      pushCall(out, toolCallText(item.name, callArguments(item.arguments, at)));
    else if (item.type === "function_call_output") out.push({ role: "tool", content: blocksText(item.output, at) });
    else if ((item.type === undefined || item.type === "message") && typeof item.role === "string")
      out.push({ role: item.role, content: blocksText(item.content, `${at}.content`) });
    else throw new ApiError(400, `${at}: unsupported item`);
  });
}

/** What the chat template renders, in its order: tool definitions, the system prompt, the conversation. */
export function templateMessages(api: Exclude<Api, "completions">, body: Record<string, unknown>): ChatMessage[] {
  const out: ChatMessage[] = [];
  const tools = toolsText(body.tools, api);
  if (tools) out.push({ role: "tools", content: tools });
  if (api === "responses") {
    if (body.instructions !== undefined && body.instructions !== null)
      out.push({ role: "system", content: blocksText(body.instructions, "instructions") });
    responsesInput(body.input, out);
    return out;
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0)
    throw new ApiError(400, "messages: must be a non-empty list");
  if (api === "chat") chatMessages(body.messages, out);
  else {
    if (body.system !== undefined && body.system !== null)
      out.push({ role: "system", content: blocksText(body.system, "system") });
    anthropicMessages(body.messages, out);
  }
  return out;
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
