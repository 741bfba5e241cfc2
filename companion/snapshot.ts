// The snapshot wire format (docs/SNAPSHOT.md): the one contract between the companion and the filter.
// Encoder, and a reference decoder for tests and tools; the filter has its own decoder in AssemblyScript.
// Both are pinned by the golden sample in tests/fixtures/snapshot/.

/**
 * What a profile plugin does in the decision (GIE's plugin kinds; the saturation detector is GIE's too; an
 * admitter is llm-d-router's admission plugin, asked before the scoring whether a request may be served).
 */
export type PluginRole = "filter" | "scorer" | "picker" | "saturation-detector" | "admitter";
export type ParamValue = number | string;

/** One plugin of the scheduling profile, with every parameter resolved (the filter has no defaults). */
export interface ProfilePlugin {
  role: PluginRole;
  /** GIE's type name (`queue-scorer`, `max-score-picker`...); a filter ignores types it does not know. */
  type: string;
  /** Scorer weight (0 for other roles). */
  weight: number;
  parameters: Record<string, ParamValue>;
}

export interface SchedulingProfile {
  plugins: ProfilePlugin[];
  /**
   * Prefill/decode disaggregation (llm-d-router's disagg-profile-handler, docs/SNAPSHOT.md section 8): this
   * profile is the decode profile, `prefill` the prefill profile the filter runs when the decider says so.
   * Absent: one profile for every request.
   */
  disaggregation?: Disaggregation;
}

/** How the prefill stage is decided (section 8). */
export type PrefillDecider = "none" | "prefix-based" | "always";

export interface Disaggregation {
  /** `none`: never prefill (no decider configured); `always`: prefill-first or always-disagg-pd-decider. */
  decider: PrefillDecider;
  /** prefix-based-pd-decider's `nonCachedTokens` (0: never) and `promptTokens` (0: no minimum). */
  nonCachedTokens: number;
  promptTokens: number;
  /** Prompt bytes per estimated token (llm-d-router's estimate backend: 4). */
  bytesPerToken: number;
  /** The prefill profile's plugins. */
  prefill: ProfilePlugin[];
}

/** Pod role bits (section 7), from the `llm-d.ai/role` label (companion/kube-pool.ts, `podRole`). */
export const POD_ROLE_PREFILL = 1;
export const POD_ROLE_DECODE = 2;
export const POD_ROLE_ENCODE = 4;
/** The pod has a role label (0: none, which llm-d-router's decode-filter keeps and prefill-filter drops). */
export const POD_ROLE_LABELED = 0x80;

export interface SnapshotEndpoint {
  address: string;
  stale: boolean;
  error: boolean;
  /** The metrics port refused the connection (the pod is probably gone): the filter uses it only as a last resort. */
  unreachable?: boolean;
  queued: number | null;
  running: number | null;
  kvUsage: number | null;
  lora: { running: string[]; waiting: string[]; max: number } | null;
  /** POD_ROLE_* bits from the pod's `llm-d.ai/role` label; absent or 0: no label. */
  role?: number;
}

/** Everything a snapshot says apart from its version and build time: what the content key compares. */
export interface SnapshotContent {
  profile: SchedulingProfile;
  endpoints: SnapshotEndpoint[];
  /** Base models the pool serves; a request naming another model is for a LoRA adapter (empty: unknown). */
  baseModels: string[];
  /** InferenceObjective priorities by name (companion/objectives.ts); absent or empty: none known. */
  objectives?: Array<{ name: string; priority: number }>;
  /**
   * InferenceModelRewrite rules (companion/model-rewrites.ts), in precedence order: the first rule that
   * matches a request's model wins. Absent or empty: no rewrites.
   */
  modelRewrites?: ModelRewriteRule[];
  /** Flow control (docs/SNAPSHOT.md, section 6): set while the `flowControl` feature gate is on; else off. */
  flowControl?: SnapshotFlowControl | null;
}

/** How a band chooses among its flows (llm-d-router's fairness policies). */
export type FlowFairness = "global-strict" | "round-robin" | "program-aware";
/** How a flow orders its requests (llm-d-router's ordering policies). */
export type FlowOrdering = "fcfs" | "edf" | "slo-deadline";

