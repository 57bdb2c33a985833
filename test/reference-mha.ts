// Plain float64 references for the projection-based ops, written straight from shared/API.md and
// shared/conformance/FORMAT.md (4.4 mha, 4.12 rope_attention) with no attention to speed: linear
// (y = x·Wᵀ + b), rotary position embedding (both pair conventions) and multi-head attention composed
// from them and the reference SDPA of ./reference.ts.

import { broadcastStrides, referenceSdpa, type RefTensor } from "./reference";

/** y [..., out] = x [..., in] · Wᵀ + b, with W [out, in] row-major and b [out] (optional). */
export function referenceLinear(
  x: RefTensor,
  w: ArrayLike<number>,
  outFeatures: number,
  b?: ArrayLike<number>,
): RefTensor<Float64Array> {
  if (x.shape.length < 1) throw new Error("referenceLinear: x must have rank >= 1");
  const K = x.shape[x.shape.length - 1];
  if (w.length !== outFeatures * K) {
    throw new Error(`referenceLinear: w has ${w.length} elements, want ${outFeatures}·${K}`);
  }
  if (b !== undefined && b.length !== outFeatures) {
    throw new Error(`referenceLinear: b has ${b.length} elements, want ${outFeatures}`);
  }
  const rows = K === 0 ? 0 : x.data.length / K;
  const y = new Float64Array(rows * outFeatures);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outFeatures; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < K; i++) s += x.data[r * K + i] * w[o * K + i];
      y[r * outFeatures + o] = s;
    }
  }
  return { data: y, shape: [...x.shape.slice(0, -1), outFeatures] };
}

export type RopeStyle = "neox" | "gptj";

export interface RefRopeOptions {
  /** Default 10000. */
  base?: number;
  /** "neox" (default): pairs (t, t + D/2); "gptj": pairs (2t, 2t + 1). */
  style?: RopeStyle;
  /** One position per row (the second-to-last dim); default 0..N−1. */
  positions?: ArrayLike<number>;
}

/**
 * Rotary position embedding of x [..., N, D] (D even): pair t of row n is rotated by the angle
 * positions[n] · base^(−2t/D), as x'[i] = x[i]·cos a − x[j]·sin a, x'[j] = x[j]·cos a + x[i]·sin a.
 */
export function referenceRope(x: RefTensor, options: RefRopeOptions = {}): RefTensor<Float64Array> {
  const s = x.shape;
  if (s.length < 2) throw new Error("referenceRope: x must have rank >= 2");
  const N = s[s.length - 2];
  const D = s[s.length - 1];
  if (D % 2 !== 0) throw new Error(`referenceRope: odd head dim ${D}`);
  const base = options.base ?? 10000;
  const style = options.style ?? "neox";
  const positions = options.positions ?? Array.from({ length: N }, (_, n) => n);
  if (positions.length !== N) throw new Error("referenceRope: one position per row");
  const half = D / 2;
  const out = new Float64Array(x.data.length);
  const planes = N * D === 0 ? 0 : x.data.length / (N * D);
  for (let p = 0; p < planes; p++) {
    for (let n = 0; n < N; n++) {
      const row = (p * N + n) * D;
      for (let t = 0; t < half; t++) {
        const angle = positions[n] * Math.pow(base, (-2 * t) / D);
        const cos = Math.cos(angle);
        const sin = Math.sin(angle);
        const [i, j] = style === "neox" ? [t, t + half] : [2 * t, 2 * t + 1];
        const xi = x.data[row + i];
        const xj = x.data[row + j];
        out[row + i] = xi * cos - xj * sin;
        out[row + j] = xj * cos + xi * sin;
      }
    }
  }
  return { data: out, shape: [...s] };
}

/** The module's configuration, as MultiHeadAttention's constructor options. */
export interface RefMhaConfig {
  embedDim: number;
  numHeads: number;
  /** Default numHeads. */
  numKvHeads?: number;
  /** Default embedDim. */
  kdim?: number;
  /** Default embedDim. */
  vdim?: number;
  rope?: { base?: number; style?: RopeStyle };
}

/** PyTorch layout: wq [E,E], wk [E·Hkv/H, kdim], wv [E·Hkv/H, vdim], wo [E,E]; biases optional. */
export interface RefMhaWeights {
  wq: ArrayLike<number>;
  wk: ArrayLike<number>;
  wv: ArrayLike<number>;
  wo: ArrayLike<number>;
  bq?: ArrayLike<number>;
  bk?: ArrayLike<number>;
  bv?: ArrayLike<number>;
  bo?: ArrayLike<number>;
}

export interface RefMhaOptions {
  /** [B, Nk], 1 = real key, 0 = padding. */
  keyMask?: RefTensor<Uint8Array>;
  /** Bool (1 = allowed) or additive; broadcasts to [B,H,Nq,Nk], or PyTorch's [B·H, Nq, Nk]. */
  mask?: RefTensor<Uint8Array> | RefTensor<Float32Array>;
  causal?: boolean;
  window?: readonly [number, number];
  /** Default true. */
  averageWeights?: boolean;
}

export interface RefMhaResult {
  /** [B, Nq, E] (or [Nq, E] for a rank-2 query). */
  output: RefTensor<Float64Array>;
  /** [B, Nq, Nk] averaged over heads, or [B, H, Nq, Nk] ([Nq,Nk] / [H,Nq,Nk] for rank 2). */
  weights: RefTensor<Float64Array>;
}

/** [B, N, F] of a [B, N, F] or [N, F] sequence. */
function seqDims(shape: readonly number[], features: number, name: string): [number, number] {
  if ((shape.length !== 2 && shape.length !== 3) || shape[shape.length - 1] !== features) {
    throw new Error(`referenceMha: ${name} [${shape.join(",")}] is not [B, N, ${features}]`);
  }
  return shape.length === 3 ? [shape[0], shape[1]] : [1, shape[0]];
}

