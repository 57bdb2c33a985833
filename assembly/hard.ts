// Hard (top-k) attention: for each query row, keep the topK largest scaled scores (ties go to the
// lower key index), softmax over those only, and average their values; every other weight is 0.
//
// Per row: the scores of all keys (4 keys at a time, vector dot products over d) into a row buffer,
// then a selection that never sorts the row: the best topK (value, index) pairs are kept in
// descending order and a key enters only if it beats the current last (insertion), O(Nk) for a
// small topK. Masked keys (-Infinity) never enter, so their values are never read.

import { MASK_BOOL, MASK_ADDITIVE } from "./shared";

const NEG_INF: f32 = -Infinity;

export function hardAttentionScratchBytes(nk: i32, topK: i32): usize {
  return (<usize>nk + 2 * <usize>topK) * 4 + 64;
}

export function hardAttention(
  q: usize,
  k: usize,
  v: usize,
  out: usize,
  weights: usize,
  batch: i32,
  heads: i32,
  kvHeads: i32,
  nq: i32,
  nk: i32,
  d: i32,
  dv: i32,
  scale: f32,
  topK: i32,
  mask: usize,
  maskKind: i32,
  maskStrideB: i32,
  maskStrideH: i32,
  maskStrideQ: i32,
  maskStrideK: i32,
  scratch: usize,
): void {
  const scores = scratch;
  const bestValue = scratch + <usize>nk * 4;
  const bestIndex = bestValue + <usize>topK * 4;
  const group = heads / kvHeads;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = h / group;
      const kHead = k + <usize>(b * kvHeads + kvh) * nk * d * 4;
      const vHead = v + <usize>(b * kvHeads + kvh) * nk * dv * 4;
      for (let i = 0; i < nq; i++) {
        const row = <usize>(b * heads + h) * nq + i;
        rowScores(q + row * d * 4, kHead, nk, d, scale, scores);
        if (maskKind != 0) {
          const m = <usize>b * maskStrideB + <usize>h * maskStrideH + <usize>i * maskStrideQ;
          applyMask(scores, nk, mask, maskKind, m, maskStrideK);
        }
        const count = selectTop(scores, nk, topK, bestValue, bestIndex);
        const outRow = out + row * dv * 4;
        const weightRow = weights ? weights + row * nk * 4 : 0;
        if (weightRow) memory.fill(weightRow, 0, <usize>nk * 4);
        memory.fill(outRow, 0, <usize>dv * 4);
        if (count == 0) continue;
        // Softmax over the kept scores (the first is the max), then the weighted sum of values.
        const top = load<f32>(bestValue);
        let sum: f64 = 0;
        for (let t = 0; t < count; t++) {
          const p = Math.exp(<f64>load<f32>(bestValue + <usize>t * 4) - <f64>top);
          store<f32>(bestValue + <usize>t * 4, <f32>p);
          sum += p;
        }
        const inv = <f32>(1 / sum);
        for (let t = 0; t < count; t++) {
          const p = load<f32>(bestValue + <usize>t * 4) * inv;
          const j = load<i32>(bestIndex + <usize>t * 4);
          if (weightRow) store<f32>(weightRow + <usize>j * 4, p);
          addScaledRow(outRow, vHead + <usize>j * dv * 4, dv, p);
        }
      }
    }
  }
}

// scores[j] = scale · q·k_j for every key.
function rowScores(qRow: usize, kHead: usize, nk: i32, d: i32, scale: f32, scores: usize): void {
  const d4 = d & ~3;
  const rowBytes = <usize>d * 4;
  for (let j = 0; j < nk; j++) {
    const kRow = kHead + <usize>j * rowBytes;
    let s: f32 = 0;
    let t = 0;
    if (ASC_FEATURE_SIMD) {
      let acc = f32x4.splat(0);
      for (; t < d4; t += 4) {
        acc = f32x4.add(
          acc,
          f32x4.mul(v128.load(qRow + <usize>t * 4), v128.load(kRow + <usize>t * 4)),
        );
      }
      s =
        f32x4.extract_lane(acc, 0) +
        f32x4.extract_lane(acc, 1) +
        (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
    }
    for (; t < d; t++) s += load<f32>(qRow + <usize>t * 4) * load<f32>(kRow + <usize>t * 4);
    store<f32>(scores + <usize>j * 4, s * scale);
  }
}

function applyMask(
  scores: usize,
  nk: i32,
  mask: usize,
  kind: i32,
  base: usize,
  strideK: i32,
): void {
  for (let j = 0; j < nk; j++) {
    const m = base + <usize>j * strideK;
    const at = scores + <usize>j * 4;
    if (kind == MASK_BOOL) {
      if (load<u8>(mask + m) == 0) store<f32>(at, NEG_INF);
    } else if (kind == MASK_ADDITIVE) {
      const bias = load<f32>(mask + m * 4);
      store<f32>(at, bias == NEG_INF ? NEG_INF : load<f32>(at) + bias);
    }
  }
}

// The best topK scores in descending order, equal scores in ascending key order; returns how many
// (fewer when fewer keys are visible).
function selectTop(scores: usize, nk: i32, topK: i32, bestValue: usize, bestIndex: usize): i32 {
  let count = 0;
  for (let j = 0; j < nk; j++) {
    const s = load<f32>(scores + <usize>j * 4);
    if (!(s > NEG_INF)) continue; // masked (or NaN)
    if (count == topK && !(s > load<f32>(bestValue + <usize>(topK - 1) * 4))) continue;
    let pos = count < topK ? count++ : topK - 1;
    // Shift smaller entries down; an equal one stays ahead (it has the lower index).
    while (pos > 0 && load<f32>(bestValue + <usize>(pos - 1) * 4) < s) {
      store<f32>(bestValue + <usize>pos * 4, load<f32>(bestValue + <usize>(pos - 1) * 4));
      store<i32>(bestIndex + <usize>pos * 4, load<i32>(bestIndex + <usize>(pos - 1) * 4));
      pos--;
    }
    store<f32>(bestValue + <usize>pos * 4, s);
    store<i32>(bestIndex + <usize>pos * 4, j);
  }
  return count;
}

// out[0..n) += p · row[0..n)
function addScaledRow(out: usize, row: usize, n: i32, p: f32): void {
  let c = 0;
  if (ASC_FEATURE_SIMD)
    for (; c + 4 <= n; c += 4) {
      const p4 = f32x4.splat(p);
      const at = <usize>c * 4;
      v128.store(out + at, f32x4.add(v128.load(out + at), f32x4.mul(p4, v128.load(row + at))));
    }
  for (; c < n; c++)
    store<f32>(
      out + <usize>c * 4,
      load<f32>(out + <usize>c * 4) + p * load<f32>(row + <usize>c * 4),
    );
}
