// A seeded generator (mulberry32), so that a training run reproduces from its seed.

export type Random = () => number;

/** Uniform numbers in [0, 1) from a 32-bit seed. */
export function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in [-bound, bound) (float32 array of n). */
export function uniformArray(random: Random, n: number, bound: number): Float32Array {
  return Float32Array.from({ length: n }, () => (random() * 2 - 1) * bound);
}
