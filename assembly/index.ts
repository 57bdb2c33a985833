// The kernels of wasm-attention. Every export is a pure function of pointers into linear memory and
// sizes; the TypeScript loader (src/runtime/runtime.ts) owns all allocation.

export { sdpaForward, sdpaScratchBytes } from "./sdpa";
export { sdpaBackward, sdpaBackwardScratchBytes } from "./sdpa-backward";
export { softmaxForward } from "./softmax";

/** First byte of linear memory that the loader may use: everything below holds static data. */
export function heapBase(): usize {
  return __heap_base;
}
export { gemm, gemmScratchBytes, packWeights, packedWeightsBytes } from "./gemm";
export { ropeApply } from "./rope";
export { normalizeRows, additiveScores, tanhInPlace } from "./family";
export { hardAttention, hardAttentionScratchBytes } from "./hard";

/** Which build this is: 0 scalar (no SIMD), 1 SIMD128, 2 relaxed SIMD (fused multiply-add). */
export function buildKind(): i32 {
  if (!ASC_FEATURE_SIMD) return 0;
  return ASC_FEATURE_RELAXED_SIMD ? 2 : 1;
}
