// blockSparseAttention: attention restricted to the blocks a layout keeps. The attention kernel
// visits only key tiles that hold a kept block and, inside a tile, only the runs of kept blocks, so
// time falls with density. sparsePatterns builds the classic layouts.

import * as P from "../../../assembly/shared.js";
import { type Call, stagedBytes } from "../../runtime/call.js";
import { AttentionError, formatShape } from "../../core/errors.js";
import { attentionBytes } from "../../engine/run.js";
import { readAttentionInputs, planAttention } from "../../engine/plan.js";
import { contiguousOperand } from "../../engine/params.js";
import { type AttentionResult } from "../../engine/options.js";
import { kernels, type Kernels } from "../../runtime/runtime.js";
import {
  runPlanned,
  runPlannedAsync,
  type Planned,
  type AttentionStep,
  type Steps,
} from "../../engine/steps.js";
import { optionKeys } from "../../core/option-keys.js";
import { optBoolean, optFloat32, optInteger, readOptions } from "../../core/option-values.js";
import { MAX_DIM, readTensor, type Tensor, type TensorInput } from "../../core/tensor.js";
import { Workspace } from "../../runtime/workspace.js";
import { checkEmptyOutput } from "./common.js";

export interface BlockSparseOptions {
  /** uint8 [Nq/bs, Nk/bs] shared by all heads, or [H, Nq/bs, Nk/bs]; 1 = the block is computed. */
  layout: Tensor<Uint8Array>;
  /** bs: Nq and Nk must be multiples of it. */
  blockSize: number;
  scale?: number;
  /** Also keep only keys j <= i + Nk − Nq inside kept blocks. */
  causal?: boolean;
  returnWeights?: boolean;
}

const OP = "blockSparseAttention";
const BLOCK_SPARSE_KEYS = optionKeys<BlockSparseOptions>({
  layout: true,
  blockSize: true,
  scale: true,
  causal: true,
  returnWeights: true,
});

/**
 * Scaled dot-product attention where query block r attends key block c only if layout[r][c] is 1.
 * q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv] as in scaledDotProductAttention. Rows whose
 * blocks are all dropped output zeros.
 */
export function blockSparseAttention(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options: BlockSparseOptions,
): AttentionResult {
  const plan = planBlockSparse(OP, q, k, v, options);
  return runPlanned(OP, plan);
}

/** blockSparseAttention that never blocks the calling thread (the pool's workers compute it). */
export async function blockSparseAttentionAsync(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options: BlockSparseOptions,
): Promise<AttentionResult> {
  const op = `${OP}Async`;
  const plan = planBlockSparse(op, q, k, v, options);
  return runPlannedAsync(op, plan);
}

// Checks the arguments and plans the call: its workspace bytes and its steps.
function planBlockSparse(
  op: string,
  qIn: TensorInput,
  kIn: TensorInput,
  vIn: TensorInput,
  optionsIn: BlockSparseOptions,
): Planned<AttentionResult> {
  kernels(op); // NOT_INITIALIZED first
  const { q, k, v, dims } = readAttentionInputs(op, qIn, kIn, vIn);
  const options = readOptions<BlockSparseOptions>(op, optionsIn, BLOCK_SPARSE_KEYS);
  const bs = optInteger(op, "blockSize", options.blockSize, 1, MAX_DIM);
  if (bs === undefined) {
    throw new AttentionError("BAD_OPTION", `${op}: options.blockSize is missing (an integer >= 1)`);
  }
  const scale = optFloat32(op, "scale", options.scale);
  const causal = optBoolean(op, "causal", options.causal);
  const returnWeights = optBoolean(op, "returnWeights", options.returnWeights) ?? false;
  const { B, H, Hkv, Nq, Nk, D, Dv } = dims;
  if (Nq % bs !== 0 || Nk % bs !== 0) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: Nq = ${Nq} and Nk = ${Nk} must be multiples of blockSize ${bs}`,
    );
  }
  if (options.layout === undefined)
    throw new AttentionError("BAD_OPTION", `${op}: options.layout is missing`);
  const layout = readTensor<Uint8Array>(op, "layout", options.layout, ["uint8"]);
  const [rows, cols] = [Nq / bs, Nk / bs];
  const s = layout.shape;
  const shared = s.length === 2 && s[0] === rows && s[1] === cols;
  const perHead = s.length === 3 && s[0] === H && s[1] === rows && s[2] === cols;
  if (!shared && !perHead) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: layout has shape ${formatShape(s)} but must be [Nq/bs, Nk/bs] = ${formatShape([rows, cols])} ` +
        `or [H, Nq/bs, Nk/bs] = ${formatShape([H, rows, cols])}`,
    );
  }
  const lead = q.shape.slice(0, -2);
  if (B * H * Nq === 0 || Nk === 0) {
    checkEmptyOutput(op, B * H * Nq * Dv, formatShape([...lead, Nq, Dv]));
    // Nothing to compute (no keys: every row is fully masked, zeros): no kernel, no allocation.
    const empty: AttentionResult = {
      output: { data: new Float32Array(B * H * Nq * Dv), shape: [...lead, Nq, Dv] },
    };
    if (returnWeights) empty.weights = { data: new Float32Array(0), shape: [...lead, Nq, Nk] };
    return {
      bytes: () => 0,
      steps: function* () {
        return empty;
      },
    };
  }
  const plan = planAttention(op, dims, { scale, causal, returnWeights });
  const bytes = (kern: Kernels): number =>
    stagedBytes(q, kern) +
    stagedBytes(k, kern) +
    stagedBytes(v, kern) +
    stagedBytes(layout, kern) +
    Workspace.blockSize(B * H * Nq * Dv * 4) +
    Workspace.blockSize(P.SDPA_PARAMS_BYTES) + // the parameter block of an asynchronous call
    attentionBytes(kern, plan);
  const steps = function* (call: Call): Steps<AttentionResult> {
    const outPtr = call.alloc(B * H * Nq * Dv * 4, "output");
    const attention: AttentionStep = {
      plan,
      operands: {
        q: contiguousOperand(call.inputF32(q, "q"), H, Nq, D),
        k: contiguousOperand(call.inputF32(k, "k"), Hkv, Nk, D),
        v: contiguousOperand(call.inputF32(v, "v"), Hkv, Nk, Dv),
        out: contiguousOperand(outPtr, H, Nq, Dv),
        layout: {
          ptr: call.inputU8(layout, "layout"),
          block: bs,
          strideH: perHead ? rows * cols : 0,
          cols,
        },
      },
    };
    yield attention;
    const result = attention.result ?? {};
    const out: AttentionResult = {
      output: { data: call.outputF32(outPtr, B * H * Nq * Dv), shape: [...lead, Nq, Dv] },
    };
    if (result.weights) out.weights = { data: result.weights, shape: [...lead, Nq, Nk] };
    return out;
  };
  return { bytes, steps };
}
