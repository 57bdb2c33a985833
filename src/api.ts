// The public API shared by every entry (index.ts, workerd.ts, edge-light.ts): everything but init.
// It is documented in README.md; every export here is part of it.

export { memoryStats, type InitOptions, type WasmSource } from "./runtime";
export { AttentionError, type AttentionErrorCode } from "./errors";
export { allocTensor, type Tensor, type WasmTensor } from "./tensor";
export {
  scaledDotProductAttention,
  type ScaledDotProductAttentionOptions,
  type AttentionResult,
} from "./sdpa";
export { softmax } from "./softmax";
export { linear } from "./linear";
export {
  MultiHeadAttention,
  type MultiHeadAttentionOptions,
  type MultiHeadAttentionWeights,
  type MultiHeadAttentionForwardOptions,
} from "./mha";
export type { KVCache } from "./kv-cache";
export { applyRope, type ApplyRopeOptions } from "./rope";
export {
  additiveAttention,
  bilinearAttention,
  cosineAttention,
  hybridAttention,
  type FamilyOptions,
  type FamilyResult,
  type Matrix,
  type Vector,
  type ScoreTerm,
} from "./family/ops";
export { blockSparseAttention, type BlockSparseOptions } from "./family/block-sparse";
export { sparsePatterns } from "./family/sparse-patterns";
export { hardAttention, type HardAttentionOptions } from "./family/hard";
export { attentionPooling } from "./family/pooling";
export { alibiSlopes } from "./alibi";
