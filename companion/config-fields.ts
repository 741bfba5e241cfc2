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
