// linear(x, w, b): y = x·Wᵀ + b on the packed SIMD GEMM (assembly/gemm.ts).

import { type Call, stagedBytes, withCall, withCallAsync } from "../runtime/call.js";
import { gemmRowsAsync, runAsync } from "../runtime/parallel.js";
import { runSteps, type Steps } from "../engine/steps.js";
import { kernels, type Kernels } from "../runtime/runtime.js";
import { AttentionError, formatShape } from "../core/errors.js";
import { product } from "../core/shapes.js";
import { describe, readTensor, type Tensor, type TensorInput } from "../core/tensor.js";
import { geometryOf, plainView, typedArrayName } from "../core/typed-arrays.js";
import { Workspace } from "../runtime/workspace.js";
import { GEMM_NR } from "../../assembly/shared.js";

const OP = "linear";

/**
 * y = x·Wᵀ + b, as PyTorch's `nn.Linear`: x [..., in], W [out, in] row-major (a bare Float32Array
 * of out·in elements, or a Tensor of shape [out, in]), b [out] → y [..., out].
 */
export function linear(x: TensorInput, w: Float32Array | TensorInput, b?: Float32Array): Tensor {
  kernels(OP);
  const p = planLinear(OP, x, w, b);
  if (p.empty) return { data: new Float32Array(0), shape: p.shape };
  return withCall(
    OP,
    (k) => linearBytes(k, p),
    (call) => {
      const xPtr = call.inputF32(p.x, "x");
      const biasPtr = p.bias ? call.inputF32(p.bias, "b") : 0;
      const yPtr =
        p.inFeatures === 0
          ? biasOnly(call, p, biasPtr)
          : project(call, xPtr, p.rows, p.weights, biasPtr);
      return { data: call.outputF32(yPtr, p.rows * p.outFeatures), shape: p.shape };
    },
  );
}

/**
 * linear that never blocks the calling thread: with a worker pool (`init({ threads })`) the
 * weights are packed and the rows computed by the workers. Without a pool it computes on the
 * calling thread. Bad arguments reject with the same AttentionError. The arguments are read (and
 * copied into WASM memory) before it returns: changing them afterwards does not change the result.
 */
