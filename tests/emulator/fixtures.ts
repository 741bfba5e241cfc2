// Shared fixtures for the emulator tests and benchmark: small upstreams, a temp copy of envoy/envoy.yaml
// rewired to loopback ports, and snapshot delivery into shared data as contract 2 describes.
import http from "node:http";
import { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { encodeSnapshot } from "../../companion/snapshot";
import { DEFAULT_PROFILE } from "../../companion/profile-config";
import { SharedDataView } from "../../envoy/emulator/host";
import { publishSnapshot } from "../helpers/filter-contract";

export interface Upstream {
  name: string;
  port: number;
  address: string;
  hits: number;
  close(): Promise<void>;
}

/** Answers JSON {upstream, path, destination, body}; /sse streams three events 30 ms apart. */
export async function startUpstream(name: string): Promise<Upstream> {
  const up: Upstream = { name, port: 0, address: "", hits: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    up.hits++;
    if (req.url === "/reset") {
      // starts a response, then drops the connection
      res.writeHead(200, { "content-length": "1000" });
      res.write("partial");
      setTimeout(() => res.destroy(), 10);
      return;
    }
    if (req.url === "/sse") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      let n = 0;
      const t = setInterval(() => {
        res.write(`data: event-${n}\n\n`);
        if (++n === 3) {
          clearInterval(t);
          res.end();
        }
      }, 30);
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.stringify({
        upstream: name,
        path: req.url,
        destination: req.headers["x-gateway-destination-endpoint"] ?? null,
        body: Buffer.concat(chunks).toString(),
      });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  up.port = (server.address() as AddressInfo).port;
  up.address = `127.0.0.1:${up.port}`;
  up.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return up;
}

type Y = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export type FallbackLbPolicy = "ROUND_ROBIN" | "LEAST_REQUEST" | "RANDOM";

const LB_EXTENSION: Record<FallbackLbPolicy, [string, string]> = {
  ROUND_ROBIN: ["envoy.load_balancing_policies.round_robin", "round_robin.v3.RoundRobin"],
  LEAST_REQUEST: ["envoy.load_balancing_policies.least_request", "least_request.v3.LeastRequest"],
  RANDOM: ["envoy.load_balancing_policies.random", "random.v3.Random"],
};

/** A LoadBalancingPolicy naming one of Envoy's plain load balancer extensions. */
export function lbPolicy(policy: FallbackLbPolicy): Y {
  const [name, type] = LB_EXTENSION[policy];
  return {
    policies: [
      {
        typed_extension_config: {
          name,
          typed_config: { "@type": `type.googleapis.com/envoy.extensions.load_balancing_policies.${type}` },
        },
      },
    ],
  };
}

/** The endpoints of a cluster as load_assignment lists them. */
export function loadAssignment(name: string, endpoints: { address: string; port: number }[]): Y {
  return {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: endpoints.map((e) => ({
          endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
        })),
      },
    ],
  };
}

/**
 * envoy/envoy.yaml with the listener on 127.0.0.1:0, the inference-pool cluster's hosts (the pods:
 * `poolPorts` on 127.0.0.1 and/or `poolEndpoints`), the companion at `companionPort`; `fallbackLbPolicy`
 * replaces the override_host fallback policy; `edit` may change anything else. Returns the temp file path.
 */
export function tempBootstrap(opts: {
  /** Ports of the pods on 127.0.0.1 (the inference-pool cluster's hosts). */
  poolPorts?: number[];
  /** Pods anywhere (several loopback IPs). */
  poolEndpoints?: { address: string; port: number }[];
  /** The fallback policy of the pool's override_host (requests without a destination header). */
  fallbackLbPolicy?: FallbackLbPolicy;
  /** The companion replicas' ports (the companion cluster's endpoints). */
  companionPort: number | number[];
  withFilter?: boolean;
  configuration?: object;
  edit?: (doc: Y) => void;
}): string {
  const doc = parse(readFileSync("envoy/envoy.yaml", "utf8")) as Y;
  const l = doc.static_resources.listeners[0];
  l.address.socket_address = { address: "127.0.0.1", port_value: 0 };
  const hcm = l.filter_chains[0].filters[0].typed_config;
  // Without the filter: a plain gateway (the header_mutation that guards the filter's headers goes too).
  if (opts.withFilter === false)
    hcm.http_filters = hcm.http_filters.filter((f: Y) => f.name === "envoy.filters.http.router");
  else {
    // These tests exercise the gateway: unless told otherwise the filter fails open (no snapshot -> the
    // pool's fallback policy) and a delivered snapshot never goes stale during a long test.
    const wasm = hcm.http_filters.find((f: Y) => f.name === "envoy.filters.http.wasm");
    const shipped = JSON.parse(wasm.typed_config.config.configuration.value);
    wasm.typed_config.config.configuration.value = JSON.stringify(
      opts.configuration ?? { ...shipped, failureMode: "FailOpen", stalenessLimitMs: 3_600_000 },
    );
  }
  const pool = [
    ...(opts.poolPorts ?? []).map((port) => ({ address: "127.0.0.1", port })),
    ...(opts.poolEndpoints ?? []),
  ];
  for (const c of doc.static_resources.clusters) {
    if (c.name === "endpoint-picker-companion")
      c.load_assignment = loadAssignment(
        c.name,
        [opts.companionPort].flat().map((port) => ({ address: "127.0.0.1", port })),
      );
    if (c.name === "inference-pool") {
      c.load_assignment = loadAssignment(c.name, pool);
      if (opts.fallbackLbPolicy)
        c.load_balancing_policy.policies[0].typed_extension_config.typed_config.fallback_policy = lbPolicy(
          opts.fallbackLbPolicy,
        );
    }
  }
  opts.edit?.(doc);
  const dir = mkdtempSync(join(tmpdir(), "emulator-"));
  const file = join(dir, "envoy.yaml");
  writeFileSync(file, stringify(doc));
  return file;
}

/** Writes a snapshot listing `addresses` into shared data as the filter's fetcher would. */
export function deliverSnapshot(shared: SharedDataView, addresses: string[], version = 1n): void {
  const blob = encodeSnapshot({
    version,
    generatedAtMs: Date.now(),
    profile: DEFAULT_PROFILE,
    baseModels: [],
    endpoints: addresses.map((address) => ({
      address,
      stale: false,
      error: false,
      queued: 0,
      running: 0,
      kvUsage: 0.1,
      lora: null,
    })),
  });
  publishSnapshot(shared, new Uint8Array(blob), Date.now());
}

/** A port nothing listens on. */
export async function deadPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

export async function get(
  port: number,
  path: string,
  headers: Record<string, string | string[]> = {},
  body?: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      { host: "127.0.0.1", port, path, method: body === undefined ? "GET" : "POST", headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        res.on("error", reject);
      },
    );
    r.on("error", reject);
    if (body !== undefined) r.write(body);
    r.end();
  });
}
