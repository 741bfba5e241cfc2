import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import {
  API_TOKEN_ENV,
  API_TOKEN_PLACEHOLDER,
  DEFAULT_LONG_POLL_TIMEOUT_MS,
  FLAGS,
  apiTokenWarning,
  helpText,
  isLoopbackHost,
  longPollTimeoutWarning,
  parseCli,
  parseDuration,
  startupWarnings,
  type CompanionOptions,
} from "../../companion/cli";
import { until } from "../helpers/until";

const run = (args: string[], env: Record<string, string> = {}): CompanionOptions => {
  const r = parseCli(args, env);
  assert.equal(r.kind, "run");
  return (r as { options: CompanionOptions }).options;
};

test("defaults", () => {
  const o = run(["--endpoints", "10.0.0.1:8000,[fd00::1]:8001"]);
  assert.deepEqual(o.pool, {
    kind: "static",
    file: undefined,
    endpoints: [
      { ip: "10.0.0.1", port: 8000, address: "10.0.0.1:8000" },
      { ip: "fd00::1", port: 8001, address: "[fd00::1]:8001" },
    ],
  });
  assert.deepEqual(
    [
      o.port,
      o.host,
      o.refreshIntervalMs,
      o.stalenessThresholdMs,
      o.longPollTimeoutMs,
      o.scrapeTimeoutMs,
      o.maxBackoffMs,
      o.maxPageBytes,
      o.logLevel,
      o.once,
    ],
    [9002, "0.0.0.0", 50, 2000, 1000, 1000, 5000, 8 * 1024 * 1024, "info", false],
  );
  assert.deepEqual(o.engineFlags, {});
  assert.equal(o.apiToken, undefined);
});

test("pool modes, GIE spellings, durations, token from the environment", () => {
  assert.deepEqual(
    run(["--pool-name", "llama", "--pool-namespace", "ml", "--pool-group", "inference.networking.x-k8s.io"]).pool,
    { kind: "inference-pool", name: "llama", namespace: "ml", group: "inference.networking.x-k8s.io" },
  );
  assert.deepEqual(
    run(["--endpoint-selector", "app=vllm,tier=gpu", "--endpoint-target-ports", "8000,8001,8000"]).pool,
    { kind: "selector", selector: { app: "vllm", tier: "gpu" }, targetPorts: [8000, 8001], namespace: undefined },
  );
  const o = run(
    [
      "--endpoints-file",
      "f.yaml",
      "--refresh-metrics-interval=100ms",
      "--metrics-staleness-threshold",
      "1.5s",
      "--long-poll-timeout",
      "4999",
      "--max-page-bytes",
      "512Ki",
    ],
    { COMPANION_API_TOKEN: "s3cret" },
  );
  assert.deepEqual(
    [o.refreshIntervalMs, o.stalenessThresholdMs, o.longPollTimeoutMs, o.maxPageBytes, o.apiToken],
    [100, 1500, 4999, 524288, "s3cret"],
  );
  assert.equal(
    run(["--endpoints", "10.0.0.1:1", "--api-token", "flag"], { COMPANION_API_TOKEN: "env" }).apiToken,
    "flag",
  );
  assert.deepEqual(
    run(["--endpoints", "10.0.0.1:1", "--lora-info-metric=", "--model-server-type", "sglang"]).engineFlags,
    { modelServerType: "sglang", loraInfoMetric: "" },
  );
  assert.equal(parseDuration("1m", "x"), 60_000);
  const equal = run(["--endpoints", "10.0.0.1:1", "--refresh-interval", "1s", "--staleness-threshold", "1s"]);
  assert.deepEqual(
    [equal.refreshIntervalMs, equal.stalenessThresholdMs],
    [1000, 1000],
    "a threshold equal to the interval is allowed",
  );
});

