// Numerically stable softmax along one axis of a row-major tensor seen as [outer, len, inner]:
// y = exp(x − max) / Σ exp(x − max). Only -Infinity counts as masked: an all -Infinity line gives
// zeros (never NaN); -1e30 is an ordinary value. Uses the vector exp of exp.ts.
//
// inner == 1 (the last axis): lines are contiguous; max, exp and scale run 4 elements at a time.
// inner > 1: 4 neighbouring lines (consecutive inner indices) are processed together, one per lane.

import { exp2x4, LOG2E, LN2 } from "./exp";

const NEG_INF: f32 = -Infinity;

function exp2(x: f32): f32 {
  if (!ASC_FEATURE_SIMD) return x == -Infinity ? 0 : Mathf.exp(x * LN2);
  return f32x4.extract_lane(exp2x4(f32x4.splat(x)), 0);
}

export function softmaxForward(src: usize, dst: usize, outer: i32, len: i32, inner: i32): void {
  if (!ASC_FEATURE_SIMD) {
    // Scalar build: every line strided, one float at a time.
    const planeBytes = <usize>len * inner * 4;
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < inner; c++) {
        const at = <usize>o * planeBytes + <usize>c * 4;
        softmaxStrided(src + at, dst + at, len, inner);
      }
    }
    return;
  }
  if (inner == 1) {
    for (let o = 0; o < outer; o++) {
      const at = <usize>o * len * 4;
      softmaxLine(src + at, dst + at, len);
    }
    return;
  }
  const planeBytes = <usize>len * inner * 4;
  const wide = inner & ~3;
  for (let o = 0; o < outer; o++) {
    const from = src + <usize>o * planeBytes;
    const to = dst + <usize>o * planeBytes;
    for (let c = 0; c < wide; c += 4)
      softmaxLines4(from + <usize>c * 4, to + <usize>c * 4, len, inner);
    for (let c = wide; c < inner; c++)
      softmaxStrided(from + <usize>c * 4, to + <usize>c * 4, len, inner);
  }
}

function softmaxLine(src: usize, dst: usize, len: i32): void {
  let max4 = f32x4.splat(NEG_INF);
  let j = 0;
  for (; j + 4 <= len; j += 4) max4 = f32x4.pmax(max4, v128.load(src + <usize>j * 4));
  let lineMax = max(
    max(f32x4.extract_lane(max4, 0), f32x4.extract_lane(max4, 1)),
    max(f32x4.extract_lane(max4, 2), f32x4.extract_lane(max4, 3)),
  );
  for (; j < len; j++) lineMax = max(lineMax, load<f32>(src + <usize>j * 4));
  const reference: f32 = lineMax == NEG_INF ? 0 : lineMax;
  const ref4 = f32x4.splat(reference);
  const log2e = f32x4.splat(LOG2E);
  let sum4 = f32x4.splat(0);
  j = 0;
  for (; j + 4 <= len; j += 4) {
    const at = <usize>j * 4;
    const p = exp2x4(f32x4.mul(f32x4.sub(v128.load(src + at), ref4), log2e));
    v128.store(dst + at, p);
    sum4 = f32x4.add(sum4, p);
  }
  let sum =
    f32x4.extract_lane(sum4, 0) +
    f32x4.extract_lane(sum4, 1) +
    (f32x4.extract_lane(sum4, 2) + f32x4.extract_lane(sum4, 3));
  for (; j < len; j++) {
    const at = <usize>j * 4;
    const p = exp2((load<f32>(src + at) - reference) * LOG2E);
    store<f32>(dst + at, p);
    sum += p;
  }
  const inv: f32 = sum > 0 ? 1 / sum : 0;
  const inv4 = f32x4.splat(inv);
  j = 0;
  for (; j + 4 <= len; j += 4) {
    const at = dst + <usize>j * 4;
    v128.store(at, f32x4.mul(v128.load(at), inv4));
  }
  for (; j < len; j++) {
    const at = dst + <usize>j * 4;
    store<f32>(at, load<f32>(at) * inv);
  }
}

function softmaxLines4(src: usize, dst: usize, len: i32, stride: i32): void {
  const step = <usize>stride * 4;
  let max4 = f32x4.splat(NEG_INF);
  for (let j = 0; j < len; j++) max4 = f32x4.pmax(max4, v128.load(src + <usize>j * step));
  const ref4 = v128.andnot(max4, f32x4.eq(max4, f32x4.splat(NEG_INF)));
  const log2e = f32x4.splat(LOG2E);
  let sum4 = f32x4.splat(0);
  for (let j = 0; j < len; j++) {
    const p = exp2x4(f32x4.mul(f32x4.sub(v128.load(src + <usize>j * step), ref4), log2e));
    v128.store(dst + <usize>j * step, p);
    sum4 = f32x4.add(sum4, p);
  }
  const positive = f32x4.gt(sum4, f32x4.splat(0));
  const inv4 = v128.and(f32x4.div(f32x4.splat(1), sum4), positive);
  for (let j = 0; j < len; j++) {
    const at = dst + <usize>j * step;
    v128.store(at, f32x4.mul(v128.load(at), inv4));
  }
}

function softmaxStrided(src: usize, dst: usize, len: i32, stride: i32): void {
  const step = <usize>stride * 4;
  let lineMax = NEG_INF;
  for (let j = 0; j < len; j++) lineMax = max(lineMax, load<f32>(src + <usize>j * step));
  const reference: f32 = lineMax == NEG_INF ? 0 : lineMax;
  let sum: f32 = 0;
  for (let j = 0; j < len; j++) {
    const p = exp2((load<f32>(src + <usize>j * step) - reference) * LOG2E);
    store<f32>(dst + <usize>j * step, p);
    sum += p;
  }
  const inv: f32 = sum > 0 ? 1 / sum : 0;
  for (let j = 0; j < len; j++) {
    const at = dst + <usize>j * step;
    store<f32>(at, load<f32>(at) * inv);
  }
}
