// Correctness check for the onnxruntime-web SDPA peer: ORT output vs. a float64 reference.
// Usage: node bench/peers/ort.check.mjs   (exits 1 if any case is off by more than 1e-4)

import { createOrtSdpa, ortVersion, referenceSdpa } from "./ort.mjs";

const TOLERANCE = 1e-4;

const cases = [
  { B: 1, H: 2, Nq: 5, Nk: 7, D: 8, Dv: 6, causal: false },
  { B: 1, H: 2, Nq: 5, Nk: 7, D: 8, Dv: 6, causal: true },
  { B: 2, H: 3, Nq: 16, Nk: 16, D: 16, Dv: 16, causal: false },
  { B: 2, H: 3, Nq: 16, Nk: 16, D: 16, Dv: 16, causal: true },
  // Nq > Nk: with bottom-right causal alignment the first query rows see no key at all.
  { B: 1, H: 1, Nq: 6, Nk: 3, D: 4, Dv: 5, causal: true },
];

// Small deterministic PRNG (mulberry32) so failures are reproducible.
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomArray(n, rand) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rand() * 4 - 2; // uniform in [-2, 2)
  return a;
}

console.log(`onnxruntime-web ${ortVersion}`);
const rand = rng(42);
let failed = false;
for (const c of cases) {
  const { B, H, Nq, Nk, D, Dv } = c;
  const q = randomArray(B * H * Nq * D, rand);
  const k = randomArray(B * H * Nk * D, rand);
  const v = randomArray(B * H * Nk * Dv, rand);

  const sdpa = await createOrtSdpa(c);
  const got = await sdpa.run(q, k, v);
  await sdpa.dispose();
  const want = referenceSdpa(q, k, v, c);

  let maxErr = got.length === want.length ? 0 : Infinity;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= maxErr)) maxErr = err; // also catches NaN
  }
  const ok = maxErr <= TOLERANCE;
  failed ||= !ok;
  console.log(
    `${ok ? "ok  " : "FAIL"} B=${B} H=${H} Nq=${Nq} Nk=${Nk} D=${D} Dv=${Dv} causal=${c.causal}` +
      `  max abs err = ${maxErr.toExponential(2)}`,
  );
}
process.exit(failed ? 1 : 0);
