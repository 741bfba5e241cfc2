// The general-purpose parser the benchmark and tests compare against ships no types.
declare module "parse-prometheus-text-format" {
  interface Metric {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  interface Family {
    name: string;
    help: string;
    type: string;
    metrics: Metric[];
  }
  export default function parsePrometheusTextFormat(text: string): Family[];
}
