// docs/ARCHITECTURE.md's "Parts and where they live" table against the tree: every path it names exists,
// and every source file of the filter, the companion, the emulator and the simulator is named by it.
//
// How the path column is read: each `code span` in it is one path. A span whose first segment is a
// top-level entry of the repository (`filter/index.ts`, `tests/sim/exposition/`) is relative to the
// repository root; any other span (`picker.ts`, `pickers/`) is relative to the folder of the first span of
// the same cell. A span ending in `/` names a folder and covers every file under it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { posix } from "node:path";

const DOC = "docs/ARCHITECTURE.md";
const SECTION = "## Parts and where they live";
/** Folders whose TypeScript sources the table must cover (test files, `*.test.ts`, are not parts). */
const COVERED = ["filter/", "companion/", "envoy/emulator/", "tests/sim/"];

interface Row {
  line: number;
  paths: string[];
}

/** The table's rows as repository-relative paths (folders keep their trailing `/`). */
function tableRows(markdown: string): Row[] {
  const lines = markdown.split("\n");
  const start = lines.indexOf(SECTION);
  assert.ok(start >= 0, `${DOC} has no "${SECTION}" section`);
  let i = start + 1;
  while (i < lines.length && !lines[i].startsWith("|")) i++;
  const cells = (l: string) =>
    l
      .slice(1, l.lastIndexOf("|"))
      .split("|")
      .map((c) => c.trim());
  const column = cells(lines[i]).indexOf("path");
  assert.ok(column >= 0, `the table of "${SECTION}" has no "path" column`);
  const topLevel = new Set(readdirSync("."));
  const rows: Row[] = [];
  for (i += 2; i < lines.length && lines[i].startsWith("|"); i++) {
    const spans = [...(cells(lines[i])[column] ?? "").matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    assert.ok(spans.length > 0, `${DOC}:${i + 1}: a row without a path`);
    const base = spans[0].endsWith("/") ? spans[0] : posix.dirname(spans[0]) + "/";
    const paths = spans.map((s) => (topLevel.has(s.split("/")[0]) ? s : base + s));
    rows.push({ line: i + 1, paths });
  }
  return rows;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}${e.name}`;
    if (e.isDirectory()) return sources(`${path}/`);
    return e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") ? [path] : [];
  });
}

const rows = tableRows(readFileSync(DOC, "utf8"));
const named = rows.flatMap((r) => r.paths);

test("architecture table: the parser reads the table's rows and both kinds of path", () => {
  assert.ok(rows.length >= 20, `only ${rows.length} rows read`);
  for (const p of [
    "filter/index.ts",
    "filter/picker.ts",
    "companion/main.ts",
    "tests/sim/exposition/",
    "docs/SNAPSHOT.md",
  ]) {
    assert.ok(named.includes(p), `${p} not read from the table`);
  }
  assert.deepEqual(
    tableRows(
      `x\n${SECTION}\n\n| part | path | job |\n|---|---|---|\n| a | \`tests/sim/fleet.ts\`, \`pickers/\`, \`x.ts\` | y |\n`,
    ),
    [{ line: 6, paths: ["tests/sim/fleet.ts", "tests/sim/pickers/", "tests/sim/x.ts"] }],
  );
});

test("architecture table: every path it names exists", () => {
  const missing = rows.flatMap((r) =>
    r.paths
      .filter((p) => {
        if (!existsSync(p)) return true;
        return p.endsWith("/") !== statSync(p).isDirectory();
      })
      .map((p) => `${DOC}:${r.line}: ${p}`),
  );
  assert.deepEqual(
    missing,
    [],
    "paths named in the table that are not in the tree (a folder must end in /, a file must not)",
  );
});

test("architecture table: every source file of the filter, companion, emulator and simulator is named", () => {
  const files = COVERED.flatMap(sources);
  assert.ok(
    files.includes("filter/index.ts") && files.includes("tests/sim/exposition/vllm.ts"),
    "the walk found the sources",
  );
  const covered = (f: string) => named.some((p) => (p.endsWith("/") ? f.startsWith(p) : f === p));
  assert.deepEqual(
    files.filter((f) => !covered(f)),
    [],
    `source files not named in ${DOC} "${SECTION}": add each to a row's path cell, or name its folder (\`filter/scoring/\`)`,
  );
});
