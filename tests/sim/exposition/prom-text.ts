// Prometheus text exposition (format 0.0.4), written by hand in the two dialects the simulated servers
// show: Python's prometheus_client (vLLM, SGLang, trtllm-serve: floats as "1.0", counters named *_total,
// optional *_created series) and prometheus-cpp (Triton: integers without a fraction, no *_created).

export type Labels = readonly (readonly [string, string])[];

export type Dialect = "python" | "cpp";

/** Fixed-bucket histogram (non-cumulative counts; cumulated on render). */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Array(buckets.length + 1).fill(0);
  }
  observe(v: number): void {
    let i = 0;
    while (i < this.buckets.length && v > this.buckets[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const escapeHelp = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

export class PromWriter {
  private readonly parts: string[] = [];
  constructor(
    readonly dialect: Dialect,
    private readonly createdSeconds: number | null = null,
  ) {}

  value(v: number): string {
    if (Number.isNaN(v)) return "NaN";
    if (v === Infinity) return "+Inf";
    if (v === -Infinity) return "-Inf";
    if (this.dialect === "cpp") return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e16) return `${v}.0`;
    return String(v);
  }

  private bucketLabel(b: number): string {
    if (b === Infinity) return "+Inf";
    return this.dialect === "python" ? this.value(b) : String(b);
  }

  private line(name: string, labels: Labels, v: number): void {
    const l = labels.length === 0 ? "" : `{${labels.map(([k, x]) => `${k}="${escapeLabel(x)}"`).join(",")}}`;
    this.parts.push(`${name}${l} ${this.value(v)}\n`);
  }

  private head(name: string, type: string, help: string): void {
    this.parts.push(`# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`);
  }

  gauge(name: string, help: string, series: readonly { labels: Labels; value: number }[]): void {
    this.head(name, "gauge", help);
    for (const s of series) this.line(name, s.labels, s.value);
  }

  /** A counter; `name` without the _total suffix (prometheus_client adds it, and a *_created gauge). */
  counter(name: string, help: string, series: readonly { labels: Labels; value: number }[]): void {
    const total = this.dialect === "python" ? `${name}_total` : name;
    this.head(total, "counter", help);
    for (const s of series) this.line(total, s.labels, s.value);
    this.created(
      name,
      help,
      series.map((s) => s.labels),
    );
  }

  histogram(name: string, help: string, series: readonly { labels: Labels; hist: Histogram }[]): void {
    this.head(name, "histogram", help);
    for (const { labels, hist } of series) {
      let cumulative = 0;
      hist.buckets.forEach((b, i) => {
        cumulative += hist.counts[i];
        this.line(`${name}_bucket`, [...labels, ["le", this.bucketLabel(b)]], cumulative);
      });
      this.line(`${name}_bucket`, [...labels, ["le", "+Inf"]], hist.count);
      this.line(`${name}_count`, labels, hist.count);
      this.line(`${name}_sum`, labels, hist.sum);
    }
    this.created(
      name,
      help,
      series.map((s) => s.labels),
    );
  }

  /** A summary with count and sum only (what prometheus_client's Summary exports). */
  summary(name: string, help: string, series: readonly { labels: Labels; count: number; sum: number }[]): void {
    this.head(name, "summary", help);
    for (const s of series) {
      this.line(`${name}_count`, s.labels, s.count);
      this.line(`${name}_sum`, s.labels, s.sum);
    }
    this.created(
      name,
      help,
      series.map((s) => s.labels),
    );
  }

  private created(name: string, help: string, labels: readonly Labels[]): void {
    if (this.dialect !== "python" || this.createdSeconds === null || labels.length === 0) return;
    this.head(`${name}_created`, "gauge", help);
    for (const l of labels) this.line(`${name}_created`, l, this.createdSeconds);
  }

  text(): string {
    return this.parts.join("");
  }
}

/**
 * The page prometheus_client answers to `?name[]=...` (its restricted registry): only the samples whose
 * name is listed (counters need their `_total`, histograms their `_bucket`, `_sum`, `_count`), and the HELP
 * and TYPE lines of the families that keep at least one.
 */
export function restrictToSamples(page: string, names: ReadonlySet<string>): string {
  const out: string[] = [];
  let head: string[] = [];
  let headShown = false;
  for (const line of page.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("# HELP ")) {
      head = [line];
      headShown = false;
    } else if (line.startsWith("#")) {
      head.push(line);
    } else {
      const end = line.search(/[{ ]/);
      if (!names.has(end < 0 ? line : line.slice(0, end))) continue;
      if (!headShown) out.push(...head);
      headShown = true;
      out.push(line);
    }
  }
  return out.length === 0 ? "" : out.join("\n") + "\n";
}

/** vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max. */
export function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let e = 1; ; e *= 10)
    for (const m of [1, 2, 5]) {
      if (m * e > max) return out;
      out.push(m * e);
    }
}
