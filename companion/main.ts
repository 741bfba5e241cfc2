// Companion entry point: flags, then either `--once` or the service. Exit 0 ok, 1 configuration error,
// 2 bad flags. Prints `companion listening on HOST:PORT` on stdout once the API is up; logs go to stderr.
import { UsageError, helpText, parseCli } from "./cli";
import { Companion } from "./companion";
import { ConfigError } from "./config-fields";
import { createLogger } from "./log";

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseCli(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`companion: ${e.message}\nRun with --help for the flags.\n`);
    return 2;
  }
  if (parsed.kind === "help") {
    process.stdout.write(helpText());
    return 0;
  }
  const options = parsed.options;
  const log = createLogger(options.once && options.logLevel === "info" ? "warn" : options.logLevel);
  let companion: Companion;
  try {
    companion = await Companion.create(options, log);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`companion: configuration error: ${e.message}\n`);
    return 1;
  }

  if (options.once) {
    try {
      const result = await companion.once();
      process.stdout.write(JSON.stringify(result, null, 2) + "\n");
      return 0;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      process.stderr.write(`companion: configuration error: ${e.message}\n`);
      return 1;
    }
  }

  const address = await companion.start();
  process.stdout.write(`companion listening on ${address.address}:${address.port}\n`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info("stopping", { signal });
    void companion.stop().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  try {
    await companion.discover();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`companion: configuration error: ${e.message}\n`);
    await companion.stop();
    return 1;
  }
  return -1; // keep running
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`companion: unexpected failure: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(70);
  },
);