/** Splits a projection [B, N, heads·hd] into [B, heads, N, hd] (head h = columns h·hd..). */
function splitHeads(
  x: Float64Array,
  B: number,
  N: number,
  heads: number,
  hd: number,
): Float64Array {
  const out = new Float64Array(B * heads * N * hd);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < heads; h++)
        for (let d = 0; d < hd; d++)
          out[((b * heads + h) * N + n) * hd + d] = x[(b * N + n) * heads * hd + h * hd + d];
  return out;
}

/**
 * Multi-head attention as API.md / FORMAT.md 4.4 define it: projections, heads split by columns,
 * grouped key/value heads, optional RoPE on the projected q (positions Nk−Nq..) and k (0..Nk−1),
 * masks (keyMask ∩ mask ∩ causal ∩ window, lower-right), softmax with fully masked rows giving 0,
 * heads concatenated, output projection.
 */
export function referenceMha(
  config: RefMhaConfig,
  w: RefMhaWeights,
  query: RefTensor,
  key: RefTensor = query,
  value: RefTensor = key,
  options: RefMhaOptions = {},
): RefMhaResult {
  const E = config.embedDim;
  const H = config.numHeads;
  const Hkv = config.numKvHeads ?? H;
  const kdim = config.kdim ?? E;
  const vdim = config.vdim ?? E;
  if (E % H !== 0 || H % Hkv !== 0) throw new Error("referenceMha: bad head counts");
  const hd = E / H;
  const kvDim = hd * Hkv;
  const [B, Nq] = seqDims(query.shape, E, "query");
  const [Bk, Nk] = seqDims(key.shape, kdim, "key");
  const [Bv, Nv] = seqDims(value.shape, vdim, "value");
  if (Bk !== B || Bv !== B || Nv !== Nk) throw new Error("referenceMha: inconsistent inputs");

  const Q = referenceLinear(query, w.wq, E, w.bq).data;
  const K = referenceLinear(key, w.wk, kvDim, w.bk).data;
  const V = referenceLinear(value, w.wv, kvDim, w.bv).data;
  let q: RefTensor = { data: splitHeads(Q, B, Nq, H, hd), shape: [B, H, Nq, hd] };
  let k: RefTensor = { data: splitHeads(K, B, Nk, Hkv, hd), shape: [B, Hkv, Nk, hd] };
  const v: RefTensor = { data: splitHeads(V, B, Nk, Hkv, hd), shape: [B, Hkv, Nk, hd] };
  if (config.rope) {
    const qPositions = Array.from({ length: Nq }, (_, i) => Nk - Nq + i);
    q = referenceRope(q, { ...config.rope, positions: qPositions });
    k = referenceRope(k, config.rope);
  }

  // keyMask and mask folded into one additive [B,H,Nq,Nk] mask (exact: additive masks are float32).
  let mask: RefTensor<Float32Array> | undefined;
  if (options.keyMask || options.mask) {
    const full = new Float32Array(B * H * Nq * Nk);
    const km = options.keyMask;
    if (km && (km.shape.length !== 2 || km.shape[0] !== B || km.shape[1] !== Nk)) {
      throw new Error(`referenceMha: keyMask [${km.shape.join(",")}] is not [${B},${Nk}]`);
    }
    let m = options.mask;
    let strides = [0, 0, 0, 0];
    if (m) {
      const s = m.shape;
      if (s.length === 3 && s[0] === B * H)
        m = { data: m.data, shape: [B, H, s[1], s[2]] } as typeof m;
      strides = broadcastStrides(m.shape, [B, H, Nq, Nk]);
    }
    const bool = m !== undefined && m.data instanceof Uint8Array;
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < Nq; i++)
          for (let j = 0; j < Nk; j++) {
            let value = 0;
            if (km && km.data[b * Nk + j] === 0) value = -Infinity;
            if (m) {
              const x = m.data[b * strides[0] + h * strides[1] + i * strides[2] + j * strides[3]];
              if (bool) {
                if (x === 0) value = -Infinity;
              } else value += x;
            }
            full[((b * H + h) * Nq + i) * Nk + j] = value;
          }
    mask = { data: full, shape: [B, H, Nq, Nk] };
  }
  const attention = referenceSdpa(q, k, v, {
    mask,
    causal: options.causal,
    window: options.window,
  });

  // Concatenate heads [B,H,Nq,hd] → [B,Nq,E], then the output projection.
  const concat = new Float64Array(B * Nq * E);
  const o = attention.output.data;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < Nq; i++)
        for (let d = 0; d < hd; d++)
          concat[(b * Nq + i) * E + h * hd + d] = o[((b * H + h) * Nq + i) * hd + d];
  const output = referenceLinear({ data: concat, shape: [B, Nq, E] }, w.wo, E, w.bo);

  const rank2 = query.shape.length === 2;
  const p = attention.weights.data;
  let weights: RefTensor<Float64Array>;
  if (options.averageWeights ?? true) {
    const avg = new Float64Array(B * Nq * Nk);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let x = 0; x < Nq * Nk; x++) avg[b * Nq * Nk + x] += p[(b * H + h) * Nq * Nk + x] / H;
    weights = { data: avg, shape: rank2 ? [Nq, Nk] : [B, Nq, Nk] };
  } else {
    weights = { data: Float64Array.from(p), shape: rank2 ? [H, Nq, Nk] : [B, H, Nq, Nk] };
  }
  return {
    output: { data: output.data, shape: rank2 ? [Nq, E] : [B, Nq, E] },
    weights,
  };
}
