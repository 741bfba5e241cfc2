// The filter must import nothing that Envoy's proxy-wasm host lacks, or Envoy refuses to load it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { unresolvedImports, declaredAbi } from "../../envoy/host-abi";
import { buildModule } from "../helpers/wasm-module";

test("build/filter.wasm imports only what Envoy provides for ABI 0.2.x", () => {
  const module = new WebAssembly.Module(readFileSync("build/filter.wasm"));
  assert.ok(declaredAbi(module), "the filter must export proxy_abi_version_0_2_0 or _0_2_1");
  assert.deepEqual(unresolvedImports(module), []);
});

test("a module importing env.abort, env.seed, Date.now or console.log is refused", () => {
  const stray = [
    { module: "env", name: "abort", sig: "iiii:" },
    { module: "env", name: "seed", sig: ":I" },
    { module: "Date", name: "now", sig: ":I" },
    { module: "env", name: "console.log", sig: "i:" },
  ];
  for (const bad of stray) {
    const module = new WebAssembly.Module(
      buildModule([{ module: "env", name: "proxy_log", sig: "iii:i" }, bad], ["proxy_abi_version_0_2_0"]),
    );
    assert.deepEqual(unresolvedImports(module), [`${bad.module}.${bad.name}`]);
  }
});

test("proxy_get_log_level is only offered to ABI 0.2.1 modules", () => {
  const imports = [{ module: "env", name: "proxy_get_log_level", sig: "i:i" }];
  const old = new WebAssembly.Module(buildModule(imports, ["proxy_abi_version_0_2_0"]));
  const current = new WebAssembly.Module(buildModule(imports, ["proxy_abi_version_0_2_1"]));
  assert.deepEqual(unresolvedImports(old), ["env.proxy_get_log_level"]);
  assert.deepEqual(unresolvedImports(current), []);
});