test("bad flags are UsageErrors with a message", () => {
  const cases: Array<[string[], string]> = [
    [[], "no pool: give --pool-name, --selector with --target-ports, or --endpoints/--endpoints-file"],
    [
      ["--pool-name", "a", "--endpoints", "10.0.0.1:1"],
      "give one pool mode: --pool-name, --selector or --endpoints/--endpoints-file",
    ],
    [["--selector", "app=x"], "--selector needs --target-ports"],
    [
      ["--endpoints", "example.com:80"],
      '--endpoints: "example.com:80": "example.com" is not an IP address (host names are not allowed: the destination header must be a literal IP)',
    ],
    [["--endpoints", "10.0.0.1:99999"], '--endpoints: "10.0.0.1:99999": port "99999" is not a number from 1 to 65535'],
    [["--endpoints", "fd00::1:8000"], '--endpoints: "fd00::1:8000": write IPv6 addresses as [addr]:port'],
    [
      ["--endpoints", "10.0.0.1:1", "--refresh-interval", "fast"],
      '--refresh-interval: "fast" is not a duration (examples: 50ms, 2s, 1m)',
    ],
    [
      ["--endpoints", "10.0.0.1:1", "--long-poll-timeout", "10m"],
      "--long-poll-timeout: must be less than 600000ms, the filter's largest pollTimeoutMs (a held request must be answered before the filter's call times out), got 600000ms",
    ],
    [
      ["--endpoints", "10.0.0.1:1", "--model-server-type", "tgi"],
      '--model-server-type: "tgi" is not one of vllm, sglang, triton-tensorrt-llm, trtllm-serve, triton',
    ],
    [
      ["--endpoints", "10.0.0.1:1", "--kv-cache-usage-percentage-metric", "x{a=~b}"],
      '--kv-cache-usage-percentage-metric: invalid metric spec "x{a=~b}": only "=" matchers are supported, label "a" uses "=~"',
    ],
    [
      ["--endpoints", "10.0.0.1:1", "--config-file", "a", "--config-text", "b"],
      "give --config-file or --config-text, not both",
    ],
    [["--endpoints", "10.0.0.1:1", "--bogus"], "Unknown option '--bogus'"],
    [
      ["--refresh-interval", "1s", "--refresh-metrics-interval", "2s", "--endpoints", "10.0.0.1:1"],
      "--refresh-interval and --refresh-metrics-interval are the same flag; give one",
    ],
    [
      ["--endpoints", "10.0.0.1:1", "--log-level", "loud"],
      '--log-level: "loud" is not one of debug, info, warn, error',
    ],
    [
      ["--endpoints", "10.0.0.1:1", "--target-ports", "8000"],
      "--target-ports only applies with --selector (an InferencePool names its own ports)",
    ],
    [
      ["--endpoints", "10.0.0.1:1", "--refresh-interval", "5s"],
      "--staleness-threshold (2000ms) must be at least --refresh-interval (5000ms): with a shorter threshold every endpoint turns stale between its scrapes",
    ],
    [
      ["--endpoints", "10.0.0.1:1", "--refresh-metrics-interval", "1s", "--metrics-staleness-threshold", "500ms"],
      "--staleness-threshold (500ms) must be at least --refresh-interval (1000ms): with a shorter threshold every endpoint turns stale between its scrapes",
    ],
  ];
  for (const [args, message] of cases) assert.throws(() => parseCli(args, {}), { message }, args.join(" "));
});

test("--help and docs/COMPANION.md document every flag", () => {
  assert.deepEqual(parseCli(["--help"], {}), { kind: "help" });
  const help = helpText();
  const doc = readFileSync("docs/COMPANION.md", "utf8");
  for (const { flags } of FLAGS) {
    for (const f of flags) {
      assert.ok(help.includes(`--${f.name}`), f.name);
      assert.ok(doc.includes(`| \`--${f.name}`), `docs/COMPANION.md lists --${f.name}`);
      if (f.alias) assert.ok(doc.includes(`(\`--${f.alias}\`)`), `docs/COMPANION.md lists --${f.alias}`);
    }
  }
});

