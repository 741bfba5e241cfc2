// InferenceModelRewrite rules from Kubernetes (llm-d.ai and GIE's group) against a fake API server speaking
// the list + watch protocol: llm-d-router's precedence and weights resolved into one ordered list, and the
// list's place in the snapshot (section 5).
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadKubeConfig } from "../../companion/kube-pool";
import { ModelRewriteWatcher, rewriteRulesOf, type ModelRewriteRule } from "../../companion/model-rewrites";
import { silentLogger } from "../../companion/log";
import {
  decodeSnapshot,
  encodeSnapshot,
  MAX_REWRITE_RULES,
  MAX_REWRITE_TARGETS,
  MAX_REWRITE_MATCHES,
} from "../../companion/snapshot";
import { DEFAULT_PROFILE } from "../../companion/profile-config";
import { SnapshotPublisher } from "../../companion/snapshot-publisher";
import { FakeKube, type KubeObject } from "../helpers/fake-kube";
import { until } from "../helpers/until";

const POOL_GROUP = "inference.networking.k8s.io";

interface Rule {
  matches?: string[];
  targets: Array<{ modelRewrite: unknown; weight?: unknown }>;
}

function rewrite(
  group: string,
  name: string,
  rules: Rule[],
  opts: { pool?: string; created?: string; poolGroup?: string } = {},
): KubeObject {
  return {
    apiVersion: `${group}/v1alpha2`,
    kind: "InferenceModelRewrite",
    metadata: { name, namespace: "default", ...(opts.created ? { creationTimestamp: opts.created } : {}) },
    spec: {
      poolRef: { name: opts.pool ?? "llama", ...(opts.poolGroup ? { group: opts.poolGroup } : {}) },
      rules: rules.map((r) => ({
        ...(r.matches ? { matches: r.matches.map((value) => ({ model: { type: "Exact", value } })) } : {}),
        targets: r.targets,
      })),
    },
  };
}

const to = (model: string, weight?: number) => ({ modelRewrite: model, ...(weight === undefined ? {} : { weight }) });

test("precedence: exact matches before match-all rules, then the oldest object, its name, the rule's place", () => {
  const { rules } = rewriteRulesOf(
    [
      rewrite("llm-d.ai", "new", [{ matches: ["a"], targets: [to("a-new")] }], { created: "2026-03-01T00:00:00Z" }),
      rewrite(
        "llm-d.ai",
        "old",
        [
          { targets: [to("generic-old")] },
          { matches: ["a", "b"], targets: [to("a-old")] },
          { matches: ["a"], targets: [to("a-old-second")] },
        ],
        { created: "2026-01-01T00:00:00Z" },
      ),
      rewrite("llm-d.ai", "b-tie", [{ matches: ["c"], targets: [to("c-b")] }], { created: "2026-02-01T00:00:00Z" }),
      rewrite("llm-d.ai", "a-tie", [{ matches: ["c"], targets: [to("c-a")] }], { created: "2026-02-01T00:00:00Z" }),
      rewrite("llm-d.ai", "generic-new", [{ matches: [], targets: [to("generic-new")] }], {
        created: "2026-04-01T00:00:00Z",
      }),
      rewrite("llm-d.ai", "other-pool", [{ matches: ["a"], targets: [to("x")] }], { pool: "qwen" }),
    ] as never,
    "llama",
    POOL_GROUP,
  );
  assert.deepEqual(
    rules.map((r) => [r.matches.join(","), r.targets[0].model]),
    [
      ["a,b", "a-old"],
      ["a", "a-old-second"],
      ["c", "c-a"],
      ["c", "c-b"],
      ["a", "a-new"],
      ["", "generic-old"],
      ["", "generic-new"],
    ],
  );
});

