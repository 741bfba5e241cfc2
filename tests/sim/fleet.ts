// The virtual-time fleet: N simulated pods on one discrete-event clock, a gateway that counts its active
// requests per pod, a picker deciding every request, and a workload arriving open-loop (multi-round chat
// sends each next round after the previous answer). Runs as fast as the CPU allows and is deterministic:
// the same options and seed give the same records. A picker may hold a request and decide later (the
// filter's flow control); pods may join during the run (scale from zero).
import { VirtualClock } from "./clock";
import { Engine } from "./engine";
import { scrapedLoraLists } from "./exposition/vllm";
import { ApiError } from "./openai";
import { poolSaturation } from "./pickers/gie";
import type { FleetPod, Pick, Picker, PickerContext, ScrapedMetrics } from "./pickers/picker";
import { type EngineKind, type EngineProfile, makeProfile } from "./profile";
import { type RequestRecord, type Summary, summarize } from "./results";
import { Rng } from "./rng";
import { type Prepared, type Workload, type WorkloadRequest, prepare } from "./workloads";

export interface FleetOptions {
  /** Pods up from the start (0: an empty pool until the first join). */
  pods: number;
  /** More pods joining later: at atMs of virtual time, `pods` more come up (ready at once, caches cold). */
  joins?: { atMs: number; pods: number }[];
  /** Engines assigned round-robin over the pods (default vllm-v1). */
  engines?: EngineKind[];
  profile: EngineProfile;
  picker: Picker;
  workload: Workload;
  seed?: number;
  /** Requests still running at this virtual time are counted as unfinished (default 2 h). */
  maxVirtualMs?: number;
  /**
   * Closed loop instead of the arrival times: `concurrency` requests in flight at all times, the next one
   * sent when one finishes (a session's next round first, without think time). For capacity calibration.
   */
  closedLoop?: { concurrency: number };
  /** Period of the timeline samples in ms of virtual time (default 1000). */
  timelineMs?: number;
  /**
   * P/D: the KV transfer from a prefill pod to a decode pod, in ms per transferred token (the decode pod's
   * uncached prompt tokens), for picks that name a prefill pod (Pick.prefill). Default 0.
   */
  kvTransferMsPerToken?: number;
}

/** One timeline sample: requests the picker holds, by class, and the pods' queues, at tMs. */
export interface TimelineSample {
  tMs: number;
  /** Requests held by the picker (decision pending), by the request's objective, else tenant, else "all". */
  held: Record<string, number>;
  /** Waiting and running requests summed over the pods (their true state). */
  podWaiting: number;
  podRunning: number;
  pods: number;
  /** The utilization detector's pool saturation over the scraped (lagged) gauges; 1 with no pod. */
  saturation: number;
  /** Held requests as the picker reports them itself (Picker.queued), when it does. */
  pickerQueued?: number;
  /** The picker's own estimate of the pool's saturation (Picker.saturation), when it has one. */
  pickerSaturation?: number;
}

export interface FleetResult {
  picker: string;
  workload: string;
  records: RequestRecord[];
  summary: Summary;
  pickerStats: Record<string, number | string | boolean>;
  virtualMs: number;
  wallMs: number;
  /** Total queued requests over the pods, sampled every second of virtual time. */
  queueSamples: number[];
  timeline: TimelineSample[];
}

/** The class a request is counted under in the timeline. */
export const requestClass = (r: { objective?: string; tenant?: string }): string => r.objective || r.tenant || "all";

/** The profile with the workload's LoRA adapters added (pods must know every adapter a request names). */
export function profileFor(profile: EngineProfile, workload: Workload): EngineProfile {
  if (workload.adapters.every((a) => profile.lora.adapters.includes(a))) return profile;
  return makeProfile({
    ...profile,
    lora: { ...profile.lora, adapters: [...new Set([...profile.lora.adapters, ...workload.adapters])] },
  });
}

