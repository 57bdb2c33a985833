// Planning an attention call: q, k, v and the options checked (pure: no memory touched) into an
// AttentionPlan, the sizes and options in the kernel's terms.

import * as P from "../../assembly/shared.js";
import { AttentionError, formatShape } from "../core/errors.js";
import { attentionDims, broadcastStrides, checkHeadDim, MAX_HEAD_DIM } from "../core/shapes.js";
import { optBoolean, optFloat32, optInteger, readOptions } from "../core/option-values.js";
import { describe, readTensor, type Tensor, type TensorInput } from "../core/tensor.js";
import { plainView, typedArrayName } from "../core/typed-arrays.js";
import {
  type ScaledDotProductAttentionOptions,
  SDPA_OPTION_KEYS,
  DROPOUT_KEYS,
  type AttentionOptions,
} from "./options.js";

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

export interface MaskPlan {
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

/**
 * Most keys per call the kernels take (2^27): their per-thread scratch grows with Nk (the scalar
 * build's by 8 bytes a key) and is computed in 32 bits. A real call reaches it only with a head dim
 * of a few floats: k alone then holds Nk·D floats.
 */
export const MAX_KEYS = 2 ** 27;

/**
 * q, k and v read once into checked snapshots (ONNX Runtime's `{ data, dims }` accepted), and their
 * sizes: q [B,H,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv] (ranks 2–4), D and Dv in [1, MAX_HEAD_DIM],
 * Hkv dividing H. The op uses only the snapshots.
 */
export function readAttentionInputs(
  op: string,
  qIn: TensorInput | unknown,
  kIn: TensorInput | unknown,
  vIn: TensorInput | unknown,
): { q: Tensor; k: Tensor; v: Tensor; dims: AttentionDims } {
  const q = readTensor<Float32Array>(op, "q", qIn, ["float32"]);
  const k = readTensor<Float32Array>(op, "k", kIn, ["float32"]);
  const v = readTensor<Float32Array>(op, "v", vIn, ["float32"]);
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
  return { q, k, v, dims: { B, H, Hkv, Nq, Nk, D, Dv } };
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

// The sizes an internal caller hands planAttention obey what readAttentionInputs checks of q, k, v.
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
