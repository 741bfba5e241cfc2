import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { decodeSnapshot } from "../../companion/snapshot";

test("the bundled companion serves a decodable snapshot of its static endpoints", async () => {
  const child = spawn(process.execPath, [
    "build/companion.mjs",
    "--endpoints",
    "127.0.0.1:8001,127.0.0.1:8002",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
  ]);
  try {
    const [line] = await once(child.stdout, "data");
    const port = /:(\d+)/.exec(String(line))![1];
    const res = await fetch(`http://127.0.0.1:${port}/v1/snapshot`);
    assert.equal(res.status, 200);
    const snap = decodeSnapshot(new Uint8Array(await res.arrayBuffer()));
    assert.deepEqual(
      snap.endpoints.map((e) => e.address),
      ["127.0.0.1:8001", "127.0.0.1:8002"],
    );
    assert.equal(String(snap.version), res.headers.get("x-snapshot-version"));
  } finally {
    child.kill();
  }
});
