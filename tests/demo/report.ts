// The demo's numbers: per phase TTFT and end-to-end percentiles (in model time: real time x the simulator's
// speed-up), throughput, success and prefix-cache hit rate; printed side by side.
import type { StreamResult } from "./client";

export interface PhaseResult {
  name: string;
  requests: number;
  ok: number;
  ttftP50: number;
  ttftP99: number;
  e2eP50: number;
  e2eP99: number;
  tokensPerSec: number;
  prefixHitRate: number;
  perPod: number[];
}

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

export function summarize(
  name: string,
  results: StreamResult[],
  m: { timeScale: number; wallMs: number; prefixHitRate: number; perPod: number[] },
): PhaseResult {
  const ok = results.filter((r) => r.ok);
  const model = (ms: number) => ms * m.timeScale;
  const tokens = ok.reduce((a, r) => a + r.outputTokens, 0);
  return {
    name,
    requests: results.length,
    ok: ok.length,
    ttftP50: model(
      quantile(
        ok.map((r) => r.ttftMs),
        0.5,
      ),
    ),
    ttftP99: model(
      quantile(
        ok.map((r) => r.ttftMs),
        0.99,
      ),
    ),
    e2eP50: model(
      quantile(
        ok.map((r) => r.e2eMs),
        0.5,
      ),
    ),
    e2eP99: model(
      quantile(
        ok.map((r) => r.e2eMs),
        0.99,
      ),
    ),
    tokensPerSec: tokens / (model(m.wallMs) / 1000),
    prefixHitRate: m.prefixHitRate,
    perPod: m.perPod,
  };
}

export function printTable(rows: PhaseResult[], timeScale: number): void {
  const cols: Array<[string, (r: PhaseResult) => string]> = [
    ["TTFT p50 (ms)", (r) => r.ttftP50.toFixed(0)],
    ["TTFT p99 (ms)", (r) => r.ttftP99.toFixed(0)],
    ["e2e p50 (ms)", (r) => r.e2eP50.toFixed(0)],
    ["e2e p99 (ms)", (r) => r.e2eP99.toFixed(0)],
    ["output tok/s", (r) => r.tokensPerSec.toFixed(0)],
    ["prefix-cache hits", (r) => `${(r.prefixHitRate * 100).toFixed(1)}%`],
    ["success", (r) => `${r.ok}/${r.requests}`],
    ["requests per pod", (r) => r.perPod.join(" ")],
  ];
  const first = Math.max(...cols.map(([h]) => h.length)) + 2;
  const width = Math.max(...rows.map((r) => Math.max(r.name.length, ...cols.map(([, f]) => f(r).length)))) + 2;
  const line = (label: string, cells: string[]) => label.padEnd(first) + cells.map((c) => c.padStart(width)).join("");
  const out = [
    "",
    line(
      "",
      rows.map((r) => r.name),
    ),
    line(
      "",
      rows.map(() => "-".repeat(width - 2)),
    ),
  ];
  for (const [h, f] of cols) out.push(line(h, rows.map(f)));
  const base = rows.find((r) => r.name === "least-request"),
    mine = rows[0];
  if (base && mine && base.ttftP99 > 0) {
    out.push(
      "",
      `TTFT p99: this picker ${((1 - mine.ttftP99 / base.ttftP99) * 100).toFixed(0)}% below least-request; prefix-cache hits ${(mine.prefixHitRate * 100).toFixed(0)}% vs ${(base.prefixHitRate * 100).toFixed(0)}%.`,
    );
  }
  out.push(
    `Times are model-server time (simulated time ran at ${timeScale.toFixed(2)}x real time; gateway and client overheads scale with it).`,
    "",
  );
  process.stdout.write(out.join("\n"));
}
