// What the 3-D attention ops (additive, bilinear, cosine, hybrid) share: shapes, parameters, masks,
// and the final softmax(scores)·V, which runs on the one attention kernel (runAttention) with one
// head: the ops only prepare the query and key features it multiplies, or a score matrix it adds.

import * as P from "../../../assembly/shared.js";
import { type Call } from "../../runtime/call.js";
import { AttentionError, formatShape } from "../../core/errors.js";
import { weightTensor } from "../linear.js";
import { kernels, type Kernels } from "../../runtime/runtime.js";
import { attentionBytes } from "../../engine/run.js";
import { planAttention, type AttentionPlan } from "../../engine/plan.js";
import type { AttentionStep, Steps } from "../../engine/steps.js";
import { broadcastStrides, checkHeadDim } from "../../core/shapes.js";
import { checkMisspelledKeys, optionKeys } from "../../core/option-keys.js";
import { optBoolean, readKeys } from "../../core/option-values.js";
import { describe, readTensor, type Tensor } from "../../core/tensor.js";
import { geometryOf, plainView, typedArrayName } from "../../core/typed-arrays.js";
import { formatBytes, Workspace } from "../../runtime/workspace.js";

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

/**
 * Reads q [B,Nq,Dq], k [B,Nk,Dk], v [B,Nk,Dv] (rank 3, or rank 2 meaning B = 1) into validated
 * snapshots and returns them with the sizes. Feature sizes must be in [1, MAX_HEAD_DIM] (the
 * kernels tile over them).
 */
