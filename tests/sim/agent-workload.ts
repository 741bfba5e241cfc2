// The agent workload (docs/SIMULATOR.md "Workloads"): coding-agent sessions as Anthropic /v1/messages, OpenAI
// chat completions with tools and OpenAI /v1/responses requests, mixed across sessions. A session is one
// agent (a long system prompt plus tool definitions, shared by every session of that agent) working on one
// task: each turn resends the whole history plus the last tool call's result, and the model answers with
// some text and the next tool call. Bodies put their keys in the order the clients' SDKs do (the tools after
// the messages for OpenAI chat), so the filter must hash in the template's order to see one conversation.
import type { Api } from "./openai";
import { Rng, intNormal } from "./rng";
import { synthText } from "./text";
import type { Workload, WorkloadOptions, WorkloadRequest } from "./workloads";

export interface AgentShape {
  /** Distinct agents (system prompt and tools), each session one of them. */
  agents: number;
  systemTokens: number;
  /** Tool definitions per agent, and their description lengths (tokens). */
  tools: number;
  toolDescription: { mean: number; sd: number };
  /** The session's task, its first user message (tokens). */
  task: { mean: number; sd: number };
  /** Requests per session, uniform in [min, max]. */
  turns: { min: number; max: number };
  /** A tool result's tokens: log-normal, capped. */
  toolResult: { median: number; sigma: number; max: number };
  /** max_tokens of every turn (answers stop at the engine's natural length below it). */
  maxTokens: number;
  /** Mean time the client runs a tool before the next turn (exponential). */
  toolMs: number;
  /** Shares of the sessions by request format. */
  apis: Partial<Record<Exclude<Api, "completions">, number>>;
}

/**
 * 16 agents of a 2,400-token system prompt and 12 tools (~1,200 tokens as the template renders them) each:
 * ~3,600 tokens before a session's task, ~14.5 KB of JSON, inside the 16 KiB GIE's default prefix profile
 * hashes, so the task still falls in what is hashed. The agents' prefixes together are ~0.9x one pod's cache
 * on bench-scaled. Sessions of 4-10 turns; tool results of median 300 tokens.
 */
export const AGENT: AgentShape = {
  agents: 16,
  systemTokens: 2400,
  tools: 12,
  toolDescription: { mean: 40, sd: 15 },
  task: { mean: 200, sd: 60 },
  turns: { min: 4, max: 10 },
  toolResult: { median: 300, sigma: 0.8, max: 2000 },
  maxTokens: 400,
  toolMs: 1000,
  apis: { messages: 0.4, chat: 0.4, responses: 0.2 },
};

export interface Agent {
  system: string;
  tools: Array<{ name: string; description: string; schema: Record<string, unknown> }>;
}

/** One turn after the first: what the model answered, the tool it called and what the tool returned. */
export interface Step {
  answer: string;
  tool: string;
  args: Record<string, unknown>;
  result: string;
}

export interface Session {
  id: number;
  agent: Agent;
  api: Exclude<Api, "completions">;
  task: string;
  turns: number;
  steps: Step[];
}

function makeAgent(rng: Rng, shape: AgentShape, index: number): Agent {
  const tools = Array.from({ length: shape.tools }, (_, k) => ({
    name: `${["read", "write", "edit", "grep", "glob", "bash"][k % 6]}_${index}_${k}`,
    description: synthText(rng, intNormal(rng, shape.toolDescription.mean, shape.toolDescription.sd, 8)),
    schema: {
      type: "object",
      properties: {
        path: { type: "string", description: synthText(rng, 6) },
        pattern: { type: "string", description: synthText(rng, 6) },
      },
      required: ["path"],
    },
  }));
  return { system: synthText(rng, shape.systemTokens), tools };
}

