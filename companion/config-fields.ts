// Typed reads of untrusted configuration objects. Every error names the field path and the value found.

export class ConfigError extends Error {}

export type Fields = Record<string, unknown>;

export const show = (value: unknown): string => {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
};

export function fail(path: string, problem: string, value?: unknown): never {
  throw new ConfigError(arguments.length >= 3 ? `${path}: ${problem}, got ${show(value)}` : `${path}: ${problem}`);
}

export const join = (path: string, key: string | number): string =>
  typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key;

export function isObject(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function asObject(value: unknown, path: string): Fields {
  if (!isObject(value)) fail(path, "must be a mapping", value);
  return value;
}

/** Refuses keys not in `known` (typos otherwise go unnoticed). */
export function onlyKeys(obj: Fields, path: string, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key))
      fail(
        join(path, key),
        known.length ? `unknown field (known fields: ${known.join(", ")})` : "unknown field (this takes no parameters)",
        obj[key],
      );
  }
}

export function optString(obj: Fields, key: string, path: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") fail(join(path, key), "must be a string", v);
  return v;
}

export function optBool(obj: Fields, key: string, path: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") fail(join(path, key), "must be true or false", v);
  return v;
}

export function optNumber(
  obj: Fields,
  key: string,
  path: string,
  check: { min?: number; minExclusive?: number; max?: number; integer?: boolean } = {},
): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  const p = join(path, key);
  if (typeof v !== "number" || !Number.isFinite(v)) fail(p, "must be a number", v);
  if (check.integer && !Number.isInteger(v)) fail(p, "must be a whole number", v);
  if (check.min !== undefined && v < check.min) fail(p, `must be at least ${check.min}`, v);
  if (check.minExclusive !== undefined && v <= check.minExclusive)
    fail(p, `must be greater than ${check.minExclusive}`, v);
  if (check.max !== undefined && v > check.max) fail(p, `must be at most ${check.max}`, v);
  return v;
}

export function optArray(obj: Fields, key: string, path: string): unknown[] | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) fail(join(path, key), "must be a list", v);
  return v;
}

const GO_DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3,
  "\u03bcs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * A Go duration (`time.ParseDuration`, what metav1.Duration fields take: "200ms", "1.5s", "1h2m", "-10s",
 * "0") in milliseconds, or null when the text is not one.
 */
export function parseGoDuration(text: string): number | null {
  const m = /^([-+]?)(.*)$/s.exec(text)!;
  if (m[2] === "0") return 0;
  if (m[2] === "") return null;
  let total = 0;
  for (let rest = m[2]; rest !== "";) {
    const part = /^(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/.exec(rest);
    if (!part) return null;
    total += Number(part[1]) * GO_DURATION_UNITS_MS[part[2]];
    rest = rest.slice(part[0].length);
  }
  return m[1] === "-" ? -total : total;
}

/** An optional Go duration field, in milliseconds; a number or malformed text is an error. */
export function optGoDuration(obj: Fields, key: string, path: string): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  const ms = typeof v === "string" ? parseGoDuration(v) : null;
  if (ms === null) fail(join(path, key), 'must be a duration such as "200ms" or "1.5s"', v);
  return ms;
}

const QUANTITY = /^([+-]?)(\d*)(?:\.(\d*))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE]([+-]?\d+))?$/;
const BINARY_SI: Readonly<Record<string, number>> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_SI: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/**
 * A Kubernetes resource quantity ("1Gi", "500M", "1k", "1.5", "2e3", or a YAML number) as the integer
 * `Quantity.Value()` gives: fractions round away from zero ("500m" is 1). Exact (decimal arithmetic), so "1.1k" is 1100.
 * Null when the text is not a quantity or the value is beyond an int64.
 */
export function parseQuantity(value: number | string): number | null {
  if (typeof value === "number") return Number.isFinite(value) ? Math.sign(value) * Math.ceil(Math.abs(value)) : null;
  const m = QUANTITY.exec(value.trim());
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) return null;
  const [, sign, whole, frac = "", suffix = "", exponent] = m;
  let digits = BigInt((whole + frac).replace(/^0+(?=.)/, "") || "0");
  let pow10 = -frac.length;
  let pow2 = 0;
  if (exponent !== undefined) pow10 += Number(exponent);
  else if (suffix in BINARY_SI) pow2 = BINARY_SI[suffix];
  else if (suffix in DECIMAL_SI) pow10 += DECIMAL_SI[suffix];
  if (digits === 0n) return 0;
  if (pow10 > 40) return null; // far beyond an int64
  digits <<= BigInt(pow2);
  let v: bigint;
  if (pow10 >= 0) v = digits * 10n ** BigInt(pow10);
  else {
    const d = 10n ** BigInt(-pow10);
    v = (digits + d - 1n) / d; // Value() rounds a fraction up (away from zero)
  }
  if (v > 0x7fff_ffff_ffff_ffffn) return null;
  return sign === "-" ? -Number(v) : Number(v);
}

/**
 * An optional quantity field (a string or a number), as an integer; negative is an error ("must be
 * non-negative", as llm-d-router's loader says), and so is a value above `max`.
 */
export function optQuantity(obj: Fields, key: string, path: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  const p = join(path, key);
  const n = typeof v === "number" || typeof v === "string" ? parseQuantity(v) : null;
  if (n === null) fail(p, 'must be a Kubernetes quantity such as "1Gi", "500M", "1k" or a whole number', v);
  if (n < 0) fail(p, "must be non-negative", v);
  if (n > max) fail(p, `must be at most ${max}`, v);
  return n;
}