/** One priority band of flow control, every limit resolved (the filter keeps no defaults). */
export interface FlowBand {
  priority: number;
  /** Requests held in the band at most (llm-d-router's default 5000). */
  maxRequests: number;
  /** Request body bytes held in the band at most (default 1e9). */
  maxBytes: number;
  fairness: FlowFairness;
  ordering: FlowOrdering;
}

/** The `flowControl` section of the EndpointPickerConfig, resolved (companion/flow-control-config.ts). */
export interface SnapshotFlowControl {
  /** defaultRequestTTL: the longest a request waits while the pool has endpoints; 0 = no expiry. */
  defaultRequestTtlMs: number;
  /** noEndpointRequestTTL: the longest a request waits while the pool is empty; 0 = until an endpoint appears. */
  noEndpointRequestTtlMs: number;
  /** Requests held over all bands at most; 0 = no limit. */
  maxRequests: number;
  /** Request body bytes held over all bands at most; 0 = no limit. */
  maxBytes: number;
  /** static-usage-limit-policy's `threshold`: dispatch while the pool's saturation is below it. */
  usageLimit: number;
  /** defaultPriorityBand: the template of bands not listed (its priority is 0). */
  defaultBand: FlowBand;
  /** defaultNegativePriorityBand: the template of unlisted bands below 0 (else defaultBand's copy). */
  defaultNegativeBand: FlowBand;
  /** priorityBands, distinct priorities, highest first. */
  bands: FlowBand[];
  /** priority-holdback-policy (instead of one usageLimit): per-band ceilings from maxCeiling down to minCeiling. */
  holdback?: FlowHoldback | null;
  /** soft-reflective-ceiling-policy (instead of one usageLimit): ceilings that fall with saturation. */
  softReflective?: boolean;
  /** program-aware-fairness's least-attained-service parameters (bands whose fairness is program-aware). */
  programAware?: FlowProgramAware | null;
}

/** priority-holdback-policy: linear ceilings by rank or by priority value. */
export interface FlowHoldback {
  domain: "rank" | "value";
  minCeiling: number;
  maxCeiling: number;
}

/** program-aware-fairness (strategy las): flow score = wService x (1 - service) + wHeadWait x head wait, normalised. */
export interface FlowProgramAware {
  weightService: number;
  weightHeadWait: number;
  /** Attained service halves every this many seconds; 0: no decay. */
  halfLifeSeconds: number;
  /** A flow with no completion for this long is forgotten. */
  evictionTtlSeconds: number;
  /** Ours: flows served above their band's mean stop at (1 - this) of the band's ceiling; 0 or absent: off. */
  heavyFlowHeadroom?: number;
}

/** One model rewrite rule as the filter applies it (docs/SNAPSHOT.md, section 5). */
export interface ModelRewriteRule {
  /** Exact model names the rule matches; empty: every request with a model. */
  matches: string[];
  /**
   * The models a matching request is rewritten to, each chosen with probability weight / total weight
   * (weights resolved by the companion). No targets, or a total of 0: the model is left as it is.
   */
  targets: Array<{ model: string; weight: number }>;
}

export interface Snapshot extends SnapshotContent {
  version: bigint;
  generatedAtMs: number;
}

/**
 * What a later revision of format 2 may add, and decoders of this revision must skip: `tail` appended to
 * every plugin entry, every endpoint record and every section, and a whole section of an unknown id.
 * Only tests write it (tests/fixtures/snapshot/golden-later.bin).
 */
export interface LaterRevision {
  tail: Buffer;
  sectionId: number;
}

/** Base model names a snapshot carries at most. */
export const MAX_BASE_MODELS = 64;
/** InferenceObjectives a snapshot carries at most (sorted by name: the first ones). */
export const MAX_OBJECTIVES = 1024;
/** Model rewrite rules a snapshot carries at most (in precedence order: the first ones). */
export const MAX_REWRITE_RULES = 256;
/** Exact model matches per rewrite rule at most. */
export const MAX_REWRITE_MATCHES = 32;
/** Targets per rewrite rule at most. */
export const MAX_REWRITE_TARGETS = 16;
/** A rewrite target's weight at most (llm-d-router's CRD: 1..1,000,000). */
export const MAX_REWRITE_WEIGHT = 1_000_000;

