// One streaming chat request as a client sees it: time to the first content token, end-to-end time, the
// output tokens the server reported (usage), and which simulated pod served it.
import http from "node:http";

export interface StreamResult {
  ok: boolean;
  status: number;
  ttftMs: number;
  e2eMs: number;
  outputTokens: number;
  pod: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export function streamChat(port: number, body: string): Promise<StreamResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let ttft = -1,
      outputTokens = 0,
      buffered = "";
    const done = (status: number, pod: string) =>
      resolve({
        ok: status === 200 && ttft >= 0,
        status,
        ttftMs: ttft,
        e2eMs: performance.now() - started,
        outputTokens,
        pod,
      });
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path: "/v1/chat/completions",
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const pod = String(res.headers["x-sim-pod"] ?? "");
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          let end: number;
          while ((end = buffered.indexOf("\n\n")) >= 0) {
            const event = buffered.slice(0, end);
            buffered = buffered.slice(end + 2);
            if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
            try {
              const j = JSON.parse(event.slice(6));
              if (ttft < 0 && j.choices?.[0]?.delta?.content) ttft = performance.now() - started;
              if (j.usage?.completion_tokens) outputTokens = j.usage.completion_tokens;
            } catch {
              /* a malformed event counts as nothing */
            }
          }
        });
        res.on("end", () => done(res.statusCode ?? 0, pod));
        res.on("error", () => done(0, pod));
      },
    );
    req.on("error", () => done(0, ""));
    req.end(body);
  });
}
