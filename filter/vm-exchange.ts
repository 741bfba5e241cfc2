// What the worker VMs of one Envoy process share with each other on every tick: each VM's identity, its
// requests in flight (one shared key, a section per VM, CAS), and the prefix chains it sent (one journal
// key per VM). No request writes shared data: a VM learns the others' picks within a tick or two.
import { WasmResultValues } from "@solo-io/proxy-runtime/assembly";
import { Pool, INFLIGHT_KEY, VM_COUNTER_KEY, GATEWAY_KEY } from "./pool";
import { PrefixIndex } from "./prefix";
import { JournalWriter, JournalReader, RecordSink, journalKey } from "./journal";
import { PEERS_VM } from "./inflight";
import { nextU64 } from "./rng";
import { getShared, setShared, lastCas } from "./host";

/** In-flight counts are republished at least this often even when unchanged (a heartbeat for the others). */
const PUBLISH_EVERY_MS: u64 = 500;

export class VmExchange {
  /** This VM's identity in the lease, the in-flight table and the journal keys (random, never 0). */
  vm: u32 = 0;
  /** The chains this VM sent during the current tick, published on the next one. */
  journal: JournalWriter = new JournalWriter();
  private journals: JournalReader = new JournalReader();
  private journalKey: ArrayBuffer = new ArrayBuffer(0);
  private lastPublishMs: u64 = 0;
  private knowsGateway: bool = false;
  /** Other VMs' journal keys and the CAS of the journal last applied (unchanged journals are skipped). */
  private otherJournalKeys: Map<u32, ArrayBuffer> = new Map();
  private otherJournalCas: Map<u32, u32> = new Map();

  constructor() {
    this.vm = allocateVmId();
    this.journalKey = journalKey(this.vm);
  }

  /** Publishes this VM's in-flight counts and reads the other VMs' (one shared key, CAS). */
  shareInFlight(pool: Pool, now: u64): void {
    if (!this.knowsGateway) {
      const id = getShared(GATEWAY_KEY);
      if (id != null && id.byteLength == 8 && load<u64>(changetype<usize>(id)) != 0) {
        pool.inflight.setGateway(load<u64>(changetype<usize>(id)));
        this.knowsGateway = true;
      }
    }
    pool.inflight.refreshSpread(now);
    const table = getShared(INFLIGHT_KEY);
    const cas = lastCas;
    const inflight = pool.inflight;
    inflight.readOthers(table, this.vm, now);
    if (!inflight.changed && now - this.lastPublishMs < PUBLISH_EVERY_MS) return;
    if (
      setShared(INFLIGHT_KEY, inflight.publish(table, this.vm, now), table == null ? 0 : cas) == WasmResultValues.Ok &&
      table != null
    ) {
      this.lastPublishMs = now;
    } else {
      // Another VM wrote first, or the key was absent (cas 0 sets unconditionally, so a VM writing at the
      // same moment may have replaced our section): publish again next tick, with a real CAS.
      inflight.changed = true;
    }
  }

  /**
   * Publishes the chains this VM sent since its last tick; applies the other VMs' new ones (and the other
   * gateways', PEERS_VM) to `index`, handing this Envoy's to `outbox` (the gateway reporter, when it leads).
   */
  sharePrefixes(pool: Pool, index: PrefixIndex | null, outbox: RecordSink | null): void {
    const mine = this.journal.publish();
    if (mine != null) setShared(this.journalKey, mine);
    if (index == null) return;
    const others = pool.inflight.otherVms;
    for (let k = 0; k < others.length; k++) {
      const vm = unchecked(others[k]);
      let key: ArrayBuffer;
      if (this.otherJournalKeys.has(vm)) key = this.otherJournalKeys.get(vm);
      else {
        key = journalKey(vm);
        this.otherJournalKeys.set(vm, key);
      }
      const j = getShared(key);
      if (j == null) continue;
      if (this.otherJournalCas.has(vm) && this.otherJournalCas.get(vm) == lastCas) continue; // nothing new
      this.otherJournalCas.set(vm, lastCas);
      this.journals.apply(vm, j, index, vm == PEERS_VM ? null : outbox);
    }
  }

  /** The VM is going away: its journal is emptied, so readers stop copying it. */
  leave(): void {
    setShared(this.journalKey, new ArrayBuffer(0));
  }
}

/**
 * A worker VM's identity: a number from a shared counter (unique when VMs start one after another) in the
 * low bits, random bits above (unique when two VMs race for the same counter value on different threads).
 */
function allocateVmId(): u32 {
  let n: u32 = 0;
  for (let attempt = 0; attempt < 16; attempt++) {
    const v = getShared(VM_COUNTER_KEY);
    const cas = lastCas;
    n = v != null && v.byteLength == 4 ? load<u32>(changetype<usize>(v)) + 1 : 1;
    const next = new ArrayBuffer(4);
    store<u32>(changetype<usize>(next), n);
    if (setShared(VM_COUNTER_KEY, next, v == null ? 0 : cas) == WasmResultValues.Ok) break;
  }
  const id = ((<u32>(nextU64() >> 32)) & 0xffff0000) | (n & 0xffff);
  return id == 0 ? 1 : id;
}
