// The score functions of the attention family and the engine that combines them: hybridAttention
// sums weighted score terms before one softmax; additiveAttention, bilinearAttention and
// cosineAttention are the one-term cases, so a one-term hybrid equals its own op by construction.
//
// Terms that are bilinear forms of q and k (scaled dot, Luong "general", cosine) become features:
// score_t = w_t·(f_t(q)·g_t(k)), so several of them are one dot product of concatenated features
// [w_1·f_1(q), w_2·f_2(q), ...]·[g_1(k), g_2(k), ...], computed by the attention kernel. Additive
// (Bahdanau) terms are not; their scores are summed into a [B, Nq, Nk] matrix (assembly/family.ts)
// that the kernel adds to those dot products, like an additive mask.

import * as P from "../../../assembly/shared.js";
import { type Call, stagedBytes } from "../../runtime/call.js";
import { AttentionError } from "../../core/errors.js";
import { projectSteps, projectionBytes } from "../linear.js";
import type { Task } from "../../runtime/threads.js";
import type { Kernels } from "../../runtime/runtime.js";
import {
  runPlanned,
  runPlannedAsync,
  type Planned,
  type Step,
  type Steps,
} from "../../engine/steps.js";
import { broadcastStrides, MAX_HEAD_DIM } from "../../core/shapes.js";
import { optionKeys } from "../../core/option-keys.js";
import { kernels } from "../../runtime/runtime.js";
import { optFloat32 } from "../../core/option-values.js";
import { describe, type Tensor } from "../../core/tensor.js";
import { Workspace } from "../../runtime/workspace.js";
import {
  checkFamilyOptions,
  emptyFamilyResult,
  familyAttend,
  familyBytes,
  familyInputs,
  familyPlan,
  parameterMatrix,
  parameterVector,
  readBag,
  zeroFeatures,
  type FamilyDims,
  type FamilyOptions,
  type FamilyResult,
  type Matrix,
} from "./common.js";

/** One score term of hybridAttention. */
export type ScoreTerm =
  | { kind: "scaled-dot"; weight: number }
  | {
      kind: "additive";
      weight: number;
      wq: Matrix;
      wk: Matrix;
      va: Float32Array;
      bias?: Float32Array;
    }
  | { kind: "bilinear"; weight: number; w: Matrix }
  | { kind: "cosine"; weight: number; temperature?: number };

// The keys of each kind of term: any other key is a BAD_OPTION error.
const TERM_KEYS: { readonly [K in ScoreTerm["kind"]]: readonly string[] } = {
  "scaled-dot": optionKeys<Extract<ScoreTerm, { kind: "scaled-dot" }>>({
    kind: true,
    weight: true,
  }),
  additive: optionKeys<Extract<ScoreTerm, { kind: "additive" }>>({
    kind: true,
    weight: true,
    wq: true,
    wk: true,
    va: true,
    bias: true,
  }),
  bilinear: optionKeys<Extract<ScoreTerm, { kind: "bilinear" }>>({
    kind: true,
    weight: true,
    w: true,
  }),
  cosine: optionKeys<Extract<ScoreTerm, { kind: "cosine" }>>({
    kind: true,
    weight: true,
    temperature: true,
  }),
};

type CheckedTerm =
  | { kind: "scaled-dot"; factor: number }
  | { kind: "bilinear"; factor: number; wT: Tensor }
  | { kind: "cosine"; factor: number }
  | { kind: "additive"; wq: Tensor; wk: Tensor; va: Float32Array; bias?: Float32Array };

// Below this norm a row counts as zero (torch's cosine_similarity eps).
const COSINE_MIN_NORM = 1e-8;

/** At most this many terms in one hybrid score. */
export const MAX_TERMS = 64;

/**
 * Validates terms against the shapes, reading each term (and the terms array) once; pure. With
 * `copy`, parameters the call reads later are copied, so the caller may reuse their buffers at once.
 */
