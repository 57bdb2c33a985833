// scaledDotProductAttentionBackward: the gradients of attention for training, recomputing the
// probabilities tile by tile from the forward pass's lse (assembly/sdpa-backward.ts).

import { stagedBytes, withCall } from "./call.js";
import { AttentionError, formatShape } from "./errors.js";
import {
  attentionInputDims,
  contiguousOperand,
  planAttention,
  setUpAttention,
  type AttentionOptions,
} from "./sdpa.js";
import { checkTensor, describe, type Tensor } from "./tensor.js";
import { linear, weightTensor } from "./linear.js";
import { Workspace } from "./workspace.js";
import { SDPA_PARAMS_BYTES } from "../assembly/shared.js";

const OP = "scaledDotProductAttentionBackward";

/** The forward pass's options, and its lse (`returnLse: true`). */
export type BackwardOptions = AttentionOptions & { lse: Tensor };

/**
 * Gradients of L = Σ output ⊙ gradOutput with respect to q, k and v, for the forward call with the
 * same inputs and options: dq has q's shape, dk k's and dv v's (with grouped-query heads, dk and dv
 * sum over the query heads of each group). `output` is the forward output and `options.lse` its
 * lse. A fully masked row contributes nothing.
 */
export function scaledDotProductAttentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  output: Tensor,
  gradOutput: Tensor,
  options: BackwardOptions,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const dims = attentionInputDims(OP, q, k, v);
  if (typeof options !== "object" || options === null) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: options must be an object, got ${describe(options)}`,
    );
  }
  const { lse, ...forward } = options;
  const plan = planAttention(OP, dims, { ...forward, returnWeights: false, returnLse: false });
  const { B, H, Hkv, Nq, Nk, D, Dv } = dims;
  const lead = q.shape.slice(0, -2);
  const expect = (name: string, t: Tensor, shape: number[]): void => {
    checkTensor(OP, name, t, ["float32"]);
    if (t.shape.join() !== shape.join()) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${OP}: ${name} has shape ${formatShape(t.shape)} but must be ${formatShape(shape)}`,
      );
    }
  };
  expect("output", output, [...lead, Nq, Dv]);
  expect("gradOutput", gradOutput, [...lead, Nq, Dv]);
  if (lse === undefined) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: options.lse is missing (the forward pass's returnLse)`,
    );
  }
  expect("options.lse", lse, [...lead, Nq]);
  const block = Workspace.blockSize;
  return withCall(
    OP,
    (kern) =>
      [q, k, v, output, gradOutput, lse].reduce((n, t) => n + stagedBytes(t, kern), 0) +
      block(q.data.byteLength) +
      block(k.data.byteLength) +
      block(v.data.byteLength) +
      block(SDPA_PARAMS_BYTES) +
      block(kern.exports.sdpaBackwardScratchBytes(D, Dv, Nk)) +
      (plan.mask ? stagedBytes(plan.mask.tensor, kern) : 0) +
      block(H * 4) +
      block(Nk) +
      block(Nq),
    (call) => {
      const { exports } = call.kernels;
      const zeros = (bytes: number, what: string): number => {
        const ptr = call.alloc(bytes, what);
        call.workspace.u8.fill(0, ptr, ptr + bytes);
        return ptr;
      };
      const params = call.alloc(SDPA_PARAMS_BYTES, "parameters");
      setUpAttention(
        call,
        plan,
        {
          q: contiguousOperand(call.inputF32(q, "q"), H, Nq, D),
          k: contiguousOperand(call.inputF32(k, "k"), Hkv, Nk, D),
          v: contiguousOperand(call.inputF32(v, "v"), Hkv, Nk, Dv),
          out: contiguousOperand(call.inputF32(output, "output"), H, Nq, Dv),
        },
        params,
      );
      const gradPtr = call.inputF32(gradOutput, "gradOutput");
      const lsePtr = call.inputF32(lse, "lse");
      const dq = zeros(q.data.byteLength, "dq");
      const dk = zeros(k.data.byteLength, "dk");
      const dv = zeros(v.data.byteLength, "dv");
      const scratch = call.alloc(exports.sdpaBackwardScratchBytes(D, Dv, Nk), "scratch");
      exports.sdpaBackward(params, scratch, gradPtr, lsePtr, dq, dk, dv, 0, B * H);
      return {
        dq: { data: call.outputF32(dq, B * H * Nq * D), shape: [...q.shape] },
        dk: { data: call.outputF32(dk, B * Hkv * Nk * D), shape: [...k.shape] },
        dv: { data: call.outputF32(dv, B * Hkv * Nk * Dv), shape: [...v.shape] },
      };
    },
  );
}

/**
 * Gradients of linear (y = x·Wᵀ + b) for the upstream gradient gradOutput [..., out]: dx [..., in]
 * = gradOutput·W, dw [out, in] = gradOutputᵀ·x, db [out] = the column sums of gradOutput. Both
 * products run on the SIMD GEMM.
 */
export function linearBackward(
  x: Tensor,
  w: Float32Array | Tensor,
  gradOutput: Tensor,
): { dx: Tensor; dw: Tensor; db: Tensor } {
  const op = "linearBackward";
  checkTensor(op, "x", x, ["float32"]);
  checkTensor(op, "gradOutput", gradOutput, ["float32"]);
  if (x.shape.length < 1) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: x must have rank >= 1 [..., in], got shape []`,
    );
  }
  const inFeatures = x.shape[x.shape.length - 1];
  const weights = weightTensor(op, "w", w, inFeatures);
  const outFeatures = weights.shape[0];
  const rows = x.data.length / Math.max(inFeatures, 1);
  const want = [...x.shape.slice(0, -1), outFeatures];
  if (gradOutput.shape.join() !== want.join()) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: gradOutput has shape ${formatShape(gradOutput.shape)} but must be ${formatShape(want)}`,
    );
  }
  const transpose = (data: Float32Array, r: number, c: number): Float32Array => {
    const t = new Float32Array(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = data[i * c + j];
    return t;
  };
  // dx = dY·W = linear(dY, Wᵀ); dw = dYᵀ·X = linear(dYᵀ, Xᵀ).
  const dyFlat = { data: gradOutput.data, shape: [rows, outFeatures] };
  const dx = linear(dyFlat, transpose(weights.data, outFeatures, inFeatures));
  const dw = linear(
    { data: transpose(gradOutput.data, rows, outFeatures), shape: [outFeatures, rows] },
    transpose(x.data, rows, inFeatures),
  );
  const db = new Float32Array(outFeatures);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outFeatures; o++) db[o] += gradOutput.data[r * outFeatures + o];
  return {
    dx: { data: dx.data, shape: [...x.shape] },
    dw: { data: dw.data, shape: [outFeatures, inFeatures] },
    db: { data: db, shape: [outFeatures] },
  };
}
