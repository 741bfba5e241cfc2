// What one scrape costs the model server (make bench, build/bench/companion.json `modelServerCost`): CPU
// microseconds per /metrics request in Python's prometheus_client (what vLLM and SGLang serve their pages
// with), full page versus the page restricted with ?name[]= to the families the companion reads. The work is
// done by tests/companion/model-server-cost.py under Debian's /usr/bin/python3 with python3-prometheus-client
// (make bench installs it when it can); without them the figure is skipped, with the reason.
import { execFile } from "node:child_process";
import { access } from "node:fs/promises";
import path from "node:path";
import { familiesOf } from "../../companion/engines";
import { loadPickerConfig } from "../../companion/picker-config";

/** Debian's interpreter: the one python3-prometheus-client installs into (not a pyenv python3 on PATH). */
export const PYTHON = "/usr/bin/python3";

/** The script, from the repository root: benches and tests run bundled from build/tests, from the root. */
export function modelServerCostScript(root = process.cwd()): string {
  return path.join(root, "tests", "companion", "model-server-cost.py");
}

/** The families the companion asks a vLLM server for (the built-in engine's metric specs). */
export function vllmFamilies(): string[] {
  return familiesOf(loadPickerConfig(null).engines.engines.get("vllm")!);
}

export interface ModelServerCost {
  prometheusClientVersion: string;
  python: string;
  /** How the page was served: prometheus_client's make_wsgi_app, with the companion's Accept header. */
  served: string;
  contentType: string;
  /** The sample names in the request (?name[]=...). */
  families: string[];
  fullPageBytes: number;
  restrictedPageBytes: number;
  fullPageLines: number;
  restrictedPageLines: number;
  /** CPU µs per WSGI request (query parsing, exposition, headers): full page. */
  fullUs: number;
  /** CPU µs per WSGI request: the page restricted to `families`. */
  restrictedUs: number;
  /** fullUs / restrictedUs. */
  ratio: number;
  /** The bare exposition call (the encoder the Accept header picks), without the WSGI app. */
  exposition: { fullUs: number; restrictedUs: number; ratio: number };
  /** The same with the text format 0.0.4 (a client that does not list OpenMetrics). */
  expositionText: {
    fullPageBytes: number;
    restrictedPageBytes: number;
    fullUs: number;
    restrictedUs: number;
    ratio: number;
  };
  /** Calls timed per figure. */
  iterations: Record<string, number>;
  cpu: string;
}

export type Skipped = { skipped: string };

/**
 * Runs the script with `args`; its stdout, or why it cannot run here (no /usr/bin/python3, no
 * prometheus_client for it). Other failures throw.
 */
export async function runModelServerScript(args: string[], timeoutMs = 120_000): Promise<string | Skipped> {
  const script = modelServerCostScript();
  try {
    await access(PYTHON);
  } catch {
    return { skipped: `${PYTHON} not found: install python3 and python3-prometheus-client (apt-get)` };
  }
  try {
    await access(script);
  } catch {
    return { skipped: `${script} not found: run from the repository root` };
  }
  return new Promise((resolve, reject) => {
    execFile(
      PYTHON,
      [script, ...args],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } },
      (err, stdout, stderr) => {
        if (err && err.code === 3) {
          // The script's own answer when `import prometheus_client` fails.
          const missing = (JSON.parse(stdout) as { missing: string }).missing;
          resolve({ skipped: `${missing}; install python3-prometheus-client (apt-get)` });
        } else if (err) reject(new Error(`${PYTHON} ${path.basename(script)} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/** CPU per scrape on a prometheus_client server with a vLLM V1 registry, full and restricted page. */
export async function measureModelServerCost(): Promise<ModelServerCost | Skipped> {
  const args = vllmFamilies().flatMap((f) => ["--family", f]);
  const out = await runModelServerScript(args);
  if (typeof out !== "string") return out;
  return JSON.parse(out) as ModelServerCost;
}
