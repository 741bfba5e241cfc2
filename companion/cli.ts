// Command line: flag definitions, `--help`, and validation into CompanionOptions. Bad flags are UsageErrors
// (exit 2); problems in files the flags point to are reported later as configuration errors (exit 1).
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { parseEndpointAddress, parsePort } from "./address";
import { parseGoDuration } from "./config-fields";
import { ENGINE_FLAG_NAMES, type EngineFlags } from "./engine-config";
import { MODEL_SERVER_TYPES, type ModelServerType } from "./engines";
import { LOG_LEVELS, type LogLevel } from "./log";
import { MetricSpecError, parseMetricSpec } from "./metric-spec";
import type { PeerAddress } from "./peers";
import { POOL_GROUPS, type EndpointAddress, type PoolGroup } from "./types";

export class UsageError extends Error {}

export type PoolOptions =
  | { kind: "inference-pool"; name: string; namespace: string | undefined; group: PoolGroup }
  | { kind: "selector"; selector: Record<string, string>; targetPorts: number[]; namespace: string | undefined }
  | { kind: "static"; endpoints: EndpointAddress[]; file: string | undefined };

export interface CompanionOptions {
  pool: PoolOptions;
  kubeconfig: string | undefined;
  configFile: string | undefined;
  configText: string | undefined;
  /** Engine and scrape flags, resolved with the config (`--model-server-metrics-path` & co. are in here). */
  engineFlags: EngineFlags;
  metricsPort: number | undefined;
  /**
   * Always undefined: `--model-server-metrics-path` goes to `engineFlags.metricsPath`, the default that
   * `metrics-data-source`'s `path` overrides (GIE's order); a path here would win over the config's.
   */
  metricsPath: undefined;
  /** `--metrics-name-filter`: ask for the wanted families only where a server honours `name[]`. */
  metricsNameFilter: boolean;
  refreshIntervalMs: number;
  scrapeTimeoutMs: number;
  maxBackoffMs: number;
  maxPageBytes: number;
  stalenessThresholdMs: number;
  port: number;
  host: string;
  longPollTimeoutMs: number;
  apiToken: string | undefined;
  once: boolean;
  logLevel: LogLevel;
  /** The gateway exchange (docs/GATEWAYS.md): static peers, a headless Service's name, limits. */
  peers: PeerAddress[];
  peersDns: PeerAddress | undefined;
  maxReportBytes: number;
  exchangeRecords: number;
  /** GIE / llm-d-router EPP flags given that have no effect here, each logged as a warning at start. */
  ignoredFlags: IgnoredFlag[];
}

export interface IgnoredFlag {
  flag: string;
  value: string;
  reason: string;
}

/**
 * The filter's `pollTimeoutMs` (filter/config.ts), the timeout of its long-poll call: its default and its
 * largest value. A held long poll must be answered before it, with room for the network and a busy event
 * loop (POLL_TIMEOUT_SLACK_MS), so `--long-poll-timeout` must stay that much below the filter's setting: then
 * only a hung replica lets a poll time out, and the gateway's outlier detection ejects it (docs/DEPLOY.md,
 * "Companion failover").
 */
export const FILTER_DEFAULT_POLL_TIMEOUT_MS = 2500;
const FILTER_MAX_POLL_TIMEOUT_MS = 600_000;
export const POLL_TIMEOUT_SLACK_MS = 1000;
/** The filter's default `stalenessLimitMs`: a 304 to a long poll is its only contact on a quiet pool. */
const FILTER_DEFAULT_STALENESS_LIMIT_MS = 5000;
/**
 * `--long-poll-timeout`'s default: a heartbeat, a 304 every second on a quiet pool. A hung replica costs the
 * filter one pollTimeoutMs; the next poll goes to another replica and is answered within this, so the
 * snapshot stays fresh: 2500 + 1000 < 5000 (stalenessLimitMs).
 */
export const DEFAULT_LONG_POLL_TIMEOUT_MS = 1000;
/** The environment variable that gives the token of `--api-token` (the manifests set it from a Secret). */
export const API_TOKEN_ENV = "COMPANION_API_TOKEN";
/** The placeholder the plain manifests ship for the token; the companion refuses it as its token. */
export const API_TOKEN_PLACEHOLDER = "REPLACE-WITH-THE-TOKEN";

interface FlagDoc {
  name: string;
  arg?: string;
  help: string;
  def?: string;
  alias?: string;
  boolean?: boolean;
  /** A Go-style boolean (GIE's): `--name`, `--name=BOOL` or `--name BOOL`; read by the pre-scan (goFlags). */
  goBool?: boolean;
}

