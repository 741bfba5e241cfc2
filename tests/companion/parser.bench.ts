// Benchmark (make bench): the companion's metrics parser against the well-known general parser
// (parse-prometheus-text-format) on realistic vLLM pages with histograms, in one run; and scrape capacity:
// endpoints fetched, parsed and normalised per CPU-second of the companion, against local HTTP servers (in a
// child process, so serving costs are not counted) that serve a realistic vLLM page.
// Prints a table and writes build/bench/companion.json. On the shared 2-core machine compare ratios.
import http from "node:http";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { familiesOf } from "../../companion/engines";
import { extractMetrics } from "../../companion/extract";
import { silentLogger } from "../../companion/log";
import { DEFAULT_SCRAPE, loadPickerConfig } from "../../companion/picker-config";
import { FamilySelector, parseSelectedFamilies } from "../../companion/prom-parser";
import { Scraper } from "../../companion/scraper";
import { restrictToSamples } from "../sim/exposition/prom-text";
import { vllmPage } from "./fixtures/pages";
import { measureModelServerCost } from "./model-server-cost";

const HANDLERS = [
  "/v1/completions",
  "/v1/chat/completions",
  "/v1/embeddings",
  "/metrics",
  "/health",
  "/v1/models",
  "/tokenize",
  "/detokenize",
  "/ping",
  "/version",
];
const PAGES = {
  "vLLM V0, 1 engine": vllmPage({
    version: "v0",
    engines: [{ waiting: 3, running: 7, kv: 0.4 }],
    cache: { blockSize: 16, numGpuBlocks: 9000 },
    lora: {
      maxLora: 4,
      history: [
        { running: ["a"], waiting: [], timestamp: 1718309100 },
        { running: ["a", "b"], waiting: ["c"], timestamp: 1718309200 },
      ],
    },
  }),
  "vLLM V1, 2 DP engines": vllmPage({
    version: "v1",
    engines: [
      { waiting: 3, running: 7, kv: 0.4 },
      { waiting: 1, running: 5, kv: 0.6 },
    ],
    cache: { blockSize: 16, numGpuBlocks: 9000 },
  }),
  "vLLM V1, 4 DP engines, 10 API handlers": vllmPage({
    version: "v1",
    engines: [0, 1, 2, 3].map((i) => ({ waiting: i, running: 2 * i, kv: 0.1 * i })),
    cache: { blockSize: 16, numGpuBlocks: 9000 },
    handlers: HANDLERS,
  }),
};
const WANTED_ENGINE = loadPickerConfig(null).engines.engines.get("vllm")!;

/** Median time per call (µs) over `batches` batches sized to take ~`batchMs` each. */
function measure(fn: () => void, batchMs = 150, batches = 7): number {
  const warm = process.hrtime.bigint();
  while (Number(process.hrtime.bigint() - warm) < 200e6) fn(); // warm up: let V8 optimise before timing
  let n = 1;
  for (;;) {
    // size the batch
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    if (Number(process.hrtime.bigint() - t) / 1e6 > batchMs / 4) break;
    n *= 2;
  }
  n *= 4;
  const times: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e3 / n);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

function parserBench() {
  const selector = new FamilySelector(familiesOf(WANTED_ENGINE));
  const wanted = new Set(familiesOf(WANTED_ENGINE));
  const rows: Array<{ page: string; bytes: number; lines: number; oursUs: number; generalUs: number; ratio: number }> =
    [];
  for (const [name, text] of Object.entries(PAGES)) {
    const body = Buffer.from(text);
    let sink = 0;
    // Both start from the bytes as received; both end with the wanted values in hand.
    const oursUs = measure(() => {
      sink += extractMetrics(parseSelectedFamilies(body, selector), WANTED_ENGINE).queued ?? 0;
    });
    const generalUs = measure(
      () => {
        for (const fam of parsePrometheusTextFormat(body.toString("utf8")))
          if (wanted.has(fam.name)) sink += fam.metrics.length;
      },
      150,
      5,
    );
    if (sink < 0) console.log(sink);
    rows.push({
      page: name,
      bytes: body.length,
      lines: text.split("\n").length,
      oursUs,
      generalUs,
      ratio: generalUs / oursUs,
    });
  }
  return rows;
}

