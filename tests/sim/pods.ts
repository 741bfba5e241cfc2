// Many simulated pods in one process, one port each, on one shared real-time clock (sped up by timeScale).
import { RealClock } from "./clock";
import { SimPod } from "./pod-server";
import { DEFAULT_PROFILE, type EngineKind, type EngineProfile } from "./profile";

export interface StartPodsOptions {
  /** Number of pods. */
  pods: number;
  /** Engines, assigned round-robin over the pods (default: vllm-v1). */
  engines?: EngineKind[];
  host?: string;
  /** First port; pod i listens on basePort + i. 0 (default) = a free port each. */
  basePort?: number;
  profile?: EngineProfile;
  /** Simulated ms per real ms (10 = ten times faster than a GPU would be). */
  timeScale?: number;
  /** Pod names are `${namePrefix}-${i}` (default "sim"). */
  namePrefix?: string;
}

export interface PodSet {
  pods: SimPod[];
  clock: RealClock;
  close(): Promise<void>;
}

export async function startPods(opts: StartPodsOptions): Promise<PodSet> {
  const clock = new RealClock(opts.timeScale ?? 1);
  const engines = opts.engines && opts.engines.length > 0 ? opts.engines : (["vllm-v1"] as EngineKind[]);
  const pods: SimPod[] = [];
  try {
    for (let i = 0; i < opts.pods; i++) {
      const pod = new SimPod({
        name: `${opts.namePrefix ?? "sim"}-${i}`,
        kind: engines[i % engines.length],
        profile: opts.profile ?? DEFAULT_PROFILE,
        clock,
        host: opts.host ?? "127.0.0.1",
        port: opts.basePort ? opts.basePort + i : 0,
      });
      pods.push(await pod.listen());
    }
  } catch (e) {
    await Promise.all(pods.map((p) => p.close()));
    clock.stop();
    throw e;
  }
  return {
    pods,
    clock,
    async close() {
      await Promise.all(pods.map((p) => p.close()));
      clock.stop();
    },
  };
}
