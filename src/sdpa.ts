// scaledDotProductAttention: validation, then one call of the flash-style kernel (assembly/sdpa.ts).

import * as P from "../assembly/shared.js";
import { type Call, checkOut, type Out, stagedBytes, withCall, withCallAsync } from "./call.js";
import { keyRanges, keySplitBytes, keySplitTasks } from "./key-split.js";
import {
  attendHeads,
  attendHeadsAsync,
  keySplitThreads,
  keySplitThreadsAsync,
  run,
  runAsync,
} from "./parallel.js";
import { kernels, type Kernels } from "./runtime.js";
import { AttentionError, formatShape } from "./errors.js";
import { attentionDims, broadcastStrides, checkHeadDim, MAX_HEAD_DIM } from "./shapes.js";
import { optionKeys } from "./option-keys.js";
import { optBoolean, optFloat32, optInteger, readOptions } from "./option-values.js";
import { checkTensor, describe, readTensor, type Tensor, type TensorInput } from "./tensor.js";
import { plainView, typedArrayName } from "./typed-arrays.js";
import { Workspace } from "./workspace.js";

/** Options of {@link scaledDotProductAttention}. */
export interface ScaledDotProductAttentionOptions {
  /**
   * Boolean mask (Uint8Array: 1 = attend, 0 = masked out) or additive mask (Float32Array, added to
   * the scaled scores, may hold -Infinity). Broadcasts, numpy-style, to [B, H, Nq, Nk]. An ONNX
   * Runtime tensor ({ data, dims }) is accepted too.
   */
  mask?: Tensor<Uint8Array> | Tensor<Float32Array>;
  /** Keep keys j <= i + offset (see `align`). */
  causal?: boolean;
  /**
   * Where the diagonal lies: query row i's diagonal key is i + offset with offset = Nk − Nq for
   * "lower-right" (default; the queries are the last Nq positions, as in KV-cache decoding) and 0
   * for "upper-left" (PyTorch's is_causal). Used by causal, window, ALiBi and globalTokens.
   */
  align?: "lower-right" | "upper-left";
  /** Sliding window [left, right]: keep keys i+offset−left <= j <= i+offset+right; Infinity = unbounded. */
  window?: readonly [left: number, right: number];
  /** Multiplier of q·k; default 1/sqrt(D). */
  scale?: number;
  /** Soft capping: scores become softcap · tanh(score / softcap) before masks and biases. */
  softcap?: number;
  /** ALiBi slopes, one per query head: adds −slope_h · |i + offset − j| to the scores. */
  alibiSlopes?: Float32Array;
  /** Longformer-style global positions (key indices): they attend to and are attended by all. */
  globalTokens?: Int32Array | readonly number[];
  /**
   * Drops each attention probability with probability p (0 ≤ p < 1) and scales the others by
   * 1/(1 − p). The mask is a hash of (seed, batch, head, query, key): the same seed gives the same
   * mask, in the backward pass too. Change the seed every training step.
   */
  dropout?: { p: number; seed: number };
  /** Also return the softmax probabilities [B, H, Nq, Nk] (O(Nq·Nk) memory). */
  returnWeights?: boolean;
  /** Also return the log-sum-exp of each query row's scaled, masked scores, [B, H, Nq]. */
  returnLse?: boolean;
  /** Write the output here (length B·H·Nq·Dv) instead of a fresh array. Must not overlap k or v. */
  out?: Float32Array;
}

/** The keys of {@link ScaledDotProductAttentionOptions}: any other key is a BAD_OPTION error. */
export const SDPA_OPTION_KEYS = optionKeys<ScaledDotProductAttentionOptions>({
  mask: true,
  causal: true,
  align: true,
  window: true,
  scale: true,
  softcap: true,
  alibiSlopes: true,
  globalTokens: true,
  dropout: true,
  returnWeights: true,
  returnLse: true,
  out: true,
});

const DROPOUT_KEYS = optionKeys<NonNullable<ScaledDotProductAttentionOptions["dropout"]>>({
  p: true,
  seed: true,
});

/** What the attention ops return. Arrays are fresh copies owned by the caller (or `out`). */
export interface AttentionResult {
  output: Tensor;
  weights?: Tensor;
  lse?: Tensor;
}

/** Sizes of one attention call: q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv]. */
export interface AttentionDims {
  B: number;
  H: number;
  Hkv: number;
  Nq: number;
  Nk: number;
  D: number;
  Dv: number;
}

