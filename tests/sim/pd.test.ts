// P/D in the simulator: the engine's remote-KV admission, the fleet's sidecar (prefill with max_tokens 1 on
// the prefill pod, KV transfer, decode on the decode pod) and the real filter deciding both picks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { VirtualClock } from "./clock";
import { Engine, type RequestResult } from "./engine";
import { makeProfile } from "./profile";
import { Rng } from "./rng";
import { TokenSequence, answerText, synthText } from "./text";
import { runPd, longPrompts, KV_TRANSFER_TCP_MS_PER_TOKEN } from "./pd";
import { makeWorkload } from "./workloads";

const profile = makeProfile({ metricsLagMs: 100 });

function submit(
  engine: Engine,
  id: string,
  prompt: string,
  maxTokens: number,
  remoteKv: boolean,
  out: RequestResult[],
) {
  engine.submit({
    id,
    seq: new TokenSequence(prompt, answerText(prompt, profile.model, maxTokens), profile.model),
    maxTokens,
    finishReason: "length",
    adapter: null,
    maxTokensParam: maxTokens,
    ...(remoteKv ? { remoteKv } : {}),
    onFinish: (r) => out.push(r),
  });
}

test("engine: a request whose KV came from a prefill pod gets its first token after one decode step", () => {
  const prompt = synthText(new Rng("pd"), 8000);
  const clock = new VirtualClock();
  const local = new Engine("vllm-v1", profile, clock, "a");
  const remote = new Engine("vllm-v1", profile, clock, "b");
  const out: RequestResult[] = [];
  submit(local, "local", prompt, 4, false, out);
  submit(remote, "remote", prompt, 4, true, out);
  clock.run();
  const r = Object.fromEntries(out.map((x) => [x.id, x]));
  assert.ok(r.local.firstTokenMs > 150, `local prefill of 8k tokens ~165 ms (${r.local.firstTokenMs})`);
  assert.ok(r.remote.firstTokenMs < 10, `remote KV: one decode step (${r.remote.firstTokenMs})`);
  assert.equal(r.remote.generationTokens, 4);
  // The transferred KV is cached on the decode pod like computed KV: the same prompt hits it next time.
  assert.ok(remote.probeCachedTokens(new TokenSequence(prompt, "", profile.model)) >= 7900);
});

test("fleet: the sidecar prefills on the prefill pod (max_tokens 1), moves the KV, decodes on the decode pod", () => {
  const workload = longPrompts(
    { count: 40, ratePerSec: 4, model: profile.model, seed: 5 },
    { prompt: { mean: 4000, sd: 500, min: 3000, max: 5000 }, output: { mean: 50, sd: 5 } },
  );
  const run = (prefillPods: number, nonCachedTokens: number, kv = 0) =>
    runPd({ workload, profile, prefillPods, decodePods: 2, nonCachedTokens, kvTransferMsPerToken: kv, seed: 1 });
  const pd = run(1, 1024);
  assert.equal(pd.summary.successRate, 1);
  assert.equal(pd.pickerStats.prefills, 40, "every long uncached prompt gets a prefill pick");
  const prefillPod = pd.records.filter((r) => r.pod === 0);
  assert.equal(prefillPod.length, 0, "the prefill pod never decodes");
  const never = run(1, 100_000); // a threshold no prompt reaches: decode pods prefill everything
  assert.equal(never.pickerStats.prefills, 0);
  assert.ok(
    pd.summary.itlMeanMs < never.summary.itlMeanMs,
    `decode pods free of prefills decode faster (ITL ${pd.summary.itlMeanMs} vs ${never.summary.itlMeanMs})`,
  );
  const slow = run(1, 1024, KV_TRANSFER_TCP_MS_PER_TOKEN);
  assert.ok(
    slow.summary.ttftP50Ms > pd.summary.ttftP50Ms + 100,
    `a slow KV transfer (~160 ms for 4k tokens) shows in TTFT (${slow.summary.ttftP50Ms} vs ${pd.summary.ttftP50Ms})`,
  );
});

test("fleet: cached prompts skip the prefill pick (shared prefixes of scenario A)", () => {
  const workload = makeWorkload("prefix-a", { count: 60, ratePerSec: 4, model: profile.model, seed: 2 });
  const r = runPd({ workload, profile, prefillPods: 1, decodePods: 2, nonCachedTokens: 512, kvTransferMsPerToken: 0 });
  const prefills = Number(r.pickerStats.prefills);
  assert.ok(
    prefills > 0 && prefills < 20,
    `only the first prompts of a group are prefilled elsewhere (${prefills} of 60)`,
  );
});

test("fleet: a saturated prefill pod is skipped (the decode pod prefills), never an error", () => {
  const workload = longPrompts(
    { count: 120, ratePerSec: 60, model: profile.model, seed: 9 },
    { prompt: { mean: 6000, sd: 500, min: 5000, max: 7000 }, output: { mean: 50, sd: 5 } },
  );
  const r = runPd({ workload, profile, prefillPods: 1, decodePods: 2, nonCachedTokens: 1024, kvTransferMsPerToken: 0 });
  const prefills = Number(r.pickerStats.prefills);
  assert.equal(r.summary.successRate, 1);
  assert.ok(prefills > 0 && prefills < 120, `the prefill pod takes what it can (${prefills} of 120)`);
});