export const MAGIC = "EPS1";
export const FORMAT = 2;
export const HEADER_SIZE = 32;

export const SECTION_PROFILE = 1;
export const SECTION_ENDPOINTS = 2;
export const SECTION_BASE_MODELS = 3;
export const SECTION_OBJECTIVES = 4;
export const SECTION_MODEL_REWRITES = 5;
export const SECTION_FLOW_CONTROL = 6;
export const SECTION_ROLES = 7;
export const SECTION_DISAGGREGATION = 8;
const DECIDERS: readonly PrefillDecider[] = ["none", "prefix-based", "always"]; // wire 0..2

/** Wire codes of the fairness and ordering policies (section 6). */
export const FLOW_FAIRNESS: readonly FlowFairness[] = ["global-strict", "round-robin", "program-aware"];
export const FLOW_ORDERING: readonly FlowOrdering[] = ["fcfs", "edf", "slo-deadline"];
/** Explicit priority bands a snapshot carries at most (highest first: the first ones). */
export const MAX_FLOW_BANDS = 0xffff;

const ROLES: readonly PluginRole[] = ["filter", "scorer", "picker", "saturation-detector", "admitter"]; // wire 1..5
const PARAM_NUMBER = 0,
  PARAM_STRING = 1;
const FLAG_STALE = 1,
  FLAG_ERROR = 2,
  FLAG_QUEUE = 4,
  FLAG_RUNNING = 8,
  FLAG_KV = 16,
  FLAG_LORA = 32,
  FLAG_UNREACHABLE = 64;

