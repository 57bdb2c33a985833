// AssemblyScript probe for bench/read-bandwidth.mjs: sums a buffer with four v128 loads per step,
// the plain sequential read that bounds a memory-bound kernel such as a decode step.
export function readSum(ptr: usize, bytes: usize): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  const end = ptr + bytes;
  while (ptr < end) {
    a0 = f32x4.add(a0, v128.load(ptr));
    a1 = f32x4.add(a1, v128.load(ptr, 16));
    a2 = f32x4.add(a2, v128.load(ptr, 32));
    a3 = f32x4.add(a3, v128.load(ptr, 48));
    ptr += 64;
  }
  return f32x4.extract_lane(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), 0);
}