/** Every flag, in the order `--help` lists them. GIE's spelling is accepted as an alias where it differs. */
export const FLAGS: ReadonlyArray<{ section: string; flags: FlagDoc[] }> = [
  {
    section: "Pool (exactly one of the three modes)",
    flags: [
      {
        name: "pool-name",
        arg: "NAME",
        help: "follow the InferencePool NAME and the Ready pods it selects (list + watch)",
      },
      {
        name: "pool-namespace",
        arg: "NS",
        help: "namespace of the pool / selected pods",
        def: "$POD_NAMESPACE, the in-cluster namespace, the kubeconfig context's, else default",
      },
      {
        name: "pool-group",
        arg: "GROUP",
        help: "inference.networking.k8s.io (InferencePool v1) or inference.networking.x-k8s.io (v1alpha2)",
        def: "inference.networking.k8s.io",
      },
      {
        name: "selector",
        arg: "K=V,...",
        alias: "endpoint-selector",
        help: "select pods by labels without the InferencePool CRD (with --target-ports)",
      },
      {
        name: "target-ports",
        arg: "P[,P...]",
        alias: "endpoint-target-ports",
        help: "ports of each selected pod; each port is its own endpoint",
      },
      { name: "endpoints", arg: "IP:PORT,...", help: "static endpoints, no Kubernetes (IPv6 as [addr]:port)" },
      {
        name: "endpoints-file",
        arg: "FILE",
        help: "static endpoints from YAML: a list of {address, labels}, so engine labels work without a cluster",
      },
      {
        name: "kubeconfig",
        arg: "FILE",
        help: "kubeconfig to use",
        def: "in-cluster service account, $KUBECONFIG or ~/.kube/config",
      },
    ],
  },
  {
    section: "Engines and scheduling (docs/COMPANION.md)",
    flags: [
      {
        name: "config-file",
        arg: "FILE",
        help: "EndpointPickerConfig YAML; changes are picked up live (a broken new file is logged and the old config kept)",
      },
      { name: "config-text", arg: "YAML", help: "EndpointPickerConfig given inline (instead of --config-file)" },
      {
        name: "model-server-type",
        arg: "TYPE",
        help: `default engine for pods without the engine label when the config sets no defaultEngine: ${MODEL_SERVER_TYPES.join(" | ")}`,
        def: "vllm",
      },
      {
        name: "total-queued-requests-metric",
        arg: "SPEC",
        help: 'queued-requests spec for pods without the engine label ("" disables)',
      },
      {
        name: "total-running-requests-metric",
        arg: "SPEC",
        help: 'running-requests spec for pods without the engine label ("" disables)',
      },
      {
        name: "kv-cache-usage-percentage-metric",
        arg: "SPEC",
        help: 'KV-cache utilisation (0..1) spec for pods without the engine label ("" disables)',
      },
      { name: "lora-info-metric", arg: "SPEC", help: 'LoRA info spec for pods without the engine label ("" disables)' },
      {
        name: "cache-info-metric",
        arg: "SPEC",
        help: 'cache info spec (labels block_size, num_gpu_blocks) for pods without the engine label ("" disables)',
      },
    ],
  },
  {
    section: "Scraping",
    flags: [
      {
        name: "refresh-interval",
        arg: "DUR",
        alias: "refresh-metrics-interval",
        help: "scrape every endpoint this often (with jitter)",
        def: "50ms",
      },
      { name: "scrape-timeout", arg: "DUR", help: "give up on one scrape after this long", def: "1s" },
      {
        name: "max-backoff",
        arg: "DUR",
        help: "longest wait between scrapes of a failing endpoint (exponential backoff)",
        def: "5s",
      },
      {
        name: "max-page-bytes",
        arg: "BYTES",
        help: "refuse metric pages larger than this (suffixes Ki, Mi)",
        def: "8Mi",
      },
      {
        name: "staleness-threshold",
        arg: "DUR",
        alias: "metrics-staleness-threshold",
        help: "metrics older than this mark the endpoint stale",
        def: "2s",
      },
      {
        name: "model-server-metrics-port",
        arg: "PORT",
        help: "scrape this port instead of each endpoint's own (engines' metricsPort wins)",
      },
      {
        name: "model-server-metrics-path",
        arg: "PATH",
        help: "metrics path for engines without their own metricsPath; metrics-data-source's path wins (as in GIE)",
        def: "/metrics",
      },
      {
        name: "model-server-metrics-scheme",
        arg: "SCHEME",
        help: "http | https; metrics-data-source's scheme wins (as in GIE)",
        def: "http",
      },
      {
        name: "model-server-metrics-https-insecure-skip-verify",
        arg: "[=BOOL]",
        goBool: true,
        help: "do not verify model servers' certificates with https; metrics-data-source's insecureSkipVerify wins (as in GIE)",
        def: "true",
      },
      {
        name: "metrics-name-filter",
        arg: "[=BOOL]",
        goBool: true,
        help: "ask model servers for the wanted metric families only (?name[]=...), checked against each server's full page (docs/COMPANION.md)",
        def: "true",
      },
    ],
  },
  {
    section: "Service",
    flags: [
      { name: "port", arg: "PORT", help: "HTTP port (0 = any free port)", def: "9002" },
      { name: "host", arg: "ADDR", help: "address to listen on", def: "0.0.0.0" },
      {
        name: "long-poll-timeout",
        arg: "DUR",
        help: `how long GET /v1/snapshot?after=V is held before 304, less than ${FILTER_MAX_POLL_TIMEOUT_MS}ms; must stay ${POLL_TIMEOUT_SLACK_MS}ms below the filter's pollTimeoutMs (default ${FILTER_DEFAULT_POLL_TIMEOUT_MS}ms): above ${FILTER_DEFAULT_POLL_TIMEOUT_MS - POLL_TIMEOUT_SLACK_MS}ms, raise the filter's pollTimeoutMs and stalenessLimitMs (a warning is logged at start)`,
        def: `${DEFAULT_LONG_POLL_TIMEOUT_MS}ms`,
      },
      {
        name: "api-token",
        arg: "TOKEN",
        help: `require "authorization: Bearer TOKEN" on /v1/* (or set $${API_TOKEN_ENV}); without one, a warning at start unless --host is a loopback address`,
      },
      { name: "log-level", arg: "LEVEL", help: LOG_LEVELS.join(" | "), def: "info" },
      { name: "once", boolean: true, help: "resolve the pool, scrape once, print the endpoint states as JSON, exit" },
      { name: "help", boolean: true, help: "this text" },
    ],
  },
  {
    section: "Gateway exchange (docs/GATEWAYS.md)",
    flags: [
      {
        name: "peers",
        arg: "HOST:PORT,...",
        help: "peer companions to relay gateway reports to (POST /v1/gateway-relay every 50ms); IPv6 as [addr]:port",
      },
      {
        name: "peers-dns",
        arg: "NAME:PORT",
        help: "peer companions: the A/AAAA records of NAME (a headless Service), resolved every 5s, this process excluded",
      },
      {
        name: "max-report-bytes",
        arg: "BYTES",
        help: "refuse larger gateway reports with 413 (a relay may hold one such report)",
        def: "1Mi",
      },
      {
        name: "exchange-records",
        arg: "N",
        help: "prefix chain records kept for the gateways at most (and 10s at most)",
        def: "65536",
      },
    ],
  },
];

