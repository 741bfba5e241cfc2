// POST /v1/gateway-report and /v1/gateway-relay on the companion in-process (the Companion class, as
// companion-api.test.ts runs it): the bearer token, 413 without reading the body, 400 with a log line naming
// the gateway and the reason, 200 with the merged view, the relay's 204/409/400, and the metrics.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { parseCli, type CompanionOptions } from "../../companion/cli";
import { Companion } from "../../companion/companion";
import { createLogger } from "../../companion/log";
import { gatewayReport } from "../helpers/companion-process";
import {
  VIEW_CONTENT_TYPE,
  decodeView,
  encodeRelay,
  type ChainRecord,
  type GatewayView,
} from "../../companion/gateway-wire";

const TOKEN = "s3cret";
const auth = { authorization: `Bearer ${TOKEN}` };

function options(args: string[]): CompanionOptions {
  const r = parseCli([...args, "--port", "0", "--host", "127.0.0.1"], {});
  assert.equal(r.kind, "run");
  return (r as { options: CompanionOptions }).options;
}

async function start(t: { after(fn: () => unknown): void }, args: string[] = []) {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger("debug", (l) => void lines.push(JSON.parse(l)));
  const c = await Companion.create(
    options(["--endpoints", "127.0.0.1:1", "--api-token", TOKEN, "--max-report-bytes", "2Ki", ...args]),
    log,
  );
  const addr = await c.start();
  t.after(() => c.stop());
  const base = `http://127.0.0.1:${addr.port}`;
  const warnings = (msg: string) => lines.filter((l) => l.level === "warn" && l.msg === msg);
  return { c, base, port: addr.port, warnings };
}

const rec = (ep: number, tag: number): ChainRecord => ({ endpointHash: ep, blocks: 1, levels: [tag] });

const report = gatewayReport;

async function post(base: string, path: string, body: Uint8Array<ArrayBuffer>, headers: Record<string, string> = auth) {
  return fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/vnd.endpoint-picker.gateway-report", ...headers },
    body,
  });
}

async function ask(base: string, body: Uint8Array<ArrayBuffer>): Promise<GatewayView> {
  const res = await post(base, "/v1/gateway-report", body);
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get("content-type"), VIEW_CONTENT_TYPE);
  return decodeView(new Uint8Array(await res.arrayBuffer()));
}

/** A POST whose headers declare `declared` bytes, of which only `send` are written; resolves with the status. */
function partialPost(port: number, path: string, declared: number | null, send: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...auth };
    if (declared !== null) headers["content-length"] = declared;
    const req = http.request({ host: "127.0.0.1", port, method: "POST", path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on("error", reject);
    req.write(Buffer.alloc(send));
    // The body is never finished: an answer can only come from the limit.
  });
}