test("weights as llm-d-router draws them: all unset (or 0) equal, unset next to set never, values clamped", () => {
  const skipped: string[] = [];
  const { rules } = rewriteRulesOf(
    [
      rewrite("llm-d.ai", "w", [
        { matches: ["even"], targets: [to("x"), to("y")] },
        { matches: ["zero"], targets: [to("x", 0), to("y", 0)] },
        { matches: ["mixed"], targets: [to("x", 90), to("y")] },
        { matches: ["split"], targets: [to("x", 90), to("y", 10)] },
        { matches: ["clamped"], targets: [to("x", 5e9), to("y", -3), to("z", 2.7)] },
        { matches: ["none"], targets: [] },
        { matches: ["bad-names"], targets: [to('q"uote', 1), to("x".repeat(257), 1), to("", 1), to("ok", 1)] },
      ]),
    ] as never,
    "llama",
    POOL_GROUP,
    (name, why) => skipped.push(why),
  );
  const w = (m: string) => rules.find((r) => r.matches[0] === m)!.targets.map((t) => `${t.model}=${t.weight}`);
  assert.deepEqual(w("even"), ["x=1", "y=1"]);
  assert.deepEqual(w("zero"), ["x=1", "y=1"]);
  assert.deepEqual(w("mixed"), ["x=90", "y=0"]);
  assert.deepEqual(w("split"), ["x=90", "y=10"]);
  assert.deepEqual(w("clamped"), ["x=1000000", "y=0", "z=2"]);
  assert.deepEqual(w("none"), []);
  assert.deepEqual(w("bad-names"), ["ok=1"]);
  assert.equal(skipped.filter((s) => s.includes("target left out")).length, 3);
  assert.ok(skipped.some((s) => s.includes("no usable target")));
});

test("what cannot match is left out: unusable matches (not a match-all rule), other groups, other kinds", () => {
  const skipped: string[] = [];
  const objects = [
    rewrite("llm-d.ai", "escaped", [{ matches: ['a"b', "x".repeat(300)], targets: [to("t")] }]),
    rewrite("llm-d.ai", "x-k8s-pool", [{ matches: ["a"], targets: [to("t")] }], {
      poolGroup: "inference.networking.x-k8s.io",
    }),
    { ...rewrite("llm-d.ai", "svc", [{ targets: [to("t")] }]), spec: { poolRef: { name: "llama", kind: "Service" } } },
    {
      ...rewrite("llm-d.ai", "prefix", []),
      spec: {
        poolRef: { name: "llama" },
        rules: [
          { matches: [{ model: { type: "Prefix", value: "a" } }, { model: { value: "b" } }], targets: [to("t")] },
        ],
      },
    },
  ];
  const { rules } = rewriteRulesOf(objects as never, "llama", POOL_GROUP, (name, why) =>
    skipped.push(`${name}: ${why}`),
  );
  // Only "prefix"'s rule is left, matching b (the unknown match type is left out, the default type is Exact).
  assert.deepEqual(rules, [{ matches: ["b"], targets: [{ model: "t", weight: 1 }] }]);
  assert.ok(skipped.some((s) => s.startsWith("escaped: spec.rules[0]: no usable match")));
  assert.ok(skipped.some((s) => s.startsWith("x-k8s-pool: spec.poolRef.group")));
  // The same rewrite names an x-k8s pool for a companion following one.
  const xk8s = rewriteRulesOf([objects[1]] as never, "llama", "inference.networking.x-k8s.io");
  assert.equal(xk8s.rules.length, 1);
});

test("bounds: at most 256 rules (lowest precedence dropped), 32 matches and 16 targets each", () => {
  const many = Array.from({ length: MAX_REWRITE_RULES + 10 }, (_, i) =>
    rewrite("llm-d.ai", `r${String(i).padStart(3, "0")}`, [{ matches: [`m${i}`], targets: [to(`t${i}`)] }], {
      created: "2026-01-01T00:00:00Z",
    }),
  );
  const { rules, dropped } = rewriteRulesOf(many as never, "llama", POOL_GROUP);
  assert.equal(rules.length, MAX_REWRITE_RULES);
  assert.equal(dropped, 10);
  assert.equal(rules[0].matches[0], "m0");
  const wide = rewriteRulesOf(
    [
      rewrite("llm-d.ai", "wide", [
        {
          matches: Array.from({ length: 40 }, (_, i) => `m${i}`),
          targets: Array.from({ length: 20 }, (_, i) => to(`t${i}`, 1)),
        },
      ]),
    ] as never,
    "llama",
    POOL_GROUP,
  ).rules[0];
  assert.equal(wide.matches.length, MAX_REWRITE_MATCHES);
  assert.equal(wide.targets.length, MAX_REWRITE_TARGETS);
});

