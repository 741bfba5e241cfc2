// Session affinity in the real filter (build/filter.wasm) through the emulator's host, on virtual time, 4
// worker VMs: a session (x-session-id, a cookie, an agent's header, or llm-d's x-session-token echoed back)
// stays on one pod across 100 requests while the load around it changes, and moves when that pod is ejected
// by outlier detection or saturated, then stays on the new pod. Bad tokens give no affinity and no error.
// An agent's session header is flow control's fairness id when the request names none.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  encodeSnapshot,
  type ProfilePlugin,
  type SnapshotEndpoint,
  type SnapshotFlowControl,
} from "../../companion/snapshot";
import type { HttpStream, Pairs } from "../../envoy/emulator/host";
import { profileOf } from "../helpers/profile";
import { publishSnapshot } from "../helpers/filter-contract";
import { PickerHost, endpoint, header, completion } from "./harness";

const PODS = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000"];
const TOKEN = "x-session-token";

function session(params: Partial<Record<string, string | number>> = {}, weight = 10): ProfilePlugin {
  return {
    role: "scorer",
    type: "session-affinity-scorer",
    weight,
    parameters: {
      tokenHeader: TOKEN,
      sessionHeaders: "x-session-id,x-claude-code-session-id,session_id",
      cookieName: "llm-d-session",
      evictionTtlSeconds: 300,
      ...params,
    } as Record<string, string | number>,
  };
}

let version = 0n;

/** Publishes GIE's default profile plus `extra` entries over `eps` (metrics filled in), as the fetcher would. */
function publish(
  h: PickerHost,
  eps: Partial<SnapshotEndpoint>[],
  extra: ProfilePlugin[] = [session()],
  flowControl: SnapshotFlowControl | null = null,
): void {
  version += 1n;
  const profile = profileOf();
  profile.plugins.push(...extra);
  const blob = encodeSnapshot({
    version,
    generatedAtMs: h.nowMs,
    profile,
    endpoints: eps.map((e) => ({ ...endpoint(e.address ?? PODS[0]), ...e })),
    baseModels: [],
    objectives: [],
    modelRewrites: [],
    flowControl,
  });
  publishSnapshot(h.host.sharedData, blob, h.nowMs);
}

/** FNV-1a 32 of the address, as the filter hashes endpoint identities. */
function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** Our token for an endpoint: base64("ep:" + its address hash in 8 hex digits). */
const tokenFor = (address: string): string =>
  Buffer.from("ep:" + fnv1a32(address).toString(16).padStart(8, "0")).toString("base64");

/** A request of a session, answered `status` and ended: its pick and the token on its response. */
function turn(
  h: PickerHost,
  headers: Pairs,
  opts: { worker?: number; status?: number; prompt?: string } = {},
): { dest: string | null; token: string | null } {
  const { stream, dest } = h.pick({ worker: opts.worker, headers, body: completion("m", opts.prompt ?? "turn") });
  stream.properties.set("response.code_details", "via_upstream");
  stream.sendResponseHeaders([[":status", String(opts.status ?? 200)]], true);
  const token = header(stream.forwarded.responseHeaders, TOKEN)[0] ?? null;
  stream.finish();
  return { dest, token };
}

/** Metrics that wander below the saturation thresholds (queue 5, KV 0.8), so load scoring keeps changing its mind. */
function wander(h: PickerHost, i: number, extra?: ProfilePlugin[]): void {
  publish(
    h,
    PODS.map((address, k) => ({
      address,
      queued: (i * 7 + k * 3) % 3,
      running: (i * 5 + k) % 4,
      kvUsage: 0.05 + (((i * 11 + k * 5) % 13) / 13) * 0.6,
    })),
    extra,
  );
}

