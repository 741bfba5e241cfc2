// Static pools: `--endpoints IP:PORT,...` and `--endpoints-file FILE` (YAML list of {address, labels}).
import { readFile } from "node:fs/promises";
import YAML from "yaml";
import { parseEndpointAddress } from "./address";
import { ConfigError, asObject, fail, onlyKeys } from "./config-fields";
import { byAddress, type EndpointAddress, type PoolSource, type PoolTarget } from "./types";

/** Parses an endpoints file's text; errors name the entry and field. */
export function parseEndpointsFile(text: string, source: string): PoolTarget[] {
  let doc: unknown;
  try {
    doc = YAML.parse(text, { uniqueKeys: true, strict: true });
  } catch (e) {
    throw new ConfigError(`${source}: not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (!Array.isArray(doc)) fail(source, "must be a YAML list of {address, labels}", doc);
  const seen = new Set<string>();
  return doc.map((item, i) => {
    const path = `${source}[${i}]`;
    const entry = typeof item === "string" ? { address: item } : asObject(item, path);
    onlyKeys(entry, path, ["address", "labels"]);
    if (typeof entry.address !== "string") fail(`${path}.address`, "must be a string IP:PORT", entry.address);
    let parsed: EndpointAddress;
    try {
      parsed = parseEndpointAddress(entry.address);
    } catch (e) {
      throw new ConfigError(`${path}.address: ${(e as Error).message}`);
    }
    if (seen.has(parsed.address)) fail(`${path}.address`, "listed twice", entry.address);
    seen.add(parsed.address);
    const labels: Record<string, string> = {};
    if (entry.labels !== undefined && entry.labels !== null) {
      for (const [k, v] of Object.entries(asObject(entry.labels, `${path}.labels`))) {
        if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean")
          fail(`${path}.labels.${k}`, "must be a string", v);
        labels[k] = String(v);
      }
    }
    return { address: parsed.address, ip: parsed.ip, port: parsed.port, labels };
  });
}

export class StaticPool implements PoolSource {
  readonly description: string;
  constructor(
    private readonly endpoints: readonly EndpointAddress[],
    private readonly file: string | undefined,
  ) {
    this.description = file ? `static endpoints from ${file}` : `static endpoints (${endpoints.length})`;
  }

  async start(onChange: (targets: PoolTarget[]) => void): Promise<void> {
    const targets = new Map<string, PoolTarget>();
    for (const e of this.endpoints) targets.set(e.address, { address: e.address, ip: e.ip, port: e.port, labels: {} });
    if (this.file) {
      let text: string;
      try {
        text = await readFile(this.file, "utf8");
      } catch (e) {
        throw new ConfigError(`--endpoints-file ${this.file}: ${(e as Error).message}`);
      }
      for (const t of parseEndpointsFile(text, this.file)) targets.set(t.address, t); // the file's labels win
    }
    onChange([...targets.values()].sort(byAddress));
  }

  async stop(): Promise<void> {}
}
