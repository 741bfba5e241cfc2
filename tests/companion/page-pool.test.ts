// The metrics client's buffer pool (companion/page-pool.ts): reuse by capacity class, only its own buffers
// come back, and a cap on what it keeps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PagePool } from "../../companion/page-pool";

test("a buffer given back serves the next page of its capacity class; other classes get their own", () => {
  const pool = new PagePool();
  const first = pool.take(86_000);
  assert.equal(first.length, 86_000);
  assert.equal(first.buffer.byteLength, 128 * 1024);
  pool.give(first);
  const second = pool.take(70_000);
  assert.equal(second.length, 70_000);
  assert.equal(second.buffer, first.buffer);
  const small = pool.take(2_000);
  assert.notEqual(small.buffer, first.buffer);
  assert.equal(small.buffer.byteLength, 16 * 1024);
});

test("foreign buffers and second returns are ignored; past the cap buffers are left to the collector", () => {
  const pool = new PagePool(200 * 1024);
  pool.give(Buffer.alloc(100_000)); // not the pool's
  const a = pool.take(100_000);
  assert.notEqual(a.buffer, pool.take(100_000).buffer);
  pool.give(a);
  pool.give(a);
  const again = pool.take(100_000);
  assert.equal(again.buffer, a.buffer);
  assert.notEqual(pool.take(100_000).buffer, a.buffer, "given back once, lent out once");

  const b = pool.take(100_000),
    c = pool.take(100_000);
  pool.give(b);
  pool.give(c); // 2 x 128 KiB is over the 200 KiB cap: c is not kept
  assert.equal(pool.take(100_000).buffer, b.buffer);
  const fresh = pool.take(100_000);
  assert.notEqual(fresh.buffer, c.buffer);
});
