import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { gunzipSync } from "node:zlib";

const read = (f: string) => readFileSync(f, "utf8");
const OCI_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const WASM_ARTIFACT_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm";

/** The file named plugin.wasm in a tar.gz layer, found the way istio-agent does (pkg/wasm/imagefetcher.go,
 * extractWasmPluginBinary: gunzip, walk the tar, first entry whose base name is plugin.wasm). */
function pluginWasmOf(layer: Buffer): Buffer | undefined {
  const tar = gunzipSync(layer);
  for (let off = 0; off + 512 <= tar.length;) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const field = (a: number, b: number) => header.subarray(a, b).toString("latin1").replace(/\0.*$/s, "");
    const name = (field(345, 500) ? field(345, 500) + "/" : "") + field(0, 100);
    const size = parseInt(field(124, 136).trim() || "0", 8);
    const type = field(156, 157);
    if ((type === "0" || type === "") && basename(name) === "plugin.wasm")
      return tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
}

// Point 2: a single raw wasm layer is neither of Istio's compat layouts nor its two-layer OCI artifact.
test("wasm-layer.sh packs build/filter.wasm as the plugin.wasm istio-agent extracts", () => {
  const wasm = "build/filter.wasm";
  assert.ok(existsSync(wasm), "run make build first");
  const dir = mkdtempSync(join(tmpdir(), "wasm-layer-"));
  try {
    const out = join(dir, "plugin.tar.gz");
    execFileSync("sh", ["envoy/images/wasm-layer.sh", wasm, out]);
    const layer = readFileSync(out);
    assert.deepEqual([layer[0], layer[1]], [0x1f, 0x8b], "the layer must be gzip");
    const plugin = pluginWasmOf(layer);
    assert.ok(plugin, "no plugin.wasm in the layer");
    assert.ok(plugin.equals(readFileSync(wasm)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every documented oras push sends the tar+gzip layer, never a lone wasm artifact layer", () => {
  const sources = ["docs/DEPLOY.md", "envoy/images/wasm.Dockerfile", "envoy/images/wasm-layer.sh"];
  let pushes = 0;
  for (const f of sources) {
    // Join continued lines, then look at each oras push command.
    const lines = read(f)
      .replace(/\\\n\s*(#\s*)?/g, " ")
      .split("\n");
    for (const l of lines.filter((x) => /oras push/.test(x))) {
      pushes++;
      assert.ok(l.includes(`plugin.tar.gz:${OCI_TAR_GZIP}`), `${f}: ${l.trim()}`);
      assert.ok(!l.includes(WASM_ARTIFACT_LAYER), `${f}: ${l.trim()}`);
    }
  }
  assert.ok(pushes >= 2, "DEPLOY.md and wasm-layer.sh document the oras alternative");
  assert.match(read("envoy/images/wasm.Dockerfile"), /^COPY build\/filter\.wasm \.\/plugin\.wasm$/m);
});

// Point 8: `COPY . .` after `npm ci` must not bring the host's node_modules along.
test(".dockerignore keeps node_modules, build and .git out of the image context, except build/filter.wasm", () => {
  assert.ok(existsSync(".dockerignore"));
  const rules = read(".dockerignore")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  for (const r of ["node_modules", ".git", "build"]) assert.ok(rules.includes(r), `.dockerignore lacks ${r}`);
  assert.ok(rules.indexOf("!build/filter.wasm") > rules.indexOf("build"), "wasm.Dockerfile needs build/filter.wasm");
  const dockerfile = read("envoy/images/companion.Dockerfile");
  const steps = dockerfile.split("\n").filter((l) => /^(FROM|COPY|RUN)\b/.test(l));
  assert.ok(steps.findIndex((l) => /npm ci/.test(l)) < steps.findIndex((l) => /^COPY \. \./.test(l)));
  assert.ok(
    steps.findIndex((l) => /^COPY patches/.test(l)) < steps.findIndex((l) => /npm ci/.test(l)),
    "npm ci runs patch-package: the patches must be there",
  );
});

// Nitpick: Node.js 20 is end-of-life; build and run on 22.
test("companion image: Node.js 22 to build, distroless nodejs22 to run", () => {
  const froms = read("envoy/images/companion.Dockerfile")
    .split("\n")
    .filter((l) => l.startsWith("FROM "));
  assert.deepEqual(froms, ["FROM node:22 AS build", "FROM gcr.io/distroless/nodejs22-debian12:nonroot"]);
});

// Point 6: from nothing to a routed request.
test("DEPLOY.md: Istio install, Gateway, InferencePool CRD, HF token, model Service, $GATEWAY before use", () => {
  const doc = read("docs/DEPLOY.md");
  assert.match(doc, /istioctl install/);
  assert.match(doc, /kubectl apply -f envoy\/istio\/gateway\.yaml/);
  assert.match(
    doc,
    /https:\/\/github\.com\/kubernetes-sigs\/gateway-api-inference-extension\/releases\/download\/\$GIE_VERSION\/manifests\.yaml/,
  );
  assert.match(doc, /kubectl create secret generic hf-token/);
  const defined = doc.indexOf("export GATEWAY=");
  assert.ok(defined > 0 && defined < doc.indexOf("$GATEWAY"), "GATEWAY must be defined before it is used");
  assert.doesNotMatch(doc, /needs a plain Service/);
  // The wrong claims a reviewer found must not come back.
  assert.doesNotMatch(doc, /AUTHZ` \(after/);
  assert.doesNotMatch(doc, /Istio derives the vm_id/);
  assert.doesNotMatch(doc, /new VM starts empty and fetches/);
  assert.doesNotMatch(doc, /`inferenceExtension\.pluginsConfig` \|/);
  assert.match(doc, /PILOT_FILTER_GATEWAY_CLUSTER_CONFIG/);
  assert.match(doc, /override_host/);
  assert.match(doc, /plaintext/);
});

// The routing, failover, token and served-header sections the files' comments and filter/config.ts point to.
test("DEPLOY.md: routing by override_host, companion failover, API token, served header", () => {
  const doc = read("docs/DEPLOY.md");
  for (const heading of [
    "### Routing: override_host, retries",
    "## 4b. Companion failover",
    "## 4c. The API token",
    "## 4d. The served header (debugging)",
  ])
    assert.ok(doc.includes(`\n${heading}\n`), heading);
  assert.match(doc, /kubectl apply -f envoy\/istio\/override-host\.yaml/);
  assert.match(doc, /kubectl apply -f envoy\/istio\/companion-destinationrule\.yaml/);
  assert.match(doc, /inferenceExtension\.apiToken\.existingSecret/);
  assert.match(doc, /inferenceExtension\.apiToken\.enabled=false/);
  assert.match(doc, /--set wasmPlugin\.servedHeader=x-gateway-destination-endpoint-served/);
  // The routes of the ORIGINAL_DST form must not come back as the current setup.
  assert.doesNotMatch(doc, /inference-pool-fallback`: |route `inference-pool` with `cluster:\s+inference-pool`/);
});
