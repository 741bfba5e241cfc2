// The companion's HTTP/1.1 client for metrics pages (companion/metrics-http.ts) against raw TCP servers
// that write answers byte by byte as a test wants them: framing (Content-Length, chunked, until close),
// interim answers, keep-alive and its loss, cut-short and malformed answers, limits, cancellation; pages
// larger than one read and recycled buffers; HTTPS.
import { test } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import net from "node:net";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { MetricsHttp, ScrapeFailure, type MetricsOrigin } from "../../companion/metrics-http";

interface RawServer {
  origin: MetricsOrigin;
  requests: string[];
  connections: number;
}

/**
 * A TCP server: for each complete request head received, `answer(n)` (n counts requests from 0) gives the
 * pieces to write (each written separately, a few ms apart) and whether to close the connection after.
 */
async function rawServer(
  t: { after(fn: () => unknown): void },
  answer: (n: number) => { pieces: Array<string | Buffer>; close?: boolean },
): Promise<RawServer> {
  const state: RawServer = { origin: null!, requests: [], connections: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let pending = "";
    socket.on("data", async (d) => {
      pending += d.toString("latin1");
      let end: number;
      while ((end = pending.indexOf("\r\n\r\n")) >= 0) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        const n = state.requests.length;
        state.requests.push(head);
        const { pieces, close } = answer(n);
        for (const p of pieces) {
          if (socket.destroyed) return;
          socket.write(p);
          await new Promise((r) => setTimeout(r, 2));
        }
        if (close) socket.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as AddressInfo).port;
  state.origin = { scheme: "http", ip: "127.0.0.1", port, insecureSkipVerify: true };
  return state;
}

const PAGE = "vllm:num_requests_waiting 3.0\nvllm:num_requests_running 7.0\n";

function client(t: { after(fn: () => unknown): void }): MetricsHttp {
  const c = new MetricsHttp();
  t.after(() => c.stop());
  return c;
}

async function failure(p: Promise<unknown>): Promise<ScrapeFailure> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ScrapeFailure, String(e));
    return e;
  }
  assert.fail("expected a ScrapeFailure");
}

test("Content-Length bodies in pieces, over one kept-alive connection; the request is well formed", async (t) => {
  const srv = await rawServer(t, () => ({
    pieces: [
      `HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Len`,
      `gth: ${PAGE.length}\r\n\r\n${PAGE.slice(0, 10)}`,
      PAGE.slice(10),
    ],
  }));
  const c = client(t);
  for (let i = 0; i < 3; i++) {
    const page = await c.get(srv.origin, "/metrics?name%5B%5D=a", 1000, 1 << 20);
    assert.equal(page.body.toString(), PAGE);
    assert.equal(page.openMetrics, false);
  }
  assert.equal(srv.connections, 1);
  const lines = srv.requests[0].split("\r\n");
  assert.equal(lines[0], "GET /metrics?name%5B%5D=a HTTP/1.1");
  assert.ok(lines.includes(`Host: 127.0.0.1:${srv.origin.port}`), lines.join(" | "));
  assert.ok(lines.some((l) => /^Accept: text\/plain;version=0\.0\.4/.test(l)));
});

test("chunked bodies split anywhere, with extensions and trailers; interim 1xx answers are skipped", async (t) => {
  const body = `5;ext=1\r\nvllm:\r\n${(PAGE.length - 5).toString(16)}\r\n${PAGE.slice(5)}\r\n0\r\nX-Trailer: 1\r\n\r\n`;
  const wire = `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/openmetrics-text; version=1.0.0\r\n\r\n${body}`;
  // Every split point of the answer in turn, on one kept-alive connection.
  const splits = [
    1,
    7,
    30,
    wire.indexOf("\r\n\r\n", 30) + 2,
    wire.length - body.length + 3,
    wire.length - 12,
    wire.length - 1,
  ];
  const srv = await rawServer(t, (n) => {
    const at = splits[n % splits.length];
    return { pieces: [wire.slice(0, at), wire.slice(at)] };
  });
  const c = client(t);
  for (let i = 0; i < splits.length; i++) {
    const page = await c.get(srv.origin, "/metrics", 1000, 1 << 20);
    assert.equal(page.body.toString(), PAGE, `split at ${splits[i]}`);
    assert.equal(page.openMetrics, true);
  }
  assert.equal(srv.connections, 1, "a chunked answer leaves the connection reusable");
});

