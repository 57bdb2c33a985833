// Vector exponentials for the softmax kernels (no SIMD exp exists in wasm).
//
// exp2x4(x) = 2^x on four lanes: x = n + f with n = round(x) and f in [-0.5, 0.5]; 2^f by a degree-5
// polynomial fitted for minimum relative error on that interval (1.6e-7 in f32 arithmetic); 2^n built
// directly in the exponent bits. Inputs are clamped below at -127, where the exponent field becomes 0,
// so every x < -126.5 (and -Infinity, a masked score) gives exactly +0: never a denormal, never NaN.
// NaN stays NaN. Inputs must be <= 128 (softmax arguments are <= 0 after the max is subtracted).

import { madd } from "./madd";

const EXP2_C1: f32 = 0.6931468844413757;
const EXP2_C2: f32 = 0.24022236466407776;
const EXP2_C3: f32 = 0.05550855025649071;
const EXP2_C4: f32 = 0.009671763516962528;
const EXP2_C5: f32 = 0.0013230961048975587;
// 1.5 · 2^23 + 127: adding it rounds x to an integer held in the low mantissa bits, already biased
// by 127, so shifting the sum's bits left by 23 gives the bits of 2^round(x).
const ROUND_BIAS: f32 = 12583039.0;

export const LOG2E: f32 = 1.4426950408889634;
export const LN2: f32 = 0.6931471805599453;

export function exp2x4(x: v128): v128 {
  x = f32x4.pmax(x, f32x4.splat(-127.0));
  const shifted = f32x4.add(x, f32x4.splat(ROUND_BIAS));
  const n = f32x4.sub(shifted, f32x4.splat(ROUND_BIAS));
  const f = f32x4.sub(x, n);
  // Horner's scheme on madd: fused (one rounding per step) in the relaxed build.
  let p = madd(f32x4.splat(EXP2_C5), f, f32x4.splat(EXP2_C4));
  p = madd(p, f, f32x4.splat(EXP2_C3));
  p = madd(p, f, f32x4.splat(EXP2_C2));
  p = madd(p, f, f32x4.splat(EXP2_C1));
  p = madd(p, f, f32x4.splat(1.0));
  return f32x4.mul(p, i32x4.shl(shifted, 23));
}

// tanh on four lanes: tanh(x) = sign(x) · (1 − 2 / (2^(2·log2(e)·|x|) + 1)). The absolute error is
// about 2e-7 (relative error grows only where tanh(x) itself is below ~1e-3). Saturates to ±1.
export function tanhx4(x: v128): v128 {
  const signBit = v128.and(x, i32x4.splat(0x80000000));
  const ax = f32x4.abs(x);
  const e = exp2x4(f32x4.pmin(f32x4.mul(ax, f32x4.splat(2.0 * LOG2E)), f32x4.splat(64.0)));
  const t = f32x4.sub(
    f32x4.splat(1.0),
    f32x4.div(f32x4.splat(2.0), f32x4.add(e, f32x4.splat(1.0))),
  );
  return v128.or(t, signBit);
}

/** tanh of one float: the vector tanh's lane 0, or Mathf.tanh in the scalar build. */
export function tanhf(x: f32): f32 {
  if (!ASC_FEATURE_SIMD) return Mathf.tanh(x);
  return f32x4.extract_lane(tanhx4(f32x4.splat(x)), 0);
}
