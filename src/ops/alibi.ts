// ALiBi slopes (Press et al., "Train Short, Test Long"), following their reference code.

import { AttentionError } from "../core/errors.js";
import { describe } from "../core/tensor.js";

/** The most heads alibiSlopes takes (as many as MAX_HEAD_DIM: far beyond any real model). */
export const MAX_ALIBI_HEADS = 65536;

/**
 * The ALiBi slope of each of `numHeads` heads. For a power of two H, slope_h = 2^(−8(h+1)/H);
 * otherwise the slopes of the largest power of two c < H followed by the first H − c even-indexed
 * slopes of 2c. Pass the result as `alibiSlopes` to scaledDotProductAttention. `numHeads` must be
 * an integer in [1, 65536] (BAD_OPTION otherwise).
 */
export function alibiSlopes(numHeads: number): Float32Array {
  if (
    typeof numHeads !== "number" ||
    !Number.isInteger(numHeads) ||
    numHeads < 1 ||
    numHeads > MAX_ALIBI_HEADS
  ) {
    throw new AttentionError(
      "BAD_OPTION",
      `alibiSlopes: numHeads must be an integer in [1, ${MAX_ALIBI_HEADS}], got ${describe(numHeads)}`,
    );
  }
  return Float32Array.from(slopes(numHeads));
}

function powerOfTwoSlopes(n: number): number[] {
  const ratio = 2 ** (-8 / n);
  return Array.from({ length: n }, (_, h) => ratio ** (h + 1));
}

function slopes(n: number): number[] {
  if (Number.isInteger(Math.log2(n))) return powerOfTwoSlopes(n);
  const c = 2 ** Math.floor(Math.log2(n));
  const extra = powerOfTwoSlopes(2 * c).filter((_, i) => i % 2 === 0);
  return [...powerOfTwoSlopes(c), ...extra.slice(0, n - c)];
}
