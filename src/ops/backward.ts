// scaledDotProductAttentionBackward: the gradients of attention for training, recomputing the
// probabilities tile by tile from the forward pass's lse (assembly/sdpa-backward.ts).

import { type Call, stagedBytes } from "../runtime/call.js";
import { AttentionError, formatShape } from "../core/errors.js";
import { readAttentionInputs, planAttention } from "../engine/plan.js";
import { contiguousOperand, setUpAttention } from "../engine/params.js";
import { SDPA_OPTION_KEYS, type AttentionOptions } from "../engine/options.js";
import { readTensor, type Tensor, type TensorInput } from "../core/tensor.js";
import { optBoolean, readOptions } from "../core/option-values.js";
import { checkHeadDim, MAX_HEAD_DIM, product } from "../core/shapes.js";
import { plainView, typedArrayName } from "../core/typed-arrays.js";
import { linear, weightTensor } from "./linear.js";
import { Workspace } from "../runtime/workspace.js";
import { kernels, type Kernels } from "../runtime/runtime.js";
import { runPlanned, runPlannedAsync, type Planned, type Steps } from "../engine/steps.js";
import type { Task } from "../runtime/threads.js";
import { SDPA_PARAMS_BYTES } from "../../assembly/shared.js";

const OP = "scaledDotProductAttentionBackward";

/** The forward pass's options, and its lse (`returnLse: true`). */
export type BackwardOptions = AttentionOptions & { lse: Tensor };

/** The keys of {@link BackwardOptions}: the forward pass's options and lse. */
const BACKWARD_OPTION_KEYS = [...SDPA_OPTION_KEYS.filter((key) => key !== "out"), "lse"];

/** What the attention backward returns: gradients shaped like q, k and v. */
export interface AttentionGradients {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

/**
 * Gradients of L = Σ output ⊙ gradOutput with respect to q, k and v, for the forward call with the
 * same inputs and options: dq has q's shape, dk k's and dv v's (with grouped-query heads, dk and dv
 * sum over the query heads of each group). `output` is the forward output and `options.lse` its
 * lse. A fully masked row contributes nothing. With a worker pool the (batch, kv-head) groups are
 * split across the threads.
 */
export function scaledDotProductAttentionBackward(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  output: TensorInput,
  gradOutput: TensorInput,
  options: BackwardOptions,
): AttentionGradients {
  const planned = planBackward(OP, q, k, v, output, gradOutput, options);
  return "zeros" in planned ? planned.zeros : runPlanned(OP, planned);
}

/**
 * scaledDotProductAttentionBackward that never blocks the calling thread: with a worker pool the
 * workers compute it (see `init({ threads })`); without one it runs on the calling thread. Bad
 * arguments reject (an async function: they never throw synchronously). Every input is read and
 * copied into WASM memory before the promise is returned.
 */
export async function scaledDotProductAttentionBackwardAsync(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  output: TensorInput,
  gradOutput: TensorInput,
  options: BackwardOptions,
): Promise<AttentionGradients> {
  const op = `${OP}Async`;
  const planned = planBackward(op, q, k, v, output, gradOutput, options);
  return "zeros" in planned ? planned.zeros : runPlannedAsync(op, planned);
}

// The checked call: its plan, or (no query row or no key: nothing to differentiate through) its
// gradients, all zeros, computed without touching WASM memory.
function planBackward(
  op: string,
  qIn: TensorInput,
  kIn: TensorInput,
  vIn: TensorInput,
  outputIn: TensorInput,
  gradOutputIn: TensorInput,
  options: BackwardOptions,
): Planned<AttentionGradients> | { zeros: AttentionGradients } {
  kernels(op);
  const { q, k, v, dims } = readAttentionInputs(op, qIn, kIn, vIn);
  const output = readTensor<Float32Array>(op, "output", outputIn, ["float32"]);
  const gradOutput = readTensor<Float32Array>(op, "gradOutput", gradOutputIn, ["float32"]);
  const { lse: lseGiven, ...forward } = readOptions<BackwardOptions>(
    op,
    options,
    BACKWARD_OPTION_KEYS,
  );
  const lse =
    lseGiven === undefined
      ? undefined
      : readTensor<Float32Array>(op, "options.lse", lseGiven, ["float32"]);
  // The forward's returnWeights and returnLse do not change the gradients, but are still checked.
  optBoolean(op, "returnWeights", forward.returnWeights);
  optBoolean(op, "returnLse", forward.returnLse);
  const plan = planAttention(op, dims, { ...forward, returnWeights: false, returnLse: false });
  const { B, H, Hkv, Nq, Nk, D, Dv } = dims;
  const lead = q.shape.slice(0, -2);
  const expect = (name: string, t: Tensor, shape: number[]): void => {
    if (t.shape.join() !== shape.join()) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: ${name} has shape ${formatShape(t.shape)} but must be ${formatShape(shape)}`,
      );
    }
  };
  expect("output", output, [...lead, Nq, Dv]);
  expect("gradOutput", gradOutput, [...lead, Nq, Dv]);
  if (lse === undefined) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: options.lse is missing (the forward pass's returnLse)`,
    );
  }
  expect("options.lse", lse, [...lead, Nq]);
  if (B * H * Nq * Nk === 0) {
    return {
      zeros: {
        dq: { data: new Float32Array(q.data.length), shape: [...q.shape] },
        dk: { data: new Float32Array(k.data.length), shape: [...k.shape] },
        dv: { data: new Float32Array(v.data.length), shape: [...v.shape] },
      },
    };
  }
  const block = Workspace.blockSize;
  const scratchBytes = (kern: Kernels): number => kern.exports.sdpaBackwardScratchBytes(D, Dv, Nk);
  const bytes = (kern: Kernels): number =>
    [q, k, v, output, gradOutput, lse].reduce((n, t) => n + stagedBytes(t, kern), 0) +
    block(q.data.byteLength) +
    block(k.data.byteLength) +
    block(v.data.byteLength) +
    block(SDPA_PARAMS_BYTES) +
    (kern.pool?.size ?? 1) * block(scratchBytes(kern)) +
    (plan.mask ? stagedBytes(plan.mask.tensor, kern) : 0) +
    block(H * 4) +
    block(Nk) +
    block(Nq);

