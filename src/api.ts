// The public API shared by every entry (index.ts, workerd.ts, edge-light.ts): everything but init.
// It is documented in README.md; every export here is part of it.

export {
  memoryStats,
  runtimeInfo,
  terminateThreads,
  type Build,
  type InitOptions,
  type WasmSource,
} from "./runtime.js";
export { AttentionError, type AttentionErrorCode } from "./errors.js";
export {
  allocTensor,
  type DimsTensor,
  type Tensor,
  type TensorInput,
  type WasmTensor,
} from "./tensor.js";
export {
  scaledDotProductAttention,
  scaledDotProductAttentionAsync,
  type ScaledDotProductAttentionOptions,
  type AttentionResult,
} from "./sdpa.js";
export { softmax, type SoftmaxOptions } from "./softmax.js";
export {
  linearBackward,
  scaledDotProductAttentionBackward,
  scaledDotProductAttentionBackwardAsync,
  type AttentionGradients,
  type BackwardOptions,
} from "./backward.js";
export { linear, linearAsync } from "./linear.js";
export {
  MultiHeadAttention,
  type MultiHeadAttentionOptions,
  type MultiHeadAttentionWeights,
  type MultiHeadAttentionForwardOptions,
  type MultiHeadAttentionResult,
  type KeepForBackward,
} from "./mha.js";
export type { MultiHeadAttentionGradients } from "./mha-backward.js";
export type { MhaSaved, MhaParameters } from "./mha-saved.js";
export type { KVCache, KVCacheOptions } from "./kv-cache.js";
export { applyRope, type ApplyRopeOptions } from "./rope.js";
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
} from "./family/ops.js";
export {
  blockSparseAttention,
  blockSparseAttentionAsync,
  type BlockSparseOptions,
} from "./family/block-sparse.js";
export { sparsePatterns } from "./family/sparse-patterns.js";
export { hardAttention, hardAttentionAsync, type HardAttentionOptions } from "./family/hard.js";
export { attentionPooling, attentionPoolingAsync, type PoolingOptions } from "./family/pooling.js";
export { alibiSlopes } from "./alibi.js";
export { attentionEntropy, attentionRollout, type RolloutOptions } from "./analysis.js";
export { renderHeatmapSvg, type HeatmapOptions } from "./heatmap.js";
