// Renders the small Go-template subset the chart in envoy/chart uses (no helm binary in Debian):
// {{ .path }}, {{- / -}} trimming, if/else/end, range/end (rebinds "."), and the functions
// quote, default, toYaml, nindent, printf (%s %v), not, fail, and sprig's kindIs, regexMatch and
// regexReplaceAll (Go RE2 syntax; lookarounds and backreferences, which RE2 lacks, are refused).
// Anything else throws, so the chart cannot silently drift outside what this renderer understands.
import { stringify } from "yaml";

type Node =
  | { kind: "text"; text: string }
  | { kind: "expr"; pipe: string }
  | { kind: "if"; pipe: string; then: Node[]; else: Node[] }
  | { kind: "range"; pipe: string; body: Node[] };

function tokenize(src: string): Array<{ text?: string; action?: string }> {
  const out: Array<{ text?: string; action?: string }> = [];
  const re = /\{\{(-?)\s*([\s\S]*?)\s*(-?)\}\}/g;
  let last = 0;
  let m: RegExpExecArray | null;
  let trimNext = false;
  while ((m = re.exec(src))) {
    let text = src.slice(last, m.index);
    if (trimNext) text = text.replace(/^\s+/, "");
    if (m[1]) text = text.replace(/\s+$/, "");
    out.push({ text }, { action: m[2] });
    trimNext = m[3] === "-";
    last = re.lastIndex;
  }
  let text = src.slice(last);
  if (trimNext) text = text.replace(/^\s+/, "");
  out.push({ text });
  return out;
}

function parse(tokens: Array<{ text?: string; action?: string }>): Node[] {
  let i = 0;
  const block = (stopAt: string[]): [Node[], string] => {
    const nodes: Node[] = [];
    while (i < tokens.length) {
      const t = tokens[i++];
      if (t.text !== undefined) {
        if (t.text) nodes.push({ kind: "text", text: t.text });
        continue;
      }
      const a = t.action!;
      if (stopAt.includes(a)) return [nodes, a];
      if (a.startsWith("if ")) {
        const [then, stop] = block(["else", "end"]);
        const els = stop === "else" ? block(["end"])[0] : [];
        nodes.push({ kind: "if", pipe: a.slice(3), then, else: els });
      } else if (a.startsWith("range ")) {
        nodes.push({ kind: "range", pipe: a.slice(6), body: block(["end"])[0] });
      } else nodes.push({ kind: "expr", pipe: a });
    }
    if (stopAt.length) throw new Error(`template: missing {{ ${stopAt.join("/")} }}`);
    return [nodes, ""];
  };
  return block([])[0];
}

function words(cmd: string): string[] {
  return cmd.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
}

function lookup(dot: unknown, path: string): unknown {
  if (path === ".") return dot;
  let v: any = dot;
  for (const k of path.slice(1).split(".")) {
    if (v === null || typeof v !== "object") throw new Error(`template: ${path}: not an object at ${k}`);
    v = v[k];
  }
  return v;
}

function arg(w: string, root: unknown, dot: unknown): unknown {
  if (w.startsWith('"')) return JSON.parse(w);
  if (/^-?\d+$/.test(w)) return Number(w);
  if (w.startsWith(".Values") || w.startsWith(".Release")) return lookup(root, w);
  if (w.startsWith(".")) return lookup(dot, w);
  throw new Error(`template: unsupported argument ${w}`);
}

const str = (v: unknown) => (v === undefined || v === null ? "" : String(v));

/** Go's reflect.Kind name of a value decoded from YAML values (sprig kindOf/kindIs). */
function kindOf(v: unknown): string {
  if (v === undefined || v === null) return "invalid";
  if (Array.isArray(v)) return "slice";
  switch (typeof v) {
    case "object":
      return "map";
    case "string":
      return "string";
    case "boolean":
      return "bool";
    case "number":
      return "float64"; // Helm decodes numbers of values files as float64
    default:
      throw new Error(`template: kindIs: unsupported value ${String(v)}`);
  }
}

