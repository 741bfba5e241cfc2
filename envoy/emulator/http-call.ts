// proxy_http_call over real HTTP/1.1, reported the way Envoy's AsyncClient does. The AsyncClient runs
// Envoy's router (router-filter.ts here) with the call's timeout as the route timeout and no retries, so
// the host comes from the cluster's load balancer (ejected hosts skipped) and every outcome feeds the
// cluster's outlier detection. What the plugin gets:
// - a response (any status) -> headers (with :status), whole body, trailers;
// - no response headers within the timeout -> a local 504 "upstream request timeout";
// - the timeout after the response headers arrived -> failure (the router resets a started response);
// - connect failure -> a local 503 "upstream connect error or disconnect/reset before headers...";
// - a reset after the response started -> failure (0 headers; get_status says BrokenConnection "reset").
// - a response body over 32 MiB -> failure: Envoy's AsyncClient drains the data and resets the call
//   (ExceedResponseBufferLimit; runtime key envoy.http.async_response_buffer_limit, 32 MiB by default).
// A cluster whose load balancer finds no host never gets a call: Envoy's router answers inline, so the
// call is refused (host.ts).
import http from "node:http";
import { Pairs } from "./pairs";
import { RouterFilter } from "./router-filter";
import { Scheduler } from "./scheduler";
import { newStreamInfo } from "./stream-info";
import { UpstreamCluster } from "./upstream";
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
/** Envoy's AsyncClient response body limit (kBufferLimitForResponse). */
export const ASYNC_RESPONSE_BUFFER_LIMIT = 32 * 1024 * 1024;

/** An http call under way. */
export interface PendingHttpCall {
  cancel(): void;
}

/**
 * Sends `req` through the router to `cluster`; `done` gets the outcome once. Returns null when the load
 * balancer found no host (Envoy's AsyncClient::send returns nullptr: the caller answers InternalFailure).
 */
export function sendHttpCall(
  cluster: UpstreamCluster,
  req: HttpCallRequest,
  scheduler: Scheduler,
  done: (o: HttpCallOutcome) => void,
): PendingHttpCall | null {
  let finished = false;
  let inline = true;
  let noHost = false;
  let responseHeaders: Pairs | null = null;
  let chunks: Uint8Array[] = [];
  let buffered = 0;
  /** The whole body, allocated once from content-length when it gives one within the limit. */
  let whole: Buffer | null = null;
  /** content-length says the body is over the limit: it is counted, never kept (it can only end in a reset). */
  let overLimit = false;
  const finish = (o: HttpCallOutcome) => {
    if (finished) return;
    finished = true;
    done(o);
  };
  // One copy of the body: the chunks as they came, joined once (large answers must not cost several copies).
  const complete = (trailers: Pairs) =>
    finish({
      headers: responseHeaders!,
      body: whole !== null && buffered === whole.length ? whole : Buffer.concat(chunks),
      trailers,
    });
  const router = new RouterFilter(
    {
      timeoutMs: req.timeoutMs,
      retryPolicy: null,
      cluster,
      agent,
      scheduler,
      bufferLimitBytes: Number.MAX_SAFE_INTEGER,
      suppressEnvoyHeaders: true,
    },
    {
      info: newStreamInfo(),
      encodeHeaders: (h, eos) => {
        responseHeaders = h;
        const length = Number(h.find(([k]) => k === "content-length")?.[1] ?? NaN);
        if (Number.isSafeInteger(length) && length > 0 && length <= ASYNC_RESPONSE_BUFFER_LIMIT)
          whole = Buffer.allocUnsafe(length);
        overLimit = length > ASYNC_RESPONSE_BUFFER_LIMIT;
        if (eos) complete([]);
      },
      encodeData: (c, eos) => {
        if (finished) return;
        if (buffered + c.length > ASYNC_RESPONSE_BUFFER_LIMIT) {
          chunks = [];
          finish({ failure: "reset" });
          router.onDestroy();
          return;
        }
        if (overLimit) {
          buffered += c.length;
          if (eos) finish({ failure: "reset" }); // shorter than its content-length: a broken answer
          return;
        }
        if (whole !== null && buffered + c.length <= whole.length) whole.set(c, buffered);
        else if (c.length) {
          // More than content-length said (or none): keep the pieces, the head from the preallocated copy.
          if (whole !== null && chunks.length === 0 && buffered > 0) chunks.push(whole.subarray(0, buffered));
          whole = null;
          chunks.push(c);
        }
        buffered += c.length;
        if (eos) complete([]);
      },
      encodeTrailers: (t) => complete(t),
      sendLocalReply: (status, body) => {
        if (inline) noHost = true;
        else finish(responseHeaders ? { failure: "reset" } : localReplyOutcome(status, body));
      },
      resetStream: () => finish({ failure: "reset" }),
    },
  );
  const headers: Pairs = req.headers.map(([k, v]) => [k, v]);
  if (req.body.length > 0 && !headers.some(([k]) => k === "content-length"))
    headers.push(["content-length", String(req.body.length)]);
  const hasBody = req.body.length > 0;
  const hasTrailers = req.trailers.length > 0;
  if (!router.decodeHeaders(headers, !hasBody && !hasTrailers) || noHost) return null;
  inline = false;
  if (hasBody) router.decodeData(req.body, !hasTrailers);
  if (hasTrailers) router.decodeTrailers();
  return {
    cancel: () => {
      finished = true;
      router.onDestroy();
    },
  };
}
