// Scaled dot-product attention for the scalar build (runtimes without WebAssembly SIMD): the same
// parameter block and semantics as sdpa.ts, one query row at a time and one float at a time. Each
// row's scores go to a row buffer (Nk floats of scratch), then max, exp, sum, weights and the
// weighted sum of values; masked keys (score -Infinity, probability 0) are never read.

import {
  MASK_BOOL,
  MASK_ADDITIVE,
  SDPA_Q,
  SDPA_K,
  SDPA_V,
  SDPA_OUT,
  SDPA_WEIGHTS,
  SDPA_LSE,
  SDPA_MASK,
  SDPA_MASK_KIND,
  SDPA_MASK_STRIDE_B,
  SDPA_MASK_STRIDE_H,
  SDPA_MASK_STRIDE_Q,
  SDPA_MASK_STRIDE_K,
  SDPA_H,
  SDPA_HKV,
  SDPA_NQ,
  SDPA_NK,
  SDPA_D,
  SDPA_DV,
  SDPA_SCALE,
  SDPA_SOFTCAP,
  SDPA_ALIBI,
  SDPA_DIAG_OFFSET,
  SDPA_STRUCTURED,
  SDPA_WINDOW_LEFT,
  SDPA_WINDOW_RIGHT,
  SDPA_GLOBAL_KEYS,
  SDPA_GLOBAL_ROWS,
  SDPA_Q_STRIDE_B,
  SDPA_Q_STRIDE_H,
  SDPA_Q_STRIDE_ROW,
  SDPA_K_STRIDE_B,
  SDPA_K_STRIDE_H,
  SDPA_K_STRIDE_ROW,
  SDPA_V_STRIDE_B,
  SDPA_V_STRIDE_H,
  SDPA_V_STRIDE_ROW,
  SDPA_OUT_STRIDE_B,
  SDPA_OUT_STRIDE_H,
  SDPA_OUT_STRIDE_ROW,
  SDPA_KEY_MASK,
  SDPA_KEY_MASK_STRIDE_B,
  SDPA_LAYOUT,
  SDPA_LAYOUT_BLOCK,
  SDPA_LAYOUT_STRIDE_H,
  SDPA_LAYOUT_COLS,
} from "./shared";

import { beginDropout, dropoutHead, dropoutOn, rowHash, keepFactor } from "./dropout";

const NEG_INF: f32 = -Infinity;

/** Scratch of the scalar kernel: one row of scores and one output accumulator row. */
export function scalarSdpaScratchBytes(dv: i32, keys: i32): usize {
  return (<usize>keys + <usize>dv) * 4 + 64;
}

function param(params: usize, offset: i32): i32 {
  return load<i32>(params + offset);
}

