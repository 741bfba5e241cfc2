// Benchmark: what the gateway costs with the filter versus without it, in one run.
// Prints a table and writes build/bench/gateway.json. Figures on a shared 2-core machine are noisy:
// compare the ratios, not the absolute numbers.
import http from "node:http";
import { mkdirSync, writeFileSync } from "node:fs";
import { startGateway } from "../../envoy/emulator/gateway";
import { createHost } from "../../envoy/emulator/host";
import { startUpstream, tempBootstrap, deliverSnapshot, deadPort } from "./fixtures";

const THROUGHPUT_REQUESTS = 4000;
const PARALLEL = 16;
const LATENCY_REQUESTS = 600;
const STREAMS = 50_000;

async function run(
  port: number,
  n: number,
  parallel: number,
): Promise<{ rps: number; latencies: number[]; meanMs: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: parallel });
  const latencies: number[] = [];
  let next = 0;
  const body = JSON.stringify({ model: "m", prompt: "benchmark prompt" });
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t = process.hrtime.bigint();
      const r = http.request(
        {
          host: "127.0.0.1",
          port,
          path: "/v1/completions",
          method: "POST",
          agent,
          headers: { "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
            latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
            resolve();
          });
        },
      );
      r.on("error", reject);
      r.end(body);
    });
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        await one();
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  return { rps: n / secs, latencies, meanMs: ((secs * 1000) / n) * parallel };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const r2 = (x: number) => Math.round(x * 100) / 100;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

async function main() {
  const up = await startUpstream("up");
  const companion = await deadPort();
  const withFile = tempBootstrap({ poolPorts: [up.port], companionPort: companion });
  const withoutFile = tempBootstrap({ poolPorts: [up.port], companionPort: companion, withFilter: false });
  const gWith = await startGateway({ bootstrap: withFile, concurrency: 2, logLevel: "error", onLog: () => {} });
  const gWithout = await startGateway({ bootstrap: withoutFile, concurrency: 2, logLevel: "error", onLog: () => {} });
  deliverSnapshot(gWith.listeners[0].wasmHost!.sharedData, [up.address]);
  const targets = { direct: up.port, gateway: gWithout.listeners[0].port, "gateway+filter": gWith.listeners[0].port };
  const results: Record<string, { rps: number; p50ms: number; p99ms: number; meanMs: number }> = {};
  try {
    for (const port of Object.values(targets)) await run(port, 300, 8); // warm-up
    for (const [name, port] of Object.entries(targets)) {
      const t = await run(port, THROUGHPUT_REQUESTS, PARALLEL);
      const l = await run(port, LATENCY_REQUESTS, 1);
      results[name] = {
        rps: Math.round(t.rps),
        p50ms: r3(pct(l.latencies, 0.5)),
        p99ms: r3(pct(l.latencies, 0.99)),
        meanMs: r3(l.meanMs),
      };
    }
  } finally {
    await gWith.close();
    await gWithout.close();
    await up.close();
  }
  // In-process stream cost (what the virtual-time simulator pays per pick).
  const host = createHost({
    wasm: "build/filter.wasm",
    rootId: "endpoint-picker",
    vmId: "endpoint-picker",
    configuration: "{}",
    manualTicks: true,
    onLog: () => {},
  });
  deliverSnapshot(host.sharedData, [up.address]);
  const headers: [string, string][] = [
    [":method", "POST"],
    [":path", "/v1/completions"],
    [":authority", "gw"],
    ["content-type", "application/json"],
  ];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < STREAMS; i++) {
    const s = host.openStream();
    s.sendRequestHeaders(headers, false);
    s.sendRequestData('{"prompt":"x"}', true);
    s.sendResponseHeaders([[":status", "200"]], true);
    s.finish();
  }
  const streamUs = Number(process.hrtime.bigint() - t0) / 1e3 / STREAMS;
  host.close();

  const d = results.direct,
    g = results.gateway,
    f = results["gateway+filter"];
  const out = {
    requests: THROUGHPUT_REQUESTS,
    parallel: PARALLEL,
    latencyRequests: LATENCY_REQUESTS,
    results,
    ratios: {
      rpsFilterOverNoFilter: r2(f.rps / g.rps),
      addedP50msNoFilter: r3(g.p50ms - d.p50ms),
      addedP50msFilter: r3(f.p50ms - d.p50ms),
      filterAddedP50ms: r3(f.p50ms - g.p50ms),
      /** Latency the gateway adds over going direct, with the filter / without it. */
      addedLatencyRatio: r2((f.p50ms - d.p50ms) / Math.max(0.001, g.p50ms - d.p50ms)),
    },
    inProcessStreamMicros: r2(streamUs),
  };
  console.log("target          req/s   p50 ms  p99 ms  mean ms (sequential)");
  for (const [k, v] of Object.entries(results))
    console.log(
      `${k.padEnd(15)} ${String(v.rps).padStart(6)}  ${v.p50ms.toFixed(3).padStart(6)}  ${v.p99ms.toFixed(3).padStart(6)}  ${v.meanMs.toFixed(3)}`,
    );
  console.log(
    `with filter / without: ${out.ratios.rpsFilterOverNoFilter}x req/s, ${out.ratios.addedLatencyRatio}x added p50 latency (filter adds ${out.ratios.filterAddedP50ms} ms); in-process stream ${out.inProcessStreamMicros} µs`,
  );
  mkdirSync("build/bench", { recursive: true });
  writeFileSync("build/bench/gateway.json", JSON.stringify(out, null, 2) + "\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