export function familyInputs(
  op: string,
  qIn: unknown,
  kIn: unknown,
  vIn: unknown,
): { q: Tensor; k: Tensor; v: Tensor; d: FamilyDims } {
  const q = readTensor<Float32Array>(op, "q", qIn, ["float32"]);
  const k = readTensor<Float32Array>(op, "k", kIn, ["float32"]);
  const v = readTensor<Float32Array>(op, "v", vIn, ["float32"]);
  const dims = (name: string, t: Tensor): [number, number, number] => {
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
  checkHeadDim(op, "q", q.shape, "feature size Dq", Dq);
  checkHeadDim(op, "k", k.shape, "feature size Dk", Dk);
  checkHeadDim(op, "v", v.shape, "value size Dv", Dv);
  return { q, k, v, d: { B, Nq, Nk, Dq, Dk, Dv, lead: q.shape.slice(0, -2) } };
}

/**
 * A float32 parameter given as a bare Float32Array or a tensor, read once into a validated snapshot
 * (a plain view of a genuine, live Float32Array; with `copy`, a copy, so that the caller may reuse
 * or detach its buffer once the call has returned its promise).
 */
function parameterTensor(
  op: string,
  name: string,
  x: unknown,
  copy: boolean,
): Float32Array | Tensor {
  let value: Float32Array | Tensor;
  const kind = typedArrayName(x);
  if (kind !== undefined) {
    if (kind !== "Float32Array") {
      throw new AttentionError(
        "BAD_DTYPE",
        `${op}: ${name} must be a Float32Array or a float32 tensor, got ${describe(x)}`,
      );
    }
    // Where ArrayBuffer.prototype.detached is missing (Node 20), viewing a detached buffer throws.
    let view: Float32Array | undefined;
    try {
      if (!geometryOf(x).detached) view = plainView("Float32Array", x as Float32Array);
    } catch {
      view = undefined;
    }
    if (view === undefined) {
      throw new AttentionError(
        "BAD_DTYPE",
        `${op}: ${name}'s buffer is detached (transferred or resized away); pass a live array`,
      );
    }
    value = view;
    if (copy) value = value.slice();
  } else {
    if (Array.isArray(x)) {
      throw new AttentionError(
        "BAD_DTYPE",
        `${op}: ${name} must be a Float32Array or a float32 tensor, got ${describe(x)}`,
      );
    }
    const t = readTensor<Float32Array>(op, name, x, ["float32"]);
    value = copy ? { data: t.data.slice(), shape: t.shape } : t;
  }
  return value;
}

/** A parameter matrix [rows, cols] (bare Float32Array or tensor), snapshot as parameterTensor. */
export function parameterMatrix(
  op: string,
  name: string,
  m: unknown,
  rows: number | undefined,
  cols: number,
  copy = false,
): Tensor {
  if (m === undefined) {
    throw new AttentionError("BAD_OPTION", `${op}: ${name} [${rows ?? "rows"},${cols}] is missing`);
  }
  const w = weightTensor(op, name, parameterTensor(op, name, m, copy), cols, rows);
  // Its rows are the hidden units the kernels loop over.
  checkHeadDim(op, name, w.shape, "row count", w.shape[0]);
  return w;
}

/** A parameter vector [n] (bare Float32Array or rank-1 tensor), snapshot as parameterTensor. */
export function parameterVector(
  op: string,
  name: string,
  x: unknown,
  n: number,
  copy = false,
): Float32Array {
  if (x === undefined) throw new AttentionError("BAD_OPTION", `${op}: ${name} [${n}] is missing`);
  const value = parameterTensor(op, name, x, copy);
  const data = value instanceof Float32Array ? value : value.data;
  const shape = value instanceof Float32Array ? [value.length] : value.shape;
  if (shape.length !== 1 || shape[0] !== n || data.length !== n) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} has shape ${formatShape(shape)} but must be [${n}]`,
    );
  }
  return data;
}

/** The read options of a 3-D op: a snapshot, the mask a validated tensor snapshot. */
export interface CheckedFamilyOptions {
  mask?: Tensor<Uint8Array> | Tensor<Float32Array>;
  returnWeights: boolean;
}

/** Reads the options of a 3-D op (a snapshot from readOptions) and checks the mask against d. */
export function checkFamilyOptions(
  op: string,
  options: Partial<FamilyOptions>,
  d: FamilyDims,
): CheckedFamilyOptions {
  const returnWeights = optBoolean(op, "returnWeights", options.returnWeights) ?? false;
  if (options.mask === undefined) return { returnWeights };
  const mask = readTensor<Uint8Array | Float32Array>(op, "mask", options.mask, [
    "uint8",
    "float32",
  ]) as Tensor<Uint8Array> | Tensor<Float32Array>;
  broadcastStrides(op, "mask", mask.shape, [d.B, d.Nq, d.Nk], "[B,Nq,Nk]");
  return { mask, returnWeights };
}

/**
 * The plan of the final softmax(q'·k'ᵀ·scale + mask)·V over features of size `features`; the mask
 * (if any) is staged by the op and given to the kernel as an operand.
 */
export function familyPlan(
  op: string,
  d: FamilyDims,
  features: number,
  scale: number,
  options: CheckedFamilyOptions,
): AttentionPlan {
  return planAttention(
    op,
    { B: d.B, H: 1, Hkv: 1, Nq: d.Nq, Nk: d.Nk, D: features, Dv: d.Dv },
    { scale, returnWeights: options.returnWeights },
  );
}

/**
 * The result of a call with nothing to compute: an empty output (B·Nq = 0), or, with no keys
 * (Nk = 0), every row fully masked: zeros, and empty weights [B, Nq, 0].
 */
export function emptyFamilyResult(op: string, d: FamilyDims, returnWeights: boolean): FamilyResult {
  checkEmptyOutput(op, d.B * d.Nq * d.Dv, formatShape([...d.lead, d.Nq, d.Dv]));
  const result: FamilyResult = {
    output: { data: new Float32Array(d.B * d.Nq * d.Dv), shape: [...d.lead, d.Nq, d.Dv] },
  };
  if (returnWeights) {
    result.weights = {
      data: new Float32Array(d.B * d.Nq * d.Nk),
      shape: [...d.lead, d.Nq, d.Nk],
    };
  }
  return result;
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
 * v [B,Nk,Dv] at vPtr; `mask` is a mask (or additive score matrix) already in WASM memory, with
 * the kernel's [B,H,Nq,Nk] strides. Steps (src/runtime/steps.ts): yields the attention call.
 */
export function* familyAttend(
  call: Call,
  plan: AttentionPlan,
  d: FamilyDims,
  qPtr: number,
  kPtr: number,
  vPtr: number,
  mask?: { ptr: number; kind: number; strides: readonly number[] },
): Steps<FamilyResult> {
  const F = plan.D;
  const outPtr = call.alloc(d.B * d.Nq * d.Dv * 4, "output");
  const attention: AttentionStep = {
    plan,
    operands: {
      q: { ptr: qPtr, strideB: d.Nq * F, strideH: 0, strideRow: F },
      k: { ptr: kPtr, strideB: d.Nk * F, strideH: 0, strideRow: F },
      v: { ptr: vPtr, strideB: d.Nk * d.Dv, strideH: 0, strideRow: d.Dv },
      out: { ptr: outPtr, strideB: d.Nq * d.Dv, strideH: 0, strideRow: d.Dv },
      mask,
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

/**
 * A snapshot of a bag of parameters (an op's params, a hybrid term): `value` must be an object;
 * keys near one of `keys` but not in it are BAD_OPTION (bags may carry other ops' parameters), and
 * each of `keys` is read once (`null` or `undefined` meaning absent).
 */
export function readBag(
  op: string,
  what: string,
  value: unknown,
  keys: readonly string[],
): Record<string, unknown> {
  if (
    typeof value !== "object" ||
    value === null ||
    Array.isArray(value) ||
    ArrayBuffer.isView(value)
  ) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: ${what} must be an object, got ${describe(value)}`,
    );
  }
  checkMisspelledKeys(op, what, value, keys);
  return readKeys(op, what, value, keys);
}

/**
 * Throws OUT_OF_MEMORY unless an output of `floats` float32s, which a call with nothing to compute
 * returns as zeros without the kernels, could exist: as much as the same call would be refused for
 * if it ran (its output passes through WASM memory).
 */
export function checkEmptyOutput(op: string, floats: number, shapeText: string): void {
  const { workspace } = kernels(op);
  const available = workspace.bytesAvailable();
  if (floats * 4 <= available) return;
  throw new AttentionError(
    "OUT_OF_MEMORY",
    `${op}: the output ${shapeText} needs ${formatBytes(floats * 4)} but only ${formatBytes(available)} ` +
      `can be provided within the 4 GiB wasm32 limit`,
  );
}
