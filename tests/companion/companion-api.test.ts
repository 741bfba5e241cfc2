// The companion in-process with static endpoints: the HTTP API (snapshot, long poll, auth, endpoints view,
// probes, metrics), live config reload with a ConfigMap-style symlink swap, and the endpoints file.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { parseCli, type CompanionOptions } from "../../companion/cli";
import { Companion } from "../../companion/companion";
import { ConfigFileWatcher } from "../../companion/config-watcher";
import { silentLogger } from "../../companion/log";
import { decodeSnapshot, type SchedulingProfile } from "../../companion/snapshot";
import { flatOf } from "../helpers/profile";
import { parseEndpointsFile } from "../../companion/static-pool";
import { until } from "../helpers/until";

async function metricsServer(t: { after(fn: () => unknown): void }, body: () => string) {
  const s = http.createServer((_q, res) => res.end(body()));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  t.after(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  );
  return (s.address() as AddressInfo).port;
}

function options(args: string[]): CompanionOptions {
  const r = parseCli([...args, "--port", "0", "--host", "127.0.0.1"], {});
  assert.equal(r.kind, "run");
  return (r as { options: CompanionOptions }).options;
}

async function startCompanion(t: { after(fn: () => unknown): void }, args: string[]) {
  const c = await Companion.create(options(args), silentLogger);
  const addr = await c.start();
  t.after(() => c.stop());
  await c.discover();
  return { c, base: `http://127.0.0.1:${addr.port}` };
}

test("snapshot, long poll, endpoints view, probes and metrics", async (t) => {
  let waiting = 3;
  const port = await metricsServer(t, () => `vllm:num_requests_waiting ${waiting}\nvllm:kv_cache_usage_perc 0.5\n`);
  const { base } = await startCompanion(t, [
    "--endpoints",
    `127.0.0.1:${port}`,
    "--refresh-interval",
    "10ms",
    "--long-poll-timeout",
    "300ms",
  ]);
  await until("ready", async () => (await fetch(`${base}/readyz`)).status === 200);

  const res = await fetch(`${base}/v1/snapshot`);
  assert.equal(res.headers.get("content-type"), "application/vnd.endpoint-picker.snapshot; format=2");
  const legacy = await fetch(`${base}/v1/snapshot`, {
    headers: { accept: "application/vnd.endpoint-picker.snapshot" },
  });
  assert.equal(
    Buffer.from(await legacy.arrayBuffer()).readUInt16LE(4),
    1,
    "a filter that predates format 2 gets format 1",
  );
  const v = BigInt(res.headers.get("x-snapshot-version")!);
  const snap = decodeSnapshot(new Uint8Array(await res.arrayBuffer()));
  assert.equal(snap.version, v);
  assert.deepEqual(
    snap.endpoints.map((e) => [e.address, e.queued, e.kvUsage, e.stale, e.error]),
    [[`127.0.0.1:${port}`, 3, 0.5, false, false]],
  );

  const held = await fetch(`${base}/v1/snapshot?after=${v}`);
  assert.equal(held.status, 304, "nothing changed within the long-poll timeout");
  assert.equal(held.headers.get("x-snapshot-version"), String(v));
  assert.equal((await held.arrayBuffer()).byteLength, 0);

  const pending = fetch(`${base}/v1/snapshot?after=${v}`);
  waiting = 7;
  const changed = await pending;
  assert.equal(changed.status, 200);
  assert.ok(BigInt(changed.headers.get("x-snapshot-version")!) > v);
  assert.equal(decodeSnapshot(new Uint8Array(await changed.arrayBuffer())).endpoints[0].queued, 7);
  assert.equal((await fetch(`${base}/v1/snapshot?after=${v}`)).status, 200, "an old version is answered at once");
  assert.equal((await fetch(`${base}/v1/snapshot?after=abc`)).status, 400);

  const view = (await (await fetch(`${base}/v1/endpoints`)).json()) as {
    ready: boolean;
    profile: SchedulingProfile;
    endpoints: Array<{ address: string; queued: number; updatedAt: string }>;
  };
  assert.equal(view.ready, true);
  assert.equal(flatOf(view.profile).queueWeight, 2);
  assert.equal(view.endpoints[0].queued, 7);
  assert.ok(!Number.isNaN(Date.parse(view.endpoints[0].updatedAt)));
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (const name of [
    "scrape_duration_seconds_bucket",
    "stale_endpoints 0",
    "pool_endpoints 1",
    "snapshot_version",
    "snapshot_bytes",
    "process_cpu_seconds_total",
  ]) {
    assert.ok(metrics.includes(`endpoint_picker_companion_${name}`), name);
  }
  assert.equal((await fetch(`${base}/v1/snapshot`, { method: "POST" })).status, 405);
});

