/**
 * Loss curves as a self-contained SVG (hand-written, no dependencies): training and validation
 * loss against the optimizer step, with axes, ticks, labels and a legend; and line charts of any
 * named series side by side (e.g. two optimizers' loss against step and against wall time).
 * @module
 */

import { writeFileAtomic } from "../io/atomic.ts";

/** A curve: [step, loss] points in step order. */
export type CurvePoints = readonly (readonly [number, number])[];

/** What {@linkcode lossCurveSvg} draws. */
export interface LossCurveData {
  /** Training loss per step. */
  train: CurvePoints;
  /** Validation loss at evaluation steps. */
  val?: CurvePoints;
}

/** Size and title of the plot. */
export interface LossCurveOptions {
  /** Pixels; default 720. */
  width?: number;
  /** Pixels; default 420. */
  height?: number;
  /** Text above the plot; default "Loss". */
  title?: string;
}

/** One named line of a {@linkcode LineChart}. */
export interface ChartSeries {
  /** Legend text. */
  name: string;
  /** [x, y] points in x order; non-finite points are left out. */
  points: CurvePoints;
  /** Stroke colour; default: the next of a fixed palette. */
  color?: string;
  /** Draw a dot at every point (for sparse series such as validation loss). */
  markers?: boolean;
}

/** One panel of {@linkcode lineChartsSvg}. */
export interface LineChart {
  /** The lines, drawn in order. */
  series: readonly ChartSeries[];
  /** Text above the panel. */
  title?: string;
  /** Label of the x axis; default "step". */
  xLabel?: string;
  /** Label of the y axis; default "loss". */
  yLabel?: string;
}

/** Panel size of {@linkcode lineChartsSvg}. */
export interface LineChartsOptions {
  /** Pixels per panel; default 720. */
  panelWidth?: number;
  /** Pixels per panel; default 420. */
  panelHeight?: number;
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function label(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(4))}k`;
  return a >= 1 ? String(Number(v.toPrecision(4))) : String(Number(v.toPrecision(3)));
}

/**
 * An SVG document plotting training loss (a line) and validation loss (a line with markers)
 * against the step. Non-finite losses are left out.
 *
 * @example
 * ```ts
 * import { lossCurveSvg } from "@denograd/denograd";
 * const svg = lossCurveSvg({ train: [[1, 10.9], [2, 9.7], [3, 8.8]], val: [[3, 9.1]] });
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export function lossCurveSvg(data: LossCurveData, options: LossCurveOptions = {}): string {
  const { width = 720, height = 420, title = "Loss" } = options;
  const series: ChartSeries[] = [{ name: "train loss", points: data?.train ?? [] }];
  if (data?.val?.length) series.push({ name: "val loss", points: data.val, markers: true });
  return lineChartsSvg([{ series, title }], { panelWidth: width, panelHeight: height });
}