  const steps = function* (call: Call): Steps<AttentionGradients> {
    const zeros = (n: number, what: string): number => {
      const ptr = call.alloc(n, what);
      call.workspace.u8.fill(0, ptr, ptr + n);
      return ptr;
    };
    const params = call.alloc(SDPA_PARAMS_BYTES, "parameters");
    setUpAttention(
      call,
      plan,
      {
        q: contiguousOperand(call.inputF32(q, "q"), H, Nq, D),
        k: contiguousOperand(call.inputF32(k, "k"), Hkv, Nk, D),
        v: contiguousOperand(call.inputF32(v, "v"), Hkv, Nk, Dv),
        out: contiguousOperand(call.inputF32(output, "output"), H, Nq, Dv),
      },
      params,
    );
    const grad = call.inputF32(gradOutput, "gradOutput");
    const lsePtr = call.inputF32(lse, "lse");
    const dq = zeros(q.data.byteLength, "dq");
    const dk = zeros(k.data.byteLength, "dk");
    const dv = zeros(v.data.byteLength, "dv");
    // A task owns whole (batch, kv-head) groups, heads b·H + kvh·group .. + group, so no two
    // threads add into the same rows of dk and dv.
    const group = H / Hkv;
    const units = B * Hkv;
    const tasks = (threads: number): Task[] => {
      const out: Task[] = [];
      for (let t = 0; t < threads; t++) {
        const begin = Math.floor((t * units) / threads) * group;
        const end = Math.floor(((t + 1) * units) / threads) * group;
        if (end <= begin) continue;
        const scratch = call.alloc(scratchBytes(call.kernels), "scratch");
        out.push({
          fn: "sdpaBackward",
          args: [params, scratch, grad, lsePtr, dq, dk, dv, begin, end],
        });
      }
      return out;
    };
    yield { split: { units, work: B * H * Nq * Nk * (2 * D + 3 * Dv), tasks } };
    return {
      dq: { data: call.outputF32(dq, B * H * Nq * D), shape: [...q.shape] },
      dk: { data: call.outputF32(dk, B * Hkv * Nk * D), shape: [...k.shape] },
      dv: { data: call.outputF32(dv, B * Hkv * Nk * Dv), shape: [...v.shape] },
    };
  };
  return { bytes, steps };
}

