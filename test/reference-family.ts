// Plain float64 references for the attention family of shared/API.md ("The attention family") and
// shared/conformance/FORMAT.md 4.5–4.7, written with no attention to speed: additive (Bahdanau),
// bilinear (Luong "general"), cosine and hybrid attention. Every op is a score function of q [B,Nq,Dq]
// and k [B,Nk,Dk] (rank 2 meaning B = 1); a 3-D mask broadcasting to [B,Nq,Nk] (uint8: 1 = attend,
// 0 → −Infinity; float32: added, −Infinity = masked) is applied, then one softmax over the keys and
// the weighted sum of v [B,Nk,Dv]. A fully masked row gives zero weights and a zero output row.

import { broadcastStrides, type RefTensor } from "./reference";
import { referenceLinear } from "./reference-mha";

/** A parameter: its row-major data, bare or as a tensor. */
export type RefParam = ArrayLike<number> | RefTensor;

export interface RefFamilyOptions {
  mask?: RefTensor<Uint8Array> | RefTensor<Float32Array>;
}

export interface RefFamilyResult {
  /** [B, Nq, Dv] ([Nq, Dv] for a rank-2 q). */
  output: RefTensor<Float64Array>;
  /** Softmax probabilities [B, Nq, Nk] ([Nq, Nk] for a rank-2 q). */
  weights: RefTensor<Float64Array>;
  /** Final scores after the mask (−Infinity where masked), same shape as weights. */
  scores: RefTensor<Float64Array>;
}

export interface RefAdditiveParams {
  /** [A, Dq] */
  wq: RefParam;
  /** [A, Dk] */
  wk: RefParam;
  /** [A] */
  va: RefParam;
  /** [A], added to Wq q + Wk k inside the tanh. */
  bias?: RefParam;
}

export type RefTerm =
  | { kind: "scaled-dot"; weight: number }
  | ({ kind: "additive"; weight: number } & RefAdditiveParams)
  | { kind: "bilinear"; weight: number; w: RefParam }
  | { kind: "cosine"; weight: number; temperature?: number };

/** The norm clamp of cosine attention (torch's cosine_similarity eps). */
export const COSINE_EPS = 1e-8;

function dataOf(p: RefParam): ArrayLike<number> {
  return "shape" in p && "data" in p ? p.data : (p as ArrayLike<number>);
}

interface Dims {
  B: number;
  Nq: number;
  Nk: number;
  Dq: number;
  Dk: number;
  Dv: number;
  lead: number[];
}

function dims(q: RefTensor, k: RefTensor, v: RefTensor): Dims {
  const d3 = (t: RefTensor, name: string): [number, number, number] => {
    const s = t.shape;
    if (s.length === 3) return [s[0], s[1], s[2]];
    if (s.length === 2) return [1, s[0], s[1]];
    throw new Error(`referenceFamily: ${name} [${s.join(",")}] is not [B,N,D] or [N,D]`);
  };
  const [B, Nq, Dq] = d3(q, "q");
  const [Bk, Nk, Dk] = d3(k, "k");
  const [Bv, Nv, Dv] = d3(v, "v");
  if (Bk !== B || Bv !== B || Nv !== Nk) throw new Error("referenceFamily: inconsistent q, k, v");
  return { B, Nq, Nk, Dq, Dk, Dv, lead: q.shape.slice(0, -2) };
}

/** Raw (unmasked) scores [B·Nq·Nk] of one term, times its weight. */
function termScores(t: RefTerm, q: RefTensor, k: RefTensor, d: Dims): Float64Array {
  const { B, Nq, Nk, Dq, Dk } = d;
  const s = new Float64Array(B * Nq * Nk);
  const at = (b: number, i: number, j: number): number => (b * Nq + i) * Nk + j;
  const sameDims = (): void => {
    if (Dq !== Dk) throw new Error(`referenceFamily: a ${t.kind} term needs Dq = Dk`);
  };
  switch (t.kind) {
    case "scaled-dot": {
      sameDims();
      const scale = 1 / Math.sqrt(Dq);
      for (let b = 0; b < B; b++)
        for (let i = 0; i < Nq; i++)
          for (let j = 0; j < Nk; j++) {
            let x = 0;
            for (let c = 0; c < Dq; c++)
              x += q.data[(b * Nq + i) * Dq + c] * k.data[(b * Nk + j) * Dk + c];
            s[at(b, i, j)] = t.weight * scale * x;
          }
      return s;
    }
    case "bilinear": {
      const w = dataOf(t.w);
      if (w.length !== Dq * Dk) throw new Error("referenceFamily: w is not [Dq,Dk]");
      for (let b = 0; b < B; b++)
        for (let i = 0; i < Nq; i++) {
          // (qᵀ W) [Dk] once per query row.
          const qw = new Float64Array(Dk);
          for (let r = 0; r < Dq; r++) {
            const qr = q.data[(b * Nq + i) * Dq + r];
            for (let c = 0; c < Dk; c++) qw[c] += qr * w[r * Dk + c];
          }
          for (let j = 0; j < Nk; j++) {
            let x = 0;
            for (let c = 0; c < Dk; c++) x += qw[c] * k.data[(b * Nk + j) * Dk + c];
            s[at(b, i, j)] = t.weight * x;
          }
        }
      return s;
    }
    case "cosine": {
      sameDims();
      const tau = t.temperature ?? 1;
      const norm = (x: ArrayLike<number>, row: number): number => {
        let n = 0;
        for (let c = 0; c < Dq; c++) n += x[row * Dq + c] * x[row * Dq + c];
        return Math.max(Math.sqrt(n), COSINE_EPS);
      };
      for (let b = 0; b < B; b++)
        for (let i = 0; i < Nq; i++) {
          const nq = norm(q.data, b * Nq + i);
          for (let j = 0; j < Nk; j++) {
            const nk = norm(k.data, b * Nk + j);
            let x = 0;
            for (let c = 0; c < Dq; c++)
              x += q.data[(b * Nq + i) * Dq + c] * k.data[(b * Nk + j) * Dk + c];
            s[at(b, i, j)] = (t.weight * (x / (nq * nk))) / tau;
          }
        }
      return s;
    }
    case "additive": {
      const va = dataOf(t.va);
      const A = va.length;
      const qp = referenceLinear(q, dataOf(t.wq), A).data;
      const kp = referenceLinear(k, dataOf(t.wk), A, t.bias ? dataOf(t.bias) : undefined).data;
      for (let b = 0; b < B; b++)
        for (let i = 0; i < Nq; i++)
          for (let j = 0; j < Nk; j++) {
            let x = 0;
            for (let a = 0; a < A; a++)
              x += va[a] * Math.tanh(qp[(b * Nq + i) * A + a] + kp[(b * Nk + j) * A + a]);
            s[at(b, i, j)] = t.weight * x;
          }
      return s;
    }
  }
}