export async function linearAsync(
  x: TensorInput,
  w: Float32Array | TensorInput,
  b?: Float32Array,
): Promise<Tensor> {
  const op = `${OP}Async`;
  kernels(op);
  const p = planLinear(op, x, w, b);
  // Nothing to compute: resolve at once, without the pool (which has no rows to split).
  if (p.empty) return { data: new Float32Array(0), shape: p.shape };
  return withCallAsync(
    op,
    (k) => linearBytes(k, p),
    async (call) => {
      const { rows, inFeatures, outFeatures } = p;
      const xPtr = call.inputF32(p.x, "x");
      const biasPtr = p.bias ? call.inputF32(p.bias, "b") : 0;
      if (inFeatures === 0) {
        const y = biasOnly(call, p, biasPtr);
        return { data: call.outputF32(y, rows * outFeatures), shape: p.shape };
      }
      const wPtr = call.inputF32(p.weights, "weights");
      const packed = call.alloc(
        packedWeightsBytes(call.kernels, outFeatures, inFeatures),
        "packed weights",
      );
      const yPtr = call.alloc(rows * outFeatures * 4, "projection");
      // Everything is in WASM memory now: the caller's arrays are not read again.
      await runAsync(call, [
        { fn: "packWeights", args: [wPtr, outFeatures, inFeatures, inFeatures, packed] },
      ]);
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
  x: Tensor;
  weights: Tensor;
  bias: Tensor | undefined;
  rows: number;
  inFeatures: number;
  outFeatures: number;
  shape: number[];
  /** The output has no element: nothing to allocate or compute. */
  empty: boolean;
}

function planLinear(
  op: string,
  xIn: unknown,
  w: Float32Array | TensorInput,
  b?: Float32Array,
): LinearPlan {
  const x = readTensor<Float32Array>(op, "x", xIn, ["float32"]);
  if (x.shape.length < 1) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: x must have rank >= 1 [..., in], got shape []`,
    );
  }
  const inFeatures = x.shape[x.shape.length - 1];
  const weights = weightTensor(op, "w", w, inFeatures);
  const outFeatures = weights.shape[0];
  const bias =
    b === undefined || b === null ? undefined : readVector(op, "b", b, outFeatures, "[out]");
  const rows = product(x.shape.slice(0, -1));
  const shape = [...x.shape.slice(0, -1), outFeatures];
  return {
    x,
    weights,
    bias,
    rows,
    inFeatures,
    outFeatures,
    shape,
    empty: rows === 0 || outFeatures === 0,
  };
}

/**
 * A float32 vector argument of `length` elements (a genuine Float32Array, read through the built-in
 * accessors), as a tensor [length] over a plain view of the same memory.
 */
export function readVector(
  op: string,
  name: string,
  value: unknown,
  length: number,
  shapeText: string,
): Tensor {
  if (typedArrayName(value) !== "Float32Array") {
    throw new AttentionError(
      "BAD_DTYPE",
      `${op}: ${name} must be a Float32Array, got ${describe(value)}`,
    );
  }
  const g = geometryOf(value);
  if (g.detached) {
    throw new AttentionError(
      "BAD_DTYPE",
      `${op}: ${name}'s buffer is detached (transferred or resized away); pass a live array`,
    );
  }
  if (g.length !== length) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} has shape [${g.length}] but must be ${shapeText} = [${length}]`,
    );
  }
  return { data: plainView("Float32Array", value as Float32Array), shape: [length] };
}

// y [rows, out] = b broadcast (or zeros) when in = 0: the empty sum.
function biasOnly(call: Call, p: LinearPlan, biasPtr: number): number {
  const { rows, outFeatures } = p;
  const yPtr = call.alloc(rows * outFeatures * 4, "projection");
  const f32 = call.workspace.f32;
  const at = yPtr >>> 2;
  if (!biasPtr) f32.fill(0, at, at + rows * outFeatures);
  else {
    const bias = f32.slice(biasPtr >>> 2, (biasPtr >>> 2) + outFeatures);
    for (let r = 0; r < rows; r++) f32.set(bias, at + r * outFeatures);
  }
  return yPtr;
}

function linearBytes(k: Kernels, p: LinearPlan): number {
  const block = Workspace.blockSize;
  return (
    stagedBytes(p.x, k) +
    (p.inFeatures === 0
      ? block(p.rows * p.outFeatures * 4)
      : projectionBytes(k, p.weights, p.rows)) +
    (p.bias ? stagedBytes(p.bias, k) : 0)
  );
}

/**
 * Bytes of W [n, k] packed for the GEMM (assembly/gemm.ts packedWeightsBytes), computed in
 * JavaScript doubles: the export's 32-bit result would wrap for sizes past what wasm32 holds.
 */
export function packedWeightsBytes(k: Kernels, n: number, depth: number): number {
  if (k.build === "scalar") return n * depth * 4;
  return Math.ceil(n / GEMM_NR) * GEMM_NR * depth * 4;
}

/** Workspace bytes `project` takes for `rows` rows through `weight` [out, in]. */
export function projectionBytes(k: Kernels, weight: Tensor, rows: number): number {
  const [outFeatures, inFeatures] = weight.shape;
  return (
    stagedBytes(weight, k) +
    Workspace.blockSize(packedWeightsBytes(k, outFeatures, inFeatures)) +
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

/** `project` as steps (src/runtime/steps.ts): packs the weights, yields the GEMM, returns y's address. */
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
  const packed = call.alloc(
    packedWeightsBytes(call.kernels, outFeatures, inFeatures),
    "packed weights",
  );
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

/**
 * A weight matrix [out, in] given as a bare Float32Array (out·in elements) or a Tensor: a validated
 * snapshot (a genuine Float32Array re-viewed as a plain one; a tensor through readTensor).
 */
export function weightTensor(
  op: string,
  name: string,
  given: Float32Array | TensorInput,
  inFeatures: number,
  outFeatures?: number,
): Tensor {
  const kind = typedArrayName(given);
  if (kind === "Float32Array") {
    const g = geometryOf(given);
    if (g.detached) {
      throw new AttentionError(
        "BAD_DTYPE",
        `${op}: ${name}'s buffer is detached (transferred or resized away); pass a live array`,
      );
    }
    const length = g.length;
    const out = outFeatures ?? (inFeatures > 0 ? length / inFeatures : 0);
    if (
      !Number.isInteger(out) ||
      length !== out * inFeatures ||
      (inFeatures === 0 && length !== 0)
    ) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: ${name} has ${length} elements but must be [out, in] = [${outFeatures ?? "out"},${inFeatures}] ` +
          `(${outFeatures !== undefined ? outFeatures * inFeatures : `a multiple of ${inFeatures}`} elements)`,
      );
    }
    return {
      data: plainView("Float32Array", given as Float32Array),
      shape: Object.freeze([out, inFeatures]),
    };
  }
  if (
    kind !== undefined ||
    Array.isArray(given) ||
    typeof given !== "object" ||
    given === null ||
    !("data" in given)
  ) {
    throw new AttentionError(
      "BAD_DTYPE",
      `${op}: ${name} must be a Float32Array or a float32 tensor, got ${describe(given)}`,
    );
  }
  const w = readTensor<Float32Array>(op, name, given, ["float32"]);
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
