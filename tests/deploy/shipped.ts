// What the shipped deployment files give, for the tests that check them: the chart rendered with its
// default values (plus --set assignments), and the filter configurations a set of manifests carries.
import { readFileSync, readdirSync } from "node:fs";
import { parse } from "yaml";
import { renderChart, setValue } from "./helm-subset";
import { parseManifests } from "./validate";

type Y = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** envoy/chart rendered with values.yaml and `sets` (`a.b=c`), release llm in namespace models. */
export function renderChartDefaults(sets: string[] = []): Y[] {
  const dir = "envoy/chart/templates";
  const values = parse(readFileSync("envoy/chart/values.yaml", "utf8"));
  for (const s of sets) setValue(values, s);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".yaml") || f.endsWith(".tpl"))
    .sort()
    .map((f) => ({ name: f, src: readFileSync(`${dir}/${f}`, "utf8") }));
  return renderChart(files, values, { Name: "llm", Namespace: "models" }).flatMap((f) => parseManifests(f.src, f.name));
}

/** The filter configurations of a set of manifests: ECDS EnvoyFilter configurations and WasmPlugin pluginConfigs. */
export function filterConfigs(docs: Y[]): Y[] {
  return docs.flatMap((d) =>
    d.kind === "WasmPlugin"
      ? [d.spec.pluginConfig]
      : d.kind === "EnvoyFilter"
        ? d.spec.configPatches
            .filter((p: Y) => p.applyTo === "EXTENSION_CONFIG")
            .map((p: Y) => JSON.parse(p.patch.value.typed_config.config.configuration.value))
        : [],
  );
}
