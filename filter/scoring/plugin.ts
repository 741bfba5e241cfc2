// What a scheduling-profile plugin is to the filter: the snapshot's plugin entries and their parameters, the
// base classes of scorers, pickers and the saturation detector, the request's facts and the decision's
// per-request state they read, and the Profile they join. Every parameter comes from the snapshot: the
// companion resolves GIE's defaults, so the filter keeps none (a missing parameter disables the plugin).
import { Snapshot } from "../snapshot";
import { AdapterLoad } from "../adapters";

export const ROLE_FILTER: u8 = 1;
export const ROLE_SCORER: u8 = 2;
export const ROLE_PICKER: u8 = 3;
export const ROLE_SATURATION_DETECTOR: u8 = 4;
export const ROLE_ADMITTER: u8 = 5;

/** The score of an endpoint a filter excluded (never picked while another is admitted). */
export const EXCLUDED: f64 = -f64.MAX_VALUE;

/** A plugin's parameters as the snapshot carries them: numbers and strings by name. */
export class Params {
  names: string[] = [];
  numbers: f64[] = [];
  strings: Array<string | null> = [];

  number(name: string): f64 {
    for (let k = 0; k < this.names.length; k++)
      if (this.names[k] == name && this.strings[k] == null) return this.numbers[k];
    return NaN;
  }

  text(name: string): string | null {
    for (let k = 0; k < this.names.length; k++) if (this.names[k] == name) return this.strings[k];
    return null;
  }
}

/** One plugin entry of the snapshot's profile section (docs/SNAPSHOT.md). */
export class PluginEntry {
  constructor(
    public role: u8,
    public type: string,
    public weight: f64,
    public params: Params,
  ) {}
}

/** A plugin of the profile: reads its parameters, then joins the Profile the decision applies. */
export abstract class ProfilePlugin {
  /** Reads the parameters; returns "" or why this plugin cannot be used (it is then left out). */
  configure(_params: Params): string {
    return "";
  }
  abstract join(profile: Profile): void;
}

/**
 * A scorer. The built-in ones join by adding their weight to a term the decision's loop computes inline (the
 * per-request loop stays one fused pass); any other scorer gives a score in [0, 1] per endpoint, either from
 * the snapshot alone (`perSnapshot`, computed once per snapshot version) or per request (`scoreRequest`).
 */
export abstract class ScorerPlugin extends ProfilePlugin {
  weight: f64 = 0;
  /** True: the score depends only on the snapshot (`scoreEndpoint`); false: on the request (`scoreRequest`). */
  perSnapshot: bool = false;

  /** The score in [0, 1] of endpoint `i` (perSnapshot scorers). */
  scoreEndpoint(_snap: Snapshot, _i: i32): f64 {
    return 0;
  }

  /** Adds weight x score in [0, 1] of each candidate to `out` (per-request scorers). */
  scoreRequest(_d: DecisionState, _out: StaticArray<f64>): void {}

  /** Told the pick `i` of the request it just scored (per-request scorers that remember picks). */
  picked(_d: DecisionState, _i: i32): void {}

  join(profile: Profile): void {
    if (this.perSnapshot) profile.snapshotScorers.push(this);
    else profile.requestScorers.push(this);
  }
}

/** A filter decided by the snapshot alone (the role filters): the candidates are the endpoints every filter keeps. */
export abstract class EndpointFilter extends ProfilePlugin {
  abstract keeps(snap: Snapshot, i: i32): bool;

  join(profile: Profile): void {
    profile.filters.push(this);
  }
}

/** A picker: chooses among the scored candidates; `maxNumOfEndpoints - 1` fallbacks follow the pick. */
export abstract class PickerPlugin extends ProfilePlugin {
  fallbackCount: i32 = 0;

  configure(params: Params): string {
    const n = params.number("maxNumOfEndpoints");
    if (!(n >= 1)) return "maxNumOfEndpoints missing or below 1";
    this.fallbackCount = <i32>min(n - 1, 255);
    return "";
  }

  /** The endpoint index picked, or -1 when every candidate is excluded. */
  abstract pick(d: DecisionState): i32;

  join(profile: Profile): void {
    profile.picker = this;
    profile.fallbackCount = this.fallbackCount;
  }
}

/**
 * An admission plugin (llm-d-router's Admitter): asked after the load pass, for requests of negative priority,
 * whether the request may be served; a refusal is a 429.
 */
export abstract class AdmitterPlugin extends ProfilePlugin {
  abstract admits(d: DecisionState): bool;

  join(profile: Profile): void {
    profile.admitters.push(this);
  }
}

