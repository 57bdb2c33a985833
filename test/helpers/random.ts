// Deterministic pseudo-random test data (mulberry32), so that every failure reproduces from its seed.

import type { Tensor } from "../../src/index";
import { mulberry32 } from "../../src/core/mulberry32";

export type Rng = () => number;

/** A generator of uniform numbers in [0, 1) from a 32-bit seed (the package's own mulberry32). */
export const rng: (seed: number) => Rng = mulberry32;

/** Uniform in [lo, hi). */
export function uniform(r: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * r();
}

/** Integer in [lo, hi]. */
export function randInt(r: Rng, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A float32 tensor of uniform values in [lo, hi). */
export function randomTensor(r: Rng, shape: readonly number[], lo = -1, hi = 1): Tensor {
  const data = new Float32Array(product(shape));
  for (let i = 0; i < data.length; i++) data[i] = uniform(r, lo, hi);
  return { data, shape: [...shape] };
}

/** A boolean (uint8) mask whose entries are 1 with probability `density`. */
export function randomBoolMask(
  r: Rng,
  shape: readonly number[],
  density: number,
): Tensor<Uint8Array> {
  const data = new Uint8Array(product(shape));
  for (let i = 0; i < data.length; i++) data[i] = r() < density ? 1 : 0;
  return { data, shape: [...shape] };
}

/** An additive mask: uniform biases in [-2, 2), -Infinity with probability 1 − density. */
export function randomAdditiveMask(r: Rng, shape: readonly number[], density: number): Tensor {
  const data = new Float32Array(product(shape));
  for (let i = 0; i < data.length; i++) data[i] = r() < density ? uniform(r, -2, 2) : -Infinity;
  return { data, shape: [...shape] };
}

/** A copy of a tensor (fresh data array). */
export function cloneTensor<T extends Float32Array | Uint8Array>(t: Tensor<T>): Tensor<T> {
  return { data: t.data.slice() as T, shape: [...t.shape] };
}
