// Benchmark of the training pass: scaledDotProductAttentionBackward beside our own forward pass,
// TensorFlow.js's autodiff gradients (WASM backend, one thread) and plain JavaScript, on the same
// inputs in the same run. ONNX Runtime Web is inference-only, so it has no entry here.
//
//   node bench/backward.mjs             (npm run bench runs it too)
//   node bench/backward.mjs --no-plain  skip plain JavaScript
//
// GFLOP/s = 10·B·H·Nq·Nk·D / time for the backward pass (its five products; causal counted as
// full), 4·B·H·Nq·Nk·D / time for the forward. Times are medians.
import os from "node:os";
import {
  init,
  scaledDotProductAttention,
  scaledDotProductAttentionBackward,
} from "../dist/index.js";
import { initTfjsWasm, tfjsSdpaGradients } from "./peers/tfjs.mjs";
import { plainSdpaBackward } from "./peers/plain.mjs";
import { measure, randomArray, machine, maxAbsDiff } from "./timing.mjs";

const withPlain = !process.argv.includes("--no-plain");
const CASES = [
  { B: 1, H: 12, N: 128, D: 64, causal: false },
  { B: 1, H: 12, N: 512, D: 64, causal: false },
  { B: 1, H: 12, N: 512, D: 64, causal: true },
  { B: 1, H: 12, N: 2048, D: 64, causal: false },
];

await init();
const tfjs = await initTfjsWasm();
{
  const t = { data: randomArray(12 * 256 * 64, 9), shape: [1, 12, 256, 64] };
  for (let i = 0; i < 20; i++) {
    const f = scaledDotProductAttention(t, t, t, { returnLse: true });
    scaledDotProductAttentionBackward(t, t, t, f.output, t, { lse: f.lse });
  }
}
console.log(`# scaledDotProductAttentionBackward, one thread`);
console.log(`${machine(os)}; tfjs ${tfjs.version} (${tfjs.backend}, SIMD ${tfjs.simd})\n`);
console.log(
  "| case | forward ms | backward ms | backward GFLOP/s | backward × forward | tfjs grads ms | × tfjs | plain JS ms | × plain JS |",
);
console.log("|---|---|---|---|---|---|---|---|---|");

for (const { B, H, N, D, causal } of CASES) {
  const shape = [B, H, N, D];
  const n = B * H * N * D;
  const [q, k, v, dy] = [1, 2, 3, 4].map((seed) => randomArray(n, seed));
  const [tq, tk, tv, tdy] = [q, k, v, dy].map((data) => ({ data, shape }));
  const fwd = scaledDotProductAttention(tq, tk, tv, { causal, returnLse: true });
  const forward = await measure(() =>
    scaledDotProductAttention(tq, tk, tv, { causal, returnLse: true }),
  );
  const backward = await measure(() =>
    scaledDotProductAttentionBackward(tq, tk, tv, fwd.output, tdy, { causal, lse: fwd.lse }),
  );
  const ours = scaledDotProductAttentionBackward(tq, tk, tv, fwd.output, tdy, {
    causal,
    lse: fwd.lse,
  });

  const dims = { B, H, Nq: N, Nk: N, D, Dv: D, causal };
  const peer = tfjsSdpaGradients(dims);
  const theirs = await measure(() => peer.run(q, k, v, dy), { warmup: 1, minMs: 1000 });
  const [dq, dk, dv] = peer.run(q, k, v, dy);
  const diff = Math.max(
    maxAbsDiff(ours.dq.data, dq),
    maxAbsDiff(ours.dk.data, dk),
    maxAbsDiff(ours.dv.data, dv),
  );
  if (!(diff < 1e-3)) throw new Error(`gradients differ from TensorFlow.js by ${diff}`);

  let plain = "n/a";
  let plainRatio = "n/a";
  if (withPlain) {
    const big = N > 1024;
    const p = await measure(() => plainSdpaBackward(q, k, v, fwd.output.data, dy, dims), {
      warmup: big ? 0 : 1,
      minRuns: big ? 1 : 3,
      minMs: big ? 0 : 1000,
    });
    plain = p.median.toFixed(0);
    plainRatio = `${(p.median / backward.median).toFixed(1)}×`;
  }
  const gflops = (flops, t) => (flops / t / 1e6).toFixed(1);
  console.log(
    `| B${B} H${H} N${N} D${D}${causal ? " causal" : ""} | ${forward.median.toFixed(2)} | ` +
      `${backward.median.toFixed(2)} | ${gflops(10 * B * H * N * N * D, backward.median)} | ` +
      `${(backward.median / forward.median).toFixed(2)}× | ${theirs.median.toFixed(1)} | ` +
      `${(theirs.median / backward.median).toFixed(2)}× | ${plain} | ${plainRatio} |`,
  );
}
