/** docs/bench.svg: verify time and token size per library, rendered headless by vega (no canvas, no native build). */
import { parse, View, type Spec } from "vega";
import type { PeersResult } from "./peers.js";

const COLORS: Record<string, string> = {
  floor: "#7f7f7f",
  Allowance: "#2f6fde",
  Biscuit: "#e07b39",
  UCAN: "#8e5cc2",
  "Macaroon (HMAC)": "#3a9a5b",
};

function short(measure: string): string {
  if (measure.startsWith("5 raw")) return "floor: 5 raw Ed25519 verifies";
  if (measure.includes("warm")) return "warm (prefix cached)";
  if (measure.includes("authorization")) return "cold, + authorization";
  if (measure.includes("parse + signatures)")) return "cold, parse + signatures";
  if (measure.includes("HMAC")) return "cold, HMAC (reference)";
  return "cold";
}

export async function renderChart(result: PeersResult, subtitle: string): Promise<string> {
  const verifyRows = result.rows
    .filter(
      (r) =>
        r.unit === "µs" &&
        (r.measure.startsWith("5 raw") || r.kind === "verify-cold" || r.kind === "verify-warm"),
    )
    .map((r) => ({
      label:
        r.library === "floor"
          ? short(r.measure)
          : `${r.library.replace(" (HMAC)", "")}: ${short(r.measure)}`,
      library: r.library,
      value: r.value,
      text:
        r.value >= 10_000
          ? `${(r.value / 1000).toFixed(1)} ms (${r.xFloor!.toFixed(0)}× floor)`
          : `${r.value.toFixed(0)} µs (${r.xFloor!.toFixed(2)}× floor)`,
    }));
  const sizeRows = result.rows
    .filter((r) => r.unit === "bytes" && !(r.library === "UCAN" && r.kind === "binary"))
    .map((r) => ({
      label: `${r.library.replace(" (HMAC)", "")}: ${r.library === "UCAN" ? "JWT string" : r.kind === "binary" ? "binary" : "string"}`,
      library: r.library,
      value: r.value,
      text: `${r.value.toLocaleString("en-US")} B`,
    }));
  const maxMicros = Math.max(...verifyRows.map((r) => r.value));
  const maxBytes = Math.max(...sizeRows.map((r) => r.value));
  const width = 460;
  const rowHeight = 22;
  const panel = (
    name: string,
    title: string,
    rows: number,
    xScale: object,
    axisTitle: string,
    xStart: object,
    top: number,
  ) => ({
    type: "group",
    name: `${name}-panel`,
    encode: {
      enter: {
        x: { value: 0 },
        y: { value: top },
        width: { value: width },
        height: { value: rows * rowHeight },
      },
    },
    title: { text: title, anchor: "start", frame: "group", fontSize: 13, offset: 10 },
    scales: [
      {
        name: "y",
        type: "band",
        domain: { data: name, field: "label" },
        range: [0, rows * rowHeight],
        padding: 0.2,
      },
      { name: "x", range: [0, width], ...xScale },
    ],
    axes: [
      {
        orient: "left",
        scale: "y",
        labelLimit: 320,
        ticks: false,
        domain: false,
        labelFontSize: 11,
      },
      {
        orient: "bottom",
        scale: "x",
        title: axisTitle,
        grid: true,
        gridScale: "y",
        gridOpacity: 0.25,
        labelFontSize: 10,
        titleFontSize: 11,
        tickCount: 6,
      },
    ],
    marks: [
      {
        type: "rect",
        from: { data: name },
        encode: {
          enter: {
            y: { scale: "y", field: "label" },
            height: { scale: "y", band: 1 },
            x: { scale: "x", ...xStart },
            x2: { scale: "x", field: "value" },
            fill: { scale: "color", field: "library" },
          },
        },
      },
      {
        type: "text",
        from: { data: name },
        encode: {
          enter: {
            y: { scale: "y", field: "label", band: 0.5 },
            x: { scale: "x", field: "value", offset: 4 },
            baseline: { value: "middle" },
            fontSize: { value: 10 },
            fill: { value: "#333" },
            text: { field: "text" },
          },
        },
      },
    ],
  });
  const verifyHeight = verifyRows.length * rowHeight + 20;
  const spec: Spec = {
    $schema: "https://vega.github.io/schema/vega/v6.json",
    width,
    height: verifyHeight + 70 + sizeRows.length * rowHeight,
    padding: { left: 10, right: 140, top: 10, bottom: 10 },
    background: "white",
    title: {
      text: "Verifying a 5-link delegation chain, and its size",
      subtitle,
      anchor: "start",
      fontSize: 15,
      subtitleFontSize: 11,
      offset: 6,
    },
    data: [
      { name: "verify", values: verifyRows },
      { name: "size", values: sizeRows },
    ],
    scales: [
      { name: "color", type: "ordinal", domain: Object.keys(COLORS), range: Object.values(COLORS) },
    ],
    marks: [
      panel(
        "verify",
        "Verify time, median µs (log scale; lower is better)",
        verifyRows.length,
        { type: "log", domain: [10, maxMicros * 4], nice: false },
        "µs",
        { value: 10 },
        0,
      ),
      panel(
        "size",
        "Token size as transmitted, bytes (lower is better)",
        sizeRows.length,
        { type: "linear", domain: [0, maxBytes * 1.05], nice: true, zero: true },
        "bytes",
        { value: 0 },
        verifyHeight + 70,
      ),
    ],
  } as Spec;
  const view = new View(parse(spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
