// Reading attention: the entropy of attention distributions and attention rollout (Abnar & Zuidema
// 2020). Entropy is one pass of float64 arithmetic in JavaScript; rollout's matrix products run on
// the SIMD GEMM (linear).

import { AttentionError, formatShape } from "../core/errors.js";
import { linear } from "../ops/linear.js";
import { optionKeys } from "../core/option-keys.js";
import { optBoolean, readOptions } from "../core/option-values.js";
import { kernels } from "../runtime/runtime.js";
import { product } from "../core/shapes.js";
import { describe, readTensor, type Tensor, type TensorInput } from "../core/tensor.js";

/**
 * Entropy −Σ p·ln p (natural log, 0·ln 0 = 0) of each distribution along the last axis: weights
 * [..., N] → [...]. A row of zeros (a fully masked query) has entropy 0, and so has a row with no
 * keys (N = 0: weights [3, 0] give [0, 0, 0]). Pure JavaScript: works before init().
 */
export function attentionEntropy(weights: TensorInput): Tensor {
  const op = "attentionEntropy";
  const w = readTensor<Float32Array>(op, "weights", weights, ["float32"]);
  const s = w.shape;
  if (s.length < 1) {
    throw new AttentionError("SHAPE_MISMATCH", `${op}: weights must have rank >= 1, got shape []`);
  }
  const n = s[s.length - 1];
  const lead = s.slice(0, -1);
  const rows = product(lead);
  // With N = 0 the data is empty whatever the leading dims: the rows exist only in the shape.
  if (n === 0 && rows > MAX_EMPTY_ROWS) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: weights has shape ${formatShape(s)}: ${rows} rows with no keys would make an output of ` +
        `${rows} entropies; at most ${MAX_EMPTY_ROWS} are supported`,
    );
  }
  const out = new Float32Array(rows);
  const data = w.data;
  for (let r = 0; r < rows && n > 0; r++) {
    let h = 0;
    for (let j = r * n; j < (r + 1) * n; j++) {
      const p = data[j];
      if (p > 0) h -= p * Math.log(p);
    }
    out[r] = h;
  }
  return { data: out, shape: lead };
}

// An output the input does not pay for (rows of no keys) is bounded: 2^28 floats, 1 GiB.
const MAX_EMPTY_ROWS = 2 ** 28;

/** The most layers attentionRollout takes. */
const MAX_LAYERS = 4096;

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
 * Â_{L−1} · … · Â_1 · Â_0 (later layers multiply on the left). Layers need at least one head
 * (H >= 1). Its matrix products run on the SIMD GEMM, so unlike attentionEntropy it needs init():
 * before, it throws NOT_INITIALIZED like the ops.
 */
export function attentionRollout(layers: readonly TensorInput[], options?: RolloutOptions): Tensor {
  const op = "attentionRollout";
  kernels(op); // NOT_INITIALIZED first, however many layers
  const count: unknown = Array.isArray(layers) ? layers.length : undefined;
  if (typeof count !== "number" || count < 1 || count > MAX_LAYERS) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: layers must be an array of 1 to ${MAX_LAYERS} tensors, got ${describe(layers)}`,
    );
  }
  const given: unknown[] = [];
  for (let l = 0; l < count; l++) given.push(Object.hasOwn(layers, l) ? layers[l] : undefined);
  const tensors = given.map((layer, l) =>
    readTensor<Float32Array>(op, `layers[${l}]`, layer, ["float32"]),
  );
  const o = readOptions<RolloutOptions>(op, options, ROLLOUT_KEYS);
  const fusion = o.headFusion ?? "mean";
  if (fusion !== "mean" && fusion !== "max" && fusion !== "min") {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: headFusion must be "mean", "max" or "min", got ${describe(fusion)}`,
    );
  }
  const residual = optBoolean(op, "residual", o.residual) ?? true;
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
  if (H === 0) {
    // No head: no attention to fuse (the mean would be 0/0, the max -Infinity).
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: layers have shape ${formatShape(s)} but rollout needs at least one head (H >= 1)`,
    );
  }
  const out = new Float32Array(B * N * N);
  if (N === 0) return { data: out, shape: [B, N, N] };
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
