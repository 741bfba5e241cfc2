// Reads the import section of a wasm binary with each function import's signature. Node 20 has no
// WebAssembly type reflection, and cpp-host refuses an import whose signature differs, so we parse it.
import { hostImports, abiVersionExport } from "../host-abi";

export interface FunctionImport {
  module: string;
  name: string;
  sig: string;
}

const VALTYPE: Record<number, string> = { 0x7f: "i", 0x7e: "I", 0x7d: "f", 0x7c: "F", 0x7b: "v", 0x70: "r", 0x6f: "x" };

class Reader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}
  byte(): number {
    if (this.at >= this.bytes.length) throw new Error("truncated wasm binary");
    return this.bytes[this.at++];
  }
  u32(): number {
    let result = 0,
      shift = 0,
      b: number;
    do {
      b = this.byte();
      result |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    return result >>> 0;
  }
  name(): string {
    const n = this.u32();
    const s = Buffer.from(this.bytes.subarray(this.at, this.at + n)).toString("utf8");
    this.at += n;
    return s;
  }
}

export function functionImports(bytes: Uint8Array): FunctionImport[] {
  const r = new Reader(bytes);
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error("not a wasm binary (bad magic)");
  }
  r.at = 8;
  const types: string[] = [];
  const out: FunctionImport[] = [];
  while (r.at < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const end = r.at + size;
    if (id === 1) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        if (r.byte() !== 0x60) throw new Error("unsupported type form in type section");
        const params = Array.from({ length: r.u32() }, () => VALTYPE[r.byte()] ?? "?").join("");
        const results = Array.from({ length: r.u32() }, () => VALTYPE[r.byte()] ?? "?").join("");
        types.push(`${params}:${results}`);
      }
    } else if (id === 2) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const module = r.name();
        const name = r.name();
        const kind = r.byte();
        if (kind === 0) out.push({ module, name, sig: types[r.u32()] ?? "?" });
        else if (kind === 1) {
          r.byte();
          const f = r.u32();
          r.u32();
          if (f & 1) r.u32();
        } else if (kind === 2) {
          const f = r.u32();
          r.u32();
          if (f & 1) r.u32();
        } else if (kind === 3) {
          r.byte();
          r.byte();
        } else throw new Error(`unknown import kind ${kind}`);
      }
      break; // everything we need comes before the end of the import section
    }
    r.at = end;
  }
  return out;
}

function describe(sig: string): string {
  const names: Record<string, string> = { i: "i32", I: "i64", f: "f32", F: "f64" };
  const [p, res] = sig.split(":");
  return `(${[...p].map((c) => names[c] ?? c).join(", ")}) -> ${res ? [...res].map((c) => names[c] ?? c).join(", ") : "()"}`;
}

/**
 * Refuses a module like cpp-host's link step: any import Envoy does not provide, any signature that
 * differs, any non-function import other than memory/table. Returns the declared ABI version.
 */
export function checkLinkable(bytes: Uint8Array, module: WebAssembly.Module): "0.2.0" | "0.2.1" {
  const abi = abiVersionExport(module);
  if (!abi)
    throw new Error("module exports neither proxy_abi_version_0_2_0 nor proxy_abi_version_0_2_1, which Envoy requires");
  if (abi === "0.1.0")
    throw new Error(
      "module declares Proxy-Wasm ABI 0.1.0 (its first proxy_abi_version_* export), which the emulator does not implement",
    );
  const allowed = hostImports(abi);
  for (const imp of functionImports(bytes)) {
    const key = `${imp.module}.${imp.name}`;
    const want = allowed.get(key);
    if (want === undefined) throw new Error(`module imports ${key}, which Envoy does not provide (ABI ${abi})`);
    if (want !== imp.sig)
      throw new Error(
        `module imports ${key} with signature ${describe(imp.sig)}, but Envoy provides ${describe(want)}`,
      );
  }
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind === "global")
      throw new Error(`module imports global ${imp.module}.${imp.name}, which Envoy does not provide`);
  }
  return abi;
}
