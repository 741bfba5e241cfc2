// The model-server cost bench (tests/companion/model-server-cost.ts) measures a restricted page only if
// prometheus_client really restricts it: through its WSGI app, ?name[]= with the families the companion asks
// a vLLM server for must answer those families, all of them, and nothing else. Skipped without Debian's
// /usr/bin/python3 and python3-prometheus-client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { restrictToSamples } from "../sim/exposition/prom-text";
import { runModelServerScript, vllmFamilies } from "./model-server-cost";

interface CheckOutput {
  accept: string;
  fullPage: string;
  restricted: Array<{ families: string[]; queryString: string; status: string; contentType: string; page: string }>;
}

/** Sample lines of an exposition page, by sample name. */
function samples(page: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of page.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const name = /^[^{ ]+/.exec(line)![0];
    out.set(name, [...(out.get(name) ?? []), line]);
  }
  return out;
}

/** Families named by # TYPE lines. */
const typed = (page: string): string[] => [...page.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);

// Counters and histograms are matched by sample name: a counter's family name selects nothing.
const COUNTER = "vllm:prompt_tokens";
const SAMPLES_OF_OTHERS = ["vllm:prompt_tokens_total", "vllm:time_to_first_token_seconds_bucket"];

test("prometheus_client's restricted page holds exactly the requested vLLM families", async (t) => {
  const families = vllmFamilies();
  const args = [
    "--check",
    ...families.flatMap((f) => ["--family", f]),
    "--query",
    COUNTER,
    "--query",
    SAMPLES_OF_OTHERS.join(","),
  ];
  const out = await runModelServerScript(args, 20_000);
  if (typeof out !== "string") return t.skip(out.skipped);
  const check = JSON.parse(out) as CheckOutput;
  const full = samples(check.fullPage);
  const [main, counter, others] = check.restricted;

  // The request was the companion's: its Accept header, one name[] per family.
  const sources = readdirSync("companion").filter((f) => f.endsWith(".ts"));
  assert.ok(
    sources.some((f) => readFileSync(`companion/${f}`, "utf8").includes(`"${check.accept}"`)),
    `the companion no longer sends Accept: ${check.accept} (update model-server-cost.py)`,
  );
  assert.deepEqual(main.families, families);
  assert.equal(main.queryString, families.map((f) => `name%5B%5D=${encodeURIComponent(f)}`).join("&"));
  assert.equal(main.status, "200 OK");
  assert.match(main.contentType, /^application\/openmetrics-text/);

  // The full page has the requested families and much more (so a filter ignored would show).
  for (const f of families) assert.ok(full.has(f), `full page lacks ${f}`);
  assert.ok(full.size > 4 * families.length, `full page has only ${full.size} sample names`);
  assert.ok(full.has("vllm:time_to_first_token_seconds_bucket"));

  // The restricted page: every requested family, nothing else, the same lines as on the full page.
  const restricted = samples(main.page);
  assert.deepEqual([...restricted.keys()].sort(), [...families].sort());
  assert.deepEqual(typed(main.page).sort(), [...families].sort());
  for (const [name, lines] of restricted) assert.deepEqual(lines, full.get(name), name);
  assert.ok(main.page.endsWith("# EOF\n"));
  assert.ok(main.page.length * 10 < check.fullPage.length);

  // A counter's family name selects nothing; sample names select only those samples (no _created, _sum...).
  assert.equal(counter.page, "# EOF\n");
  const picked = samples(others.page);
  assert.deepEqual([...picked.keys()].sort(), [...SAMPLES_OF_OTHERS].sort());
  for (const [name, lines] of picked) assert.deepEqual(lines, full.get(name), name);

  // The simulator's pods (tests/sim) restrict their pages the same way: from the real full page, the real
  // restricted pages, family by family (the restricted registry yields families in set order; OpenMetrics'
  // closing # EOF aside).
  const blocks = (page: string) =>
    page
      .replace(/# EOF\n$/, "")
      .split(/(?=^# HELP )/m)
      .filter(Boolean)
      .sort();
  for (const r of check.restricted)
    assert.deepEqual(
      blocks(restrictToSamples(check.fullPage.replace(/# EOF\n$/, ""), new Set(r.families))),
      blocks(r.page),
      r.families.join(","),
    );
});