/**
 * Gradients of linear (y = x·Wᵀ + b) for the upstream gradient gradOutput [..., out]: dx [..., in]
 * = gradOutput·W, dw [out, in] = gradOutputᵀ·x, db [out] = the column sums of gradOutput. Both
 * products run on the SIMD GEMM. The feature dims `in` and `out` are in [1, 65536]; with no rows
 * (x [0, in]) dx is empty and dw, db are zeros.
 */
export function linearBackward(
  x: TensorInput,
  w: Float32Array | TensorInput,
  gradOutput: TensorInput,
): { dx: Tensor; dw: Tensor; db: Tensor } {
  const op = "linearBackward";
  kernels(op);
  const input = readTensor<Float32Array>(op, "x", x, ["float32"]);
  const grad = readTensor<Float32Array>(op, "gradOutput", gradOutput, ["float32"]);
  if (input.shape.length < 1) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: x must have rank >= 1 [..., in], got shape []`,
    );
  }
  const inFeatures = input.shape[input.shape.length - 1];
  checkHeadDim(op, "x", input.shape, "feature dim in", inFeatures);
  // A bare Float32Array is re-viewed as a plain one: its class or own properties cannot lie.
  const wGiven =
    typedArrayName(w) === "Float32Array" ? plainView("Float32Array", w as Float32Array) : w;
  const weights = weightTensor(op, "w", wGiven, inFeatures);
  const outFeatures = weights.shape[0];
  checkHeadDim(op, "w", weights.shape, "output features out", outFeatures);
  const rows = product(input.shape.slice(0, -1));
  const want = [...input.shape.slice(0, -1), outFeatures];
  if (grad.shape.join() !== want.join()) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: gradOutput has shape ${formatShape(grad.shape)} but must be ${formatShape(want)}`,
    );
  }
  const db = new Float32Array(outFeatures);
  if (rows === 0) {
    return {
      dx: { data: new Float32Array(0), shape: [...input.shape] },
      dw: { data: new Float32Array(outFeatures * inFeatures), shape: [outFeatures, inFeatures] },
      db: { data: db, shape: [outFeatures] },
    };
  }
  const transpose = (data: Float32Array, r: number, c: number): Float32Array => {
    const t = new Float32Array(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = data[i * c + j];
    return t;
  };
  // dx = dY·W = linear(dY, Wᵀ); dw = dYᵀ·X = linear(dYᵀ, Xᵀ).
  const dyFlat = { data: grad.data, shape: [rows, outFeatures] };
  const dx = linear(dyFlat, transpose(weights.data, outFeatures, inFeatures));
  // The rows are the reduction dim of dw: summed in chunks of at most MAX_HEAD_DIM rows, the
  // feature dims linear() takes.
  let dw: Float32Array | undefined;
  for (let r0 = 0; r0 < rows; r0 += MAX_HEAD_DIM) {
    const r1 = Math.min(rows, r0 + MAX_HEAD_DIM);
    const c = r1 - r0;
    const part = linear(
      {
        data: transpose(grad.data.subarray(r0 * outFeatures, r1 * outFeatures), c, outFeatures),
        shape: [outFeatures, c],
      },
      transpose(input.data.subarray(r0 * inFeatures, r1 * inFeatures), c, inFeatures),
    ).data;
    if (dw === undefined) dw = part;
    else for (let i = 0; i < part.length; i++) dw[i] += part[i];
  }
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outFeatures; o++) db[o] += grad.data[r * outFeatures + o];
  return {
    dx: { data: dx.data, shape: [...input.shape] },
    dw: { data: dw ?? new Float32Array(0), shape: [outFeatures, inFeatures] },
    db: { data: db, shape: [outFeatures] },
  };
}
