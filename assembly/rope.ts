// Rotary position embedding, in place, on rows of head vectors addressed by strides.
//
// The caller supplies a table with, per row, C [D] and S [D] (float32, computed in float64) such that
// out[i] = x[i]·C[i] + x[partner(i)]·S[i]:
//   "neox" (rotate-half): pairs (t, t + D/2), partner(i) = i ± D/2;
//   "gptj" (interleaved): pairs (2t, 2t + 1), partner(i) = i ^ 1.
// Both halves of a pair are read before either is written, so the rotation is exact in place.

export const ROPE_NEOX = 0;
export const ROPE_GPTJ = 1;

export function ropeApply(
  x: usize,
  batch: i32,
  heads: i32,
  rows: i32,
  strideB: i32,
  strideH: i32,
  strideRow: i32,
  d: i32,
  table: usize,
  style: i32,
): void {
  const half = d >> 1;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let r = 0; r < rows; r++) {
        const v = x + (<usize>b * strideB + <usize>h * strideH + <usize>r * strideRow) * 4;
        const c = table + <usize>r * d * 8;
        const s = c + <usize>d * 4;
        if (style == ROPE_NEOX) rotateHalf(v, c, s, half);
        else rotateInterleaved(v, c, s, d);
      }
    }
  }
}

function rotateHalf(v: usize, c: usize, s: usize, half: i32): void {
  const off = <usize>half * 4;
  let i = 0;
  if (ASC_FEATURE_SIMD)
    for (; i + 4 <= half; i += 4) {
      const at = <usize>i * 4;
      const x1 = v128.load(v + at);
      const x2 = v128.load(v + off + at);
      v128.store(
        v + at,
        f32x4.add(f32x4.mul(x1, v128.load(c + at)), f32x4.mul(x2, v128.load(s + at))),
      );
      v128.store(
        v + off + at,
        f32x4.add(f32x4.mul(x2, v128.load(c + off + at)), f32x4.mul(x1, v128.load(s + off + at))),
      );
    }
  for (; i < half; i++) {
    const at = <usize>i * 4;
    const x1 = load<f32>(v + at);
    const x2 = load<f32>(v + off + at);
    store<f32>(v + at, x1 * load<f32>(c + at) + x2 * load<f32>(s + at));
    store<f32>(v + off + at, x2 * load<f32>(c + off + at) + x1 * load<f32>(s + off + at));
  }
}

function rotateInterleaved(v: usize, c: usize, s: usize, d: i32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD)
    for (; i + 4 <= d; i += 4) {
      const at = <usize>i * 4;
      const x = v128.load(v + at);
      const swapped = f32x4.shuffle(x, x, 1, 0, 3, 2);
      v128.store(
        v + at,
        f32x4.add(f32x4.mul(x, v128.load(c + at)), f32x4.mul(swapped, v128.load(s + at))),
      );
    }
  for (; i < d; i += 2) {
    const at = <usize>i * 4;
    const x0 = load<f32>(v + at);
    const x1 = load<f32>(v + at + 4);
    store<f32>(v + at, x0 * load<f32>(c + at) + x1 * load<f32>(s + at));
    store<f32>(v + at + 4, x1 * load<f32>(c + at + 4) + x0 * load<f32>(s + at + 4));
  }
}