test("a held long poll is released when its client goes away", async (t) => {
  const port = await metricsServer(t, () => "vllm:num_requests_waiting 1\n");
  const { c, base } = await startCompanion(t, ["--endpoints", `127.0.0.1:${port}`, "--long-poll-timeout", "4s"]);
  const v = c.pipeline.publisher.current.version + 1_000_000n; // far ahead: held until timeout
  const controller = new AbortController();
  const req = fetch(`${base}/v1/snapshot?after=${v}`, { signal: controller.signal }).catch(() => null);
  await until("held", () => c.pipeline.publisher.waiting === 1);
  controller.abort();
  await req;
  await until("released", () => c.pipeline.publisher.waiting === 0);
  assert.match(await (await fetch(`${base}/metrics`)).text(), /endpoint_picker_companion_long_poll_waiters 0/);
});

test("bearer token on /v1/*, probes and metrics stay open", async (t) => {
  const port = await metricsServer(t, () => "vllm:num_requests_waiting 1\n");
  const { base } = await startCompanion(t, ["--endpoints", `127.0.0.1:${port}`, "--api-token", "s3cret"]);
  assert.equal((await fetch(`${base}/v1/snapshot`)).status, 401);
  assert.equal((await fetch(`${base}/v1/endpoints`, { headers: { authorization: "Bearer wrong" } })).status, 401);
  assert.equal((await fetch(`${base}/v1/snapshot`, { headers: { authorization: "Bearer s3cret" } })).status, 200);
  for (const header of ["bearer s3cret", "BEARER s3cret", "Bearer   s3cret"]) {
    assert.equal(
      (await fetch(`${base}/v1/snapshot`, { headers: { authorization: header } })).status,
      200,
      `the scheme is case-insensitive (RFC 7235): ${header}`,
    );
  }
  for (const header of ["Bearer S3CRET", "Bearers3cret", "Basic s3cret", "s3cret", "Bearer s3cret2"]) {
    assert.equal((await fetch(`${base}/v1/snapshot`, { headers: { authorization: header } })).status, 401, header);
  }
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/metrics`)).status, 200);
});

test("not ready until the first scrape round is done", async (t) => {
  const hang = http.createServer(() => {
    /* never answers */
  });
  await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
  t.after(
    () =>
      new Promise<void>((r) => {
        hang.closeAllConnections();
        hang.close(() => r());
      }),
  );
  const port = (hang.address() as AddressInfo).port;
  const { base } = await startCompanion(t, ["--endpoints", `127.0.0.1:${port}`, "--scrape-timeout", "300ms"]);
  const early = await fetch(`${base}/readyz`);
  assert.equal(early.status, 503);
  assert.equal(await early.text(), "not ready: first scrape round not finished\n");
  await until("ready after the timeout", async () => (await fetch(`${base}/readyz`)).status === 200);
  const view = (await (await fetch(`${base}/v1/endpoints`)).json()) as { endpoints: Array<{ error: string }> };
  assert.equal(view.endpoints[0].error, "no complete page within 300ms");
});

test("--config-file is reloaded live through a ConfigMap-style ..data symlink swap; a broken file keeps the old config", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "companion-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // kubelet's layout: FILE -> ..data/FILE, ..data -> ..TIMESTAMP (swapped by a rename).
  let generation = 0;
  const publish = (text: string): void => {
    const real = join(dir, `..gen${++generation}`);
    mkdirSync(real);
    writeFileSync(join(real, "config.yaml"), text);
    symlinkSync(`..gen${generation}`, join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  };
  publish("plugins:\n- type: queue-scorer\n");
  symlinkSync("..data/config.yaml", join(dir, "config.yaml"));
  const port = await metricsServer(t, () => "vllm:num_requests_waiting 1\nsglang:num_queue_reqs 5\n");
  const { base } = await startCompanion(t, [
    "--endpoints",
    `127.0.0.1:${port}`,
    "--config-file",
    join(dir, "config.yaml"),
  ]);
  const profile = async () => decodeSnapshot(new Uint8Array(await (await fetch(`${base}/v1/snapshot`)).arrayBuffer()));
  assert.deepEqual(
    [flatOf((await profile()).profile).queueWeight, flatOf((await profile()).profile).prefixWeight],
    [1, 0],
  );

  publish(
    "plugins:\n- type: prefix-cache-scorer\n- type: model-server-protocol-metrics\n  parameters: {defaultEngine: sglang}\n",
  );
  await until("reloaded", async () => flatOf((await profile()).profile).prefixWeight === 1);
  await until("engine switched", async () => (await profile()).endpoints[0].queued === 5);
  const listed = (await (await fetch(`${base}/v1/endpoints`)).json()) as { endpoints: Array<{ engine: string }> };
  assert.equal(listed.endpoints[0].engine, "sglang");

  publish("plugins:\n- type: no-such-plugin\n");
  await until("failure counted", async () =>
    /config_reloads_total\{result="failure"\} 1/.test(await (await fetch(`${base}/metrics`)).text()),
  );
  assert.equal(flatOf((await profile()).profile).prefixWeight, 1, "the previous config stays");
});

test("ConfigFileWatcher reads by path, only reports changed content", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "companion-watch-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "c.yaml");
  writeFileSync(file, "a");
  const seen: string[] = [];
  const w = new ConfigFileWatcher(file, "a", (text) => seen.push(text), silentLogger, { debounceMs: 5, pollMs: 50 });
  t.after(() => w.stop());
  w.start();
  writeFileSync(file, "b");
  await until("b", () => seen.includes("b"));
  writeFileSync(file, "b");
  await w.check();
  assert.deepEqual(seen, ["b"]);
});

test("endpoints file: addresses, labels, errors naming the entry", () => {
  assert.deepEqual(
    parseEndpointsFile("- address: 10.0.0.1:8000\n  labels: {a: b, n: 3}\n- '[fd00::1]:8000'\n", "f.yaml"),
    [
      { address: "10.0.0.1:8000", ip: "10.0.0.1", port: 8000, labels: { a: "b", n: "3" } },
      { address: "[fd00::1]:8000", ip: "fd00::1", port: 8000, labels: {} },
    ],
  );
  assert.throws(() => parseEndpointsFile("- address: host:1\n", "f.yaml"), {
    message:
      'f.yaml[0].address: "host:1": "host" is not an IP address (host names are not allowed: the destination header must be a literal IP)',
  });
  assert.throws(() => parseEndpointsFile("- address: 10.0.0.1:1\n- address: 10.0.0.1:1\n", "f.yaml"), {
    message: 'f.yaml[1].address: listed twice, got "10.0.0.1:1"',
  });
  assert.throws(() => parseEndpointsFile("- addr: 10.0.0.1:1\n", "f.yaml"), {
    message: 'f.yaml[0].addr: unknown field (known fields: address, labels), got "10.0.0.1:1"',
  });
  assert.throws(() => parseEndpointsFile("endpoints: []\n", "f.yaml"), {
    message: 'f.yaml: must be a YAML list of {address, labels}, got {"endpoints":[]}',
  });
});
