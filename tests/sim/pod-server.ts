// One simulated model-server pod over real HTTP: the OpenAI endpoints (streaming SSE or not), /v1/models,
// /health and the engine's /metrics, in front of an Engine on a (real, possibly sped-up) clock. Every
// response carries x-sim-pod and x-sim-address so a test can see where a request landed, and an inference
// response x-sim-model, the model the request asked the pod for (after any rewrite on the way).
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Clock } from "./clock";
import { Engine, type RequestResult } from "./engine";
import { type Exposition, createExposition } from "./exposition/index";
import { restrictToSamples } from "./exposition/prom-text";
import {
  ApiError,
  type Api,
  type ParsedRequest,
  chunkBody,
  modelsBody,
  parseRequest,
  responseBody,
  sequenceFor,
  usage,
  usageChunk,
} from "./openai";
import type { EngineKind, EngineProfile } from "./profile";
import { CHARS_PER_TOKEN } from "./text";

export interface PodOptions {
  name: string;
  kind: EngineKind;
  profile: EngineProfile;
  clock: Clock;
  host?: string;
  /** 0 = any free port. */
  port?: number;
  seed?: number | string;
}

const ROUTES: Record<string, Api> = { "/v1/completions": "completions", "/v1/chat/completions": "chat" };
const MAX_BODY = 16 * 1024 * 1024;
/** Inference requests whose headers a pod keeps. */
const RECEIVED_KEPT = 1000;

export class SimPod {
  readonly name: string;
  readonly kind: EngineKind;
  readonly engine: Engine;
  readonly exposition: Exposition;
  private readonly server: http.Server;
  private readonly clock: Clock;
  private readonly profile: EngineProfile;
  private nextId = 0;
  private bound: AddressInfo | null = null;
  /**
   * Fault injection for the failure tests: a status to answer every inference request with at once (its
   * /metrics stay healthy, as a pod whose engine is broken but whose server is up); null: serve normally.
   */
  failWith: number | null = null;
  /**
   * What the metrics page does with `?name[]=`: honour it as prometheus_client's WSGI app and ASGI app
   * since 0.23 do (the Python engines), ignore it (Triton's C++ server, prometheus_client's ASGI app before
   * 0.23), or answer an empty page (its multiprocess collector before 0.25).
   */
  nameFilter: "honour" | "ignore" | "empty";
  /**
   * The headers of the inference requests this pod received, oldest first (the last RECEIVED_KEPT), e.g. the
   * `x-prefiller-host-port` a decode pod's sidecar reads (tests/e2e/pd.test.ts).
   */
  readonly received: Array<{ path: string; headers: http.IncomingHttpHeaders }> = [];

  constructor(private readonly opts: PodOptions) {
    this.name = opts.name;
    this.kind = opts.kind;
    this.clock = opts.clock;
    this.profile = opts.profile;
    this.engine = new Engine(opts.kind, opts.profile, opts.clock, opts.seed ?? opts.name);
    this.exposition = createExposition(this.engine, { modelName: opts.profile.model });
    this.nameFilter = opts.kind === "triton-trtllm" ? "ignore" : "honour";
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.opts.port ?? 0, this.opts.host ?? "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.bound = this.server.address() as AddressInfo;
    return this;
  }

