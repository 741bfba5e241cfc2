// What discovery hands to the rest of the companion: the current set of endpoints with their labels.

export interface PoolTarget {
  /** Canonical `IP:PORT` (IPv6 bracketed): the endpoint's identity and what the filter routes to. */
  address: string;
  ip: string;
  port: number;
  /** Pod labels (or the static file's labels): the engine label is read from here. */
  labels: Readonly<Record<string, string>>;
  /** `namespace/name` of the pod, for operators; absent for static endpoints. */
  pod?: string;
}

export interface PoolSource {
  /** Starts discovery; `onChange` gets every new full target list. Resolves once the first list is known. */
  start(onChange: (targets: PoolTarget[]) => void): Promise<void>;
  stop(): Promise<void>;
  /** Why the pool cannot be served right now (e.g. the InferencePool does not exist), or null. */
  problem?(): string | null;
  /** A short description for logs, e.g. `InferencePool default/llama (inference.networking.k8s.io/v1)`. */
  readonly description: string;
}

export const byAddress = (a: PoolTarget, b: PoolTarget): number => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0);
