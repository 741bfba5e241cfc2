// Assembles tiny wasm modules for tests: each named import is a function of the given signature
// ("iii:i" as in envoy/host-abi.ts), plus optional empty exported functions.

const VALTYPE: Record<string, number> = { i: 0x7f, I: 0x7e };

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}
const name = (s: string): number[] => [...leb(Buffer.byteLength(s)), ...Buffer.from(s)];
const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];

export function buildModule(
  imports: { module: string; name: string; sig: string }[],
  exports: string[] = [],
): Uint8Array<ArrayBuffer> {
  const sigs = [...new Set([...imports.map((i) => i.sig), ":"])];
  const types = sigs.map((sig) => {
    const [params, results] = sig.split(":");
    return [0x60, ...vec([...params].map((c) => [VALTYPE[c]])), ...vec([...results].map((c) => [VALTYPE[c]]))];
  });
  const voidType = sigs.indexOf(":");
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec(types)),
    ...section(2, vec(imports.map((i) => [...name(i.module), ...name(i.name), 0x00, ...leb(sigs.indexOf(i.sig))]))),
    ...section(3, vec(exports.map(() => leb(voidType)))),
    ...section(7, vec(exports.map((e, k) => [...name(e), 0x00, ...leb(imports.length + k)]))),
    ...section(10, vec(exports.map(() => [0x02, 0x00, 0x0b]))),
  ];
  return new Uint8Array(bytes);
}