/** What the companion does with a flag of GIE's or llm-d-router's EPP that it does not define itself. */
export interface EppFlag {
  name: string;
  /** Go-style boolean (`--name`, `--name=BOOL`) or a flag with a value. */
  kind: "bool" | "value";
  /** `ignore`: accepted, a warning at start; `refuse`: a usage error; `log-level`: sets the log level. */
  action: "ignore" | "refuse" | "log-level";
  reason: string;
}

const NO_GRPC = "the companion serves HTTP on --port (snapshots, /healthz, /readyz, /metrics), no ext_proc gRPC";
const PLAIN_HTTP = "the companion serves plain HTTP (protect /v1/* with --api-token; put TLS in front of it if needed)";
const LOGS = "logs are JSON lines on stderr; --log-level sets the level";

/**
 * The flags of GIE's EPP (1.0-1.5: cmd/epp/runner, pkg/epp/server/options.go, the zap and -v logging flags)
 * and llm-d-router's (pkg/epp/server/options.go) that the companion has no flag of its own for. The flags it
 * shares (pool, selector, metric specs, intervals, config) are in FLAGS, under GIE's spelling or as aliases.
 */
export const EPP_FLAGS: readonly EppFlag[] = [
  { name: "grpc-port", kind: "value", action: "ignore", reason: NO_GRPC },
  { name: "grpc-health-port", kind: "value", action: "ignore", reason: NO_GRPC },
  { name: "metrics-port", kind: "value", action: "ignore", reason: "the companion's metrics are on --port, /metrics" },
  { name: "health-checking", kind: "bool", action: "ignore", reason: NO_GRPC },
  {
    name: "ha-enable-leader-election",
    kind: "bool",
    action: "ignore",
    reason: "every companion replica is active and serves the same snapshots; no leader (docs/DEPLOY.md)",
  },
  { name: "drain-timeout", kind: "value", action: "ignore", reason: "held long polls are answered 304 on SIGTERM" },
  { name: "grpc-max-recv-msg-size", kind: "value", action: "ignore", reason: NO_GRPC },
  { name: "grpc-max-send-msg-size", kind: "value", action: "ignore", reason: NO_GRPC },
  {
    name: "disable-endpoint-subset-filter",
    kind: "bool",
    action: "ignore",
    reason: "the filter does not read x-gateway-destination-endpoint-subset",
  },
  { name: "emit-endpoint-scores", kind: "bool", action: "ignore", reason: "the filter decides; no scores are emitted" },
  {
    name: "refresh-prometheus-metrics-interval",
    kind: "value",
    action: "ignore",
    reason: "the companion's metrics are computed when /metrics is read",
  },
  { name: "tracing", kind: "bool", action: "ignore", reason: "the companion emits no traces" },
  { name: "enable-pprof", kind: "bool", action: "ignore", reason: "no profiling endpoint" },
  { name: "enable-grpc-stream-metrics", kind: "bool", action: "ignore", reason: NO_GRPC },
  { name: "secure-serving", kind: "bool", action: "ignore", reason: PLAIN_HTTP },
  { name: "enable-cert-reload", kind: "bool", action: "ignore", reason: PLAIN_HTTP },
  { name: "tls-min-version", kind: "value", action: "ignore", reason: PLAIN_HTTP },
  { name: "tls-cipher-suites", kind: "value", action: "ignore", reason: PLAIN_HTTP },
  {
    name: "metrics-endpoint-auth",
    kind: "bool",
    action: "ignore",
    reason: "/metrics is open, like the probes (--api-token guards /v1/*)",
  },
  { name: "allow-experimental-plugins", kind: "bool", action: "ignore", reason: "the config's plugin types are fixed" },
  { name: "cert-path", kind: "value", action: "refuse", reason: PLAIN_HTTP },
  { name: "metrics-cert-dir", kind: "value", action: "refuse", reason: PLAIN_HTTP },
  { name: "metrics-client-ca-file", kind: "value", action: "refuse", reason: PLAIN_HTTP },
  {
    name: "v",
    kind: "value",
    action: "log-level",
    reason: "4 or more: debug, else info (when --log-level is not given)",
  },
  {
    name: "zap-log-level",
    kind: "value",
    action: "log-level",
    reason: "debug, info, error (panic: error), or a verbosity as -v (when --log-level is not given)",
  },
  { name: "zap-devel", kind: "bool", action: "ignore", reason: LOGS },
  { name: "zap-encoder", kind: "value", action: "ignore", reason: LOGS },
  { name: "zap-stacktrace-level", kind: "value", action: "ignore", reason: LOGS },
  { name: "zap-time-encoding", kind: "value", action: "ignore", reason: LOGS },
];

