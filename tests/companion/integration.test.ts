// The bundled companion (build/companion.mjs, a child process) against the fake Kubernetes API server and
// model servers on loopback: each "pod" is an HTTP server on its own 127.0.0.x address and the pool's port,
// serving its engine's metrics page.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeSnapshot, type Snapshot, type SnapshotEndpoint } from "../../companion/snapshot";
import { FakeKube, inferencePoolV1, pod } from "../helpers/fake-kube";
import { sglangPage, trtllmServePage, tritonPage, vllmPage } from "./fixtures/pages";
import { freePortOn } from "../helpers/ports";
import { spawnCompanion, type RunningCompanion } from "../helpers/companion-process";

const ENGINE_LABEL = "inference.networking.k8s.io/engine-type";

interface ModelServer {
  ip: string;
  /** What the server answers; change it to change the pod's load. */
  respond: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.x:port (the whole 127/8 is loopback on Linux). */
async function modelServer(ip: string, port: number, respond: ModelServer["respond"]): Promise<ModelServer> {
  const ms: ModelServer = { ip, respond, close: async () => {} };
  const s = http.createServer((req, res) => ms.respond(req, res));
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.listen(port, ip, resolve);
  });
  ms.close = () =>
    new Promise<void>((r) => {
      s.closeAllConnections();
      s.close(() => r());
    });
  return ms;
}

const page = (text: string) => (_req: http.IncomingMessage, res: http.ServerResponse) =>
  res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(text);

type Running = RunningCompanion;

const startCompanion = (args: string[]): Promise<Running> =>
  spawnCompanion([...args, "--port", "0", "--host", "127.0.0.1"]);

async function snapshot(base: string, after?: bigint): Promise<Snapshot | null> {
  const res = await fetch(`${base}/v1/snapshot${after !== undefined ? `?after=${after}` : ""}`);
  if (res.status === 304) return null;
  assert.equal(res.status, 200);
  return decodeSnapshot(new Uint8Array(await res.arrayBuffer()));
}

