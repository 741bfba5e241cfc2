// GET of one metrics page over kept-alive connections per model-server origin, with a page-size cap; the
// caller's timeout cancels it. A small HTTP/1.1 client of its own: a metrics GET needs only a status, four
// headers and a framed body, and on a 86 KB page undici's general client cost about twice the CPU of this one
// (node:http three times): measured in tests/companion/parser.bench.ts, docs/COMPANION.md "The HTTP client".
// Understood: Content-Length, chunked and read-until-close bodies, 1xx interim answers, keep-alive and
// `connection: close`, HTTP/1.0 servers; a kept-alive connection the server closed meanwhile is retried once.
// Sockets read into one scratch buffer (net's `onread`) and the body is copied once into a page buffer of
// its Content-Length, taken from a pool (page-pool.ts): no fresh buffer per read or per page
// (docs/COMPANION.md "The HTTP client").
import net from "node:net";
import tls from "node:tls";
import { gunzip } from "node:zlib";
import { PagePool } from "./page-pool";

export type ScrapeFailureReason =
  "timeout" | "refused" | "connect" | "http_status" | "too_large" | "content_type" | "parse" | "metrics" | "internal";

export class ScrapeFailure extends Error {
  constructor(
    readonly reason: ScrapeFailureReason,
    message: string,
  ) {
    super(message);
  }
}

export interface MetricsOrigin {
  scheme: "http" | "https";
  ip: string;
  port: number;
  insecureSkipVerify: boolean;
}

export interface MetricsPage {
  body: Buffer;
  openMetrics: boolean;
}

const ACCEPT = "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1";
const USER_AGENT = "endpoint-picker-companion";
/** Codes of a connect that found nothing listening there (the pod is probably gone). */
const REFUSED = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH"]);
const MAX_HEAD_BYTES = 64 * 1024;
/** Idle connections kept per origin (a loop needs one; two loops may share a metrics port). */
const MAX_IDLE = 2;
const CRLF_CRLF = Buffer.from("\r\n\r\n");
/**
 * Where every socket reads into; a read is consumed (copied into its page) before the next one. 256 KiB takes
 * a whole vLLM page in one read where the kernel has it.
 */
const SCRATCH = Buffer.allocUnsafeSlow(256 * 1024);
/** First capacity of a body of unknown length (chunked, or read until close). */
const FIRST_UNKNOWN_CAPACITY = 128 * 1024;

function originKey(o: MetricsOrigin): string {
  const host = o.ip.includes(":") ? `[${o.ip}]` : o.ip;
  return `${o.scheme}://${host}:${o.port}${o.scheme === "https" && o.insecureSkipVerify ? "#insecure" : ""}`;
}

/** The response head: status and the headers a metrics GET needs (names lower-cased, first value wins). */
interface Head {
  status: number;
  http10: boolean;
  headers: Map<string, string>;
}

function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]);
  if (!m) throw new ScrapeFailure("connect", `not an HTTP/1.x response: ${JSON.stringify(lines[0].slice(0, 60))}`);
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(":");
    if (colon <= 0) throw new ScrapeFailure("connect", `malformed response header ${JSON.stringify(lines[i])}`);
    const name = lines[i].slice(0, colon).trim().toLowerCase();
    const value = lines[i].slice(colon + 1).trim();
    // Transfer-Encoding and Connection are lists; a repeated one is joined as HTTP allows.
    const before = headers.get(name);
    headers.set(name, before === undefined ? value : `${before}, ${value}`);
  }
  return { status: Number(m[2]), http10: m[1] === "0", headers };
}

/** Decodes a chunked body (RFC 9112 §7.1) fed in arbitrary pieces; trailers are read and dropped. */
class ChunkedDecoder {
  private state: "size" | "data" | "data-end" | "trailer" | "done" = "size";
  private line = "";
  private remaining = 0;

  get done(): boolean {
    return this.state === "done";
  }

  /** Feeds `buf`; calls `onData` with body bytes; returns how many bytes of `buf` belong to the body. */
  feed(buf: Buffer, onData: (chunk: Buffer) => void): number {
    let i = 0;
    while (i < buf.length && this.state !== "done") {
      if (this.state === "data") {
        const n = Math.min(this.remaining, buf.length - i);
        onData(buf.subarray(i, i + n));
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = "data-end";
        continue;
      }
      const lf = buf.indexOf(10, i);
      const end = lf < 0 ? buf.length : lf;
      this.line += buf.toString("latin1", i, end);
      if (this.line.length > 4096) throw new ScrapeFailure("connect", "chunked body: line too long");
      i = end;
      if (lf < 0) break;
      i = lf + 1;
      const line = this.line.endsWith("\r") ? this.line.slice(0, -1) : this.line;
      this.line = "";
      if (this.state === "data-end") {
        if (line !== "") throw new ScrapeFailure("connect", "chunked body: no line end after a chunk");
        this.state = "size";
      } else if (this.state === "size") {
        const m = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
        if (!m) throw new ScrapeFailure("connect", `chunked body: bad chunk size ${JSON.stringify(line.slice(0, 40))}`);
        this.remaining = parseInt(m[1], 16);
        this.state = this.remaining === 0 ? "trailer" : "data";
      } else if (line === "") {
        this.state = "done"; // the empty line after the trailers
      }
    }
    return i;
  }
}

