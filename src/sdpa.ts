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
import { attentionDims, broadcastStrides } from "./shapes.js";
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
 * Scaled dot-product attention, softmax(scale · q·kᵀ + masks) · v, computed flash-style in SIMD
 * WebAssembly with O(tile) working memory.
 *
 * q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv] (rank 3 [H,N,D] and rank 2 [N,D] mean B = 1, H = 1)
 * → output [B,H,Nq,Dv] with the rank of q. When Hkv divides H, query head h uses kv head
 * floor(h / (H / Hkv)) (grouped-query / multi-query attention). A query row with no visible key
 * outputs zeros, zero weights and lse = -Infinity.
 */
export function scaledDotProductAttention(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options: ScaledDotProductAttentionOptions = {},
): AttentionResult {
  [q, k, v] = attentionInputs(OP, q, k, v);
  const { plan, out } = planSdpa(q, k, v, options);
  return withCall(
    OP,
    (kernels) => sdpaBytes(kernels, q, k, v, plan),
    (call) => {
      const staged = stageSdpa(call, plan, q, k, v, out);
      return staged.finish(runAttention(call, plan, staged.operands));
    },
  );
}

/**
 * scaledDotProductAttention that never blocks the calling thread: with a worker pool
 * (`init({ threads })`) the heads are computed by the workers, so a browser page stays responsive
 * and still uses every core. Without a pool it computes on the calling thread. Bad arguments reject
 * with the same AttentionError.
 */
export async function scaledDotProductAttentionAsync(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options: ScaledDotProductAttentionOptions = {},
): Promise<AttentionResult> {
  [q, k, v] = attentionInputs(`${OP}Async`, q, k, v);
  const { plan, out } = planSdpa(q, k, v, options);
  return withCallAsync(
    `${OP}Async`,
    (kernels) => sdpaBytes(kernels, q, k, v, plan),
    async (call) => {
      const staged = stageSdpa(call, plan, q, k, v, out);
      return staged.finish(await runAttentionAsync(call, plan, staged.operands));
    },
  );
}

function sdpaBytes(kernels: Kernels, q: Tensor, k: Tensor, v: Tensor, plan: AttentionPlan): number {
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
  q: Tensor,
  k: Tensor,
  v: Tensor,
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
    const lead = q.shape.slice(0, -2);
    const output: AttentionResult = { output: { data, shape: [...lead, Nq, Dv] } };
    if (result.weights) output.weights = { data: result.weights, shape: [...lead, Nq, Nk] };
    if (result.lse) output.lse = { data: result.lse, shape: [...lead, Nq] };
    return output;
  };
  return { operands, finish };
}

function planSdpa(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: ScaledDotProductAttentionOptions,
): { plan: AttentionPlan; out?: Out } {
  const dims = attentionInputDims(OP, q, k, v);
  const { B, H, Nq, Dv } = dims;
  checkOptionsObject(OP, options, SDPA_OPTION_KEYS);
  const plan = planAttention(OP, dims, options);
  if (options.out === undefined) return { plan };
  const outShape = formatShape([...q.shape.slice(0, -2), Nq, Dv]);
  const inputs = [
    ["q", q],
    ["k", k],
    ["v", v],
  ] as const;
  return { plan, out: checkOut(OP, options.out, B * H * Nq * Dv, outShape, inputs, kernels(OP)) };
}

/** q, k and v in the `{ data, shape }` form (ONNX Runtime's `{ data, dims }` accepted). */
export function attentionInputs(
  op: string,
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
): [Tensor, Tensor, Tensor] {
  return [asTensor(op, "q", q), asTensor(op, "k", k), asTensor(op, "v", v)];
}