// The final score of every key for query row i of (batch, head) bh into `scores` (Nk floats,
// -Infinity where masked): scale·q·k, softcap, ALiBi, the masks, the band, global tokens and the
// block layout, exactly as the SIMD kernel applies them. With `capGrad`, also the derivative of the
// softcap (1 − tanh², or 1 without softcap) per key, for the backward pass. Returns the row max.
export function rowScores(params: usize, bh: i32, i: i32, scores: usize, capGrad: usize): f32 {
  const H = param(params, SDPA_H);
  const group = H / param(params, SDPA_HKV);
  const nk = param(params, SDPA_NK);
  const d = param(params, SDPA_D);
  const scale = load<f32>(params + SDPA_SCALE);
  const softcap = load<f32>(params + SDPA_SOFTCAP);
  const alibi = <usize>param(params, SDPA_ALIBI);
  const offset = param(params, SDPA_DIAG_OFFSET);
  const structured = param(params, SDPA_STRUCTURED) != 0;
  const left = <i64>param(params, SDPA_WINDOW_LEFT);
  const right = <i64>param(params, SDPA_WINDOW_RIGHT);
  const globalKeys = <usize>param(params, SDPA_GLOBAL_KEYS);
  const globalRows = <usize>param(params, SDPA_GLOBAL_ROWS);
  const mask = <usize>param(params, SDPA_MASK);
  const maskKind = mask ? param(params, SDPA_MASK_KIND) : 0;
  const maskBytes: usize = maskKind == MASK_ADDITIVE ? 4 : 1;
  const keyMask = <usize>param(params, SDPA_KEY_MASK);
  const layout = <usize>param(params, SDPA_LAYOUT);
  const block = param(params, SDPA_LAYOUT_BLOCK);
  const cols = param(params, SDPA_LAYOUT_COLS);
  const b = bh / H;
  const h = bh - b * H;
  const kvh = h / group;
  const q =
    <usize>param(params, SDPA_Q) +
    (<usize>b * param(params, SDPA_Q_STRIDE_B) +
      <usize>h * param(params, SDPA_Q_STRIDE_H) +
      <usize>i * param(params, SDPA_Q_STRIDE_ROW)) *
      4;
  const kHead =
    <usize>param(params, SDPA_K) +
    (<usize>b * param(params, SDPA_K_STRIDE_B) + <usize>kvh * param(params, SDPA_K_STRIDE_H)) * 4;
  const maskRow =
    mask +
    (<usize>b * param(params, SDPA_MASK_STRIDE_B) +
      <usize>h * param(params, SDPA_MASK_STRIDE_H) +
      <usize>i * param(params, SDPA_MASK_STRIDE_Q)) *
      maskBytes;
  const slope: f32 = alibi ? load<f32>(alibi + <usize>h * 4) : 0;
  const diag = <i64>i + offset;
  const rowGlobal = globalRows != 0 && load<u8>(globalRows + i) != 0;
  let max = NEG_INF;
  for (let j = 0; j < nk; j++) {
    let allowed = true;
    if (structured && !rowGlobal && !(globalKeys != 0 && load<u8>(globalKeys + j) != 0)) {
      allowed = <i64>j >= diag - left && <i64>j <= diag + right;
    }
    if (allowed && keyMask) {
      allowed = load<u8>(keyMask + <usize>b * param(params, SDPA_KEY_MASK_STRIDE_B) + j) != 0;
    }
    if (allowed && layout) {
      const at =
        layout +
        <usize>h * param(params, SDPA_LAYOUT_STRIDE_H) +
        <usize>(i / block) * cols +
        j / block;
      allowed = load<u8>(at) != 0;
    }
    let s = NEG_INF;
    let grad: f32 = 1;
    if (allowed) {
      const k = kHead + <usize>j * param(params, SDPA_K_STRIDE_ROW) * 4;
      let dot: f32 = 0;
      for (let t = 0; t < d; t++) dot += load<f32>(q + <usize>t * 4) * load<f32>(k + <usize>t * 4);
      s = dot * scale;
      if (softcap != 0) {
        const th = Mathf.tanh(s / softcap);
        s = softcap * th;
        grad = 1 - th * th;
      }
      if (alibi) s -= slope * <f32>Math.abs(<f64>(diag - <i64>j));
      if (maskKind != 0) {
        const m = maskRow + <usize>j * param(params, SDPA_MASK_STRIDE_K) * maskBytes;
        if (maskKind == MASK_BOOL) {
          if (load<u8>(m) == 0) s = NEG_INF;
        } else {
          const bias = load<f32>(m);
          s = bias == NEG_INF ? NEG_INF : s + bias;
        }
      }
    }
    store<f32>(scores + <usize>j * 4, s);
    if (capGrad) store<f32>(capGrad + <usize>j * 4, grad);
    if (s > max) max = s;
  }
  return max;
}