/**
 * An SVG document with line charts side by side, each with its own axes, round ticks and a
 * legend naming its series.
 *
 * @example
 * ```ts
 * import { lineChartsSvg } from "@denograd/denograd";
 * const a = { name: "AdamW", points: [[1, 10], [2, 8]] as [number, number][] };
 * const b = { name: "Muon", points: [[1, 10], [2, 7]] as [number, number][] };
 * const svg = lineChartsSvg([
 *   { title: "loss vs step", series: [a, b] },
 *   { title: "loss vs time", xLabel: "seconds", series: [a, b] },
 * ]);
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export function lineChartsSvg(
  charts: readonly LineChart[],
  options: LineChartsOptions = {},
): string {
  const { panelWidth = 720, panelHeight = 420 } = options;
  if (!Array.isArray(charts) || charts.length === 0) {
    throw new TypeError("lineChartsSvg: expected a non-empty array of charts");
  }
  const width = panelWidth * charts.length, height = panelHeight;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  charts.forEach((chart, i) => {
    out.push(`<g transform="translate(${i * panelWidth} 0)">`);
    drawPanel(out, chart, panelWidth, panelHeight);
    out.push("</g>");
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** Appends one chart's elements, in a width x height box at the origin. */
function drawPanel(out: string[], chart: LineChart, width: number, height: number): void {
  const { title = "", xLabel = "step", yLabel = "loss" } = chart;
  const series = chart.series.map((s, i) => ({
    ...s,
    color: s.color ?? PALETTE[i % PALETTE.length],
    points: (s.points ?? []).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
  }));
  const all = series.flatMap((s) => s.points);
  const m = { left: 64, right: 24, top: 44, bottom: 52 };
  const pw = width - m.left - m.right, ph = height - m.top - m.bottom;
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (all.length === 0) [x0, x1, y0, y1] = [0, 1, 0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  y0 = Math.max(0, y0 - pad);
  y1 += pad;
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const f = (v: number) => v.toFixed(1);
  const path = (c: CurvePoints) => c.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ");

  out.push(
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  );
  // Grid lines and tick labels.
  for (const t of niceTicks(y0, y1)) {
    const y = f(sy(t));
    out.push(
      `<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${
        label(t)
      }</text>`,
    );
  }
  for (const t of niceTicks(x0, x1)) {
    const x = f(sx(t));
    out.push(
      `<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + ph}" stroke="#f0f0f0"/>`,
      `<text x="${x}" y="${m.top + ph + 18}" text-anchor="middle">${label(t)}</text>`,
    );
  }
  // Axes and their labels.
  out.push(
    `<path d="M${m.left},${m.top} V${m.top + ph} H${m.left + pw}" fill="none" stroke="#333"/>`,
    `<text x="${m.left + pw / 2}" y="${height - 10}" text-anchor="middle">${
      escapeXml(xLabel)
    }</text>`,
    `<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${
      escapeXml(yLabel)
    }</text>`,
  );
  if (all.length === 0) {
    out.push(
      `<text x="${m.left + pw / 2}" y="${
        m.top + ph / 2
      }" text-anchor="middle" fill="#888">no data yet</text>`,
    );
  }
  for (const s of series) {
    if (!s.points.length) continue;
    out.push(
      `<polyline points="${path(s.points)}" fill="none" stroke="${s.color}" stroke-width="${
        s.markers ? 2 : 1.5
      }"/>`,
    );
    if (s.markers) {
      out.push(
        ...s.points.map(([x, y]) =>
          `<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3" fill="${s.color}"/>`
        ),
      );
    }
  }
  // Legend, top right: one row per series that has points.
  const shown = series.filter((s) => s.points.length);
  if (!shown.length) return;
  const lw = 54 + 7 * Math.max(...shown.map((s) => s.name.length));
  const lx = m.left + pw - lw + 4, ly = m.top + 8;
  out.push(
    `<rect x="${lx - 8}" y="${ly - 4}" width="${lw}" height="${4 + 20 * shown.length}" ` +
      `fill="white" fill-opacity="0.85" stroke="#ccc"/>`,
  );
  shown.forEach((s, i) => {
    const y = ly + 8 + 20 * i;
    out.push(
      `<line x1="${lx}" y1="${y}" x2="${lx + 24}" y2="${y}" stroke="${s.color}" stroke-width="2"/>`,
    );
    if (s.markers) out.push(`<circle cx="${lx + 12}" cy="${y}" r="3" fill="${s.color}"/>`);
    out.push(
      `<text x="${lx + 30}" y="${y}" dominant-baseline="middle">${escapeXml(s.name)}</text>`,
    );
  });
}

/**
 * Writes {@linkcode lossCurveSvg} to `path` atomically (a reader never sees half a file).
 *
 * @returns when the file is in place
 */
export async function writeLossPlot(
  path: string,
  data: LossCurveData,
  options: LossCurveOptions = {},
): Promise<void> {
  await writeFileAtomic(path, lossCurveSvg(data, options));
}