/** What the decision applies: the plugins of the snapshot's profile, folded into what its loop reads. */
export class Profile {
  /** Weights of the terms the decision's loop computes inline (each the sum of the scorers that add it). */
  queueWeight: f64 = 0;
  runningWeight: f64 = 0;
  kvWeight: f64 = 0;
  prefixWeight: f64 = 0;
  loraWeight: f64 = 0;
  /** Filters of the candidates, applied once per snapshot version (none: every usable endpoint). */
  filters: EndpointFilter[] = [];
  /** Other scorers: summed once per snapshot, or asked per request. */
  snapshotScorers: ScorerPlugin[] = [];
  requestScorers: ScorerPlugin[] = [];
  /** Null: the snapshot names none the filter knows (max-score then, and a problem logged). */
  picker: PickerPlugin | null = null;
  fallbackCount: i32 = 0;
  /** prefix-cache-scorer's parameters (0 when the profile has none). */
  prefixBlockChars: i32 = 0;
  prefixMaxBlocks: i32 = 0;
  prefixLruPerEndpoint: i32 = 0;
  /** prefix-cache-scorer's match-length term (llm-d-router): its weight in [0, 1] (0: off) and scale in characters. */
  prefixLengthWeight: f64 = 0;
  prefixLengthScaleChars: f64 = 0;
  /** Admission plugins, asked in order (the first refusal counts). */
  admitters: AdmitterPlugin[] = [];
  /** The saturation detector's thresholds; with none, nothing counts as saturated (nothing is shed). */
  saturationQueue: f64 = Infinity;
  saturationKv: f64 = Infinity;
  /** session-affinity-scorer's keys (null: no such scorer, no session header is read). */
  session: SessionKeys | null = null;
  /** agent-identity's headers: the flow-control fairness id when no fairness header is present. */
  agentHeaders: ArrayBuffer[] = [];
  /** Entries left out (unknown type, bad parameters), for the log. */
  problems: string[] = [];
}

/** Where a request names its session (session-affinity-scorer's parameters; header names as UTF-8 keys). */
export class SessionKeys {
  /** The header carrying the endpoint token, read on the request and written on the response ("": none). */
  tokenHeader: ArrayBuffer = new ArrayBuffer(0);
  /** Headers naming a session id, in priority order (the first non-empty one counts). */
  headers: ArrayBuffer[] = [];
  /** The cookie naming a session id ("": none), read from the `cookie` header after the headers. */
  cookie: ArrayBuffer = new ArrayBuffer(0);
  /** How long a session's binding to an endpoint lasts unused. */
  ttlMs: u64 = 0;
}

/** What the filter knows of one request. */
export class RequestFacts {
  /** The `model` bytes (in wasm memory) and their FNV-1a hash; modelLen 0 = no model. */
  modelPtr: usize = 0;
  modelLen: i32 = 0;
  modelHash: u32 = 0;
  /** Prefix blocks of the request's prompt (0 = no prefix scoring) and, per endpoint, how many it matched. */
  chainBlocks: i32 = 0;
  matched: StaticArray<i32> = new StaticArray<i32>(0);
  /** Per endpoint, the prefix blocks the prefix index's current generation holds (what recording may skip). */
  matchedCurrent: StaticArray<i32> = new StaticArray<i32>(0);
  sheddable: bool = false;
  /** The request's priority is below 0 (what admission plugins read; flow control clears `sheddable` only). */
  negativePriority: bool = false;
  /** Session affinity: the address hash of the endpoint the request's token names, and of the one its session
   *  id is bound to (0: none). */
  sessionToken: u32 = 0;
  sessionBound: u32 = 0;
  /** The proxy's requests in flight per (endpoint, adapter): slot use the metrics do not show yet. */
  adapters: AdapterLoad | null = null;
  nowMs: u64 = 0;
}

/** The decision's state for one request, as scorers and pickers read it. Columns are per snapshot endpoint. */
export class DecisionState {
  snapshot: Snapshot | null = null;
  profile: Profile = new Profile();
  facts: RequestFacts = new RequestFacts();
  /** Candidate endpoint indices: [0, candidateCount) of `candidates`. */
  candidates: StaticArray<i32> = new StaticArray<i32>(0);
  candidateCount: i32 = 0;
  /** Load as best known: waiting and running requests, and outstanding (what the load score ranks). */
  waiting: StaticArray<f64> = new StaticArray<f64>(0);
  running: StaticArray<f64> = new StaticArray<f64>(0);
  outstanding: StaticArray<f64> = new StaticArray<f64>(0);
  minOutstanding: f64 = 0;
  /** Final scores (EXCLUDED for endpoints a filter left out). */
  scores: StaticArray<f64> = new StaticArray<f64>(0);
  /** Endpoints tied for the best score: [0, tiedCount) of `tied`. */
  tied: StaticArray<i32> = new StaticArray<i32>(0);
  tiedCount: i32 = 0;
}
