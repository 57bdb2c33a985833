// Peer for the benchmark: additive (Bahdanau) attention
//   out = softmax_j( Σ_a va[a] · tanh((q·Wqᵀ)[i, a] + (k·Wkᵀ)[j, a]) ) · v
// two ways:
//   tfjsAdditiveAttention   composed TensorFlow.js ops on the WASM backend (single thread)
//   plainAdditiveAttention  plain JavaScript on Float32Arrays
//
// "@tensorflow/tfjs-core" and "@tensorflow/tfjs-backend-wasm" have no "exports" map, so Node
// loads their "main" entries, the CommonJS bundles dist/tf-core.node.js and
// dist/tf-backend-wasm.node.js (both share one tfjs-core instance). Only the "wasm" backend is
// registered: the CPU backend package is a dependency, but the wasm bundle uses only its shared
// kernel helpers, so an unsupported op throws instead of silently falling back to JavaScript.
//
// Where the .wasm comes from: setWasmPaths() gets a map from each binary name to its absolute
// file path in node_modules/@tensorflow/tfjs-backend-wasm/dist (found with require.resolve).
// Under Node, Emscripten reads such a path with fs.readFileSync; fetch() is never used (it would
// be only with setWasmPaths(…, usePlatformFetch = true) or in a browser/worker). The backend
// picks tfjs-backend-wasm-simd.wasm when WebAssembly SIMD validates, tfjs-backend-wasm.wasm
// otherwise; the threaded-SIMD binary is never chosen in Node (WASM_HAS_MULTITHREAD_SUPPORT is
// hard-wired to false there, and we also set it to false), so no worker threads are started.
// Other ways that were tried: no setWasmPaths() at all also works in Node (Emscripten's default
// directory is the bundle's __dirname); a string prefix works only with a trailing "/" (it is
// concatenated with the file name); a file:// URL prefix works; usePlatformFetch = true fails
// ("Failed to parse URL" from Node's fetch on a plain path).
//
// Caveats of the packages themselves: tfjs-core alone does not register the chained tensor
// methods (x.reshape(…) is not a function), so only the functional ops (tf.reshape(x, …)) are
// used; and the Emscripten glue of the wasm bundle adds process-wide "uncaughtException" and
// "unhandledRejection" handlers that rethrow, so an uncaught error in any process importing this
// module exits with code 7 instead of 1.

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import {
  getThreadsCount,
  setThreadsCount,
  setWasmPaths,
  version_wasm as tfjsWasmVersion,
} from "@tensorflow/tfjs-backend-wasm";

/** Version of @tensorflow/tfjs-core in use (e.g. "4.22.0"). */
export const tfjsVersion = tf.version_core;

export { tfjsWasmVersion };

const WASM_BINARIES = [
  "tfjs-backend-wasm.wasm",
  "tfjs-backend-wasm-simd.wasm",
  "tfjs-backend-wasm-threaded-simd.wasm",
];

/** Directory holding the .wasm binaries: next to the package's main bundle (…/dist). */
function wasmDistDir() {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm"));
}

let initPromise = null;

/**
 * Selects the tfjs WASM backend (idempotent). Resolves to
 * { version, wasmVersion, backend, simd, wasmFile, wasmPath, threads }, where `wasmFile` is the
 * binary the backend asked for (observed, not guessed) and `threads` is XNNPACK's thread count.
 */
export function initTfjsWasm() {
  initPromise ??= doInit();
  return initPromise;
}

