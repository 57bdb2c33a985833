// hardAttention: top-k attention (assembly/hard.ts). Shapes, scale and masks as in
// scaledDotProductAttention.

import * as P from "../../assembly/shared.js";
import { stagedBytes, withCall } from "../call.js";
import { AttentionError } from "../errors.js";
import { attentionInputDims, planAttention, type AttentionResult } from "../sdpa.js";
import { describe, type Tensor } from "../tensor.js";
import { Workspace } from "../workspace.js";

export interface HardAttentionOptions {
  /** Scores kept per query row (ties go to the lower key index); 1 is argmax attention. */
  topK: number;
  /** Multiplier of q·k; default 1/sqrt(D). */
  scale?: number;
  /** Boolean (1 = attend) or additive, broadcasting to [B, H, Nq, Nk]; applied before selection. */
  mask?: Tensor<Uint8Array> | Tensor<Float32Array>;
  returnWeights?: boolean;
}

const OP = "hardAttention";

/**
 * Hard attention: each query row keeps its topK largest scaled scores (after the mask), takes a
 * softmax over those only and averages their values; all other weights are exactly 0. A topK above
 * the number of visible keys keeps them all. q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv].
 */
export function hardAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: HardAttentionOptions,
): AttentionResult {
  const dims = attentionInputDims(OP, q, k, v);
  if (typeof options !== "object" || options === null) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: options must be an object, got ${describe(options)}`,
    );
  }
  const { topK } = options;
  if (typeof topK !== "number" || !Number.isInteger(topK) || topK < 1) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: topK must be an integer >= 1, got ${describe(topK)}`,
    );
  }
  const plan = planAttention(OP, dims, {
    scale: options.scale,
    mask: options.mask,
    returnWeights: options.returnWeights,
  });
  const { B, H, Hkv, Nq, Nk, D, Dv } = dims;
  const kept = Math.min(topK, Math.max(Nk, 1));
  const block = Workspace.blockSize;
  return withCall(
    OP,
    (kern) =>
      stagedBytes(q, kern) +
      stagedBytes(k, kern) +
      stagedBytes(v, kern) +
      (plan.mask ? stagedBytes(plan.mask.tensor, kern) : 0) +
      block(B * H * Nq * Dv * 4) +
      (plan.returnWeights ? block(B * H * Nq * Nk * 4) : 0) +
      block(kern.exports.hardAttentionScratchBytes(Nk, kept)),
    (call) => {
      const { exports } = call.kernels;
      const qPtr = call.inputF32(q, "q");
      const kPtr = call.inputF32(k, "k");
      const vPtr = call.inputF32(v, "v");
      const mask = plan.mask;
      let maskPtr = 0;
      if (mask) {
        maskPtr =
          mask.tensor.data instanceof Uint8Array
            ? call.inputU8(mask.tensor as Tensor<Uint8Array>, "mask")
            : call.inputF32(mask.tensor as Tensor, "mask");
      }
      const outPtr = call.alloc(B * H * Nq * Dv * 4, "output");
      const weightsPtr = plan.returnWeights ? call.alloc(B * H * Nq * Nk * 4, "weights") : 0;
      const scratch = call.alloc(exports.hardAttentionScratchBytes(Nk, kept), "scratch");
      const ms = mask ? mask.strides : [0, 0, 0, 0];
      exports.hardAttention(
        qPtr,
        kPtr,
        vPtr,
        outPtr,
        weightsPtr,
        B,
        H,
        Hkv,
        Nq,
        Nk,
        D,
        Dv,
        plan.scale,
        kept,
        maskPtr,
        mask ? mask.kind : P.MASK_NONE,
        ms[0],
        ms[1],
        ms[2],
        ms[3],
        scratch,
      );
      const lead = q.shape.slice(0, -2);
      const result: AttentionResult = {
        output: { data: call.outputF32(outPtr, B * H * Nq * Dv), shape: [...lead, Nq, Dv] },
      };
      if (weightsPtr) {
        result.weights = {
          data: call.outputF32(weightsPtr, B * H * Nq * Nk),
          shape: [...lead, Nq, Nk],
        };
      }
      return result;
    },
  );
}
