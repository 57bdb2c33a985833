// a·b + c on four lanes: the fused f32x4.relaxed_madd in the relaxed-SIMD build (one rounding, one
// instruction, and no register for the product), a multiply then an add in the SIMD128 build.
// ASC_FEATURE_RELAXED_SIMD is a compile-time constant, so each build keeps one branch.
export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}