function checkTerms(
  op: string,
  terms: unknown,
  d: FamilyDims,
  label: (index: number) => string,
  copy: boolean,
): CheckedTerm[] {
  const count: unknown = Array.isArray(terms) ? terms.length : undefined;
  if (typeof count !== "number" || count < 1 || count > MAX_TERMS) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: terms must be an array of 1 to ${MAX_TERMS} terms, got ${describe(terms)}`,
    );
  }
  const given: unknown[] = [];
  for (let i = 0; i < count; i++) {
    given.push(Object.hasOwn(terms as unknown[], i) ? (terms as unknown[])[i] : undefined);
  }
  return given.map((item, index): CheckedTerm => {
    const at = label(index);
    // Terms may share a bag of parameters (as the ops' params do): only misspellings fail.
    const { kind } = readBag(op, at, item, ["kind"]);
    const keys =
      typeof kind === "string" && Object.hasOwn(TERM_KEYS, kind)
        ? TERM_KEYS[kind as ScoreTerm["kind"]]
        : undefined;
    if (keys === undefined) {
      throw new AttentionError(
        "BAD_OPTION",
        `${op}: ${at}.kind must be "scaled-dot", "additive", "bilinear" or "cosine", got ${describe(kind)}`,
      );
    }
    const term = readBag(op, at, item, keys);
    const weight = optFloat32(op, `${at}.weight`, term.weight);
    if (weight === undefined) {
      throw new AttentionError("BAD_OPTION", `${op}: ${at}.weight is missing (a finite number)`);
    }
    // A factor the kernels multiply scores by: finite in float32.
    const factor = (value: number, what: string): number => {
      if (!Number.isFinite(Math.fround(value))) {
        throw new AttentionError(
          "BAD_OPTION",
          `${op}: ${at}.weight ${weight} ${what} gives a factor ${value} no float32 can hold; use a smaller weight`,
        );
      }
      return value;
    };
    const sameDims = (): void => {
      if (d.Dq !== d.Dk) {
        throw new AttentionError(
          "SHAPE_MISMATCH",
          `${op}: a ${String(kind)} term needs q and k of the same feature size, got Dq = ${d.Dq} and Dk = ${d.Dk}`,
        );
      }
    };
    switch (kind as ScoreTerm["kind"]) {
      case "scaled-dot":
        sameDims();
        return { kind: "scaled-dot", factor: weight / Math.sqrt(d.Dq) };
      case "bilinear": {
        const w = parameterMatrix(op, `${at}.w`, term.w, d.Dq, d.Dk);
        return { kind: "bilinear", factor: weight, wT: transpose(w) };
      }
      case "cosine": {
        sameDims();
        const temperature =
          optFloat32(op, `${at}.temperature`, term.temperature, {
            positive: true,
            divisor: true,
          }) ?? 1;
        return {
          kind: "cosine",
          factor: factor(weight / temperature, `/ temperature ${temperature}`),
        };
      }
      default: {
        const wq = parameterMatrix(op, `${at}.wq`, term.wq, undefined, d.Dq, copy);
        const A = wq.shape[0];
        const wk = parameterMatrix(op, `${at}.wk`, term.wk, A, d.Dk, copy);
        const va = parameterVector(op, `${at}.va`, term.va, A);
        const bias =
          term.bias === undefined
            ? undefined
            : parameterVector(op, `${at}.bias`, term.bias, A, copy);
        // va·tanh(...) is linear in va: the weight scales va.
        const scaled = va.map((x) => x * weight);
        scaled.forEach((x, i) => {
          if (!Number.isFinite(x) && Number.isFinite(va[i])) factor(va[i] * weight, `· va[${i}]`);
        });
        return { kind: "additive", wq, wk, va: scaled, bias };
      }
    }
  });
}

function transpose(m: Tensor): Tensor {
  const [rows, cols] = m.shape;
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) t[c * rows + r] = m.data[r * cols + c];
  return { data: t, shape: [cols, rows] };
}

/** Size of the query/key features a dot term contributes. */
function featureSize(t: CheckedTerm, d: FamilyDims): number {
  return t.kind === "bilinear" ? d.Dk : t.kind === "additive" ? 0 : d.Dq;
}

/**
 * Attention whose score is Σ_t terms[t] (see ScoreTerm), then one softmax over keys and the weighted
 * sum of values. q [B,Nq,Dq], k [B,Nk,Dk], v [B,Nk,Dv] (rank 2 means B = 1) → output [B,Nq,Dv].
 * `options` is the op's options snapshot (readOptions).
 */
export function scoreTermsAttention(
  op: string,
  q: unknown,
  k: unknown,
  v: unknown,
  terms: unknown,
  options: Partial<FamilyOptions>,
  label?: (index: number) => string,
): FamilyResult {
  const plan = planScoreTerms(op, q, k, v, terms, options, label, false);
  return runPlanned(op, plan);
}

/**
 * scoreTermsAttention that never blocks the calling thread (the pool's workers compute it). Every
 * argument is read, checked and staged (or copied) before the promise is returned.
 */
export function scoreTermsAttentionAsync(
  op: string,
  q: unknown,
  k: unknown,
  v: unknown,
  terms: unknown,
  options: Partial<FamilyOptions>,
  label?: (index: number) => string,
): Promise<FamilyResult> {
  const plan = planScoreTerms(op, q, k, v, terms, options, label, true);
  return runPlannedAsync(op, plan);
}

// Checks the arguments and plans the call: its workspace bytes and its steps.
function planScoreTerms(
  op: string,
  qIn: unknown,
  kIn: unknown,
  vIn: unknown,
  terms: unknown,
  optionsIn: Partial<FamilyOptions>,
  label: (index: number) => string = (i) => `terms[${i}]`,
  copy: boolean,
): Planned<FamilyResult> {
  kernels(op); // NOT_INITIALIZED before anything else
  const { q, k, v, d } = familyInputs(op, qIn, kIn, vIn);
  const options = checkFamilyOptions(op, optionsIn, d);
  const checked = checkTerms(op, terms, d, label, copy);
  const dots = checked.filter((t) => t.kind !== "additive");
  const additive = checked.filter((t) => t.kind === "additive");
  const features = dots.length === 0 ? 1 : dots.reduce((n, t) => n + featureSize(t, d), 0);
  if (features > MAX_HEAD_DIM) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: the dot terms' features add up to ${features} (Dq = ${d.Dq}, Dk = ${d.Dk}), above ${MAX_HEAD_DIM}; use fewer terms`,
    );
  }
  if (d.B * d.Nq === 0 || d.Nk === 0) {
    // Nothing to compute: no kernel, no allocation, no pool.
    const empty = emptyFamilyResult(op, d, options.returnWeights);
    return {
      bytes: () => 0,
      steps: function* () {
        return empty;
      },
    };
  }
  const scale = dots.length === 1 ? dots[0].factor : 1;
  const plan = familyPlan(op, d, features, scale, options);
  const mask = options.mask;
  const maskStrides = mask
    ? broadcastStrides(op, "mask", mask.shape, [d.B, d.Nq, d.Nk], "[B,Nq,Nk]")
    : undefined;
  const maskKind = !mask
    ? P.MASK_NONE
    : mask.data instanceof Uint8Array
      ? P.MASK_BOOL
      : P.MASK_ADDITIVE;

  const block = Workspace.blockSize;
  const bytes = (kern: Kernels): number => {
    let bytes = stagedBytes(q, kern) + stagedBytes(k, kern) + stagedBytes(v, kern);
    bytes += familyBytes(kern, plan, d);
    if (dots.length !== 1) bytes += block(d.B * (d.Nq + d.Nk) * features * 4);
    for (const t of checked) {
      if (t.kind === "bilinear") bytes += projectionBytes(kern, t.wT, d.B * d.Nq);
      if (t.kind === "cosine") bytes += block(d.B * d.Nq * d.Dq * 4) + block(d.B * d.Nk * d.Dk * 4);
      if (t.kind === "additive") {
        bytes += projectionBytes(kern, t.wq, d.B * d.Nq) + projectionBytes(kern, t.wk, d.B * d.Nk);
        bytes += block(t.va.byteLength) + (t.bias ? block(t.bias.byteLength) : 0);
      }
    }
    if (additive.length > 0) bytes += block(d.B * d.Nq * d.Nk * 4);
    if (mask) bytes += stagedBytes(mask, kern);
    return bytes;
  };
  const steps = function* (call: Call): Steps<FamilyResult> {
    // Every input is staged before the first step, so an asynchronous call has taken all it needs
    // before its first await.
    const qPtr = call.inputF32(q, "q");
    const kPtr = call.inputF32(k, "k");
    const vPtr = call.inputF32(v, "v");
    let maskPtr = 0;
    if (mask) {
      maskPtr =
        mask.data instanceof Uint8Array
          ? call.inputU8(mask as Tensor<Uint8Array>, "mask")
          : call.inputF32(mask as Tensor, "mask");
    }
    // Features of the dot terms.
    const parts: { q: number; k: number }[] = [];
    for (const t of dots) parts.push(yield* termFeatures(call, t, d, qPtr, kPtr));
    let qFeatures: number;
    let kFeatures: number;
    if (parts.length === 1) {
      [qFeatures, kFeatures] = [parts[0].q, parts[0].k];
    } else if (parts.length === 0) {
      qFeatures = zeroFeatures(call, d.B * d.Nq);
      kFeatures = zeroFeatures(call, d.B * d.Nk);
    } else {
      qFeatures = call.alloc(d.B * d.Nq * features * 4, "query features");
      kFeatures = call.alloc(d.B * d.Nk * features * 4, "key features");
      let column = 0;
      parts.forEach((part, i) => {
        const width = featureSize(dots[i], d);
        copyColumns(call, part.q, d.B * d.Nq, width, qFeatures, features, column, dots[i].factor);
        copyColumns(call, part.k, d.B * d.Nk, width, kFeatures, features, column, 1);
        column += width;
      });
    }
    // Score matrix of the additive terms, with the user's mask applied last; without additive
    // terms the mask goes to the attention kernel.
    let kernelMask: { ptr: number; kind: number; strides: readonly number[] } | undefined;
    if (mask && maskStrides && additive.length === 0) {
      kernelMask = {
        ptr: maskPtr,
        kind: maskKind,
        strides: [maskStrides[0], 0, maskStrides[1], maskStrides[2]],
      };
    }
    if (additive.length > 0) {
      const scores = call.alloc(d.B * d.Nq * d.Nk * 4, "additive scores");
      for (const [i, t] of additive.entries()) {
        if (t.kind !== "additive") continue;
        const last = i === additive.length - 1;
        const A = t.wq.shape[0];
        const biasPtr = t.bias ? call.inputF32({ data: t.bias, shape: [A] }, "bias") : 0;
        const qp = yield* projectSteps(call, qPtr, d.B * d.Nq, t.wq, 0);
        const kp = yield* projectSteps(call, kPtr, d.B * d.Nk, t.wk, biasPtr);
        const va = call.inputF32({ data: t.va, shape: [A] }, "va");
        const kind = last ? maskKind : P.MASK_NONE;
        yield additiveScoresStep(
          d,
          A,
          qp,
          kp,
          va,
          scores,
          i > 0,
          last ? maskPtr : 0,
          kind,
          maskStrides,
        );
      }
      kernelMask = { ptr: scores, kind: P.MASK_ADDITIVE, strides: [d.Nq * d.Nk, 0, d.Nk, 1] };
    }
    return yield* familyAttend(call, plan, d, qFeatures, kFeatures, vPtr, kernelMask);
  };
  return { bytes, steps };
}

