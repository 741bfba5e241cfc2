// How the worker VMs share session affinity's bindings (filter/session-table.ts): on each tick a VM writes
// the bindings it made during the last two ticks under `endpoint-picker.sessions.<vm id>` and applies the
// other VMs' journals that changed since it last read them (the VMs are found in the in-flight table, as the
// prefix journals are). Gateway replicas share nothing here: the token on each response pins the session
// wherever its next request lands.
import { Pool } from "./pool";
import { PEERS_VM } from "./inflight";
import { SessionTable } from "./session-table";
import { encode, getShared, setShared, lastCas } from "./host";

export function sessionsKey(vm: u32): ArrayBuffer {
  return encode("endpoint-picker.sessions." + vm.toString());
}

export class SessionExchange {
  private key: ArrayBuffer = new ArrayBuffer(0);
  private otherKeys: Map<u32, ArrayBuffer> = new Map();
  private otherCas: Map<u32, u32> = new Map();

  /** Publishes this VM's new bindings and applies the other VMs' (a tick's work). */
  share(table: SessionTable, pool: Pool, vm: u32): void {
    if (this.key.byteLength == 0) this.key = sessionsKey(vm);
    const mine = table.publish();
    if (mine != null) setShared(this.key, mine);
    const others = pool.inflight.otherVms;
    for (let k = 0; k < others.length; k++) {
      const other = unchecked(others[k]);
      if (other == PEERS_VM) continue;
      let key: ArrayBuffer;
      if (this.otherKeys.has(other)) key = this.otherKeys.get(other);
      else {
        key = sessionsKey(other);
        this.otherKeys.set(other, key);
      }
      const j = getShared(key);
      if (j == null) continue;
      if (this.otherCas.has(other) && this.otherCas.get(other) == lastCas) continue; // nothing new
      this.otherCas.set(other, lastCas);
      table.apply(j);
    }
  }
}
