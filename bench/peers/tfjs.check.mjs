// Correctness check for the TensorFlow.js peer: tfjs (WASM backend) and plain-JavaScript additive
// attention vs. a float64 reference.
// Usage: node bench/peers/tfjs.check.mjs   (exits 1 if any case is off by more than 1e-4, if
// tensors leak, or if the backend tried to fetch anything while initializing)

import * as tf from "@tensorflow/tfjs-core";
import { initTfjsWasm, plainAdditiveAttention, tfjsAdditiveAttention } from "./tfjs.mjs";
import { maxAbsErr, randomArray, rng } from "./check-helpers.mjs";

const TOLERANCE = 1e-4;

const cases = [
  { B: 2, Nq: 5, Nk: 7, Dq: 6, Dk: 4, Dv: 3, A: 8 },
  { B: 1, Nq: 1, Nk: 9, Dq: 5, Dk: 5, Dv: 4, A: 3 },
  { B: 3, Nq: 8, Nk: 1, Dq: 4, Dk: 7, Dv: 5, A: 16 },
  { B: 1, Nq: 16, Nk: 24, Dq: 32, Dk: 32, Dv: 32, A: 32 },
];

/** Float64 reference, written directly from the definition (no precomputed projections). */
function referenceAdditive(q, k, v, wq, wk, va, { B, Nq, Nk, Dq, Dk, Dv, A }) {
  const out = new Float64Array(B * Nq * Dv);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Nq; i++) {
      const scores = new Float64Array(Nk);
      for (let j = 0; j < Nk; j++) {
        let s = 0;
        for (let a = 0; a < A; a++) {
          let x = 0;
          for (let d = 0; d < Dq; d++) x += q[(b * Nq + i) * Dq + d] * wq[a * Dq + d];
          for (let d = 0; d < Dk; d++) x += k[(b * Nk + j) * Dk + d] * wk[a * Dk + d];
          s += va[a] * Math.tanh(x);
        }
        scores[j] = s;
      }
      const max = Math.max(...scores);
      let sum = 0;
      for (let j = 0; j < Nk; j++) sum += scores[j] = Math.exp(scores[j] - max);
      for (let j = 0; j < Nk; j++) {
        for (let d = 0; d < Dv; d++) {
          out[(b * Nq + i) * Dv + d] += (scores[j] / sum) * v[(b * Nk + j) * Dv + d];
        }
      }
    }
  }
  return out;
}

let failed = false;
function report(label, maxErr) {
  const ok = maxErr <= TOLERANCE; // false for NaN
  failed ||= !ok;
  console.log(`${ok ? "ok  " : "FAIL"} ${label}  max abs err = ${maxErr.toExponential(2)}`);
}

// Any fetch() during backend initialization would be a download attempt: count them.
const realFetch = globalThis.fetch;
let fetchCalls = 0;
globalThis.fetch = (...args) => {
  fetchCalls++;
  return realFetch(...args);
};
const info = await initTfjsWasm();
globalThis.fetch = realFetch;

console.log(
  `@tensorflow/tfjs-core ${info.version}, tfjs-backend-wasm ${info.wasmVersion}, ` +
    `backend ${info.backend}, SIMD ${info.simd}, threads ${info.threads}`,
);
console.log(`wasm binary: ${info.wasmPath}`);
console.log(`fetch() calls during init: ${fetchCalls}`);
if (fetchCalls !== 0) failed = true;

const rand = rng(7);
for (const c of cases) {
  const { B, Nq, Nk, Dq, Dk, Dv, A } = c;
  const q = randomArray(B * Nq * Dq, rand, 1);
  const k = randomArray(B * Nk * Dk, rand, 1);
  const v = randomArray(B * Nk * Dv, rand, 2);
  // Projections scaled like Xavier init; va large enough that the softmax is far from uniform.
  const wq = randomArray(A * Dq, rand, Math.sqrt(6 / (A + Dq)));
  const wk = randomArray(A * Dk, rand, Math.sqrt(6 / (A + Dk)));
  const va = randomArray(A, rand, 2);
  const want = referenceAdditive(q, k, v, wq, wk, va, c);
  const shape = `B=${B} Nq=${Nq} Nk=${Nk} Dq=${Dq} Dk=${Dk} Dv=${Dv} A=${A}`;

  const tensorsBefore = tf.memory().numTensors;
  const attn = tfjsAdditiveAttention(c);
  const got = attn.run(q, k, v, wq, wk, va);
  attn.run(q, k, v, wq, wk, va); // a second run on the same object
  attn.dispose();
  const leaked = tf.memory().numTensors - tensorsBefore;
  report(`tfjs   ${shape}`, maxAbsErr(got, want));
  if (leaked !== 0) {
    console.log(`FAIL tfjs   ${shape}  ${leaked} tensors leaked`);
    failed = true;
  }

  report(`plain  ${shape}`, maxAbsErr(plainAdditiveAttention(q, k, v, wq, wk, va, c), want));
}

process.exit(failed ? 1 : 0);