/** Go's strconv.ParseBool. */
function parseGoBool(text: string, flag: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(text)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(text)) return false;
  throw new UsageError(`--${flag}: "${text}" is not a boolean (true or false)`);
}

/**
 * Takes the Go-style flags out of argv (GIE's EPP flags of EPP_FLAGS, and the companion's own Go-style
 * booleans), which node's parseArgs cannot read: `--name=value`, `--name value`, a bare `--name` for booleans
 * (a following `true` / `false` is taken as its value, as GIE's Helm chart writes `--flag "false"`), and
 * `-v N` / `-vN` / `-v=N`. Returns the rest of argv and what was taken, in order.
 */
function takeGoFlags(argv: readonly string[]): { rest: string[]; taken: Array<{ name: string; value: string }> } {
  const bools = new Set([
    ...EPP_FLAGS.filter((f) => f.kind === "bool").map((f) => f.name),
    ...FLAGS.flatMap((s) => s.flags)
      .filter((f) => f.goBool)
      .map((f) => f.name),
  ]);
  const values = new Set(EPP_FLAGS.filter((f) => f.kind === "value").map((f) => f.name));
  const rest: string[] = [];
  const taken: Array<{ name: string; value: string }> = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    const long = /^--([^=]+)(?:=(.*))?$/s.exec(a);
    const short = long ? null : /^-v(?:=?(.+))?$/s.exec(a);
    const name = long ? long[1] : short ? "v" : null;
    const inline = long ? long[2] : short?.[1];
    if (name !== null && bools.has(name)) {
      let value = inline;
      if (value === undefined && /^(true|false)$/i.test(argv[i + 1] ?? "")) value = argv[++i];
      taken.push({ name, value: value ?? "true" });
    } else if (name !== null && values.has(name)) {
      let value = inline;
      if (value === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`--${name}: needs a value`);
        value = argv[++i];
      }
      taken.push({ name, value });
    } else {
      rest.push(a);
    }
  }
  return { rest, taken };
}

/** The log level a GIE `-v` / `--zap-log-level` value stands for. */
function eppLogLevel(name: string, value: string): LogLevel {
  const text = value.trim().toLowerCase();
  if (name === "zap-log-level" && (text === "debug" || text === "info" || text === "error")) return text;
  if (name === "zap-log-level" && text === "panic") return "error";
  if (!/^\d+$/.test(text))
    throw new UsageError(
      `--${name}: "${value}" is not ${name === "v" ? "a number" : "debug, info, error, panic or a number"}`,
    );
  return Number(text) >= 4 ? "debug" : "info"; // GIE's verbosity: 2 default, 3 verbose, 4 debug, 5 trace
}

