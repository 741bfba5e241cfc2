// Companion entry point (walking skeleton): serves an EPS1 snapshot of a static endpoint list.
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { encodeSnapshot, DEFAULT_PROFILE, type SnapshotEndpoint } from "./snapshot";

const { values } = parseArgs({
  options: {
    endpoints: { type: "string", default: "" },
    port: { type: "string", default: "9002" },
    host: { type: "string", default: "0.0.0.0" },
  },
});

const endpoints: SnapshotEndpoint[] = values.endpoints.split(",").filter((s) => s.length > 0).map((address) => ({
  address, engine: "vllm", stale: false, error: false, queued: 0, running: 0, kvUsage: 0, ageMs: 0, lora: null, cache: null,
}));
const version = BigInt(Date.now());

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://companion");
  if (url.pathname === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
  } else if (url.pathname === "/v1/snapshot") {
    const blob = encodeSnapshot({ version, generatedAtMs: Date.now(), profile: DEFAULT_PROFILE, endpoints });
    res.writeHead(200, { "content-type": "application/vnd.endpoint-picker.snapshot", "x-snapshot-version": String(version) }).end(blob);
  } else {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  }
});
server.listen(Number(values.port), values.host, () => {
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : values.port;
  console.log(`companion listening on ${values.host}:${port}`);
});
const stop = (): void => { server.close(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
