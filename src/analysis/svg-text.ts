// What every SVG and HTML writer of the package shares: escaping text for markup, and colours read
// off a ramp of RGB stops.

/** `text` safe inside an element or a double-quoted attribute. */
export function escapeMarkup(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** The colour at `x` in [0, 1] along `ramp` (RGB stops, evenly spaced), linearly interpolated. */
export function rampColour(ramp: readonly (readonly number[])[], x: number): string {
  const at = Math.min(1, Math.max(0, x)) * (ramp.length - 1);
  const i = Math.min(ramp.length - 2, Math.floor(at));
  const f = at - i;
  const c = ramp[i].map((v, k) => Math.round(v + (ramp[i + 1][k] - v) * f));
  return `#${c.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}
