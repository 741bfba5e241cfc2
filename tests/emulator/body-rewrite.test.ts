// A filter that changes the length of the request body (what a model rewrite does: docs/FILTER.md) through
// the gateway over real sockets: the upstream gets the new body with the content-length the filter set, or
// a chunked body when the client sent one; a response body whose length the filter changes reaches the
// client chunked once its content-length is removed. The filter is the emulator's test module.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startGateway } from "../../envoy/emulator/gateway";
import { startUpstream, tempBootstrap, type Upstream } from "./fixtures";

const MODULE = "build/emulator-test-module.wasm";
type Y = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** What the upstream saw: its method, headers and body (echoed back as JSON). */
async function echo(): Promise<{ port: number; seen: Array<{ headers: http.IncomingHttpHeaders; body: string }> }> {
  const seen: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
  const s = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
      const text = JSON.stringify({ model: "echo", body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  );
  return { port: (s.address() as { port: number }).port, seen };
}

async function gatewayTo(port: number): Promise<number> {
  const hcm = (d: Y) => d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  const file = tempBootstrap({
    poolPorts: [port],
    fallbackLbPolicy: "ROUND_ROBIN",
    companionPort: 1,
    configuration: {},
    edit: (d) => {
      hcm(d).http_filters = hcm(d).http_filters.filter((f: Y) => f.name !== "envoy.filters.http.header_mutation");
    },
  });
  const g = await startGateway({ bootstrap: file, concurrency: 1, logLevel: "warn", wasmFile: MODULE });
  cleanups.push(() => g.close());
  return g.listeners[0].port;
}

/** POSTs `parts` (with a content-length unless `chunked`), each written separately. */
function post(
  port: number,
  parts: string[],
  headers: Record<string, string>,
  chunked = false,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const total = parts.reduce((n, p) => n + Buffer.byteLength(p), 0);
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path: "/v1/completions",
        method: "POST",
        agent: false,
        headers: { ...headers, ...(chunked ? { "transfer-encoding": "chunked" } : { "content-length": total }) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on("error", reject);
    let i = 0;
    const next = () => {
      if (i === parts.length) return req.end();
      req.write(parts[i++]);
      setTimeout(next, 5);
    };
    next();
  });
}

test("a body the filter lengthened reaches the upstream with the content-length the filter set", async () => {
  const up = await echo();
  const port = await gatewayTo(up.port);
  const r = await post(port, ['{"model":', '"m","prompt":"p"}'], { "x-op": "pause", "x-a": "resize" });
  assert.equal(r.status, 200, r.body);
  const seen = up.seen.at(-1)!;
  assert.equal(seen.body, 'ABCDEFGodel":"m","prompt":"p"}');
  assert.equal(seen.headers["content-length"], String(Buffer.byteLength(seen.body)));
  assert.equal(seen.headers["transfer-encoding"], undefined);
});

test("a chunked body the filter lengthened reaches the upstream chunked, whole", async () => {
  const up = await echo();
  const port = await gatewayTo(up.port);
  const r = await post(port, ["abcdef", "ghij"], { "x-op": "pause", "x-a": "resize" }, true);
  assert.equal(r.status, 200, r.body);
  const seen = up.seen.at(-1)!;
  assert.equal(seen.body, "ABCDEFGdefghij");
  assert.equal(seen.headers["content-length"], undefined);
  assert.equal(seen.headers["transfer-encoding"], "chunked");
});

test("a response body the filter lengthened reaches the client chunked, whole", async () => {
  const up: Upstream = await startUpstream("u");
  cleanups.push(() => up.close());
  const port = await gatewayTo(up.port);
  const r = await post(port, ["{}"], { "x-op": "pause", "x-b": "resp_resize" });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers["content-length"], undefined);
  assert.equal(r.headers["transfer-encoding"], "chunked");
  assert.ok(r.body.startsWith("<{") && r.body.endsWith("}>"), r.body);
  assert.equal(JSON.parse(r.body.slice(1, -1)).upstream, "u");
});
