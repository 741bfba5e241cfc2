import { decodeSnapshot, Snapshot } from "../../filter/snapshot";
import { InFlight, REMOTE_MAX_AGE_MS } from "../../filter/inflight";
import { shouldTakeLease, encodeLease, leaseOwner, leaseExpiry } from "../../filter/lease";
import { buildBlob, TestEndpoint } from "./blob";

function snapOf(addresses: string[]): Snapshot {
  const eps: TestEndpoint[] = [];
  for (let i = 0; i < addresses.length; i++) eps.push(new TestEndpoint(addresses[i]));
  return decodeSnapshot(buildBlob(1, eps))!;
}

describe("fetcher lease", () => {
  it("is taken when absent, malformed or expired, renewed by its owner, refused while another holds it", () => {
    expect(shouldTakeLease(null, 7, 1000)).toBe(true);
    expect(shouldTakeLease(new ArrayBuffer(3), 7, 1000)).toBe(true);
    const held = encodeLease(9, 2000);
    expect(leaseOwner(held)).toBe(9);
    expect(leaseExpiry(held)).toBe(2000);
    expect(shouldTakeLease(held, 7, 1999)).toBe(false);
    expect(shouldTakeLease(held, 9, 1999)).toBe(true);
    expect(shouldTakeLease(held, 7, 2000)).toBe(true);
  });

  it("is not taken from a holder that renewed a moment after this VM read its clock; a clock stepped back is", () => {
    // The holder renewed at 1001 (expiry 2001) after this VM read 1000: one TTL and a millisecond ahead.
    expect(shouldTakeLease(encodeLease(9, 2001), 7, 1000)).toBe(false);
    expect(shouldTakeLease(encodeLease(9, 2999), 7, 1000)).toBe(false);
    // An expiry more than two TTLs ahead was written before the clock stepped back.
    expect(shouldTakeLease(encodeLease(9, 3001), 7, 1000)).toBe(true);
  });
});

describe("in-flight accounting", () => {
  it("counts starts and finishes and survives a snapshot change by address", () => {
    const f = new InFlight();
    const a = snapOf(["10.0.0.1:1", "10.0.0.2:1"]);
    f.rebase(a);
    f.started(1);
    f.started(1);
    f.started(0);
    const b = snapOf(["10.0.0.3:1", "10.0.0.2:1", "10.0.0.1:1"]);
    f.rebase(b);
    expect(f.total(1)).toBe(2);
    expect(f.total(2)).toBe(1);
    expect(f.total(0)).toBe(0);
    f.finished(a.addrHash[1]);
    expect(f.total(1)).toBe(1);
  });

  it("keeps counts of an endpoint that left the snapshot until its streams finish or it comes back", () => {
    const f = new InFlight();
    const a = snapOf(["10.0.0.1:1", "10.0.0.2:1"]);
    f.rebase(a);
    f.started(0);
    f.started(0);
    f.rebase(snapOf(["10.0.0.2:1"]));
    f.finished(a.addrHash[0]);
    f.rebase(snapOf(["10.0.0.1:1", "10.0.0.2:1"]));
    expect(f.total(0)).toBe(1);
    f.finished(a.addrHash[0]);
    f.finished(a.addrHash[0]); // one too many: never below zero
    expect(f.total(0)).toBe(0);
  });

  it("publishes per-VM sections in one table and adds the other VMs' fresh sections", () => {
    const s = snapOf(["10.0.0.1:1", "10.0.0.2:1"]);
    const vmA = new InFlight(),
      vmB = new InFlight(),
      vmC = new InFlight();
    vmA.rebase(s);
    vmB.rebase(s);
    vmC.rebase(s);
    vmA.started(0);
    vmA.started(0);
    vmB.started(1);
    let table = vmA.publish(null, 1, 1000);
    table = vmB.publish(table, 2, 1010);
    table = vmA.publish(table, 1, 1020); // republishing replaces A's section, B's stays
    vmC.readOthers(table, 3, 1030);
    expect(vmC.total(0)).toBe(2);
    expect(vmC.total(1)).toBe(1);
    vmA.readOthers(table, 1, 1030);
    expect(vmA.total(0)).toBe(2); // its own local 2, nothing of its own section counted twice
    expect(vmA.total(1)).toBe(1);
    vmC.readOthers(table, 3, 1010 + REMOTE_MAX_AGE_MS + 1); // B stopped publishing: its section no longer counts
    expect(vmC.total(1)).toBe(0);
    expect(vmC.total(0)).toBe(2);
    const pruned = vmC.publish(table, 3, 1030 + REMOTE_MAX_AGE_MS + 5);
    vmB.readOthers(pruned, 2, 1030 + REMOTE_MAX_AGE_MS + 5);
    expect(vmB.total(0)).toBe(0); // A's section was dropped as too old by C's rewrite
  });

  it("carries each VM's requests per (endpoint, adapter) to the other VMs", () => {
    const s = snapOf(["10.0.0.1:1", "10.0.0.2:1"]);
    const vmA = new InFlight(),
      vmB = new InFlight();
    vmA.rebase(s);
    vmB.rebase(s);
    vmA.started(1);
    vmA.adapters.started(1, 0xabc);
    vmA.started(1);
    vmA.adapters.started(1, 0xabc);
    vmA.started(0);
    vmA.adapters.started(0, 0xdef);
    let table = vmA.publish(null, 1, 1000);
    vmB.readOthers(table, 2, 1000);
    expect(vmB.adapters.busy(1, 0xabc)).toBe(true);
    expect(vmB.adapters.busy(0, 0xdef)).toBe(true);
    expect(vmB.adapters.busy(0, 0xabc)).toBe(false);
    expect(vmB.adapters.touched.length).toBe(2);
    // Both of A's requests for 0xabc at endpoint 1 finish: after A republishes, B sees the adapter drained.
    vmA.finished(s.addrHash[1]);
    vmA.adapters.finished(s.addrHash[1], 0xabc);
    vmA.finished(s.addrHash[1]);
    vmA.adapters.finished(s.addrHash[1], 0xabc);
    table = vmA.publish(table, 1, 1020);
    vmB.readOthers(table, 2, 1020);
    expect(vmB.adapters.busy(1, 0xabc)).toBe(false);
    expect(vmB.adapters.busy(0, 0xdef)).toBe(true);
    expect(vmB.adapters.touched.length).toBe(1);
    // A section claiming more triples than the table holds is dropped without a trap.
    store<u32>(changetype<usize>(table), 1000, 8 + 8);
    vmB.readOthers(table, 2, 1020);
    expect(vmB.adapters.busy(0, 0xdef)).toBe(false);
  });

  it("ignores malformed tables", () => {
    const s = snapOf(["10.0.0.1:1"]);
    const f = new InFlight();
    f.rebase(s);
    const junk = new ArrayBuffer(40);
    store<u32>(changetype<usize>(junk), 0x32464c49);
    store<u32>(changetype<usize>(junk), 1000, 4);
    store<u32>(changetype<usize>(junk), 5, 12); // section claims 5 pairs in 16 bytes
    f.readOthers(junk, 1, 0);
    expect(f.total(0)).toBe(0);
    const fresh = f.publish(junk, 1, 0);
    f.readOthers(fresh, 2, 0);
    expect(f.total(0)).toBe(0);
  });
});
