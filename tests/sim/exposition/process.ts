// Families every Python model server's page carries besides its own: prometheus_client's process and GC
// collectors, and (vLLM's API server) prometheus-fastapi-instrumentator's HTTP metrics. They make a page
// as long as a real one; values are plausible for a GPU server process and grow with simulated uptime.
import { Histogram, type Labels, PromWriter } from "./prom-text";

export function writePythonProcess(w: PromWriter, uptimeS: number, startEpochS: number, requests: number): void {
  const gens = (f: (g: number) => number) =>
    [0, 1, 2].map((g) => ({ labels: [["generation", String(g)]] as Labels, value: f(g) }));
  w.counter(
    "python_gc_objects_collected",
    "Objects collected during gc",
    gens((g) => Math.round((12000 + requests * 3) / (g + 1) ** 2)),
  );
  w.counter(
    "python_gc_objects_uncollectable",
    "Uncollectable objects found during GC",
    gens(() => 0),
  );
  w.counter(
    "python_gc_collections",
    "Number of times this generation was collected",
    gens((g) => Math.round((900 + uptimeS * 2) / (g + 1) ** 3)),
  );
  w.gauge("python_info", "Python platform information", [
    {
      labels: [
        ["implementation", "CPython"],
        ["major", "3"],
        ["minor", "12"],
        ["patchlevel", "11"],
        ["version", "3.12.11"],
      ],
      value: 1,
    },
  ]);
  w.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", [{ labels: [], value: 4.1e10 }]);
  w.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", [
    { labels: [], value: 3.2e9 + Math.min(requests, 1e5) * 2048 },
  ]);
  w.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", [
    { labels: [], value: Math.round(startEpochS * 100) / 100 },
  ]);
  w.counter("process_cpu_seconds", "Total user and system CPU time spent in seconds.", [
    { labels: [], value: Math.round((35 + uptimeS * 0.9) * 100) / 100 },
  ]);
  w.gauge("process_open_fds", "Number of open file descriptors.", [{ labels: [], value: 97 }]);
  w.gauge("process_max_fds", "Maximum number of open file descriptors.", [{ labels: [], value: 1048576 }]);
}

const HIGHR_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60,
];

interface HandlerStats {
  count: number;
  reqBytes: number;
  resBytes: number;
  byStatus: Map<string, number>;
  duration: Histogram;
}

/** prometheus-fastapi-instrumentator's metrics, fed by the pod's HTTP server. */
export class HttpInstrumentation {
  private readonly handlers = new Map<string, HandlerStats>();
  private readonly highr = new Histogram(HIGHR_BUCKETS);

  observe(handler: string, method: string, status: number, reqBytes: number, resBytes: number, seconds: number): void {
    const key = `${method} ${handler}`;
    let h = this.handlers.get(key);
    if (!h) {
      h = { count: 0, reqBytes: 0, resBytes: 0, byStatus: new Map(), duration: new Histogram([0.1, 0.5, 1]) };
      this.handlers.set(key, h);
    }
    h.count++;
    h.reqBytes += reqBytes;
    h.resBytes += resBytes;
    const group = `${Math.floor(status / 100)}xx`;
    h.byStatus.set(group, (h.byStatus.get(group) ?? 0) + 1);
    h.duration.observe(seconds);
    this.highr.observe(seconds);
  }

  write(w: PromWriter): void {
    const entries = [...this.handlers].map(([key, h]) => ({
      method: key.split(" ")[0],
      handler: key.slice(key.indexOf(" ") + 1),
      h,
    }));
    w.counter(
      "http_requests",
      "Total number of requests by method, status and handler.",
      entries.flatMap(({ method, handler, h }) =>
        [...h.byStatus].map(([status, n]) => ({
          labels: [
            ["handler", handler],
            ["method", method],
            ["status", status],
          ] as Labels,
          value: n,
        })),
      ),
    );
    w.summary(
      "http_request_size_bytes",
      "Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ",
      entries.map(({ handler, h }) => ({ labels: [["handler", handler]] as Labels, count: h.count, sum: h.reqBytes })),
    );
    w.summary(
      "http_response_size_bytes",
      "Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ",
      entries.map(({ handler, h }) => ({ labels: [["handler", handler]] as Labels, count: h.count, sum: h.resBytes })),
    );
    w.histogram(
      "http_request_duration_highr_seconds",
      "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
      [{ labels: [], hist: this.highr }],
    );
    w.histogram(
      "http_request_duration_seconds",
      "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
      entries.map(({ method, handler, h }) => ({
        labels: [
          ["handler", handler],
          ["method", method],
        ] as Labels,
        hist: h.duration,
      })),
    );
  }
}