/** The options the kernel understands: those of scaledDotProductAttention but `out`. */
export type AttentionOptions = Omit<ScaledDotProductAttentionOptions, "out">;

interface MaskPlan {
  tensor: Tensor<Uint8Array> | Tensor<Float32Array>;
  kind: number;
  strides: number[];
}

/** A validated attention call: sizes and options in the kernel's terms. */
export interface AttentionPlan extends AttentionDims {
  scale: number;
  softcap: number;
  alibi?: Float32Array;
  diagOffset: number;
  structured: boolean;
  windowLeft: number;
  windowRight: number;
  mask?: MaskPlan;
  globalKeys?: Uint8Array;
  globalRows?: Uint8Array;
  returnWeights: boolean;
  returnLse: boolean;
  dropout?: DropoutPlan;
}

export interface DropoutPlan {
  /** round(p·2^24): a key is dropped when the top 24 bits of its hash are below it. */
  threshold: number;
  /** 1 / (1 − p), the factor of the keys kept. */
  scale: number;
  /** The seed as an unsigned 32-bit integer. */
  seed: number;
}

/** Where an operand of the kernel lives: a byte address and element strides of batch, head, row. */
export interface Operand {
  ptr: number;
  strideB: number;
  strideH: number;
  strideRow: number;
}

/** Operand of a contiguous [B, heads, rows, dim] tensor at `ptr`. */
export function contiguousOperand(ptr: number, heads: number, rows: number, dim: number): Operand {
  return { ptr, strideB: heads * rows * dim, strideH: rows * dim, strideRow: dim };
}

const OP = "scaledDotProductAttention";

/**
 * Most keys per call the kernels take (2^27): their per-thread scratch grows with Nk (the scalar
 * build's by 8 bytes a key) and is computed in 32 bits. A real call reaches it only with a head dim
 * of a few floats: k alone then holds Nk·D floats.
 */
export const MAX_KEYS = 2 ** 27;

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
  const [q, k, v] = attentionInputs(op, qIn, kIn, vIn);
  const dims = attentionInputDims(op, q, k, v);
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

// The weights and lse of a call with no query row: empty.
function emptyResults(p: AttentionPlan): { weights?: Float32Array; lse?: Float32Array } {
  return {
    weights: p.returnWeights ? new Float32Array(0) : undefined,
    lse: p.returnLse ? new Float32Array(0) : undefined,
  };
}

/**
 * q, k and v in the `{ data, shape }` form (ONNX Runtime's `{ data, dims }` accepted), each a
 * validated float32 snapshot (readTensor): use these, never the arguments, afterwards.
 */
export function attentionInputs(
  op: string,
  q: TensorInput | unknown,
  k: TensorInput | unknown,
  v: TensorInput | unknown,
): [Tensor, Tensor, Tensor] {
  return [
    readTensor<Float32Array>(op, "q", q, ["float32"]),
    readTensor<Float32Array>(op, "k", k, ["float32"]),
    readTensor<Float32Array>(op, "v", v, ["float32"]),
  ];
}

/**
 * Checks q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv] (ranks 2–4; D and Dv in [1, 65536]; Hkv
 * divides H, and is at least 1 unless both are 0) and returns the sizes.
 */
export function attentionInputDims(op: string, q: Tensor, k: Tensor, v: Tensor): AttentionDims {
  checkTensor(op, "q", q, ["float32"]);
  checkTensor(op, "k", k, ["float32"]);
  checkTensor(op, "v", v, ["float32"]);
  const [B, H, Nq, D] = attentionDims(op, "q", q);
  const [Bk, Hkv, Nk, Dk] = attentionDims(op, "k", k);
  const [Bv, Hv, Nv, Dv] = attentionDims(op, "v", v);
  const mismatch = (name: string, got: readonly number[], want: string): never => {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} has shape ${formatShape(got)} but ${want}`,
    );
  };
  checkHeadDim(op, "q", q.shape, "head dim D", D);
  if (Dk !== D) mismatch("k", k.shape, `its last dim must equal q's head dim D = ${D}`);
  if (Bk !== B) mismatch("k", k.shape, `its batch must equal q's batch B = ${B}`);
  if (!headsDivide(H, Hkv)) {
    mismatch(
      "k",
      k.shape,
      `its head count must divide q's H = ${H} (grouped-query attention: H = Hkv · group, group >= 1)`,
    );
  }
  if (Bv !== B || Hv !== Hkv || Nv !== Nk) {
    mismatch("v", v.shape, `it must be [B,Hkv,Nk,Dv] = [${B},${Hkv},${Nk},Dv] to match k`);
  }
  checkHeadDim(op, "v", v.shape, "value dim Dv", Dv);
  return { B, H, Hkv, Nq, Nk, D, Dv };
}