test("a body without length is read until the server closes (HTTP/1.0); connection: close is honoured", async (t) => {
  const old = await rawServer(t, () => ({ pieces: ["HTTP/1.0 200 OK\r\n\r\n", PAGE], close: true }));
  const c = client(t);
  for (let i = 0; i < 2; i++) assert.equal((await c.get(old.origin, "/metrics", 1000, 1 << 20)).body.toString(), PAGE);
  assert.equal(old.connections, 2);

  const closing = await rawServer(t, () => ({
    pieces: [`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${PAGE.length}\r\n\r\n${PAGE}`],
  }));
  for (let i = 0; i < 2; i++) await c.get(closing.origin, "/metrics", 1000, 1 << 20);
  assert.equal(closing.connections, 2, "a new connection after connection: close");
});

test("a kept-alive connection the server closes as the request arrives is retried once on a new one", async (t) => {
  // Requests 1, 3, ... find the connection closed without an answer, as when a server's idle timeout and
  // our request cross on the wire.
  const srv = await rawServer(t, (n) =>
    n % 2 === 1
      ? { pieces: [], close: true }
      : { pieces: [`HTTP/1.1 200 OK\r\nContent-Length: ${PAGE.length}\r\n\r\n${PAGE}`] },
  );
  const c = client(t);
  for (let i = 0; i < 3; i++) assert.equal((await c.get(srv.origin, "/metrics", 1000, 1 << 20)).body.toString(), PAGE);
  assert.equal(srv.requests.length, 5, "two requests were sent twice");
  assert.equal(srv.connections, 3);

  // A fresh connection is not retried: the failure is the answer.
  const mute = await rawServer(t, () => ({ pieces: [], close: true }));
  const e = await failure(c.get(mute.origin, "/metrics", 1000, 1024));
  assert.equal(e.message, "connection closed before an answer");
  assert.equal(mute.requests.length, 1);
});

test("cut-short, malformed and oversized answers fail with a reason", async (t) => {
  const c = client(t);
  const cases: Array<[Array<string | Buffer>, boolean, string, RegExp]> = [
    [[`HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nvllm:`], true, "connect", /closed before the page was complete/],
    [[`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nvllm:`], true, "connect", /closed before the page/],
    [[`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`], false, "connect", /bad chunk size "zz"/],
    [["SSH-2.0-OpenSSH_9.6\r\n\r\n"], false, "connect", /not an HTTP\/1\.x response: "SSH-2\.0/],
    [[`HTTP/1.1 200 OK\r\nno colon here\r\n\r\n`], false, "connect", /malformed response header/],
    [[`HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n`], false, "connect", /unsupported transfer-encoding gzip/],
    [[`HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n`], false, "connect", /bad content-length "-1"/],
    [[`HTTP/1.1 200 OK\r\nX: ${"a".repeat(70_000)}`], false, "connect", /response head over 64 KiB/],
    [[`HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy`], false, "http_status", /answered HTTP 503/],
    [[`HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n`], false, "too_large", /2000 bytes is over the 1024-byte/],
    [
      [`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n${"#".repeat(2048)}\r\n0\r\n\r\n`],
      false,
      "too_large",
      /over the 1024-byte limit/,
    ],
    [
      [`HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi`],
      false,
      "content_type",
      /text\/html/,
    ],
  ];
  for (const [pieces, close, reason, message] of cases) {
    const srv = await rawServer(t, () => ({ pieces, close }));
    const e = await failure(c.get(srv.origin, "/metrics", 1000, 1024));
    assert.equal(e.reason, reason, `${JSON.stringify(pieces[0]).slice(0, 60)}: ${e.message}`);
    assert.match(e.message, message);
  }
});

test("nothing listening is refused; a silent server times out; abort cancels and closes", async (t) => {
  const c = client(t);
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const refused = await failure(
    c.get({ scheme: "http", ip: "127.0.0.1", port, insecureSkipVerify: true }, "/m", 1000, 1024),
  );
  assert.equal(refused.reason, "refused");

  const silent = await rawServer(t, () => ({ pieces: [] }));
  const timeout = await failure(c.get(silent.origin, "/metrics", 50, 1024));
  assert.equal(timeout.reason, "timeout");
  assert.equal(timeout.message, "no complete page within 50ms");

  let abort: () => void = () => {};
  const pending = c.get(silent.origin, "/metrics", 5000, 1024, (a) => (abort = a));
  await new Promise((r) => setTimeout(r, 20));
  abort();
  assert.equal((await failure(pending)).message, "scrape cancelled");
  c.closeExcept(new Set());
});

/** A page of `bytes` bytes whose every line names `tag`, so pages of different requests cannot be mixed up. */
function bigPage(tag: string, bytes: number): string {
  const line = `vllm:num_requests_waiting{tag="${tag}"} 1\n`;
  return line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes);
}

