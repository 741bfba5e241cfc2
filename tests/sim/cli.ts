// Simulated model-server pods from the command line (bundled to build/sim.mjs):
//   node build/sim.mjs --pods 4 --engines vllm-v1,sglang --base-port 8100 --time-scale 10
// Prints `sim pod NAME ENGINE listening on HOST:PORT` per pod once all listen; SIGINT/SIGTERM stop them and
// exit 0. Bad arguments exit 2, a port in use exits 1.
import { parseArgs } from "node:util";
import { startPods } from "./pods";
import {
  DEFAULT_PROFILE,
  ENGINE_KINDS,
  type EngineKind,
  type EngineProfile,
  loadProfile,
  makeProfile,
} from "./profile";

const USAGE = `usage: sim [--pods N] [--engine KIND | --engines KIND,KIND,...] [--host H] [--base-port P] [--profile FILE]
           [--time-scale X] [--metrics-lag-ms MS] [--lora-adapters a,b,...] [--max-loras N]
kinds: ${ENGINE_KINDS.join(", ")}`;

function fail(message: string): never {
  process.stderr.write(`sim: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function number(name: string, v: string | undefined, fallback: number, integer: boolean, min: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n)))
    fail(`--${name}: ${JSON.stringify(v)} is not ${integer ? "an integer" : "a number"} >= ${min}`);
  return n;
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: {
        pods: { type: "string" },
        engine: { type: "string" },
        engines: { type: "string" },
        host: { type: "string" },
        "base-port": { type: "string" },
        profile: { type: "string" },
        "time-scale": { type: "string" },
        "metrics-lag-ms": { type: "string" },
        "lora-adapters": { type: "string" },
        "max-loras": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const engineList = (args.engines ?? args.engine ?? "vllm-v1")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const e of engineList)
    if (!(ENGINE_KINDS as readonly string[]).includes(e)) fail(`unknown engine ${JSON.stringify(e)}`);
  let profile: EngineProfile;
  try {
    profile = args.profile ? loadProfile(args.profile) : DEFAULT_PROFILE;
    const overrides: Record<string, unknown> = {};
    if (args["metrics-lag-ms"] !== undefined)
      overrides.metricsLagMs = number("metrics-lag-ms", args["metrics-lag-ms"], 0, false, 0);
    if (args["lora-adapters"] !== undefined || args["max-loras"] !== undefined) {
      overrides.lora = {
        adapters:
          args["lora-adapters"]
            ?.split(",")
            .map((s) => s.trim())
            .filter(Boolean) ?? profile.lora.adapters,
        maxLoras: number("max-loras", args["max-loras"], profile.lora.maxLoras, true, 1),
      };
    }
    if (Object.keys(overrides).length > 0) profile = makeProfile(deepMerge(profile, overrides));
  } catch (e) {
    fail((e as Error).message);
  }
  const set = await startPods({
    pods: number("pods", args.pods, 1, true, 1),
    engines: engineList as EngineKind[],
    host: args.host ?? "127.0.0.1",
    basePort: number("base-port", args["base-port"], 0, true, 0),
    profile,
    timeScale: number("time-scale", args["time-scale"], 1, false, Number.MIN_VALUE),
  }).catch((e: Error) => {
    process.stderr.write(`sim: ${e.message}\n`);
    process.exit(1);
  });
  for (const p of set.pods) process.stdout.write(`sim pod ${p.name} ${p.kind} listening on ${p.address}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    set.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

function deepMerge(base: unknown, patch: unknown): unknown {
  if (
    typeof base !== "object" ||
    base === null ||
    Array.isArray(base) ||
    typeof patch !== "object" ||
    patch === null ||
    Array.isArray(patch)
  )
    return patch;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch)) out[k] = deepMerge(out[k], v);
  return out;
}

void main();
