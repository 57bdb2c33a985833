// scaledDotProductAttention: validation, then one call of the flash-style kernel (assembly/sdpa.ts).

import * as P from "../../assembly/shared.js";
import {
  type Call,
  checkOut,
  type Out,
  stagedBytes,
  withCall,
  withCallAsync,
} from "../runtime/call.js";
import { kernels, type Kernels } from "../runtime/runtime.js";
import { formatShape } from "../core/errors.js";
import { readOptions } from "../core/option-values.js";
import { type Tensor, type TensorInput } from "../core/tensor.js";
import { Workspace } from "../runtime/workspace.js";
import {
  type ScaledDotProductAttentionOptions,
  SDPA_OPTION_KEYS,
  type AttentionResult,
} from "../engine/options.js";
import { type AttentionPlan, readAttentionInputs, planAttention } from "../engine/plan.js";
import { contiguousOperand, type AttentionOperands } from "../engine/params.js";
import { emptyResults, attentionBytes, runAttention, runAttentionAsync } from "../engine/run.js";

export type { AttentionResult, ScaledDotProductAttentionOptions } from "../engine/options.js";

const OP = "scaledDotProductAttention";

/**
 * Scaled dot-product attention, softmax(scale · q·kᵀ + masks) · v, computed flash-style in SIMD
 * WebAssembly with O(tile) working memory.
 *
 * q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv] (rank 3 [H,N,D] and rank 2 [N,D] mean B = 1, H = 1)
 * → output [B,H,Nq,Dv] with the rank of q. When Hkv divides H, query head h uses kv head
 * floor(h / (H / Hkv)) (grouped-query / multi-query attention). D and Dv are in [1, 65536]. A query
 * row with no visible key (Nk = 0 included) outputs zeros, zero weights and lse = -Infinity; an
 * empty output (B, H or Nq = 0) is returned at once, without touching WASM memory.
 */
export function scaledDotProductAttention(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options?: ScaledDotProductAttentionOptions,
): AttentionResult {
  const call = planSdpa(OP, q, k, v, options);
  if (call.empty) return call.empty;
  const { plan, out, inputs } = call;
  return withCall(
    OP,
    (kernels) => sdpaBytes(kernels, inputs, plan),
    (c) => {
      const staged = stageSdpa(c, plan, inputs, out);
      return staged.finish(runAttention(c, plan, staged.operands));
    },
  );
}

/**
 * scaledDotProductAttention that never blocks the calling thread: with a worker pool
 * (`init({ threads })`) the heads are computed by the workers, so a browser page stays responsive
 * and still uses every core. Without a pool it computes on the calling thread. Bad arguments reject
 * with the same AttentionError (never a synchronous throw). Every input (mask and slopes included)
 * is read and copied into WASM memory before the promise is returned, so the caller may reuse or
 * transfer its arrays at once; `out` is written when the promise settles.
 */
export async function scaledDotProductAttentionAsync(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options?: ScaledDotProductAttentionOptions,
): Promise<AttentionResult> {
  const op = `${OP}Async`;
  const call = planSdpa(op, q, k, v, options);
  if (call.empty) return call.empty;
  const { plan, out, inputs } = call;
  return withCallAsync(
    op,
    (kernels) => sdpaBytes(kernels, inputs, plan),
    async (c) => {
      const staged = stageSdpa(c, plan, inputs, out);
      return staged.finish(await runAttentionAsync(c, plan, staged.operands));
    },
  );
}

/** The validated q, k, v snapshots of a call. */
interface SdpaInputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
}

function sdpaBytes(kernels: Kernels, { q, k, v }: SdpaInputs, plan: AttentionPlan): number {
  return (
    stagedBytes(q, kernels) +
    stagedBytes(k, kernels) +
    stagedBytes(v, kernels) +
    Workspace.blockSize(plan.B * plan.H * plan.Nq * plan.Dv * 4) +
    Workspace.blockSize(P.SDPA_PARAMS_BYTES) +
    attentionBytes(kernels, plan)
  );
}

// Stages q, k, v and the output of a call; `finish` turns the kernel's results into the op's.
function stageSdpa(
  call: Call,
  plan: AttentionPlan,
  { q, k, v }: SdpaInputs,
  out: Out | undefined,
): {
  operands: AttentionOperands;
  finish(result: { weights?: Float32Array; lse?: Float32Array }): AttentionResult;
} {
  const { B, H, Hkv, Nq, Nk, D, Dv } = plan;
  // An `out` inside a WasmTensor is written in place (kept allocated until the call ends).
  const outLength = B * H * Nq * Dv;
  const outInPlace = out?.wasmByteOffset;
  if (outInPlace !== undefined) call.pin(outInPlace);
  const outPtr = outInPlace ?? call.alloc(outLength * 4, "output");
  const operands: AttentionOperands = {
    q: contiguousOperand(call.inputF32(q, "q"), H, Nq, D),
    k: contiguousOperand(call.inputF32(k, "k"), Hkv, Nk, D),
    v: contiguousOperand(call.inputF32(v, "v"), Hkv, Nk, Dv),
    out: contiguousOperand(outPtr, H, Nq, Dv),
  };
  const finish = (result: { weights?: Float32Array; lse?: Float32Array }): AttentionResult => {
    const data = call.outputF32(outPtr, outLength, out);
    return attentionResult(q, plan, data, result);
  };
  return { operands, finish };
}

// The op's result from the output data and the kernel's weights and lse.
function attentionResult(
  q: Tensor,
  plan: AttentionPlan,
  data: Float32Array,
  result: { weights?: Float32Array; lse?: Float32Array },
): AttentionResult {
  const { Nq, Nk, Dv } = plan;
  const lead = q.shape.slice(0, -2);
  const output: AttentionResult = { output: { data, shape: [...lead, Nq, Dv] } };
  if (result.weights) output.weights = { data: result.weights, shape: [...lead, Nq, Nk] };
  if (result.lse) output.lse = { data: result.lse, shape: [...lead, Nq] };
  return output;
}

// Everything a call needs, validated; `empty` is the whole result when the output is empty.
function planSdpa(
  op: string,
  qIn: TensorInput,
  kIn: TensorInput,
  vIn: TensorInput,
  options: unknown,
):
  | { empty: AttentionResult; plan?: undefined; out?: undefined; inputs?: undefined }
  | { empty?: undefined; plan: AttentionPlan; out?: Out; inputs: SdpaInputs } {
  const k0 = kernels(op);
  const { q, k, v, dims } = readAttentionInputs(op, qIn, kIn, vIn);
  const { B, H, Nq, Dv } = dims;
  const given = readOptions<ScaledDotProductAttentionOptions>(op, options, SDPA_OPTION_KEYS);
  const { out: outGiven, ...attention } = given;
  const plan = planAttention(op, dims, attention);
  let out: Out | undefined;
  if (outGiven !== undefined) {
    const outShape = formatShape([...q.shape.slice(0, -2), Nq, Dv]);
    const inputs = [
      ["q", q],
      ["k", k],
      ["v", v],
    ] as const;
    out = checkOut(op, outGiven, B * H * Nq * Dv, outShape, inputs, k0);
  }
  if (B * H * Nq === 0) {
    return {
      empty: attentionResult(q, plan, out ? out.array : new Float32Array(0), emptyResults(plan)),
    };
  }
  return { plan, out, inputs: { q, k, v } };
}
