// as-pect runs the filter's AssemblyScript specs (tests/filter/*.spec.ts) against the filter's modules.
// Specs only touch pure modules or the host stubs below, never a real proxy-wasm host.
export default {
  entries: ["tests/filter/**/*.spec.ts"],
  include: [],
  disclude: [/node_modules/],
  async instantiate(memory, createImports, instantiate, binary) {
    return instantiate(binary, createImports({ env: { memory } }));
  },
  outputBinary: false,
};