/** One request on one connection: reads the answer as it arrives. */
class Exchange {
  private head: Head | null = null;
  private headBytes: Buffer[] = [];
  private headSize = 0;
  private chunked: ChunkedDecoder | null = null;
  private remaining = -1; // Content-Length left; -1: unknown (chunked, or until close)
  /** The body so far: `page[0, size)`. */
  private page: Buffer | null = null;
  private size = 0;
  /** Any byte of an answer arrived (a connection closed before that may be retried). */
  sawBytes = false;

  constructor(
    private readonly path: string,
    private readonly maxBytes: number,
    private readonly pool: PagePool,
  ) {}

  /** Returns the page when complete, null while more is to come; throws ScrapeFailure. */
  onData(buf: Buffer): { head: Head; body: Buffer; reusable: boolean } | null {
    this.sawBytes = true;
    while (this.head === null) {
      this.headBytes.push(buf);
      this.headSize += buf.length;
      const all = this.headBytes.length === 1 ? buf : Buffer.concat(this.headBytes, this.headSize);
      const end = all.indexOf(CRLF_CRLF);
      if (end < 0) {
        if (this.headSize > MAX_HEAD_BYTES) throw new ScrapeFailure("connect", "response head over 64 KiB");
        // `buf` is the shared read buffer: what is kept past this call is copied.
        this.headBytes = [Buffer.from(all)];
        return null;
      }
      const head = parseHead(all.toString("latin1", 0, end));
      buf = all.subarray(end + 4);
      this.headBytes = [];
      this.headSize = 0;
      if (head.status >= 100 && head.status < 200) {
        if (buf.length === 0) return null; // an interim answer: the real one follows
        continue;
      }
      this.start(head);
    }
    return this.body(buf);
  }

  private start(head: Head): void {
    this.head = head;
    if (head.status !== 200) throw new ScrapeFailure("http_status", `GET ${this.path} answered HTTP ${head.status}`);
    const type = (head.headers.get("content-type") ?? "").toLowerCase();
    if (type.startsWith("application/json") || type.startsWith("text/html"))
      throw new ScrapeFailure("content_type", `GET ${this.path} answered ${type.split(";")[0]}, not a metrics page`);
    const encoding = (head.headers.get("content-encoding") ?? "identity").toLowerCase();
    if (encoding !== "identity" && encoding !== "gzip")
      throw new ScrapeFailure("content_type", `unsupported content-encoding ${encoding}`);
    const te = (head.headers.get("transfer-encoding") ?? "").toLowerCase();
    if (te !== "") {
      if (!/(^|,)\s*chunked\s*$/.test(te)) throw new ScrapeFailure("connect", `unsupported transfer-encoding ${te}`);
      this.chunked = new ChunkedDecoder();
      return;
    }
    const length = head.headers.get("content-length");
    if (length !== undefined) {
      if (!/^\d+$/.test(length)) throw new ScrapeFailure("connect", `bad content-length ${JSON.stringify(length)}`);
      this.remaining = Number(length);
      if (this.remaining > this.maxBytes)
        throw new ScrapeFailure(
          "too_large",
          `metrics page of ${this.remaining} bytes is over the ${this.maxBytes}-byte limit`,
        );
      this.page = this.pool.take(this.remaining);
    }
  }

  /** Copies `chunk` (a view of the shared read buffer) to the end of the page. */
  private keep(chunk: Buffer): void {
    const size = this.size + chunk.length;
    if (size > this.maxBytes)
      throw new ScrapeFailure("too_large", `metrics page is over the ${this.maxBytes}-byte limit`);
    if (this.page === null || size > this.page.length) {
      const grown = this.pool.take(
        Math.min(this.maxBytes, Math.max(size, FIRST_UNKNOWN_CAPACITY, 2 * (this.page?.length ?? 0))),
      );
      if (this.page !== null) {
        this.page.copy(grown, 0, 0, this.size);
        this.pool.give(this.page);
      }
      this.page = grown;
    }
    chunk.copy(this.page, this.size);
    this.size = size;
  }

