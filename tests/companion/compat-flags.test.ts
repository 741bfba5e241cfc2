// Flags, pod labels and annotations of GIE's EPP (1.0-1.5) and llm-d-router are accepted as upstream reads them
// (or refused with a message saying why). Upstream unit tests are mirrored where they exist (named after them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  EPP_FLAGS,
  FLAGS,
  helpText,
  parseCli,
  parseDuration,
  startupWarnings,
  type CompanionOptions,
} from "../../companion/cli";
import { activePorts, podTargets } from "../../companion/inference-pool";
import { defaultNamespace } from "../../companion/kube-pool";
import { KubeConfig } from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import { pod } from "../helpers/fake-kube";

const run = (args: string[], env: Record<string, string> = {}): CompanionOptions => {
  const r = parseCli(args, env);
  assert.equal(r.kind, "run");
  return (r as { options: CompanionOptions }).options;
};

test("--model-server-metrics-scheme and -https-insecure-skip-verify (GIE 1.0-1.5) are scrape defaults", () => {
  const o = run([
    "--pool-name",
    "p",
    "--model-server-metrics-scheme",
    "https",
    "--model-server-metrics-https-insecure-skip-verify=false",
    "--model-server-metrics-path",
    "/cli",
  ]);
  assert.deepEqual(o.engineFlags, { metricsScheme: "https", metricsInsecureSkipVerify: false, metricsPath: "/cli" });
  assert.equal(o.metricsPath, undefined, "the path flag is a default the config's metrics-data-source overrides");
  for (const [args, value] of [
    [["--model-server-metrics-https-insecure-skip-verify"], true],
    [["--model-server-metrics-https-insecure-skip-verify", "false"], false],
    [["--model-server-metrics-https-insecure-skip-verify=0"], false],
  ] as Array<[string[], boolean]>)
    assert.equal(run(["--pool-name", "p", ...args]).engineFlags.metricsInsecureSkipVerify, value, args.join(" "));
  assert.throws(() => parseCli(["--pool-name", "p", "--model-server-metrics-scheme=grpc"], {}), {
    message: '--model-server-metrics-scheme: "grpc" is not http or https',
  });
  assert.throws(() => parseCli(["--pool-name", "p", "--model-server-metrics-https-insecure-skip-verify=maybe"], {}), {
    message: '--model-server-metrics-https-insecure-skip-verify: "maybe" is not a boolean (true or false)',
  });
});

test("GIE 1.5's Helm chart arguments are accepted: quoted values, Go booleans, ignored flags with warnings", () => {
  // config/charts/epplib/templates/_deployment.yaml (v1.5.0), trtllm-serve model server type, 2 replicas,
  // tracing off, metrics auth off, plus flags of inferenceExtension.flags.
  const o = run([
    "--pool-name",
    "llama",
    "--pool-namespace",
    "default",
    "--pool-group",
    "inference.networking.k8s.io",
    '--total-queued-requests-metric="trtllm_num_requests_waiting"',
    '--model-server-metrics-path="/prometheus/metrics"',
    "--lora-info-metric",
    "",
    "--zap-encoder",
    "json",
    "--config-file",
    "/config/default-plugins.yaml",
    "--ha-enable-leader-election",
    "--tracing=false",
    "--metrics-endpoint-auth=false",
    "--v",
    "3",
    "--grpc-port",
    "9002",
    "--secure-serving",
    "false",
  ]);
  assert.deepEqual(o.engineFlags, {
    totalQueuedRequestsMetric: "trtllm_num_requests_waiting",
    loraInfoMetric: "",
    metricsPath: "/prometheus/metrics",
  });
  assert.equal(o.configFile, "/config/default-plugins.yaml");
  assert.equal(o.logLevel, "info");
  assert.deepEqual(
    o.ignoredFlags.map((f) => `${f.flag}=${f.value}`),
    [
      "--zap-encoder=json",
      "--ha-enable-leader-election=true",
      "--tracing=false",
      "--metrics-endpoint-auth=false",
      "--grpc-port=9002",
      "--secure-serving=false",
    ],
  );
  const warnings = startupWarnings({ ...o, apiToken: "t" }).map((w) => w.msg);
  assert.deepEqual(warnings.slice(0, 2), [
    "--zap-encoder (a flag of GIE's EPP) is ignored: logs are JSON lines on stderr; --log-level sets the level",
    "--ha-enable-leader-election (a flag of GIE's EPP) is ignored: every companion replica is active and serves the same snapshots; no leader (docs/DEPLOY.md)",
  ]);
  assert.equal(warnings.length, 6);
});