export function scalarSdpaForward(
  params: usize,
  scratch: usize,
  headBegin: i32,
  headEnd: i32,
): void {
  const H = param(params, SDPA_H);
  const group = H / param(params, SDPA_HKV);
  const nq = param(params, SDPA_NQ);
  const nk = param(params, SDPA_NK);
  const dv = param(params, SDPA_DV);
  const weights = <usize>param(params, SDPA_WEIGHTS);
  const lse = <usize>param(params, SDPA_LSE);
  const scores = scratch;
  const acc = scratch + <usize>nk * 4;
  beginDropout(params);
  for (let bh = headBegin; bh < headEnd; bh++) {
    if (dropoutOn) dropoutHead(bh);
    const b = bh / H;
    const h = bh - b * H;
    const kvh = h / group;
    const vHead =
      <usize>param(params, SDPA_V) +
      (<usize>b * param(params, SDPA_V_STRIDE_B) + <usize>kvh * param(params, SDPA_V_STRIDE_H)) * 4;
    const oHead =
      <usize>param(params, SDPA_OUT) +
      (<usize>b * param(params, SDPA_OUT_STRIDE_B) + <usize>h * param(params, SDPA_OUT_STRIDE_H)) *
        4;
    for (let i = 0; i < nq; i++) {
      const max = rowScores(params, bh, i, scores, 0);
      const out = oHead + <usize>i * param(params, SDPA_OUT_STRIDE_ROW) * 4;
      const row = <usize>bh * nq + i;
      memory.fill(acc, 0, <usize>dv * 4);
      const hash = dropoutOn ? rowHash(i) : 0;
      let sum: f32 = 0;
      if (max != NEG_INF) {
        for (let j = 0; j < nk; j++) {
          let p = Mathf.exp(load<f32>(scores + <usize>j * 4) - max);
          sum += p;
          // Dropout: the sum counts every key, P·V and the weights see the dropped ones as 0.
          if (dropoutOn) p *= keepFactor(hash, j);
          store<f32>(scores + <usize>j * 4, p);
          if (p == 0) continue;
          const v = vHead + <usize>j * param(params, SDPA_V_STRIDE_ROW) * 4;
          for (let c = 0; c < dv; c++)
            store<f32>(
              acc + <usize>c * 4,
              load<f32>(acc + <usize>c * 4) + p * load<f32>(v + <usize>c * 4),
            );
        }
      }
      const inv: f32 = sum > 0 ? 1 / sum : 0;
      for (let c = 0; c < dv; c++)
        store<f32>(out + <usize>c * 4, load<f32>(acc + <usize>c * 4) * inv);
      if (lse) store<f32>(lse + row * 4, sum > 0 ? max + Mathf.log(sum) : NEG_INF);
      if (weights) {
        const w = weights + row * nk * 4;
        for (let j = 0; j < nk; j++)
          store<f32>(w + <usize>j * 4, sum > 0 ? load<f32>(scores + <usize>j * 4) * inv : 0);
      }
    }
  }
}

/** Scratch of the scalar backward kernel: a row of scores and a row of softcap derivatives. */
export function scalarSdpaBackwardScratchBytes(keys: i32): usize {
  return <usize>keys * 8 + 64;
}

/**
 * The backward pass of the scalar build (sdpa-backward.ts has the SIMD one and the contract):
 * gradients of L = Σ output ⊙ gradOut for the (batch, head) pairs headBegin..headEnd−1 of the call
 * at `params` (the forward call's parameter block): dq [B,H,Nq,D] (q's strides), dk and dv
 * [B,Hkv,Nk,·] (k's and v's strides; grouped heads add into their kv head), which must start zeroed. The probabilities
 * are recomputed from the forward lse, row by row: P = exp(S − lse), dV += Pᵀ·dO, dP = dO·Vᵀ,
 * dS = P ⊙ (dP − rowsum(dO ⊙ O)), dQ = scale·dS·K, dK = scale·dSᵀ·Q (times the softcap derivative).
 * A fully masked row (lse = -Infinity) contributes nothing.
 */
