// Reading attention: the entropy of attention distributions and attention rollout (Abnar & Zuidema
// 2020). Entropy is one pass of float64 arithmetic in JavaScript; rollout's matrix products run on
// the SIMD GEMM (linear).

import { AttentionError, formatShape } from "./errors.js";
import { linear } from "./linear.js";
import { optionKeys } from "./option-keys.js";
import {
  asTensor,
  checkOptionsObject,
  checkTensor,
  describe,
  type Tensor,
  type TensorInput,
} from "./tensor.js";

/**
 * Entropy −Σ p·ln p (natural log, 0·ln 0 = 0) of each distribution along the last axis: weights
 * [..., N] → [...]. A row of zeros (a fully masked query) has entropy 0.
 */
export function attentionEntropy(weights: TensorInput): Tensor {
  const op = "attentionEntropy";
  weights = asTensor(op, "weights", weights);
  checkTensor(op, "weights", weights, ["float32"]);
  const s = weights.shape;
  if (s.length < 1) {
    throw new AttentionError("SHAPE_MISMATCH", `${op}: weights must have rank >= 1, got shape []`);
  }
  const n = s[s.length - 1];
  const rows = n === 0 ? 0 : weights.data.length / n;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let h = 0;
    for (let j = r * n; j < (r + 1) * n; j++) {
      const p = weights.data[j];
      if (p > 0) h -= p * Math.log(p);
    }
    out[r] = h;
  }
  return { data: out, shape: s.slice(0, -1) };
}

export interface RolloutOptions {
  /** How heads are fused per layer: "mean" (default), "max" or "min". */
  headFusion?: "mean" | "max" | "min";
  /** Add the identity for the residual connection before normalising rows (default true). */
  residual?: boolean;
}

const ROLLOUT_KEYS = optionKeys<RolloutOptions>({ headFusion: true, residual: true });

/**
 * Attention rollout over layers [B,H,N,N] each (layers[0] nearest the input): per layer fuse the
 * heads, add the identity (residual), divide each row by its sum; the result [B,N,N] is
 * Â_{L−1} · … · Â_1 · Â_0 (later layers multiply on the left).
 */
export function attentionRollout(
  layers: readonly TensorInput[],
  options: RolloutOptions = {},
): Tensor {
  const op = "attentionRollout";
  if (!Array.isArray(layers) || layers.length === 0) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: layers must be a non-empty array, got ${describe(layers)}`,
    );
  }
  const tensors: Tensor[] = layers.map((layer: TensorInput, l: number) =>
    asTensor(op, `layers[${l}]`, layer),
  );
  checkOptionsObject(op, options, ROLLOUT_KEYS);
  const fusion = options.headFusion ?? "mean";
  if (fusion !== "mean" && fusion !== "max" && fusion !== "min") {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: headFusion must be "mean", "max" or "min", got ${describe(fusion)}`,
    );
  }
  const residual = options.residual ?? true;
  tensors.forEach((layer, l) => checkTensor(op, `layers[${l}]`, layer, ["float32"]));
  const s = tensors[0].shape;
  if (s.length !== 4 || s[2] !== s[3]) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: layers[0] has shape ${formatShape(s)} but must be [B,H,N,N]`,
    );
  }
  const [B, H, N] = s;
  tensors.forEach((layer, l) => {
    if (layer.shape.join() !== s.join()) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: layers[${l}] has shape ${formatShape(layer.shape)} but must match layers[0] ${formatShape(s)}`,
      );
    }
  });
  const out = new Float32Array(B * N * N);
  for (let b = 0; b < B; b++) {
    let rollout: Float32Array | undefined;
    for (const layer of tensors) {
      const a = fuseAndNormalise(layer.data, b, H, N, fusion, residual);
      // rollout ← Â · rollout, i.e. y = Â · (rolloutᵀ)ᵀ with linear(x = Â, w = rolloutᵀ).
      rollout =
        rollout === undefined ? a : linear({ data: a, shape: [N, N] }, transpose(rollout, N)).data;
    }
    out.set(rollout!, b * N * N);
  }
  return { data: out, shape: [B, N, N] };
}

function fuseAndNormalise(
  data: Float32Array,
  b: number,
  H: number,
  N: number,
  fusion: "mean" | "max" | "min",
  residual: boolean,
): Float32Array {
  const a = new Float32Array(N * N);
  for (let i = 0; i < N * N; i++) {
    let acc = fusion === "max" ? -Infinity : fusion === "min" ? Infinity : 0;
    for (let h = 0; h < H; h++) {
      const x = data[(b * H + h) * N * N + i];
      acc = fusion === "max" ? Math.max(acc, x) : fusion === "min" ? Math.min(acc, x) : acc + x;
    }
    a[i] = fusion === "mean" ? acc / H : acc;
  }
  for (let r = 0; r < N; r++) {
    if (residual) a[r * N + r] += 1;
    let sum = 0;
    for (let c = 0; c < N; c++) sum += a[r * N + c];
    if (sum > 0) for (let c = 0; c < N; c++) a[r * N + c] /= sum;
  }
  return a;
}

function transpose(m: Float32Array, n: number): Float32Array {
  const t = new Float32Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) t[c * n + r] = m[r * n + c];
  return t;
}