/**
 * Hybrid attention: score = Σ_t weight_t · score_t, masked, then one softmax and the weighted sum of
 * v. The single-term ops below are its special cases.
 */
export function referenceHybrid(
  q: RefTensor,
  k: RefTensor,
  v: RefTensor,
  terms: readonly RefTerm[],
  options: RefFamilyOptions = {},
): RefFamilyResult {
  if (terms.length === 0) throw new Error("referenceHybrid: no terms");
  const d = dims(q, k, v);
  const { B, Nq, Nk, Dv } = d;
  const scores = new Float64Array(B * Nq * Nk);
  for (const t of terms) {
    const s = termScores(t, q, k, d);
    for (let x = 0; x < s.length; x++) scores[x] += s[x];
  }
  const mask = options.mask;
  const ms = mask ? broadcastStrides(mask.shape, [B, Nq, Nk]) : [0, 0, 0];
  const bool = mask !== undefined && mask.data instanceof Uint8Array;
  const output = new Float64Array(B * Nq * Dv);
  const weights = new Float64Array(B * Nq * Nk);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Nq; i++) {
      const row = (b * Nq + i) * Nk;
      if (mask) {
        for (let j = 0; j < Nk; j++) {
          const m = mask.data[b * ms[0] + i * ms[1] + j * ms[2]];
          if (bool ? m === 0 : m === -Infinity) scores[row + j] = -Infinity;
          else if (!bool) scores[row + j] += m;
        }
      }
      let max = -Infinity;
      for (let j = 0; j < Nk; j++) max = Math.max(max, scores[row + j]);
      if (max === -Infinity) continue; // fully masked: zero weights, zero output
      let sum = 0;
      for (let j = 0; j < Nk; j++) sum += Math.exp(scores[row + j] - max);
      for (let j = 0; j < Nk; j++) {
        if (scores[row + j] === -Infinity) continue;
        const p = Math.exp(scores[row + j] - max) / sum;
        weights[row + j] = p;
        for (let c = 0; c < Dv; c++)
          output[(b * Nq + i) * Dv + c] += p * v.data[(b * Nk + j) * Dv + c];
      }
    }
  return {
    output: { data: output, shape: [...d.lead, Nq, Dv] },
    weights: { data: weights, shape: [...d.lead, Nq, Nk] },
    scores: { data: scores, shape: [...d.lead, Nq, Nk] },
  };
}

/** Additive (Bahdanau): score = va · tanh(Wq q + Wk k + bias), no scaling. */
export function referenceAdditive(
  q: RefTensor,
  k: RefTensor,
  v: RefTensor,
  params: RefAdditiveParams,
  options: RefFamilyOptions = {},
): RefFamilyResult {
  return referenceHybrid(q, k, v, [{ kind: "additive", weight: 1, ...params }], options);
}

/** Bilinear (Luong "general"): score = qᵀ W k with W [Dq, Dk], no scaling. */
export function referenceBilinear(
  q: RefTensor,
  k: RefTensor,
  v: RefTensor,
  params: { w: RefParam },
  options: RefFamilyOptions = {},
): RefFamilyResult {
  return referenceHybrid(q, k, v, [{ kind: "bilinear", weight: 1, w: params.w }], options);
}

/** Cosine: score = q·k / (max(‖q‖, 1e-8) · max(‖k‖, 1e-8)) / temperature (default 1). */
export function referenceCosine(
  q: RefTensor,
  k: RefTensor,
  v: RefTensor,
  options: RefFamilyOptions & { temperature?: number } = {},
): RefFamilyResult {
  return referenceHybrid(
    q,
    k,
    v,
    [{ kind: "cosine", weight: 1, temperature: options.temperature }],
    options,
  );
}