test("-v and --zap-log-level set the log level unless --log-level is given; TLS material is refused", () => {
  const level = (...args: string[]) => run(["--endpoints", "10.0.0.1:1", ...args]).logLevel;
  assert.equal(level("-v", "4"), "debug");
  assert.equal(level("-v5"), "debug");
  assert.equal(level("-v=2"), "info");
  assert.equal(level("--v=1"), "info");
  assert.equal(level("--zap-log-level", "debug"), "debug");
  assert.equal(level("--zap-log-level=error"), "error");
  assert.equal(level("--zap-log-level=panic"), "error");
  assert.equal(level("--zap-log-level=5"), "debug");
  assert.equal(level("-v", "5", "--log-level", "warn"), "warn");
  const cases: Array<[string[], string | RegExp]> = [
    [["-v", "loud"], '--v: "loud" is not a number'],
    [
      ["--cert-path", "/certs"],
      "--cert-path: not supported by the companion (a flag of GIE's EPP): the companion serves plain HTTP (protect /v1/* with --api-token; put TLS in front of it if needed)",
    ],
    [["--metrics-client-ca-file=/ca.pem"], /^--metrics-client-ca-file: not supported by the companion/],
    [["--tracing=maybe"], '--tracing: "maybe" is not a boolean (true or false)'],
    [["--grpc-port"], "--grpc-port: needs a value"],
  ];
  for (const [args, message] of cases)
    assert.throws(() => parseCli(["--endpoints", "10.0.0.1:1", ...args], {}), { message }, args.join(" "));
});

test("every flag of GIE 1.5's and llm-d-router's EPP is either the companion's own or in EPP_FLAGS, and documented", () => {
  // GIE v1.5.0 pkg/epp/server/options.go + logging options; llm-d-router pkg/epp/server/options.go.
  const upstream = [
    ...["grpc-port", "ha-enable-leader-election", "pool-group", "pool-namespace", "pool-name"],
    ...["endpoint-selector", "endpoint-target-ports", "disable-endpoint-subset-filter", "model-server-metrics-scheme"],
    ...["model-server-metrics-path", "model-server-metrics-port", "model-server-metrics-https-insecure-skip-verify"],
    ...["refresh-metrics-interval", "refresh-prometheus-metrics-interval", "metrics-staleness-threshold"],
    ...["total-queued-requests-metric", "total-running-requests-metric", "kv-cache-usage-percentage-metric"],
    ...["lora-info-metric", "cache-info-metric", "v", "zap-devel", "zap-encoder", "zap-log-level"],
    ...["zap-stacktrace-level", "zap-time-encoding", "tracing", "health-checking", "metrics-port", "grpc-health-port"],
    ...["enable-pprof", "cert-path", "enable-cert-reload", "secure-serving", "metrics-endpoint-auth", "config-file"],
    ...["config-text", "drain-timeout", "grpc-max-recv-msg-size", "grpc-max-send-msg-size", "emit-endpoint-scores"],
    ...["enable-grpc-stream-metrics", "tls-min-version", "tls-cipher-suites", "metrics-client-ca-file"],
    ...["metrics-cert-dir", "allow-experimental-plugins"],
  ];
  const own = new Set(FLAGS.flatMap((s) => s.flags).flatMap((f) => [f.name, ...(f.alias ? [f.alias] : [])]));
  const epp = new Set(EPP_FLAGS.map((f) => f.name));
  const doc = readFileSync("docs/COMPANION.md", "utf8");
  for (const name of upstream) {
    assert.ok(own.has(name) !== epp.has(name), `--${name}: exactly one of FLAGS and EPP_FLAGS`);
    if (epp.has(name)) assert.ok(doc.includes(`\`--${name}\``), `docs/COMPANION.md lists --${name}`);
  }
  assert.match(helpText(), /Flags of GIE's and llm-d-router's EPP are accepted too/);
});

test("durations: Go's forms too (GIE's flags are Go durations)", () => {
  assert.equal(parseDuration("1m30s", "x"), 90_000);
  assert.equal(parseDuration("500us", "x"), 0.5);
  assert.equal(parseDuration("1h", "x"), 3_600_000);
  assert.equal(parseDuration("0", "x"), 0);
  assert.throws(() => parseDuration("-1s", "x"), { message: '--x: "-1s" is not a duration (examples: 50ms, 2s, 1m)' });
  const o = run([
    "--endpoints",
    "10.0.0.1:1",
    "--refresh-metrics-interval",
    "100ms",
    "--metrics-staleness-threshold=1m0s",
  ]);
  assert.deepEqual([o.refreshIntervalMs, o.stalenessThresholdMs], [100, 60_000]);
});

