// The gradients of scaled dot-product attention in float64, from the probabilities of the forward
// reference (test/reference.ts): dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)), then
// dQ = scale·dS·K and dK = scale·dSᵀ·Q, each term times the softcap derivative 1 − tanh²(s/c).
// Grouped-query heads add their dK and dV into the shared kv head. With dropout (mask M, the
// forward's O = (P ⊙ M)·V): dV = (P ⊙ M)ᵀ·dO and dP = (dO·Vᵀ) ⊙ M.

import { dims4, referenceSdpa, type RefSdpaOptions, type RefTensor } from "./reference";
import { dropoutFactors } from "./reference-dropout";

export interface RefGradients {
  dq: RefTensor<Float64Array>;
  dk: RefTensor<Float64Array>;
  dv: RefTensor<Float64Array>;
}

export function referenceSdpaBackward(
  q: RefTensor,
  k: RefTensor,
  v: RefTensor,
  gradOutput: RefTensor,
  options: RefSdpaOptions = {},
): RefGradients {
  const [B, H, Nq, D] = dims4(q.shape);
  const [, Hkv, Nk] = dims4(k.shape);
  const Dv = v.shape[v.shape.length - 1];
  const group = H / Hkv;
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const { dropout, ...withoutDropout } = options;
  const { weights } = referenceSdpa(q, k, v, withoutDropout);
  const { output } = referenceSdpa(q, k, v, options);
  const keep = dropoutFactors(dropout);
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      const qBase = (b * H + h) * Nq * D;
      const kBase = (b * Hkv + kvh) * Nk * D;
      const vBase = (b * Hkv + kvh) * Nk * Dv;
      for (let i = 0; i < Nq; i++) {
        const r = (b * H + h) * Nq + i;
        const dO = (c: number): number => gradOutput.data[r * Dv + c];
        let delta = 0;
        for (let c = 0; c < Dv; c++) delta += dO(c) * output.data[r * Dv + c];
        for (let j = 0; j < Nk; j++) {
          const p = weights.data[r * Nk + j];
          if (p === 0) continue;
          const m = keep(b * H + h, i, j);
          let dp = 0;
          for (let c = 0; c < Dv; c++) {
            dp += dO(c) * v.data[vBase + j * Dv + c] * m;
            dv[vBase + j * Dv + c] += p * m * dO(c);
          }
          let ds = p * (dp - delta) * scale;
          if (options.softcap !== undefined) {
            let raw = 0;
            for (let t = 0; t < D; t++)
              raw += q.data[qBase + i * D + t] * k.data[kBase + j * D + t];
            const th = Math.tanh((raw * scale) / options.softcap);
            ds *= 1 - th * th;
          }
          for (let t = 0; t < D; t++) {
            dq[qBase + i * D + t] += ds * k.data[kBase + j * D + t];
            dk[kBase + j * D + t] += ds * q.data[qBase + i * D + t];
          }
        }
      }
    }
  }
  return {
    dq: { data: dq, shape: [...q.shape] },
    dk: { data: dk, shape: [...k.shape] },
    dv: { data: dv, shape: [...v.shape] },
  };
}
