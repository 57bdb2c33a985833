// What MultiHeadAttention.forward(..., { keepForBackward: true }) keeps for backward(): plain
// JavaScript copies (never views of WASM memory, so dispose() and memory growth cannot invalidate
// them, and nothing leaks), reachable only through an opaque handle checked against its module.

import { AttentionError } from "../../core/errors.js";
import { describe, type Tensor } from "../../core/tensor.js";

declare const savedBrand: unique symbol;

/**
 * The state a forward call with `keepForBackward: true` keeps for `backward()`: its inputs, the
 * projected (and rotated) queries, keys and values, the attention output before the output
 * projection, the log-sum-exp of each query row, the masks and options, and the weights it ran
 * with. Opaque: pass it back to the same module's `backward()` unchanged. It lives in JavaScript
 * memory and is garbage-collected with the handle.
 */
export interface MhaSaved {
  readonly [savedBrand]: true;
}

/** The parameters of a MultiHeadAttention in PyTorch layout (out_features, in_features). */
export interface MhaParameters {
  /** [E, E] */
  wq: Float32Array;
  /** [E·Hkv/H, kdim] */
  wk: Float32Array;
  /** [E·Hkv/H, vdim] */
  wv: Float32Array;
  /** [E, E] */
  wo: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  bo?: Float32Array;
}

/** What backward() reads. Arrays in the projections' row-major layout [B·N, features]. */
export interface SavedState {
  /** The module whose forward call made it. */
  owner: object;
  /** The weights of that call, read out of WASM memory when it finished. */
  weights: MhaParameters;
  /** Copies of the inputs; key and value are the same object as query where they were. */
  query: Tensor;
  key: Tensor;
  value: Tensor;
  /** Whether key and value were passed (their gradients are returned) or defaulted to query. */
  keyGiven: boolean;
  valueGiven: boolean;
  B: number;
  Nq: number;
  Nk: number;
  /** Projected queries after RoPE, [B·Nq, E]. */
  q: Float32Array;
  /** Projected keys after RoPE and values, [B·Nk, E·Hkv/H]. */
  k: Float32Array;
  v: Float32Array;
  /** The attention output (heads concatenated) before the output projection, [B·Nq, E]. */
  attended: Float32Array;
  /** [B, H, Nq] */
  lse: Float32Array;
  /** The forward mask, PyTorch's [B·H, Nq, Nk] form already read as [B, H, Nq, Nk]. */
  mask?: Tensor<Uint8Array> | Tensor<Float32Array>;
  keyMask?: Tensor<Uint8Array>;
  causal?: boolean;
  window?: readonly [number, number];
}

const states = new WeakMap<MhaSaved, SavedState>();

/** A fresh opaque handle for `state`. */
export function keep(state: SavedState): MhaSaved {
  const handle = Object.freeze(Object.create(null) as object) as MhaSaved;
  states.set(handle, state);
  return handle;
}

/** The state behind `saved`, which must come from `owner`'s forward with keepForBackward. */
export function savedState(op: string, saved: unknown, owner: object): SavedState {
  const state =
    typeof saved === "object" && saved !== null ? states.get(saved as MhaSaved) : undefined;
  if (state === undefined) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: saved must be what forward(..., { keepForBackward: true }) returned as \`saved\`, ` +
        `got ${describe(saved)}`,
    );
  }
  if (state.owner !== owner) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: saved comes from the forward call of another MultiHeadAttention`,
    );
  }
  return state;
}
