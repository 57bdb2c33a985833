// MultiHeadAttention's options: their interfaces, the keys each may have, the constructor's checks.

import { AttentionError } from "../../core/errors.js";
import { type KVCache, type KVCacheOptions } from "./kv-cache.js";
import { type MhaSaved } from "./saved.js";
import { checkRopeConfig, type RopeConfig } from "../rope.js";
import { optionKeys } from "../../core/option-keys.js";
import { optBoolean, optFloat32, optInteger, readOptions } from "../../core/option-values.js";
import { MAX_HEAD_DIM } from "../../core/shapes.js";
import { describe, MAX_DIM, type Tensor } from "../../core/tensor.js";

/** Weights in PyTorch `nn.MultiheadAttention`'s layout: each matrix (out_features, in_features). */
export interface MultiHeadAttentionWeights {
  /** [E, E] */
  wq: Float32Array | Tensor;
  /** [E·Hkv/H, kdim] */
  wk: Float32Array | Tensor;
  /** [E·Hkv/H, vdim] */
  wv: Float32Array | Tensor;
  /** [E, E] */
  wo: Float32Array | Tensor;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  bo?: Float32Array;
}

export interface MultiHeadAttentionOptions {
  embedDim: number;
  numHeads: number;
  /** Key/value heads for grouped-query attention (must divide numHeads); default numHeads. */
  numKvHeads?: number;
  /** Feature size of `key`; default embedDim. */
  kdim?: number;
  /** Feature size of `value`; default embedDim. */
  vdim?: number;
  /** Biases on the four projections; default true. */
  bias?: boolean;
  /** Without weights, they are initialised as PyTorch does (Xavier uniform), from `seed`. */
  weights?: MultiHeadAttentionWeights;
  /** Rotary position embedding of queries and keys after projection (positions continue from a cache). */
  rope?: { base?: number; style?: "neox" | "gptj" };
  /** Seed of the weight initialisation; default 0. */
  seed?: number;
}

export interface MultiHeadAttentionForwardOptions {
  /** [B, Nk], 1 = real token, 0 = padding. Intersects with `mask`. */
  keyMask?: Tensor<Uint8Array>;
  /** Boolean or additive, broadcasting to [B,H,Nq,Nk]; PyTorch's [B·H, Nq, Nk] is accepted too. */
  mask?: Tensor<Uint8Array> | Tensor<Float32Array>;
  causal?: boolean;
  window?: readonly [number, number];
  /** Return the attention weights (default false). */
  needWeights?: boolean;
  /** Average the weights over heads, [B,Nq,Nk] (default true, as PyTorch); else [B,H,Nq,Nk]. */
  averageWeights?: boolean;
  /** Append this call's keys and values to the cache and attend over all of it. */
  cache?: KVCache;
  /**
   * Also return `saved`, what `backward()` needs (copies in JavaScript memory). Not with `cache`.
   */
  keepForBackward?: boolean;
}

/** What forward returns; `saved` with `keepForBackward: true`. */
export interface MultiHeadAttentionResult {
  /** [B, Nq, E] */
  output: Tensor;
  /** With `needWeights`: [B, Nq, Nk] averaged over heads, or [B, H, Nq, Nk]. */
  weights?: Tensor;
  /** With `keepForBackward`: the state to pass to `backward()`. */
  saved?: MhaSaved;
}

// The keys of each options object the module takes: any other key is a BAD_OPTION error.
export const CONSTRUCTOR_KEYS = optionKeys<MultiHeadAttentionOptions>({
  embedDim: true,
  numHeads: true,
  numKvHeads: true,
  kdim: true,
  vdim: true,
  bias: true,
  weights: true,
  rope: true,
  seed: true,
});
export const WEIGHT_KEYS = optionKeys<MultiHeadAttentionWeights>({
  wq: true,
  wk: true,
  wv: true,
  wo: true,
  bq: true,
  bk: true,
  bv: true,
  bo: true,
});
type RopeOptions = NonNullable<MultiHeadAttentionOptions["rope"]>;
export const ROPE_KEYS = optionKeys<RopeOptions>({
  base: true,
  style: true,
});
export const FORWARD_KEYS = optionKeys<MultiHeadAttentionForwardOptions>({
  keyMask: true,
  mask: true,
  causal: true,
  window: true,
  needWeights: true,
  averageWeights: true,
  cache: true,
  keepForBackward: true,
});
export const CACHE_KEYS = optionKeys<KVCacheOptions>({ batch: true, maxLength: true });

