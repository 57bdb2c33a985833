// The demo's heatmaps (the command line's SVG files and the browser page): an attention map
// coloured by how far each weight is from uniform attention over the keys its query may see,
// rather than from 0 to the largest weight. A near-uniform head is then pale, however strong a
// 0-to-max scale would make it look; a head that picks a key is red there and blue elsewhere.
// Masked keys are grey. Bounded: at most `maxTokens` rows and columns are drawn.

import { escapeMarkup, rampColour } from "../../analysis/svg-text.js";

/** The most rows and columns a map draws: an SVG of n tokens has n² cells. */
export const MAX_DRAWN_TOKENS = 32;

/** The longest label drawn; longer tokens are cut, with an ellipsis. */
const MAX_LABEL = 14;

export interface DemoHeatmap {
  /** [N, N] row-major: row i holds query i's weights over the N keys. */
  weights: Float32Array;
  /** The N tokens, labelling both rows and columns. */
  tokens: readonly string[];
  title: string;
  /** Whether query `row` may see key `col` (default: every key). */
  visible?: (row: number, col: number) => boolean;
  /** Default MAX_DRAWN_TOKENS. */
  maxTokens?: number;
}

const CELL = 18;
const FONT = 11;
// Colours span weight × visible keys from 1/8 to 8: log2 of it from −3 to 3.
const OCTAVES = 3;
const MASKED = "#d9d9d9";
// A diverging ramp (ColorBrewer RdBu): blue below uniform, white at uniform, red above.
const RAMP = [
  [33, 102, 172],
  [103, 169, 207],
  [209, 229, 240],
  [247, 247, 247],
  [253, 219, 199],
  [239, 138, 98],
  [178, 24, 43],
];

/** The colour of log2(weight × visible keys), clamped to ±OCTAVES. */
function colour(log2Ratio: number): string {
  const t = Number.isNaN(log2Ratio) ? 0 : Math.min(1, Math.max(-1, log2Ratio / OCTAVES));
  return rampColour(RAMP, (t + 1) / 2);
}

/** A token as a label: at most MAX_LABEL characters (whole code points). */
export function label(token: string): string {
  const chars = Array.from(token);
  return chars.length <= MAX_LABEL ? token : `${chars.slice(0, MAX_LABEL - 1).join("")}…`;
}

/** How many keys each query row sees. */
export function visibleKeys(
  n: number,
  visible: (row: number, col: number) => boolean = () => true,
): number[] {
  return Array.from({ length: n }, (_, row) => {
    let k = 0;
    for (let col = 0; col < n; col++) if (visible(row, col)) k++;
    return k;
  });
}

export function renderDemoHeatmap(map: DemoHeatmap): string {
  const { weights, tokens, title } = map;
  const visible = map.visible ?? (() => true);
  const N = tokens.length;
  const drawn = Math.min(N, map.maxTokens ?? MAX_DRAWN_TOKENS);
  const keys = visibleKeys(N, visible);
  const labels = tokens.slice(0, drawn).map(label);
  const labelWidth = Math.max(...labels.map((l) => Array.from(l).length), 1) * FONT * 0.62;
  const left = 8 + labelWidth;
  const top = 48 + labelWidth;
  const legendX = left + drawn * CELL + 16;
  const width = legendX + 190;
  const height = Math.max(top + drawn * CELL + 10, top + 150) + (drawn < N ? 16 : 0);
  const n = (x: number): string => x.toFixed(1);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${n(width)}" height="${n(height)}" viewBox="0 0 ${n(width)} ${n(height)}" font-family="sans-serif" font-size="${FONT}">`,
    `<text x="8" y="18" font-size="14">${escapeMarkup(title)}</text>`,
  ];
  labels.forEach((l, i) => {
    const x = left + i * CELL + CELL / 2 + 4;
    parts.push(
      `<text transform="translate(${n(x)},${n(top - 4)}) rotate(-90)">${escapeMarkup(l)}</text>`,
    );
    parts.push(
      `<text x="${n(left - 4)}" y="${n(top + i * CELL + CELL / 2 + 4)}" text-anchor="end">${escapeMarkup(l)}</text>`,
    );
  });
  for (let r = 0; r < drawn; r++) {
    for (let c = 0; c < drawn; c++) {
      const w = weights[r * N + c];
      const seen = visible(r, c);
      const ratio = w * keys[r];
      const fill = seen ? colour(Math.log2(ratio)) : MASKED;
      const hover = seen ? `${w.toFixed(3)}, ${ratio.toFixed(2)}× uniform` : "masked";
      parts.push(
        `<rect x="${n(left + c * CELL)}" y="${n(top + r * CELL)}" width="${CELL}" height="${CELL}" fill="${fill}"><title>${escapeMarkup(labels[r])} → ${escapeMarkup(labels[c])}: ${hover}</title></rect>`,
      );
    }
  }
  if (drawn < N) {
    parts.push(
      `<text x="${n(left)}" y="${n(top + drawn * CELL + 20)}">the first ${drawn} of ${N} tokens</text>`,
    );
  }
  parts.push(...legend(legendX, top));
  parts.push("</svg>");
  return parts.join("\n");
}

// A bar from 8× uniform (top) through uniform to 1/8 of it, and the masked swatch.
function legend(x: number, top: number): string[] {
  const steps = 25;
  const h = 4;
  const n = (v: number): string => v.toFixed(1);
  const parts = [`<text x="${n(x)}" y="${n(top - 14)}">weight × visible keys</text>`];
  for (let i = 0; i < steps; i++) {
    const log2Ratio = OCTAVES - (2 * OCTAVES * i) / (steps - 1);
    parts.push(
      `<rect x="${n(x)}" y="${n(top + i * h)}" width="12" height="${h}" fill="${colour(log2Ratio)}"/>`,
    );
  }
  const mark = (y: number, text: string): string =>
    `<text x="${n(x + 16)}" y="${n(y + 4)}">${text}</text>`;
  parts.push(mark(top, `≥ ${2 ** OCTAVES}: ${2 ** OCTAVES}× uniform`));
  parts.push(mark(top + (steps * h) / 2, "1: uniform (1/visible keys)"));
  parts.push(mark(top + steps * h, `≤ 1/${2 ** OCTAVES}`));
  parts.push(
    `<rect x="${n(x)}" y="${n(top + steps * h + 14)}" width="12" height="8" fill="${MASKED}"/>`,
  );
  parts.push(mark(top + steps * h + 16, "masked"));
  return parts;
}
