// The gateway exchange's flags (docs/GATEWAYS.md): --peers, --peers-dns, --max-report-bytes, --exchange-records.
import { test } from "node:test";
import assert from "node:assert/strict";
import { helpText, parseCli, type CompanionOptions } from "../../companion/cli";

const run = (args: string[]): CompanionOptions => {
  const r = parseCli(["--endpoints", "10.0.0.1:8000", ...args], {});
  assert.equal(r.kind, "run");
  return (r as { options: CompanionOptions }).options;
};

test("exchange flags: defaults, peers by name, IP and [IPv6], a DNS name with its port", () => {
  const d = run([]);
  assert.deepEqual([d.peers, d.peersDns, d.maxReportBytes, d.exchangeRecords], [[], undefined, 1024 * 1024, 65_536]);
  const o = run([
    "--peers",
    "companion-1.ns.svc:9002, 10.0.0.7:9002,[fd00::2]:9003",
    "--peers-dns",
    "companion-peers.default.svc:9002",
    "--max-report-bytes",
    "256Ki",
    "--exchange-records",
    "1000",
  ]);
  assert.deepEqual(o.peers, [
    { host: "companion-1.ns.svc", port: 9002 },
    { host: "10.0.0.7", port: 9002 },
    { host: "fd00::2", port: 9003 },
  ]);
  assert.deepEqual(o.peersDns, { host: "companion-peers.default.svc", port: 9002 });
  assert.deepEqual([o.maxReportBytes, o.exchangeRecords], [256 * 1024, 1000]);
  for (const flag of ["--peers HOST:PORT", "--peers-dns NAME:PORT", "--max-report-bytes BYTES", "--exchange-records N"])
    assert.ok(helpText().includes(flag), flag);
});

test("exchange flags: bad values are usage errors naming the flag", () => {
  const cases: Array<[string[], RegExp]> = [
    [["--peers", "companion"], /^--peers: "companion" is not HOST:PORT/],
    [["--peers", "10.0.0.1:0"], /^--peers: "10.0.0.1:0" is not HOST:PORT/],
    [["--peers", "fd00::2:9002"], /^--peers: "fd00::2:9002" is not HOST:PORT/],
    [["--peers", " , "], /^--peers: the list is empty$/],
    [["--peers", "[fd00:::2]:9002"], /^--peers: "\[fd00:::2\]:9002" is not HOST:PORT/],
    [["--peers-dns", "svc"], /^--peers-dns: "svc" is not HOST:PORT/],
    [["--peers-dns=bad-.svc:1"], /^--peers-dns: "bad-.svc:1" is not HOST:PORT/],
    [["--max-report-bytes", "100"], /^--max-report-bytes: must be from 1Ki to 256Mi, got 100$/],
    [["--max-report-bytes", "1Gi"], /^--max-report-bytes: must be from 1Ki to 256Mi/],
    [["--exchange-records", "0"], /^--exchange-records: "0" is not a record count from 1 to 16777216$/],
    [["--exchange-records", "1e3"], /^--exchange-records: "1e3" is not a record count/],
  ];
  for (const [args, message] of cases)
    assert.throws(() => parseCli(["--endpoints", "10.0.0.1:8000", ...args], {}), { message }, args.join(" "));
});