  private body(buf: Buffer): { head: Head; body: Buffer; reusable: boolean } | null {
    const head = this.head!;
    if (this.chunked !== null) {
      this.chunked.feed(buf, (c) => this.keep(c));
      if (!this.chunked.done) return null;
    } else if (this.remaining >= 0) {
      const n = Math.min(this.remaining, buf.length);
      if (n > 0) this.keep(buf.subarray(0, n));
      this.remaining -= n;
      if (this.remaining > 0) return null;
    } else {
      if (buf.length > 0) this.keep(buf);
      return null; // read until the server closes
    }
    return { head, body: this.joined(), reusable: this.reusable() };
  }

  /** The server closed the connection: the end of a read-until-close body, or a cut-short answer. */
  onEnd(): { head: Head; body: Buffer; reusable: boolean } {
    if (this.head === null || this.chunked !== null || this.remaining >= 0)
      throw new ScrapeFailure(
        "connect",
        this.head === null ? "connection closed before an answer" : "connection closed before the page was complete",
      );
    return { head: this.head, body: this.joined(), reusable: false };
  }

  private joined(): Buffer {
    if (this.page === null) return Buffer.alloc(0);
    return this.size === this.page.length ? this.page : this.page.subarray(0, this.size);
  }

  private reusable(): boolean {
    const connection = (this.head!.headers.get("connection") ?? "").toLowerCase();
    if (this.head!.http10) return /(^|,)\s*keep-alive\s*(,|$)/.test(connection);
    return !/(^|,)\s*close\s*(,|$)/.test(connection);
  }
}

type Socket = net.Socket | tls.TLSSocket;

interface Reader {
  data(chunk: Buffer): void;
  end(): void;
  error(err: NodeJS.ErrnoException): void;
  close(): void;
}

export class MetricsHttp {
  /** Origin -> idle kept-alive connections. */
  private readonly idle = new Map<string, Socket[]>();
  /** Every open connection, for closing those of origins that left. */
  private readonly open = new Map<string, Set<Socket>>();
  private readonly pages = new PagePool();
  /**
   * The request each busy connection serves. The socket's listeners, set once, hand its events to it; an idle
   * connection that receives bytes or fails is closed.
   */
  private readonly readers = new WeakMap<Socket, Reader>();
  /** Request heads by origin and path (the same few are sent every scrape). */
  private readonly requests = new Map<string, Buffer>();

  /** The origin's name in this client (what `closeExcept` keeps). */
  key(origin: MetricsOrigin): string {
    return originKey(origin);
  }

  /**
   * Closes the connections of origins not in `keep` (endpoints that left the pool: a pod that is gone would
   * otherwise hold a socket until its server or the kernel gives up); a request in flight fails.
   */
  closeExcept(keep: ReadonlySet<string>): void {
    for (const [key, sockets] of this.open) {
      if (keep.has(key)) continue;
      for (const s of sockets) s.destroy();
      this.open.delete(key);
      this.idle.delete(key);
    }
  }

  stop(): void {
    this.closeExcept(new Set());
  }

  private requestHead(key: string, path: string): Buffer {
    const id = `${key} ${path}`;
    let head = this.requests.get(id);
    if (head === undefined) {
      if (this.requests.size >= 4096) this.requests.clear(); // endpoints come and go: keep it bounded
      head = Buffer.from(
        `GET ${path} HTTP/1.1\r\nHost: ${key.replace(/^https?:\/\//, "").replace(/#insecure$/, "")}\r\n` +
          `Accept: ${ACCEPT}\r\nUser-Agent: ${USER_AGENT}\r\n\r\n`,
        "latin1",
      );
      this.requests.set(id, head);
    }
    return head;
  }

  /** Takes back the buffer of a page from `get` that nothing reads any more. */
  recycle(page: MetricsPage): void {
    this.pages.give(page.body);
  }

  private connect(key: string, origin: MetricsOrigin): Socket {
    const onread: net.OnReadOpts = {
      buffer: SCRATCH,
      callback: (n: number, buf: Uint8Array): boolean => {
        const reader = this.readers.get(socket);
        if (reader) reader.data(Buffer.from(buf.buffer, buf.byteOffset, n));
        else socket.destroy(); // an answer nobody asked for: the connection is out of step
        return true;
      },
    };
    const socket: Socket =
      origin.scheme === "https"
        ? // tls.connect takes net's `onread` too (Node's docs; @types/node leaves it out).
          tls.connect({
            host: origin.ip,
            port: origin.port,
            rejectUnauthorized: !origin.insecureSkipVerify,
            onread,
          } as tls.ConnectionOptions)
        : net.connect({ host: origin.ip, port: origin.port, onread });
    socket.setNoDelay(true);
    let set = this.open.get(key);
    if (!set) this.open.set(key, (set = new Set()));
    set.add(socket);
    socket.on("end", () => this.readers.get(socket)?.end());
    socket.on("error", (err: NodeJS.ErrnoException) => {
      const reader = this.readers.get(socket);
      if (reader) reader.error(err);
      else socket.destroy();
    });
    socket.on("close", () => {
      this.open.get(key)?.delete(socket);
      this.dropIdle(key, socket);
      this.readers.get(socket)?.close();
    });
    return socket;
  }