export function helpText(): string {
  const lines = [
    "usage: node build/companion.mjs (--pool-name NAME | --selector K=V --target-ports P | --endpoints LIST | --endpoints-file FILE) [flags]",
    "",
    "Discovers a pool of model servers, scrapes their metrics with each engine's metric names, and serves the",
    "EPS1 snapshot the endpoint-picker filter reads (GET /v1/snapshot[?after=VERSION]). Durations: 50ms, 2s, 1m.",
  ];
  for (const { section, flags } of FLAGS) {
    lines.push("", `${section}:`);
    for (const f of flags) {
      const head = `  --${f.name}${f.arg ? (f.arg.startsWith("[") ? f.arg : ` ${f.arg}`) : ""}`;
      const tail = [f.help, f.def ? `(default: ${f.def})` : "", f.alias ? `[also --${f.alias}]` : ""]
        .filter(Boolean)
        .join(" ");
      lines.push(head.length < 38 ? `${head.padEnd(38)}${tail}` : `${head}\n${" ".repeat(38)}${tail}`);
    }
  }
  lines.push(
    "",
    "Flags of GIE's and llm-d-router's EPP are accepted too (docs/COMPANION.md, \"Flags of GIE and llm-d-router\"):",
    `  ${EPP_FLAGS.filter((f) => f.action === "log-level")
      .map((f) => `--${f.name}`)
      .join(", ")} set the log level; --${EPP_FLAGS.filter((f) => f.action === "refuse")
      .map((f) => f.name)
      .join(", --")} are refused; the others are ignored with a warning.`,
    "",
    "Exit status: 0 ok, 1 configuration error, 2 bad flags.",
  );
  return lines.join("\n") + "\n";
}

/**
 * `50ms`, `2s`, `1.5s`, `1m`, a bare number of milliseconds, or any other Go duration (`1m30s`, `500us`, `1h`:
 * what GIE's flags take).
 */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  const go = m ? null : parseGoDuration(text.trim());
  if (go !== null && go >= 0) return go;
  if (!m) throw new UsageError(`--${flag}: "${text}" is not a duration (examples: 50ms, 2s, 1m)`);
  const ms = Number(m[1]) * (m[2] === "s" ? 1000 : m[2] === "m" ? 60_000 : 1);
  if (!Number.isFinite(ms)) throw new UsageError(`--${flag}: "${text}" is not a duration`);
  return ms;
}

function parseByteSize(text: string, flag: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|K|M|G)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--${flag}: "${text}" is not a byte count (examples: 1048576, 512Ki, 8Mi)`);
  const unit = { Ki: 1024, K: 1000, Mi: 1024 ** 2, M: 1000 ** 2, Gi: 1024 ** 3, G: 1000 ** 3 }[m[2] ?? ""] ?? 1;
  return Number(m[1]) * unit;
}

/** A DNS name (labels of letters, digits and inner hyphens, an optional final dot) or an IPv4 literal. */
const HOST_NAME = String.raw`[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*\.?`;

/** `host:port` or `[IPv6]:port`; host a DNS name or a literal IP. */
function parsePeer(text: string, flag: string): PeerAddress {
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(text);
  const m = v6 && isIP(v6[1]) === 6 ? v6 : new RegExp(`^(${HOST_NAME}):(\\d+)$`).exec(text);
  const port = m ? parsePort(m[2]) : null;
  if (!m || port === null)
    throw new UsageError(`--${flag}: "${text}" is not HOST:PORT (a name or IP, IPv6 as [addr]:port, port 1-65535)`);
  return { host: m[1], port };
}

function parseSelector(text: string, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  // llm-d-router takes Kubernetes' full selector syntax; only its equality requirements are read here.
  const setBased = /\s(not)?in\s*\(/.exec(text)
    ? text
    : text
        .split(",")
        .map((s) => s.trim())
        .find((part) => /!=|^!|^[-A-Za-z0-9_./]+$/.test(part));
  if (setBased !== undefined)
    throw new UsageError(
      `--${flag}: "${setBased}" is a set-based or existence requirement (llm-d-router's selector syntax); only label=value pairs are supported: select the pods by labels they all have, or use an InferencePool`,
    );
  for (const part of text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9][-A-Za-z0-9_./]*)==?([-A-Za-z0-9_.]*)$/.exec(part);
    if (!m) throw new UsageError(`--${flag}: "${part}" is not a label=value pair`);
    out[m[1]] = m[2];
  }
  if (Object.keys(out).length === 0) throw new UsageError(`--${flag}: give at least one label=value pair`);
  return out;
}

