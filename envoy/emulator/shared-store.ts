// Shared data and shared queues, scoped by vm_id, with cpp-host's rules:
// - one CAS counter for the whole process (never 0);
// - set with cas == 0 always succeeds; with a cas that differs from the stored one -> CAS_MISMATCH;
//   setting a key that does not exist succeeds whatever the cas;
// - get of an unknown key -> NOT_FOUND.
// One SharedStore is one "Envoy process": hosts sharing a store share data like workers of one Envoy.
import { WasmResult } from "./abi";

export interface SharedValue {
  value: Uint8Array;
  cas: number;
}

export interface QueueOwner {
  notify(token: number): void;
}

interface Queue {
  vmId: string;
  name: string;
  items: Uint8Array[];
  owner: QueueOwner;
  contextId: number;
}

export class SharedStore {
  private data = new Map<string, Map<string, SharedValue>>();
  private nextCasValue = 1;
  private queues = new Map<number, Queue>();
  private queueTokens = new Map<string, number>();
  private nextQueueToken = 1;

  private nextCas(): number {
    const v = this.nextCasValue;
    this.nextCasValue = (this.nextCasValue + 1) >>> 0;
    if (this.nextCasValue === 0) this.nextCasValue = 1;
    return v;
  }

  get(vmId: string, key: string): SharedValue | undefined {
    return this.data.get(vmId)?.get(key);
  }

  /** Returns a WasmResult code. */
  set(vmId: string, key: string, value: Uint8Array, cas = 0): number {
    let map = this.data.get(vmId);
    if (!map) {
      map = new Map();
      this.data.set(vmId, map);
    }
    const old = map.get(key);
    if (old && cas !== 0 && cas !== old.cas) return WasmResult.CasMismatch;
    map.set(key, { value: Uint8Array.from(value), cas: this.nextCas() });
    return WasmResult.Ok;
  }

  keys(vmId: string): string[] {
    return [...(this.data.get(vmId)?.keys() ?? [])];
  }

  /** Re-registering a queue keeps its token and moves notifications to the newest registrant, like cpp-host. */
  registerQueue(vmId: string, name: string, owner: QueueOwner, contextId: number): number {
    const key = `${vmId}\0${name}`;
    let token = this.queueTokens.get(key);
    if (token === undefined) {
      token = this.nextQueueToken++;
      this.queueTokens.set(key, token);
      this.queues.set(token, { vmId, name, items: [], owner, contextId });
    } else {
      const q = this.queues.get(token)!;
      q.owner = owner;
      q.contextId = contextId;
    }
    return token;
  }

  resolveQueue(vmId: string, name: string): number | undefined {
    return this.queueTokens.get(`${vmId}\0${name}`);
  }

  /** WasmResult.Ok with the item, Empty, or NotFound for an unknown token. */
  dequeue(token: number): { result: number; item?: Uint8Array } {
    const q = this.queues.get(token);
    if (!q) return { result: WasmResult.NotFound };
    const item = q.items.shift();
    return item ? { result: WasmResult.Ok, item } : { result: WasmResult.Empty };
  }

  enqueue(token: number, item: Uint8Array): number {
    const q = this.queues.get(token);
    if (!q) return WasmResult.NotFound;
    q.items.push(Uint8Array.from(item));
    q.owner.notify(token);
    return WasmResult.Ok;
  }

  queueContext(token: number): number | undefined {
    return this.queues.get(token)?.contextId;
  }
}

/** A JS view of one vm_id's shared data, for tests, the simulator and the CLI. */
export class SharedDataView {
  constructor(
    private store: SharedStore,
    private vmId: string,
  ) {}
  get(key: string): SharedValue | undefined {
    return this.store.get(this.vmId, key);
  }
  /** Returns the WasmResult code (0 = Ok, 8 = CAS mismatch). */
  set(key: string, value: Uint8Array | string, cas = 0): number {
    return this.store.set(this.vmId, key, typeof value === "string" ? new TextEncoder().encode(value) : value, cas);
  }
  keys(): string[] {
    return this.store.keys(this.vmId);
  }
}