/** The request body of a session's turn `steps.length`, in the session's API and its SDK's key order. */
export function agentBody(model: string, s: Session, steps: Step[], maxTokens: number): string {
  const callId = (k: number) => `call_${s.id}_${k}`;
  if (s.api === "messages") {
    const messages: unknown[] = [{ role: "user", content: s.task }];
    steps.forEach((st, k) => {
      messages.push({
        role: "assistant",
        content: [
          { type: "text", text: st.answer },
          { type: "tool_use", id: callId(k), name: st.tool, input: st.args },
        ],
      });
      messages.push({ role: "user", content: [{ type: "tool_result", tool_use_id: callId(k), content: st.result }] });
    });
    return JSON.stringify({
      model,
      messages,
      system: [{ type: "text", text: s.agent.system, cache_control: { type: "ephemeral" } }],
      tools: s.agent.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.schema })),
      max_tokens: maxTokens,
      stream: true,
    });
  }
  if (s.api === "chat") {
    const messages: unknown[] = [
      { role: "system", content: s.agent.system },
      { role: "user", content: s.task },
    ];
    steps.forEach((st, k) => {
      messages.push({
        role: "assistant",
        content: st.answer,
        tool_calls: [
          { id: callId(k), type: "function", function: { name: st.tool, arguments: JSON.stringify(st.args) } },
        ],
      });
      messages.push({ role: "tool", tool_call_id: callId(k), content: st.result });
    });
    return JSON.stringify({
      messages,
      model,
      max_tokens: maxTokens,
      stream: true,
      tool_choice: "auto",
      tools: s.agent.tools.map((t) => ({
        type: "function",
        function: { name: t.name, description: t.description, parameters: t.schema },
      })),
    });
  }
  const input: unknown[] = [{ type: "message", role: "user", content: [{ type: "input_text", text: s.task }] }];
  steps.forEach((st, k) => {
    input.push({ type: "message", role: "assistant", content: [{ type: "output_text", text: st.answer }] });
    input.push({ type: "function_call", call_id: callId(k), name: st.tool, arguments: JSON.stringify(st.args) });
    input.push({ type: "function_call_output", call_id: callId(k), output: st.result });
  });
  return JSON.stringify({
    model,
    instructions: s.agent.system,
    input,
    tools: s.agent.tools.map((t) => ({
      type: "function",
      name: t.name,
      description: t.description,
      parameters: t.schema,
    })),
    tool_choice: "auto",
    stream: true,
    store: false,
    max_output_tokens: maxTokens,
  });
}

/**
 * Agent sessions: `count / mean turns` sessions starting as a Poisson process at `ratePerSec / mean turns`;
 * each turn is sent after the previous answer plus the tool's run time (exponential, mean toolMs).
 */
export function agentWorkload(o: WorkloadOptions, shape: AgentShape = AGENT): Workload {
  const seed = o.seed ?? 1;
  const rng = new Rng(`agent:${seed}`);
  const agents = Array.from({ length: shape.agents }, (_, i) => makeAgent(rng, shape, i));
  const meanTurns = (shape.turns.min + shape.turns.max) / 2;
  const count = Math.max(1, Math.round(o.count / meanTurns));
  const apiNames = Object.keys(shape.apis) as Array<Exclude<Api, "completions">>;
  const apiTotal = apiNames.reduce((a, k) => a + (shape.apis[k] ?? 0), 0);
  const sessions: Session[] = Array.from({ length: count }, (_, id) => {
    let x = rng.next() * apiTotal;
    const api = apiNames.find((k) => (x -= shape.apis[k] ?? 0) < 0) ?? apiNames[apiNames.length - 1];
    return {
      id,
      agent: agents[rng.int(agents.length)],
      api,
      task: synthText(rng, intNormal(rng, shape.task.mean, shape.task.sd, 8)),
      turns: shape.turns.min + rng.int(shape.turns.max - shape.turns.min + 1),
      steps: [],
    };
  });
  const arrivals = new Rng(`agent-arrivals:${seed}`);
  let t = 0;
  const starts = sessions.map(() => (t += arrivals.exponential((1000 * meanTurns) / o.ratePerSec)));
  // Each request carries its session and turn; its steps are the session's first `round` steps.
  const make = (s: Session, round: number, arrivalMs: number): WorkloadRequest => ({
    id: `agent-${s.id}-${round}`,
    arrivalMs,
    api: s.api,
    session: { id: s.id, round },
    bodyText: agentBody(o.model, s, s.steps.slice(0, round), shape.maxTokens),
  });
  return {
    name: "agent",
    requests: sessions.map((s, i) => make(s, 0, starts[i])),
    total: sessions.reduce((a, s) => a + s.turns, 0),
    adapters: [],
    ratePerSec: o.ratePerSec,
    followUps: (req) => {
      const s = sessions[req.session!.id];
      return s.turns - 1 - req.session!.round;
    },
    next(done, finishedMs, answer) {
      const { id, round } = done.session!;
      const s = sessions[id];
      if (round + 1 >= s.turns) return null;
      const r = new Rng(`agent-step:${seed}:${id}:${round}`);
      const tool = s.agent.tools[r.int(s.agent.tools.length)];
      const resultTokens = Math.min(
        shape.toolResult.max,
        Math.max(8, Math.round(r.logNormal(shape.toolResult.median, shape.toolResult.sigma))),
      );
      // A replay (the same workload at another load) finds the step already there: the same answer.
      if (s.steps.length === round)
        s.steps.push({
          answer,
          tool: tool.name,
          args: { path: `/repo/src/module_${id}_${round}.ts`, pattern: `fn_${round}` },
          result: synthText(r, resultTokens),
        });
      const think = r.exponential(shape.toolMs);
      return make(s, round + 1, finishedMs + think);
    },
  };
}
