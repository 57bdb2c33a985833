// renderHeatmapSvg: a self-contained SVG picture of an attention matrix. Deterministic: the same
// input gives the same bytes (fixed number formatting, no randomness, no dates).

import { AttentionError, formatShape } from "../core/errors.js";
import { optionKeys } from "../core/option-keys.js";
import { readOptions } from "../core/option-values.js";
import { describe, readTensor, type TensorInput } from "../core/tensor.js";
import { escapeMarkup, rampColour } from "./svg-text.js";

export interface HeatmapOptions {
  /** One label per query row (default: the row index). */
  rowLabels?: readonly string[];
  /** One label per key column (default: the column index). */
  colLabels?: readonly string[];
  title?: string;
}

const HEATMAP_KEYS = optionKeys<HeatmapOptions>({ rowLabels: true, colLabels: true, title: true });

const CELL = 18;
const FONT = 11;

// A perceptually ordered ramp (light yellow → dark purple) sampled at t in [0, 1].
const RAMP = [
  [255, 255, 217],
  [199, 233, 180],
  [65, 182, 196],
  [34, 94, 168],
  [37, 52, 148],
  [8, 29, 88],
];

function colour(t: number): string {
  return rampColour(RAMP, Number.isFinite(t) ? t : 0);
}

/** The largest matrix renderHeatmapSvg draws: at most this many rows, and as many columns. */
export const MAX_HEATMAP_SIDE = 1024;
/** ... and at most this many cells (a 512 × 512 matrix; each cell is about 150 bytes of SVG). */
export const MAX_HEATMAP_CELLS = 512 * 512;

/**
 * An SVG heatmap of weights [Nq, Nk] (rank 2, or rank 3+ with all leading dims 1): one cell per
 * (query, key) with a hover `<title>`, row and column labels, a title, and a colour legend scaled
 * from 0 to the largest weight. Draws at most MAX_HEATMAP_SIDE rows and columns and
 * MAX_HEATMAP_CELLS cells (SHAPE_MISMATCH beyond: slice the matrix first). Pure JavaScript: works
 * before init().
 */
export function renderHeatmapSvg(weights: TensorInput, options?: HeatmapOptions): string {
  const op = "renderHeatmapSvg";
  const w = readTensor<Float32Array>(op, "weights", weights, ["float32"]);
  const s = w.shape;
  if (s.length < 2 || s.slice(0, -2).some((d) => d !== 1)) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: weights has shape ${formatShape(s)} but must be [Nq, Nk]`,
    );
  }
  const [rows, cols] = s.slice(-2);
  if (rows > MAX_HEATMAP_SIDE || cols > MAX_HEATMAP_SIDE || rows * cols > MAX_HEATMAP_CELLS) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: weights has shape ${formatShape(s)}, too large to draw: at most ${MAX_HEATMAP_SIDE} rows, ` +
        `${MAX_HEATMAP_SIDE} columns and ${MAX_HEATMAP_CELLS} cells (draw a slice of it)`,
    );
  }
  const o = readOptions<HeatmapOptions>(op, options, HEATMAP_KEYS);
  const title = o.title;
  if (title !== undefined && typeof title !== "string") {
    throw new AttentionError("BAD_OPTION", `${op}: title must be a string, got ${describe(title)}`);
  }
  // Labels: an array of exactly n strings, read once.
  const labels = (given: unknown, n: number, name: string): string[] => {
    if (given === undefined) return Array.from({ length: n }, (_, i) => String(i));
    if (!Array.isArray(given)) {
      throw new AttentionError(
        "BAD_OPTION",
        `${op}: ${name} must be an array of ${n} strings, got ${describe(given)}`,
      );
    }
    const length: unknown = given.length;
    if (length !== n) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: ${name} must hold ${n} labels, got ${describe(given)}`,
      );
    }
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const label: unknown = Object.hasOwn(given, i) ? given[i] : undefined;
      if (typeof label !== "string") {
        throw new AttentionError(
          "BAD_OPTION",
          `${op}: ${name}[${i}] must be a string, got ${describe(label)}`,
        );
      }
      out.push(label);
    }
    return out;
  };
  const rowLabels = labels(o.rowLabels, rows, "rowLabels");
  const colLabels = labels(o.colLabels, cols, "colLabels");
  const data = w.data;
  let max = 0;
  for (let i = 0; i < data.length; i++) if (data[i] > max) max = data[i];
  if (max === 0) max = 1;
  const longest = (ls: readonly string[]): number => ls.reduce((m, l) => Math.max(m, l.length), 1);
  const left = 8 + longest(rowLabels) * FONT * 0.62;
  const top = (title ? 28 : 8) + longest(colLabels) * FONT * 0.62;
  const width = left + cols * CELL + 70;
  const height = Math.max(top + rows * CELL + 10, top + 130);
  const n = (x: number): string => x.toFixed(1);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${n(width)}" height="${n(height)}" viewBox="0 0 ${n(width)} ${n(height)}" font-family="sans-serif" font-size="${FONT}">`,
  ];
  if (title)
    parts.push(
      `<text x="${n(width / 2)}" y="18" text-anchor="middle" font-size="14">${escapeMarkup(title)}</text>`,
    );
  colLabels.forEach((label, c) => {
    const x = left + c * CELL + CELL / 2;
    parts.push(
      `<text transform="translate(${n(x + 4)},${n(top - 4)}) rotate(-90)">${escapeMarkup(label)}</text>`,
    );
  });
  rowLabels.forEach((label, r) => {
    parts.push(
      `<text x="${n(left - 4)}" y="${n(top + r * CELL + CELL / 2 + 4)}" text-anchor="end">${escapeMarkup(label)}</text>`,
    );
  });
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const x = data[r * cols + c];
      parts.push(
        `<rect x="${n(left + c * CELL)}" y="${n(top + r * CELL)}" width="${CELL}" height="${CELL}" fill="${colour(x / max)}">` +
          `<title>${escapeMarkup(rowLabels[r])} → ${escapeMarkup(colLabels[c])}: ${x.toFixed(4)}</title></rect>`,
      );
    }
  }
  // Legend: a vertical bar from the largest weight (top) to 0.
  const lx = left + cols * CELL + 16;
  for (let i = 0; i < 20; i++) {
    parts.push(
      `<rect x="${n(lx)}" y="${n(top + i * 5)}" width="12" height="5" fill="${colour(1 - i / 19)}"/>`,
    );
  }
  parts.push(`<text x="${n(lx + 16)}" y="${n(top + 8)}">${max.toFixed(3)}</text>`);
  parts.push(`<text x="${n(lx + 16)}" y="${n(top + 100)}">0</text>`);
  parts.push("</svg>");
  return parts.join("\n");
}
