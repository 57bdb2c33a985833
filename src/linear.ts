// linear(x, w, b): y = x·Wᵀ + b on the packed SIMD GEMM (assembly/gemm.ts).

import { type Call, stagedBytes, withCall, withCallAsync } from "./call.js";
import { gemmRowsAsync, runAsync } from "./parallel.js";
import { runSteps, type Steps } from "./steps.js";
import type { Kernels } from "./runtime.js";
import { AttentionError, formatShape } from "./errors.js";
import { product } from "./shapes.js";
import { asTensor, checkTensor, describe, type Tensor, type TensorInput } from "./tensor.js";
import { Workspace } from "./workspace.js";

const OP = "linear";

/**
 * y = x·Wᵀ + b, as PyTorch's `nn.Linear`: x [..., in], W [out, in] row-major (a bare Float32Array
 * of out·in elements, or a Tensor of shape [out, in]), b [out] → y [..., out].
 */
export function linear(x: TensorInput, w: Float32Array | TensorInput, b?: Float32Array): Tensor {
  x = asTensor(OP, "x", x);
  const p = planLinear(OP, x, w, b);
  return withCall(
    OP,
    (k) => linearBytes(k, x, p),
    (call) => {
      const xPtr = call.inputF32(x, "x");
      const biasPtr = b ? call.inputF32({ data: b, shape: [p.outFeatures] }, "b") : 0;
      const yPtr = project(call, xPtr, p.rows, p.weights, biasPtr);
      return { data: call.outputF32(yPtr, p.rows * p.outFeatures), shape: p.shape };
    },
  );
}

/**
 * linear that never blocks the calling thread: with a worker pool (`init({ threads })`) the
 * weights are packed and the rows computed by the workers. Without a pool it computes on the
 * calling thread. Bad arguments reject with the same AttentionError.
 */
export async function linearAsync(
  x: TensorInput,
  w: Float32Array | TensorInput,
  b?: Float32Array,
): Promise<Tensor> {
  const op = `${OP}Async`;
  x = asTensor(op, "x", x);
  const p = planLinear(op, x, w, b);
  return withCallAsync(
    op,
    (k) => linearBytes(k, x, p),
    async (call) => {
      const { exports } = call.kernels;
      const { rows, inFeatures, outFeatures } = p;
      const xPtr = call.inputF32(x, "x");
      const biasPtr = b ? call.inputF32({ data: b, shape: [outFeatures] }, "b") : 0;
      const wPtr = call.inputF32(p.weights, "weights");
      const packed = call.alloc(
        exports.packedWeightsBytes(outFeatures, inFeatures),
        "packed weights",
      );
      await runAsync(call, [
        { fn: "packWeights", args: [wPtr, outFeatures, inFeatures, inFeatures, packed] },
      ]);
      const yPtr = call.alloc(rows * outFeatures * 4, "projection");
      await gemmRowsAsync(call, {
        x: xPtr,
        m: rows,
        k: inFeatures,
        ldx: inFeatures,
        packed,
        n: outFeatures,
        bias: biasPtr,
        y: yPtr,
        ldy: outFeatures,
      });
      return { data: call.outputF32(yPtr, rows * outFeatures), shape: p.shape };
    },
  );
}

interface LinearPlan {
  weights: Tensor;
  rows: number;
  inFeatures: number;
  outFeatures: number;
  shape: number[];
  bias: boolean;
}

function planLinear(
  op: string,
  x: Tensor,
  w: Float32Array | TensorInput,
  b?: Float32Array,
): LinearPlan {
  checkTensor(op, "x", x, ["float32"]);
  if (x.shape.length < 1) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: x must have rank >= 1 [..., in], got shape []`,
    );
  }
  const inFeatures = x.shape[x.shape.length - 1];
  const weights = weightTensor(op, "w", w, inFeatures);
  const outFeatures = weights.shape[0];
  if (b !== undefined) {
    if (!(b instanceof Float32Array)) {
      throw new AttentionError("BAD_DTYPE", `${op}: b must be a Float32Array, got ${describe(b)}`);
    }
    if (b.length !== outFeatures) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: b has shape [${b.length}] but must be [out] = [${outFeatures}]`,
      );
    }
  }
  const rows = product(x.shape.slice(0, -1));
  return {
    weights,
    rows,
    inFeatures,
    outFeatures,
    shape: [...x.shape.slice(0, -1), outFeatures],
    bias: b !== undefined,
  };
}