async function doInit() {
  const dir = wasmDistDir();
  for (const name of WASM_BINARIES) {
    if (!existsSync(path.join(dir, name))) throw new Error(`missing ${path.join(dir, name)}`);
  }

  // A file map whose getters record which entry the backend reads. setWasmPaths() reads every
  // entry once to check that none is missing, so the record is reset after that call; during
  // init the backend then reads exactly the one entry it loads.
  let requested = null;
  const fileMap = {};
  for (const name of WASM_BINARIES) {
    Object.defineProperty(fileMap, name, {
      enumerable: true,
      get() {
        requested = name;
        return path.join(dir, name);
      },
    });
  }
  setWasmPaths(fileMap); // usePlatformFetch = false: Emscripten reads the file with fs
  requested = null;

  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false); // already false under Node
  setThreadsCount(1); // XNNPACK thread pool size; no pool at all in the non-threaded binary

  // setBackend() resolves to false (and logs) instead of rejecting when initialization fails.
  if (!(await tf.setBackend("wasm"))) {
    throw new Error("tfjs: could not initialize the wasm backend");
  }
  await tf.ready();
  if (tf.getBackend() !== "wasm") throw new Error(`tfjs: backend is ${tf.getBackend()}, not wasm`);

  const simdSupported = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  return {
    version: tfjsVersion,
    wasmVersion: tfjsWasmVersion,
    backend: tf.getBackend(),
    simd: requested != null ? requested.includes("simd") : simdSupported,
    wasmFile: requested,
    wasmPath: requested != null ? path.join(dir, requested) : null,
    threads: getThreadsCount(),
  };
}

function checkLength(name, array, expected) {
  if (array.length !== expected) {
    throw new RangeError(`${name}: expected ${expected} elements, got ${array.length}`);
  }
}

/**
 * Additive attention with composed tfjs ops. Call (and await) initTfjsWasm() first.
 * Shapes (row-major Float32Arrays): q [B,Nq,Dq], k [B,Nk,Dk], v [B,Nk,Dv], wq [A,Dq], wk [A,Dk],
 * va [A]; run() returns out [B,Nq,Dv]. Input tensors are created on every run, as an
 * application feeding fresh data would; tf.tidy frees every intermediate.
 */
export function tfjsAdditiveAttention({ B, Nq, Nk, Dq, Dk, Dv, A }) {
  if (tf.getBackend() !== "wasm") throw new Error("call and await initTfjsWasm() first");
  return {
    run(q, k, v, wq, wk, va) {
      checkLength("q", q, B * Nq * Dq);
      checkLength("k", k, B * Nk * Dk);
      checkLength("v", v, B * Nk * Dv);
      checkLength("wq", wq, A * Dq);
      checkLength("wk", wk, A * Dk);
      checkLength("va", va, A);
      const out = tf.tidy(() => {
        const qT = tf.tensor2d(q, [B * Nq, Dq]);
        const kT = tf.tensor2d(k, [B * Nk, Dk]);
        const vT = tf.tensor3d(v, [B, Nk, Dv]);
        const wqT = tf.tensor2d(wq, [A, Dq]);
        const wkT = tf.tensor2d(wk, [A, Dk]);
        const vaT = tf.tensor2d(va, [A, 1]);
        const qp = tf.reshape(tf.matMul(qT, wqT, false, true), [B, Nq, 1, A]); // q·Wqᵀ
        const kp = tf.reshape(tf.matMul(kT, wkT, false, true), [B, 1, Nk, A]); // k·Wkᵀ
        const h = tf.tanh(tf.add(qp, kp)); // [B, Nq, Nk, A]
        const scores = tf.reshape(tf.matMul(tf.reshape(h, [B * Nq * Nk, A]), vaT), [B, Nq, Nk]);
        const weights = tf.softmax(scores); // over the last axis (Nk)
        return tf.matMul(weights, vT); // [B, Nq, Dv]
      });
      try {
        return out.dataSync();
      } finally {
        out.dispose();
      }
    },
    dispose() {}, // nothing outlives run(): its tensors are created and freed there
  };
}

/**
 * The same in plain JavaScript: project q and k once, then per (query, key) pair the score
 * Σ_a va[a]·tanh(qp[a] + kp[a]), a max-subtracted softmax over the keys, and the weighted sum of
 * the value rows. Same shapes as tfjsAdditiveAttention.
 */