// Query head h uses kv head floor(h / (H / Hkv)): the group H / Hkv must be a whole number >= 1
// (the kernels divide by it), or there are no heads at all.
function headsDivide(H: number, Hkv: number): boolean {
  return (H === 0 && Hkv === 0) || (Hkv >= 1 && H >= Hkv && H % Hkv === 0);
}

/**
 * Validates the options of an attention call of the given sizes (pure: touches no memory). `op`
 * names the public function in error messages; a mask must broadcast to [B,H,Nq,Nk], read as
 * `maskShape` when given (the same elements seen with another shape, e.g. [B·H,Nq,Nk] as [B,H,Nq,Nk]).
 * The options are read once (readOptions: null or undefined values mean absent), every value is
 * type-checked, tensors and arrays are snapshotted: the plan never refers to the caller's objects.
 */
export function planAttention(
  op: string,
  dims: AttentionDims,
  options: AttentionOptions | undefined,
  maskShape?: readonly number[],
): AttentionPlan {
  checkPlanDims(op, dims);
  // The public op has checked its own keys; every internal caller passes a subset of these.
  const o = readOptions<ScaledDotProductAttentionOptions>(op, options, SDPA_OPTION_KEYS);
  const { B, H, Nq, Nk, D } = dims;
  // Something is computed only when the output has a row; an empty call allocates nothing.
  const active = B * H * Nq > 0;
  if (active && Nk > MAX_KEYS) {
    throw new AttentionError(
      "OUT_OF_MEMORY",
      `${op}: k has Nk = ${Nk} keys per head; at most ${MAX_KEYS} are supported (the kernels' scratch grows with Nk)`,
    );
  }
  const align = o.align ?? "lower-right";
  if (align !== "lower-right" && align !== "upper-left") {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: align must be "lower-right" or "upper-left", got ${describe(align)}`,
    );
  }
  const diagOffset = align === "lower-right" ? Nk - Nq : 0;

  const scale = optFloat32(op, "scale", o.scale) ?? 1 / Math.sqrt(D);
  // The kernels divide by softcap: it must stay positive, and its reciprocal finite, in float32.
  const softcap = optFloat32(op, "softcap", o.softcap, { positive: true, divisor: true }) ?? 0;
  const alibi = readAlibiSlopes(op, o.alibiSlopes, H);

  // Causal is the window [∞, 0]; a window intersects with it.
  let windowLeft = P.WINDOW_UNBOUNDED;
  let windowRight = P.WINDOW_UNBOUNDED;
  let structured = false;
  const window = readWindow(op, o.window);
  if (window !== undefined) {
    windowLeft = clampBound(window[0]);
    windowRight = clampBound(window[1]);
    structured = true;
  }
  const causal = optBoolean(op, "causal", o.causal) ?? false;
  if (causal) {
    windowRight = Math.min(windowRight, 0);
    structured = true;
  }

  const tokens = readGlobalTokens(op, o.globalTokens, Nk);
  let globalKeys: Uint8Array | undefined;
  let globalRows: Uint8Array | undefined;
  if (tokens !== undefined && active) {
    globalKeys = new Uint8Array(Nk);
    globalRows = new Uint8Array(Nq);
    for (const j of tokens) {
      globalKeys[j] = 1;
      const row = j - diagOffset;
      if (row >= 0 && row < Nq) globalRows[row] = 1;
    }
  }

  if (window !== undefined && tokens === undefined) {
    checkWindowLeavesKeys(op, window, causal, Nq, Nk, diagOffset);
  }

  let mask: MaskPlan | undefined;
  if (o.mask !== undefined) {
    const tensor = readTensor<Float32Array | Uint8Array>(op, "mask", o.mask, ["uint8", "float32"]);
    const kind = tensor.data instanceof Uint8Array ? P.MASK_BOOL : P.MASK_ADDITIVE;
    const strides = broadcastStrides(
      op,
      "mask",
      maskShape ?? tensor.shape,
      [B, H, Nq, Nk],
      "[B,H,Nq,Nk]",
    );
    mask = { tensor: tensor as Tensor<Uint8Array> | Tensor<Float32Array>, kind, strides };
  }

  const dropout = planDropout(op, o.dropout);

  return {
    ...dims,
    scale,
    softcap,
    alibi,
    diagOffset,
    structured,
    windowLeft,
    windowRight,
    mask,
    globalKeys,
    globalRows,
    returnWeights: optBoolean(op, "returnWeights", o.returnWeights) ?? false,
    returnLse: optBoolean(op, "returnLse", o.returnLse) ?? false,
    dropout,
  };
}

// The sizes an internal caller hands planAttention obey what attentionInputDims checks of q, k, v.
function checkPlanDims(op: string, d: AttentionDims): void {
  const dims = [d.B, d.H, d.Hkv, d.Nq, d.Nk, d.D, d.Dv];
  const ok =
    dims.every((n) => Number.isInteger(n) && n >= 0 && n <= 2 ** 31 - 1) &&
    d.D >= 1 &&
    d.D <= MAX_HEAD_DIM &&
    d.Dv >= 1 &&
    d.Dv <= MAX_HEAD_DIM &&
    headsDivide(d.H, d.Hkv);
  if (!ok) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: attention sizes B = ${d.B}, H = ${d.H}, Hkv = ${d.Hkv}, Nq = ${d.Nq}, Nk = ${d.Nk}, ` +
        `D = ${d.D}, Dv = ${d.Dv} are not valid (D and Dv in [1, ${MAX_HEAD_DIM}], Hkv dividing H)`,
    );
  }
}