/**
 * Child-process role: serve the page on `count` ports, print them, live until stdin closes. With
 * `honourNames` a request with `name[]` gets the restricted page, as from prometheus_client.
 */
async function serveEndpoints(count: number, honourNames: boolean): Promise<void> {
  const text = PAGES["vLLM V1, 2 DP engines"];
  const full = Buffer.from(text);
  const restricted = new Map<string, Buffer>();
  const pageFor = (url: string): Buffer => {
    const q = url.indexOf("?");
    if (!honourNames || q < 0) return full;
    let body = restricted.get(url);
    if (!body) {
      const names = new URLSearchParams(url.slice(q + 1)).getAll("name[]");
      restricted.set(url, (body = Buffer.from(restrictToSamples(text, new Set(names)))));
    }
    return body;
  };
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const s = http.createServer((q, res) => {
      const body = pageFor(q.url ?? "/");
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4", "content-length": body.length }).end(body);
    });
    s.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    ports.push((s.address() as AddressInfo).port);
  }
  process.stdout.write(JSON.stringify(ports) + "\n");
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

async function scrapeCapacity(endpoints: number, seconds: number, honourNames: boolean) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: {
      ...process.env,
      BENCH_ROLE: "servers",
      BENCH_ENDPOINTS: String(endpoints),
      BENCH_HONOUR_NAMES: honourNames ? "1" : "",
    },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const ports = await new Promise<number[]>((resolve) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("\n")) resolve(JSON.parse(out));
    });
  });
  const config = loadPickerConfig(null);
  let ok = 0,
    failed = 0,
    restrictedScrapes = 0;
  const scraper = new Scraper(
    { intervalMs: 1, timeoutMs: 5000, maxBackoffMs: 1000, maxPageBytes: 8 << 20, jitter: 0 },
    { engines: () => config.engines, scrape: () => DEFAULT_SCRAPE },
    (_t, o) => {
      if (o.ok) {
        ok++;
        if (o.page === "restricted") restrictedScrapes++;
      } else failed++;
    },
    silentLogger,
  );
  scraper.setTargets(ports.map((port) => ({ address: `127.0.0.1:${port}`, ip: "127.0.0.1", port, labels: {} })));
  await new Promise((r) => setTimeout(r, 1000)); // connections up, JIT warm
  // Several short windows: this shared machine's speed changes from second to second, and the median
  // window is steadier than one long one.
  const windows: number[] = [];
  const ok0 = ok,
    cpu0 = process.cpuUsage(),
    t0 = process.hrtime.bigint();
  const WINDOWS = 8;
  for (let w = 0; w < WINDOWS; w++) {
    const okW = ok,
      cpuW = process.cpuUsage();
    await new Promise((r) => setTimeout(r, (seconds * 1000) / WINDOWS));
    const c = process.cpuUsage(cpuW);
    windows.push((ok - okW) / ((c.user + c.system) / 1e6));
  }
  const cpu = process.cpuUsage(cpu0),
    wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const done = ok - ok0;
  const restrictedShare = restrictedScrapes / ok;
  scraper.stop();
  child.stdin!.end();
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  windows.sort((a, b) => a - b);
  const medianPerCpuSecond = windows[Math.floor(windows.length / 2)];
  return {
    endpoints,
    serversHonourNameFilter: honourNames,
    pageBytes: Buffer.byteLength(PAGES["vLLM V1, 2 DP engines"]),
    restrictedPageBytes: Buffer.byteLength(
      restrictToSamples(PAGES["vLLM V1, 2 DP engines"], new Set(familiesOf(WANTED_ENGINE))),
    ),
    restrictedShare,
    scrapes: done,
    failed,
    wallSeconds: wall,
    cpuSeconds,
    /** Over the whole run; the figures below are of the median window. */
    scrapesPerCpuSecondWholeRun: done / cpuSeconds,
    windowScrapesPerCpuSecond: windows,
    scrapesPerCpuSecond: medianPerCpuSecond,
    scrapesPerWallSecond: done / wall,
    // At the default 50 ms refresh interval each endpoint costs 20 scrapes a second.
    endpointsPerCoreAt50ms: medianPerCpuSecond / 20,
  };
}