/** Pod addresses in the fleet: 10.0.x.y:8000 (any literal IP:port works for the routers). */
export const fleetAddress = (i: number): string => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:8000`;

export function runFleet(o: FleetOptions): FleetResult {
  const wallStart = performance.now();
  const clock = new VirtualClock();
  const seed = o.seed ?? 1;
  const profile = profileFor(o.profile, o.workload);
  const engines = o.engines && o.engines.length > 0 ? o.engines : (["vllm-v1"] as EngineKind[]);
  const makePod = (i: number): FleetPod => {
    const kind = engines[i % engines.length];
    return {
      index: i,
      name: `pod-${i}`,
      address: fleetAddress(i),
      kind,
      engine: new Engine(kind, profile, clock, `${seed}:${i}`),
      inFlight: 0,
    };
  };
  // The pods that are up; joins append, so indexes stay stable.
  const pods: FleetPod[] = Array.from({ length: o.pods }, (_, i) => makePod(i));
  for (const j of o.joins ?? []) {
    if (!(j.atMs >= 0) || !Number.isInteger(j.pods) || j.pods < 1) throw new Error(`bad join ${JSON.stringify(j)}`);
    clock.at(j.atMs, () => {
      for (let k = 0; k < j.pods; k++) pods.push(makePod(pods.length));
    });
  }

  const records: RequestRecord[] = [];
  const queueSamples: number[] = [];
  const timeline: TimelineSample[] = [];
  const held: Record<string, number> = {};
  const periodic: { interval: number; fn: (now: number) => void; next: number }[] = [];
  let outstanding = o.workload.total;
  let ticking = false;

  const scrape = (): ScrapedMetrics[] =>
    pods.map((p) => {
      const g = p.engine.gauges();
      const lora = scrapedLoraLists(p.kind, g.loraRunning, g.loraWaiting);
      return {
        queued: g.waiting,
        running: g.running,
        kvUsage: g.kvUsage,
        loraRunning: lora.running,
        loraWaiting: lora.waiting,
        maxLora: profile.lora.adapters.length > 0 ? profile.lora.maxLoras : 0,
        blockSize: p.engine.blockSize,
        numBlocks: p.engine.numGpuBlocks,
        scrapedAtMs: clock.now(),
      };
    });
  const ctx: PickerContext = {
    clock,
    pods,
    profile,
    rng: new Rng(`picker:${seed}`),
    every(intervalMs, fn) {
      periodic.push({ interval: intervalMs, fn, next: clock.now() + intervalMs });
    },
    scrape,
    active: () => outstanding > 0,
  };

  // One ticker drives the periodic callbacks, the queue-depth samples and the timeline while requests are
  // outstanding.
  let nextSample = 0;
  let nextTimeline = 0;
  const timelineMs = o.timelineMs ?? 1000;
  const TICK = 10;
  const tick = () => {
    const now = clock.now();
    for (const p of periodic)
      while (p.next <= now) {
        p.fn(now);
        p.next += p.interval;
      }
    if (now >= nextSample) {
      queueSamples.push(pods.reduce((a, p) => a + p.engine.numWaiting, 0));
      nextSample += 1000;
    }
    if (now >= nextTimeline) {
      timeline.push({
        tMs: now,
        held: { ...held },
        podWaiting: pods.reduce((a, p) => a + p.engine.numWaiting, 0),
        podRunning: pods.reduce((a, p) => a + p.engine.numRunning, 0),
        pods: pods.length,
        saturation: poolSaturation(scrape()),
        ...(o.picker.queued ? { pickerQueued: o.picker.queued() } : {}),
        ...(o.picker.saturation ? { pickerSaturation: o.picker.saturation() } : {}),
      });
      nextTimeline += timelineMs;
    }
    if (outstanding > 0) clock.at(now + TICK, tick);
    else ticking = false;
  };

  const admit = (req: WorkloadRequest) => {
    const record: RequestRecord = {
      id: req.id,
      pod: -1,
      status: "unfinished",
      httpStatus: 0,
      reason: "",
      arrivalMs: clock.now(),
      dispatchMs: NaN,
      firstTokenMs: NaN,
      finishedMs: NaN,
      promptTokens: 0,
      outputTokens: 0,
      cachedTokens: 0,
      fallback: false,
      gateway: 0,
      tenant: req.tenant ?? "",
      objective: req.objective ?? "",
    };
    records.push(record);
    const failed = () => {
      outstanding -= 1 + (o.workload.followUps?.(req) ?? 0);
      if (o.closedLoop) clock.at(clock.now(), admitNext);
    };
    let prepared;
    try {
      prepared = prepare(req, profile);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      record.status = "error";
      record.httpStatus = e.status;
      failed();
      return;
    }
    const cls = requestClass(req);
    let decided = false;
    let picking = true;
    const place = (pick: Pick) => {
      if (decided) throw new Error(`${o.picker.name} decided request ${req.id} twice`);
      decided = true;
      record.dispatchMs = clock.now();
      record.gateway = pick.gateway ?? record.gateway;
      if ("reject" in pick) {
        record.status = "rejected";
        record.httpStatus = pick.reject;
        record.reason = pick.reason ?? "";
        failed();
        return;
      }
      run(pick, prepared);
    };
    const outcome = o.picker.pick(req, prepared, ctx, (pick) => {
      if (picking) throw new Error(`${o.picker.name} answered request ${req.id} through later() inside pick()`);
      held[cls]--;
      place(pick);
    });
    picking = false;
    if ("held" in outcome) {
      record.gateway = outcome.gateway ?? 0;
      held[cls] = (held[cls] ?? 0) + 1;
      return;
    }
    place(outcome);

    /** Sends a placed request to its pod. */
    function run(pick: Exclude<Pick, { reject: number }>, prepared: Prepared) {
      const pod = pods[pick.pod];
      record.pod = pick.pod;
      record.fallback = pick.fallback === true;
      pod.inFlight++;
      const p = prepared.parsed;
      const prefill = pick.prefill !== undefined && pick.prefill !== pick.pod ? pods[pick.prefill] : undefined;
      if (prefill) {
        // llm-d's decode sidecar: the prompt goes to the prefill pod with max_tokens 1, its KV then moves
        // to this pod (the tokens this pod does not hold already), and this pod decodes (Engine remoteKv).
        prefill.inFlight++;
        prefill.engine.submit({
          id: `${req.id}/prefill`,
          seq: prepared.seq,
          maxTokens: 1,
          finishReason: "length",
          adapter: p.adapter,
          maxTokensParam: 1,
          onFinish: (r) => {
            prefill.inFlight--;
            const uncached = Math.max(0, prepared.seq.promptTokens - pod.engine.probeCachedTokens(prepared.seq));
            const transferMs = uncached * (o.kvTransferMsPerToken ?? 0);
            clock.at(r.finishedMs + transferMs, () => decode(true));
          },
        });
      } else decode(false);

      function decode(remoteKv: boolean) {
        pod.engine.submit({
          id: req.id,
          seq: prepared.seq,
          maxTokens: p.outputTokens,
          finishReason: p.finishReason,
          adapter: p.adapter,
          maxTokensParam: p.maxTokensParam,
          ...(remoteKv ? { remoteKv } : {}),
          onFirstToken: (t) => {
            record.firstTokenMs = t;
            o.picker.responseStarted?.(pick, t);
          },
          onFinish: (r) => {
            pod.inFlight--;
            record.finishedMs = r.finishedMs;
            record.promptTokens = r.promptTokens;
            record.outputTokens = r.generationTokens;
            record.cachedTokens = r.cachedTokens;
            record.status = "ok";
            record.httpStatus = 200;
            o.picker.responseEnded?.(pick, r.finishedMs, true);
            const follow = o.workload.next?.(req, r.finishedMs, prepared.seq.answer);
            outstanding--;
            if (follow) clock.at(o.closedLoop ? r.finishedMs : follow.arrivalMs, () => admit(follow));
            else if (o.closedLoop) admitNext();
          },
        });
      }
    }
  };

  let nextInitial = 0;
  const admitNext = () => {
    if (nextInitial < o.workload.requests.length) admit(o.workload.requests[nextInitial++]);
  };

  o.picker.start(ctx);
  if (o.closedLoop) {
    for (let i = 0; i < Math.min(o.closedLoop.concurrency, o.workload.requests.length); i++) clock.at(i, admitNext);
  } else {
    for (const req of o.workload.requests) clock.at(req.arrivalMs, () => admit(req));
  }
  if (!ticking) {
    ticking = true;
    clock.at(0, tick);
  }
  const limit = o.maxVirtualMs ?? 2 * 3600_000;
  clock.run(limit);
  o.picker.close?.();
  const stats = o.picker.stats?.() ?? {};
  return {
    picker: o.picker.name,
    workload: o.workload.name,
    records,
    summary: summarize(records, queueSamples),
    pickerStats: stats,
    virtualMs: clock.now(),
    wallMs: performance.now() - wallStart,
    queueSamples,
    timeline,
  };
}
