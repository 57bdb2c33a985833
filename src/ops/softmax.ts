// softmax(x, { axis }) on the vector exp of the kernels (assembly/softmax.ts).

import { checkOut, stagedBytes, withCall } from "../runtime/call.js";
import { AttentionError, formatShape } from "../core/errors.js";
import { product } from "../core/shapes.js";
import { optionKeys } from "../core/option-keys.js";
import { readOptions } from "../core/option-values.js";
import { kernels } from "../runtime/runtime.js";
import { describe, readTensor, type Tensor, type TensorInput } from "../core/tensor.js";
import { Workspace } from "../runtime/workspace.js";

const OP = "softmax";

/** Options of {@link softmax}. */
export interface SoftmaxOptions {
  /** The axis to normalise along; default -1 (the last). */
  axis?: number;
  /** Write the result here (x's length) instead of a fresh array. */
  out?: Float32Array;
}

const SOFTMAX_KEYS = optionKeys<SoftmaxOptions>({ axis: true, out: true });

/**
 * Numerically stable softmax along `axis` (default -1, the last). Only -Infinity counts as masked:
 * a line of all -Infinity gives zeros, never NaN.
 */
export function softmax(x: TensorInput, options?: SoftmaxOptions): Tensor {
  const k = kernels(OP);
  const input = readTensor<Float32Array>(OP, "x", x, ["float32"]);
  const { axis: axisOption = -1, out: outOption } = readOptions<SoftmaxOptions>(
    OP,
    options,
    SOFTMAX_KEYS,
  );
  const rank = input.shape.length;
  const lines = Math.max(rank, 1);
  if (!Number.isInteger(axisOption) || axisOption < -lines || axisOption >= lines) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: axis must be an integer in [${-lines}, ${lines - 1}] for x of shape ${formatShape(input.shape)}, got ${describe(axisOption)}`,
    );
  }
  const n = input.data.length;
  const shape = [...input.shape];
  const out =
    outOption === undefined
      ? undefined
      : checkOut(OP, outOption, n, formatShape(shape), [["x", input]], k);
  // A scalar is a line of one element (softmax of [] is [1]), like a last dim of 1.
  const axis = rank === 0 ? 0 : axisOption < 0 ? axisOption + rank : axisOption;
  const dims = rank === 0 ? [1] : shape;
  const outer = product(dims.slice(0, axis));
  const len = dims[axis];
  const inner = product(dims.slice(axis + 1));
  return withCall(
    OP,
    (kernels) => stagedBytes(input, kernels) + Workspace.blockSize(n * 4),
    (call) => {
      const src = call.inputF32(input, "x");
      const dst = call.alloc(n * 4, "output");
      if (n > 0) call.kernels.exports.softmaxForward(src, dst, outer, len, inner);
      return { data: call.outputF32(dst, n, out), shape };
    },
  );
}
