// softmax(x, { axis }) on the vector exp of the kernels (assembly/softmax.ts).

import { stagedBytes, withCall } from "./call.js";
import { AttentionError, formatShape } from "./errors.js";
import { product } from "./shapes.js";
import { optionKeys } from "./option-keys.js";
import {
  asTensor,
  checkOptionsObject,
  checkTensor,
  describe,
  type Tensor,
  type TensorInput,
} from "./tensor.js";
import { Workspace } from "./workspace.js";

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
export function softmax(x: TensorInput, options: SoftmaxOptions = {}): Tensor {
  x = asTensor(OP, "x", x);
  checkTensor(OP, "x", x, ["float32"]);
  checkOptionsObject(OP, options, SOFTMAX_KEYS);
  const rank = x.shape.length;
  const axisOption = options.axis ?? -1;
  if (
    !Number.isInteger(axisOption) ||
    axisOption < -Math.max(rank, 1) ||
    axisOption >= Math.max(rank, 1)
  ) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: axis must be an integer in [${-rank}, ${rank - 1}] for x of shape ${formatShape(x.shape)}, got ${describe(options.axis)}`,
    );
  }
  const n = x.data.length;
  if (
    options.out !== undefined &&
    (!(options.out instanceof Float32Array) || options.out.length !== n)
  ) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${OP}: out must be a Float32Array of ${n} elements (shape ${formatShape(x.shape)}), got ${describe(options.out)}`,
    );
  }
  const shape = [...x.shape];
  if (rank === 0) return { data: options.out ?? new Float32Array([1]), shape };
  const axis = axisOption < 0 ? axisOption + rank : axisOption;
  const outer = product(x.shape.slice(0, axis));
  const len = x.shape[axis];
  const inner = product(x.shape.slice(axis + 1));
  return withCall(
    OP,
    (kernels) => stagedBytes(x, kernels) + Workspace.blockSize(n * 4),
    (call) => {
      const src = call.inputF32(x, "x");
      const dst = call.alloc(n * 4, "output");
      if (n > 0) call.kernels.exports.softmaxForward(src, dst, outer, len, inner);
      return { data: call.outputF32(dst, n, options.out), shape };
    },
  );
}
