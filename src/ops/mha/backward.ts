// MultiHeadAttention.backward: forward's data flow in reverse, on the package's gradient ops. The
// output projection (linearBackward), then the attention (scaledDotProductAttentionBackward with
// the forward's options and lse, on the heads split out of the projections), then RoPE (a rotation,
// so its transpose is the rotation by −angle: applyRope at negated positions), then the three input
// projections (linearBackward). Everything backward reads was copied out by forward (mha-saved.ts).

import { linearBackward, scaledDotProductAttentionBackward } from "../backward.js";
import { AttentionError, formatShape } from "../../core/errors.js";
import { type MhaParameters, type MhaSaved, type SavedState, savedState } from "./saved.js";
import { applyRope, type RopeConfig } from "../rope.js";
import { broadcastStrides } from "../../core/shapes.js";
import { readTensor, type Tensor } from "../../core/tensor.js";

/** What MultiHeadAttention.backward returns: gradients of L = Σ output ⊙ gradOutput. */
export interface MultiHeadAttentionGradients {
  /**
   * With respect to query [B, Nq, E]. Where key or value was not passed (self-attention), it
   * defaulted to query, and its path is included here: dQuery is then the input's whole gradient.
   */
  dQuery: Tensor;
  /** With respect to key [B, Nk, kdim], when key was passed. */
  dKey?: Tensor;
  /** With respect to value [B, Nk, vdim], when value was passed. */
  dValue?: Tensor;
  /** Of every weight, in the weights' layout; the biases' when the module has them. */
  grads: MhaParameters;
}

/** What backward needs of the module besides the saved state: MultiHeadAttention's own fields. */
export interface MhaConfig {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly bias: boolean;
  readonly rope: RopeConfig | undefined;
}

export function mhaBackward(
  op: string,
  module: MhaConfig,
  gradOutputIn: unknown,
  saved: MhaSaved,
): MultiHeadAttentionGradients {
  const s = savedState(op, saved, module);
  const gradOutput = readTensor<Float32Array>(op, "gradOutput", gradOutputIn, ["float32"]);
  // The output has the query's shape ([B, Nq, E] or [Nq, E]).
  if (gradOutput.shape.join() !== s.query.shape.join()) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: gradOutput has shape ${formatShape(gradOutput.shape)} but must be the forward ` +
        `output's shape ${formatShape(s.query.shape)}`,
    );
  }
  const { numHeads: H, numKvHeads: Hkv, headDim: hd } = module;
  const { B, Nq, Nk, weights: w } = s;
  const E = H * hd;
  const kvDim = Hkv * hd;
  // No output element (B·Nq = 0) or no key (Nk = 0: the attention output is zeros whatever the
  // inputs): the closed forms, without the ops that would run on empty operands.
  if (B * Nq === 0 || Nk === 0) return constantAttentionBackward(s, module, gradOutput);

  const outProjection = linearBackward({ data: s.attended, shape: [B * Nq, E] }, w.wo, {
    data: gradOutput.data,
    shape: [B * Nq, E],
  });
  const heads = (x: Float32Array, n: number, h: number): Tensor => ({
    data: splitHeads(x, B, n, h, hd),
    shape: [B, h, n, hd],
  });
  const attention = scaledDotProductAttentionBackward(
    heads(s.q, Nq, H),
    heads(s.k, Nk, Hkv),
    heads(s.v, Nk, Hkv),
    heads(s.attended, Nq, H),
    heads(outProjection.dx.data, Nq, H),
    {
      mask: attentionMask(op, s),
      causal: s.causal,
      window: s.window,
      lse: { data: s.lse, shape: [B, H, Nq] },
    },
  );
  let { dq, dk } = attention;
  if (module.rope) {
    // As forward: queries at positions Nk − Nq.., keys at 0.. (no cache).
    dq = unrotate(dq, module.rope, Nk - Nq);
    dk = unrotate(dk, module.rope, 0);
  }

  const inputBackward = (x: Tensor, weight: Float32Array, grad: Tensor, features: number) =>
    linearBackward(x, weight, {
      data: mergeHeads(grad.data, B, grad.shape[2], grad.shape[1], hd),
      shape: [...x.shape.slice(0, -1), features],
    });
  const qIn = inputBackward(s.query, w.wq, dq, E);
  const kIn = inputBackward(s.key, w.wk, dk, kvDim);
  const vIn = inputBackward(s.value, w.wv, attention.dv, kvDim);

  const dQuery = qIn.dx.data;
  if (!s.keyGiven) addInto(dQuery, kIn.dx.data);
  if (!s.valueGiven) addInto(dQuery, vIn.dx.data);
  const grads: MhaParameters = {
    wq: qIn.dw.data,
    wk: kIn.dw.data,
    wv: vIn.dw.data,
    wo: outProjection.dw.data,
  };
  if (module.bias) {
    grads.bq = qIn.db.data;
    grads.bk = kIn.db.data;
    grads.bv = vIn.db.data;
    grads.bo = outProjection.db.data;
  }
  const result: MultiHeadAttentionGradients = {
    dQuery: { data: dQuery, shape: [...s.query.shape] },
    grads,
  };
  if (s.keyGiven) result.dKey = kIn.dx;
  if (s.valueGiven) result.dValue = vIn.dx;
  return result;
}