// The additive scores [B, Nq, Nk] (assembly/family.ts), split by batch entries, or by query rows
// when there is one batch entry, across the threads.
function additiveScoresStep(
  d: FamilyDims,
  A: number,
  qp: number,
  kp: number,
  va: number,
  scores: number,
  accumulate: boolean,
  mask: number,
  maskKind: number,
  maskStrides: readonly number[] | undefined,
): Step {
  const [msB, msQ, msK] = maskStrides ?? [0, 0, 0];
  const maskBytes = maskKind === P.MASK_BOOL ? 1 : 4;
  const byRows = d.B === 1;
  const units = byRows ? d.Nq : d.B;
  const tasks = (threads: number): Task[] => {
    const out: Task[] = [];
    for (let t = 0; t < threads; t++) {
      const begin = Math.floor((t * units) / threads);
      const end = Math.floor(((t + 1) * units) / threads);
      if (end <= begin) continue;
      // Batch entries [b0, b0 + batch), query rows [i0, i0 + rows) of each.
      const [b0, batch, i0, rows] = byRows
        ? [0, 1, begin, end - begin]
        : [begin, end - begin, 0, d.Nq];
      const firstRow = b0 * d.Nq + i0;
      out.push({
        fn: "additiveScores",
        args: [
          qp + firstRow * A * 4,
          kp + b0 * d.Nk * A * 4,
          va,
          batch,
          rows,
          d.Nk,
          A,
          scores + firstRow * d.Nk * 4,
          accumulate ? 1 : 0,
          mask === 0 ? 0 : mask + (b0 * msB + i0 * msQ) * maskBytes,
          maskKind,
          msB,
          msQ,
          msK,
        ],
      });
    }
    return out;
  };
  return { split: { units, work: d.B * d.Nq * d.Nk * A, tasks } };
}

