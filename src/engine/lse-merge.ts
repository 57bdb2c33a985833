// Merging the partial results of attention over disjoint key ranges (Flash-Decoding). Each range's
// kernel call leaves a normalised output o_s and a log-sum-exp l_s per query row; over all keys
//   l = log Σ_s exp(l_s),   o = Σ_s exp(l_s − l) · o_s,
// computed around the largest l_s so that no exp overflows. A range that saw no key of a row has
// l_s = -Infinity and contributes nothing; a row that saw no key at all gets zeros and -Infinity,
// as the kernel gives it.

/**
 * The parts in a Float32Array, as float indexes: range s of row r has its output (dv floats) at
 * out + (s·rows + r)·dv and its lse at lse + s·rows + r.
 */
export interface SplitParts {
  out: number;
  lse: number;
  splits: number;
  rows: number;
  dv: number;
}

/**
 * Where merged row r = (b·H + h)·Nq + i goes, as float indexes: its output at
 * out + b·strideB + h·strideH + i·strideRow, its lse (when `lse` is given) at lse + r.
 */
export interface MergeTarget {
  out: number;
  strideB: number;
  strideH: number;
  strideRow: number;
  H: number;
  Nq: number;
  lse?: number;
}

/** Merges the parts into the target (both in `f32`). */
export function mergeSplits(f32: Float32Array, parts: SplitParts, target: MergeTarget): void {
  const { splits, rows, dv } = parts;
  const weights = new Float64Array(splits);
  const acc = new Float64Array(dv);
  for (let r = 0; r < rows; r++) {
    const bh = Math.floor(r / target.Nq);
    const i = r - bh * target.Nq;
    const b = Math.floor(bh / target.H);
    const h = bh - b * target.H;
    const dst = target.out + b * target.strideB + h * target.strideH + i * target.strideRow;
    let max = -Infinity;
    for (let s = 0; s < splits; s++) max = Math.max(max, f32[parts.lse + s * rows + r]);
    if (max === -Infinity) {
      f32.fill(0, dst, dst + dv);
      if (target.lse !== undefined) f32[target.lse + r] = -Infinity;
      continue;
    }
    let sum = 0;
    for (let s = 0; s < splits; s++) {
      weights[s] = Math.exp(f32[parts.lse + s * rows + r] - max);
      sum += weights[s];
    }
    acc.fill(0);
    for (let s = 0; s < splits; s++) {
      // Skipped rather than multiplied by 0: a range's output is only meaningful where it saw a key.
      if (weights[s] === 0) continue;
      const w = weights[s] / sum;
      const src = parts.out + (s * rows + r) * dv;
      for (let c = 0; c < dv; c++) acc[c] += w * f32[src + c];
    }
    for (let c = 0; c < dv; c++) f32[dst + c] = acc[c];
    if (target.lse !== undefined) f32[target.lse + r] = max + Math.log(sum);
  }
}
