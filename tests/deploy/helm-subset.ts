// Renders the Go-template subset the chart in envoy/chart uses (no helm binary in Debian), with Go's and
// Helm's semantics where the chart depends on them:
//   actions     {{ pipeline }}, {{- / -}} trimming, {{/* comments */}}, if / else if / else / end,
//               range / end (rebinds "."), define "name" / end, variables ($x := ..., $x = ..., $ the root);
//               a variable lives until the end of the if/range/define it was declared in, as in Go;
//   pipelines   commands separated by |, the piped value passed as the last argument, ( ) sub-pipelines,
//               fields of "." and of variables (.a.b, $x.a.b), "strings", numbers, true, false, nil;
//   functions   Go's not, and, or, eq, ne, index, printf (%s %v), Helm's include, lookup, fail, toYaml,
//               toJson and sprig's quote, default, nindent, dict, set, hasKey, kindIs, regexMatch,
//               regexReplaceAll (Go RE2 syntax; lookarounds and backreferences, which RE2 lacks, are refused),
//               randAlphaNum, b64enc, b64dec, sha256sum.
// Anything else throws, so the chart cannot silently drift outside what this renderer understands.
// `lookup` answers from RenderOptions.lookup (nothing: an empty map, as `helm template` gives).
import { createHash, randomInt } from "node:crypto";
import { stringify } from "yaml";

type Node =
  | { kind: "text"; text: string }
  | { kind: "expr"; pipe: string }
  | { kind: "if"; pipe: string; then: Node[]; else: Node[] }
  | { kind: "range"; pipe: string; body: Node[] };

interface Token {
  text?: string;
  action?: string;
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const re = /\{\{(-?)\s*([\s\S]*?)\s*(-?)\}\}/g;
  let last = 0;
  let m: RegExpExecArray | null;
  let trimNext = false;
  while ((m = re.exec(src))) {
    let text = src.slice(last, m.index);
    if (trimNext) text = text.replace(/^\s+/, "");
    if (m[1]) text = text.replace(/\s+$/, "");
    out.push({ text });
    if (!/^\/\*[\s\S]*\*\/$/.test(m[2])) out.push({ action: m[2] });
    trimNext = m[3] === "-";
    last = re.lastIndex;
  }
  let text = src.slice(last);
  if (trimNext) text = text.replace(/^\s+/, "");
  out.push({ text });
  return out;
}

/** Parses a template file: its top-level nodes, and the `define`d templates it contains. */
function parse(tokens: Token[], defines: Map<string, Node[]>): Node[] {
  let i = 0;
  const block = (stopAt: RegExp | null): [Node[], string] => {
    const nodes: Node[] = [];
    while (i < tokens.length) {
      const t = tokens[i++];
      if (t.text !== undefined) {
        if (t.text) nodes.push({ kind: "text", text: t.text });
        continue;
      }
      const a = t.action!;
      if (stopAt && stopAt.test(a)) return [nodes, a];
      if (a.startsWith("if ")) nodes.push(ifNode(a.slice(3)));
      else if (a.startsWith("range ")) nodes.push({ kind: "range", pipe: a.slice(6), body: block(/^end$/)[0] });
      else if (a.startsWith("define ")) {
        const name = JSON.parse(a.slice(7).trim()) as string;
        defines.set(name, block(/^end$/)[0]);
      } else if (a === "end" || a === "else" || a.startsWith("else "))
        throw new Error(`template: unexpected {{ ${a} }}`);
      else if (/^(with|block|template|break|continue)\b/.test(a)) throw new Error(`template: unsupported action ${a}`);
      else nodes.push({ kind: "expr", pipe: a });
    }
    if (stopAt) throw new Error(`template: missing {{ end }}`);
    return [nodes, ""];
  };
  // `else if X` closes the branch and opens a nested if that ends at the same {{ end }}.
  const ifNode = (pipe: string): Node => {
    const [then, stop] = block(/^(else|else if .+|end)$/);
    if (stop === "end") return { kind: "if", pipe, then, else: [] };
    if (stop === "else") return { kind: "if", pipe, then, else: block(/^end$/)[0] };
    return { kind: "if", pipe, then, else: [ifNode(stop.slice(8))] };
  };
  return block(null)[0];
}

// ---------------------------------------------------------------------------------------------------------
// Pipelines

type Term =
  | { t: "lit"; v: unknown }
  | { t: "field"; path: string[] } // .a.b relative to dot ([] = dot)
  | { t: "var"; name: string; path: string[] } // $x.a.b ($ = root)
  | { t: "ident"; name: string }
  | { t: "sub"; pipe: Pipeline };
interface Pipeline {
  decl?: { name: string; op: ":=" | "=" };
  cmds: Term[][];
}

function lex(src: string): string[] {
  const out: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|:=|[()|=]|[^\s()|"`=]+)/y;
  let pos = 0;
  while (src.slice(pos).trim()) {
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) throw new Error(`template: cannot read "${src}" at ${pos}`);
    out.push(m[1]);
    pos = re.lastIndex;
  }
  return out;
}