function linearBytes(k: Kernels, x: Tensor, p: LinearPlan): number {
  return (
    stagedBytes(x, k) +
    projectionBytes(k, p.weights, p.rows) +
    (p.bias ? Workspace.blockSize(p.outFeatures * 4) : 0)
  );
}

/** Workspace bytes `project` takes for `rows` rows through `weight` [out, in]. */
export function projectionBytes(k: Kernels, weight: Tensor, rows: number): number {
  const [outFeatures, inFeatures] = weight.shape;
  return (
    stagedBytes(weight, k) +
    Workspace.blockSize(k.exports.packedWeightsBytes(outFeatures, inFeatures)) +
    Workspace.blockSize(rows * outFeatures * 4) +
    (k.pool?.size ?? 1) * Workspace.blockSize(k.exports.gemmScratchBytes())
  );
}

/**
 * Inside a call: y [rows, out] = x [rows, in] (at xPtr) · Wᵀ + bias (at biasPtr, 0 for none), with
 * `weight` [out, in] packed for the GEMM on the way. Returns y's address.
 */
export function project(
  call: Call,
  xPtr: number,
  rows: number,
  weight: Tensor,
  biasPtr: number,
): number {
  return runSteps(call, projectSteps(call, xPtr, rows, weight, biasPtr));
}

/** `project` as steps (src/steps.ts): packs the weights, yields the GEMM, returns y's address. */
export function* projectSteps(
  call: Call,
  xPtr: number,
  rows: number,
  weight: Tensor,
  biasPtr: number,
): Steps<number> {
  const { exports } = call.kernels;
  const [outFeatures, inFeatures] = weight.shape;
  const wPtr = call.inputF32(weight, "weights");
  const packed = call.alloc(exports.packedWeightsBytes(outFeatures, inFeatures), "packed weights");
  exports.packWeights(wPtr, outFeatures, inFeatures, inFeatures, packed);
  const yPtr = call.alloc(rows * outFeatures * 4, "projection");
  yield {
    gemm: {
      x: xPtr,
      m: rows,
      k: inFeatures,
      ldx: inFeatures,
      packed,
      n: outFeatures,
      bias: biasPtr,
      y: yPtr,
      ldy: outFeatures,
    },
  };
  return yPtr;
}

/** A weight matrix [out, in] given as a bare Float32Array (out·in elements) or a Tensor. */
export function weightTensor(
  op: string,
  name: string,
  given: Float32Array | TensorInput,
  inFeatures: number,
  outFeatures?: number,
): Tensor {
  const w = given instanceof Float32Array ? given : asTensor(op, name, given);
  if (w instanceof Float32Array) {
    const out = outFeatures ?? (inFeatures > 0 ? w.length / inFeatures : 0);
    if (
      !Number.isInteger(out) ||
      w.length !== out * inFeatures ||
      (inFeatures === 0 && w.length !== 0)
    ) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: ${name} has ${w.length} elements but must be [out, in] = [${outFeatures ?? "out"},${inFeatures}] ` +
          `(${outFeatures !== undefined ? outFeatures * inFeatures : `a multiple of ${inFeatures}`} elements)`,
      );
    }
    return { data: w, shape: [out, inFeatures] };
  }
  if (ArrayBuffer.isView(w) || Array.isArray(w)) {
    throw new AttentionError(
      "BAD_DTYPE",
      `${op}: ${name} must be a Float32Array or a float32 tensor, got ${describe(w)}`,
    );
  }
  checkTensor(op, name, w, ["float32"]);
  const want = [outFeatures ?? w.shape[0], inFeatures];
  if (
    w.shape.length !== 2 ||
    w.shape[1] !== inFeatures ||
    (outFeatures !== undefined && w.shape[0] !== outFeatures)
  ) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} has shape ${formatShape(w.shape)} but must be [out, in] = ${formatShape(want)}`,
    );
  }
  return w;
}