test("the snapshot carries the rules (section 5), in its content key; none: no section", () => {
  const base = { version: 1n, generatedAtMs: 0, profile: DEFAULT_PROFILE, endpoints: [], baseModels: [] };
  const modelRewrites: ModelRewriteRule[] = [
    {
      matches: ["food-review"],
      targets: [
        { model: "food-review-v1", weight: 90 },
        { model: "food-review-v2", weight: 10 },
      ],
    },
    { matches: [], targets: [{ model: "général-ü", weight: 1000000 }] },
    { matches: ["keep"], targets: [] },
  ];
  const blob = encodeSnapshot({ ...base, modelRewrites });
  assert.deepEqual(decodeSnapshot(blob).modelRewrites, modelRewrites);
  const none = encodeSnapshot(base);
  assert.equal(decodeSnapshot(none).modelRewrites, undefined);
  // A later revision's bytes at the end of each rule and of the section are skipped.
  const later = encodeSnapshot({ ...base, modelRewrites }, { tail: Buffer.from([9, 9, 9, 9, 9]), sectionId: 77 });
  assert.deepEqual(decodeSnapshot(later).modelRewrites, modelRewrites);

  let rules = modelRewrites;
  const publisher = new SnapshotPublisher(() => ({ ...base, modelRewrites: rules }), { minIntervalMs: 0 });
  const first = publisher.current.version;
  publisher.requestUpdate();
  rules = [{ ...modelRewrites[0], targets: [{ model: "food-review-v1", weight: 50 }] }];
  publisher.requestUpdate();
  return until("a new version for a changed weight", () => publisher.current.version > first).finally(() =>
    publisher.stop(),
  );
});

test("InferenceModelRewrites of both API groups are watched; llm-d.ai wins a name in both; a missing CRD is fine", async (t) => {
  const fake = await FakeKube.start();
  t.after(() => fake.close());
  fake.put(
    rewrite("llm-d.ai", "canary", [{ matches: ["food-review"], targets: [to("food-review-v1", 90), to("v2", 10)] }]),
  );
  fake.put(rewrite("inference.networking.x-k8s.io", "canary", [{ matches: ["food-review"], targets: [to("gie")] }]));
  fake.put(
    rewrite("inference.networking.x-k8s.io", "all", [{ targets: [to("everything")] }], {
      created: "2020-01-01T00:00:00Z",
    }),
  );
  let seen: ModelRewriteRule[] = [];
  const w = new ModelRewriteWatcher(
    loadKubeConfig(fake.kubeconfigPath),
    "default",
    "llama",
    POOL_GROUP,
    silentLogger,
    (r) => (seen = r),
  );
  t.after(() => w.stop());
  w.start();
  await until("both groups listed", () => seen.length === 2);
  assert.deepEqual(seen, [
    {
      matches: ["food-review"],
      targets: [
        { model: "food-review-v1", weight: 90 },
        { model: "v2", weight: 10 },
      ],
    },
    { matches: [], targets: [{ model: "everything", weight: 1 }] },
  ]);
  fake.delete("llm-d.ai/v1alpha2", "InferenceModelRewrite", "default", "canary");
  await until("GIE's canary is what is left", () => seen[0]?.targets[0]?.model === "gie");
  fake.update("inference.networking.x-k8s.io/v1alpha2", "InferenceModelRewrite", "default", "all", (o) => {
    (o.spec as { poolRef: { name: string } }).poolRef.name = "qwen";
  });
  await until("the match-all rule to leave with its pool", () => seen.length === 1);

  // A cluster with only GIE's CRD: llm-d.ai's list is a 404, checked again later; GIE's still count.
  const gieOnly = await FakeKube.start();
  t.after(() => gieOnly.close());
  gieOnly.uninstall("llm-d.ai/v1alpha2", "InferenceModelRewrite");
  gieOnly.put(rewrite("inference.networking.x-k8s.io", "only", [{ matches: ["m"], targets: [to("n")] }]));
  let onlyGie: ModelRewriteRule[] = [];
  const w2 = new ModelRewriteWatcher(
    loadKubeConfig(gieOnly.kubeconfigPath),
    "default",
    "llama",
    POOL_GROUP,
    silentLogger,
    (r) => (onlyGie = r),
  );
  t.after(() => w2.stop());
  w2.start();
  await until("GIE's rewrites", () => onlyGie.length === 1);
  assert.deepEqual(onlyGie, [{ matches: ["m"], targets: [{ model: "n", weight: 1 }] }]);
});
