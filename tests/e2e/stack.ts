// The whole system on one machine, over real sockets: simulated model-server pods (in this process, on
// real time), the bundled companion and the emulator gateway serving envoy/envoy.yaml (child processes).
// Used by the end-to-end tests and the demo.
import http from "node:http";
import net from "node:net";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { RealClock } from "../sim/clock";
import { SimPod } from "../sim/pod-server";
import { DEFAULT_PROFILE, type EngineKind, type EngineProfile } from "../sim/profile";
import { tempBootstrap } from "../emulator/fixtures";
import { freePortOn } from "../helpers/ports";

export const ENGINE_LABEL = "inference.networking.k8s.io/engine-type";
/** The companion's engine name for each simulated engine. */
export const COMPANION_ENGINE: Record<EngineKind, string> = {
  "vllm-v1": "vllm",
  "vllm-v0": "vllm",
  sglang: "sglang",
  "triton-trtllm": "triton-tensorrt-llm",
  "trtllm-serve": "trtllm-serve",
};

export interface Proc {
  readonly child: ChildProcess;
  /** HOST:PORT it printed when ready. */
  address: string;
  port: number;
  output(): string;
  stop(): Promise<void>;
}

/** Starts a bundled program and waits for its "... listening on HOST:PORT" line. */
export async function startProc(script: string, args: string[], ready: RegExp, timeoutMs = 15_000): Promise<Proc> {
  const proc = spawnProc(process.execPath, [script, ...args], "");
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      void proc.stop();
      reject(new Error(`${script} not ready after ${timeoutMs} ms:\n${proc.output()}`));
    }, timeoutMs);
    proc.child.stdout!.on("data", () => {
      const m = ready.exec(proc.output());
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited ${code}:\n${proc.output()}`));
    });
  });
  proc.address = address;
  proc.port = Number(address.split(":").pop());
  return proc;
}

export interface PodSpecs {
  engines: EngineKind[];
  ips?: string[];
  port?: number;
  profile?: EngineProfile;
  timeScale?: number;
}

/** Simulated pods on one real-time clock; pod i on ips[i] (default 127.0.0.1) and `port` (default: free). */
export async function startSimPods(
  spec: PodSpecs,
): Promise<{ pods: SimPod[]; clock: RealClock; close(): Promise<void> }> {
  const clock = new RealClock(spec.timeScale ?? 1);
  const pods: SimPod[] = [];
  for (let i = 0; i < spec.engines.length; i++) {
    const pod = new SimPod({
      name: `pod-${i}`,
      kind: spec.engines[i],
      profile: spec.profile ?? DEFAULT_PROFILE,
      clock,
      host: spec.ips?.[i] ?? "127.0.0.1",
      port: spec.port ?? 0,
    });
    pods.push(await pod.listen());
  }
  return {
    pods,
    clock,
    close: async () => {
      await Promise.all(pods.map((p) => p.close()));
      clock.stop();
    },
  };
}

/** A static endpoints file for the companion: each pod's address and its engine label. */
export function endpointsFile(pods: SimPod[]): string {
  const dir = mkdtempSync(join(tmpdir(), "e2e-"));
  const file = join(dir, "endpoints.yaml");
  writeFileSync(
    file,
    stringify(pods.map((p) => ({ address: p.address, labels: { [ENGINE_LABEL]: COMPANION_ENGINE[p.kind] } }))),
  );
  return file;
}

export function tempFile(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "e2e-")), name);
  writeFileSync(file, text);
  return file;
}

export async function startCompanion(args: string[], port = 0): Promise<Proc> {
  return startProc(
    "build/companion.mjs",
    [...args, "--port", String(port), "--host", "127.0.0.1", "--log-level", "warn"],
    /companion listening on (\S+)\n/,
  );
}

export interface GatewayOptions {
  /** The companion replicas' ports. */
  companionPort: number | number[];
  /**
   * The pods' ports on 127.0.0.1: the inference-pool cluster's hosts. Every pod the filter may pick must be
   * one (override_host only connects to hosts of the cluster); requests without a destination header go to
   * one of them by the fallback policy.
   */
  poolPorts?: number[];
  /** The pods on other loopback addresses (tests with pods on 127.0.0.2...). */
  poolEndpoints?: { address: string; port: number }[];
  /** The filter configuration (the shipped one when omitted); `withFilter: false` removes the filter. */
  configuration?: object;
  withFilter?: boolean;
  /** The pool's fallback policy (least request in envoy.yaml; the baselines of the demo run without the filter). */
  fallbackLbPolicy?: "ROUND_ROBIN" | "LEAST_REQUEST" | "RANDOM";
  concurrency?: number;
  /** Use this `envoy` binary instead of the emulator (the listener then needs a fixed `port`). */
  envoy?: string;
  port?: number;
}

/**
 * envoy/envoy.yaml rewired to loopback (companion, the pool's pods, listener port) and served by the
 * emulator, or by a real Envoy when `envoy` names one.
 */
export async function startGateway(opts: GatewayOptions): Promise<Proc> {
  const file = tempBootstrap({
    poolPorts: opts.poolPorts,
    poolEndpoints: opts.poolEndpoints,
    fallbackLbPolicy: opts.fallbackLbPolicy,
    companionPort: opts.companionPort,
    withFilter: opts.withFilter,
    // The tests and the demo see where requests went by the served header, which is off by default.
    configuration: { servedHeader: "x-gateway-destination-endpoint-served", ...(opts.configuration ?? {}) },
    edit: (d) => {
      d.static_resources.listeners[0].address.socket_address.port_value = opts.port ?? 0;
      if (d.admin) d.admin.address.socket_address.port_value = 0;
    },
  });
  if (!opts.envoy) {
    return startProc(
      "build/emulator.mjs",
      ["-c", file, "--concurrency", String(opts.concurrency ?? 2), "--log-level", "warn"],
      /emulator listening on (\S+)\n/,
    );
  }
  if (!opts.port) throw new Error("a real Envoy needs a fixed listener port");
  const proc = spawnProc(
    opts.envoy,
    ["-c", file, "--concurrency", String(opts.concurrency ?? 2), "-l", "warn"],
    `127.0.0.1:${opts.port}`,
  );
  await eventually("envoy to listen", () => canConnect(opts.port!), 20_000, 100);
  return proc;
}

function spawnProc(command: string, args: string[], address: string): Proc {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return {
    child,
    address,
    port: Number(address.split(":").pop()),
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      }),
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

/** A port free on loopback right now. */
export const freePort = (): Promise<number> => freePortOn(["127.0.0.1"]);

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ttftMs: number;
  totalMs: number;
}

/** One HTTP request (a fresh connection unless `agent` is given); ttftMs is the time to the first body byte. */
export function send(
  port: number,
  path: string,
  body: string | null,
  headers: Record<string, string | string[]> = {},
  agent?: http.Agent,
  host = "127.0.0.1",
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let first = 0;
    const r = http.request(
      {
        host,
        port,
        path,
        method: body === null ? "GET" : "POST",
        agent: agent ?? false,
        headers: {
          ...(body === null ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) }),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => {
          if (first === 0) first = performance.now();
          chunks.push(c);
        });
        res.on("end", () => {
          const now = performance.now();
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            ttftMs: (first || now) - started,
            totalMs: now - started,
          });
        });
        res.on("error", reject);
      },
    );
    r.on("error", reject);
    if (body !== null) r.write(body);
    r.end();
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `rate` completions a second (body `bodyOf(k)` for the k-th) for `ms`, each on its own connection, not waiting for answers. */
export async function steadyLoad(
  port: number,
  rate: number,
  ms: number,
  bodyOf: (k: number) => string,
): Promise<Reply[]> {
  const replies: Promise<Reply>[] = [];
  const started = Date.now();
  for (let k = 0; Date.now() - started < ms; k++) {
    replies.push(send(port, "/v1/completions", bodyOf(k)));
    await sleep(Math.max(0, started + ((k + 1) * 1000) / rate - Date.now()));
  }
  return Promise.all(replies);
}

/** Polls `check` until it is true or `timeoutMs` passes (then throws with `what`). */
export async function eventually(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 5000,
  everyMs = 25,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The companion's normalised view of the pool (GET /v1/endpoints). */
export async function companionEndpoints(port: number): Promise<
  Array<{
    address: string;
    engine: string;
    queued: number | null;
    running: number | null;
    kvUsage: number | null;
    stale: boolean;
    error: string | null;
    lora: { running: string[] } | null;
  }>
> {
  const r = await send(port, "/v1/endpoints", null);
  const parsed = JSON.parse(r.body);
  return Array.isArray(parsed) ? parsed : parsed.endpoints;
}

/**
 * A gateway failing open over `poolPorts` (staleness limit 5 s), started once the companion has scraped
 * every endpoint (`what` names them in a timeout).
 */
export async function startScrapedGateway(companionPort: number, poolPorts: number[], what: string): Promise<Proc> {
  const gateway = await startGateway({
    companionPort,
    poolPorts,
    configuration: {
      companionCluster: "endpoint-picker-companion",
      companionAuthority: "endpoint-picker-companion",
      failureMode: "FailOpen",
      stalenessLimitMs: 5000,
    },
  });
  await eventually(
    `the companion to scrape every ${what}`,
    async () => (await companionEndpoints(companionPort)).every((e) => e.queued !== null && !e.error),
    10_000,
  );
  return gateway;
}

/** Waits until the gateway's filter picks (its fetcher has a snapshot): a request gets a served header. */
export async function gatewayPicking(port: number, body: string, timeoutMs = 10_000): Promise<void> {
  await eventually(
    "the gateway to pick",
    async () =>
      (await send(port, "/v1/completions", body)).headers["x-gateway-destination-endpoint-served"] !== undefined,
    timeoutMs,
    50,
  );
}
