// node build/emulator.mjs -c envoy/envoy.yaml [--concurrency N] [--log-level L]
import { availableParallelism } from "node:os";
import { startGateway } from "./gateway";
import { parseLogLevel } from "./abi";

const USAGE = `usage: node build/emulator.mjs -c BOOTSTRAP.yaml [--concurrency N] [--log-level trace|debug|info|warn|error|critical|off]

Serves the listeners of an Envoy v3 bootstrap (the subset in docs/EMULATOR.md), running the
envoy.filters.http.wasm filter in N worker VMs (default: the number of CPUs, like Envoy).`;

function main(argv: string[]): Promise<void> | void {
  let config = "",
    concurrency = availableParallelism(),
    logLevel = "info";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "-c" || a === "--config-path") config = value();
    else if (a === "--concurrency") {
      const v = value();
      concurrency = Number(v);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256)
        throw new Error(`--concurrency: must be an integer 1..256, got "${v}"`);
    } else if (a === "-l" || a === "--log-level") {
      logLevel = value();
      parseLogLevel(logLevel);
    } else if (a === "-h" || a === "--help") {
      process.stdout.write(USAGE + "\n");
      return;
    } else throw new Error(`unknown argument "${a}"\n${USAGE}`);
  }
  if (!config) throw new Error(`-c BOOTSTRAP.yaml is required\n${USAGE}`);
  return startGateway({ bootstrap: config, concurrency, logLevel }).then((g) => {
    for (const l of g.listeners) process.stdout.write(`emulator listening on ${l.host}:${l.port}\n`);
    const stop = () => {
      g.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

try {
  const r = main(process.argv.slice(2));
  if (r)
    r.catch((e: Error) => {
      process.stderr.write(`emulator: ${e.message}\n`);
      process.exit(1);
    });
} catch (e) {
  process.stderr.write(`emulator: ${(e as Error).message}\n`);
  process.exit(2);
}