test("the bundled companion: exit 2 on bad flags, 1 on a bad config, 0 for --help", () => {
  const node = (args: string[]) => spawnSync(process.execPath, ["build/companion.mjs", ...args], { encoding: "utf8" });
  const bad = node(["--endpoints", "nope"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /companion: --endpoints: "nope": expected IP:PORT/);
  const config = node(["--endpoints", "127.0.0.1:1", "--once", "--config-text", "plugins:\n- type: nope\n"]);
  assert.equal(config.status, 1);
  assert.match(
    config.stderr,
    /companion: configuration error: --config-text: plugins\[0\]\.type: unsupported plugin type/,
  );
  const help = node(["--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--staleness-threshold DUR/);
});

test("--long-poll-timeout: anything below the filter's largest pollTimeoutMs, a warning above its default minus 1s", () => {
  // The filter's pollTimeoutMs is configurable up to 600000 ms (filter/config.ts); its default is 2500 ms, and
  // a long poll must be answered at least 1000 ms before it (else a healthy replica's polls time out).
  assert.equal(DEFAULT_LONG_POLL_TIMEOUT_MS, 1000);
  for (const [text, ms] of [
    ["1500", 1500],
    ["5s", 5000],
    ["15s", 15_000],
    ["9m", 540_000],
    ["599999", 599_999],
  ] as const) {
    assert.equal(run(["--endpoints", "10.0.0.1:1", "--long-poll-timeout", text]).longPollTimeoutMs, ms, text);
  }
  for (const text of ["600000", "10m", "3600s"])
    assert.throws(
      () => parseCli(["--endpoints", "10.0.0.1:1", "--long-poll-timeout", text], {}),
      /--long-poll-timeout/,
      text,
    );

  assert.equal(longPollTimeoutWarning(1000), null);
  assert.equal(longPollTimeoutWarning(1500), null);
  for (const ms of [1501, 3000, 15_000]) {
    const warning = longPollTimeoutWarning(ms);
    assert.ok(warning !== null, `${ms}ms leaves less than 1000ms before the filter's default pollTimeoutMs`);
    assert.ok(
      warning.startsWith(
        `--long-poll-timeout ${ms}ms leaves less than 1000ms before the filter's default pollTimeoutMs (2500ms)`,
      ),
      warning,
    );
    assert.ok(warning.includes(`the filter's pollTimeoutMs must be raised to ${ms + 1000}ms or more`), warning);
    assert.ok(warning.includes(`stalenessLimitMs (default 5000ms) above pollTimeoutMs + ${ms}ms`), warning);
  }
  assert.match(helpText(), /--long-poll-timeout DUR +.*less than 600000ms.*pollTimeoutMs \(default 2500ms\)/);
  assert.match(helpText(), /--long-poll-timeout DUR +.*\(default: 1000ms\)/);
});

test("API token: a warning without one on a non-loopback address; the manifests' placeholder is refused", () => {
  assert.equal(API_TOKEN_ENV, "COMPANION_API_TOKEN");
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
    assert.ok(isLoopbackHost(h), h);
  for (const h of ["0.0.0.0", "::", "10.0.0.5", "fd00::1", "example.com", "128.0.0.1"])
    assert.ok(!isLoopbackHost(h), h);

  const warning = apiTokenWarning("0.0.0.0", undefined);
  assert.ok(warning !== null);
  assert.match(warning, /^no API token while listening on 0\.0\.0\.0: /);
  assert.ok(warning.includes("--api-token") && warning.includes("$COMPANION_API_TOKEN"), warning);
  assert.equal(apiTokenWarning("0.0.0.0", "s3cret"), null);
  assert.equal(apiTokenWarning("127.0.0.1", undefined), null);

  // The defaults (--host 0.0.0.0, no token): one warning; a token from the environment silences it.
  const open = startupWarnings(run(["--endpoints", "10.0.0.1:1"], {}));
  assert.deepEqual(
    open.map((w) => w.fields),
    [{ host: "0.0.0.0" }],
  );
  assert.deepEqual(startupWarnings(run(["--endpoints", "10.0.0.1:1"], { [API_TOKEN_ENV]: "s3cret" })), []);
  assert.deepEqual(startupWarnings(run(["--endpoints", "10.0.0.1:1", "--host", "127.0.0.1"], {})), []);
  assert.deepEqual(
    startupWarnings(run(["--endpoints", "10.0.0.1:1", "--api-token", "t", "--long-poll-timeout", "2s"], {})).map(
      (w) => w.fields,
    ),
    [{ longPollTimeoutMs: 2000 }],
  );

  for (const [args, env] of [
    [["--api-token", API_TOKEN_PLACEHOLDER], {}],
    [[], { [API_TOKEN_ENV]: API_TOKEN_PLACEHOLDER }],
  ] as const) {
    assert.throws(() => parseCli(["--endpoints", "10.0.0.1:1", ...args], env), {
      message:
        '--api-token / $COMPANION_API_TOKEN: "REPLACE-WITH-THE-TOKEN" is the placeholder of the shipped manifests, not a token: create the Secret endpoint-picker-api-token with a random token (docs/DEPLOY.md)',
    });
  }
  // The placeholder is what the shipped plain manifests carry, so this refusal is what a forgotten edit meets.
  for (const f of ["envoy/istio/endpoint-picker-ecds.yaml", "envoy/istio/wasmplugin.yaml"])
    assert.ok(readFileSync(f, "utf8").includes(API_TOKEN_PLACEHOLDER), f);
});

/** Starts the bundled companion, waits for its "companion started" log line, and returns the JSON log lines so far. */
async function startupLog(
  args: string[],
  host = "127.0.0.1",
): Promise<Array<{ level: string; msg: string; [k: string]: unknown }>> {
  const child = spawn(
    process.execPath,
    ["build/companion.mjs", "--endpoints", "127.0.0.1:1", "--port", "0", "--host", host, ...args],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== API_TOKEN_ENV)),
    },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  try {
    await until(
      "companion started",
      () => stderr.includes('"msg":"companion started"') || child.exitCode !== null,
      10_000,
    );
    assert.equal(child.exitCode, null, `the companion exited: ${stderr}`);
    return stderr
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
  } finally {
    child.kill();
  }
}

test("the bundled companion serves with a long poll over 1.5s and warns at start that the filter's pollTimeoutMs must be raised", async () => {
  const lines = await startupLog(["--long-poll-timeout", "20s"]);
  const warnings = lines.filter((l) => l.level === "warn" && l.msg.includes("pollTimeoutMs"));
  assert.equal(warnings.length, 1, JSON.stringify(lines));
  assert.match(
    warnings[0].msg,
    /^--long-poll-timeout 20000ms leaves less than 1000ms before the filter's default pollTimeoutMs \(2500ms\): the filter's pollTimeoutMs must be raised to 21000ms or more/,
  );
  assert.equal(warnings[0].longPollTimeoutMs, 20_000);

  const quiet = await startupLog(["--long-poll-timeout", "1500ms"]);
  assert.deepEqual(
    quiet.filter((l) => l.msg.includes("pollTimeoutMs")),
    [],
    "no warning 1000ms or more below the filter's default",
  );
});

test("the bundled companion warns at start when it listens on 0.0.0.0 without a token, not with one", async () => {
  const open = await startupLog([], "0.0.0.0");
  const warnings = open.filter((l) => l.level === "warn" && l.msg.startsWith("no API token"));
  assert.equal(warnings.length, 1, JSON.stringify(open));
  assert.ok(String(warnings[0].msg).includes("--api-token"));
  assert.equal(warnings[0].host, "0.0.0.0");
  const closed = await startupLog(["--api-token", "s3cret"], "0.0.0.0");
  assert.deepEqual(
    closed.filter((l) => l.msg.startsWith("no API token")),
    [],
  );
});
