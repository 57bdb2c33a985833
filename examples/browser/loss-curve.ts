// The training view's loss curve: an SVG polyline of the logged training losses against the step,
// on a log scale (the loss falls by orders of magnitude), axes from step 0 to the run's last step
// and over the decades the losses span. One point per log entry, drawn as they arrive.

export interface LossPoint {
  step: number;
  loss: number;
}

const WIDTH = 420;
const HEIGHT = 200;
const LEFT = 48;
const RIGHT = 12;
const TOP = 24;
const BOTTOM = 28;

export function renderLossCurve(points: readonly LossPoint[], totalSteps: number): string {
  const logs = points.map((p) => Math.log10(Math.max(p.loss, 1e-6)));
  const top = Math.ceil(Math.max(0, ...logs));
  const bottom = Math.min(top - 1, Math.floor(Math.min(...logs, top)));
  const x = (step: number): number => LEFT + (step / totalSteps) * (WIDTH - LEFT - RIGHT);
  const y = (log: number): number => TOP + ((top - log) / (top - bottom)) * (HEIGHT - TOP - BOTTOM);
  const f = (v: number): string => v.toFixed(1);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="11">`,
    `<text x="${LEFT}" y="14" font-size="13">training loss (log scale) against step</text>`,
    `<line x1="${LEFT}" y1="${HEIGHT - BOTTOM}" x2="${WIDTH - RIGHT}" y2="${HEIGHT - BOTTOM}" stroke="#888"/>`,
    `<line x1="${LEFT}" y1="${TOP}" x2="${LEFT}" y2="${HEIGHT - BOTTOM}" stroke="#888"/>`,
  ];
  for (let d = bottom; d <= top; d++) {
    parts.push(
      `<text x="${LEFT - 4}" y="${f(y(d) + 4)}" text-anchor="end">${d >= 0 ? 10 ** d : `1e${d}`}</text>`,
    );
  }
  parts.push(`<text x="${LEFT}" y="${HEIGHT - 8}">0</text>`);
  parts.push(
    `<text x="${WIDTH - RIGHT}" y="${HEIGHT - 8}" text-anchor="end">${totalSteps} steps</text>`,
  );
  const line = points.map((p, i) => `${f(x(p.step))},${f(y(logs[i]))}`).join(" ");
  parts.push(`<polyline fill="none" stroke="#b2182b" stroke-width="2" points="${line}"/>`);
  parts.push("</svg>");
  return parts.join("\n");
}
