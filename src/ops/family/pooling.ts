// attentionPooling (Yang et al. 2016, hierarchical attention networks): u = tanh(W h + b),
// a = softmax(u · context), out = Σ a h. It is attention with one query, the context vector, over
// keys u and values h, so after the projection (GEMM) and the vector tanh it runs on the one
// attention kernel at scale 1, with the mask as a key-padding mask.

import * as P from "../../../assembly/shared.js";
import { type Call, stagedBytes } from "../../runtime/call.js";
import { AttentionError, formatShape } from "../../core/errors.js";
import { projectSteps, projectionBytes } from "../linear.js";
import { kernels, type Kernels } from "../../runtime/runtime.js";
import { attentionBytes } from "../../engine/run.js";
import { planAttention } from "../../engine/plan.js";
import {
  runPlanned,
  runPlannedAsync,
  type Planned,
  type AttentionStep,
  type Steps,
} from "../../engine/steps.js";
import { optionKeys } from "../../core/option-keys.js";
import { readOptions } from "../../core/option-values.js";
import { checkHeadDim } from "../../core/shapes.js";
import { readTensor, type Tensor, type TensorInput } from "../../core/tensor.js";
import { Workspace } from "../../runtime/workspace.js";
import { checkEmptyOutput } from "./common.js";
import { parameterMatrix, parameterVector, readBag, type Matrix, type Vector } from "./common.js";

const OP = "attentionPooling";

type Params = { w: Matrix; b: Vector; context: Vector };
/** Options of attentionPooling. */
export interface PoolingOptions {
  /** uint8 [B, N] (or [N]), 1 = a real element. */
  mask?: Tensor<Uint8Array>;
}
const PARAMS_KEYS = optionKeys<Params>({ w: true, b: true, context: true });
const POOLING_KEYS = optionKeys<PoolingOptions>({ mask: true });
type Pooled = { output: Tensor; weights: Tensor };

/**
 * Pools h [B, N, D] (rank 2 [N, D] means B = 1) into [B, D] with weights [B, N]. params: w [A, D],
 * b [A], context [A]. options.mask: uint8 [B, N] (or [N]), 1 = a real element; a fully masked
 * sequence pools to zeros.
 */
export function attentionPooling(h: TensorInput, params: Params, options?: PoolingOptions): Pooled {
  const plan = planPooling(OP, h, params, options);
  return runPlanned(OP, plan);
}

/** attentionPooling that never blocks the calling thread (the pool's workers compute it). */
export async function attentionPoolingAsync(
  h: TensorInput,
  params: Params,
  options?: PoolingOptions,
): Promise<Pooled> {
  const op = `${OP}Async`;
  const plan = planPooling(op, h, params, options);
  return runPlannedAsync(op, plan);
}

// Checks the arguments and plans the call: its workspace bytes and its steps.
function planPooling(
  op: string,
  hIn: TensorInput,
  paramsIn: Params,
  optionsIn: PoolingOptions | undefined,
): Planned<Pooled> {
  kernels(op); // NOT_INITIALIZED first
  const h = readTensor<Float32Array>(op, "h", hIn, ["float32"]);
  const s = h.shape;
  if (s.length !== 3 && s.length !== 2) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: h must be [B, N, D] or [N, D], got shape ${formatShape(s)}`,
    );
  }
  const [B, N, D] = s.length === 3 ? [s[0], s[1], s[2]] : [1, s[0], s[1]];
  checkHeadDim(op, "h", s, "feature size D", D);
  const params = readBag(op, "params", paramsIn, PARAMS_KEYS);
  const options = readOptions<PoolingOptions>(op, optionsIn, POOLING_KEYS);
  const w = parameterMatrix(op, "params.w", params.w, undefined, D);
  const A = w.shape[0];
  const bias = parameterVector(op, "params.b", params.b, A);
  const context = parameterVector(op, "params.context", params.context, A);
  const mask =
    options.mask === undefined
      ? undefined
      : readTensor<Uint8Array>(op, "mask", options.mask, ["uint8"]);
  if (mask !== undefined) {
    const ok =
      (mask.shape.length === 2 && mask.shape[0] === B && mask.shape[1] === N) ||
      (mask.shape.length === 1 && mask.shape[0] === N);
    if (!ok) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: mask has shape ${formatShape(mask.shape)} but must be [B, N] = [${B},${N}] or [N]`,
      );
    }
  }
  const lead = s.length === 3 ? [B] : [];
  if (B === 0 || N === 0) {
    checkEmptyOutput(op, B * D, formatShape([...lead, D]));
    // Nothing to compute (an empty sequence pools to zeros): no kernel, no allocation, no pool.
    const empty: Pooled = {
      output: { data: new Float32Array(B * D), shape: [...lead, D] },
      weights: { data: new Float32Array(0), shape: [...lead, N] },
    };
    return {
      bytes: () => 0,
      steps: function* () {
        return empty;
      },
    };
  }
  // One query (the context) per batch entry, keys u [B, N, A], values h [B, N, D].
  const plan = planAttention(
    op,
    { B, H: 1, Hkv: 1, Nq: 1, Nk: N, D: A, Dv: D },
    { scale: 1, returnWeights: true },
  );
  const block = Workspace.blockSize;
  const bytes = (k: Kernels): number =>
    stagedBytes(h, k) +
    projectionBytes(k, w, B * N) +
    block(A * 4) * 2 +
    (mask ? stagedBytes(mask, k) : 0) +
    block(B * D * 4) +
    block(P.SDPA_PARAMS_BYTES) + // the parameter block of an asynchronous call
    attentionBytes(k, plan);
  const steps = function* (call: Call): Steps<Pooled> {
    // Every input is staged before the first step (an asynchronous call has taken all it needs
    // before its first await); projectSteps stages w before its GEMM.
    const hPtr = call.inputF32(h, "h");
    const biasPtr = call.inputF32({ data: bias, shape: [A] }, "b");
    const contextPtr = call.inputF32({ data: context, shape: [A] }, "context");
    const maskPtr = mask ? call.inputU8(mask, "mask") : 0;
    const u = yield* projectSteps(call, hPtr, B * N, w, biasPtr);
    call.kernels.exports.tanhInPlace(u, B * N * A);
    const outPtr = call.alloc(B * D * 4, "output");
    const attention: AttentionStep = {
      plan,
      operands: {
        q: { ptr: contextPtr, strideB: 0, strideH: 0, strideRow: A },
        k: { ptr: u, strideB: N * A, strideH: 0, strideRow: A },
        v: { ptr: hPtr, strideB: N * D, strideH: 0, strideRow: D },
        out: { ptr: outPtr, strideB: D, strideH: 0, strideRow: D },
        keyMask: mask ? { ptr: maskPtr, strideB: mask.shape.length === 2 ? N : 0 } : undefined,
      },
    };
    yield attention;
    const result = attention.result ?? {};
    return {
      output: { data: call.outputF32(outPtr, B * D), shape: [...lead, D] },
      weights: { data: result.weights!, shape: [...lead, N] },
    };
  };
  return { bytes, steps };
}
