// Shape logic shared by the ops: rank normalisation and numpy-style broadcasting.

import { AttentionError, formatShape } from "./errors.js";
import type { Tensor } from "./tensor.js";

/** [B, H, N, D] of an attention input of rank 2 ([N,D]), 3 ([H,N,D]) or 4 ([B,H,N,D]). */
export function attentionDims(
  op: string,
  name: string,
  t: Tensor<Float32Array | Uint8Array>,
): [number, number, number, number] {
  const s = t.shape;
  if (s.length === 4) return [s[0], s[1], s[2], s[3]];
  if (s.length === 3) return [1, s[0], s[1], s[2]];
  if (s.length === 2) return [1, 1, s[0], s[1]];
  throw new AttentionError(
    "SHAPE_MISMATCH",
    `${op}: ${name} must have rank 2 [N,D], 3 [H,N,D] or 4 [B,H,N,D], got shape ${formatShape(s)}`,
  );
}

/** Row-major element strides of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

/**
 * Element strides that read a tensor of `shape` broadcast (numpy rules, right-aligned) to `target`:
 * one stride per target dim, 0 where the tensor repeats. Throws SHAPE_MISMATCH naming both shapes.
 */
export function broadcastStrides(
  op: string,
  name: string,
  shape: readonly number[],
  target: readonly number[],
  targetText: string,
): number[] {
  const fail = (): never => {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} of shape ${formatShape(shape)} does not broadcast to ${targetText} = ${formatShape(target)}`,
    );
  };
  if (shape.length > target.length) fail();
  const own = contiguousStrides(shape);
  const strides = new Array<number>(target.length).fill(0);
  for (let i = 1; i <= shape.length; i++) {
    const dim = shape[shape.length - i];
    const want = target[target.length - i];
    if (dim === want) strides[target.length - i] = dim === 1 ? 0 : own[shape.length - i];
    else if (dim !== 1) fail();
  }
  return strides;
}

export function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * The largest head (feature) dim the kernels take. Their scratch holds a tile of rows of this
 * length (about 64 · dim · 4 bytes), so a bound keeps every size the kernels compute within 32 bits;
 * real models use 64–256.
 */
export const MAX_HEAD_DIM = 65536;

/** Throws SHAPE_MISMATCH unless 1 <= dim <= MAX_HEAD_DIM (`what` names the dim, e.g. "head dim D"). */
export function checkHeadDim(
  op: string,
  name: string,
  shape: readonly number[],
  what: string,
  dim: number,
): void {
  if (dim >= 1 && dim <= MAX_HEAD_DIM) return;
  throw new AttentionError(
    "SHAPE_MISMATCH",
    `${op}: ${name} has shape ${formatShape(shape)} but its ${what} = ${dim} must be in [1, ${MAX_HEAD_DIM}]`,
  );
}