async function main(): Promise<void> {
  if (process.env.BENCH_ROLE === "servers")
    return serveEndpoints(Number(process.env.BENCH_ENDPOINTS), process.env.BENCH_HONOUR_NAMES === "1");
  // Capacity first, on a clean heap (the general parser below leaves much garbage behind).
  if (process.env.BENCH_ONLY?.startsWith("capacity-")) {
    const c = await scrapeCapacity(50, 4, process.env.BENCH_ONLY === "capacity-restricted");
    console.log(
      `${Math.round(c.endpointsPerCoreAt50ms)} endpoints per core (windows ${c.windowScrapesPerCpuSecond.map(Math.round).join(" ")})`,
    );
    process.exit(0);
  }
  const capacity = await scrapeCapacity(50, 4, true);
  const capacityFullPage = await scrapeCapacity(50, 4, false);
  if (process.env.BENCH_ONLY === "capacity") {
    // While working on the scrape path: the two capacity figures alone, nothing written.
    for (const c of [capacity, capacityFullPage])
      console.log(
        `${c.pageBytes}-byte page, honour name[] ${c.serversHonourNameFilter}: ${Math.round(c.endpointsPerCoreAt50ms)} endpoints per core (windows ${c.windowScrapesPerCpuSecond.map(Math.round).join(" ")})`,
      );
    process.exit(0);
  }
  const parser = parserBench();
  console.log("Parser: companion (selective, from bytes) vs parse-prometheus-text-format (decode + full parse)");
  console.log(
    "page".padEnd(42) +
      "bytes".padStart(8) +
      "lines".padStart(7) +
      "ours µs".padStart(10) +
      "general µs".padStart(12) +
      "ratio".padStart(8),
  );
  for (const r of parser)
    console.log(
      r.page.padEnd(42) +
        String(r.bytes).padStart(8) +
        String(r.lines).padStart(7) +
        r.oursUs.toFixed(1).padStart(10) +
        r.generalUs.toFixed(0).padStart(12) +
        `${r.ratio.toFixed(1)}x`.padStart(8),
    );
  for (const [what, c] of [
    [`servers that honour name[] (${capacity.restrictedPageBytes}-byte answer)`, capacity],
    [`servers that ignore name[] (the ${capacityFullPage.pageBytes}-byte vLLM V1 page)`, capacityFullPage],
  ] as const) {
    console.log(`\nScrape capacity, ${c.endpoints} local endpoints, ${what}: fetch + parse + normalise`);
    console.log(
      `  ${Math.round(c.scrapesPerCpuSecond)} scrapes per CPU-second of the companion (${Math.round(c.scrapesPerWallSecond)}/s wall, ${c.failed} failed, ${(100 * c.restrictedShare).toFixed(1)}% restricted)`,
    );
    console.log(
      `  = ${Math.round(c.endpointsPerCoreAt50ms)} endpoints on one core at the default 50 ms refresh interval`,
    );
  }
  const modelServerCost = await measureModelServerCost();
  if ("skipped" in modelServerCost) console.log(`\nModel-server cost: skipped (${modelServerCost.skipped})`);
  else
    console.log(
      `\nModel-server cost (prometheus_client ${modelServerCost.prometheusClientVersion}, a vLLM V1 registry, ${modelServerCost.served}): ` +
        `${modelServerCost.fullUs.toFixed(0)} µs of the server's CPU per full page (${modelServerCost.fullPageBytes} bytes), ` +
        `${modelServerCost.restrictedUs.toFixed(0)} µs per restricted page (${modelServerCost.restrictedPageBytes} bytes): ${modelServerCost.ratio.toFixed(1)}x less`,
    );
  mkdirSync("build/bench", { recursive: true });
  writeFileSync(
    "build/bench/companion.json",
    JSON.stringify(
      { parser, capacity, capacityFullPage, modelServerCost, node: process.version, date: new Date().toISOString() },
      null,
      2,
    ) + "\n",
  );
  console.log("wrote build/bench/companion.json");
}

void main();