test("gateway report: token, 405, 413, 400 with a log line, 200 with the others' counts", async (t) => {
  const { c, base, port, warnings } = await start(t);
  const g1 = report(0x1111n, 1n, [[7, 3]], [rec(7, 70)]);

  assert.equal((await post(base, "/v1/gateway-report", g1, {})).status, 401, "no token");
  assert.equal((await post(base, "/v1/gateway-report", g1, { authorization: "Bearer nope" })).status, 401);
  assert.equal((await fetch(`${base}/v1/gateway-report`, { headers: auth })).status, 405, "GET");
  assert.equal(c.exchange.gatewayCount(Date.now()), 0, "nothing applied without the token");

  const first = await ask(base, g1);
  assert.equal(first.companionId, c.exchange.companionId);
  assert.deepEqual([first.gatewayCount, first.inflight, first.records], [1, [], []]);
  const second = await ask(base, report(0x2222n, 1n, [[7, 1]]));
  assert.equal(second.gatewayCount, 2);
  assert.deepEqual(second.inflight, [{ addressHash: 7, count: 3 }]);
  assert.deepEqual(
    second.records.map((r) => [r.endpointHash, r.levels[0]]),
    [[7, 70]],
  );

  // 413: a declared length over --max-report-bytes is refused before the body is read; a body without a
  // length as soon as it passes the limit.
  assert.equal(await partialPost(port, "/v1/gateway-report", 2049, 10), 413);
  assert.equal(await partialPost(port, "/v1/gateway-report", null, 4096), 413);
  const big = await post(base, "/v1/gateway-report", new Uint8Array(1 << 20));
  assert.equal(big.status, 413);
  assert.match(await big.text(), /content-length 1048576 is over the limit of 2048 bytes/);
  assert.equal((await post(base, "/v1/gateway-report", report(0x3333n, 1n, [[7, 1]]))).status, 200, "2 KiB is fine");

  // 400: the reason in the answer and in one warn line naming the gateway.
  const malformed = report(0x4444n, 1n, [[8, 2_000_000]]);
  const bad = await post(base, "/v1/gateway-report", malformed);
  assert.equal(bad.status, 400);
  assert.equal(await bad.text(), "report: inflight[0]: count 2000000 is above 1000000\n");
  const garbage = await post(base, "/v1/gateway-report", new Uint8Array([1, 2, 3]));
  assert.equal(garbage.status, 400);
  const refused = warnings("gateway report refused");
  assert.deepEqual(
    refused.map((l) => [l.gateway, l.result, l.reason]),
    [
      [null, "unauthorized", "missing or wrong bearer token"],
      [null, "unauthorized", "missing or wrong bearer token"],
      [null, "too_large", "content-length 2049 is over the limit of 2048 bytes"],
      [null, "too_large", "body over the limit of 2048 bytes"],
      [null, "too_large", "content-length 1048576 is over the limit of 2048 bytes"],
      ["0000000000004444", "malformed", "report: inflight[0]: count 2000000 is above 1000000"],
      [null, "malformed", "report: 3 bytes is too short for a header"],
    ],
  );
  const view = await ask(base, report(0x5555n, 1n, []));
  assert.equal(view.gatewayCount, 4, "the refused reports changed nothing");
  assert.deepEqual(view.inflight, [{ addressHash: 7, count: 5 }]);

  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (const line of [
    'gateway_reports_total{result="ok"} 4',
    'gateway_reports_total{result="unauthorized"} 2',
    'gateway_reports_total{result="too_large"} 3',
    'gateway_reports_total{result="malformed"} 2',
    "gateways_live 4",
    "gateway_records 1",
    "gateway_peers 0",
  ])
    assert.ok(metrics.includes(`endpoint_picker_companion_${line}\n`), `${line} in\n${metrics}`);
  assert.match(metrics, /endpoint_picker_companion_gateway_answer_bytes_total [1-9]\d+\n/);
});

test("gateway relay: 204 applied, 409 from itself, 400 malformed, 413 over the limit, 401 without the token", async (t) => {
  const { c, base, port, warnings } = await start(t);
  const relay = encodeRelay({
    companionId: 0xabcn,
    reports: [{ receivedAtMs: Date.now(), report: report(0x1111n, 1n, [[9, 4]], [rec(9, 90)]) }],
  });
  assert.equal((await post(base, "/v1/gateway-relay", relay, {})).status, 401);
  assert.equal((await post(base, "/v1/gateway-relay", relay)).status, 204);
  const v = await ask(base, report(0x2222n, 1n, []));
  assert.deepEqual([v.gatewayCount, v.inflight, v.records.length], [2, [{ addressHash: 9, count: 4 }], 1]);

  const own = encodeRelay({ companionId: c.exchange.companionId, reports: [] });
  const self = await post(base, "/v1/gateway-relay", own);
  assert.equal(self.status, 409);
  assert.equal((await post(base, "/v1/gateway-relay", new Uint8Array(3))).status, 400);
  assert.equal(await partialPost(port, "/v1/gateway-relay", 2048 + 21, 0), 413);
  const inner = encodeRelay({ companionId: 0xabcn, reports: [{ receivedAtMs: 1, report: new Uint8Array(5) }] });
  assert.equal((await post(base, "/v1/gateway-relay", inner)).status, 204, "a bad report inside is skipped");
  assert.deepEqual(
    warnings("relayed gateway report refused").map((l) => [l.peer, l.reason]),
    [["0000000000000abc", "report: 5 bytes is too short for a header"]],
  );
  assert.deepEqual(
    warnings("gateway relay refused").map((l) => l.result),
    ["unauthorized", "malformed", "too_large"],
  );
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (const line of [
    'gateway_relays_received_total{result="ok"} 2',
    'gateway_relays_received_total{result="self"} 1',
    'gateway_relays_received_total{result="malformed"} 1',
    'gateway_relayed_reports_total{result="applied"} 1',
    'gateway_relayed_reports_total{result="malformed"} 1',
  ])
    assert.ok(metrics.includes(`endpoint_picker_companion_${line}\n`), line);
});
