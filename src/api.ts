// The public API shared by every entry (index.ts, workerd.ts, edge-light.ts): everything but init.
// It is documented in README.md; every export here is part of it.

export {
  memoryStats,
  runtimeInfo,
  terminateThreads,
  type Build,
  type InitOptions,
  type WasmSource,
} from "./runtime/runtime.js";
export { AttentionError, type AttentionErrorCode } from "./core/errors.js";
export { type DimsTensor, type Tensor, type TensorInput } from "./core/tensor.js";
export { allocTensor, type WasmTensor } from "./runtime/wasm-tensor.js";
export {
  scaledDotProductAttention,
  scaledDotProductAttentionAsync,
  type ScaledDotProductAttentionOptions,
  type AttentionResult,
} from "./ops/sdpa.js";
export { softmax, type SoftmaxOptions } from "./ops/softmax.js";
export {
  linearBackward,
  scaledDotProductAttentionBackward,
  scaledDotProductAttentionBackwardAsync,
  type AttentionGradients,
  type BackwardOptions,
} from "./ops/backward.js";
export { linear, linearAsync } from "./ops/linear.js";
export { MultiHeadAttention } from "./ops/mha/mha.js";
export type {
  MultiHeadAttentionOptions,
  MultiHeadAttentionWeights,
  MultiHeadAttentionForwardOptions,
  MultiHeadAttentionResult,
  KeepForBackward,
} from "./ops/mha/options.js";
export type { MultiHeadAttentionGradients } from "./ops/mha/backward.js";
export type { MhaSaved, MhaParameters } from "./ops/mha/saved.js";
export type { KVCache, KVCacheOptions } from "./ops/mha/kv-cache.js";
export { applyRope, type ApplyRopeOptions } from "./ops/rope.js";
export {
  additiveAttention,
  additiveAttentionAsync,
  bilinearAttention,
  bilinearAttentionAsync,
  cosineAttention,
  cosineAttentionAsync,
  hybridAttention,
  hybridAttentionAsync,
  type CosineOptions,
  type FamilyOptions,
  type FamilyResult,
  type Matrix,
  type Vector,
  type ScoreTerm,
} from "./ops/family/ops.js";
export {
  blockSparseAttention,
  blockSparseAttentionAsync,
  type BlockSparseOptions,
} from "./ops/family/block-sparse.js";
export { sparsePatterns } from "./ops/family/sparse-patterns.js";
export { hardAttention, hardAttentionAsync, type HardAttentionOptions } from "./ops/family/hard.js";
export {
  attentionPooling,
  attentionPoolingAsync,
  type PoolingOptions,
} from "./ops/family/pooling.js";
export { alibiSlopes } from "./ops/alibi.js";
export { attentionEntropy, attentionRollout, type RolloutOptions } from "./analysis/analysis.js";
export { renderHeatmapSvg, type HeatmapOptions } from "./analysis/heatmap.js";