  private dropIdle(key: string, socket: Socket): void {
    const list = this.idle.get(key);
    const at = list?.indexOf(socket) ?? -1;
    if (at >= 0) list!.splice(at, 1);
  }

  private release(key: string, socket: Socket): void {
    let list = this.idle.get(key);
    if (!list) this.idle.set(key, (list = []));
    if (list.length >= MAX_IDLE || socket.destroyed) return void socket.destroy();
    // An idle connection the server closes, or that errors, just leaves the pool (close listener).
    list.push(socket);
  }

  /**
   * GETs `path`; resolves with the page (gunzipped if the server compressed it) or rejects with a
   * ScrapeFailure. `onAbort` receives a function that cancels the request (a timeout, the loop's stop).
   * Hand the page back with `recycle` once it is parsed: its buffer then serves a later page.
   */
  get(
    origin: MetricsOrigin,
    path: string,
    timeoutMs: number,
    maxBytes: number,
    onAbort: (abort: () => void) => void = () => {},
  ): Promise<MetricsPage> {
    const key = originKey(origin);
    const request = this.requestHead(key, path);
    return new Promise((resolve, reject) => {
      let settled = false;
      let socket: Socket | null = null;
      const finish = (err: ScrapeFailure | null, page?: MetricsPage): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          socket?.destroy();
          reject(err);
        } else resolve(page!);
      };
      const timer = setTimeout(
        () => finish(new ScrapeFailure("timeout", `no complete page within ${timeoutMs}ms`)),
        timeoutMs,
      );
      onAbort(() => finish(new ScrapeFailure("internal", "scrape cancelled")));

      const attempt = (reused: Socket | undefined): void => {
        const s = reused ?? this.connect(key, origin);
        socket = s;
        const exchange = new Exchange(path, maxBytes, this.pages);
        const detach = (): void => {
          this.readers.delete(s);
          s.off("end", onEnd);
          s.off("error", onError);
          s.off("close", onClose);
        };
        const complete = (r: { head: Head; body: Buffer; reusable: boolean }): void => {
          detach();
          if (settled) return void s.destroy();
          if (r.reusable) this.release(key, s);
          else s.destroy();
          const type = (r.head.headers.get("content-type") ?? "").toLowerCase();
          const openMetrics = type.startsWith("application/openmetrics-text");
          const encoding = (r.head.headers.get("content-encoding") ?? "identity").toLowerCase();
          if (encoding === "identity") return finish(null, { body: r.body, openMetrics });
          gunzip(r.body, { maxOutputLength: maxBytes }, (err, body) => {
            this.pages.give(r.body);
            if (!err) return finish(null, { body, openMetrics });
            const tooLarge = (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE";
            finish(new ScrapeFailure(tooLarge ? "too_large" : "parse", `gzip page: ${err.message}`));
          });
        };
        const fail = (e: unknown): void => {
          detach();
          s.destroy();
          finish(e instanceof ScrapeFailure ? e : new ScrapeFailure("internal", (e as Error).message));
        };
        /** A kept-alive connection the server had closed: once more on a new one (GET is idempotent). */
        const retryable = (): boolean => reused !== undefined && !exchange.sawBytes && !settled;
        const onData = (buf: Buffer): void => {
          try {
            const r = exchange.onData(buf);
            if (r) complete(r);
          } catch (e) {
            fail(e);
          }
        };
        const onEnd = (): void => {
          if (retryable()) {
            detach();
            s.destroy();
            return attempt(undefined);
          }
          try {
            complete(exchange.onEnd());
          } catch (e) {
            fail(e);
          }
        };
        const onError = (err: NodeJS.ErrnoException): void => {
          if (retryable()) {
            detach();
            s.destroy();
            return attempt(undefined);
          }
          const code = err.code ?? "";
          if (REFUSED.has(code)) return fail(new ScrapeFailure("refused", `GET ${path}: ${err.message}`));
          fail(
            new ScrapeFailure(
              "connect",
              exchange.sawBytes ? `reading the page: ${err.message}` : `GET ${path}: ${err.message}`,
            ),
          );
        };
        const onClose = (): void => {
          // Closed without 'end' or 'error' (destroyed): only matters if nothing else settled the request.
          if (!settled) onEnd();
        };
        this.readers.set(s, { data: onData, end: onEnd, error: onError, close: onClose });
        s.write(request);
      };
      attempt(this.idle.get(key)?.pop());
    });
  }
}