function parsePipeline(src: string): Pipeline {
  const toks = lex(src);
  let i = 0;
  const pipeline = (): Pipeline => {
    const p: Pipeline = { cmds: [] };
    if (/^\$\w*$/.test(toks[i] ?? "") && (toks[i + 1] === ":=" || toks[i + 1] === "=")) {
      p.decl = { name: toks[i], op: toks[i + 1] as ":=" | "=" };
      i += 2;
    }
    let cmd: Term[] = [];
    while (i < toks.length && toks[i] !== ")") {
      const tok = toks[i++];
      if (tok === "|") {
        p.cmds.push(cmd);
        cmd = [];
      } else if (tok === "(") {
        cmd.push({ t: "sub", pipe: pipeline() });
        if (toks[i++] !== ")") throw new Error(`template: missing ) in "${src}"`);
      } else cmd.push(term(tok));
    }
    p.cmds.push(cmd);
    if (p.cmds.some((c) => c.length === 0)) throw new Error(`template: empty command in "${src}"`);
    return p;
  };
  const out = pipeline();
  if (i !== toks.length) throw new Error(`template: unexpected ) in "${src}"`);
  return out;
}

function term(tok: string): Term {
  if (tok.startsWith('"')) return { t: "lit", v: JSON.parse(tok) };
  if (tok.startsWith("`")) return { t: "lit", v: tok.slice(1, -1) };
  if (/^-?\d+(\.\d+)?$/.test(tok)) return { t: "lit", v: Number(tok) };
  if (tok === "true" || tok === "false") return { t: "lit", v: tok === "true" };
  if (tok === "nil") return { t: "lit", v: null };
  if (tok === ".") return { t: "field", path: [] };
  if (/^(\.\w+)+$/.test(tok)) return { t: "field", path: tok.slice(1).split(".") };
  const v = /^(\$\w*)((?:\.\w+)*)$/.exec(tok);
  if (v) return { t: "var", name: v[1], path: v[2] ? v[2].slice(1).split(".") : [] };
  if (/^\w+$/.test(tok)) return { t: "ident", name: tok };
  throw new Error(`template: unsupported argument ${tok}`);
}

// ---------------------------------------------------------------------------------------------------------
// Evaluation

export interface RenderOptions {
  /** What `lookup apiVersion kind namespace name` finds in the cluster (nothing: an empty map). */
  lookup?: (apiVersion: string, kind: string, namespace: string, name: string) => unknown;
}

interface Ctx {
  root: unknown;
  defines: Map<string, Node[]>;
  opts: RenderOptions;
}
type Scope = { vars: Map<string, unknown>; parent?: Scope };