function parsePorts(text: string, flag: string): number[] {
  const ports = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((p) => {
      const port = parsePort(p);
      if (port === null) throw new UsageError(`--${flag}: "${p}" is not a port number from 1 to 65535`);
      return port;
    });
  if (ports.length === 0) throw new UsageError(`--${flag}: give at least one port`);
  return [...new Set(ports)];
}

/**
 * The warning logged at start when `--long-poll-timeout` leaves less than POLL_TIMEOUT_SLACK_MS before the
 * filter's default pollTimeoutMs (then the filter must be configured with a larger one), else null.
 */
export function longPollTimeoutWarning(longPollTimeoutMs: number): string | null {
  if (longPollTimeoutMs + POLL_TIMEOUT_SLACK_MS <= FILTER_DEFAULT_POLL_TIMEOUT_MS) return null;
  const poll = longPollTimeoutMs + POLL_TIMEOUT_SLACK_MS;
  return (
    `--long-poll-timeout ${longPollTimeoutMs}ms leaves less than ${POLL_TIMEOUT_SLACK_MS}ms before the filter's default pollTimeoutMs (${FILTER_DEFAULT_POLL_TIMEOUT_MS}ms): ` +
    `the filter's pollTimeoutMs must be raised to ${poll}ms or more, or its long polls time out before the companion answers them (and a timed-out poll ejects this replica); ` +
    `raise its stalenessLimitMs (default ${FILTER_DEFAULT_STALENESS_LIMIT_MS}ms) above pollTimeoutMs + ${longPollTimeoutMs}ms too, since an unchanged pool is confirmed only once per long poll`
  );
}

/** Loopback addresses: only processes of this host (or pod) reach a companion listening there. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * The warning logged at start when the companion listens on a non-loopback address without a token: then
 * anything that reaches its port reads the pool's snapshot and can post gateway reports. Else null.
 */
export function apiTokenWarning(host: string, apiToken: string | undefined): string | null {
  if (apiToken !== undefined || isLoopbackHost(host)) return null;
  return (
    `no API token while listening on ${host}: /v1/* (the snapshot, the gateway reports) is open to anything that reaches this port; ` +
    `give --api-token TOKEN or $${API_TOKEN_ENV} (and the filter's apiToken), or listen on a loopback address (--host 127.0.0.1)`
  );
}

/** Every warning to log when the service starts, with its log fields. */
export function startupWarnings(options: CompanionOptions): Array<{ msg: string; fields: Record<string, unknown> }> {
  const out: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const poll = longPollTimeoutWarning(options.longPollTimeoutMs);
  if (poll !== null) out.push({ msg: poll, fields: { longPollTimeoutMs: options.longPollTimeoutMs } });
  const token = apiTokenWarning(options.host, options.apiToken);
  if (token !== null) out.push({ msg: token, fields: { host: options.host } });
  for (const f of options.ignoredFlags ?? [])
    out.push({
      msg: `${f.flag} (a flag of GIE's EPP) is ignored: ${f.reason}`,
      fields: { flag: f.flag, value: f.value },
    });
  return out;
}

/** Flags whose values are taken as given even when wrapped in double quotes. */
const UNQUOTED_FLAGS = new Set(["config-text", "api-token"]);

export type CliResult = { kind: "help" } | { kind: "run"; options: CompanionOptions };

