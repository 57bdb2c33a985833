// renderHeatmapSvg: a self-contained SVG picture of an attention matrix. Deterministic: the same
// input gives the same bytes (fixed number formatting, no randomness, no dates).

import { AttentionError, formatShape } from "./errors.js";
import { optionKeys } from "./option-keys.js";
import { asTensor, checkOptionsObject, checkTensor, describe, type TensorInput } from "./tensor.js";
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

/**
 * An SVG heatmap of weights [Nq, Nk] (rank 2, or rank 3+ with all leading dims 1): one cell per
 * (query, key) with a hover `<title>`, row and column labels, a title, and a colour legend scaled
 * from 0 to the largest weight.
 */
export function renderHeatmapSvg(weights: TensorInput, options: HeatmapOptions = {}): string {
  const op = "renderHeatmapSvg";
  weights = asTensor(op, "weights", weights);
  checkTensor(op, "weights", weights, ["float32"]);
  const s = weights.shape;
  if (s.length < 2 || s.slice(0, -2).some((d) => d !== 1)) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: weights has shape ${formatShape(s)} but must be [Nq, Nk]`,
    );
  }
  checkOptionsObject(op, options, HEATMAP_KEYS);
  const [rows, cols] = s.slice(-2);
  const labels = (given: readonly string[] | undefined, n: number, name: string): string[] => {
    if (given === undefined) return Array.from({ length: n }, (_, i) => String(i));
    if (!Array.isArray(given) || given.length !== n) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: ${name} must hold ${n} labels, got ${describe(given)}`,
      );
    }
    return given.map(String);
  };
  const rowLabels = labels(options.rowLabels, rows, "rowLabels");
  const colLabels = labels(options.colLabels, cols, "colLabels");
  const max = weights.data.reduce((m, x) => (x > m ? x : m), 0) || 1;
  const left = 8 + Math.max(...rowLabels.map((l) => l.length), 1) * FONT * 0.62;
  const top =
    (options.title ? 28 : 8) + Math.max(...colLabels.map((l) => l.length), 1) * FONT * 0.62;
  const width = left + cols * CELL + 70;
  const height = Math.max(top + rows * CELL + 10, top + 130);
  const n = (x: number): string => x.toFixed(1);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${n(width)}" height="${n(height)}" viewBox="0 0 ${n(width)} ${n(height)}" font-family="sans-serif" font-size="${FONT}">`,
  ];
  if (options.title)
    parts.push(
      `<text x="${n(width / 2)}" y="18" text-anchor="middle" font-size="14">${escapeMarkup(options.title)}</text>`,
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
      const w = weights.data[r * cols + c];
      parts.push(
        `<rect x="${n(left + c * CELL)}" y="${n(top + r * CELL)}" width="${CELL}" height="${CELL}" fill="${colour(w / max)}">` +
          `<title>${escapeMarkup(rowLabels[r])} → ${escapeMarkup(colLabels[c])}: ${w.toFixed(4)}</title></rect>`,
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
