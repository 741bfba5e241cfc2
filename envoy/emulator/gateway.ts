// The HTTP side of the emulator: listeners from the bootstrap, each request driven like Envoy's HTTP
// connection manager drives it: the HTTP/1 codec's view of the request (absolute-form URIs, CONNECT,
// trailers), the wasm filter (when configured), then Envoy's router (router-filter.ts): route match on the
// headers as the filter left them, the host from the route's cluster (upstream.ts), streamed request and
// response bodies (SSE included), retries, timeouts, and the router's local replies back through the
// filter's response path.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { lookup } from "node:dns/promises";
import { EventEmitter } from "node:events";
import { isIP, AddressInfo, Socket } from "node:net";
import { Bootstrap, Cluster, Listener, loadBootstrap, BootstrapError } from "./bootstrap";
import { createHost, Host, EnvoyProcess } from "./host";
import { HttpStream, StreamSink } from "./stream";
import { Pairs } from "./pairs";
import { matchRoute } from "./router";
import { RouterFilter } from "./router-filter";
import { RealScheduler } from "./scheduler";
import { CodeDetails, ResponseFlag, StreamInfo, newStreamInfo } from "./stream-info";
import { ClusterManager } from "./upstream";

export interface GatewayOptions {
  bootstrap: Bootstrap | string;
  concurrency?: number;
  logLevel?: string;
  onLog?: (level: string, message: string, worker: number) => void;
  /** Overrides the wasm filename of every listener (tests). */
  wasmFile?: string;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"]);

/** The parts of a stream the gateway drives; the filter stream or a pass-through without a filter. */
interface FilterChain {
  readonly info: StreamInfo;
  sendRequestHeaders(h: Pairs, eos: boolean): unknown;
  sendRequestData(c: Uint8Array, eos: boolean): unknown;
  sendRequestTrailers(t: Pairs): unknown;
  sendResponseHeaders(h: Pairs, eos: boolean): unknown;
  sendResponseData(c: Uint8Array, eos: boolean): unknown;
  sendResponseTrailers(t: Pairs): unknown;
  finish(): void;
}

class PassThrough implements FilterChain {
  readonly info = newStreamInfo();
  constructor(private sink: StreamSink) {}
  sendRequestHeaders(h: Pairs, eos: boolean) {
    this.sink.requestHeaders?.(h, eos);
  }
  sendRequestData(c: Uint8Array, eos: boolean) {
    this.sink.requestData?.(c, eos);
  }
  sendRequestTrailers(t: Pairs) {
    this.sink.requestTrailers?.(t);
  }
  sendResponseHeaders(h: Pairs, eos: boolean) {
    this.info.responseCodeDetails ??= CodeDetails.ViaUpstream;
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

/** The response side the gateway writes to: Node's ServerResponse, or a raw socket (CONNECT). */
interface Downstream extends EventEmitter {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  writeHead(status: number, headers: string[]): unknown;
  write(chunk: Uint8Array): unknown;
  end(): unknown;
  destroy(): unknown;
}

/** An HTTP/1.1 response written on a socket Node's server handed over (CONNECT); the connection closes after. */
class RawResponse extends EventEmitter implements Downstream {
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  constructor(private socket: Socket) {
    super();
    socket.on("error", () => {});
    socket.on("close", () => this.emit("close"));
  }
  writeHead(status: number, headers: string[]) {
    this.headersSent = true;
    let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Unknown"}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.socket.write(head + "connection: close\r\n\r\n");
    return this;
  }
  write(chunk: Uint8Array) {
    return this.socket.write(chunk);
  }
  end() {
    if (this.writableEnded) return this;
    this.writableEnded = true;
    this.socket.end(() => {
      this.writableFinished = true;
      this.emit("finish");
    });
    return this;
  }
  destroy() {
    this.socket.destroy();
    return this;
  }
}

export interface RunningListener {
  name: string;
  host: string;
  port: number;
  wasmHost: Host | null;
}

/** The request as Envoy's HTTP/1 codec hands it to the connection manager, or a codec error. */
function requestHead(
  l: Listener,
  req: http.IncomingMessage,
): { path: string | null; authority: string; scheme: string } | { error: string } {
  const method = req.method ?? "GET";
  const url = req.url ?? "/";
  if (method === "CONNECT") return { path: null, authority: url, scheme: "http" };
  // Origin-form (and OPTIONS *): as it is.
  if (url.startsWith("/") || (method === "OPTIONS" && url === "*") || !l.http1.allowAbsoluteUrl)
    return { path: url, authority: req.headers.host ?? "", scheme: "http" };
  // Absolute-form (allow_absolute_url, on by default): the path and the authority come from the URI (a
  // Host header is replaced), the scheme too (http or https only).
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]+)([^#]*)/.exec(url);
  if (!m) return { error: "http1.invalid_url" };
  const scheme = m[1].toLowerCase();
  if (scheme !== "http" && scheme !== "https") return { error: "http1.invalid_scheme" };
  const rest = m[3];
  return { path: rest === "" ? "/" : rest.startsWith("?") ? "/" + rest : rest, authority: m[2], scheme };
}

export class Gateway {
  readonly process = new EnvoyProcess();
  readonly listeners: RunningListener[] = [];
  /** The upstream clusters (hosts, load balancers, outlier detection), shared by the router and http calls. */
  readonly upstreams = new ClusterManager(new RealScheduler());
  private readonly scheduler = new RealScheduler();
  private servers: http.Server[] = [];
  private agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
  private bootstrap!: Bootstrap;
  private sockets = new Set<Socket>();

  constructor(private options: GatewayOptions) {}

  async start(): Promise<RunningListener[]> {
    this.bootstrap =
      typeof this.options.bootstrap === "string" ? loadBootstrap(this.options.bootstrap) : this.options.bootstrap;
    for (const c of this.bootstrap.clusters.values()) {
      await this.resolveEndpoints(c);
      this.upstreams.add(c);
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
          clusterManager: this.upstreams,
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
      // CONNECT and Upgrade: Node hands over the socket; the stream runs as any other (no upgrade_configs: the
      // request is never tunnelled) and the connection closes after the reply.
      server.on("connect", (req: http.IncomingMessage, socket: Socket) =>
        this.handle(l, wasmHost, req, new RawResponse(socket)),
      );
      server.on("upgrade", (req: http.IncomingMessage, socket: Socket) =>
        this.handle(l, wasmHost, req, new RawResponse(socket)),
      );
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
    this.upstreams.close();
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

  private handle(l: Listener, wasmHost: Host | null, req: http.IncomingMessage, res: Downstream): void {
    const socket = req.socket as Socket & { worker?: number };
    const head = requestHead(l, req);
    if ("error" in head) {
      // A codec error: Envoy answers 400 before any filter runs, and closes the connection.
      res.writeHead(400, ["content-length", "11", "content-type", "text/plain", "connection", "close"]);
      res.write(Buffer.from("Bad Request"));
      res.end();
      return;
    }
    const isConnect = head.path === null;
    const headers: Pairs = [[":method", req.method ?? "GET"]];
    if (head.path !== null) headers.push([":path", head.path]);
    headers.push([":authority", head.authority], [":scheme", head.scheme]);
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const k = req.rawHeaders[i].toLowerCase();
      // header_mutation filters before the wasm filter remove what the client may not set.
      if (!HOP_BY_HOP.has(k) && !l.removeRequestHeaders.includes(k)) headers.push([k, req.rawHeaders[i + 1]]);
    }
    // Envoy's connection manager adds these before any filter runs.
    if (!req.headers["x-request-id"]) headers.push(["x-request-id", randomUUID()]);
    if (!req.headers["x-forwarded-proto"]) headers.push(["x-forwarded-proto", "http"]);
    // CONNECT or an Upgrade without upgrade_configs: when a route matches, the connection manager refuses
    // it with a 403 (upgrade_failed) before any filter runs and closes the connection; without a route the
    // filters run and the router answers 404.
    if ((isConnect || req.headers.upgrade !== undefined) && matchRoute(l.virtualHosts, headers)) {
      res.writeHead(403, ["content-length", "0", "server", "envoy"]);
      res.end();
      return;
    }
    const hasBody =
      isConnect ||
      req.headers.upgrade !== undefined ||
      req.headers["transfer-encoding"] !== undefined ||
      (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");

    let router: RouterFilter | null = null;
    let responseStarted = false;
    let finished = false;

    const finish = () => {
      if (finished) return;
      finished = true;
      router?.onDestroy();
      chain.finish();
    };
    const resetDownstream = () => {
      res.destroy();
      finish();
    };
    /** Envoy's sendLocalReply: through the filter's response path; once the response started, a reset. */
    const localReply = (status: number, body: string, details: string) => {
      queueMicrotask(() => {
        if (finished) return;
        if (responseStarted) return resetDownstream();
        chain.info.responseCodeDetails = details;
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
        if (!route) {
          chain.info.responseFlags |= ResponseFlag.NoRouteFound;
          return localReply(404, "", CodeDetails.RouteNotFound);
        }
        if (route.direct) return localReply(route.direct.status, route.direct.body, CodeDetails.DirectResponse);
        router = new RouterFilter(
          {
            timeoutMs: route.timeoutMs,
            retryPolicy: route.retryPolicy,
            cluster: this.upstreams.get(route.cluster!)!,
            agent: this.agent,
            scheduler: this.scheduler,
            bufferLimitBytes: l.bufferLimitBytes,
          },
          {
            info: chain.info,
            encodeHeaders: (rh, reos) => {
              if (finished) return;
              chain.sendResponseHeaders(
                rh.filter(([k]) => !HOP_BY_HOP.has(k)),
                reos,
              );
            },
            encodeData: (c, deos) => {
              if (!finished) chain.sendResponseData(c, deos);
            },
            encodeTrailers: (t) => {
              if (!finished) chain.sendResponseTrailers(t);
            },
            sendLocalReply: localReply,
            resetStream: resetDownstream,
          },
        );
        router.decodeHeaders(h, eos);
      },
      requestData: (c, eos) => router?.decodeData(c, eos),
      requestTrailers: () => router?.decodeTrailers(),
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
        const flush = (res as unknown as { flushHeaders?: () => void }).flushHeaders;
        if (typeof flush === "function") flush.call(res);
        if (eos) res.end();
      },
      responseData: (c, eos) => {
        if (finished || res.writableEnded) return;
        if (c.length) res.write(c);
        if (eos) res.end();
      },
      responseTrailers: () => {
        if (!res.writableEnded) res.end();
      },
      reset: () => resetDownstream(),
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
      chain.info.responseFlags |= ResponseFlag.DownstreamConnectionTermination;
      finish();
    });
    res.on("error", () => finish());
    res.on("finish", finish);
    res.on("close", () => {
      if (!res.writableFinished) chain.info.responseFlags |= ResponseFlag.DownstreamConnectionTermination;
      finish();
    });

    chain.sendRequestHeaders(headers, !hasBody);
    // CONNECT / Upgrade: what follows the request head would be tunnel data; it is never delivered.
    if (res instanceof RawResponse) return;
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
      // Envoy's HTTP/1 codec drops request trailers unless http_protocol_options.enable_trailers is set.
      if (l.http1.enableTrailers && req.rawTrailers.length > 0) {
        const trailers: Pairs = [];
        for (let i = 0; i < req.rawTrailers.length; i += 2)
          trailers.push([req.rawTrailers[i].toLowerCase(), req.rawTrailers[i + 1]]);
        chain.sendRequestData(held ?? new Uint8Array(0), false);
        chain.sendRequestTrailers(trailers);
      } else chain.sendRequestData(held ?? new Uint8Array(0), true);
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
