// Metric spec grammar (GIE's `queuedRequestsSpec` & co): `name{label=value,...}`.
//   spec    := name [ "{" [ matcher ("," matcher)* [","] ] "}" ]      (blanks allowed between tokens)
//   name    := [a-zA-Z_:][a-zA-Z0-9_:]*
//   matcher := label "=" value        label := [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__")
//   value   := '"' chars with \\ \" \n escapes '"'  |  bare run of anything but blanks , { } = "
// Only equality matchers: a spec names series, it does not query them. An empty spec disables the metric.

export interface MetricSpec {
  /** Sample name as it appears at the start of an exposition line. */
  name: string;
  /** Equality matchers, in the order written. */
  labels: ReadonlyArray<readonly [string, string]>;
  /** Another spec read only when the page has no series of this one (the vLLM V0 KV-cache name). */
  fallback?: MetricSpec;
}

const isNameStart = (c: string): boolean => /[a-zA-Z_:]/.test(c);
const isNameChar = (c: string): boolean => /[a-zA-Z0-9_:]/.test(c);
const isLabelStart = (c: string): boolean => /[a-zA-Z_]/.test(c);
const isLabelChar = (c: string): boolean => /[a-zA-Z0-9_]/.test(c);
const isBlank = (c: string): boolean => c === " " || c === "\t";
const isBareValueChar = (c: string): boolean => !isBlank(c) && !',{}="\n\r'.includes(c);

export class MetricSpecError extends Error {}

/** Parses a spec; `null` for an empty (disabled) spec. Throws MetricSpecError with the exact problem. */
export function parseMetricSpec(spec: string): MetricSpec | null {
  const fail = (problem: string): never => {
    throw new MetricSpecError(`invalid metric spec ${JSON.stringify(spec)}: ${problem}`);
  };
  let i = 0;
  const skipBlanks = (): void => {
    while (i < spec.length && isBlank(spec[i])) i++;
  };
  const describe = (at: number): string =>
    at < spec.length ? `${JSON.stringify(spec[at])} at offset ${at}` : "end of spec";

  skipBlanks();
  if (i === spec.length) return null;
  if (!isNameStart(spec[i])) fail(`expected a metric name, found ${describe(i)}`);
  const nameStart = i;
  while (i < spec.length && isNameChar(spec[i])) i++;
  const name = spec.slice(nameStart, i);
  const labels: Array<readonly [string, string]> = [];
  skipBlanks();
  if (i < spec.length && spec[i] === "{") {
    i++;
    for (;;) {
      skipBlanks();
      if (i >= spec.length) fail(`missing "}" at end of spec`);
      if (spec[i] === "}") {
        i++;
        break;
      }
      if (!isLabelStart(spec[i])) fail(`expected a label name, found ${describe(i)}`);
      const labelStart = i;
      while (i < spec.length && isLabelChar(spec[i])) i++;
      const label = spec.slice(labelStart, i);
      if (label.startsWith("__")) fail(`label name "${label}" is reserved (names starting with "__")`);
      skipBlanks();
      if (spec.startsWith("!=", i) || spec.startsWith("=~", i) || spec.startsWith("!~", i)) {
        fail(`only "=" matchers are supported, label "${label}" uses "${spec.slice(i, i + 2)}"`);
      }
      if (spec[i] !== "=") fail(`expected "=" after label "${label}", found ${describe(i)}`);
      i++;
      skipBlanks();
      let value = "";
      if (spec[i] === '"') {
        i++;
        let closed = false;
        while (i < spec.length) {
          const c = spec[i++];
          if (c === '"') {
            closed = true;
            break;
          }
          if (c !== "\\") {
            value += c;
            continue;
          }
          const e = spec[i++];
          if (e === "\\" || e === '"') value += e;
          else if (e === "n") value += "\n";
          else fail(`invalid escape "\\${e ?? ""}" in the value of label "${label}"`);
        }
        if (!closed) fail(`unterminated quoted value for label "${label}"`);
      } else {
        const valueStart = i;
        while (i < spec.length && isBareValueChar(spec[i])) i++;
        if (i === valueStart) fail(`missing value for label "${label}", found ${describe(i)}`);
        value = spec.slice(valueStart, i);
      }
      if (labels.some(([l]) => l === label)) fail(`label "${label}" appears twice`);
      labels.push([label, value]);
      skipBlanks();
      if (spec[i] === ",") {
        i++;
        continue;
      }
      if (spec[i] === "}") {
        i++;
        break;
      }
      fail(
        i >= spec.length
          ? `missing "}" at end of spec`
          : `expected "," or "}" after the value of label "${label}", found ${describe(i)}`,
      );
    }
    skipBlanks();
  }
  if (i < spec.length) fail(`unexpected ${describe(i)} after the metric ${spec.includes("{") ? "selector" : "name"}`);
  return { name, labels };
}

/** The canonical text of a spec (bare values when safe, quoted otherwise), for logs and the JSON view. */
export function formatMetricSpec(spec: MetricSpec | null): string {
  if (!spec) return "";
  if (spec.labels.length === 0) return spec.name;
  const value = (v: string): string => (v.length > 0 && [...v].every(isBareValueChar) ? v : JSON.stringify(v));
  return `${spec.name}{${spec.labels.map(([l, v]) => `${l}=${value(v)}`).join(",")}}`;
}

/** True when every matcher of `spec` is satisfied by `labels`. */
export function specMatches(spec: MetricSpec, labels: Readonly<Record<string, string>>): boolean {
  for (const [name, value] of spec.labels) if (labels[name] !== value) return false;
  return true;
}