export function parseCli(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): CliResult {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const { flags } of FLAGS) {
    for (const f of flags) {
      if (f.goBool) continue;
      options[f.name] = { type: f.boolean ? "boolean" : "string" };
      if (f.alias) options[f.alias] = { type: "string" };
    }
  }
  const { rest, taken } = takeGoFlags(argv);
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: rest, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
  }
  if (values.help) return { kind: "help" };

  const str = (name: string): string | undefined => {
    const doc = FLAGS.flatMap((s) => s.flags).find((f) => f.name === name);
    const v = values[name] as string | undefined;
    const alias = doc?.alias ? (values[doc.alias] as string | undefined) : undefined;
    if (v !== undefined && alias !== undefined)
      throw new UsageError(`--${name} and --${doc!.alias} are the same flag; give one`);
    const text = v ?? alias;
    // GIE's Helm chart writes some flags as `--flag="value"`, quotes included in the argument: unquote.
    return text !== undefined && !UNQUOTED_FLAGS.has(name) && /^"[^"]*"$/.test(text) ? text.slice(1, -1) : text;
  };
  const eppFlags = new Map(EPP_FLAGS.map((f) => [f.name, f]));
  const ignoredFlags: IgnoredFlag[] = [];
  let eppLevel: LogLevel | undefined;
  const goBools = new Map<string, boolean>();
  for (const { name, value } of taken) {
    const epp = eppFlags.get(name);
    if (!epp) {
      goBools.set(name, parseGoBool(value, name)); // a Go-style boolean of FLAGS
      continue;
    }
    if (epp.kind === "bool") parseGoBool(value, name);
    if (epp.action === "refuse")
      throw new UsageError(`--${name}: not supported by the companion (a flag of GIE's EPP): ${epp.reason}`);
    if (epp.action === "log-level") eppLevel = eppLogLevel(name, value);
    else ignoredFlags.push({ flag: `--${name}`, value, reason: epp.reason });
  }
  const duration = (name: string, def: string): number => parseDuration(str(name) ?? def, name);

  const poolName = str("pool-name");
  const selector = str("selector");
  const endpoints = str("endpoints");
  const endpointsFile = str("endpoints-file");
  const modes = [
    poolName !== undefined,
    selector !== undefined,
    endpoints !== undefined || endpointsFile !== undefined,
  ].filter(Boolean).length;
  if (modes === 0)
    throw new UsageError("no pool: give --pool-name, --selector with --target-ports, or --endpoints/--endpoints-file");
  if (modes > 1) throw new UsageError("give one pool mode: --pool-name, --selector or --endpoints/--endpoints-file");
  const namespace = str("pool-namespace");
  if (namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace))
    throw new UsageError(`--pool-namespace: "${namespace}" is not a namespace name`);
  const targetPorts = str("target-ports");
  const groupText = str("pool-group") ?? "inference.networking.k8s.io";
  if (!(groupText in POOL_GROUPS))
    throw new UsageError(`--pool-group: "${groupText}" is not one of ${Object.keys(POOL_GROUPS).join(", ")}`);
  if (str("pool-group") !== undefined && poolName === undefined)
    throw new UsageError("--pool-group only applies with --pool-name");
  if (targetPorts !== undefined && selector === undefined)
    throw new UsageError("--target-ports only applies with --selector (an InferencePool names its own ports)");

  let pool: PoolOptions;
  if (poolName !== undefined) {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(poolName))
      throw new UsageError(`--pool-name: "${poolName}" is not a resource name`);
    pool = { kind: "inference-pool", name: poolName, namespace, group: groupText as PoolGroup };
  } else if (selector !== undefined) {
    if (targetPorts === undefined) throw new UsageError("--selector needs --target-ports");
    pool = {
      kind: "selector",
      selector: parseSelector(selector, "selector"),
      targetPorts: parsePorts(targetPorts, "target-ports"),
      namespace,
    };
  } else {
    if (namespace !== undefined) throw new UsageError("--pool-namespace does not apply to static endpoints");
    const list = (endpoints ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)
      .map((a) => {
        try {
          return parseEndpointAddress(a);
        } catch (e) {
          throw new UsageError(`--endpoints: ${(e as Error).message}`);
        }
      });
    if (endpoints !== undefined && list.length === 0 && endpointsFile === undefined)
      throw new UsageError("--endpoints: the list is empty");
    pool = { kind: "static", endpoints: list, file: endpointsFile };
  }
  if (str("kubeconfig") !== undefined && pool.kind === "static")
    throw new UsageError("--kubeconfig does not apply to static endpoints");

  const configFile = str("config-file");
  const configText = str("config-text");
  if (configFile !== undefined && configText !== undefined)
    throw new UsageError("give --config-file or --config-text, not both");

  const engineFlags: EngineFlags = {};
  const type = str("model-server-type");
  if (type !== undefined) {
    if (!(MODEL_SERVER_TYPES as readonly string[]).includes(type))
      throw new UsageError(`--model-server-type: "${type}" is not one of ${MODEL_SERVER_TYPES.join(", ")}`);
    engineFlags.modelServerType = type as ModelServerType;
  }
  for (const [key, flag] of Object.entries(ENGINE_FLAG_NAMES) as Array<[keyof typeof ENGINE_FLAG_NAMES, string]>) {
    const text = str(flag.slice(2));
    if (text === undefined) continue;
    try {
      parseMetricSpec(text);
    } catch (e) {
      if (e instanceof MetricSpecError) throw new UsageError(`${flag}: ${e.message}`);
      throw e;
    }
    engineFlags[key] = text;
  }

  const metricsPortText = str("model-server-metrics-port");
  const metricsPort = metricsPortText === undefined ? undefined : parsePort(metricsPortText);
  if (metricsPort === null)
    throw new UsageError(`--model-server-metrics-port: "${metricsPortText}" is not a port number from 1 to 65535`);
  const metricsPath = str("model-server-metrics-path");
  if (metricsPath !== undefined && !metricsPath.startsWith("/"))
    throw new UsageError(`--model-server-metrics-path: "${metricsPath}" must start with /`);
  if (metricsPath !== undefined) engineFlags.metricsPath = metricsPath;
  const scheme = str("model-server-metrics-scheme");
  if (scheme !== undefined && scheme !== "http" && scheme !== "https")
    throw new UsageError(`--model-server-metrics-scheme: "${scheme}" is not http or https`);
  if (scheme !== undefined) engineFlags.metricsScheme = scheme;
  const insecureSkipVerify = goBools.get("model-server-metrics-https-insecure-skip-verify");
  if (insecureSkipVerify !== undefined) engineFlags.metricsInsecureSkipVerify = insecureSkipVerify;

  const refreshIntervalMs = duration("refresh-interval", "50ms");
  if (refreshIntervalMs < 1) throw new UsageError("--refresh-interval: must be at least 1ms");
  const scrapeTimeoutMs = duration("scrape-timeout", "1s");
  if (scrapeTimeoutMs < 1) throw new UsageError("--scrape-timeout: must be at least 1ms");
  const maxBackoffMs = duration("max-backoff", "5s");
  if (maxBackoffMs < refreshIntervalMs) throw new UsageError("--max-backoff: must be at least --refresh-interval");
  const stalenessThresholdMs = duration("staleness-threshold", "2s");
  if (stalenessThresholdMs < 1) throw new UsageError("--staleness-threshold: must be at least 1ms");
  if (stalenessThresholdMs < refreshIntervalMs) {
    throw new UsageError(
      `--staleness-threshold (${stalenessThresholdMs}ms) must be at least --refresh-interval (${refreshIntervalMs}ms): with a shorter threshold every endpoint turns stale between its scrapes`,
    );
  }
  const maxPageBytes = parseByteSize(str("max-page-bytes") ?? "8Mi", "max-page-bytes");
  if (maxPageBytes < 1024) throw new UsageError("--max-page-bytes: must be at least 1024");
  const longPollTimeoutMs = duration("long-poll-timeout", `${DEFAULT_LONG_POLL_TIMEOUT_MS}ms`);
  if (longPollTimeoutMs >= FILTER_MAX_POLL_TIMEOUT_MS) {
    throw new UsageError(
      `--long-poll-timeout: must be less than ${FILTER_MAX_POLL_TIMEOUT_MS}ms, the filter's largest pollTimeoutMs (a held request must be answered before the filter's call times out), got ${longPollTimeoutMs}ms`,
    );
  }

  const portText = str("port") ?? "9002";
  const port = portText === "0" ? 0 : parsePort(portText);
  if (port === null) throw new UsageError(`--port: "${portText}" is not a port number from 0 to 65535`);
  const logLevel = str("log-level") ?? eppLevel ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    throw new UsageError(`--log-level: "${logLevel}" is not one of ${LOG_LEVELS.join(", ")}`);
  const apiToken = str("api-token") ?? env[API_TOKEN_ENV];
  if (apiToken !== undefined && apiToken.length === 0) throw new UsageError("--api-token: empty token");
  if (apiToken !== undefined && apiToken.trim() === API_TOKEN_PLACEHOLDER)
    throw new UsageError(
      `--api-token / $${API_TOKEN_ENV}: "${API_TOKEN_PLACEHOLDER}" is the placeholder of the shipped manifests, not a token: create the Secret endpoint-picker-api-token with a random token (docs/DEPLOY.md)`,
    );

  const peersText = str("peers");
  const peers =
    peersText === undefined
      ? []
      : peersText
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)
          .map((p) => parsePeer(p, "peers"));
  if (peersText !== undefined && peers.length === 0) throw new UsageError("--peers: the list is empty");
  const peersDnsText = str("peers-dns");
  const peersDns = peersDnsText === undefined ? undefined : parsePeer(peersDnsText.trim(), "peers-dns");
  const maxReportBytes = parseByteSize(str("max-report-bytes") ?? "1Mi", "max-report-bytes");
  if (maxReportBytes < 1024 || maxReportBytes > 256 * 1024 ** 2)
    throw new UsageError(`--max-report-bytes: must be from 1Ki to 256Mi, got ${maxReportBytes}`);
  const recordsText = str("exchange-records") ?? "65536";
  const exchangeRecords = /^\d+$/.test(recordsText.trim()) ? Number(recordsText) : NaN;
  if (!(exchangeRecords >= 1 && exchangeRecords <= 16_777_216))
    throw new UsageError(`--exchange-records: "${recordsText}" is not a record count from 1 to 16777216`);

  return {
    kind: "run",
    options: {
      pool,
      kubeconfig: str("kubeconfig"),
      configFile,
      configText,
      engineFlags,
      metricsPort,
      metricsPath: undefined,
      metricsNameFilter: goBools.get("metrics-name-filter") ?? true,
      refreshIntervalMs,
      scrapeTimeoutMs,
      maxBackoffMs,
      maxPageBytes,
      stalenessThresholdMs,
      port,
      host: str("host") ?? "0.0.0.0",
      longPollTimeoutMs,
      apiToken,
      once: values.once === true,
      logLevel: logLevel as LogLevel,
      peers,
      peersDns,
      maxReportBytes,
      exchangeRecords,
      ignoredFlags,
    },
  };
}
