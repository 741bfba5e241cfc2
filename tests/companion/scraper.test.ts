// The scraper against small HTTP servers on loopback: good pages, hanging and broken servers, limits,
// keep-alive, per-engine paths, the loop and its backoff schedule.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { gzipSync } from "node:zlib";
import type { AddressInfo, Socket } from "node:net";
import { Scraper, nextDelayMs, type ScrapeOutcome } from "../../companion/scraper";
import { DEFAULT_SCRAPE, loadPickerConfig } from "../../companion/picker-config";
import { silentLogger, type Logger } from "../../companion/log";
import { EndpointStore } from "../../companion/endpoint-state";
import type { PoolTarget } from "../../companion/types";
import { familiesOf } from "../../companion/engines";
import { restrictToSamples } from "../sim/exposition/prom-text";
import { vllmPage } from "./fixtures/pages";
import { until } from "../helpers/until";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function server(t: { after(fn: () => unknown): void }, handler: Handler) {
  const connections = { count: 0 };
  const open = new Set<Socket>();
  const paths: string[] = [];
  const s = http.createServer((req, res) => {
    paths.push(req.url ?? "");
    handler(req, res);
  });
  s.on("connection", (socket: Socket) => {
    connections.count++;
    open.add(socket);
    socket.on("close", () => open.delete(socket));
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  t.after(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  );
  const port = (s.address() as AddressInfo).port;
  return {
    port,
    connections,
    open,
    paths,
    target: (labels: Record<string, string> = {}): PoolTarget => ({
      address: `127.0.0.1:${port}`,
      ip: "127.0.0.1",
      port,
      labels,
    }),
  };
}

function scraper(
  t: { after(fn: () => unknown): void },
  opts: Partial<ConstructorParameters<typeof Scraper>[0]> = {},
  onOutcome: (o: ScrapeOutcome) => void = () => {},
  flags = {},
  log: Logger = silentLogger,
) {
  const config = loadPickerConfig(null, flags);
  const s = new Scraper(
    { intervalMs: 20, timeoutMs: 300, maxBackoffMs: 200, maxPageBytes: 1024 * 1024, ...opts },
    { engines: () => config.engines, scrape: () => DEFAULT_SCRAPE },
    (_t, o) => onOutcome(o),
    log,
  );
  t.after(() => s.stop());
  return s;
}

const PAGE = vllmPage({
  version: "v1",
  engines: [
    { waiting: 3, running: 7, kv: 0.25 },
    { waiting: 1, running: 5, kv: 0.75 },
  ],
  cache: { blockSize: 16, numGpuBlocks: 100 },
});

/** What PAGE says, normalised. */
const EXPECTED = {
  queued: 4,
  running: 12,
  kvUsage: 0.5,
  lora: null,
  cache: { blockSize: 16, numBlocks: 200 },
  models: ["meta-llama/Llama-3.1-8B-Instruct"],
};

test("a good page: metrics read over one kept-alive connection", async (t) => {
  const srv = await server(t, (_req, res) =>
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(PAGE),
  );
  const s = scraper(t);
  for (let i = 0; i < 3; i++) {
    const o = await s.scrape(srv.target());
    assert.ok(o.ok, JSON.stringify(o));
    assert.deepEqual(o.metrics, EXPECTED);
    assert.equal(o.engine, "vllm");
  }
  assert.equal(srv.connections.count, 1, "keep-alive: one connection for all scrapes");
  // The full page first, then the wanted families only; this server answers the full page to that
  // (it ignores name[]), so the endpoint is read in full from then on.
  assert.deepEqual(srv.paths, ["/metrics", RESTRICTED, "/metrics"]);
});

const WANTED = familiesOf(loadPickerConfig(null).engines.engines.get("vllm")!);
const RESTRICTED = "/metrics?" + WANTED.map((n) => `name%5B%5D=${encodeURIComponent(n)}`).join("&");

/** A metrics server that treats name[] as `mode` says (prometheus_client's behaviours, tests/sim). */
function namedPage(mode: "honour" | "empty" | "drop-cache-info" | "refuse-query"): Handler {
  return (req, res) => {
    const names = new URL(req.url ?? "/", "http://x").searchParams.getAll("name[]");
    if (mode === "refuse-query" && names.length > 0) return void res.writeHead(404).end("Not Found");
    let page = PAGE;
    if (names.length > 0) {
      if (mode === "empty") page = "";
      else {
        const only = new Set(names);
        if (mode === "drop-cache-info") only.delete("vllm:cache_config_info");
        page = restrictToSamples(PAGE, only);
      }
    }
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(page);
  };
}

test("name[]: after one full page, a server that honours it is asked for the wanted families only", async (t) => {
  const srv = await server(t, namedPage("honour"));
  const s = scraper(t);
  const modes: string[] = [];
  for (let i = 0; i < 4; i++) {
    const o = await s.scrape(srv.target());
    assert.ok(o.ok, JSON.stringify(o));
    assert.deepEqual(o.metrics, EXPECTED);
    modes.push(o.page);
  }
  assert.deepEqual(srv.paths, ["/metrics", RESTRICTED, RESTRICTED, RESTRICTED]);
  assert.deepEqual(modes, ["probe", "restricted", "restricted", "restricted"]);
  assert.deepEqual(s.pageModes(), { probe: 0, restricted: 1, full: 0 });
  // The restricted page is a few lines of the full one.
  const restricted = restrictToSamples(PAGE, new Set(WANTED));
  assert.ok(restricted.length * 10 < PAGE.length, `${restricted.length} vs ${PAGE.length} bytes`);
});

test("name[]: an empty, partial or failed answer is replaced by the full page at once, and the endpoint read in full after", async (t) => {
  for (const mode of ["empty", "drop-cache-info", "refuse-query"] as const) {
    const srv = await server(t, namedPage(mode));
    const infos: unknown[] = [];
    const log: Logger = { ...silentLogger, info: (msg, fields) => void infos.push([msg, fields?.why]) };
    const s = scraper(t, {}, () => {}, {}, log);
    for (let i = 0; i < 4; i++) {
      const o = await s.scrape(srv.target());
      assert.ok(o.ok, `${mode}: ${JSON.stringify(o)}`);
      assert.deepEqual(o.metrics, EXPECTED, `${mode}: no scrape reads the partial page's numbers`);
    }
    assert.deepEqual(srv.paths, ["/metrics", RESTRICTED, "/metrics", "/metrics", "/metrics"], mode);
    const why = {
      empty: /^left out .*vllm:num_requests_waiting/,
      "drop-cache-info": /^left out vllm:cache_config_info$/,
      "refuse-query": /^the restricted request failed: GET \/metrics\?name.* answered HTTP 404$/,
    }[mode];
    assert.equal(infos.length, 1, mode);
    assert.match(String((infos[0] as string[])[1]), why, mode);
    assert.deepEqual(s.pageModes(), { probe: 0, restricted: 0, full: 1 });
  }
});

test("name[]: off with --metrics-name-filter=false; a new engine mapping probes again", async (t) => {
  const srv = await server(t, namedPage("honour"));
  const off = scraper(t, { nameFilter: false });
  for (let i = 0; i < 3; i++) assert.ok((await off.scrape(srv.target())).ok);
  assert.deepEqual(srv.paths, ["/metrics", "/metrics", "/metrics"]);

  const other = await server(t, namedPage("honour"));
  const s = scraper(t);
  await s.scrape(other.target());
  await s.scrape(other.target());
  // Relabelled to SGLang: other families, so the full page again first.
  const sglang = await s.scrape(other.target({ "inference.networking.k8s.io/engine-type": "sglang" }));
  assert.ok(!sglang.ok && sglang.reason === "metrics");
  assert.deepEqual(other.paths, ["/metrics", RESTRICTED, "/metrics"]);
});

test("failures are classified and explained", async (t) => {
  const s = scraper(t);
  const cases: Array<[Handler, string, RegExp]> = [
    [
      () => {
        /* never answers */
      },
      "timeout",
      /^no complete page within 300ms$/,
    ],
    [
      (_q, res) => {
        res.writeHead(200);
        res.write("vllm:num_requests_waiting 1\n"); /* never ends */
      },
      "timeout",
      /within 300ms/,
    ],
    [(_q, res) => res.writeHead(503).end("busy"), "http_status", /^GET \/metrics answered HTTP 503$/],
    [
      (_q, res) => res.writeHead(200, { "content-type": "application/json" }).end("[]"),
      "content_type",
      /answered application\/json, not a metrics page/,
    ],
    [
      (_q, res) => res.writeHead(200, { "content-length": 5_000_000 }).end(),
      "too_large",
      /5000000 bytes is over the 1048576-byte limit/,
    ],
    [
      (_q, res) => {
        res.writeHead(200);
        for (let i = 0; i < 200; i++) res.write("#".repeat(10_000) + "\n");
        res.end();
      },
      "too_large",
      /over the 1048576-byte limit/,
    ],
    [
      (_q, res) => res.writeHead(200).end("garbage here\n"),
      "parse",
      /^bad metrics page: line 1, column 9: bad value "here"/,
    ],
    [(_q, res) => res.writeHead(200).end("vllm:num_requests_waiting 3"), "parse", /page truncated/],
    [
      (_q, res) => res.writeHead(200).end("vllm:num_requests_waiting NaN\n"),
      "metrics",
      /vllm:num_requests_waiting: value NaN is not a finite number/,
    ],
    [
      (_q, res) => res.writeHead(200).end("other_metric 1\n"),
      "metrics",
      /none of engine vllm's metrics are on the page/,
    ],
    [
      (q, res) => {
        res.writeHead(200, { "content-length": 1000 });
        res.write("vllm:num_requests_waiting 1\n");
        q.socket.destroy();
      },
      "connect",
      /./,
    ],
  ];
  for (const [handler, reason, message] of cases) {
    const srv = await server(t, handler);
    const o = await s.scrape(srv.target());
    assert.equal(o.ok, false, reason);
    if (!o.ok) {
      assert.equal(o.reason, reason, o.error);
      assert.match(o.error, message);
    }
  }
  const refused = await s.scrape({ address: "127.0.0.1:1", ip: "127.0.0.1", port: 1, labels: {} });
  assert.deepEqual([refused.ok, !refused.ok && refused.reason], [false, "refused"]);
});

test("gzip pages, OpenMetrics content type, engine-specific path and port overrides", async (t) => {
  const gz = await server(t, (_q, res) => res.writeHead(200, { "content-encoding": "gzip" }).end(gzipSync(PAGE)));
  const s = scraper(t);
  const o = await s.scrape(gz.target());
  assert.ok(o.ok && o.metrics.queued === 4);

  const om = await server(t, (_q, res) =>
    res
      .writeHead(200, { "content-type": "application/openmetrics-text; version=1.0.0" })
      .end("vllm:num_requests_waiting 2\n"),
  );
  const missingEof = await s.scrape(om.target());
  assert.ok(!missingEof.ok && /without # EOF/.test(missingEof.error), "OpenMetrics pages must end with # EOF");

  const trt = await server(t, (q, res) =>
    res.writeHead(200).end(q.url === "/prometheus/metrics" ? "trtllm_num_requests_waiting 6\n" : "[]\n"),
  );
  const serve = await s.scrape(trt.target({ "inference.networking.k8s.io/engine-type": "trtllm-serve" }));
  assert.ok(serve.ok && serve.metrics.queued === 6 && serve.engine === "trtllm-serve");
  assert.deepEqual(trt.paths, ["/prometheus/metrics"]);

  const other = await server(t, (q, res) =>
    res.writeHead(200).end(q.url === "/custom" ? "vllm:num_requests_waiting 9\n" : ""),
  );
  const moved = scraper(t, { metricsPath: "/custom", metricsPort: other.port });
  const viaOverride = await moved.scrape({ address: "127.0.0.1:1", ip: "127.0.0.1", port: 1, labels: {} });
  assert.ok(viaOverride.ok && viaOverride.metrics.queued === 9, "--model-server-metrics-port/path");
});

test("an empty page: fine when the engine wants no metric (or only LoRA info, as GIE), an error when it wants one", async (t) => {
  const empty = await server(t, (_q, res) => res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end());
  const off = { totalQueuedRequestsMetric: "", totalRunningRequestsMetric: "", kvCacheUsagePercentageMetric: "" };
  const nothingWanted = await scraper(t, {}, () => {}, { ...off, loraInfoMetric: "", cacheInfoMetric: "" }).scrape(
    empty.target(),
  );
  assert.ok(nothingWanted.ok, nothingWanted.ok ? "" : nothingWanted.error);
  assert.deepEqual(nothingWanted.metrics, {
    queued: null,
    running: null,
    kvUsage: null,
    lora: null,
    cache: null,
    models: [],
  });
  // vLLM has vllm:lora_requests_info only while it serves adapters; GIE skips its absence silently.
  const loraOnly = await scraper(t, {}, () => {}, { ...off, cacheInfoMetric: "" }).scrape(empty.target());
  assert.ok(loraOnly.ok && loraOnly.metrics.lora === null, loraOnly.ok ? "" : loraOnly.error);
  const wanted = await scraper(t).scrape(empty.target());
  assert.ok(!wanted.ok);
  assert.equal(wanted.reason, "metrics");
  assert.equal(
    wanted.error,
    "empty metrics page: none of engine vllm's metrics are on it (looked for vllm:num_requests_waiting, vllm:num_requests_running, vllm:kv_cache_usage_perc, vllm:lora_requests_info, vllm:cache_config_info)",
  );
  const kvOnly = await scraper(t, {}, () => {}, { ...off, kvCacheUsagePercentageMetric: "vllm:kv_cache_usage_perc" });
  const kv = await kvOnly.scrape(empty.target());
  assert.ok(!kv.ok && kv.reason === "metrics" && /looked for vllm:kv_cache_usage_perc/.test(kv.error));
  // An OpenMetrics page must end with # EOF, so an empty one is cut short whatever is wanted.
  const om = await server(t, (_q, res) =>
    res.writeHead(200, { "content-type": "application/openmetrics-text; version=1.0.0" }).end(),
  );
  const omEmpty = await scraper(t, {}, () => {}, { ...off, loraInfoMetric: "", cacheInfoMetric: "" }).scrape(
    om.target(),
  );
  assert.ok(!omEmpty.ok && omEmpty.reason === "parse" && /without # EOF/.test(omEmpty.error));
});

test("loops: every endpoint keeps being scraped; removed endpoints stop", async (t) => {
  const good = await server(t, (_q, res) => res.writeHead(200).end("vllm:num_requests_waiting 1\n"));
  const outcomes: ScrapeOutcome[] = [];
  const s = scraper(t, { intervalMs: 5 }, (o) => outcomes.push(o));
  s.setTargets([good.target()]);
  while (outcomes.length < 5) await new Promise((r) => setTimeout(r, 5));
  s.setTargets([]);
  const n = good.paths.length;
  await new Promise((r) => setTimeout(r, 60));
  assert.ok(good.paths.length <= n + 1, "no more scrapes after removal (one may have been in flight)");
});

test("backoff schedule: interval while healthy, doubling per failure up to the maximum, with jitter", () => {
  assert.equal(nextDelayMs(50, 5000, 0.1, 0, 0.5), 50);
  assert.deepEqual(
    [1, 2, 3, 6, 7, 40].map((f) => nextDelayMs(50, 5000, 0.1, f, 0.5)),
    [100, 200, 400, 3200, 5000, 5000],
  );
  assert.equal(nextDelayMs(50, 5000, 0.1, 0, 0), 45);
  assert.equal(Math.round(nextDelayMs(50, 5000, 0.1, 0, 0.999999)), 55);
});

test("removed endpoints: their idle kept-alive connections are closed at once, others kept", async (t) => {
  const page = (_q: http.IncomingMessage, res: http.ServerResponse) =>
    res.writeHead(200).end("vllm:num_requests_waiting 1\n");
  const leaving = await server(t, page);
  const staying = await server(t, page);
  const outcomes: ScrapeOutcome[] = [];
  // A long interval, so the removal finds the connection idle (removal destroys a request in flight anyway).
  const s = scraper(t, { intervalMs: 150, maxBackoffMs: 150 }, (o) => outcomes.push(o));
  s.setTargets([leaving.target(), staying.target()]);
  await until(
    "both scraped over kept-alive connections",
    () => leaving.paths.length >= 2 && staying.paths.length >= 2 && leaving.open.size === 1 && staying.open.size === 1,
  );
  await new Promise((r) => setTimeout(r, 10));
  s.setTargets([staying.target()]);
  await until("the removed endpoint's connection closed", () => leaving.open.size === 0, 1000);
  const before = outcomes.length;
  await until("still scraping the other", () => outcomes.length >= before + 3);
  assert.equal(staying.connections.count, 1, "the remaining endpoint keeps its connection");
});

test("the unknown-engine-label warning is given once per endpoint, and forgotten when the endpoint leaves", async (t) => {
  const srv = await server(t, (_q, res) => res.writeHead(200).end("vllm:num_requests_waiting 1\n"));
  const warnings: unknown[] = [];
  const log: Logger = { ...silentLogger, warn: (msg, fields) => void warnings.push([msg, fields?.label]) };
  const s = scraper(t, {}, () => {}, {}, log);
  const target = srv.target({ "inference.networking.k8s.io/engine-type": "tgi" });
  await s.scrape(target);
  await s.scrape(target);
  assert.deepEqual(warnings, [["engine label names no configured engine; using the default engine's metrics", "tgi"]]);
  s.setTargets([]); // the endpoint left (its state is pruned); if it comes back, it is warned about again
  await s.scrape(target);
  assert.equal(warnings.length, 2);
});

test("a scrape in flight across a relabel does not bring the old engine back", async (t) => {
  let release: () => void = () => {};
  const srv = await server(t, (_q, res) => {
    release = () => res.writeHead(200).end("vllm:num_requests_waiting 4\n");
  });
  const config = loadPickerConfig(null);
  const store = new EndpointStore(config.engines, 60_000);
  const s = scraper(t);
  const vllm = srv.target();
  store.setTargets([vllm]);
  const inFlight = s.scrape(vllm); // resolves the engine (vllm) now
  await until("request received", () => srv.paths.length === 1);
  const sglang = srv.target({ "inference.networking.k8s.io/engine-type": "sglang" });
  store.setTargets([sglang]);
  release();
  const o = await inFlight;
  assert.ok(o.ok && o.engine === "vllm");
  assert.equal(store.recordSuccess(sglang.address, o.engine, o.metrics, 1000), false);
  assert.deepEqual(
    store.views(1000).map((v) => [v.engine, v.queued, v.updatedAt]),
    [["sglang", null, null]],
  );
});
