// InferencePool objects and Pods, as the Kubernetes API returns them, turned into pool targets.
//   inference.networking.k8s.io/v1:       spec.selector.matchLabels, spec.targetPorts[].number
//   inference.networking.x-k8s.io/v1alpha2: spec.selector (a label map), spec.targetPortNumber
import { formatAddress } from "./address";
import { ConfigError, isObject } from "./config-fields";
import type { PoolTarget } from "./types";

export interface PoolSpec {
  selector: Record<string, string>;
  targetPorts: number[];
}

/**
 * The annotations restricting which of the pool's target ports a pod serves on (comma-separated ports):
 * llm-d-router's, else GIE's (which llm-d-router still reads as its fallback).
 */
export const ACTIVE_PORTS_ANNOTATIONS = ["llm-d.ai/active-ports", "inference.networking.k8s.io/active-ports"] as const;

/**
 * The target ports a pod serves on: all of them without an annotation; with one, those it lists (blanks
 * around entries allowed; entries that are no port, or no target port, are skipped; an empty annotation
 * leaves none), in the pool's order.
 */
export function activePorts(
  annotations: Readonly<Record<string, string>> | undefined,
  targetPorts: readonly number[],
): number[] {
  const key = ACTIVE_PORTS_ANNOTATIONS.find((k) => annotations?.[k] !== undefined);
  if (key === undefined) return [...targetPorts];
  const listed = new Set(
    annotations![key]
      .split(",")
      .map((s) => s.trim())
      .filter((s) => /^\d+$/.test(s))
      .map(Number),
  );
  return targetPorts.filter((p) => listed.has(p));
}

const isPort = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;

function labelMap(value: unknown, path: string): Record<string, string> {
  if (!isObject(value)) throw new ConfigError(`${path}: must be a map of labels, got ${JSON.stringify(value)}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new ConfigError(`${path}.${k}: must be a string, got ${JSON.stringify(v)}`);
    out[k] = v;
  }
  if (Object.keys(out).length === 0)
    throw new ConfigError(`${path}: empty selector (it would select every pod in the namespace)`);
  return out;
}

export function parseInferencePool(obj: unknown, version: "v1" | "v1alpha2"): PoolSpec {
  const spec = isObject(obj) && isObject(obj.spec) ? obj.spec : null;
  if (!spec) throw new ConfigError(`InferencePool: no spec, got ${JSON.stringify(obj)?.slice(0, 200)}`);
  if (version === "v1") {
    const selector = isObject(spec.selector) ? spec.selector.matchLabels : undefined;
    const ports = spec.targetPorts;
    if (!Array.isArray(ports) || ports.length === 0)
      throw new ConfigError(`spec.targetPorts: must list at least one port, got ${JSON.stringify(ports)}`);
    const targetPorts = ports.map((p, i) => {
      const n = isObject(p) ? p.number : undefined;
      if (!isPort(n))
        throw new ConfigError(
          `spec.targetPorts[${i}].number: must be a port from 1 to 65535, got ${JSON.stringify(n)}`,
        );
      return n;
    });
    return { selector: labelMap(selector, "spec.selector.matchLabels"), targetPorts: [...new Set(targetPorts)] };
  }
  const port = spec.targetPortNumber;
  if (!isPort(port))
    throw new ConfigError(`spec.targetPortNumber: must be a port from 1 to 65535, got ${JSON.stringify(port)}`);
  return { selector: labelMap(spec.selector, "spec.selector"), targetPorts: [port] };
}

/** `k=v,k2=v2`, the labelSelector query parameter for a label map. */
export const selectorString = (labels: Readonly<Record<string, string>>): string =>
  Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");

/** The minimal pod shape we read (the client's V1Pod and raw watch JSON both fit). */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: unknown;
  };
  status?: { podIP?: string; conditions?: Array<{ type?: string; status?: string }> };
}

/** Only Ready, not-terminating pods with an IP serve; each of their target ports is one endpoint. */
export function podTargets(pod: PodLike, targetPorts: readonly number[]): PoolTarget[] {
  const meta = pod.metadata ?? {};
  if (meta.deletionTimestamp) return [];
  const ip = pod.status?.podIP;
  if (!ip) return [];
  const ready = (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
  if (!ready) return [];
  const ports = activePorts(meta.annotations, targetPorts);
  const labels = { ...(meta.labels ?? {}) };
  const podName = `${meta.namespace ?? ""}/${meta.name ?? ""}`;
  return ports.map((port) => ({ address: formatAddress(ip, port), ip, port, labels, pod: podName }));
}
