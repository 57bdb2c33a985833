// A seeded generator (mulberry32), so that a training run reproduces from its seed.

import { mulberry32 } from "../core/mulberry32.js";

export type Random = () => number;

/** Uniform numbers in [0, 1) from a 32-bit seed. */
export const seeded: (seed: number) => Random = mulberry32;

/** Uniform in [-bound, bound) (float32 array of n). */
export function uniformArray(random: Random, n: number, bound: number): Float32Array {
  return Float32Array.from({ length: n }, () => (random() * 2 - 1) * bound);
}
