// The `saved` handle of a forward call with keepForBackward: copies of its inputs, masks and state.

import { keep, type MhaParameters, type MhaSaved, type SavedState } from "./saved.js";
import { type Tensor } from "../../core/tensor.js";

// The opaque `saved` handle of a forward call; the weights are a snapshot, so setWeights() after
// the call does not change its gradients. Inputs not copied yet (`copied` false) are copied here.
export function keepSaved(owner: object, s: KeepArgs, readWeights: () => MhaParameters): MhaSaved {
  const copies =
    s.copied === true
      ? s
      : copyInputs(
          s.query,
          s.key,
          s.value,
          s.selfAttention,
          s.crossSame,
          s.mask,
          s.maskShape,
          s.keyMask,
        );
  const state: SavedState = {
    owner,
    weights: readWeights(),
    query: copies.query,
    key: copies.key,
    value: copies.value,
    keyGiven: s.keyGiven !== undefined,
    valueGiven: s.valueGiven !== undefined,
    B: s.B,
    Nq: s.Nq,
    Nk: s.Nk,
    q: s.q,
    k: s.k,
    v: s.v,
    attended: s.attended,
    lse: s.lse,
    mask: copies.mask as SavedState["mask"],
    keyMask: copies.keyMask,
    causal: s.causal,
    window: s.window,
  };
  return keep(state);
}

export interface InputCopies {
  copied: true;
  query: Tensor;
  key: Tensor;
  value: Tensor;
  mask?: Tensor<Uint8Array> | Tensor<Float32Array>;
  keyMask?: Tensor<Uint8Array>;
}

/** What a forward call hands to keepSaved: what it computed (as SavedState has it), its inputs. */
export interface KeepArgs extends Pick<
  SavedState,
  "B" | "Nq" | "Nk" | "q" | "k" | "v" | "attended" | "lse" | "keyMask" | "causal" | "window"
> {
  copied?: boolean;
  query: Tensor;
  key: Tensor;
  value: Tensor;
  keyGiven: Tensor | undefined;
  valueGiven: Tensor | undefined;
  selfAttention: boolean;
  crossSame: boolean;
  mask?: Tensor<Uint8Array | Float32Array> | Tensor<Uint8Array> | Tensor<Float32Array>;
  maskShape?: readonly number[];
}

// Copies in fresh JavaScript memory of everything backward reads of the caller's: the inputs (key
// and value the same copy where they were the same tensor) and the masks.
export function copyInputs(
  query: Tensor,
  key: Tensor,
  value: Tensor,
  selfAttention: boolean,
  crossSame: boolean,
  mask: Tensor<Uint8Array | Float32Array> | undefined,
  maskShape: readonly number[] | undefined,
  keyMask: Tensor<Uint8Array> | undefined,
): InputCopies {
  const queryCopy = copyTensor(query);
  const keyCopy = key === query ? queryCopy : copyTensor(key);
  return {
    copied: true,
    query: queryCopy,
    key: keyCopy,
    value: selfAttention || value === query ? queryCopy : crossSame ? keyCopy : copyTensor(value),
    mask: mask && (copyTensor(mask, maskShape) as Tensor<Uint8Array> | Tensor<Float32Array>),
    keyMask: keyMask && copyTensor(keyMask),
  };
}

/** A copy of `t` in fresh JavaScript memory (also of a WasmTensor), optionally seen as `shape`. */
function copyTensor<T extends Float32Array | Uint8Array>(
  t: Tensor<T>,
  shape: readonly number[] = t.shape,
): Tensor<T> {
  return { data: t.data.slice() as T, shape: [...shape] };
}