/** Forward options that keep the state for backward(): forward then returns `saved`. */
export type KeepForBackward = MultiHeadAttentionForwardOptions & { keepForBackward: true };

export const NAME = "MultiHeadAttention";
export const FORWARD = "MultiHeadAttention.forward";
export const BACKWARD = "MultiHeadAttention.backward";

/** The constructor's options, checked: the sizes, bias, seed and RoPE; the weights still unread. */
export interface CheckedOptions {
  E: number;
  H: number;
  Hkv: number;
  kdim: number;
  vdim: number;
  hd: number;
  kvDim: number;
  bias: boolean;
  seed: number;
  rope: RopeConfig | undefined;
  weights: MultiHeadAttentionWeights | undefined;
}

/** Checks the constructor's options (all but the weights, which weights.ts reads). */
export function checkOptions(options: MultiHeadAttentionOptions): CheckedOptions {
  if (options === undefined || options === null) {
    throw new AttentionError(
      "BAD_OPTION",
      `${NAME}: options must be an object { embedDim, numHeads, ... }, got ${describe(options)}`,
    );
  }
  const o = readOptions<MultiHeadAttentionOptions>(NAME, options, CONSTRUCTOR_KEYS);
  const E = optInteger(NAME, "embedDim", o.embedDim ?? missing("embedDim"), 1, MAX_DIM) ?? 0;
  const H = optInteger(NAME, "numHeads", o.numHeads ?? missing("numHeads"), 1, E) ?? 0;
  const Hkv = optInteger(NAME, "numKvHeads", o.numKvHeads, 1, H) ?? H;
  const kdim = optInteger(NAME, "kdim", o.kdim, 1, MAX_DIM) ?? E;
  const vdim = optInteger(NAME, "vdim", o.vdim, 1, MAX_DIM) ?? E;
  if (E % H !== 0) {
    throw new AttentionError(
      "BAD_OPTION",
      `${NAME}: embedDim ${E} is not divisible by numHeads ${H}`,
    );
  }
  if (H % Hkv !== 0) {
    throw new AttentionError(
      "BAD_OPTION",
      `${NAME}: numHeads ${H} is not divisible by numKvHeads ${Hkv}`,
    );
  }
  const hd = E / H;
  if (hd > MAX_HEAD_DIM) {
    throw new AttentionError(
      "BAD_OPTION",
      `${NAME}: the head dim embedDim / numHeads = ${E} / ${H} = ${hd} must be at most ${MAX_HEAD_DIM}`,
    );
  }
  const bias = optBoolean(NAME, "bias", o.bias) ?? true;
  const seed =
    optInteger(NAME, "seed", o.seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER) ?? 0;
  const kvDim = hd * Hkv;
  let ropeConfig: RopeConfig | undefined;
  if (o.rope !== undefined) {
    const rope = readOptions<RopeOptions>(NAME, o.rope, ROPE_KEYS, "rope");
    optFloat32(NAME, "rope.base", rope.base, { positive: true });
    ropeConfig = checkRopeConfig(NAME, "rope", rope, hd);
  }
  return { E, H, Hkv, kdim, vdim, hd, kvDim, bias, seed, rope: ropeConfig, weights: o.weights };
}

/**
 * The `window` option read once: a genuine array of two entries is copied (each read once) for
 * planAttention to check; anything else is passed on as is, for planAttention to refuse.
 */
export function readWindow(op: string, w: unknown): readonly [number, number] | undefined {
  if (w === undefined || !Array.isArray(w)) return w as undefined;
  try {
    const length: unknown = w.length;
    if (length !== 2) return w as unknown as readonly [number, number];
    return Object.freeze([w[0], w[1]]) as unknown as readonly [number, number];
  } catch (err) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: window cannot be read (${err instanceof Error ? err.message : String(err)})`,
    );
  }
}

function missing(name: string): never {
  throw new AttentionError("BAD_OPTION", `${NAME}: ${name} is required (a positive integer)`);
}