test("a session stays on one pod across 100 requests while the load varies, on every worker", () => {
  const h = new PickerHost({ concurrency: 4 });
  wander(h, 0);
  const byId = new Set<string>();
  const byToken = new Set<string>();
  const byCookie = new Set<string>();
  const byAgent = new Set<string>();
  const others = new Map<string, number>();
  const open: HttpStream[] = [];
  let token: string | null = null;
  for (let i = 0; i < 100; i++) {
    wander(h, i);
    // Requests without a session keep a few streams open, spread by load.
    const o = h.pick({ worker: (i + 1) % 4, body: completion("m", `other ${i}`) });
    others.set(o.dest!, (others.get(o.dest!) ?? 0) + 1);
    open.push(o.stream);
    if (open.length > 3) open.shift()!.finish();
    const w = i % 4;
    byId.add(turn(h, [["x-session-id", "conversation-1"]], { worker: w }).dest!);
    const t = turn(h, token ? [[TOKEN, token]] : [], { worker: (w + 2) % 4 });
    byToken.add(t.dest!);
    assert.equal(t.token, tokenFor(t.dest!), "the response's token names the pod picked");
    token = t.token;
    byCookie.add(turn(h, [["cookie", `theme=dark; llm-d-session=c-${42}`]], { worker: (w + 1) % 4 }).dest!);
    byAgent.add(turn(h, [["x-claude-code-session-id", "agent-7"]], { worker: (w + 3) % 4 }).dest!);
    h.advance(50); // ticks: the workers share their bindings
  }
  assert.equal(byId.size, 1, `x-session-id: ${[...byId]}`);
  assert.equal(byToken.size, 1, `token echoed: ${[...byToken]}`);
  assert.equal(byCookie.size, 1, `cookie: ${[...byCookie]}`);
  assert.equal(byAgent.size, 1, `agent header: ${[...byAgent]}`);
  assert.ok(others.size >= 3, `the load moved requests without a session around: ${[...others.keys()]}`);
  for (const s of open) s.finish();
});

test("without the scorer in the profile, the same session spreads with the load", () => {
  const h = new PickerHost({ concurrency: 4 });
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) {
    wander(h, i, []);
    const r = turn(h, [["x-session-id", "conversation-1"]], { worker: i % 4 });
    seen.add(r.dest!);
    assert.equal(r.token, null, "no token without the scorer");
    h.advance(50);
  }
  assert.ok(seen.size >= 2, `load alone moves it: ${[...seen]}`);
});

test("the session moves when its pod is ejected, and stays on the new pod", () => {
  const h = new PickerHost({
    concurrency: 4,
    config: { outlierDetection: { consecutive5xx: 3, baseEjectionTimeMs: 2000, maxEjectionTimeMs: 4000 } },
  });
  publish(
    h,
    PODS.map((address) => ({ address })),
  );
  const sid: Pairs = [["x-session-id", "conversation-2"]];
  const first = turn(h, sid, { worker: 0 }).dest!;
  h.advance(50);
  for (let i = 0; i < 20; i++) assert.equal(turn(h, sid, { worker: i % 4 }).dest, first);
  // The pod breaks: 5xx at once, and the session keeps going there until the detector ejects it.
  let failed = 0;
  for (; failed < 10; failed++) {
    const r = turn(h, sid, { worker: 0, status: 500 });
    if (r.dest !== first) break;
  }
  assert.equal(failed, 3, "three 5xx in a row eject it (consecutive5xx 3)");
  assert.equal(h.counter("endpoint_picker.outliers.ejections"), 1);
  h.advance(50); // every worker reads the ejection
  const moved = turn(h, sid, { worker: 1 });
  assert.notEqual(moved.dest, first);
  assert.equal(moved.token, tokenFor(moved.dest!));
  h.advance(50);
  for (let i = 0; i < 30; i++) {
    wander(h, i);
    assert.equal(turn(h, sid, { worker: i % 4 }).dest, moved.dest, `turn ${i} stays on the new pod`);
    h.advance(50);
  }
  // The old pod is back (ejection over, healthy): the session does not go back.
  h.advance(3000);
  for (let i = 0; i < 10; i++) assert.equal(turn(h, sid, { worker: i % 4 }).dest, moved.dest);
});

test("the session moves when its pod is saturated, and stays on the new pod", () => {
  const h = new PickerHost({ concurrency: 4 });
  const sid: Pairs = [["x-session-id", "conversation-3"]];
  publish(
    h,
    PODS.map((address) => ({ address })),
  );
  const first = turn(h, sid, { worker: 0 }).dest!;
  h.advance(50);
  for (let i = 0; i < 10; i++) assert.equal(turn(h, sid, { worker: i % 4 }).dest, first);
  // Its queue goes over queueDepthThreshold (5): saturated, no bonus.
  publish(
    h,
    PODS.map((address) => ({ address, queued: address === first ? 8 : 1 })),
  );
  const moved = turn(h, sid, { worker: 2 }).dest!;
  assert.notEqual(moved, first);
  h.advance(50);
  for (let i = 0; i < 20; i++) assert.equal(turn(h, sid, { worker: i % 4 }).dest, moved);
  // The queue drains: the session stays where it went.
  publish(
    h,
    PODS.map((address) => ({ address })),
  );
  for (let i = 0; i < 10; i++) assert.equal(turn(h, sid, { worker: i % 4 }).dest, moved);
  // KV usage over kvCacheUtilThreshold (0.8) saturates as well.
  publish(
    h,
    PODS.map((address) => ({ address, kvUsage: address === moved ? 0.9 : 0.3 })),
  );
  const again = turn(h, sid, { worker: 1 }).dest!;
  assert.notEqual(again, moved);
});