// The query and key features of one dot term, in WASM memory ([B·Nq, F] and [B·Nk, F]).
function* termFeatures(
  call: Call,
  t: CheckedTerm,
  d: FamilyDims,
  qPtr: number,
  kPtr: number,
): Steps<{ q: number; k: number }> {
  switch (t.kind) {
    case "bilinear":
      // q·W·kᵀ = (q·W)·kᵀ: fold W into the queries with the GEMM.
      return { q: yield* projectSteps(call, qPtr, d.B * d.Nq, t.wT, 0), k: kPtr };
    case "cosine": {
      const qn = call.alloc(d.B * d.Nq * d.Dq * 4, "normalised q");
      const kn = call.alloc(d.B * d.Nk * d.Dk * 4, "normalised k");
      call.kernels.exports.normalizeRows(qPtr, qn, d.B * d.Nq, d.Dq, COSINE_MIN_NORM);
      call.kernels.exports.normalizeRows(kPtr, kn, d.B * d.Nk, d.Dk, COSINE_MIN_NORM);
      return { q: qn, k: kn };
    }
    default:
      return { q: qPtr, k: kPtr };
  }
}

// dst[r, column..column+width) = factor · src[r, 0..width) for `rows` rows.
function copyColumns(
  call: Call,
  src: number,
  rows: number,
  width: number,
  dst: number,
  dstWidth: number,
  column: number,
  factor: number,
): void {
  const f32 = call.workspace.f32;
  const from = src >>> 2;
  const to = (dst >>> 2) + column;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < width; c++) f32[to + r * dstWidth + c] = factor * f32[from + r * width + c];
  }
}