export function fnv1a(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

class Writer {
  private buf = Buffer.alloc(4096);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
  }
  u64(v: bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(v, this.len);
    this.len += 8;
  }
  f32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.len);
    this.len += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.len);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  str(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    if (bytes.length > 0xffff) throw new Error(`snapshot string too long (${bytes.length} bytes)`);
    this.u16(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.len);
    this.len += bytes.length;
  }
  /** Writes a u32 length placeholder; `end` patches it with the number of bytes written after it. */
  start(): number {
    const at = this.len;
    this.u32(0);
    return at;
  }
  end(at: number): void {
    this.buf.writeUInt32LE(this.len - at - 4, at);
  }
  finish(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/** A count as the u32 the wire carries (0 when absent or not a number). */
export const clampU32 = (v: number | null): number =>
  v === null || !Number.isFinite(v) ? 0 : Math.min(0xffffffff, Math.max(0, Math.round(v)));
export const clampU16 = (v: number): number => Math.min(0xffff, Math.max(0, Math.round(v)));

function section(w: Writer, id: number, later: LaterRevision | undefined, body: () => void): void {
  w.u16(id);
  const at = w.start();
  body();
  if (later) w.bytes(later.tail);
  w.end(at);
}

function writeProfile(w: Writer, p: SchedulingProfile, later: LaterRevision | undefined): void {
  writePlugins(w, p.plugins, later);
}

function writePlugins(w: Writer, plugins: ProfilePlugin[], later: LaterRevision | undefined): void {
  if (plugins.length > 0xffff) throw new Error("snapshot: too many profile plugins");
  w.u16(plugins.length);
  for (const plugin of plugins) {
    const at = w.start();
    const role = ROLES.indexOf(plugin.role);
    if (role < 0) throw new Error(`snapshot: unknown plugin role ${plugin.role}`);
    w.u8(role + 1);
    w.str(plugin.type);
    w.f32(plugin.weight);
    const params = Object.entries(plugin.parameters);
    w.u16(params.length);
    for (const [name, value] of params) {
      w.str(name);
      if (typeof value === "number") {
        w.u8(PARAM_NUMBER);
        w.f64(value);
      } else {
        w.u8(PARAM_STRING);
        w.str(value);
      }
    }
    if (later) w.bytes(later.tail);
    w.end(at);
  }
}

function writeEndpoint(w: Writer, e: SnapshotEndpoint, later: LaterRevision | undefined): void {
  const at = w.start();
  let flags = 0;
  if (e.stale) flags |= FLAG_STALE;
  if (e.error) flags |= FLAG_ERROR;
  if (e.queued !== null) flags |= FLAG_QUEUE;
  if (e.running !== null) flags |= FLAG_RUNNING;
  if (e.kvUsage !== null) flags |= FLAG_KV;
  if (e.lora !== null) flags |= FLAG_LORA;
  if (e.unreachable) flags |= FLAG_UNREACHABLE;
  w.u8(flags);
  w.u32(clampU32(e.queued));
  w.u32(clampU32(e.running));
  w.f32(e.kvUsage === null || !Number.isFinite(e.kvUsage) ? 0 : Math.min(1, Math.max(0, e.kvUsage)));
  w.u16(clampU16(e.lora?.max ?? 0));
  w.str(e.address);
  const running = e.lora?.running ?? [];
  const waiting = e.lora?.waiting ?? [];
  w.u16(running.length);
  for (const a of running) w.str(a);
  w.u16(waiting.length);
  for (const a of waiting) w.str(a);
  if (later) w.bytes(later.tail);
  w.end(at);
}

/** band := i32 priority, u32 maxRequests, f64 maxBytes, u8 fairness, u8 ordering (docs/SNAPSHOT.md). */
function writeBand(w: Writer, b: FlowBand): void {
  const fairness = FLOW_FAIRNESS.indexOf(b.fairness);
  const ordering = FLOW_ORDERING.indexOf(b.ordering);
  if (fairness < 0) throw new Error(`snapshot: unknown fairness policy ${b.fairness}`);
  if (ordering < 0) throw new Error(`snapshot: unknown ordering policy ${b.ordering}`);
  w.u32(b.priority >>> 0); // an i32, two's complement
  w.u32(clampU32(b.maxRequests));
  w.f64(b.maxBytes);
  w.u8(fairness);
  w.u8(ordering);
}

export function encodeSnapshot(s: Snapshot, later?: LaterRevision): Buffer {
  const w = new Writer();
  for (const c of MAGIC) w.u8(c.charCodeAt(0));
  w.u16(FORMAT);
  w.u16(HEADER_SIZE);
  w.u64(s.version);
  w.u64(BigInt(Math.floor(s.generatedAtMs)));
  w.u32(0); // totalSize, patched below
  w.u32(0); // checksum, patched below
  section(w, SECTION_PROFILE, later, () => writeProfile(w, s.profile, later));
  section(w, SECTION_ENDPOINTS, later, () => {
    w.u32(s.endpoints.length);
    for (const e of s.endpoints) writeEndpoint(w, e, later);
  });
  const bases = s.baseModels.slice(0, MAX_BASE_MODELS);
  if (bases.length > 0)
    section(w, SECTION_BASE_MODELS, later, () => {
      w.u16(bases.length);
      for (const m of bases) w.str(m);
    });
  const objectives = (s.objectives ?? []).slice(0, MAX_OBJECTIVES);
  if (objectives.length > 0)
    section(w, SECTION_OBJECTIVES, later, () => {
      w.u16(objectives.length);
      for (const o of objectives) {
        w.str(o.name);
        w.u32(o.priority >>> 0); // an i32, two's complement
      }
    });
  const rules = (s.modelRewrites ?? []).slice(0, MAX_REWRITE_RULES);
  if (rules.length > 0)
    section(w, SECTION_MODEL_REWRITES, later, () => {
      w.u16(rules.length);
      for (const rule of rules) {
        const at = w.start();
        const matches = rule.matches.slice(0, MAX_REWRITE_MATCHES);
        w.u16(matches.length);
        for (const m of matches) w.str(m);
        const targets = rule.targets.slice(0, MAX_REWRITE_TARGETS);
        w.u16(targets.length);
        for (const t of targets) {
          w.str(t.model);
          w.u32(Math.min(MAX_REWRITE_WEIGHT, clampU32(t.weight)));
        }
        if (later) w.bytes(later.tail);
        w.end(at);
      }
    });
  const fc = s.flowControl;
  if (fc)
    section(w, SECTION_FLOW_CONTROL, later, () => {
      w.u32(clampU32(fc.defaultRequestTtlMs));
      w.u32(clampU32(fc.noEndpointRequestTtlMs));
      w.u32(clampU32(fc.maxRequests));
      w.f64(fc.maxBytes);
      w.f64(fc.usageLimit);
      writeBand(w, { ...fc.defaultBand, priority: 0 });
      writeBand(w, { ...fc.defaultNegativeBand, priority: 0 });
      const bands = [...fc.bands].sort((a, b) => b.priority - a.priority).slice(0, MAX_FLOW_BANDS);
      w.u16(bands.length);
      for (const b of bands) writeBand(w, b);
      const hb = fc.holdback;
      w.u8(hb ? 1 : fc.softReflective ? 2 : 0); // the usage-limit policy when not static
      if (hb) {
        w.u8(hb.domain === "value" ? 1 : 0);
        w.f64(hb.minCeiling);
        w.f64(hb.maxCeiling);
      }
      const pa = fc.programAware;
      w.u8(pa ? 1 : 0);
      if (pa) {
        w.f64(pa.weightService);
        w.f64(pa.weightHeadWait);
        w.f64(pa.halfLifeSeconds);
        w.f64(pa.evictionTtlSeconds);
        w.f64(pa.heavyFlowHeadroom ?? 0);
      }
    });
  // Roles only when some pod has a role label: a pool without any encodes as before.
  if (s.endpoints.some((e) => (e.role ?? 0) !== 0))
    section(w, SECTION_ROLES, later, () => {
      w.u32(s.endpoints.length);
      for (const e of s.endpoints) w.u8((e.role ?? 0) & 0xff);
    });
  const pd = s.profile.disaggregation;
  if (pd)
    section(w, SECTION_DISAGGREGATION, later, () => {
      const decider = DECIDERS.indexOf(pd.decider);
      if (decider < 0) throw new Error(`snapshot: unknown prefill decider ${pd.decider}`);
      w.u8(decider);
      w.u32(clampU32(pd.nonCachedTokens));
      w.u32(clampU32(pd.promptTokens));
      w.u16(clampU16(pd.bytesPerToken));
      writePlugins(w, pd.prefill, later);
    });
  if (later) section(w, later.sectionId, undefined, () => w.bytes(later.tail));
  const out = w.finish();
  out.writeUInt32LE(out.length, 24);
  out.writeUInt32LE(fnv1a(out, HEADER_SIZE, out.length), 28);
  return out;
}

/** A cursor over `[at, end)` that throws on any read past `end`. */
class Reader {
  constructor(
    private readonly b: Buffer,
    public at: number,
    public end: number,
  ) {}
  private need(n: number): void {
    if (this.at + n > this.end)
      throw new Error(`snapshot truncated at byte ${this.at} (need ${n}, have ${this.end - this.at})`);
  }
  u8(): number {
    this.need(1);
    return this.b.readUInt8(this.at++);
  }
  u16(): number {
    this.need(2);
    const v = this.b.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  f32(): number {
    this.need(4);
    const v = this.b.readFloatLE(this.at);
    this.at += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.b.readDoubleLE(this.at);
    this.at += 8;
    return v;
  }
  str(): string {
    const n = this.u16();
    this.need(n);
    const v = this.b.toString("utf8", this.at, this.at + n);
    this.at += n;
    return v;
  }
  remaining(): number {
    return this.end - this.at;
  }
  /** A u32 length, then a reader over exactly that many bytes (this one skips past them). */
  sized(): Reader {
    const start = this.at;
    const n = this.u32();
    if (n > this.end - this.at) throw new Error(`snapshot: length ${n} at byte ${start} runs past its container`);
    const inner = new Reader(this.b, this.at, this.at + n);
    this.at += n;
    return inner;
  }
}

function readProfile(r: Reader): SchedulingProfile {
  return { plugins: readPlugins(r) };
}

function readPlugins(r: Reader): ProfilePlugin[] {
  const plugins: ProfilePlugin[] = [];
  for (let n = r.u16(); n > 0; n--) {
    const e = r.sized();
    const role = ROLES[e.u8() - 1];
    const type = e.str();
    const weight = e.f32();
    const parameters: Record<string, ParamValue> = {};
    for (let k = e.u16(); k > 0; k--) {
      const name = e.str();
      const kind = e.u8();
      if (kind === PARAM_NUMBER) parameters[name] = e.f64();
      else if (kind === PARAM_STRING) parameters[name] = e.str();
      else throw new Error(`snapshot: plugin ${type}: unknown parameter kind ${kind}`); // its size is unknown
    }
    if (role) plugins.push({ role, type, weight, parameters }); // an unknown role: a plugin for a newer filter
  }
  return plugins;
}

function readDisaggregation(r: Reader): Disaggregation {
  const code = r.u8();
  const decider = DECIDERS[code];
  if (!decider) throw new Error(`snapshot: disaggregation: unknown decider code ${code}`);
  const nonCachedTokens = r.u32();
  const promptTokens = r.u32();
  const bytesPerToken = r.u16();
  return { decider, nonCachedTokens, promptTokens, bytesPerToken, prefill: readPlugins(r) };
}

function readBand(r: Reader): FlowBand {
  const priority = r.u32() | 0;
  const maxRequests = r.u32();
  const maxBytes = r.f64();
  const f = r.u8(),
    o = r.u8();
  const fairness = FLOW_FAIRNESS[f];
  const ordering = FLOW_ORDERING[o];
  if (!fairness) throw new Error(`snapshot: flow control band ${priority}: unknown fairness code ${f}`);
  if (!ordering) throw new Error(`snapshot: flow control band ${priority}: unknown ordering code ${o}`);
  return { priority, maxRequests, maxBytes, fairness, ordering };
}

function readFlowControl(r: Reader): SnapshotFlowControl {
  const defaultRequestTtlMs = r.u32();
  const noEndpointRequestTtlMs = r.u32();
  const maxRequests = r.u32();
  const maxBytes = r.f64();
  const usageLimit = r.f64();
  const defaultBand = readBand(r);
  const defaultNegativeBand = readBand(r);
  const bands: FlowBand[] = [];
  for (let n = r.u16(); n > 0; n--) bands.push(readBand(r));
  let holdback: FlowHoldback | null = null;
  let programAware: FlowProgramAware | null = null;
  const usagePolicy = r.remaining() > 0 ? r.u8() : 0;
  if (usagePolicy === 1)
    holdback = { domain: r.u8() === 1 ? "value" : "rank", minCeiling: r.f64(), maxCeiling: r.f64() };
  if (r.remaining() > 0 && r.u8() === 1) {
    programAware = {
      weightService: r.f64(),
      weightHeadWait: r.f64(),
      halfLifeSeconds: r.f64(),
      evictionTtlSeconds: r.f64(),
    };
    const headroom = r.remaining() >= 8 ? r.f64() : 0;
    if (headroom > 0) programAware.heavyFlowHeadroom = headroom;
  }
  // Bytes a later revision appends to the section: skipped.
  return {
    defaultRequestTtlMs,
    noEndpointRequestTtlMs,
    maxRequests,
    maxBytes,
    usageLimit,
    defaultBand,
    defaultNegativeBand,
    bands,
    ...(holdback ? { holdback } : {}),
    ...(usagePolicy === 2 ? { softReflective: true } : {}),
    ...(programAware ? { programAware } : {}),
  };
}

function readEndpoint(r: Reader): SnapshotEndpoint {
  const flags = r.u8();
  const queued = r.u32(),
    running = r.u32(),
    kvUsage = r.f32(),
    loraMax = r.u16();
  const address = r.str();
  const runningAdapters: string[] = [];
  for (let n = r.u16(); n > 0; n--) runningAdapters.push(r.str());
  const waitingAdapters: string[] = [];
  for (let n = r.u16(); n > 0; n--) waitingAdapters.push(r.str());
  return {
    address,
    stale: (flags & FLAG_STALE) !== 0,
    error: (flags & FLAG_ERROR) !== 0,
    ...(flags & FLAG_UNREACHABLE ? { unreachable: true } : {}),
    queued: flags & FLAG_QUEUE ? queued : null,
    running: flags & FLAG_RUNNING ? running : null,
    kvUsage: flags & FLAG_KV ? kvUsage : null,
    lora: flags & FLAG_LORA ? { running: runningAdapters, waiting: waitingAdapters, max: loraMax } : null,
  };
}

/** Reference decoder: throws with a reason on anything the filter would refuse. */
export function decodeSnapshot(buf: Uint8Array): Snapshot {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < HEADER_SIZE) throw new Error(`snapshot truncated at byte 0 (need ${HEADER_SIZE}, have ${b.length})`);
  if (b.toString("latin1", 0, 4) !== MAGIC) throw new Error("snapshot: bad magic");
  const format = b.readUInt16LE(4);
  if (format !== FORMAT) throw new Error(`snapshot: unsupported format ${format}`);
  const headerSize = b.readUInt16LE(6);
  const version = b.readBigUInt64LE(8);
  const generatedAtMs = Number(b.readBigUInt64LE(16));
  const totalSize = b.readUInt32LE(24);
  if (totalSize !== b.length) throw new Error(`snapshot: totalSize ${totalSize} but ${b.length} bytes`);
  if (headerSize < HEADER_SIZE || headerSize > b.length) throw new Error(`snapshot: bad headerSize ${headerSize}`);
  if (fnv1a(b, headerSize, b.length) !== b.readUInt32LE(28)) throw new Error("snapshot: checksum mismatch");
  const r = new Reader(b, headerSize, b.length);
  let profile: SchedulingProfile | null = null;
  let endpoints: SnapshotEndpoint[] | null = null;
  const baseModels: string[] = [];
  const objectives: Array<{ name: string; priority: number }> = [];
  const modelRewrites: ModelRewriteRule[] = [];
  let flowControl: SnapshotFlowControl | null = null;
  let roles: number[] | null = null;
  let disaggregation: Disaggregation | null = null;
  while (r.at < r.end) {
    const id = r.u16();
    const body = r.sized();
    if (id === SECTION_PROFILE) profile = readProfile(body);
    else if (id === SECTION_ENDPOINTS) {
      endpoints = [];
      for (let n = body.u32(); n > 0; n--) endpoints.push(readEndpoint(body.sized()));
    } else if (id === SECTION_BASE_MODELS) {
      for (let n = body.u16(); n > 0; n--) baseModels.push(body.str());
    } else if (id === SECTION_OBJECTIVES) {
      for (let n = body.u16(); n > 0; n--) objectives.push({ name: body.str(), priority: body.u32() | 0 });
    } else if (id === SECTION_MODEL_REWRITES) {
      for (let n = body.u16(); n > 0; n--) {
        const e = body.sized();
        const matches: string[] = [];
        for (let k = e.u16(); k > 0; k--) matches.push(e.str());
        const targets: ModelRewriteRule["targets"] = [];
        for (let k = e.u16(); k > 0; k--) targets.push({ model: e.str(), weight: e.u32() });
        modelRewrites.push({ matches, targets }); // bytes a later revision appends to the rule: skipped
      }
    } else if (id === SECTION_FLOW_CONTROL) flowControl = readFlowControl(body);
    else if (id === SECTION_ROLES) {
      roles = [];
      for (let n = body.u32(); n > 0; n--) roles.push(body.u8());
    } else if (id === SECTION_DISAGGREGATION) disaggregation = readDisaggregation(body);
    // other ids: sections of a newer format revision, skipped
  }
  if (!profile) throw new Error("snapshot: no profile section");
  if (!endpoints) throw new Error("snapshot: no endpoints section");
  if (roles) {
    if (roles.length !== endpoints.length)
      throw new Error(`snapshot: ${roles.length} roles for ${endpoints.length} endpoints`);
    roles.forEach((role, i) => {
      if (role !== 0) endpoints![i].role = role;
    });
  }
  if (disaggregation) profile.disaggregation = disaggregation;
  return {
    version,
    generatedAtMs,
    profile,
    endpoints,
    baseModels,
    ...(objectives.length ? { objectives } : {}),
    ...(modelRewrites.length ? { modelRewrites } : {}),
    ...(flowControl ? { flowControl } : {}),
  };
}
