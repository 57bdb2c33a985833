// What the 3-D attention ops (additive, bilinear, cosine, hybrid) share: shapes, parameters, masks,
// and the final softmax(scores)·V, which runs on the one attention kernel (runAttention) with one
// head: the ops only prepare the query and key features it multiplies, or a score matrix it adds.

import * as P from "../../assembly/shared.js";
import { type Call } from "../call.js";
import { AttentionError, formatShape } from "../errors.js";
import { weightTensor } from "../linear.js";
import { type Kernels } from "../runtime.js";
import { attentionBytes, planAttention, type AttentionPlan } from "../sdpa.js";
import type { AttentionStep, Steps } from "../steps.js";
import { broadcastStrides } from "../shapes.js";
import { optionKeys } from "../option-keys.js";
import {
  asTensor,
  checkOptionsObject,
  checkTensor,
  describe,
  type Tensor,
  type TensorInput,
} from "../tensor.js";
import { Workspace } from "../workspace.js";

/** A matrix parameter: a bare row-major Float32Array or a tensor. */
export type Matrix = Float32Array | Tensor;

/** A vector parameter: a bare Float32Array or a rank-1 tensor. */
export type Vector = Float32Array | Tensor;

/** Options shared by the 3-D attention ops. */
export interface FamilyOptions {
  /** Boolean (1 = attend) or additive, broadcasting to [B, Nq, Nk]. */
  mask?: Tensor<Uint8Array> | Tensor<Float32Array>;
  /** Also return the probabilities [B, Nq, Nk]. */
  returnWeights?: boolean;
}

/** Options of cosineAttention: those of the family, and the temperature. */
export type CosineOptions = FamilyOptions & { temperature?: number };

/** The keys of {@link FamilyOptions} (additive, bilinear and hybrid attention). */
export const FAMILY_OPTION_KEYS = optionKeys<FamilyOptions>({ mask: true, returnWeights: true });
/** The keys of {@link CosineOptions}. */
export const COSINE_OPTION_KEYS = optionKeys<CosineOptions>({
  mask: true,
  returnWeights: true,
  temperature: true,
});

/** What the 3-D ops return: output [B, Nq, Dv] (the rank of q), weights [B, Nq, Nk]. */
export interface FamilyResult {
  output: Tensor;
  weights?: Tensor;
}

export interface FamilyDims {
  B: number;
  Nq: number;
  Nk: number;
  Dq: number;
  Dk: number;
  Dv: number;
  /** Leading dims of q before [Nq, Dq] ([] or [B]). */
  lead: number[];
}

/** Checks q [B,Nq,Dq], k [B,Nk,Dk], v [B,Nk,Dv] (rank 3, or rank 2 meaning B = 1). */
export function familyDims(op: string, q: Tensor, k: Tensor, v: Tensor): FamilyDims {
  const dims = (name: string, t: Tensor): [number, number, number] => {
    checkTensor(op, name, t, ["float32"]);
    const s = t.shape;
    if (s.length === 3) return [s[0], s[1], s[2]];
    if (s.length === 2) return [1, s[0], s[1]];
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} must have rank 3 [B,N,D] or 2 [N,D], got shape ${formatShape(s)}`,
    );
  };
  const [B, Nq, Dq] = dims("q", q);
  const [Bk, Nk, Dk] = dims("k", k);
  const [Bv, Nv, Dv] = dims("v", v);
  if (Bk !== B || Bv !== B || Nv !== Nk) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: q ${formatShape(q.shape)}, k ${formatShape(k.shape)} and v ${formatShape(v.shape)} ` +
        `must share the batch B, and k and v the length Nk`,
    );
  }
  if (Dq === 0 || Dk === 0 || Dv === 0) {
    throw new AttentionError("SHAPE_MISMATCH", `${op}: feature sizes must be at least 1`);
  }
  return { B, Nq, Nk, Dq, Dk, Dv, lead: q.shape.slice(0, -2) };
}

/** A parameter matrix [rows, cols] (bare Float32Array or tensor). */
export function parameterMatrix(
  op: string,
  name: string,
  m: unknown,
  rows: number | undefined,
  cols: number,
): Tensor {
  if (m === undefined) {
    throw new AttentionError("BAD_OPTION", `${op}: ${name} [${rows ?? "rows"},${cols}] is missing`);
  }
  return weightTensor(op, name, m as Float32Array | Tensor, cols, rows);
}

