// Format 1 of the snapshot, for filters released before format 2 (docs/SNAPSHOT.md, "Upgrades"). They ask
// for `application/vnd.endpoint-picker.snapshot` without a format; the companion answers them in format 1,
// so the companion can be upgraded before the filter without a filter ever refusing a snapshot. Format 1
// knows only the built-in plugins: other scorers are left out of it. Written from the same content as
// format 2; remove once no format-1 filter is deployed.
import {
  fnv1a,
  clampU16,
  clampU32,
  MAGIC,
  HEADER_SIZE,
  MAX_BASE_MODELS,
  type Snapshot,
  type ProfilePlugin,
} from "./snapshot";

const WEIGHT_ORDER = [
  "queue-scorer",
  "kv-cache-utilization-scorer",
  "prefix-cache-scorer",
  "lora-affinity-scorer",
  "running-requests-size-scorer",
];
const PICKERS = ["max-score-picker", "random-picker", "weighted-random-picker"];

function param(plugins: ProfilePlugin[], type: string, name: string, fallback: number): number {
  const v = plugins.find((p) => p.type === type)?.parameters[name];
  return typeof v === "number" ? v : fallback;
}

/** The snapshot in format 1 (what filters before format 2 decode). */
export function encodeFormat1(s: Snapshot): Buffer {
  const parts: Buffer[] = [];
  const put = (size: number, write: (b: Buffer) => void): void => {
    const b = Buffer.alloc(size);
    write(b);
    parts.push(b);
  };
  const str = (text: string): void => {
    const t = Buffer.from(text, "utf8");
    put(2, (b) => b.writeUInt16LE(t.length));
    parts.push(t);
  };
  const plugins = s.profile.plugins;
  const picker = plugins.find((p) => p.role === "picker");
  // Without a saturation detector nothing is saturated: thresholds no endpoint reaches.
  const detector = plugins.some((p) => p.role === "saturation-detector");
  put(HEADER_SIZE, (b) => {
    b.write(MAGIC, 0, "latin1");
    b.writeUInt16LE(1, 4);
    b.writeUInt16LE(HEADER_SIZE, 6);
    b.writeBigUInt64LE(s.version, 8);
    b.writeBigUInt64LE(BigInt(Math.floor(s.generatedAtMs)), 16);
  });
  put(38, (b) => {
    b.writeUInt16LE(38, 0);
    WEIGHT_ORDER.forEach((type, k) =>
      b.writeFloatLE(
        plugins.filter((p) => p.type === type).reduce((w, p) => w + p.weight, 0),
        2 + 4 * k,
      ),
    );
    b.writeUInt8(Math.max(0, PICKERS.indexOf(picker?.type ?? "")), 22);
    b.writeUInt8(
      Math.min(
        255,
        Math.max(
          0,
          (typeof picker?.parameters.maxNumOfEndpoints === "number" ? picker.parameters.maxNumOfEndpoints : 1) - 1,
        ),
      ),
      23,
    );
    b.writeUInt16LE(clampU16(param(plugins, "prefix-cache-scorer", "blockSizeChars", 64)), 24);
    b.writeUInt16LE(clampU16(param(plugins, "prefix-cache-scorer", "maxPrefixBlocksToMatch", 256)), 26);
    b.writeUInt16LE(clampU16(param(plugins, "prefix-cache-scorer", "lruCapacityPerServer", 31250)), 28);
    b.writeFloatLE(detector ? param(plugins, "utilization-detector", "queueDepthThreshold", 5) : 3e38, 30);
    b.writeFloatLE(detector ? param(plugins, "utilization-detector", "kvCacheUtilThreshold", 0.8) : 3e38, 34);
  });
  put(4, (b) => b.writeUInt32LE(s.endpoints.length));
  for (const e of s.endpoints) {
    str(e.address);
    str(""); // engine: never read by format-1 filters
    const flags =
      (e.stale ? 1 : 0) |
      (e.error ? 2 : 0) |
      (e.queued !== null ? 4 : 0) |
      (e.running !== null ? 8 : 0) |
      (e.kvUsage !== null ? 16 : 0) |
      (e.lora !== null ? 32 : 0);
    put(19, (b) => {
      b.writeUInt8(flags, 0);
      b.writeUInt32LE(clampU32(e.queued), 1);
      b.writeUInt32LE(clampU32(e.running), 5);
      b.writeFloatLE(e.kvUsage === null || !Number.isFinite(e.kvUsage) ? 0 : Math.min(1, Math.max(0, e.kvUsage)), 9);
      b.writeUInt32LE(0, 13); // ageMs: never read
      b.writeUInt16LE(clampU16(e.lora?.max ?? 0), 17);
    });
    for (const list of [e.lora?.running ?? [], e.lora?.waiting ?? []]) {
      put(2, (b) => b.writeUInt16LE(list.length));
      for (const a of list) str(a);
    }
    put(8, () => {}); // cache block size and count: never read
  }
  const bases = s.baseModels.slice(0, MAX_BASE_MODELS);
  put(2, (b) => b.writeUInt16LE(bases.length));
  for (const m of bases) str(m);
  const out = Buffer.concat(parts);
  out.writeUInt32LE(out.length, 24);
  out.writeUInt32LE(fnv1a(out, HEADER_SIZE, out.length), 28);
  return out;
}