/**
 * Gradients when the attention output does not depend on query, key or value: no output row, or no
 * key (every row fully masked, so the attention output is zeros and the output is bo). Only wo's
 * and bo's gradients can be non-zero: dwo = dYᵀ·0 = 0 and dbo = Σ dY over the rows.
 */
function constantAttentionBackward(
  s: SavedState,
  module: MhaConfig,
  gradOutput: Tensor,
): MultiHeadAttentionGradients {
  const w = s.weights;
  const E = module.numHeads * module.headDim;
  const zerosLike = (x: Float32Array): Float32Array => new Float32Array(x.length);
  const grads: MhaParameters = {
    wq: zerosLike(w.wq),
    wk: zerosLike(w.wk),
    wv: zerosLike(w.wv),
    wo: zerosLike(w.wo),
  };
  if (module.bias) {
    const bo = new Float32Array(E);
    const dy = gradOutput.data;
    for (let r = 0; r < s.B * s.Nq; r++) for (let e = 0; e < E; e++) bo[e] += dy[r * E + e];
    grads.bq = new Float32Array(E);
    grads.bk = new Float32Array(w.bk?.length ?? 0);
    grads.bv = new Float32Array(w.bv?.length ?? 0);
    grads.bo = bo;
  }
  const zeros = (t: Tensor): Tensor => ({
    data: new Float32Array(t.data.length),
    shape: [...t.shape],
  });
  const result: MultiHeadAttentionGradients = { dQuery: zeros(s.query), grads };
  if (s.keyGiven) result.dKey = zeros(s.key);
  if (s.valueGiven) result.dValue = zeros(s.value);
  return result;
}

/** [B, N, heads·hd] (head h = columns h·hd..) → [B, heads, N, hd]. */
function splitHeads(
  x: Float32Array,
  B: number,
  N: number,
  heads: number,
  hd: number,
): Float32Array {
  const out = new Float32Array(x.length);
  const width = heads * hd;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let n = 0; n < N; n++) {
        const from = (b * N + n) * width + h * hd;
        out.set(x.subarray(from, from + hd), ((b * heads + h) * N + n) * hd);
      }
  return out;
}

/** [B, heads, N, hd] → [B, N, heads·hd]: the inverse of splitHeads. */
function mergeHeads(
  x: Float32Array,
  B: number,
  N: number,
  heads: number,
  hd: number,
): Float32Array {
  const out = new Float32Array(x.length);
  const width = heads * hd;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let n = 0; n < N; n++) {
        const from = ((b * heads + h) * N + n) * hd;
        out.set(x.subarray(from, from + hd), (b * N + n) * width + h * hd);
      }
  return out;
}

function addInto(target: Float32Array, x: Float32Array): void {
  for (let i = 0; i < target.length; i++) target[i] += x[i];
}

// The gradient through RoPE at positions offset.. is the transposed rotation, i.e. the rotation by
// the negated angles. cos(−a) = cos a and sin(−a) = −sin a exactly, so this is exactly Rᵀ.
function unrotate(grad: Tensor, rope: RopeConfig, offset: number): Tensor {
  const rows = grad.shape[2];
  const positions = Int32Array.from({ length: rows }, (_, i) => -(offset + i));
  return applyRope(grad, { base: rope.base, style: rope.style, positions });
}

/**
 * The forward's keyMask and mask as the one mask scaledDotProductAttentionBackward takes. keyMask
 * alone is the boolean [B, 1, 1, Nk]. With a mask, they are intersected exactly over the mask's
 * shape with B and Nk made full: boolean, 1 where both allow; additive, the mask's value where
 * keyMask allows and −Infinity where it does not (forward skips those keys: probability 0 either
 * way, and a row left with no key has lse = −Infinity and contributes nothing).
 */
function attentionMask(
  op: string,
  s: SavedState,
): Tensor<Uint8Array> | Tensor<Float32Array> | undefined {
  const { mask, keyMask, B, Nk } = s;
  if (keyMask === undefined) return mask;
  if (mask === undefined) return { data: keyMask.data, shape: [B, 1, 1, Nk] };
  const padded = [...new Array<number>(4 - mask.shape.length).fill(1), ...mask.shape];
  const shape = [B, padded[1], padded[2], Nk];
  const [sb, sh, sq, sk] = broadcastStrides(op, "mask", mask.shape, shape, "[B,H,Nq,Nk]");
  const bool = mask.data instanceof Uint8Array;
  const length = B * shape[1] * shape[2] * Nk;
  const out = bool ? new Uint8Array(length) : new Float32Array(length);
  let at = 0;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < shape[1]; h++)
      for (let i = 0; i < shape[2]; i++)
        for (let j = 0; j < Nk; j++, at++) {
          const m = mask.data[b * sb + h * sh + i * sq + j * sk];
          const allowed = keyMask.data[b * Nk + j] !== 0;
          if (bool) out[at] = allowed && m !== 0 ? 1 : 0;
          else out[at] = allowed ? m : -Infinity;
        }
  return { data: out, shape } as Tensor<Uint8Array> | Tensor<Float32Array>;
}
