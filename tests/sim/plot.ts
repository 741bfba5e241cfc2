// The routing benchmark's PNG: p99 TTFT and output throughput against load, one column per workload, one
// line per picker. Vega-Lite compiles the spec, Vega renders SVG headless, resvg rasterises it.
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export interface PlotRow {
  workload: string;
  loadPct: number;
  picker: string;
  ttftP99Ms: number;
  outputTokPerSec: number;
}

export async function renderRoutingPng(rows: PlotRow[], title: string): Promise<Buffer> {
  const panel = (field: keyof PlotRow, label: string, log: boolean) => ({
    facet: { column: { field: "workload", type: "nominal" as const, title: null, header: { labelFontSize: 13 } } },
    spec: {
      width: 190,
      height: 170,
      layer: [{ mark: { type: "line" as const, point: true } }],
      encoding: {
        x: {
          field: "loadPct",
          type: "quantitative" as const,
          title: "load (% of capacity)",
          scale: { domain: [45, 100] },
        },
        y: {
          field,
          type: "quantitative" as const,
          title: label,
          scale: log ? { type: "log" as const } : { zero: false },
        },
        color: { field: "picker", type: "nominal" as const, title: "picker" },
      },
    },
    resolve: { scale: { y: "independent" as const } },
  });
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: { text: title, fontSize: 14 },
    data: { values: rows },
    vconcat: [panel("ttftP99Ms", "p99 TTFT (ms, log)", true), panel("outputTokPerSec", "output tokens/s", false)],
    config: { background: "white", font: "DejaVu Sans" },
  } as unknown as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return new Resvg(svg, { fitTo: { mode: "zoom", value: 1.5 }, font: { loadSystemFonts: true } }).render().asPng();
}
