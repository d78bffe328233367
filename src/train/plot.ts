/**
 * Loss curves as a self-contained SVG (hand-written, no dependencies): training and validation
 * loss against the optimizer step, with axes, ticks, labels and a legend.
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

const TRAIN_COLOR = "#1f77b4", VAL_COLOR = "#ff7f0e";

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
  const clean = (c: CurvePoints | undefined) =>
    (c ?? []).filter(([s, l]) => Number.isFinite(s) && Number.isFinite(l));
  const train = clean(data?.train), val = clean(data?.val);
  const all = [...train, ...val];
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

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  ];
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
    `<text x="${m.left + pw / 2}" y="${height - 10}" text-anchor="middle">step</text>`,
    `<text transform="translate(16 ${
      m.top + ph / 2
    }) rotate(-90)" text-anchor="middle">loss</text>`,
  );
  if (all.length === 0) {
    out.push(
      `<text x="${m.left + pw / 2}" y="${
        m.top + ph / 2
      }" text-anchor="middle" fill="#888">no data yet</text>`,
    );
  }
  if (train.length) {
    out.push(
      `<polyline points="${path(train)}" fill="none" stroke="${TRAIN_COLOR}" stroke-width="1.5"/>`,
    );
  }
  if (val.length) {
    out.push(
      `<polyline points="${path(val)}" fill="none" stroke="${VAL_COLOR}" stroke-width="2"/>`,
      ...val.map(([x, y]) =>
        `<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3" fill="${VAL_COLOR}"/>`
      ),
    );
  }
  // Legend, top right.
  const lx = m.left + pw - 120, ly = m.top + 8;
  out.push(
    `<rect x="${lx - 8}" y="${ly - 4}" width="124" height="${val.length ? 44 : 24}" ` +
      `fill="white" fill-opacity="0.85" stroke="#ccc"/>`,
    `<line x1="${lx}" y1="${ly + 8}" x2="${lx + 24}" y2="${
      ly + 8
    }" stroke="${TRAIN_COLOR}" stroke-width="2"/>`,
    `<text x="${lx + 30}" y="${ly + 8}" dominant-baseline="middle">train loss</text>`,
  );
  if (val.length) {
    out.push(
      `<line x1="${lx}" y1="${ly + 28}" x2="${lx + 24}" y2="${
        ly + 28
      }" stroke="${VAL_COLOR}" stroke-width="2"/>`,
      `<circle cx="${lx + 12}" cy="${ly + 28}" r="3" fill="${VAL_COLOR}"/>`,
      `<text x="${lx + 30}" y="${ly + 28}" dominant-baseline="middle">val loss</text>`,
    );
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
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
