// The public ops of the attention family: each is a score function of src/ops/family/terms.ts.

import { optionKeys } from "../../core/option-keys.js";
import { readOptions } from "../../core/option-values.js";
import { kernels } from "../../runtime/runtime.js";
import { type TensorInput } from "../../core/tensor.js";
import {
  readBag,
  COSINE_OPTION_KEYS,
  FAMILY_OPTION_KEYS,
  type CosineOptions,
  type FamilyOptions,
  type FamilyResult,
  type Matrix,
  type Vector,
} from "./common.js";
import { scoreTermsAttention, scoreTermsAttentionAsync, type ScoreTerm } from "./terms.js";

export type { CosineOptions, FamilyOptions, FamilyResult, Matrix, Vector } from "./common.js";
export type { ScoreTerm } from "./terms.js";

// The arguments of scoreTermsAttention(Async) an op passes on.
type TermsCall = Parameters<typeof scoreTermsAttention>;

type AdditiveParams = { wq: Matrix; wk: Matrix; va: Vector; bias?: Vector };
type BilinearParams = { w: Matrix };
type HybridParams = { terms: ScoreTerm[] };

// The keys of each op's params: any other key is a BAD_OPTION error.
const ADDITIVE_KEYS = optionKeys<AdditiveParams>({ wq: true, wk: true, va: true, bias: true });
const BILINEAR_KEYS = optionKeys<BilinearParams>({ w: true });
const HYBRID_KEYS = optionKeys<HybridParams>({ terms: true });

// The params bag of an op, read once: other ops' parameters may share it, misspellings may not.
function params(op: string, p: unknown, keys: readonly string[]): Record<string, unknown> {
  return readBag(op, "params", p, keys);
}

/**
 * Additive (Bahdanau) attention: score(q, k) = va · tanh(Wq q + Wk k + bias), no scaling.
 * q [B,Nq,Dq], k [B,Nk,Dk], v [B,Nk,Dv]; wq [A,Dq], wk [A,Dk], va [A], bias [A]. Queries and keys are
 * projected once per call with the GEMM; the tanh runs four hidden units at a time.
 */
export function additiveAttention(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  p: AdditiveParams,
  options?: FamilyOptions,
): FamilyResult {
  return scoreTermsAttention(...additive("additiveAttention", q, k, v, p, options));
}

/** additiveAttention that never blocks the calling thread (the pool's workers compute it). */
export async function additiveAttentionAsync(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  p: AdditiveParams,
  options?: FamilyOptions,
): Promise<FamilyResult> {
  return scoreTermsAttentionAsync(...additive("additiveAttentionAsync", q, k, v, p, options));
}

function additive(
  op: string,
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  p: AdditiveParams,
  options: FamilyOptions | undefined,
): TermsCall {
  kernels(op); // NOT_INITIALIZED first
  const { wq, wk, va, bias } = params(op, p, ADDITIVE_KEYS);
  const term = { kind: "additive", weight: 1, wq, wk, va, bias }; // checked by the engine
  const opts = readOptions<FamilyOptions>(op, options, FAMILY_OPTION_KEYS);
  return [op, q, k, v, [term], opts, () => "params"];
}

/** Bilinear (Luong "general") attention: score(q, k) = qᵀ W k with W [Dq, Dk], no scaling. */
export function bilinearAttention(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  p: BilinearParams,
  options?: FamilyOptions,
): FamilyResult {
  return scoreTermsAttention(...bilinear("bilinearAttention", q, k, v, p, options));
}

/** bilinearAttention that never blocks the calling thread (the pool's workers compute it). */
export async function bilinearAttentionAsync(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  p: BilinearParams,
  options?: FamilyOptions,
): Promise<FamilyResult> {
  return scoreTermsAttentionAsync(...bilinear("bilinearAttentionAsync", q, k, v, p, options));
}

function bilinear(
  op: string,
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  p: BilinearParams,
  options: FamilyOptions | undefined,
): TermsCall {
  kernels(op); // NOT_INITIALIZED first
  const { w } = params(op, p, BILINEAR_KEYS);
  const term = { kind: "bilinear", weight: 1, w };
  const opts = readOptions<FamilyOptions>(op, options, FAMILY_OPTION_KEYS);
  return [op, q, k, v, [term], opts, () => "params"];
}

/**
 * Cosine attention: score(q, k) = cos(q, k) / temperature (default 1), each norm clamped below at
 * 1e-8, so a zero vector has cosine 0 with everything.
 */
export function cosineAttention(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options?: CosineOptions,
): FamilyResult {
  return scoreTermsAttention(...cosine("cosineAttention", q, k, v, options));
}

/** cosineAttention that never blocks the calling thread (the pool's workers compute it). */
export async function cosineAttentionAsync(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options?: CosineOptions,
): Promise<FamilyResult> {
  return scoreTermsAttentionAsync(...cosine("cosineAttentionAsync", q, k, v, options));
}

function cosine(
  op: string,
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options: CosineOptions | undefined,
): TermsCall {
  kernels(op); // NOT_INITIALIZED first
  const { temperature, ...opts } = readOptions<CosineOptions>(op, options, COSINE_OPTION_KEYS);
  const term = { kind: "cosine", weight: 1, temperature };
  return [op, q, k, v, [term], opts, () => "options"];
}

/**
 * Hybrid attention: score = Σ weight_t · score_t over `terms` (scaled dot, additive, bilinear,
 * cosine, each as in its own op), then one softmax. With one term of weight 1 it is that term's op.
 */
export function hybridAttention(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  p: HybridParams,
  options?: FamilyOptions,
): FamilyResult {
  return scoreTermsAttention(...hybrid("hybridAttention", q, k, v, p, options));
}

/** hybridAttention that never blocks the calling thread (the pool's workers compute it). */
export async function hybridAttentionAsync(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  p: HybridParams,
  options?: FamilyOptions,
): Promise<FamilyResult> {
  return scoreTermsAttentionAsync(...hybrid("hybridAttentionAsync", q, k, v, p, options));
}

function hybrid(
  op: string,
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  p: HybridParams,
  options: FamilyOptions | undefined,
): TermsCall {
  kernels(op); // NOT_INITIALIZED first
  const { terms } = params(op, p, HYBRID_KEYS);
  const opts = readOptions<FamilyOptions>(op, options, FAMILY_OPTION_KEYS);
  return [op, q, k, v, terms, opts];
}
