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

export interface FlowQueueRow {
  picker: string;
  tS: number;
  /** "held: <band>" (requests the gateway holds) or "waiting in pods". */
  series: string;
  requests: number;
}

export interface FlowTtftRow {
  picker: string;
  tS: number;
  band: string;
  ttftP99Ms: number;
}

/**
 * The flow-control benchmark's PNG for the bands workload: one column per picker; on top the requests
 * waiting over time (held by the gateway per band, and waiting inside the pods), below p99 TTFT per band of
 * the requests arriving in each bin (log scale). `window` shades the overload burst.
 */
export async function renderFlowPng(
  queue: FlowQueueRow[],
  ttft: FlowTtftRow[],
  pickers: string[],
  window: { fromS: number; toS: number },
  title: string,
): Promise<Buffer> {
  const column = {
    field: "picker",
    type: "nominal" as const,
    title: null,
    sort: pickers,
    header: { labelFontSize: 13 },
  };
  // The window's shading: one row per picker of kind "window" in each panel's data.
  const shade = {
    transform: [{ filter: "datum.kind === 'window'" }],
    mark: { type: "rect" as const, color: "#f2e6c9", opacity: 0.7 },
    encoding: { x: { field: "from", type: "quantitative" as const }, x2: { field: "to" } },
  };
  const endS = Math.max(window.toS, ...queue.map((r) => r.tS), ...ttft.map((r) => r.tS));
  const panel = (values: object[], y: object, color: object, point: boolean) => ({
    data: { values },
    facet: { column },
    spec: {
      width: 230,
      height: 170,
      layer: [
        shade,
        {
          transform: [{ filter: "datum.kind !== 'window'" }],
          mark: point
            ? { type: "line" as const, strokeWidth: 1, point: { size: 12 } }
            : { type: "line" as const, interpolate: "step-after" as const, strokeWidth: 1.5 },
          encoding: {
            x: { field: "tS", type: "quantitative" as const, title: "time (s)", scale: { domain: [0, endS] } },
            y,
            color,
          },
        },
      ],
    },
  });
  const windowRows = pickers.map((picker) => ({ picker, kind: "window", from: window.fromS, to: window.toS }));
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: { text: title, fontSize: 14 },
    vconcat: [
      panel(
        [...windowRows, ...queue.map((r) => ({ ...r, kind: "queue" }))],
        { field: "requests", type: "quantitative", title: "requests waiting" },
        { field: "series", type: "nominal", title: "waiting", scale: { scheme: "category10" } },
        false,
      ),
      panel(
        [...windowRows, ...ttft.filter((r) => r.ttftP99Ms > 0).map((r) => ({ ...r, kind: "ttft" }))],
        { field: "ttftP99Ms", type: "quantitative", title: "p99 TTFT, served (ms, log)", scale: { type: "log" } },
        { field: "band", type: "nominal", title: "band (by arrival)", scale: { scheme: "dark2" } },
        true,
      ),
    ],
    resolve: { scale: { color: "independent" } },
    config: { background: "white", font: "DejaVu Sans" },
  } as unknown as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return new Resvg(svg, { fitTo: { mode: "zoom", value: 1.5 }, font: { loadSystemFonts: true } }).render().asPng();
}
