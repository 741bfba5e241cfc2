// The HTTP side of the emulator: listeners from the bootstrap, each request driven through the wasm
// filter (when configured) and then Envoy's router: route match on the headers as the filter left them,
// upstream host from the route's cluster, streamed request and response bodies (SSE included).
import http from "node:http";
import { randomUUID } from "node:crypto";
import { lookup } from "node:dns/promises";
import { isIP, AddressInfo, Socket } from "node:net";
import { Bootstrap, Cluster, Listener, loadBootstrap, BootstrapError } from "./bootstrap";
import { createHost, Host, EnvoyProcess, ClusterSpec } from "./host";
import { HttpStream, StreamSink } from "./stream";
import { Pairs } from "./pairs";
import { ClusterPicker, matchRoute } from "./router";

export interface GatewayOptions {
  bootstrap: Bootstrap | string;
  concurrency?: number;
  logLevel?: string;
  onLog?: (level: string, message: string, worker: number) => void;
  /** Overrides the wasm filename of every listener (tests). */
  wasmFile?: string;
}

const CONNECT_REFUSED =
  "remote connection failure, transport failure reason: delayed connect error: Connection refused";

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"]);

/** The parts of a stream the gateway drives; the filter stream or a pass-through without a filter. */
interface FilterChain {
  sendRequestHeaders(h: Pairs, eos: boolean): unknown;
  sendRequestData(c: Uint8Array, eos: boolean): unknown;
  sendResponseHeaders(h: Pairs, eos: boolean): unknown;
  sendResponseData(c: Uint8Array, eos: boolean): unknown;
  sendResponseTrailers(t: Pairs): unknown;
  finish(): void;
}

class PassThrough implements FilterChain {
  constructor(private sink: StreamSink) {}
  sendRequestHeaders(h: Pairs, eos: boolean) {
    this.sink.requestHeaders?.(h, eos);
  }
  sendRequestData(c: Uint8Array, eos: boolean) {
    this.sink.requestData?.(c, eos);
  }
  sendResponseHeaders(h: Pairs, eos: boolean) {
    this.sink.responseHeaders?.(h, eos);
  }
  sendResponseData(c: Uint8Array, eos: boolean) {
    this.sink.responseData?.(c, eos);
  }
  sendResponseTrailers(t: Pairs) {
    this.sink.responseTrailers?.(t);
  }
  finish() {}
}

export interface RunningListener {
  name: string;
  host: string;
  port: number;
  wasmHost: Host | null;
}

export class Gateway {
  readonly process = new EnvoyProcess();
  readonly listeners: RunningListener[] = [];
  private servers: http.Server[] = [];
  private pickers = new Map<string, ClusterPicker>();
  private agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
  private bootstrap!: Bootstrap;
  private sockets = new Set<Socket>();

  constructor(private options: GatewayOptions) {}

