// Benchmark: projections and multi-head attention. wasm-attention beside ONNX Runtime Web (WASM
// backend, 1 thread) in the same run, on the same inputs and weights. Prints Markdown tables.
//
//   node bench/mha.mjs        (npm run bench runs it after bench/sdpa.mjs)
import os from "node:os";
import {
  init,
  linear,
  MultiHeadAttention,
  scaledDotProductAttention,
  allocTensor,
} from "../dist/index.js";
import { createOrtMha, createOrtDecode, ortVersion } from "./peers/ort.mjs";
import { measure, mhaWeights, randomArray, machine, maxAbsDiff } from "./timing.mjs";

await init();
// Let V8 tier the kernels up before anything is timed.
{
  const x = { data: randomArray(64 * 256, 5), shape: [64, 256] };
  const w = randomArray(256 * 256, 6);
  for (let i = 0; i < 30; i++) linear(x, w);
  const t = { data: randomArray(4 * 128 * 64, 9), shape: [1, 4, 128, 64] };
  for (let i = 0; i < 30; i++) scaledDotProductAttention(t, t, t);
}

console.log(`# Projections and multi-head attention, one thread`);
console.log(`${machine(os)}; onnxruntime-web ${ortVersion}\n`);

// ---- linear: 512 × 768 × 768 ----
{
  const [M, K, N] = [512, 768, 768];
  const flops = 2 * M * K * N;
  const x = { data: randomArray(M * K, 1), shape: [M, K] };
  const w = randomArray(N * K, 2);
  const b = randomArray(N, 3);
  const plain = await measure(() => linear(x, w, b));
  const xw = allocTensor([M, K]);
  const ww = allocTensor([N, K]);
  xw.data.set(x.data);
  ww.data.set(w);
  const resident = await measure(() => linear(xw, ww, b));
  xw.free();
  ww.free();
  const g = (t) => (flops / t / 1e6).toFixed(1);
  console.log(`## linear, x [${M}, ${K}] · Wᵀ [${K}, ${N}] + b\n`);
  console.log(`| inputs | ms | GFLOP/s |`);
  console.log(`|---|---|---|`);
  console.log(
    `| Float32Arrays (copied in, W packed per call) | ${plain.median.toFixed(2)} | ${g(plain.median)} |`,
  );
  console.log(
    `| allocTensor (in WASM memory, W packed per call) | ${resident.median.toFixed(2)} | ${g(resident.median)} |`,
  );
  console.log();
}

// ---- MultiHeadAttention forward, self-attention with projections ----
console.log(`## MultiHeadAttention.forward, self-attention, E = 768, H = 12, B = 1\n`);
console.log(`| N | wasm-attention ms | ORT Web ms | × ORT | max abs diff |`);
console.log(`|---|---|---|---|---|`);
for (const N of [128, 512]) {
  const [B, E, H] = [1, 768, 12];
  const weights = mhaWeights(E);
  const x = { data: randomArray(B * N * E, 19), shape: [B, N, E] };
  const mha = new MultiHeadAttention({ embedDim: E, numHeads: H, weights });
  const ours = await measure(() => mha.forward(x));
  const ourOutput = mha.forward(x).output.data;
  mha.dispose();
  const ort = await createOrtMha({ B, N, E, H, ...weights });
  const theirs = await measure(() => ort.run(x.data), { warmup: 2 });
  const diff = maxAbsDiff(ourOutput, await ort.run(x.data));
  await ort.dispose();
  console.log(
    `| ${N} | ${ours.median.toFixed(2)} | ${theirs.median.toFixed(2)} | ` +
      `${(theirs.median / ours.median).toFixed(2)}× | ${diff.toExponential(1)} |`,
  );
}
console.log();

// ---- Decode step: H = 32, D = 128, 4096 cached keys ----
{
  const [H, Nk, D] = [32, 4096, 128];
  const kvBytes = 2 * H * Nk * D * 4;
  const q = { data: randomArray(H * D, 21), shape: [1, H, 1, D] };
  const kPlain = randomArray(H * Nk * D, 22);
  const vPlain = randomArray(H * Nk * D, 23);
  const k = allocTensor([1, H, Nk, D]);
  const v = allocTensor([1, H, Nk, D]);
  k.data.set(kPlain);
  v.data.set(vPlain);
  const out = new Float32Array(H * D);
  const ours = await measure(() => scaledDotProductAttention(q, k, v, { causal: true, out }), {
    warmup: 5,
    minRuns: 20,
  });
  const ourOutput = Float32Array.from(out);
  k.free();
  v.free();
  const ort = await createOrtDecode({ H, Nk, D });
  const theirs = await measure(() => ort.run(q.data, kPlain, vPlain), { warmup: 2 });
  const diff = maxAbsDiff(ourOutput, await ort.run(q.data, kPlain, vPlain));
  await ort.dispose();
  const gbs = (t) => (kvBytes / t / 1e6).toFixed(1);
  console.log(
    `## Decode step: one query token, H = ${H}, D = ${D}, ${Nk} cached keys (${(kvBytes / 1e6).toFixed(0)} MB of K and V)\n`,
  );
  console.log(`| | ms | K+V read GB/s |`);
  console.log(`|---|---|---|`);
  console.log(
    `| wasm-attention, cache resident in WASM memory | ${ours.median.toFixed(2)} | ${gbs(ours.median)} |`,
  );
  console.log(
    `| ORT Web, cache copied in per call | ${theirs.median.toFixed(2)} | ${gbs(theirs.median)} |`,
  );
  console.log(
    `\n× ORT: ${(theirs.median / ours.median).toFixed(2)}; max abs diff ${diff.toExponential(1)}`,
  );
}