export function scalarSdpaBackward(
  params: usize,
  scratch: usize,
  gradOut: usize,
  lse: usize,
  dq: usize,
  dk: usize,
  dv: usize,
  headBegin: i32,
  headEnd: i32,
): void {
  const H = param(params, SDPA_H);
  const group = H / param(params, SDPA_HKV);
  const nq = param(params, SDPA_NQ);
  const nk = param(params, SDPA_NK);
  const d = param(params, SDPA_D);
  const dvDim = param(params, SDPA_DV);
  const scale = load<f32>(params + SDPA_SCALE);
  const scores = scratch;
  const capGrad = scratch + <usize>nk * 4;
  beginDropout(params);
  for (let bh = headBegin; bh < headEnd; bh++) {
    if (dropoutOn) dropoutHead(bh);
    const b = bh / H;
    const h = bh - b * H;
    const kvh = h / group;
    const qOff =
      <usize>b * param(params, SDPA_Q_STRIDE_B) + <usize>h * param(params, SDPA_Q_STRIDE_H);
    const kOff =
      <usize>b * param(params, SDPA_K_STRIDE_B) + <usize>kvh * param(params, SDPA_K_STRIDE_H);
    const vOff =
      <usize>b * param(params, SDPA_V_STRIDE_B) + <usize>kvh * param(params, SDPA_V_STRIDE_H);
    const oOff =
      <usize>b * param(params, SDPA_OUT_STRIDE_B) + <usize>h * param(params, SDPA_OUT_STRIDE_H);
    const qRow = <usize>param(params, SDPA_Q_STRIDE_ROW);
    const kRow = <usize>param(params, SDPA_K_STRIDE_ROW);
    const vRow = <usize>param(params, SDPA_V_STRIDE_ROW);
    const oRow = <usize>param(params, SDPA_OUT_STRIDE_ROW);
    const Q = <usize>param(params, SDPA_Q);
    const K = <usize>param(params, SDPA_K);
    const V = <usize>param(params, SDPA_V);
    const O = <usize>param(params, SDPA_OUT);
    for (let i = 0; i < nq; i++) {
      const rowLse = load<f32>(lse + (<usize>bh * nq + i) * 4);
      if (rowLse == NEG_INF) continue;
      rowScores(params, bh, i, scores, capGrad);
      const qi = (qOff + <usize>i * qRow) * 4;
      const oi = (oOff + <usize>i * oRow) * 4;
      let delta: f32 = 0;
      for (let c = 0; c < dvDim; c++)
        delta += load<f32>(gradOut + oi + <usize>c * 4) * load<f32>(O + oi + <usize>c * 4);
      const hash = dropoutOn ? rowHash(i) : 0;
      for (let j = 0; j < nk; j++) {
        const s = load<f32>(scores + <usize>j * 4);
        if (s == NEG_INF) continue;
        const p = Mathf.exp(s - rowLse);
        if (p == 0) continue;
        // Dropout: O = (P ⊙ M)·V, so dV takes p·m and dP is (dO·Vᵀ)·m.
        const m: f32 = dropoutOn ? keepFactor(hash, j) : 1;
        const vj = (vOff + <usize>j * vRow) * 4;
        const kj = (kOff + <usize>j * kRow) * 4;
        let dp: f32 = 0;
        if (m != 0) {
          for (let c = 0; c < dvDim; c++) {
            const g = load<f32>(gradOut + oi + <usize>c * 4);
            dp += g * load<f32>(V + vj + <usize>c * 4);
            store<f32>(dv + vj + <usize>c * 4, load<f32>(dv + vj + <usize>c * 4) + p * m * g);
          }
          dp *= m;
        }
        const ds = p * (dp - delta) * load<f32>(capGrad + <usize>j * 4) * scale;
        for (let t = 0; t < d; t++) {
          const at = <usize>t * 4;
          store<f32>(dq + qi + at, load<f32>(dq + qi + at) + ds * load<f32>(K + kj + at));
          store<f32>(dk + kj + at, load<f32>(dk + kj + at) + ds * load<f32>(Q + qi + at));
        }
      }
    }
  }
}