// `alibiSlopes`: a Float32Array of H finite slopes, copied (the plan keeps no caller's array).
function readAlibiSlopes(op: string, value: unknown, H: number): Float32Array | undefined {
  if (value === undefined) return undefined;
  const kind = typedArrayName(value);
  if (kind !== "Float32Array") {
    throw new AttentionError(
      typeof value === "object" && value !== null ? "BAD_DTYPE" : "BAD_OPTION",
      `${op}: alibiSlopes must be a Float32Array [H] = [${H}] (one slope per query head), got ${describe(value)}`,
    );
  }
  const slopes = plainView("Float32Array", value as Float32Array).slice();
  if (slopes.length !== H) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: alibiSlopes has shape [${slopes.length}] but must be [H] = [${H}] (one slope per query head)`,
    );
  }
  const bad = slopes.findIndex((s) => !Number.isFinite(s));
  if (bad >= 0) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: alibiSlopes[${bad}] must be a finite number, got ${slopes[bad]}`,
    );
  }
  return slopes;
}

// `window`: an array of two bounds, each an integer or Infinity, each read once.
function readWindow(op: string, value: unknown): readonly [number, number] | undefined {
  if (value === undefined) return undefined;
  let pair: [unknown, unknown] | undefined;
  if (Array.isArray(value) && value.length === 2) pair = [value[0], value[1]];
  if (pair === undefined || !isWindowBound(pair[0]) || !isWindowBound(pair[1])) {
    const got =
      pair === undefined ? describe(value) : `[${pair.map((x) => describe(x)).join(", ")}]`;
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: window must be [left, right], each an integer or Infinity, got ${got}`,
    );
  }
  return pair as [number, number];
}

/**
 * `globalTokens`: an Int32Array or an array of key indices in [0, Nk), read once into a copy;
 * undefined when absent or empty (no global token).
 */
function readGlobalTokens(op: string, value: unknown, Nk: number): Int32Array | undefined {
  if (value === undefined) return undefined;
  const kind = typedArrayName(value);
  let tokens: Int32Array;
  const invalid = (got: unknown): never => {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: globalTokens holds ${describe(got)}, not a key index in [0, ${Nk})`,
    );
  };
  if (kind === "Int32Array") {
    tokens = plainView("Int32Array", value as Int32Array).slice();
  } else if (Array.isArray(value)) {
    // Copied as it is checked (nothing of the claimed length allocated first): a hole (a sparse
    // array) is refused at once, before any long walk or allocation.
    const checked: number[] = [];
    for (let i = 0; i < value.length; i++) {
      const j: unknown = Object.hasOwn(value, i) ? value[i] : undefined;
      if (typeof j !== "number" || !Number.isInteger(j) || j < 0 || j >= Nk) invalid(j);
      checked.push(j as number);
    }
    tokens = Int32Array.from(checked);
  } else {
    throw new AttentionError(
      typeof value === "object" && value !== null ? "BAD_DTYPE" : "BAD_OPTION",
      `${op}: globalTokens must be an Int32Array or an array of key indices, got ${describe(value)}`,
    );
  }
  for (const j of tokens) if (j < 0 || j >= Nk) invalid(j);
  return tokens.length > 0 ? tokens : undefined;
}

