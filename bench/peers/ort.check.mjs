// Correctness check for the onnxruntime-web peers: ORT output vs. a float64 reference.
// Usage: node bench/peers/ort.check.mjs   (exits 1 if any case is off by more than 1e-4)

import {
  createOrtDecode,
  createOrtMha,
  createOrtSdpa,
  ortVersion,
  referenceMha,
  referenceSdpa,
} from "./ort.mjs";
import { maxAbsErr, randomArray, rng } from "./check-helpers.mjs";

const TOLERANCE = 1e-4;

const sdpaCases = [
  { B: 1, H: 2, Nq: 5, Nk: 7, D: 8, Dv: 6, causal: false },
  { B: 1, H: 2, Nq: 5, Nk: 7, D: 8, Dv: 6, causal: true },
  { B: 2, H: 3, Nq: 16, Nk: 16, D: 16, Dv: 16, causal: false },
  { B: 2, H: 3, Nq: 16, Nk: 16, D: 16, Dv: 16, causal: true },
  // Nq > Nk: with bottom-right causal alignment the first query rows see no key at all.
  { B: 1, H: 1, Nq: 6, Nk: 3, D: 4, Dv: 5, causal: true },
];

const mhaCases = [
  { B: 2, N: 5, E: 16, H: 4 },
  { B: 1, N: 7, E: 24, H: 3 },
];

const decodeCases = [{ H: 2, Nk: 9, D: 8 }];
const DECODE_STEPS = 3; // runs of one session, each with a fresh q and K/V cache

let failed = false;
function report(label, maxErr) {
  const ok = maxErr <= TOLERANCE; // false for NaN
  failed ||= !ok;
  console.log(`${ok ? "ok  " : "FAIL"} ${label}  max abs err = ${maxErr.toExponential(2)}`);
}

console.log(`onnxruntime-web ${ortVersion}`);
const rand = rng(42);

for (const c of sdpaCases) {
  const { B, H, Nq, Nk, D, Dv } = c;
  const q = randomArray(B * H * Nq * D, rand, 2);
  const k = randomArray(B * H * Nk * D, rand, 2);
  const v = randomArray(B * H * Nk * Dv, rand, 2);

  const sdpa = await createOrtSdpa(c);
  const got = await sdpa.run(q, k, v);
  await sdpa.dispose();
  const want = referenceSdpa(q, k, v, c);
  report(
    `sdpa   B=${B} H=${H} Nq=${Nq} Nk=${Nk} D=${D} Dv=${Dv} causal=${c.causal}`,
    maxAbsErr(got, want),
  );
}

for (const c of mhaCases) {
  const { B, N, E, H } = c;
  // Weights as PyTorch initializes in_proj (Xavier uniform, bound √(6 / (E + E))); biases are
  // nonzero here (PyTorch starts them at 0) so that a misplaced bias shows.
  const bound = Math.sqrt(6 / (E + E));
  const weights = {};
  for (const name of ["wq", "wk", "wv", "wo"]) weights[name] = randomArray(E * E, rand, bound);
  for (const name of ["bq", "bk", "bv", "bo"]) weights[name] = randomArray(E, rand, 0.5);
  const x = randomArray(B * N * E, rand, 2);

  const mha = await createOrtMha({ ...c, ...weights });
  const got = await mha.run(x);
  await mha.dispose();
  const want = referenceMha(x, weights, c);
  report(`mha    B=${B} N=${N} E=${E} H=${H}`, maxAbsErr(got, want));
}

for (const c of decodeCases) {
  const { H, Nk, D } = c;
  const decode = await createOrtDecode(c);
  let maxErr = 0;
  for (let step = 0; step < DECODE_STEPS; step++) {
    const q = randomArray(H * D, rand, 2);
    const k = randomArray(H * Nk * D, rand, 2);
    const v = randomArray(H * Nk * D, rand, 2);
    const got = await decode.run(q, k, v);
    const want = referenceSdpa(q, k, v, { B: 1, H, Nq: 1, Nk, D, Dv: D });
    maxErr = Math.max(maxErr, maxAbsErr(got, want)); // a NaN sticks
  }
  await decode.dispose();
  report(`decode H=${H} Nk=${Nk} D=${D} (${DECODE_STEPS} steps, one session)`, maxErr);
}

process.exit(failed ? 1 : 0);
