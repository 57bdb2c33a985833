// Benchmark of the attention family: block-sparse attention against dense attention at the same
// size, and additive (Bahdanau) attention against TensorFlow.js (WASM backend, composed ops) and
// plain JavaScript, in the same run. Prints Markdown tables.
//
//   node bench/family.mjs     (npm run bench runs it too)
import os from "node:os";
import {
  init,
  additiveAttention,
  blockSparseAttention,
  scaledDotProductAttention,
} from "../dist/index.js";
import { initTfjsWasm, tfjsAdditiveAttention, plainAdditiveAttention } from "./peers/tfjs.mjs";
import { measure, randomArray, machine, maxAbsDiff } from "./timing.mjs";

await init();
const tfjs = await initTfjsWasm();
{
  const t = { data: randomArray(4 * 256 * 64, 9), shape: [1, 4, 256, 64] };
  for (let i = 0; i < 30; i++) scaledDotProductAttention(t, t, t);
}
console.log(`# The attention family, one thread`);
console.log(`${machine(os)}; tfjs ${tfjs.version} (${tfjs.backend}, SIMD ${tfjs.simd})\n`);

// ---- Block-sparse: N = 4096, H = 8, D = 64, block 64 ----
{
  const [H, N, D, bs] = [8, 4096, 64, 64];
  const blocks = N / bs;
  const tensors = [1, 2, 3].map((seed) => ({
    data: randomArray(H * N * D, seed),
    shape: [1, H, N, D],
  }));
  // A layout of the given density: the diagonal plus blocks drawn at random (seeded).
  const layoutOf = (density) => {
    const data = new Uint8Array(blocks * blocks);
    for (let r = 0; r < blocks; r++) data[r * blocks + r] = 1;
    const order = randomArray(blocks * blocks, 77);
    const cells = [...order.keys()].sort((a, b) => order[a] - order[b]);
    let kept = blocks;
    const target = Math.round(density * blocks * blocks);
    for (const cell of cells) {
      if (kept >= target) break;
      if (!data[cell]) {
        data[cell] = 1;
        kept++;
      }
    }
    return { data, shape: [blocks, blocks] };
  };
  const dense = await measure(() => scaledDotProductAttention(...tensors), {
    warmup: 1,
    minRuns: 3,
  });
  console.log(`## blockSparseAttention, H = ${H}, N = ${N}, D = ${D}, block ${bs}\n`);
  console.log(`| layout density | ms | × dense time |`);
  console.log(`|---|---|---|`);
  console.log(`| dense (scaledDotProductAttention) | ${dense.median.toFixed(1)} | 1 |`);
  for (const density of [0.1, 0.25]) {
    const layout = layoutOf(density);
    const sparse = await measure(
      () => blockSparseAttention(...tensors, { layout, blockSize: bs }),
      { warmup: 1, minRuns: 3 },
    );
    console.log(
      `| ${(density * 100).toFixed(0)} % (diagonal kept) | ${sparse.median.toFixed(1)} | ` +
        `${(sparse.median / dense.median).toFixed(3)} |`,
    );
  }
  console.log();
}

// ---- Additive attention: Nq = Nk = 512, Dq = Dk = 64, A = 128 ----
{
  const shape = { B: 1, Nq: 512, Nk: 512, Dq: 64, Dk: 64, Dv: 64, A: 128 };
  const { B, Nq, Nk, Dq, Dk, Dv, A } = shape;
  const q = randomArray(B * Nq * Dq, 31);
  const k = randomArray(B * Nk * Dk, 32);
  const v = randomArray(B * Nk * Dv, 33);
  const wq = randomArray(A * Dq, 34).map((x) => x * 0.2);
  const wk = randomArray(A * Dk, 35).map((x) => x * 0.2);
  const va = randomArray(A, 36);
  const tensors = [
    { data: q, shape: [B, Nq, Dq] },
    { data: k, shape: [B, Nk, Dk] },
    { data: v, shape: [B, Nk, Dv] },
  ];
  const ours = await measure(() => additiveAttention(...tensors, { wq, wk, va }));
  const ourOutput = additiveAttention(...tensors, { wq, wk, va }).output.data;
  const peer = tfjsAdditiveAttention(shape);
  const theirs = await measure(() => peer.run(q, k, v, wq, wk, va), { warmup: 2, minRuns: 5 });
  const tfjsDiff = maxAbsDiff(ourOutput, peer.run(q, k, v, wq, wk, va));
  peer.dispose();
  const plain = await measure(() => plainAdditiveAttention(q, k, v, wq, wk, va, shape), {
    warmup: 1,
    minRuns: 3,
  });
  const plainDiff = maxAbsDiff(ourOutput, plainAdditiveAttention(q, k, v, wq, wk, va, shape));
  console.log(`## additiveAttention, Nq = Nk = ${Nq}, Dq = Dk = ${Dq}, A = ${A}, Dv = ${Dv}\n`);
  console.log(`| implementation | ms | wasm-attention is × faster | max abs diff |`);
  console.log(`|---|---|---|---|`);
  console.log(`| wasm-attention | ${ours.median.toFixed(1)} | 1 | |`);
  console.log(
    `| TensorFlow.js WASM (composed ops) | ${theirs.median.toFixed(1)} | ` +
      `${(theirs.median / ours.median).toFixed(1)}× | ${tfjsDiff.toExponential(1)} |`,
  );
  console.log(
    `| plain JavaScript | ${plain.median.toFixed(1)} | ${(plain.median / ours.median).toFixed(1)}× | ` +
      `${plainDiff.toExponential(1)} |`,
  );
}