test("--endpoint-selector: llm-d-router's set-based syntax is refused with a clear message; == is equality", () => {
  assert.deepEqual(run(["--endpoint-selector", "app==vllm", "--endpoint-target-ports", "8000"]).pool, {
    kind: "selector",
    selector: { app: "vllm" },
    targetPorts: [8000],
    namespace: undefined,
  });
  for (const part of ["env in (prod,staging)", "app=vllm,tier!=frontend", "app=vllm,!deprecated", "gpu"])
    assert.throws(() => parseCli(["--endpoint-selector", part, "--endpoint-target-ports", "8000"], {}), {
      message: /^--selector: "[^"]+" is a set-based or existence requirement \(llm-d-router's selector syntax\)/,
    });
});

test("active ports: llm-d.ai/active-ports, else GIE's inference.networking.k8s.io/active-ports", () => {
  // llm-d-router pkg/epp/datastore/datastore_test.go, TestExtractActivePorts.
  const LLMD = "llm-d.ai/active-ports",
    GIE = "inference.networking.k8s.io/active-ports";
  const valid = [8000, 8001, 8002];
  const cases: Array<[string, Record<string, string>, number[]]> = [
    ["Pod without active ports annotation", {}, [8000, 8001, 8002]],
    ["Pod with empty active ports annotation", { [LLMD]: "" }, []],
    ["Pod with single port in annotation", { [LLMD]: "8000" }, [8000]],
    ["Pod with multiple ports in annotation", { [LLMD]: "8000,8001,8002" }, [8000, 8001, 8002]],
    ["Pod with multiple ports with spaces in annotation", { [LLMD]: "8000, 8001 , 8002" }, [8000, 8001, 8002]],
    ["Pod with invalid port in annotation (non-numeric)", { [LLMD]: "8000,invalid,8002" }, [8000, 8002]],
    ["Pod with invalid port in annotation (negative number)", { [LLMD]: "8000,-1,8002" }, [8000, 8002]],
    ["Pod with duplicate ports in annotation", { [LLMD]: "8000,8001,8000" }, [8000, 8001]],
    ["Pod with port not in validPorts", { [LLMD]: "8000,9000" }, [8000]],
    ["Pod with legacy GAIE annotation key", { [GIE]: "8000,8001" }, [8000, 8001]],
    ["New annotation key takes precedence over legacy GAIE key", { [LLMD]: "8000", [GIE]: "8001" }, [8000]],
  ];
  for (const [name, annotations, want] of cases) assert.deepEqual(activePorts(annotations, valid), want, name);
  const targets = podTargets(pod({ name: "a", ip: "10.0.0.1", annotations: { [LLMD]: "8001" } }) as never, valid);
  assert.deepEqual(
    targets.map((t) => t.address),
    ["10.0.0.1:8001"],
  );
});

test("the pool namespace falls back to $NAMESPACE, which GIE's EPP reads", () => {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: "https://127.0.0.1:1" }],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u", namespace: "ctx" }],
    currentContext: "x",
  });
  assert.equal(defaultNamespace(kc, undefined, { NAMESPACE: "gie" }), "gie");
  assert.equal(defaultNamespace(kc, undefined, { NAMESPACE: "gie", POD_NAMESPACE: "ours" }), "ours");
});

test("the bundled companion scrapes the config's metrics path over --model-server-metrics-path", async () => {
  const page = '# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="m"} 3\n';
  const server = createServer((req, res) => {
    if (req.url !== "/config") return void res.writeHead(404).end("not here\n");
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(page);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    const config = "plugins:\n- type: metrics-data-source\n  parameters: {path: /config}\n";
    const args = ["--endpoints", `127.0.0.1:${port}`, "--once", "--config-text", config];
    const child = spawn(process.execPath, ["build/companion.mjs", ...args, "--model-server-metrics-path", "/cli"]);
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const code = await new Promise((resolve) => child.on("exit", resolve));
    assert.equal(code, 0, out);
    const [e] = JSON.parse(out).endpoints;
    assert.deepEqual([e.queued, e.error], [3, null]);
  } finally {
    server.close();
  }
});
