// proxy_http_call over real HTTP/1.1 to a cluster endpoint, reported the way Envoy's AsyncClient does:
// - a response (any status) -> headers (with :status), whole body, trailers;
// - no response headers within the timeout -> a local 504 "upstream request timeout";
// - the timeout after the response headers arrived -> failure (the router resets a started response);
// - connect failure -> a local 503 "upstream connect error or disconnect/reset before headers...";
// - a reset after the response started -> failure (0 headers; get_status says BrokenConnection "reset").
// A cluster without endpoints never gets here: Envoy's router answers it inline, so the call is refused
// (host.ts).
import http from "node:http";
import { Pairs } from "./pairs";
import { HttpCallOutcome, HttpCallRequest } from "./vm";

export interface Endpoint {
  host: string;
  port: number;
}

export function localReplyOutcome(status: number, text: string): HttpCallOutcome {
  return {
    headers: [
      [":status", String(status)],
      ["content-length", String(Buffer.byteLength(text))],
      ["content-type", "text/plain"],
    ],
    body: text,
  };
}
export const TIMEOUT_REPLY = () => localReplyOutcome(504, "upstream request timeout");
export const CONNECT_FAILURE = (reason: string) =>
  localReplyOutcome(
    503,
    `upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: ${reason}`,
  );

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** An http call under way: `responseStarted` once the upstream's response headers arrived. */
export interface PendingHttpCall {
  cancel(): void;
  responseStarted(): boolean;
}

/** Sends `req` to `ep`. Timeouts are handled by the caller. */
export function sendHttpCall(ep: Endpoint, req: HttpCallRequest, done: (o: HttpCallOutcome) => void): PendingHttpCall {
  const headers: Record<string, string> = {};
  let method = "GET",
    path = "/",
    authority = "";
  for (const [k, v] of req.headers) {
    if (k === ":method") method = v;
    else if (k === ":path") path = v;
    else if (k === ":authority") authority = v;
    else if (!k.startsWith(":")) headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  headers.host = authority;
  if (req.body.length > 0) headers["content-length"] = String(req.body.length);
  let finished = false;
  let started = false;
  const finish = (o: HttpCallOutcome) => {
    if (!finished) {
      finished = true;
      done(o);
    }
  };
  const r = http.request({ host: ep.host, port: ep.port, method, path, headers, agent }, (res) => {
    started = true;
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => {
      const out: Pairs = [[":status", String(res.statusCode ?? 0)]];
      for (let i = 0; i < res.rawHeaders.length; i += 2)
        out.push([res.rawHeaders[i].toLowerCase(), res.rawHeaders[i + 1]]);
      const trailers: Pairs = [];
      for (let i = 0; i < res.rawTrailers.length; i += 2)
        trailers.push([res.rawTrailers[i].toLowerCase(), res.rawTrailers[i + 1]]);
      finish({ headers: out, body: new Uint8Array(Buffer.concat(chunks)), trailers });
    });
    res.on("aborted", () => finish({ failure: "reset" }));
    res.on("close", () => {
      if (!res.complete) finish({ failure: "reset" });
    });
    res.on("error", () => finish({ failure: "reset" }));
  });
  r.on("error", (e: NodeJS.ErrnoException) => {
    if (finished) return;
    if (r.reusedSocket && e.code === "ECONNRESET") {
      finish({ failure: "reset" });
      return;
    }
    const reason = e.code === "ECONNREFUSED" ? "delayed connect error: Connection refused" : (e.code ?? e.message);
    finish(CONNECT_FAILURE(reason));
  });
  if (req.body.length > 0) r.write(req.body);
  r.end();
  return {
    cancel: () => {
      finished = true;
      r.destroy();
    },
    responseStarted: () => started,
  };
}
