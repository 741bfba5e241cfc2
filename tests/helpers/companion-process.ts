// The bundled companion (build/companion.mjs) as a child process, and gateway reports for its tests.
import { spawn, type ChildProcess } from "node:child_process";
import { encodeReport, type ChainRecord } from "../../companion/gateway-wire";

export interface RunningCompanion {
  child: ChildProcess;
  /** http://HOST:PORT it printed when ready. */
  base: string;
  stderr: () => string;
}

/** Starts the companion with `args` and waits for its "companion listening on" line. */
export async function spawnCompanion(args: string[]): Promise<RunningCompanion> {
  const child = spawn(process.execPath, ["build/companion.mjs", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const base = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /companion listening on ([\d.]+):(\d+)/.exec(out);
      if (m) resolve(`http://${m[1]}:${m[2]}`);
    });
    child.once("exit", (code) => reject(new Error(`companion exited ${code}: ${err}`)));
  });
  return { child, base, stderr: () => err };
}

/** A gateway report: counts as [address hash, count] pairs, and chain records. */
export function gatewayReport(
  gatewayId: bigint,
  seq: bigint,
  inflight: Array<[number, number]> = [],
  records: ChainRecord[] = [],
): Uint8Array<ArrayBuffer> {
  return encodeReport({
    gatewayId,
    reportSeq: seq,
    cursors: [],
    inflight: inflight.map(([addressHash, count]) => ({ addressHash, count })),
    adapters: [],
    records,
  });
}
