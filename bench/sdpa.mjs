// Benchmark: wasm-attention's scaledDotProductAttention beside ONNX Runtime Web (WASM backend,
// 1 thread) and plain JavaScript, on the same inputs in the same run. Prints a Markdown table.
//
//   npm run bench                  all cases
//   node bench/sdpa.mjs --no-plain skip plain JavaScript (slow: about 1 GFLOP/s)
//
// GFLOP/s = 4·B·H·Nq·Nk·D / time (causal counted as full, as the peers compute every score).
// Times are medians; each op is timed with a fresh output array, inputs copied in on every call.
import os from "node:os";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { init, scaledDotProductAttention, memoryStats } from "../dist/index.js";
import { createOrtSdpa, ortVersion } from "./peers/ort.mjs";
import { plainSdpa } from "./peers/plain.mjs";
import { measure, randomArray, machine, maxAbsDiff } from "./timing.mjs";

const withPlain = !process.argv.includes("--no-plain");

const CASES = [
  { B: 1, H: 12, N: 128, D: 64, causal: false },
  { B: 1, H: 12, N: 512, D: 64, causal: false },
  { B: 1, H: 12, N: 512, D: 64, causal: true },
  { B: 1, H: 12, N: 2048, D: 64, causal: false },
  { B: 1, H: 8, N: 4096, D: 64, causal: false },
];

await init();
// Let V8 tier the kernels up before anything is timed (first calls run in its baseline compiler).
{
  const t = { data: randomArray(12 * 256 * 64, 9), shape: [1, 12, 256, 64] };
  for (let i = 0; i < 40; i++) scaledDotProductAttention(t, t, t, { causal: i % 2 === 1 });
}
console.log(`# scaledDotProductAttention, one thread`);
console.log(`${machine(os)}; onnxruntime-web ${ortVersion}\n`);
console.log(
  "| case | wasm-attention ms | GFLOP/s | ORT Web ms | GFLOP/s | × ORT | plain JS ms | × plain JS | WASM memory |",
);
console.log("|---|---|---|---|---|---|---|---|---|");

for (const c of CASES) {
  const { B, H, N, D, causal } = c;
  const shape = { B, H, Nq: N, Nk: N, D, Dv: D, causal };
  const n = B * H * N * D;
  const q = randomArray(n, 1);
  const k = randomArray(n, 2);
  const v = randomArray(n, 3);
  const flops = 4 * B * H * N * N * D;
  const tensors = [q, k, v].map((data) => ({ data, shape: [B, H, N, D] }));

  const ours = await measure(() => scaledDotProductAttention(...tensors, { causal }));
  const ourOutput = scaledDotProductAttention(...tensors, { causal }).output.data;
  const memory = memoryStats().memoryBytes;

  const ort = await createOrtSdpa(shape);
  const theirs = await measure(() => ort.run(q, k, v), { warmup: 1, minMs: 1000 });
  const diff = maxAbsDiff(ourOutput, await ort.run(q, k, v));
  await ort.dispose();
  if (!(diff < 1e-4)) throw new Error(`outputs differ from ONNX Runtime Web by ${diff}`);

  let plain = "n/a";
  let plainRatio = "n/a";
  if (withPlain) {
    const big = flops > 2e10;
    const p = await measure(() => plainSdpa(q, k, v, shape), {
      warmup: big ? 0 : 1,
      minRuns: big ? 1 : 3,
      minMs: big ? 0 : 1000,
    });
    plain = p.median.toFixed(0);
    plainRatio = `${(p.median / ours.median).toFixed(1)}×`;
  }
  const name = `B${B} H${H} N${N} D${D}${causal ? " causal" : ""}`;
  const gflops = (t) => (flops / t / 1e6).toFixed(1);
  console.log(
    `| ${name} | ${ours.median.toFixed(2)} | ${gflops(ours.median)} | ${theirs.median.toFixed(2)} | ` +
      `${gflops(theirs.median)} | ${(theirs.median / ours.median).toFixed(2)}× | ${plain} | ${plainRatio} | ` +
      `${(memory / 2 ** 20).toFixed(0)} MiB |`,
  );
}

// The long-sequence case runs in a fresh process so that its memory figure is its own.
console.log();
const script = fileURLToPath(new URL("./sdpa-long.mjs", import.meta.url));
process.stdout.write(execFileSync(process.execPath, [script], { encoding: "utf8" }));