test("pages larger than one read and of unknown length come whole; a recycled buffer serves the next page, a kept one is untouched", async (t) => {
  const pages = [bigPage("a", 300_000), bigPage("b", 200_000), bigPage("c", 90_000), bigPage("d", 90_000)];
  const srv = await rawServer(t, (n) => {
    const page = pages[n];
    if (n === 1)
      // Chunked: the client grows its buffer without knowing the size.
      return {
        pieces: [
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
          `${(100_000).toString(16)}\r\n${page.slice(0, 100_000)}\r\n`,
          `${(100_000).toString(16)}\r\n${page.slice(100_000)}\r\n0\r\n\r\n`,
        ],
      };
    return { pieces: [`HTTP/1.1 200 OK\r\nContent-Length: ${page.length}\r\n\r\n`, page] };
  });
  const c = client(t);
  const kept = await c.get(srv.origin, "/metrics", 2000, 1 << 20);
  assert.equal(kept.body.toString(), pages[0]);
  const chunked = await c.get(srv.origin, "/metrics", 2000, 1 << 20);
  assert.equal(chunked.body.toString(), pages[1]);
  c.recycle(chunked);
  const third = await c.get(srv.origin, "/metrics", 2000, 1 << 20);
  assert.equal(third.body.toString(), pages[2]);
  c.recycle(third);
  c.recycle(third); // twice: ignored, the buffer is lent out once
  const fourth = await c.get(srv.origin, "/metrics", 2000, 1 << 20);
  assert.equal(fourth.body.toString(), pages[3]);
  // The third page's buffer now holds the fourth page: that is what recycling means.
  assert.equal(fourth.body.buffer, third.body.buffer);
  assert.equal(kept.body.toString(), pages[0], "a page not recycled is never reused");
  assert.equal(srv.connections, 1);
});

test("bytes on an idle kept-alive connection break it: the next request takes a new one", async (t) => {
  const srv = await rawServer(t, (n) => ({
    pieces: [
      `HTTP/1.1 200 OK\r\nContent-Length: ${PAGE.length}\r\n\r\n${PAGE}`,
      ...(n === 0 ? ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"] : []),
    ],
  }));
  const c = client(t);
  assert.equal((await c.get(srv.origin, "/metrics", 1000, 1 << 20)).body.toString(), PAGE);
  await new Promise((r) => setTimeout(r, 30)); // the stray answer arrives while the connection is idle
  assert.equal((await c.get(srv.origin, "/metrics", 1000, 1 << 20)).body.toString(), PAGE);
  assert.equal(srv.connections, 2);
});

test("https: a page over TLS, kept alive; a self-signed certificate is refused unless verification is skipped", async (t) => {
  const page = bigPage("tls", 100_000);
  const server = https.createServer(
    { key: readFileSync("tests/fixtures/tls/key.pem"), cert: readFileSync("tests/fixtures/tls/cert.pem") },
    (_req, res) => res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(page),
  );
  let connections = 0;
  server.on("secureConnection", () => connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as AddressInfo).port;
  const c = client(t);
  const origin: MetricsOrigin = { scheme: "https", ip: "127.0.0.1", port, insecureSkipVerify: true };
  for (let i = 0; i < 3; i++) {
    const got = await c.get(origin, "/metrics", 2000, 1 << 20);
    assert.equal(got.body.toString(), page);
    c.recycle(got);
  }
  assert.equal(connections, 1);
  const refused = await failure(c.get({ ...origin, insecureSkipVerify: false }, "/metrics", 2000, 1 << 20));
  assert.equal(refused.reason, "connect");
  assert.match(refused.message, /self-signed certificate/);
});
