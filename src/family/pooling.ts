// attentionPooling (Yang et al. 2016, hierarchical attention networks): u = tanh(W h + b),
// a = softmax(u · context), out = Σ a h. It is attention with one query, the context vector, over
// keys u and values h, so after the projection (GEMM) and the vector tanh it runs on the one
// attention kernel at scale 1, with the mask as a key-padding mask.

import { stagedBytes, withCall } from "../call.js";
import { AttentionError, formatShape } from "../errors.js";
import { project, projectionBytes } from "../linear.js";
import { attentionBytes, planAttention, runAttention } from "../sdpa.js";
import { checkTensor, describe, type Tensor } from "../tensor.js";
import { Workspace } from "../workspace.js";
import { parameterMatrix, parameterVector, type Matrix, type Vector } from "./common.js";

const OP = "attentionPooling";

/**
 * Pools h [B, N, D] (rank 2 [N, D] means B = 1) into [B, D] with weights [B, N]. params: w [A, D],
 * b [A], context [A]. options.mask: uint8 [B, N] (or [N]), 1 = a real element; a fully masked
 * sequence pools to zeros.
 */
export function attentionPooling(
  h: Tensor,
  params: { w: Matrix; b: Vector; context: Vector },
  options: { mask?: Tensor<Uint8Array> } = {},
): { output: Tensor; weights: Tensor } {
  checkTensor(OP, "h", h, ["float32"]);
  const s = h.shape;
  if (s.length !== 3 && s.length !== 2) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${OP}: h must be [B, N, D] or [N, D], got shape ${formatShape(s)}`,
    );
  }
  const [B, N, D] = s.length === 3 ? [s[0], s[1], s[2]] : [1, s[0], s[1]];
  if (typeof params !== "object" || params === null) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: params must be an object, got ${describe(params)}`,
    );
  }
  if (typeof options !== "object" || options === null) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: options must be an object, got ${describe(options)}`,
    );
  }
  const w = parameterMatrix(OP, "params.w", params.w, undefined, D);
  const A = w.shape[0];
  const bias = parameterVector(OP, "params.b", params.b, A);
  const context = parameterVector(OP, "params.context", params.context, A);
  const mask = options.mask;
  if (mask !== undefined) {
    checkTensor(OP, "mask", mask, ["uint8"]);
    const ok =
      (mask.shape.length === 2 && mask.shape[0] === B && mask.shape[1] === N) ||
      (mask.shape.length === 1 && mask.shape[0] === N);
    if (!ok) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${OP}: mask has shape ${formatShape(mask.shape)} but must be [B, N] = [${B},${N}] or [N]`,
      );
    }
  }
  // One query (the context) per batch entry, keys u [B, N, A], values h [B, N, D].
  const plan = planAttention(
    OP,
    { B, H: 1, Hkv: 1, Nq: 1, Nk: N, D: A, Dv: D },
    { scale: 1, returnWeights: true },
  );
  const block = Workspace.blockSize;
  return withCall(
    OP,
    (k) =>
      stagedBytes(h, k) +
      projectionBytes(k, w, B * N) +
      block(A * 4) * 2 +
      (mask ? stagedBytes(mask, k) : 0) +
      block(B * D * 4) +
      attentionBytes(k, plan),
    (call) => {
      const hPtr = call.inputF32(h, "h");
      const biasPtr = call.inputF32({ data: bias, shape: [A] }, "b");
      const u = project(call, hPtr, B * N, w, biasPtr);
      call.kernels.exports.tanhInPlace(u, B * N * A);
      const contextPtr = call.inputF32({ data: context, shape: [A] }, "context");
      const outPtr = call.alloc(B * D * 4, "output");
      const result = runAttention(call, plan, {
        q: { ptr: contextPtr, strideB: 0, strideH: 0, strideRow: A },
        k: { ptr: u, strideB: N * A, strideH: 0, strideRow: A },
        v: { ptr: hPtr, strideB: N * D, strideH: 0, strideRow: D },
        out: { ptr: outPtr, strideB: D, strideH: 0, strideRow: D },
        keyMask: mask
          ? { ptr: call.inputU8(mask, "mask"), strideB: mask.shape.length === 2 ? N : 0 }
          : undefined,
      });
      const lead = s.length === 3 ? [B] : [];
      return {
        output: { data: call.outputF32(outPtr, B * D), shape: [...lead, D] },
        weights: { data: result.weights!, shape: [...lead, N] },
      };
    },
  );
}