/**
 * The kernel's form of `dropout: { p, seed }` (assembly/dropout.ts): keys whose 24-bit hash is below
 * round(p·2^24) are dropped, the others scaled by 1/(1 − p). Undefined when p is 0 or rounds to 0.
 */
function planDropout(op: string, dropout: unknown): DropoutPlan | undefined {
  if (dropout === undefined) return undefined;
  const { p, seed } = readOptions<{ p: unknown; seed: unknown }>(
    op,
    dropout,
    DROPOUT_KEYS,
    "dropout",
  );
  if (typeof p !== "number" || !(p >= 0 && p < 1)) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: dropout.p must be a number in [0, 1), got ${describe(p)}`,
    );
  }
  if (seed === undefined) {
    throw new AttentionError("BAD_OPTION", `${op}: dropout.seed is missing (an integer)`);
  }
  const s = optInteger(op, "dropout.seed", seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)!;
  const threshold = Math.round(p * 2 ** 24);
  if (threshold === 0) return undefined;
  return { threshold, scale: 1 / (1 - p), seed: s >>> 0 };
}

/**
 * Throws BAD_OPTION when the window (intersected with causal) leaves no key visible to any query row
 * of the call. Row i sees keys i + offset − left <= j <= i + offset + right, within [0, Nk): this is
 * empty for every row when left + right < 0 (FlashAttention writes "no bound" as −1, so its [-1, 0]
 * would silently zero every output here), or when the band misses [0, Nk) for every row. Shifted
 * windows that still reach some key stay legal.
 */
function checkWindowLeavesKeys(
  op: string,
  window: readonly [number, number],
  causal: boolean,
  Nq: number,
  Nk: number,
  offset: number,
): void {
  if (Nq === 0 || Nk === 0) return; // nothing to see either way
  const [left, right] = window;
  const effectiveRight = causal ? Math.min(right, 0) : right;
  // Rows whose band reaches a key: i + offset + right >= 0 and i + offset − left <= Nk − 1.
  const firstRow = Math.max(0, -offset - effectiveRight);
  const lastRow = Math.min(Nq - 1, Nk - 1 - offset + left);
  if (left + effectiveRight >= 0 && firstRow <= lastRow) return;
  const given = `window [${left}, ${right}]${causal ? " with causal" : ""}`;
  throw new AttentionError(
    "BAD_OPTION",
    `${op}: ${given} leaves no key visible to any query (row i sees keys i + ${offset} - (${left}) <= j <= ` +
      `i + ${offset} + ${effectiveRight} of Nk = ${Nk}, for Nq = ${Nq}); a negative bound shifts the window ` +
      `rather than removing it: use Infinity for no bound, e.g. [Infinity, 0]`,
  );
}

function isWindowBound(x: unknown): boolean {
  return typeof x === "number" && (Number.isInteger(x) || x === Infinity);
}

function clampBound(x: number): number {
  return Math.max(-P.WINDOW_UNBOUNDED, Math.min(P.WINDOW_UNBOUNDED, x));
}

/**
 * Workspace bytes runAttention takes beyond its operands: mask, outputs, flags, scratch and the
 * buffers of a key split.
 */
export function attentionBytes(kernels: Kernels, p: AttentionPlan): number {
  // A call without query rows runs no kernel (runAttention) and stages nothing.
  if (p.B * p.H * p.Nq === 0) return 0;
  const block = Workspace.blockSize;
  let bytes = 0;
  if (p.mask) bytes += stagedBytes(p.mask.tensor, kernels);
  if (p.returnWeights) bytes += block(p.B * p.H * p.Nq * p.Nk * 4);
  if (p.returnLse) bytes += block(p.B * p.H * p.Nq * 4);
  if (p.alibi) bytes += block(p.H * 4);
  if (p.globalKeys) bytes += block(p.Nk) + block(p.Nq);
  const threads = kernels.pool?.size ?? 1;
  bytes += keySplitBytes(kernels, p);
  return bytes + threads * block(kernels.exports.sdpaScratchBytes(p.D, p.Dv, p.Nk));
}

/** The operands of one kernel call. `keyMask` (optional) is a uint8 [B, Nk] padding mask. */
export interface AttentionOperands {
  q: Operand;
  k: Operand;
  v: Operand;
  out: Operand;
  keyMask?: { ptr: number; strideB: number };
  /** Block-sparse layout, uint8 [Nq/block, cols] per head (strideH elements apart; 0 = shared). */
  layout?: { ptr: number; block: number; strideH: number; cols: number };
  /** A mask already in WASM memory, used instead of the plan's (kind and strides as MaskPlan). */
  mask?: { ptr: number; kind: number; strides: readonly number[] };
}

/**
 * Runs the attention kernel (assembly/sdpa.ts) for a validated plan on operands already in WASM
 * memory: the one attention implementation every op uses. The pool splits the call by (batch, head),
 * or by keys when there are too few heads (src/key-split.ts). Returns the weights [B,H,Nq,Nk] and
 * lse [B,H,Nq] when the plan asks for them.
 */
export function runAttention(
  call: Call,
  p: AttentionPlan,
  operands: AttentionOperands,
): { weights?: Float32Array; lse?: Float32Array } {
  // No query row: nothing to compute, and nothing for the kernel to divide or loop by.
  if (p.B * p.H * p.Nq === 0) return emptyResults(p);
  const { params } = call.kernels;
  const done = setUpAttention(call, p, operands, params);
  const work = p.B * p.H * p.Nq * p.Nk * (p.D + p.Dv);
  const ranges = keyRanges(p, operands.layout !== undefined, keySplitThreads(call, work));
  if (ranges) {
    const split = keySplitTasks(call, p, params, done, ranges, operands.out);
    run(call, split.tasks);
    split.merge();
  } else attendHeads(call, params, done.scratchBytes, p.B * p.H, work);
  return done.results();
}

/**
 * runAttention that never blocks the calling thread: the heads (or key ranges) are computed by the
 * pool's workers (on the calling thread only when there is no pool). The call has its own parameter
 * block, so other calls may run meanwhile.
 */
export async function runAttentionAsync(
  call: Call,
  p: AttentionPlan,
  operands: AttentionOperands,
): Promise<{ weights?: Float32Array; lse?: Float32Array }> {
  if (p.B * p.H * p.Nq === 0) return emptyResults(p);
  const params = call.alloc(P.SDPA_PARAMS_BYTES, "parameters");
  const done = setUpAttention(call, p, operands, params);
  const ranges = keyRanges(p, operands.layout !== undefined, keySplitThreadsAsync(call));
  if (ranges) {
    const split = keySplitTasks(call, p, params, done, ranges, operands.out);
    await runAsync(call, split.tasks);
    split.merge();
  } else await attendHeadsAsync(call, params, done.scratchBytes, p.B * p.H);
  return done.results();
}

/** What setUpAttention leaves: the scratch each thread needs, the lse buffer, and the results. */
export interface AttentionSetUp {
  scratchBytes: number;
  /** Where the kernel writes the lse [B,H,Nq] (0 when the plan does not ask for it). */
  lsePtr: number;
  results(): { weights?: Float32Array; lse?: Float32Array };
}

/** Stages what the kernel needs besides the operands and fills the parameter block at `params`. */
export function setUpAttention(
  call: Call,
  p: AttentionPlan,
  operands: AttentionOperands,
  params: number,
): AttentionSetUp {
  const { exports } = call.kernels;
  const ws = call.workspace;
  const weightsLength = p.B * p.H * p.Nq * p.Nk;
  const weightsPtr = p.returnWeights ? call.alloc(weightsLength * 4, "weights") : 0;
  const lsePtr = p.returnLse ? call.alloc(p.B * p.H * p.Nq * 4, "lse") : 0;
  let maskPtr = 0;
  const mask = operands.mask ?? p.mask;
  if (operands.mask) maskPtr = operands.mask.ptr;
  else if (p.mask) {
    const t = p.mask.tensor;
    maskPtr =
      t.data instanceof Uint8Array
        ? call.inputU8(t as Tensor<Uint8Array>, "mask")
        : call.inputF32(t as Tensor, "mask");
  }
  let alibiPtr = 0;
  if (p.alibi) alibiPtr = call.inputF32({ data: p.alibi, shape: [p.H] }, "alibiSlopes");
  let globalKeysPtr = 0;
  let globalRowsPtr = 0;
  if (p.globalKeys && p.globalRows) {
    globalKeysPtr = call.inputU8({ data: p.globalKeys, shape: [p.Nk] }, "globalTokens");
    globalRowsPtr = call.inputU8({ data: p.globalRows, shape: [p.Nq] }, "globalTokens");
  }

  const i32 = ws.i32;
  const at = params >>> 2;
  const set = (offset: number, value: number): void => {
    i32[at + offset / 4] = value;
  };
  const setOperand = (ptrAt: number, stridesAt: number, o: Operand): void => {
    set(ptrAt, o.ptr);
    set(stridesAt, o.strideB);
    set(stridesAt + 4, o.strideH);
    set(stridesAt + 8, o.strideRow);
  };
  setOperand(P.SDPA_Q, P.SDPA_Q_STRIDE_B, operands.q);
  setOperand(P.SDPA_K, P.SDPA_K_STRIDE_B, operands.k);
  setOperand(P.SDPA_V, P.SDPA_V_STRIDE_B, operands.v);
  setOperand(P.SDPA_OUT, P.SDPA_OUT_STRIDE_B, operands.out);
  set(P.SDPA_WEIGHTS, weightsPtr);
  set(P.SDPA_LSE, lsePtr);
  set(P.SDPA_MASK, maskPtr);
  set(P.SDPA_MASK_KIND, mask ? mask.kind : P.MASK_NONE);
  const ms = mask ? mask.strides : [0, 0, 0, 0];
  set(P.SDPA_MASK_STRIDE_B, ms[0]);
  set(P.SDPA_MASK_STRIDE_H, ms[1]);
  set(P.SDPA_MASK_STRIDE_Q, ms[2]);
  set(P.SDPA_MASK_STRIDE_K, ms[3]);
  set(P.SDPA_KEY_MASK, operands.keyMask ? operands.keyMask.ptr : 0);
  set(P.SDPA_KEY_MASK_STRIDE_B, operands.keyMask ? operands.keyMask.strideB : 0);
  set(P.SDPA_LAYOUT, operands.layout ? operands.layout.ptr : 0);
  set(P.SDPA_LAYOUT_BLOCK, operands.layout ? operands.layout.block : 0);
  set(P.SDPA_LAYOUT_STRIDE_H, operands.layout ? operands.layout.strideH : 0);
  set(P.SDPA_LAYOUT_COLS, operands.layout ? operands.layout.cols : 0);
  set(P.SDPA_B, p.B);
  set(P.SDPA_H, p.H);
  set(P.SDPA_HKV, p.Hkv);
  set(P.SDPA_NQ, p.Nq);
  set(P.SDPA_NK, p.Nk);
  set(P.SDPA_D, p.D);
  set(P.SDPA_DV, p.Dv);
  ws.f32[at + P.SDPA_SCALE / 4] = p.scale;
  ws.f32[at + P.SDPA_SOFTCAP / 4] = p.softcap;
  set(P.SDPA_ALIBI, alibiPtr);
  set(P.SDPA_DIAG_OFFSET, p.diagOffset);
  set(P.SDPA_STRUCTURED, p.structured ? 1 : 0);
  set(P.SDPA_WINDOW_LEFT, p.windowLeft);
  set(P.SDPA_WINDOW_RIGHT, p.windowRight);
  set(P.SDPA_GLOBAL_KEYS, globalKeysPtr);
  set(P.SDPA_GLOBAL_ROWS, globalRowsPtr);
  set(P.SDPA_DROPOUT_THRESHOLD, p.dropout ? p.dropout.threshold : 0);
  ws.f32[at + P.SDPA_DROPOUT_SCALE / 4] = p.dropout ? p.dropout.scale : 0;
  i32[at + P.SDPA_DROPOUT_SEED / 4] = p.dropout ? p.dropout.seed | 0 : 0;

  return {
    scratchBytes: exports.sdpaScratchBytes(p.D, p.Dv, p.Nk),
    lsePtr,
    results: () => ({
      weights: p.returnWeights ? call.outputF32(weightsPtr, weightsLength) : undefined,
      lse: p.returnLse ? call.outputF32(lsePtr, p.B * p.H * p.Nq) : undefined,
    }),
  };
}