/** Long-polls until `check` holds on a snapshot; returns it and how long that took. */
async function waitFor(
  base: string,
  what: string,
  check: (s: Snapshot) => boolean,
  timeoutMs = 5000,
): Promise<{ snap: Snapshot; ms: number }> {
  const started = Date.now();
  let s = (await snapshot(base))!;
  while (!check(s)) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out waiting for ${what}; last snapshot: ${JSON.stringify(s.endpoints)}`);
    s = (await snapshot(base, s.version)) ?? s;
  }
  return { snap: s, ms: Date.now() - started };
}

const byAddress = (s: Snapshot, address: string): SnapshotEndpoint | undefined =>
  s.endpoints.find((e) => e.address === address);

test("InferencePool with mixed engines: adds, relabels, deletes within a second; bad pods are marked; watches recover", async (t) => {
  const ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8"];
  const port = await freePortOn(ips);
  const fake = await FakeKube.start({ namespace: "models" });
  const servers: ModelServer[] = [];
  let companion: Running | null = null;
  t.after(async () => {
    companion?.child.kill("SIGTERM");
    await Promise.all(servers.map((s) => s.close()));
    await fake.close();
  });
  const serve = async (ip: string, respond: ModelServer["respond"]) => {
    const s = await modelServer(ip, port, respond);
    servers.push(s);
    return s;
  };
  const addr = (ip: string) => `${ip}:${port}`;

  // vLLM (no engine label: the default), SGLang, trtllm-serve (its /prometheus/metrics) and Triton.
  const vllm = await serve(
    ips[0],
    page(
      vllmPage({
        version: "v1",
        engines: [
          { waiting: 2, running: 4, kv: 0.25 },
          { waiting: 1, running: 2, kv: 0.75 },
        ],
        cache: { blockSize: 16, numGpuBlocks: 1000 },
      }) + "sglang:num_queue_reqs 9\n",
    ),
  );
  await serve(ips[1], page(sglangPage({ ranks: [{ waiting: 5, running: 3, kv: 0.4 }] })));
  await serve(ips[2], (req, res) =>
    page(
      req.url === "/prometheus/metrics"
        ? trtllmServePage({ load: { waiting: 6, running: 8, kv: 0.6 }, tokensPerBlock: 32, maxBlocks: 4000 })
        : "[{}]\n",
    )(req, res),
  );
  await serve(
    ips[3],
    page(
      tritonPage({
        models: [{ name: "tensorrt_llm", waiting: 7, running: 1, kv: 0.1, tokensPerBlock: 64, maxBlocks: 6239 }],
      }),
    ),
  );
  fake.put(inferencePoolV1({ name: "mixed", namespace: "models", matchLabels: { app: "mixed" }, ports: [port] }));
  fake.put(pod({ name: "vllm-0", namespace: "models", ip: ips[0], labels: { app: "mixed" } }));
  fake.put(
    pod({ name: "sglang-0", namespace: "models", ip: ips[1], labels: { app: "mixed", [ENGINE_LABEL]: "sglang" } }),
  );
  fake.put(
    pod({
      name: "trtllm-0",
      namespace: "models",
      ip: ips[2],
      labels: { app: "mixed", [ENGINE_LABEL]: "trtllm-serve" },
    }),
  );
  fake.put(
    pod({
      name: "triton-0",
      namespace: "models",
      ip: ips[3],
      labels: { app: "mixed", [ENGINE_LABEL]: "triton-tensorrt-llm" },
    }),
  );
  fake.put(pod({ name: "unready", namespace: "models", ip: ips[6], labels: { app: "mixed" }, ready: false }));
  fake.put(pod({ name: "elsewhere", namespace: "models", ip: ips[6], labels: { app: "other" } }));

  companion = await startCompanion([
    "--pool-name",
    "mixed",
    "--kubeconfig",
    fake.kubeconfigPath,
    "--refresh-interval",
    "20ms",
    "--scrape-timeout",
    "300ms",
    "--max-backoff",
    "200ms",
  ]);
  const base = companion.base;
  const { snap } = await waitFor(
    base,
    "all four engines scraped",
    (s) => s.endpoints.length === 4 && s.endpoints.every((e) => !e.stale && !e.error),
  );
  // The snapshot carries the load; the engine and cache geometry are in the operators' view (/v1/endpoints).
  type Listed = { address: string; engine: string; cache?: { blockSize: number; numBlocks: number } | null };
  const listedNow = ((await (await fetch(`${base}/v1/endpoints`)).json()) as { endpoints: Listed[] }).endpoints;
  const view = (a: string) => {
    const e = byAddress(snap, a)!,
      v = listedNow.find((l) => l.address === a)!;
    return [v.engine, e.queued, e.running, e.kvUsage, v.cache?.blockSize ?? 0, v.cache?.numBlocks ?? 0];
  };
  assert.deepEqual(view(addr(ips[0])), ["vllm", 3, 6, 0.5, 16, 2000]);
  assert.deepEqual(view(addr(ips[1])), ["sglang", 5, 3, Math.fround(0.4), 0, 0]);
  assert.deepEqual(view(addr(ips[2])), ["trtllm-serve", 6, 8, Math.fround(0.6), 32, 4000]);
  assert.deepEqual(view(addr(ips[3])), ["triton-tensorrt-llm", 7, 1, Math.fround(0.1), 64, 6239]);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const listed = (await (await fetch(`${base}/v1/endpoints`)).json()) as {
    pool: string;
    endpoints: Array<{ address: string; pod: string }>;
  };
  assert.equal(listed.pool, `InferencePool models/mixed (inference.networking.k8s.io/v1)`);
  assert.equal(listed.endpoints.find((e) => e.address === addr(ips[0]))!.pod, "models/vllm-0");

  // A pod added: in the snapshot within a second.
  await serve(ips[4], page("vllm:num_requests_waiting 11\nvllm:num_requests_running 1\n"));
  fake.put(pod({ name: "vllm-1", namespace: "models", ip: ips[4], labels: { app: "mixed" } }));
  const added = await waitFor(base, "added pod", (s) => byAddress(s, addr(ips[4]))?.queued === 11);
  assert.ok(added.ms < 1000, `added pod took ${added.ms}ms`);

  // Relabelled to SGLang: the same server is now read with SGLang's names (its page has both).
  fake.update("v1", "Pod", "models", "vllm-0", (p) => {
    p.metadata.labels![ENGINE_LABEL] = "sglang";
  });
  const relabelled = await waitFor(
    base,
    "relabelled pod",
    (s) => byAddress(s, addr(ips[0]))?.queued === 9 /* only SGLang's names read 9 */,
  );
  assert.ok(relabelled.ms < 1000, `relabel took ${relabelled.ms}ms`);

  // Deleted: gone within a second.
  fake.delete("v1", "Pod", "models", "vllm-1");
  const deleted = await waitFor(base, "deleted pod", (s) => !byAddress(s, addr(ips[4])));
  assert.ok(deleted.ms < 1000, `delete took ${deleted.ms}ms`);

  // A pod serving garbage and a pod that hangs are marked; the others go on updating.
  await serve(ips[5], page("<html>Bad Gateway</html>\n"));
  const hanging = servers.find((s) => s.ip === ips[4])!;
  hanging.respond = () => {
    /* never answers */
  };
  fake.put(pod({ name: "garbage", namespace: "models", ip: ips[5], labels: { app: "mixed" } }));
  fake.put(pod({ name: "hangs", namespace: "models", ip: ips[4], labels: { app: "mixed" } }));
  vllm.respond = page("sglang:num_queue_reqs 1\nsglang:num_running_reqs 2\n");
  const marked = await waitFor(
    base,
    "bad pods marked, good pod updated",
    (s) =>
      byAddress(s, addr(ips[5]))?.error === true &&
      byAddress(s, addr(ips[4]))?.error === true &&
      byAddress(s, addr(ips[0]))?.queued === 1,
  );
  assert.equal(
    marked.snap.endpoints.filter((e) => !e.error && !e.stale).length,
    4,
    "the four good pods are unaffected",
  );
  const errors = (await (await fetch(`${base}/v1/endpoints`)).json()) as {
    endpoints: Array<{ address: string; error: string | null }>;
  };
  assert.match(
    errors.endpoints.find((e) => e.address === addr(ips[5]))!.error!,
    /^bad metrics page: line 1: not a metrics exposition line/,
  );
  assert.equal(errors.endpoints.find((e) => e.address === addr(ips[4]))!.error, "no complete page within 300ms");

  // Watch streams dropped, then history compacted: the companion resumes and relists.
  fake.dropWatches();
  fake.delete("v1", "Pod", "models", "garbage");
  await waitFor(base, "delete seen after a dropped watch", (s) => !byAddress(s, addr(ips[5])));
  fake.closeWatches();
  fake.delete("v1", "Pod", "models", "hangs");
  fake.compact(); // the watch resumes from before the delete: 410 Gone
  await waitFor(base, "delete seen after 410 Gone", (s) => !byAddress(s, addr(ips[4])));
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /endpoint_picker_companion_kube_watch_restarts_total\{resource="pods"\} [1-9]/);
  assert.ok(fake.requests.filter((r) => !r.watch && r.path.endsWith("/pods")).length >= 2, "relisted after 410");
  assert.doesNotMatch(companion.stderr(), /"level":"error"/);
});

test("node build/companion.mjs --once --endpoints-file prints the states of a mixed pool", async (t) => {
  const ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
  const port = await freePortOn(ips);
  const servers = [
    await modelServer(
      ips[0],
      port,
      page(
        vllmPage({
          version: "v0",
          engines: [{ waiting: 4, running: 2, kv: 0.5 }],
          cache: { blockSize: 16, numGpuBlocks: 800 },
          lora: {
            maxLora: 2,
            history: [
              { running: ["sql-lora"], waiting: [], timestamp: 1718309100 },
              { running: ["sql-lora", "chat-lora"], waiting: ["x"], timestamp: 1718309200 },
            ],
          },
        }),
      ),
    ),
    await modelServer(
      ips[1],
      port,
      page(
        sglangPage({
          ranks: [
            { waiting: 1, running: 1, kv: 0.2 },
            { waiting: 2, running: 3, kv: 0.4 },
          ],
          cache: { pageSize: 1, numPages: 1000 },
        }),
      ),
    ),
    await modelServer(ips[2], port, page("not metrics at all\n")),
  ];
  const dir = mkdtempSync(join(tmpdir(), "companion-once-"));
  t.after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, "endpoints.yaml");
  writeFileSync(
    file,
    [
      `- address: ${ips[0]}:${port}`,
      `- address: ${ips[1]}:${port}`,
      `  labels: {${ENGINE_LABEL}: sglang}`,
      `- address: ${ips[2]}:${port}`,
      `  labels: {${ENGINE_LABEL}: triton-tensorrt-llm}`,
      `- address: ${ips[3]}:${port}`,
    ].join("\n") + "\n",
  );
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["build/companion.mjs", "--once", "--endpoints-file", file], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "",
      stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (status) => resolve({ status, stdout, stderr }));
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { endpoints: Array<Record<string, unknown>> };
  const [v, s, bad, dead] = out.endpoints;
  assert.deepEqual(
    { ...v, updatedAt: typeof v.updatedAt, ageMs: typeof v.ageMs },
    {
      address: `${ips[0]}:${port}`,
      engine: "vllm",
      queued: 4,
      running: 2,
      kvUsage: 0.5,
      lora: { running: ["sql-lora", "chat-lora"], waiting: ["x"], max: 2 },
      cache: { blockSize: 16, numBlocks: 800 },
      models: ["meta-llama/Llama-3.1-8B-Instruct"],
      updatedAt: "string",
      ageMs: "number",
      stale: false,
      error: null,
    },
  );
  assert.deepEqual(
    [s.engine, s.queued, s.running, s.kvUsage, s.cache, s.models],
    ["sglang", 3, 4, 0.30000000000000004, { blockSize: 1, numBlocks: 2000 }, ["Qwen/Qwen2.5-7B-Instruct"]],
  );
  assert.deepEqual([bad.engine, bad.stale, bad.queued], ["triton-tensorrt-llm", true, null]);
  assert.match(String(bad.error), /^bad metrics page: line 1, column 5: bad value "metrics"/);
  assert.deepEqual([dead.engine, dead.stale], ["vllm", true]);
  assert.match(String(dead.error), /ECONNREFUSED/);

  const missing = spawnSync(
    process.execPath,
    ["build/companion.mjs", "--once", "--endpoints-file", join(dir, "nope.yaml")],
    { encoding: "utf8" },
  );
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /configuration error: --endpoints-file .*nope\.yaml: ENOENT/);
});

test("--once with an InferencePool lists it through the API server; a missing pool or an unusable spec is an error", async (t) => {
  const ip = "127.0.0.2";
  const port = await freePortOn([ip]);
  const fake = await FakeKube.start();
  const server = await modelServer(ip, port, page(sglangPage({ ranks: [{ waiting: 2, running: 1, kv: 0.5 }] })));
  t.after(async () => {
    await server.close();
    await fake.close();
  });
  fake.put(inferencePoolV1({ name: "once", matchLabels: { app: "once" }, ports: [port] }));
  fake.put(pod({ name: "s", ip, labels: { app: "once", [ENGINE_LABEL]: "sglang" } }));
  const run = (name: string) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        ["build/companion.mjs", "--once", "--pool-name", name, "--kubeconfig", fake.kubeconfigPath],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let stdout = "",
        stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("exit", (status) => resolve({ status, stdout, stderr }));
    });
  const ok = await run("once");
  assert.equal(ok.status, 0, ok.stderr);
  const out = JSON.parse(ok.stdout) as {
    pool: string;
    endpoints: Array<{ address: string; engine: string; pod: string; queued: number; kvUsage: number }>;
  };
  assert.deepEqual(
    out.endpoints.map((e) => [e.address, e.engine, e.pod, e.queued, e.kvUsage]),
    [[`${ip}:${port}`, "sglang", "default/s", 2, 0.5]],
  );
  const missing = await run("nope");
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /configuration error: InferencePool default\/nope not found/);
  fake.put({
    ...inferencePoolV1({ name: "broken", matchLabels: { app: "once" }, ports: [port] }),
    spec: { selector: { matchLabels: { app: "once" } }, targetPorts: [{ number: 0 }] },
  });
  const broken = await run("broken");
  assert.equal(broken.status, 1);
  assert.match(
    broken.stderr,
    /configuration error: InferencePool default\/broken has an unusable spec: spec\.targetPorts\[0\]\.number: must be a port from 1 to 65535, got 0\n/,
  );
});
