// Peer for the benchmark: scaled dot-product attention as a JavaScript developer would write it,
// on Float32Arrays, one query row at a time (scores, softmax, weighted sum of values). Causal rows
// stop at their last visible key, so masked work is skipped here too.

export function plainSdpa(q, k, v, { B, H, Nq, Nk, D, Dv, causal = false }) {
  const out = new Float32Array(B * H * Nq * Dv);
  const scale = 1 / Math.sqrt(D);
  const scores = new Float32Array(Nk);
  for (let bh = 0; bh < B * H; bh++) {
    const qBase = bh * Nq * D;
    const kBase = bh * Nk * D;
    const vBase = bh * Nk * Dv;
    for (let i = 0; i < Nq; i++) {
      const visible = causal ? Math.max(0, Math.min(Nk, i + Nk - Nq + 1)) : Nk;
      let max = -Infinity;
      for (let j = 0; j < visible; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[qBase + i * D + d] * k[kBase + j * D + d];
        s *= scale;
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = 0; j < visible; j++) {
        const e = Math.exp(scores[j] - max);
        scores[j] = e;
        sum += e;
      }
      const o = (bh * Nq + i) * Dv;
      for (let j = 0; j < visible; j++) {
        const p = scores[j] / sum;
        const vRow = vBase + j * Dv;
        for (let d = 0; d < Dv; d++) out[o + d] += p * v[vRow + d];
      }
    }
  }
  return out;
}

// The backward pass as a JavaScript developer would write it from the formulas, one query row at a
// time: recompute the row's probabilities P, then dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − δ) with
// δ = rowsum(dO ⊙ O), dQ = scale·dS·K, dK += scale·dSᵀ·Q. Returns { dq, dk, dv }.
export function plainSdpaBackward(q, k, v, out, dout, { B, H, Nq, Nk, D, Dv, causal = false }) {
  const dq = new Float32Array(B * H * Nq * D);
  const dk = new Float32Array(B * H * Nk * D);
  const dv = new Float32Array(B * H * Nk * Dv);
  const scale = 1 / Math.sqrt(D);
  const p = new Float32Array(Nk);
  for (let bh = 0; bh < B * H; bh++) {
    const qBase = bh * Nq * D;
    const kBase = bh * Nk * D;
    const vBase = bh * Nk * Dv;
    for (let i = 0; i < Nq; i++) {
      const visible = causal ? Math.max(0, Math.min(Nk, i + Nk - Nq + 1)) : Nk;
      let max = -Infinity;
      for (let j = 0; j < visible; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[qBase + i * D + d] * k[kBase + j * D + d];
        p[j] = s * scale;
        if (p[j] > max) max = p[j];
      }
      let sum = 0;
      for (let j = 0; j < visible; j++) {
        p[j] = Math.exp(p[j] - max);
        sum += p[j];
      }
      const o = (bh * Nq + i) * Dv;
      let delta = 0;
      for (let c = 0; c < Dv; c++) delta += dout[o + c] * out[o + c];
      for (let j = 0; j < visible; j++) {
        const pj = p[j] / sum;
        let dp = 0;
        for (let c = 0; c < Dv; c++) {
          dp += dout[o + c] * v[vBase + j * Dv + c];
          dv[vBase + j * Dv + c] += pj * dout[o + c];
        }
        const ds = pj * (dp - delta) * scale;
        for (let d = 0; d < D; d++) {
          dq[qBase + i * D + d] += ds * k[kBase + j * D + d];
          dk[kBase + j * D + d] += ds * q[qBase + i * D + d];
        }
      }
    }
  }
  return { dq, dk, dv };
}