/** Checks q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv] (ranks 2–4) and returns the sizes. */
export function attentionInputDims(OP: string, q: Tensor, k: Tensor, v: Tensor): AttentionDims {
  checkTensor(OP, "q", q, ["float32"]);
  checkTensor(OP, "k", k, ["float32"]);
  checkTensor(OP, "v", v, ["float32"]);
  const [B, H, Nq, D] = attentionDims(OP, "q", q);
  const [Bk, Hkv, Nk, Dk] = attentionDims(OP, "k", k);
  const [Bv, Hv, Nv, Dv] = attentionDims(OP, "v", v);
  const mismatch = (name: string, got: readonly number[], want: string): never => {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${OP}: ${name} has shape ${formatShape(got)} but ${want}`,
    );
  };
  if (D === 0) mismatch("q", q.shape, "the head dim D must be at least 1");
  if (Dk !== D) mismatch("k", k.shape, `its last dim must equal q's head dim D = ${D}`);
  if (Bk !== B) mismatch("k", k.shape, `its batch must equal q's batch B = ${B}`);
  if (Hkv === 0 || H % Hkv !== 0) {
    mismatch("k", k.shape, `its head count must divide q's H = ${H} (grouped-query attention)`);
  }
  if (Bv !== B || Hv !== Hkv || Nv !== Nk) {
    mismatch("v", v.shape, `it must be [B,Hkv,Nk,Dv] = [${B},${Hkv},${Nk},Dv] to match k`);
  }
  if (Dv === 0) mismatch("v", v.shape, "the value dim Dv must be at least 1");
  return { B, H, Hkv, Nq, Nk, D, Dv };
}

/**
 * Validates the options of an attention call of the given sizes (pure: touches no memory). `op`
 * names the public function in error messages; a mask must broadcast to [B,H,Nq,Nk], read as
 * `maskShape` when given (the same elements seen with another shape, e.g. [B·H,Nq,Nk] as [B,H,Nq,Nk]).
 */
export function planAttention(
  op: string,
  dims: AttentionDims,
  options: AttentionOptions,
  maskShape?: readonly number[],
): AttentionPlan {
  const OP = op;
  // The public op has checked its own keys; every internal caller passes a subset of these.
  checkOptionsObject(OP, options, SDPA_OPTION_KEYS);
  const { B, H, Nq, Nk, D } = dims;
  const align = options.align ?? "lower-right";
  if (align !== "lower-right" && align !== "upper-left") {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: align must be "lower-right" or "upper-left", got ${describe(align)}`,
    );
  }
  const diagOffset = align === "lower-right" ? Nk - Nq : 0;

  let scale = 1 / Math.sqrt(D);
  if (options.scale !== undefined) {
    if (typeof options.scale !== "number" || !Number.isFinite(options.scale)) {
      throw new AttentionError(
        "BAD_OPTION",
        `${OP}: scale must be a finite number, got ${describe(options.scale)}`,
      );
    }
    scale = options.scale;
  }

  let softcap = 0;
  if (options.softcap !== undefined) {
    if (
      typeof options.softcap !== "number" ||
      !(options.softcap > 0) ||
      !Number.isFinite(options.softcap)
    ) {
      throw new AttentionError(
        "BAD_OPTION",
        `${OP}: softcap must be a positive finite number, got ${describe(options.softcap)}`,
      );
    }
    softcap = options.softcap;
  }

  if (options.alibiSlopes !== undefined) {
    if (!(options.alibiSlopes instanceof Float32Array)) {
      throw new AttentionError(
        "BAD_DTYPE",
        `${OP}: alibiSlopes must be a Float32Array, got ${describe(options.alibiSlopes)}`,
      );
    }
    if (options.alibiSlopes.length !== H) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${OP}: alibiSlopes has shape [${options.alibiSlopes.length}] but must be [H] = [${H}] (one slope per query head)`,
      );
    }
  }

  // Causal is the window [∞, 0]; a window intersects with it.
  let windowLeft = P.WINDOW_UNBOUNDED;
  let windowRight = P.WINDOW_UNBOUNDED;
  let structured = false;
  if (options.window !== undefined) {
    const w = options.window;
    if (!Array.isArray(w) || w.length !== 2 || !w.every(isWindowBound)) {
      throw new AttentionError(
        "BAD_OPTION",
        `${OP}: window must be [left, right], each an integer or Infinity, got ${describe(w)}`,
      );
    }
    windowLeft = clampBound(w[0]);
    windowRight = clampBound(w[1]);
    structured = true;
  }
  if (options.causal !== undefined && typeof options.causal !== "boolean") {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: causal must be a boolean, got ${describe(options.causal)}`,
    );
  }
  if (options.causal) {
    windowRight = Math.min(windowRight, 0);
    structured = true;
  }

  let globalKeys: Uint8Array | undefined;
  let globalRows: Uint8Array | undefined;
  if (options.globalTokens !== undefined && options.globalTokens.length > 0) {
    const tokens = options.globalTokens;
    if (!(tokens instanceof Int32Array) && !Array.isArray(tokens)) {
      throw new AttentionError(
        "BAD_DTYPE",
        `${OP}: globalTokens must be an Int32Array, got ${describe(tokens)}`,
      );
    }
    globalKeys = new Uint8Array(Nk);
    globalRows = new Uint8Array(Nq);
    for (const j of tokens) {
      if (!Number.isInteger(j) || j < 0 || j >= Nk) {
        throw new AttentionError(
          "BAD_OPTION",
          `${OP}: globalTokens holds ${j}, not a key index in [0, ${Nk})`,
        );
      }
      globalKeys[j] = 1;
      const row = j - diagOffset;
      if (row >= 0 && row < Nq) globalRows[row] = 1;
    }
  }

  if (options.window !== undefined && globalKeys === undefined) {
    checkWindowLeavesKeys(OP, options.window, options.causal === true, Nq, Nk, diagOffset);
  }

  let mask: MaskPlan | undefined;
  if (options.mask !== undefined) {
    const tensor = asTensor(OP, "mask", options.mask as TensorInput<Float32Array | Uint8Array>);
    checkTensor(OP, "mask", tensor, ["uint8", "float32"]);
    const kind = tensor.data instanceof Uint8Array ? P.MASK_BOOL : P.MASK_ADDITIVE;
    const strides = broadcastStrides(
      OP,
      "mask",
      maskShape ?? tensor.shape,
      [B, H, Nq, Nk],
      "[B,H,Nq,Nk]",
    );
    mask = { tensor: tensor as Tensor<Uint8Array> | Tensor<Float32Array>, kind, strides };
  }

  const dropout = planDropout(OP, options.dropout);

  return {
    ...dims,
    scale,
    softcap,
    alibi: options.alibiSlopes,
    diagOffset,
    structured,
    windowLeft,
    windowRight,
    mask,
    globalKeys,
    globalRows,
    returnWeights: options.returnWeights === true,
    returnLse: options.returnLse === true,
    dropout,
  };
}

/**
 * The kernel's form of `dropout: { p, seed }` (assembly/dropout.ts): keys whose 24-bit hash is below
 * round(p·2^24) are dropped, the others scaled by 1/(1 − p). Undefined when p is 0 or rounds to 0.
 */
function planDropout(OP: string, dropout: unknown): DropoutPlan | undefined {
  if (dropout === undefined) return undefined;
  if (typeof dropout === "object" && dropout !== null) {
    checkOptionsObject(OP, dropout, DROPOUT_KEYS, "dropout");
  }
  const { p, seed } = (typeof dropout === "object" && dropout !== null ? dropout : {}) as {
    p?: unknown;
    seed?: unknown;
  };
  if (typeof p !== "number" || !(p >= 0 && p < 1)) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: dropout.p must be a number in [0, 1), got ${describe(p)}`,
    );
  }
  if (typeof seed !== "number" || !Number.isInteger(seed)) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: dropout.seed must be an integer, got ${describe(seed)}`,
    );
  }
  const threshold = Math.round(p * 2 ** 24);
  if (threshold === 0) return undefined;
  return { threshold, scale: 1 / (1 - p), seed: seed >>> 0 };
}

/**
 * Throws BAD_OPTION when the window (intersected with causal) leaves no key visible to any query row
 * of the call. Row i sees keys i + offset − left <= j <= i + offset + right, within [0, Nk): this is
 * empty for every row when left + right < 0 (FlashAttention writes "no bound" as −1, so its [-1, 0]
 * would silently zero every output here), or when the band misses [0, Nk) for every row. Shifted
 * windows that still reach some key stay legal.
 */
function checkWindowLeavesKeys(
  OP: string,
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
    `${OP}: ${given} leaves no key visible to any query (row i sees keys i + ${offset} - (${left}) <= j <= ` +
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