/** A parameter vector [n] (bare Float32Array or rank-1 tensor). */
export function parameterVector(op: string, name: string, x: unknown, n: number): Float32Array {
  if (x === undefined) throw new AttentionError("BAD_OPTION", `${op}: ${name} [${n}] is missing`);
  const tensor = x instanceof Float32Array ? undefined : asTensor(op, name, x as TensorInput);
  const data = x instanceof Float32Array ? x : tensor?.data;
  if (!(data instanceof Float32Array)) {
    throw new AttentionError(
      "BAD_DTYPE",
      `${op}: ${name} must be a Float32Array, got ${describe(x)}`,
    );
  }
  const shape = tensor ? tensor.shape : [data.length];
  if (shape.length !== 1 || shape[0] !== n || data.length !== n) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} has shape ${formatShape(shape)} but must be [${n}]`,
    );
  }
  return data;
}

/** Checks an options object of a 3-D op against the keys that op declares. */
export function checkFamilyOptions(
  op: string,
  options: unknown,
  keys: readonly string[],
): FamilyOptions {
  checkOptionsObject(op, options, keys);
  const { mask } = options as FamilyOptions;
  if (mask === undefined) return options as FamilyOptions;
  // ONNX Runtime's { data, dims } mask in the { data, shape } form.
  const tensor = asTensor(op, "mask", mask as TensorInput<Float32Array | Uint8Array>);
  return { ...options, mask: tensor as Tensor<Uint8Array> | Tensor<Float32Array> };
}

/**
 * The plan of the final softmax(q'·k'ᵀ·scale + mask)·V over features of size `features`, with the
 * user's mask (broadcasting to [B, Nq, Nk]) seen as [B, 1, Nq, Nk].
 */
export function familyPlan(
  op: string,
  d: FamilyDims,
  features: number,
  scale: number,
  options: FamilyOptions,
  userMask: boolean,
): AttentionPlan {
  // The mask is checked against [B, Nq, Nk] here whether it goes to the kernel or, with additive
  // terms, into their score matrix.
  const given = options.mask;
  let maskShape: number[] | undefined;
  if (given !== undefined) {
    checkTensor(op, "mask", given, ["uint8", "float32"]);
    broadcastStrides(op, "mask", given.shape, [d.B, d.Nq, d.Nk], "[B,Nq,Nk]");
    const s = given.shape;
    maskShape = s.length === 3 ? [s[0], 1, s[1], s[2]] : [...s];
  }
  const mask = userMask ? given : undefined;
  return planAttention(
    op,
    { B: d.B, H: 1, Hkv: 1, Nq: d.Nq, Nk: d.Nk, D: features, Dv: d.Dv },
    { mask, scale, returnWeights: options.returnWeights === true },
    mask ? maskShape : undefined,
  );
}

/** Workspace bytes of familyAttend beyond its inputs. */
export function familyBytes(k: Kernels, plan: AttentionPlan, d: FamilyDims): number {
  return (
    Workspace.blockSize(d.B * d.Nq * d.Dv * 4) +
    Workspace.blockSize(P.SDPA_PARAMS_BYTES) + // the parameter block of an asynchronous call
    attentionBytes(k, plan)
  );
}

/**
 * softmax(scale·q'·k'ᵀ + mask)·V with q' [B,Nq,F] at qPtr, k' [B,Nk,F] at kPtr (row-major) and
 * v staged from `v`; `scores` (an additive [B,Nq,Nk] matrix in WASM memory) replaces the plan's
 * mask when given. Steps (src/steps.ts): yields the attention call.
 */
export function* familyAttend(
  call: Call,
  plan: AttentionPlan,
  d: FamilyDims,
  qPtr: number,
  kPtr: number,
  v: Tensor,
  scores?: number,
): Steps<FamilyResult> {
  const F = plan.D;
  const vPtr = call.inputF32(v, "v");
  const outPtr = call.alloc(d.B * d.Nq * d.Dv * 4, "output");
  const attention: AttentionStep = {
    plan,
    operands: {
      q: { ptr: qPtr, strideB: d.Nq * F, strideH: 0, strideRow: F },
      k: { ptr: kPtr, strideB: d.Nk * F, strideH: 0, strideRow: F },
      v: { ptr: vPtr, strideB: d.Nk * d.Dv, strideH: 0, strideRow: d.Dv },
      out: { ptr: outPtr, strideB: d.Nq * d.Dv, strideH: 0, strideRow: d.Dv },
      mask:
        scores === undefined
          ? undefined
          : { ptr: scores, kind: P.MASK_ADDITIVE, strides: [d.Nq * d.Nk, 0, d.Nk, 1] },
    },
  };
  yield attention;
  const result = attention.result ?? {};
  const out: FamilyResult = {
    output: { data: call.outputF32(outPtr, d.B * d.Nq * d.Dv), shape: [...d.lead, d.Nq, d.Dv] },
  };
  if (result.weights) out.weights = { data: result.weights, shape: [...d.lead, d.Nq, d.Nk] };
  return out;
}

/** A zero-filled [rows, 1] feature buffer, for ops whose scores come only from a score matrix. */
export function zeroFeatures(call: Call, rows: number): number {
  const ptr = call.alloc(rows * 4, "zero features");
  call.workspace.f32.fill(0, ptr >>> 2, (ptr >>> 2) + rows);
  return ptr;
}