  async start(): Promise<RunningListener[]> {
    this.bootstrap =
      typeof this.options.bootstrap === "string" ? loadBootstrap(this.options.bootstrap) : this.options.bootstrap;
    for (const c of this.bootstrap.clusters.values()) {
      await this.resolveEndpoints(c);
      this.pickers.set(c.name, new ClusterPicker(c));
    }
    const clusters: Record<string, ClusterSpec> = {};
    for (const c of this.bootstrap.clusters.values()) {
      clusters[c.name] = { endpoints: c.endpoints.map((e) => ({ host: e.address, port: e.port })) };
    }
    for (const l of this.bootstrap.listeners) {
      let wasmHost: Host | null = null;
      if (l.wasm) {
        wasmHost = createHost({
          wasm: this.options.wasmFile ?? l.wasm.filename,
          rootId: l.wasm.rootId,
          vmId: l.wasm.vmId,
          name: l.wasm.name,
          configuration: l.wasm.configuration,
          vmConfiguration: l.wasm.vmConfiguration,
          failOpen: l.wasm.failOpen,
          allowOnHeadersStopIteration: l.wasm.allowOnHeadersStopIteration,
          concurrency: this.options.concurrency ?? 1,
          logLevel: this.options.logLevel ?? "info",
          onLog: this.options.onLog,
          clusters,
          process: this.process,
        });
      }
      const server = http.createServer({ keepAlive: true, requestTimeout: 0, headersTimeout: 60_000 });
      server.keepAliveTimeout = 60_000;
      let nextWorker = 0;
      const workers = wasmHost?.concurrency ?? 1;
      server.on("connection", (s: Socket) => {
        // Envoy hands each connection to one worker; its streams run in that worker's VM.
        (s as Socket & { worker?: number }).worker = nextWorker++ % workers;
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
      });
      server.on("request", (req, res) => this.handle(l, wasmHost, req, res));
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(l.address.port, l.address.address, () => resolve());
      });
      this.servers.push(server);
      const a = server.address() as AddressInfo;
      this.listeners.push({ name: l.name, host: a.address, port: a.port, wasmHost });
    }
    return this.listeners;
  }

  async close(): Promise<void> {
    for (const l of this.listeners) l.wasmHost?.close();
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.agent.destroy();
  }

  private async resolveEndpoints(c: Cluster): Promise<void> {
    const out = [];
    for (const e of c.endpoints) {
      if (isIP(e.address)) {
        out.push(e);
        continue;
      }
      if (c.type === "STATIC")
        throw new BootstrapError(
          `static_resources.clusters[${c.name}]: STATIC endpoint ${e.address} must be an IP address (use STRICT_DNS for names)`,
        );
      const addrs = await lookup(e.address, { all: true, family: 4 }).catch(() => []);
      if (c.type === "LOGICAL_DNS") {
        if (addrs[0]) out.push({ address: addrs[0].address, port: e.port });
      } else for (const a of addrs) out.push({ address: a.address, port: e.port });
    }
    c.endpoints = out;
  }

  private handle(l: Listener, wasmHost: Host | null, req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket as Socket & { worker?: number };
    const headers: Pairs = [
      [":method", req.method ?? "GET"],
      [":path", req.url ?? "/"],
      [":authority", req.headers.host ?? ""],
      [":scheme", "http"],
    ];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const k = req.rawHeaders[i].toLowerCase();
      // header_mutation filters before the wasm filter remove what the client may not set.
      if (!HOP_BY_HOP.has(k) && !l.removeRequestHeaders.includes(k)) headers.push([k, req.rawHeaders[i + 1]]);
    }
    // Envoy's connection manager adds these before any filter runs.
    if (!req.headers["x-request-id"]) headers.push(["x-request-id", randomUUID()]);
    if (!req.headers["x-forwarded-proto"]) headers.push(["x-forwarded-proto", "http"]);
    const hasBody =
      req.headers["transfer-encoding"] !== undefined ||
      (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");

    let upstream: http.ClientRequest | null = null;
    let release: (() => void) | null = null;
    let responseStarted = false;
    let finished = false;
    let routeTimer: NodeJS.Timeout | null = null;
    const started = Date.now();

    const finish = () => {
      if (finished) return;
      finished = true;
      if (routeTimer) clearTimeout(routeTimer);
      release?.();
      chain.finish();
    };
    const localReply = (status: number, body: string) => {
      // Router replies go back through the filter's response path, as in Envoy.
      queueMicrotask(() => {
        if (responseStarted || finished) return;
        upstream?.destroy();
        upstream = null;
        chain.sendResponseHeaders(
          [
            [":status", String(status)],
            ["content-length", String(Buffer.byteLength(body))],
            ...(body ? ([["content-type", "text/plain"]] as Pairs) : []),
          ],
          body.length === 0,
        );
        if (body.length) chain.sendResponseData(Buffer.from(body), true);
      });
    };

    const sink: StreamSink = {
      requestHeaders: (h, eos) => {
        const route = matchRoute(l.virtualHosts, h);
        if (!route) return localReply(404, "");
        if (route.direct) return localReply(route.direct.status, route.direct.body);
        const picker = this.pickers.get(route.cluster!)!;
        const picked = picker.pick(h);
        if (!picked) return localReply(503, "no healthy upstream");
        release = picked.done;
        // An ORIGINAL_DST host with port 0 exists for Envoy; connecting to it is refused. (Node would
        // silently take port 0 as the default port 80, so it never reaches http.request.)
        if (picked.host.port === 0)
          return localReply(
            503,
            `upstream connect error or disconnect/reset before headers. reset reason: ${CONNECT_REFUSED}`,
          );
        const out: Record<string, string | string[]> = {};
        let method = "GET",
          path = "/",
          authority = "";
        for (const [k, v] of h) {
          if (k === ":method") method = v;
          else if (k === ":path") path = v;
          else if (k === ":authority") authority = v;
          else if (!k.startsWith(":")) {
            const cur = out[k];
            out[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
          }
        }
        out.host = authority;
        const up = http.request({
          host: picked.host.address,
          port: picked.host.port,
          method,
          path,
          headers: out,
          agent: this.agent,
        });
        upstream = up;
        const cluster = picker.cluster;
        up.on("socket", (s: Socket) => {
          if (!s.connecting) return;
          const t = setTimeout(
            () => up.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })),
            cluster.connectTimeoutMs,
          );
          s.once("connect", () => clearTimeout(t));
          s.once("close", () => clearTimeout(t));
        });
        up.on("response", (ur) => {
          if (upstream !== up) {
            ur.resume();
            return;
          }
          const rh: Pairs = [[":status", String(ur.statusCode ?? 502)]];
          for (let i = 0; i < ur.rawHeaders.length; i += 2) {
            const k = ur.rawHeaders[i].toLowerCase();
            if (!HOP_BY_HOP.has(k)) rh.push([k, ur.rawHeaders[i + 1]]);
          }
          rh.push(["x-envoy-upstream-service-time", String(Date.now() - started)]);
          chain.sendResponseHeaders(rh, false);
          ur.on("data", (c: Buffer) => chain.sendResponseData(c, false));
          ur.on("end", () => {
            if (ur.rawTrailers.length) {
              const t: Pairs = [];
              for (let i = 0; i < ur.rawTrailers.length; i += 2)
                t.push([ur.rawTrailers[i].toLowerCase(), ur.rawTrailers[i + 1]]);
              chain.sendResponseTrailers(t);
            } else chain.sendResponseData(new Uint8Array(0), true);
          });
          // An upstream reset after the response started resets the client connection, as Envoy does.
          ur.on("aborted", () => {
            res.destroy();
            finish();
          });
          ur.on("error", () => {
            res.destroy();
            finish();
          });
        });
        up.on("error", (e: NodeJS.ErrnoException) => {
          if (upstream !== up) return;
          if (responseStarted) {
            res.destroy();
            finish();
            return;
          }
          const reason =
            e.code === "ECONNREFUSED"
              ? CONNECT_REFUSED
              : e.code === "ETIMEDOUT"
                ? "connection timeout"
                : "connection termination";
          localReply(503, `upstream connect error or disconnect/reset before headers. reset reason: ${reason}`);
        });
        const armTimeout = () => {
          if (route.timeoutMs > 0)
            routeTimer = setTimeout(() => {
              if (!responseStarted) localReply(504, "upstream request timeout");
              else {
                res.destroy();
                finish();
              }
            }, route.timeoutMs);
        };
        if (eos) {
          up.end();
          armTimeout();
        }
        (up as http.ClientRequest & { armTimeout?: () => void }).armTimeout = armTimeout;
      },
      requestData: (c, eos) => {
        const up = upstream;
        if (!up) return;
        if (c.length) up.write(c);
        if (eos) {
          up.end();
          (up as http.ClientRequest & { armTimeout?: () => void }).armTimeout?.();
        }
      },
      requestTrailers: () => {
        const up = upstream;
        if (up) {
          up.end();
          (up as http.ClientRequest & { armTimeout?: () => void }).armTimeout?.();
        }
      },
      responseHeaders: (h, eos) => {
        if (res.headersSent || finished) return;
        responseStarted = true;
        let status = 200;
        const flat: string[] = [];
        for (const [k, v] of h) {
          if (k === ":status") status = Number(v);
          else if (!k.startsWith(":")) flat.push(k, v);
        }
        flat.push("server", "envoy");
        res.writeHead(status, flat);
        if (typeof (res as unknown as { flushHeaders?: () => void }).flushHeaders === "function") res.flushHeaders();
        if (eos) {
          res.end();
        }
      },
      responseData: (c, eos) => {
        if (finished || res.writableEnded) return;
        if (c.length) res.write(c);
        if (eos) res.end();
      },
      responseTrailers: () => {
        if (!res.writableEnded) res.end();
      },
      reset: () => {
        upstream?.destroy();
        res.destroy();
        finish();
      },
    };

    const chain: FilterChain = wasmHost
      ? wasmHost.openStream({
          worker: socket.worker ?? 0,
          sink,
          properties: {
            "source.address": `${socket.remoteAddress}:${socket.remotePort}`,
            "source.port": BigInt(socket.remotePort ?? 0),
            "destination.address": `${socket.localAddress}:${socket.localPort}`,
            "destination.port": BigInt(socket.localPort ?? 0),
          },
        })
      : new PassThrough(sink);

    req.on("error", () => {
      upstream?.destroy();
      finish();
    });
    res.on("error", () => {
      upstream?.destroy();
      finish();
    });
    res.on("finish", finish);
    res.on("close", () => {
      if (!res.writableFinished) {
        upstream?.destroy();
      }
      finish();
    });

    chain.sendRequestHeaders(headers, !hasBody);
    if (!hasBody) {
      req.resume();
      return;
    }
    // Hold one chunk back so the last chunk carries end_of_stream, as Envoy's codec delivers it.
    let held: Buffer | null = null;
    req.on("data", (c: Buffer) => {
      if (held) chain.sendRequestData(held, false);
      held = c;
    });
    req.on("end", () => {
      chain.sendRequestData(held ?? new Uint8Array(0), true);
      held = null;
    });
  }
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const g = new Gateway(options);
  try {
    await g.start();
  } catch (e) {
    await g.close().catch(() => {});
    throw e;
  }
  return g;
}

export type { HttpStream };