function field(v: unknown, path: string[], what: string): unknown {
  for (const k of path) {
    if (v === null || v === undefined) throw new Error(`template: ${what}: nil pointer evaluating .${k}`);
    if (typeof v !== "object") throw new Error(`template: ${what}: can't evaluate field ${k} in ${typeof v}`);
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

function getVar(scope: Scope, name: string): unknown {
  for (let s: Scope | undefined = scope; s; s = s.parent) if (s.vars.has(name)) return s.vars.get(name);
  throw new Error(`template: undefined variable ${name}`);
}

function setVar(scope: Scope, name: string, value: unknown): void {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    if (s.vars.has(name)) {
      s.vars.set(name, value);
      return;
    }
  }
  throw new Error(`template: undefined variable ${name}`);
}

const str = (v: unknown) => (v === undefined || v === null ? "" : String(v));

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

/** Go's encoding/json (sprig toJson): map keys sorted, <, > and & escaped as \u003c, \u003e, \u0026. */
function goJson(v: unknown): string {
  const sorted = (x: unknown): unknown =>
    Array.isArray(x)
      ? x.map(sorted)
      : x !== null && typeof x === "object"
        ? Object.fromEntries(
            Object.keys(x as object)
              .sort()
              .map((k) => [k, sorted((x as Record<string, unknown>)[k])]),
          )
        : x;
  return JSON.stringify(sorted(v) ?? null).replace(
    /[<>&\u2028\u2029]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function call(fn: string, args: unknown[], ctx: Ctx): unknown {
  switch (fn) {
    case "not":
      return !truthy(args[0]);
    case "and":
      return args.find((a) => !truthy(a)) ?? args[args.length - 1];
    case "or":
      return args.find((a) => truthy(a)) ?? args[args.length - 1];
    case "eq":
      return args.slice(1).some((a) => a === args[0]);
    case "ne":
      return args[0] !== args[1];
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
      return truthy(args[1]) ? args[1] : args[0];
    case "toYaml":
      return stringify(args[0]).replace(/\n$/, "");
    case "toJson":
      return goJson(args[0]);
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
    case "dict": {
      const out: Record<string, unknown> = {};
      for (let k = 0; k + 1 < args.length; k += 2) out[str(args[k])] = args[k + 1];
      return out;
    }
    case "set": {
      const m = args[0] as Record<string, unknown>;
      if (m === null || typeof m !== "object") throw new Error("template: set: not a map");
      m[str(args[1])] = args[2];
      return m;
    }
    case "hasKey":
      return args[0] !== null && typeof args[0] === "object" && Object.hasOwn(args[0] as object, str(args[1]));
    case "index": {
      let v = args[0];
      for (const k of args.slice(1)) {
        if (v === null || v === undefined) throw new Error("template: index of nil");
        v = (v as Record<string, unknown>)[str(k)];
      }
      return v;
    }
    case "include": {
      const body = ctx.defines.get(str(args[0]));
      if (!body) throw new Error(`template: no template "${str(args[0])}"`);
      return run(body, ctx, args[1], { vars: new Map([["$", args[1]]]) });
    }
    case "lookup": {
      if (args.length !== 4) throw new Error("template: lookup takes apiVersion, kind, namespace, name");
      return ctx.opts.lookup?.(str(args[0]), str(args[1]), str(args[2]), str(args[3])) ?? {};
    }
    case "randAlphaNum":
      return Array.from({ length: Number(args[0]) }, () => ALNUM[randomInt(ALNUM.length)]).join("");
    case "b64enc":
      return Buffer.from(str(args[0]), "utf8").toString("base64");
    case "b64dec":
      return Buffer.from(str(args[0]), "base64").toString("utf8");
    case "sha256sum":
      return createHash("sha256").update(str(args[0]), "utf8").digest("hex");
    default:
      throw new Error(`template: unsupported function ${fn}`);
  }
}

function evalTerm(t: Term, ctx: Ctx, dot: unknown, scope: Scope): unknown {
  switch (t.t) {
    case "lit":
      return t.v;
    case "field":
      return field(dot, t.path, "." + t.path.join("."));
    case "var":
      return field(getVar(scope, t.name), t.path, t.name);
    case "sub":
      return evalPipeline(t.pipe, ctx, dot, scope);
    case "ident":
      throw new Error(`template: function ${t.name} used as a value`);
  }
}

function evalPipeline(p: Pipeline, ctx: Ctx, dot: unknown, scope: Scope): unknown {
  let value: unknown;
  p.cmds.forEach((cmd, n) => {
    const [head, ...rest] = cmd;
    const piped = n > 0 ? [value] : [];
    if (head.t === "ident") {
      value = call(head.name, [...rest.map((a) => evalTerm(a, ctx, dot, scope)), ...piped], ctx);
    } else {
      if (rest.length || piped.length) throw new Error("template: only a function takes arguments");
      value = evalTerm(head, ctx, dot, scope);
    }
  });
  if (p.decl) {
    if (p.decl.op === ":=") scope.vars.set(p.decl.name, value);
    else setVar(scope, p.decl.name, value);
    return undefined; // a declaration prints nothing
  }
  return value;
}

function run(nodes: Node[], ctx: Ctx, dot: unknown, scope: Scope): string {
  return nodes
    .map((n) => {
      switch (n.kind) {
        case "text":
          return n.text;
        case "expr":
          return str(evalPipeline(parsePipeline(n.pipe), ctx, dot, scope));
        case "if": {
          const inner: Scope = { vars: new Map(), parent: scope };
          const cond = evalPipeline(parsePipeline(n.pipe), ctx, dot, inner);
          return run(truthy(cond) ? n.then : n.else, ctx, dot, inner);
        }
        case "range": {
          const list = evalPipeline(parsePipeline(n.pipe), ctx, dot, scope);
          // Go ranges over a map in key order.
          const items = Array.isArray(list)
            ? list
            : list && typeof list === "object"
              ? Object.keys(list)
                  .sort()
                  .map((k) => (list as Record<string, unknown>)[k])
              : [];
          return items.map((d) => run(n.body, ctx, d, { vars: new Map(), parent: scope })).join("");
        }
      }
    })
    .join("");
}

export interface ChartFile {
  name: string;
  src: string;
}

/**
 * Renders every file of a chart as Helm does: the `define`s of all files are visible everywhere, files whose
 * name starts with `_` render nothing, and all files share one `.Values` (so `set` on it is seen by the files
 * rendered after). Returns the output of each rendered file, in the order given.
 */
export function renderChart(
  files: ChartFile[],
  values: unknown,
  release = { Name: "r", Namespace: "default" },
  opts: RenderOptions = {},
): ChartFile[] {
  const defines = new Map<string, Node[]>();
  const parsed = files.map((f) => ({ name: f.name, nodes: parse(tokenize(f.src), defines) }));
  const root = { Values: values, Release: release };
  const ctx: Ctx = { root, defines, opts };
  return parsed
    .filter((f) => !f.name.split("/").pop()!.startsWith("_"))
    .map((f) => ({ name: f.name, src: run(f.nodes, ctx, root, { vars: new Map([["$", root]]) }) }));
}

export function renderTemplate(
  src: string,
  values: unknown,
  release = { Name: "r", Namespace: "default" },
  opts: RenderOptions = {},
): string {
  return renderChart([{ name: "t.yaml", src }], values, release, opts)[0].src;
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