test("llm-d's token round trip; garbage and namespace/name tokens give no affinity and no error", () => {
  const h = new PickerHost({ concurrency: 4 });
  publish(
    h,
    PODS.map((address) => ({ address })),
  );
  const first = turn(h, [], { worker: 0 });
  assert.ok(first.dest);
  assert.equal(first.token, tokenFor(first.dest!));
  // Echoed on any worker, no tick needed: the token itself names the pod (works across gateway replicas).
  for (let i = 0; i < 20; i++) {
    wander(h, i);
    const r = turn(h, [[TOKEN, first.token!]], { worker: i % 4 });
    assert.equal(r.dest, first.dest);
    assert.equal(r.token, first.token);
  }
  const bad = ["%%% not base64 %%%", "", "ZGVmYXVsdC92bGxtLTA=", Buffer.from("ep:zzzzzzzz").toString("base64")];
  for (const token of bad) {
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      wander(h, i);
      const r = turn(h, [[TOKEN, token]], { worker: i % 4 });
      assert.ok(r.dest, `token ${JSON.stringify(token)}: still picked`);
      assert.equal(r.token, tokenFor(r.dest!), "and given a token of ours");
      seen.add(r.dest!);
    }
    assert.ok(seen.size >= 2, `token ${JSON.stringify(token)} pins nothing: ${[...seen]}`);
  }
  assert.deepEqual(h.host.failedWorkers(), []);
});

/**
 * The order in which flow control lets four waiting requests go (agent 1's three turns, then agent 2's one),
 * under round-robin fairness, with `extra` in the profile. The pod's scraped queue saturates the pool; when
 * it drains, the next tick dispatches them all, and a sink records the order they reach the upstream.
 */
function fairnessOrder(extra: ProfilePlugin[]): string[] {
  const h = new PickerHost();
  const band = {
    priority: 0,
    maxRequests: 5000,
    maxBytes: 1e9,
    fairness: "round-robin" as const,
    ordering: "fcfs" as const,
  };
  const fc: SnapshotFlowControl = {
    defaultRequestTtlMs: 60_000,
    noEndpointRequestTtlMs: 60_000,
    maxRequests: 0,
    maxBytes: 0,
    usageLimit: 1.0,
    defaultBand: band,
    defaultNegativeBand: band,
    bands: [],
  };
  const queue = (queued: number) => {
    version += 1n;
    publishSnapshot(
      h.host.sharedData,
      encodeSnapshot({
        version,
        generatedAtMs: h.nowMs,
        profile: { plugins: [...profileOf().plugins, ...extra] },
        endpoints: [{ ...endpoint(PODS[0]), queued, running: 0 }],
        baseModels: [],
        objectives: [],
        modelRewrites: [],
        flowControl: fc,
      }),
      h.nowMs,
    );
  };
  queue(5); // queueDepthThreshold 5: saturated
  const order: string[] = [];
  const streams: HttpStream[] = [];
  const send = (name: string, headers: Pairs) => {
    const s = h.host.openStream({ sink: { requestHeaders: () => order.push(name) } });
    s.sendRequestHeaders([[":method", "POST"], [":path", "/v1/completions"], [":authority", "gw"], ...headers], false);
    s.sendRequestData(completion("m", name), true);
    streams.push(s);
  };
  for (let i = 0; i < 3; i++) send(`a1-${i}`, [["x-claude-code-session-id", "agent-1"]]);
  send("a2", [["session_id", "agent-2"]]);
  assert.deepEqual(order, [], "all wait: the pool is saturated");
  queue(0);
  h.advance(20); // the tick dispatches what the drained pool has room for
  assert.equal(order.length, 4, `all went: ${order}`);
  for (const s of streams) s.finish();
  return order;
}

test("agent-identity: an agent's session header is the fairness id when the request names none", () => {
  const agent: ProfilePlugin = {
    role: "filter",
    type: "agent-identity",
    weight: 0,
    parameters: { headers: "x-claude-code-session-id,session_id" },
  };
  // Without it both agents share the default flow: first come, first served, agent 2 last.
  assert.deepEqual(fairnessOrder([]), ["a1-0", "a1-1", "a1-2", "a2"]);
  // With it each agent is a flow, and round-robin between flows lets agent 2 go right after agent 1's first.
  assert.deepEqual(fairnessOrder([agent]), ["a1-0", "a2", "a1-1", "a1-2"]);
});
