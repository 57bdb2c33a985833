// hardAttention: top-k attention (assembly/hard.ts). Shapes, scale and masks as in
// scaledDotProductAttention.

import * as P from "../../../assembly/shared.js";
import { type Call, stagedBytes } from "../../runtime/call.js";
import { AttentionError, formatShape } from "../../core/errors.js";
import { kernels, type Kernels } from "../../runtime/runtime.js";
import { runPlanned, runPlannedAsync, type Planned, type Steps } from "../../engine/steps.js";
import type { Task } from "../../runtime/threads.js";
import { readAttentionInputs, planAttention } from "../../engine/plan.js";
import { type AttentionResult } from "../../engine/options.js";
import { optionKeys } from "../../core/option-keys.js";
import { optBoolean, optFloat32, optInteger, readOptions } from "../../core/option-values.js";
import { MAX_DIM, readTensor, type Tensor, type TensorInput } from "../../core/tensor.js";
import { Workspace } from "../../runtime/workspace.js";
import { checkEmptyOutput } from "./common.js";

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
const HARD_KEYS = optionKeys<HardAttentionOptions>({
  topK: true,
  scale: true,
  mask: true,
  returnWeights: true,
});

/**
 * Hard attention: each query row keeps its topK largest scaled scores (after the mask), takes a
 * softmax over those only and averages their values; all other weights are exactly 0. A topK above
 * the number of visible keys keeps them all. q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv].
 */
export function hardAttention(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options: HardAttentionOptions,
): AttentionResult {
  const plan = planHard(OP, q, k, v, options);
  return runPlanned(OP, plan);
}

/** hardAttention that never blocks the calling thread (the pool's workers compute it). */
export async function hardAttentionAsync(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options: HardAttentionOptions,
): Promise<AttentionResult> {
  const op = `${OP}Async`;
  const plan = planHard(op, q, k, v, options);
  return runPlannedAsync(op, plan);
}

// Checks the arguments and plans the call: its workspace bytes and its steps. The kernel is split
// across threads by batch entries, or by groups of query heads sharing a kv head when B = 1.
function planHard(
  op: string,
  qIn: TensorInput,
  kIn: TensorInput,
  vIn: TensorInput,
  optionsIn: HardAttentionOptions,
): Planned<AttentionResult> {
  kernels(op); // NOT_INITIALIZED first
  const { q, k, v, dims } = readAttentionInputs(op, qIn, kIn, vIn);
  const options = readOptions<HardAttentionOptions>(op, optionsIn, HARD_KEYS);
  const topK = optInteger(op, "topK", options.topK, 1, MAX_DIM);
  if (topK === undefined) {
    throw new AttentionError("BAD_OPTION", `${op}: options.topK is missing (an integer >= 1)`);
  }
  const mask =
    options.mask === undefined
      ? undefined
      : (readTensor<Uint8Array | Float32Array>(op, "mask", options.mask, ["uint8", "float32"]) as
          Tensor<Uint8Array> | Tensor<Float32Array>);
  const plan = planAttention(op, dims, {
    scale: optFloat32(op, "scale", options.scale),
    mask,
    returnWeights: optBoolean(op, "returnWeights", options.returnWeights),
  });
  const { B, H, Hkv, Nq, Nk, D, Dv } = dims;
  const lead = q.shape.slice(0, -2);
  if (B * H * Nq === 0 || Nk === 0) {
    checkEmptyOutput(op, B * H * Nq * Dv, formatShape([...lead, Nq, Dv]));
    // Nothing to compute (no keys: every row is fully masked, zeros): no kernel, no allocation.
    const empty: AttentionResult = {
      output: { data: new Float32Array(B * H * Nq * Dv), shape: [...lead, Nq, Dv] },
    };
    if (plan.returnWeights) {
      empty.weights = { data: new Float32Array(0), shape: [...lead, Nq, Nk] };
    }
    return {
      bytes: () => 0,
      steps: function* () {
        return empty;
      },
    };
  }
  const kept = Math.min(topK, Nk);
  const block = Workspace.blockSize;
  // The kernel computes it in 32 bits: past 2^31 it would wrap around, so such a call is refused
  // (NaN fails withCall's check with OUT_OF_MEMORY).
  const scratchBytes = (kern: Kernels): number =>
    (Nk + 2 * kept) * 4 + 64 < 2 ** 31 ? kern.exports.hardAttentionScratchBytes(Nk, kept) : NaN;
  const bytes = (kern: Kernels): number =>
    stagedBytes(q, kern) +
    stagedBytes(k, kern) +
    stagedBytes(v, kern) +
    (plan.mask ? stagedBytes(plan.mask.tensor, kern) : 0) +
    block(B * H * Nq * Dv * 4) +
    (plan.returnWeights ? block(B * H * Nq * Nk * 4) : 0) +
    (kern.pool?.size ?? 1) * block(scratchBytes(kern));
  const steps = function* (call: Call): Steps<AttentionResult> {
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
    const [msB, msH, msQ, msK] = mask ? mask.strides : [0, 0, 0, 0];
    const maskKind = mask ? mask.kind : P.MASK_NONE;
    const maskBytes = maskKind === P.MASK_BOOL ? 1 : 4;
    // Units: batch entries, or (B = 1) kv heads with the query heads of their group.
    const group = H / Hkv;
    const byBatch = B > 1;
    const units = byBatch ? B : Hkv;
    const tasks = (threads: number): Task[] => {
      const out: Task[] = [];
      for (let t = 0; t < threads; t++) {
        const begin = Math.floor((t * units) / threads);
        const end = Math.floor(((t + 1) * units) / threads);
        if (end <= begin) continue;
        const [b0, batch] = byBatch ? [begin, end - begin] : [0, 1];
        const [kv0, kvHeads] = byBatch ? [0, Hkv] : [begin, end - begin];
        const qRow = (b0 * H + kv0 * group) * Nq; // first query row of the task
        const kvRow = (b0 * Hkv + kv0) * Nk; // first key row
        out.push({
          fn: "hardAttention",
          args: [
            qPtr + qRow * D * 4,
            kPtr + kvRow * D * 4,
            vPtr + kvRow * Dv * 4,
            outPtr + qRow * Dv * 4,
            weightsPtr && weightsPtr + qRow * Nk * 4,
            batch,
            kvHeads * group,
            kvHeads,
            Nq,
            Nk,
            D,
            Dv,
            plan.scale,
            kept,
            maskPtr && maskPtr + (b0 * msB + kv0 * group * msH) * maskBytes,
            maskKind,
            msB,
            msH,
            msQ,
            msK,
            call.alloc(scratchBytes(call.kernels), "scratch"),
          ],
        });
      }
      return out;
    };
    yield { split: { units, work: B * H * Nq * Nk * (D + Dv), tasks } };
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
  };
  return { bytes, steps };
}