  get port(): number {
    return this.bound?.port ?? 0;
  }
  /** host:port as a router puts it in x-gateway-destination-endpoint. */
  get address(): string {
    return `${this.bound?.address ?? this.opts.host ?? "127.0.0.1"}:${this.port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The pod dies: every connection is reset (streams in progress fail) and new connections are refused. */
  kill(): void {
    void this.close();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = this.clock.now();
    const path = (req.url ?? "/").split("?")[0];
    res.setHeader("x-sim-pod", this.name);
    res.setHeader("x-sim-address", this.address);
    let requestBytes = 0;
    let responseBytes = 0;
    // Count response bytes for the HTTP metrics (prometheus-fastapi-instrumentator's response size).
    const write = res.write.bind(res);
    const end = res.end.bind(res);
    res.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      responseBytes += Buffer.byteLength(chunk);
      return write(chunk, ...rest);
    }) as typeof res.write;
    res.end = ((chunk?: string | Uint8Array, ...rest: never[]) => {
      if (typeof chunk === "string" || chunk instanceof Uint8Array) responseBytes += Buffer.byteLength(chunk);
      return end(chunk as never, ...rest);
    }) as typeof res.end;
    res.on("finish", () => {
      this.exposition.http?.observe(
        path,
        req.method ?? "GET",
        res.statusCode,
        requestBytes,
        responseBytes,
        (this.clock.now() - started) / 1000,
      );
    });
    const json = (status: number, body: unknown) => {
      const text = typeof body === "string" ? body : JSON.stringify(body);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(text);
    };

    const api = ROUTES[path];
    if (api) {
      if (req.method !== "POST") return json(405, { detail: "Method Not Allowed" });
      this.received.push({ path, headers: req.headers });
      if (this.received.length > RECEIVED_KEPT) this.received.shift();
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => {
        requestBytes += c.length;
        if (requestBytes > MAX_BODY) {
          json(413, new ApiError(413, "request body too large").body());
          req.destroy();
        } else chunks.push(c);
      });
      req.on("end", () => {
        if (res.headersSent) return;
        if (this.failWith !== null)
          return json(
            this.failWith,
            new ApiError(this.failWith, "injected failure: the engine is broken", "InternalServerError").body(),
          );
        let parsed: ParsedRequest;
        try {
          parsed = parseRequest(api, Buffer.concat(chunks).toString("utf8"), this.profile);
        } catch (e) {
          if (e instanceof ApiError) return json(e.status, e.body());
          throw e;
        }
        this.serve(parsed, res);
      });
      return;
    }
    if (req.method !== "GET") return json(405, { detail: "Method Not Allowed" });
    if (path === "/health") {
      res.writeHead(200);
      res.end();
      return;
    }
    if (path === "/v1/models") return json(200, modelsBody(this.profile, Math.floor(this.clock.epochMs / 1000)));
    if (path === this.exposition.metricsPath) {
      const names = new URL(req.url ?? "/", "http://pod").searchParams.getAll("name[]");
      let text = this.exposition.render();
      if (names.length > 0 && this.nameFilter !== "ignore")
        text = this.nameFilter === "empty" ? "" : restrictToSamples(text, new Set(names));
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
      res.end(text);
      return;
    }
    if (path === "/metrics" && this.exposition.iterationStatsJson)
      return json(200, this.exposition.iterationStatsJson());
    json(404, { detail: "Not Found" });
  }

  private serve(p: ParsedRequest, res: http.ServerResponse): void {
    const id = `${p.api === "chat" ? "chatcmpl" : "cmpl"}-${this.name}-${this.nextId++}`;
    const created = Math.floor((this.clock.epochMs + this.clock.now()) / 1000);
    const seq = sequenceFor(p);
    res.setHeader("x-sim-model", p.model);
    const tokenText = (i: number) => seq.answer.slice(i * CHARS_PER_TOKEN, (i + 1) * CHARS_PER_TOKEN);
    const sse = (body: unknown) => {
      res.write(`data: ${JSON.stringify(body)}\n\n`);
    };
    let done = false;

    if (p.stream) {
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
      if (p.api === "chat") sse(chunkBody(p, id, created, null, null));
    }
    res.on("close", () => {
      if (!done) this.engine.abort(id);
    });
    this.engine.submit({
      id,
      seq,
      maxTokens: p.outputTokens,
      finishReason: p.finishReason,
      adapter: p.adapter,
      maxTokensParam: p.maxTokensParam,
      onTokens: p.stream
        ? (from, count) => {
            for (let i = from; i < from + count; i++) {
              const last = i === p.outputTokens - 1;
              sse(chunkBody(p, id, created, tokenText(i), last ? p.finishReason : null));
            }
          }
        : undefined,
      onFinish: (r: RequestResult) => {
        done = true;
        if (r.finishReason === "abort" || res.destroyed) return;
        const u = usage(r.promptTokens, r.generationTokens, r.cachedTokens);
        if (p.stream) {
          if (p.includeUsage) sse(usageChunk(p, id, created, u));
          res.end("data: [DONE]\n\n");
        } else {
          const text = seq.answer.slice(0, r.generationTokens * CHARS_PER_TOKEN);
          const body = JSON.stringify(responseBody(p, id, created, text, r.finishReason, u));
          res.writeHead(200, { "content-type": "application/json" });
          res.end(body);
        }
      },
    });
  }
}
