// Kernels of the attention family beyond scaled dot products (src/family/*).
//
// normalizeRows: dst row = src row / max(‖src row‖₂, minNorm), for cosine attention (a zero row
// stays zero, so its cosine with anything is 0).
//
// additiveScores: Bahdanau scores s[b,i,j] = Σ_a va[a] · tanh(qp[b,i,a] + kp[b,j,a]) with the
// projections qp [B,Nq,A] and kp [B,Nk,A] (the bias already folded into kp), four a at a time with
// the vector tanh of exp.ts. With `accumulate` the scores are added to out instead of stored (the
// hybrid op sums several terms). An optional mask (kind and element strides as in sdpa.ts, over
// [B,Nq,Nk]) is applied last: boolean 0 → -Infinity, additive → added.

import { MASK_BOOL, MASK_ADDITIVE } from "./shared";
import { tanhf, tanhx4 } from "./exp";

const NEG_INF: f32 = -Infinity;

export function normalizeRows(src: usize, dst: usize, rows: i32, d: i32, minNorm: f32): void {
  const d4 = d & ~3;
  for (let r = 0; r < rows; r++) {
    const from = src + <usize>r * d * 4;
    const to = dst + <usize>r * d * 4;
    let sum: f32 = 0;
    let i = 0;
    if (ASC_FEATURE_SIMD) {
      let sum4 = f32x4.splat(0);
      for (; i < d4; i += 4) {
        const x = v128.load(from + <usize>i * 4);
        sum4 = f32x4.add(sum4, f32x4.mul(x, x));
      }
      sum =
        f32x4.extract_lane(sum4, 0) +
        f32x4.extract_lane(sum4, 1) +
        (f32x4.extract_lane(sum4, 2) + f32x4.extract_lane(sum4, 3));
    }
    for (; i < d; i++) {
      const x = load<f32>(from + <usize>i * 4);
      sum += x * x;
    }
    const inv: f32 = 1 / max(<f32>Math.sqrt(sum), minNorm);
    i = 0;
    if (ASC_FEATURE_SIMD) {
      const inv4 = f32x4.splat(inv);
      for (; i < d4; i += 4) {
        v128.store(to + <usize>i * 4, f32x4.mul(v128.load(from + <usize>i * 4), inv4));
      }
    }
    for (; i < d; i++) store<f32>(to + <usize>i * 4, load<f32>(from + <usize>i * 4) * inv);
  }
}

/** x = tanh(x) on n floats, in place (attention pooling's hidden layer). */
export function tanhInPlace(ptr: usize, n: i32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 4 <= n; i += 4) {
      const at = ptr + <usize>i * 4;
      v128.store(at, tanhx4(v128.load(at)));
    }
  }
  for (; i < n; i++) {
    const at = ptr + <usize>i * 4;
    store<f32>(at, tanhf(load<f32>(at)));
  }
}

export function additiveScores(
  qp: usize,
  kp: usize,
  va: usize,
  batch: i32,
  nq: i32,
  nk: i32,
  a: i32,
  out: usize,
  accumulate: bool,
  mask: usize,
  maskKind: i32,
  maskStrideB: i32,
  maskStrideQ: i32,
  maskStrideK: i32,
): void {
  const a4 = a & ~3;
  const rowBytes = <usize>a * 4;
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < nq; i++) {
      const q = qp + (<usize>b * nq + i) * rowBytes;
      const outRow = out + (<usize>b * nq + i) * nk * 4;
      for (let j = 0; j < nk; j++) {
        const k = kp + (<usize>b * nk + j) * rowBytes;
        let score: f32 = 0;
        let t = 0;
        if (ASC_FEATURE_SIMD) {
          let sum4 = f32x4.splat(0);
          for (; t < a4; t += 4) {
            const at = <usize>t * 4;
            const h = tanhx4(f32x4.add(v128.load(q + at), v128.load(k + at)));
            sum4 = f32x4.add(sum4, f32x4.mul(h, v128.load(va + at)));
          }
          score =
            f32x4.extract_lane(sum4, 0) +
            f32x4.extract_lane(sum4, 1) +
            (f32x4.extract_lane(sum4, 2) + f32x4.extract_lane(sum4, 3));
        }
        for (; t < a; t++) {
          const at = <usize>t * 4;
          score += tanhf(load<f32>(q + at) + load<f32>(k + at)) * load<f32>(va + at);
        }
        const at = outRow + <usize>j * 4;
        if (accumulate) score += load<f32>(at);
        if (maskKind != 0) {
          const m = <usize>b * maskStrideB + <usize>i * maskStrideQ + <usize>j * maskStrideK;
          if (maskKind == MASK_BOOL) {
            if (load<u8>(mask + m) == 0) score = NEG_INF;
          } else if (maskKind == MASK_ADDITIVE) {
            // Select rather than add for -Infinity, so a NaN score of a masked key stays masked.
            const bias = load<f32>(mask + m * 4);
            score = bias == NEG_INF ? NEG_INF : score + bias;
          }
        }
        store<f32>(at, score);
      }
    }
  }
}
