// Types and constants that more than one companion module needs: the InferencePool API groups, what an
// endpoint is (its address, the pool target discovery hands out) and what a pool source offers. A type used
// by one module stays in that module; it moves here when a second module needs it.
// (The snapshot's types, SchedulingProfile and the rest, are the wire contract and live in snapshot.ts.)

/** The InferencePool API groups (`--pool-group`) and the version served under each. */
export const POOL_GROUPS = {
  "inference.networking.k8s.io": "v1",
  "inference.networking.x-k8s.io": "v1alpha2",
} as const;
export type PoolGroup = keyof typeof POOL_GROUPS;

/** A literal endpoint address (address.ts parses and formats them). */
export interface EndpointAddress {
  /** The IP without brackets, as node:http wants it. */
  ip: string;
  port: number;
  /** Canonical `IP:PORT` / `[IPv6]:PORT`: the endpoint's identity, what goes into the snapshot and the destination header. */
  address: string;
}

/** One endpoint of the pool, as discovery hands it to the rest of the companion. */
export interface PoolTarget extends EndpointAddress {
  /** Pod labels (or the static file's labels): the engine label is read from here. */
  labels: Readonly<Record<string, string>>;
  /** `namespace/name` of the pod, for operators; absent for static endpoints. */
  pod?: string;
}

/** Discovery: static lists (static-pool.ts) or Kubernetes (kube-pool.ts). */
export interface PoolSource {
  /** Starts discovery; `onChange` gets every new full target list. Resolves once the first list is known. */
  start(onChange: (targets: PoolTarget[]) => void): Promise<void>;
  stop(): Promise<void>;
  /** Why the pool cannot be served right now (e.g. the InferencePool does not exist), or null. */
  problem?(): string | null;
  /** A short description for logs, e.g. `InferencePool default/llama (inference.networking.k8s.io/v1)`. */
  readonly description: string;
}

/** Orders targets by address: every list of targets (and so every snapshot) is sorted this way. */
export const byAddress = (a: PoolTarget, b: PoolTarget): number =>
  a.address < b.address ? -1 : a.address > b.address ? 1 : 0;
