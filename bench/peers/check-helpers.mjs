// Shared by the peer checks (ort.check.mjs, tfjs.check.mjs): reproducible inputs and a NaN-aware
// error measure.

/** Small deterministic PRNG (mulberry32) so failures are reproducible. */
export function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [-bound, bound). */
export function randomArray(n, rand, bound) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * bound;
  return a;
}

/** Max |got - want|; Infinity on a length mismatch, NaN if any element is NaN. */
export function maxAbsErr(got, want) {
  if (got.length !== want.length) return Infinity;
  let maxErr = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (Number.isNaN(err)) return NaN;
    if (err > maxErr) maxErr = err;
  }
  return maxErr;
}