/** A Go RE2 pattern as a JS RegExp; refuses what RE2 does not have (so the chart stays valid in Helm). */
function re2(pattern: string, flags = ""): RegExp {
  if (/\(\?[=!<]|\\[1-9]/.test(pattern)) throw new Error(`template: not RE2 syntax: ${pattern}`);
  return new RegExp(pattern, flags);
}

/** Go's Regexp.Expand template: $1, ${1}, $$ (a named or unknown group expands to ""). */
function expand(template: string, groups: string[]): string {
  return template.replace(/\$\$|\$\{(\w+)\}|\$(\w+)/g, (m, braced, bare) => {
    if (m === "$$") return "$";
    const name = braced ?? bare;
    return /^\d+$/.test(name) ? (groups[Number(name)] ?? "") : "";
  });
}

function call(fn: string, args: unknown[]): unknown {
  switch (fn) {
    case "not":
      return !truthy(args[0]);
    case "fail":
      throw new Error(`template: fail: ${str(args[0])}`);
    case "kindIs":
      return kindOf(args[1]) === str(args[0]);
    case "regexMatch":
      return re2(str(args[0])).test(str(args[1]));
    case "regexReplaceAll":
      return str(args[1]).replace(re2(str(args[0]), "g"), (...m) => expand(str(args[2]), m.slice(0, -2).map(str)));
    case "quote":
      return JSON.stringify(str(args[0]));
    case "default":
      return args[1] === undefined || args[1] === null || args[1] === "" ? args[0] : args[1];
    case "toYaml":
      return stringify(args[0]).replace(/\n$/, "");
    case "nindent":
      return (
        "\n" +
        str(args[1])
          .split("\n")
          .map((l) => " ".repeat(Number(args[0])) + l)
          .join("\n")
      );
    case "printf": {
      let n = 1;
      return str(args[0]).replace(/%[sv]/g, () => str(args[n++]));
    }
    default:
      throw new Error(`template: unsupported function ${fn}`);
  }
}

function evalPipe(pipe: string, root: unknown, dot: unknown): unknown {
  let value: unknown;
  let first = true;
  const cmds = pipe.match(/(?:"(?:[^"\\]|\\.)*"|[^|"])+/g) ?? [];
  for (const cmd of cmds.map((c) => c.trim())) {
    const [head, ...rest] = words(cmd);
    const args = rest.map((w) => arg(w, root, dot));
    if (first && head.startsWith(".")) value = arg(head, root, dot);
    else value = call(head, first ? args : [...args, value]);
    first = false;
  }
  return value;
}

// Go template truth: false, 0, nil and empty strings, slices and maps are false.
const truthy = (v: unknown) =>
  !(
    v === undefined ||
    v === null ||
    v === false ||
    v === 0 ||
    v === "" ||
    (Array.isArray(v) && v.length === 0) ||
    (typeof v === "object" && Object.keys(v as object).length === 0)
  );

function run(nodes: Node[], root: unknown, dot: unknown): string {
  return nodes
    .map((n) => {
      switch (n.kind) {
        case "text":
          return n.text;
        case "expr":
          return str(evalPipe(n.pipe, root, dot));
        case "if":
          return run(truthy(evalPipe(n.pipe, root, dot)) ? n.then : n.else, root, dot);
        case "range":
          return ((evalPipe(n.pipe, root, dot) as unknown[]) ?? []).map((d) => run(n.body, root, d)).join("");
      }
    })
    .join("");
}

export function renderTemplate(src: string, values: unknown, release = { Name: "r", Namespace: "default" }): string {
  const root = { Values: values, Release: release };
  return run(parse(tokenize(src)), root, root);
}

/** Applies `--set a.b.c=value` like helm (string values; numbers and booleans converted). */
export function setValue(values: Record<string, any>, assignment: string): void {
  const eq = assignment.indexOf("=");
  const keys = assignment.slice(0, eq).split(".");
  const raw = assignment.slice(eq + 1);
  const v = raw === "true" ? true : raw === "false" ? false : /^\d+$/.test(raw) ? Number(raw) : raw;
  let o = values;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys[keys.length - 1]] = v;
}
