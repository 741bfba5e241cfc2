// A companion that misbehaves, over real processes on loopback: an answer far over maxSnapshotBytes must
// be refused by its size and cost the gateway nothing lasting; a replica that hangs (accepts connections,
// never answers) must not cost a request, with each shipped configuration's failover settings.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import {
  startSimPods,
  startGateway,
  startCompanion,
  startProc,
  endpointsFile,
  freePort,
  send,
  sleep,
  eventually,
  gatewayPicking,
  type Proc,
  type Reply,
} from "./stack";
import { tempBootstrap } from "../emulator/fixtures";
import { DEFAULT_PROFILE } from "../sim/profile";
import { filterConfigs, renderChartDefaults } from "../deploy/shipped";
import { parseManifests } from "../deploy/validate";

/** Peak and current resident memory of a process, MiB (Linux /proc). */
function memoryMiB(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { peak: kib("VmHWM") / 1024, now: kib("VmRSS") / 1024 };
}

test("a 64 MB companion answer is refused by its size; the gateway process stays under 150 MiB", async () => {
  // 64 MiB: over Envoy's own limit for an http call's answer (32 MiB), the call is reset before the filter
  // sees it. Below that limit the filter's maxSnapshotBytes (16 MiB by default; 1 MiB here, so the test
  // does not depend on when Node's garbage collector frees the answers Envoy buffered) refuses an answer
  // before a byte of it enters a VM.
  let size = 0;
  const answered = new Map<number, number>();
  const companion = http.createServer((req, res) => {
    req.resume();
    answered.set(size, (answered.get(size) ?? 0) + 1);
    res.writeHead(200, { "content-type": "application/vnd.endpoint-picker.snapshot", "content-length": size });
    // The same bytes each time, written in 1 MiB pieces as a server streaming a big answer would.
    const piece = Buffer.alloc(1024 * 1024, 0x45);
    let left = size;
    const more = () => {
      while (left > 0) {
        const n = Math.min(left, piece.length);
        left -= n;
        if (!res.write(n === piece.length ? piece : piece.subarray(0, n))) return void res.once("drain", more);
      }
      res.end();
    };
    res.on("error", () => {});
    more();
  });
  await new Promise<void>((r) => companion.listen(0, "127.0.0.1", r));
  const set = await startSimPods({ engines: ["vllm-v1"] });
  const gatewayFor = (configuration: object) =>
    startGateway({
      companionPort: (companion.address() as AddressInfo).port,
      poolPorts: set.pods.map((p) => p.port),
      configuration,
      concurrency: 2,
    });
  const phases: Array<[number, object, RegExp]> = [
    [64 * 1024 * 1024, {}, /the call to the companion failed \(.*over Envoy's 32 MiB async-client limit\)/],
    [4 * 1024 * 1024, { maxSnapshotBytes: 1 << 20 }, /sent a snapshot of 4194304 bytes, over maxSnapshotBytes 1048576/],
  ];
  try {
    for (const [bytes, configuration, logged] of phases) {
      size = bytes;
      const gateway = await gatewayFor(configuration); // a fresh one: the fetcher warns once per outage
      try {
        await eventually(`three answers of ${bytes} bytes`, () => (answered.get(size) ?? 0) >= 3, 30_000, 50);
        await eventually("the refusal to be logged", () => logged.test(gateway.output()), 10_000);
        const mem = memoryMiB(gateway.child.pid!);
        console.log(
          `gateway process after ${answered.get(size)} answers of ${bytes >> 20} MiB: ` +
            `peak ${mem.peak.toFixed(0)} MiB, now ${mem.now.toFixed(0)} MiB`,
        );
        assert.ok(mem.peak < 150, `${bytes >> 20} MiB answers: peak resident memory ${mem.peak.toFixed(0)} MiB`);
        assert.ok(!/does not decode/.test(gateway.output()), "nothing was decoded");
      } finally {
        await gateway.stop();
      }
    }
  } finally {
    companion.closeAllConnections();
    await new Promise<void>((r) => companion.close(() => r()));
    await set.close();
  }
});

const TOKEN = "hung-replica-test-token";
type Y = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * What Istio makes of a DestinationRule's traffic policy for the companion's cluster (its outlier detection
 * and load balancer), as Envoy cluster fields: Istio enforces the consecutive errors it is given at 100%.
 */
function istioCompanionCluster(docs: Y[]): Y {
  const dr = docs.find((d) => d.kind === "DestinationRule" && /companion|-epp\./.test(d.spec.host));
  assert.ok(dr, "a DestinationRule for the companion");
  const tp = dr.spec.trafficPolicy;
  const od = tp.outlierDetection;
  const outlier: Y = {};
  if (od.consecutiveGatewayErrors !== undefined) {
    outlier.consecutive_gateway_failure = od.consecutiveGatewayErrors;
    outlier.enforcing_consecutive_gateway_failure = od.consecutiveGatewayErrors > 0 ? 100 : 0;
  }
  if (od.consecutive5xxErrors !== undefined) {
    outlier.consecutive_5xx = od.consecutive5xxErrors;
    outlier.enforcing_consecutive_5xx = od.consecutive5xxErrors > 0 ? 100 : 0;
  }
  if (od.interval) outlier.interval = od.interval;
  if (od.baseEjectionTime) outlier.base_ejection_time = od.baseEjectionTime;
  if (od.maxEjectionPercent !== undefined) outlier.max_ejection_percent = od.maxEjectionPercent;
  return { lb_policy: tp.loadBalancer?.simple ?? "LEAST_REQUEST", outlier_detection: outlier };
}

/** A gateway serving envoy/envoy.yaml with the filter configuration and companion cluster a shipped form gives. */
async function gatewayAs(
  form: string,
  companionPorts: number[],
  poolPorts: number[],
  filter: Y | null,
  companionCluster: Y | null,
): Promise<Proc> {
  const file = tempBootstrap({
    poolPorts,
    companionPort: companionPorts,
    configuration: {
      ...(filter ?? {}),
      companionCluster: "endpoint-picker-companion", // Istio's outbound|9002||... is envoy.yaml's name here
      apiToken: TOKEN, // each form's own (generated, or a placeholder) would differ
      servedHeader: "x-gateway-destination-endpoint-served", // how the test sees that the filter picks
      failureMode: "FailClose",
    },
    edit: (d) => {
      if (!companionCluster) return;
      const c = d.static_resources.clusters.find((x: Y) => x.name === "endpoint-picker-companion");
      Object.assign(c, companionCluster);
    },
  });
  const proc = await startProc(
    "build/emulator.mjs",
    ["-c", file, "--concurrency", "2", "--log-level", "warn"],
    /emulator listening on (\S+)\n/,
  );
  return Object.assign(proc, { form });
}

test("one of two companion replicas hung (SIGSTOP) for 12 s on an idle pool: no 503 with envoy.yaml's, Istio's or the chart's settings", async () => {
  const set = await startSimPods({ engines: ["vllm-v1", "vllm-v1"], timeScale: 10 });
  const ports = [await freePort(), await freePort()];
  const companions = await Promise.all(
    ports.map((port, i) =>
      startCompanion(
        [
          "--endpoints-file",
          endpointsFile(set.pods),
          "--refresh-interval",
          "200ms",
          "--peers",
          `127.0.0.1:${ports[1 - i]}`,
          "--api-token",
          TOKEN,
        ],
        port,
      ),
    ),
  );
  const istio = parseManifests(readFileSync("envoy/istio/endpoint-picker-ecds.yaml", "utf8"), "ecds").concat(
    parseManifests(readFileSync("envoy/istio/companion-destinationrule.yaml", "utf8"), "dr"),
  );
  const chart = renderChartDefaults();
  const forms: Array<[string, Y | null, Y | null]> = [
    ["envoy/envoy.yaml", null, null],
    ["envoy/istio", filterConfigs(istio)[0], istioCompanionCluster(istio)],
    ["chart defaults", filterConfigs(chart)[0], istioCompanionCluster(chart)],
  ];
  const poolPorts = set.pods.map((p) => p.port);
  const gateways = await Promise.all(
    forms.map(([form, filter, cluster]) => gatewayAs(form, ports, poolPorts, filter, cluster)),
  );
  const body = JSON.stringify({ model: DEFAULT_PROFILE.model, prompt: "hello", max_tokens: 1 });
  try {
    for (const g of gateways) await gatewayPicking(g.port, body);
    await sleep(1500); // polls in flight to both replicas
    const replies = new Map<string, Reply[]>(forms.map(([form]) => [form, []]));
    const probe = async (until: number) => {
      while (Date.now() < until) {
        await Promise.all(
          gateways.map(async (g, i) => replies.get(forms[i][0])!.push(await send(g.port, "/v1/completions", body))),
        );
        await sleep(100);
      }
    };
    const hung = companions[0];
    hung.child.kill("SIGSTOP");
    try {
      await probe(Date.now() + 12_000);
    } finally {
      hung.child.kill("SIGCONT");
    }
    await probe(Date.now() + 2000);
    for (const [form, rs] of replies) {
      const failed = rs.filter((r) => r.status !== 200);
      console.log(`${form}: ${failed.length} of ${rs.length} probes failed while a companion replica hung`);
      assert.equal(failed.length, 0, `${form}: ${failed.map((r) => `${r.status} ${r.body.trim()}`).join("; ")}`);
    }
  } finally {
    for (const g of gateways) await g.stop();
    for (const c of companions) await c.stop();
    await set.close();
  }
});
