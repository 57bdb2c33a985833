// The demo's outputs as text: the table it prints and the HTML page (index.html) that shows every
// heatmap. The page links the SVG files rather than inlining them, so each map is written once.

import type { MechanismReport } from "./mechanisms.js";
import { escapeMarkup } from "../../analysis/svg-text.js";

export interface Figure {
  /** The SVG file, next to index.html. */
  file: string;
  title: string;
}

export interface Section {
  heading: string;
  /** What the maps show, a paragraph a line. */
  text: string[];
  figures: Figure[];
  /** Maps a row (default: as many as fit). */
  columns?: number;
}

export function mechanismTable(reports: MechanismReport[]): string[] {
  const header = ["mechanism", "ms", "entropy ÷ uniform", "most attended (query→key)"];
  const rows = reports.map((r) => [
    r.name,
    r.ms.toFixed(3),
    r.relativeEntropy.toFixed(3),
    r.focus.join("  "),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)];
}

export function reportHtml(intro: string[], table: string[], sections: Section[]): string {
  const body = sections.map(
    (s) =>
      `<h2>${escapeMarkup(s.heading)}</h2>\n${s.text.map((line) => `<p>${escapeMarkup(line)}</p>`).join("\n")}\n` +
      `<div class="maps"${s.columns ? ` style="display:grid;grid-template-columns:repeat(${s.columns},max-content)"` : ""}>\n` +
      s.figures
        .map(
          (f) =>
            `<a href="${escapeMarkup(f.file)}"><img src="${escapeMarkup(f.file)}" alt="${escapeMarkup(f.title)}"></a>`,
        )
        .join("\n") +
      "\n</div>",
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wasm-attention demo</title>
<style>body{font-family:sans-serif;margin:2em}.maps{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}pre{overflow-x:auto}</style>
</head><body><h1>wasm-attention demo</h1>
${intro.map((line) => `<p>${escapeMarkup(line)}</p>`).join("\n")}
<p>Colours: each weight times the number of keys its query may see, so white is uniform attention (1/visible keys), red up to 8× more, blue down to 1/8 or less, grey masked. Open a map for the weight of each cell.</p>
<pre>${table.map(escapeMarkup).join("\n")}</pre>
${body.join("\n")}
</body></html>
`;
}
