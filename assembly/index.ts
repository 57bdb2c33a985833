// The kernels of wasm-attention. Every export is a pure function of pointers into linear memory and
// sizes; the TypeScript loader (src/runtime.ts) owns all allocation.

export { sdpaForward, sdpaScratchBytes } from "./sdpa";
export { softmaxForward } from "./softmax";

/** First byte of linear memory that the loader may use: everything below holds static data. */
export function heapBase(): usize {
  return __heap_base;
}
export { gemm, gemmScratchBytes, packWeights, packedWeightsBytes } from "./gemm";
export { ropeApply } from "./rope";
export { normalizeRows, additiveScores, tanhInPlace } from "./family";
export { hardAttention, hardAttentionScratchBytes } from "./hard";

/** 1 in the relaxed-SIMD build (fused multiply-add in the micro-kernels), 0 in the SIMD128 build. */
export function relaxedSimd(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
