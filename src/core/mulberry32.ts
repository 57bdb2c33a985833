// mulberry32: the one small seeded generator of the package (MultiHeadAttention's seeded weight
// initialisation, the random sparse patterns, the demo's training), uniform in [0, 1), so that
// everything seeded reproduces from its seed in every runtime.

/** Uniform numbers in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
