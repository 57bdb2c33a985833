// The options of an attention call, shared by every op that runs the attention engine: the public
// ScaledDotProductAttentionOptions, their key lists, and what the engine returns.

import { optionKeys } from "../core/option-keys.js";
import { type Tensor } from "../core/tensor.js";

/** Options of `scaledDotProductAttention`. */
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

export const DROPOUT_KEYS = optionKeys<NonNullable<ScaledDotProductAttentionOptions["dropout"]>>({
  p: true,
  seed: true,
});

/** What the attention ops return. Arrays are fresh copies owned by the caller (or `out`). */
export interface AttentionResult {
  output: Tensor;
  weights?: Tensor;
  lse?: Tensor;
}

/** The options the kernel understands: those of scaledDotProductAttention but `out`. */
export type AttentionOptions = Omit<ScaledDotProductAttentionOptions, "out">;