export function plainAdditiveAttention(q, k, v, wq, wk, va, { B, Nq, Nk, Dq, Dk, Dv, A }) {
  const qp = new Float32Array(B * Nq * A);
  for (let r = 0; r < B * Nq; r++) {
    for (let a = 0; a < A; a++) {
      let s = 0;
      for (let d = 0; d < Dq; d++) s += q[r * Dq + d] * wq[a * Dq + d];
      qp[r * A + a] = s;
    }
  }
  const kp = new Float32Array(B * Nk * A);
  for (let r = 0; r < B * Nk; r++) {
    for (let a = 0; a < A; a++) {
      let s = 0;
      for (let d = 0; d < Dk; d++) s += k[r * Dk + d] * wk[a * Dk + d];
      kp[r * A + a] = s;
    }
  }

  const out = new Float32Array(B * Nq * Dv);
  const scores = new Float64Array(Nk); // JS numbers: no rounding between max, exp and sum
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Nq; i++) {
      const qRow = (b * Nq + i) * A;
      let max = -Infinity;
      for (let j = 0; j < Nk; j++) {
        const kRow = (b * Nk + j) * A;
        let s = 0;
        for (let a = 0; a < A; a++) s += va[a] * Math.tanh(qp[qRow + a] + kp[kRow + a]);
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = 0; j < Nk; j++) {
        const e = Math.exp(scores[j] - max);
        scores[j] = e;
        sum += e;
      }
      const o = (b * Nq + i) * Dv;
      for (let j = 0; j < Nk; j++) {
        const p = scores[j] / sum;
        const vRow = (b * Nk + j) * Dv;
        for (let d = 0; d < Dv; d++) out[o + d] += p * v[vRow + d];
      }
    }
  }
  return out;
}

/**
 * The gradients of scaled dot-product attention, softmax(scale·q·kᵀ)·v, with respect to q, k and v
 * for an upstream gradient dy, as TensorFlow.js ops on the WASM backend: the formulas tf.grads
 * would run (dV = Pᵀ·dY, dP = dY·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = scale·dS·K,
 * dK = scale·dSᵀ·Q), composed by hand because the Node bundle of tfjs-core registers no gradient
 * functions (its register_all_gradients module is ESM without file extensions, which Node cannot
 * load). Shapes [B·H, N, D]; run() returns [dq, dk, dv] as Float32Arrays.
 */
export function tfjsSdpaGradients({ B, H, Nq, Nk, D, Dv, causal = false }) {
  if (tf.getBackend() !== "wasm") throw new Error("call and await initTfjsWasm() first");
  const scale = 1 / Math.sqrt(D);
  const offset = Nk - Nq;
  // Causal: an additive bias of -1e9 above the lower-right diagonal (tfjs has no masked softmax).
  const bias = causal
    ? Float32Array.from({ length: Nq * Nk }, (_, x) =>
        x % Nk > Math.floor(x / Nk) + offset ? -1e9 : 0,
      )
    : undefined;
  return {
    run(q, k, v, dy) {
      const results = tf.tidy(() => {
        const qT = tf.tensor3d(q, [B * H, Nq, D]);
        const kT = tf.tensor3d(k, [B * H, Nk, D]);
        const vT = tf.tensor3d(v, [B * H, Nk, Dv]);
        const dyT = tf.tensor3d(dy, [B * H, Nq, Dv]);
        let scores = tf.mul(tf.matMul(qT, kT, false, true), tf.scalar(scale));
        if (bias) scores = tf.add(scores, tf.tensor2d(bias, [Nq, Nk]));
        const p = tf.softmax(scores);
        const dv = tf.matMul(p, dyT, true, false);
        const dp = tf.matMul(dyT, vT, false, true);
        const ds = tf.mul(tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))), tf.scalar(scale));
        return [tf.matMul(ds, kT), tf.matMul(ds, qT, true, false), dv];
      });
      try {
        return results.map((t) => t.dataSync());
      } finally {
        results.forEach((t) => t.dispose());
      }
    },
  };
}
