// Benchmark: the exchange between gateway replicas (docs/GATEWAYS.md) at 8 gateways and 1,000 requests a
// second. Eight in-process gateways (the emulator's host, the real build/filter.wasm, 2 worker VMs each)
// report to two in-process companions (the real GatewayExchange, relaying to each other every 50 ms) on
// virtual time; a shared-prefix chat workload is spread round-robin over the gateways, each request held
// 2 s. Measures the bytes each gateway sends and receives per second, and how often a request's prefix is
// found at an endpoint (the filter's prefix hits) with the exchange and without it, in one run.
// Prints a table and writes build/bench/exchange.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { PickerHost } from "./harness";
import type { HttpCallContext, HttpCallOutcome } from "../../envoy/emulator/host";
import type { HttpStream } from "../../envoy/emulator/stream";
import { GatewayExchange } from "../../companion/gateway-exchange";
import { DESTINATION_HEADER } from "../helpers/filter-contract";

const GATEWAYS = 8;
const RATE = 1000; // requests per second over all gateways
const SECONDS = 8;
const HOLD_MS = 2000;
const ENDPOINTS = 16;
const TENANTS = 48;
const NETWORK_MS = 2;
/** Tenants' endpoints are counted after this (the first requests of every tenant spread by load). */
const WARMUP_MS = 1000;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const endpoints = Array.from({ length: ENDPOINTS }, (_, i) => ({
  address: `10.1.0.${i + 1}:8000`,
  queued: 0,
  running: 0,
}));
const system = (t: number) => `Tenant ${t} instructions: be precise, cite sources, keep it short. `.repeat(120);

interface Run {
  upBytesPerSec: number;
  downBytesPerSec: number;
  relayBytesPerSec: number;
  reportsPerSec: number;
  prefixHitRate: number;
  /** Distinct endpoints a tenant's requests went to, on average (its prefix is cached on each of them). */
  endpointsPerTenant: number;
}

function run(share: boolean): Run {
  let now = 0;
  const companions = [new GatewayExchange(), new GatewayExchange()];
  let up = 0,
    down = 0,
    relay = 0,
    reports = 0,
    turn = 0;
  const pending: Array<{ at: number; fn: () => void }> = [];
  const handler = (call: HttpCallContext): HttpCallOutcome | undefined => {
    const path = call.headers.find(([k]) => k === ":path")?.[1];
    if (path !== "/v1/gateway-report") return { headers: [[":status", "404"]] };
    up += call.body.length;
    reports++;
    const companion = companions[turn++ % companions.length];
    const body = new Uint8Array(call.body);
    pending.push({
      at: now + NETWORK_MS,
      fn: () => {
        const answer = companion.receive(body, now);
        down += answer.length;
        pending.push({ at: now + NETWORK_MS, fn: () => call.respond({ headers: [[":status", "200"]], body: answer }) });
      },
    });
    return undefined;
  };
  const gateways = Array.from(
    { length: GATEWAYS },
    () =>
      new PickerHost({
        concurrency: 2,
        config: { shareWithGateways: share, failureMode: "FailClose", stalenessLimitMs: 3_600_000 },
        httpCallHandler: handler,
      }),
  );
  for (const g of gateways) g.publish(endpoints, { kvWeight: 0 });
  const random = rng(7);
  const usedBy: Array<Set<string>> = [];
  const open: Array<{ at: number; stream: HttpStream }> = [];
  const stepMs = 1;
  const total = RATE * SECONDS;
  let sent = 0;
  for (let t = 0; t < SECONDS * 1000 + HOLD_MS; t += stepMs) {
    now = t;
    for (const g of gateways) g.advance(stepMs);
    for (let k = pending.length - 1; k >= 0; k--) {
      if (pending[k].at <= now) pending.splice(k, 1)[0].fn();
    }
    if (t % 50 === 0) {
      // The companions relay what they received to each other.
      for (const [a, b] of [
        [0, 1],
        [1, 0],
      ]) {
        const body = companions[a].takeRelay();
        if (body) {
          relay += body.length;
          companions[b].acceptRelay(body, now);
        }
      }
    }
    while (sent < total && sent < ((t + stepMs) * RATE) / 1000) {
      const g = gateways[sent % GATEWAYS];
      const tenant = Math.floor(random() * TENANTS);
      const body = JSON.stringify({
        model: "m",
        messages: [
          { role: "system", content: system(tenant) },
          { role: "user", content: `question ${sent}` },
        ],
        max_tokens: 64,
      });
      const stream = g.send({ worker: sent % 2, path: "/v1/chat/completions", body });
      const dest = stream.forwarded.requestHeaders?.find(([k]) => k === DESTINATION_HEADER)?.[1];
      if (dest !== undefined && t >= WARMUP_MS) (usedBy[tenant] ??= new Set()).add(dest);
      open.push({ at: t + HOLD_MS, stream });
      sent++;
    }
    while (open.length > 0 && open[0].at <= t) open.shift()!.stream.finish();
  }
  const picked = gateways.reduce((n, g) => n + g.counter("endpoint_picker.decisions.picked"), 0);
  const hits = gateways.reduce((n, g) => n + g.counter("endpoint_picker.prefix_hits"), 0);
  const seconds = (SECONDS * 1000 + HOLD_MS) / 1000;
  for (const g of gateways) g.host.close();
  return {
    upBytesPerSec: up / GATEWAYS / seconds,
    downBytesPerSec: down / GATEWAYS / seconds,
    relayBytesPerSec: relay / seconds,
    reportsPerSec: reports / GATEWAYS / seconds,
    prefixHitRate: picked > 0 ? hits / picked : 0,
    endpointsPerTenant: usedBy.reduce((n, set) => n + set.size, 0) / usedBy.filter(Boolean).length,
  };
}

const shared = run(true);
const alone = run(false);
const kb = (b: number) => `${(b / 1024).toFixed(1)} KiB/s`;
console.log(
  `exchange at ${GATEWAYS} gateways, ${RATE} req/s, ${ENDPOINTS} endpoints, ${TENANTS} tenants, requests held ${HOLD_MS} ms:`,
);
console.log(
  `  per gateway: ${kb(shared.upBytesPerSec)} up, ${kb(shared.downBytesPerSec)} down, ${shared.reportsPerSec.toFixed(1)} reports/s`,
);
console.log(`  between the two companions: ${kb(shared.relayBytesPerSec)}`);
console.log(
  `  endpoints a tenant's requests went to: ${shared.endpointsPerTenant.toFixed(2)} with the exchange, ${alone.endpointsPerTenant.toFixed(2)} without`,
);
console.log(
  `  requests whose prefix the chosen endpoint held (as the gateway knew): ${(shared.prefixHitRate * 100).toFixed(1)}% with the exchange, ${(alone.prefixHitRate * 100).toFixed(1)}% without (${(shared.prefixHitRate / Math.max(alone.prefixHitRate, 1e-9)).toFixed(2)}x)`,
);
mkdirSync("build/bench", { recursive: true });
writeFileSync(
  "build/bench/exchange.json",
  JSON.stringify({ gateways: GATEWAYS, ratePerSec: RATE, endpoints: ENDPOINTS, shared, alone }, null, 2),
);
