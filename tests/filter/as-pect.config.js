// as-pect runs the filter's AssemblyScript specs (tests/filter/*.spec.ts) against the filter's modules.
// Specs only touch pure modules or the host stubs below, never a real proxy-wasm host. The `fixtures`
// imports hand specs the repository's fixture files (tests/fixtures/), e.g. the snapshot golden sample.
import { readFileSync } from "node:fs";

export default {
  entries: ["tests/filter/**/*.spec.ts"],
  include: [],
  disclude: [/node_modules/],
  async instantiate(memory, createImports, instantiate, binary) {
    let loaded = null;
    const path = (ptr) => `tests/fixtures/${loaded.exports.__getString(ptr)}`;
    const fixtures = {
      // Pinned, so no collector step can free them before the spec holds them (a spec run is short-lived).
      bytes: (ptr) => loaded.exports.__pin(loaded.exports.__newArrayBuffer(readFileSync(path(ptr)))),
      text: (ptr) => loaded.exports.__pin(loaded.exports.__newString(readFileSync(path(ptr), "utf8"))),
    };
    loaded = await instantiate(binary, createImports({ env: { memory }, fixtures }));
    return loaded;
  },
  outputBinary: false,
};
