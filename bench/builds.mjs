// The three builds on the same machine, each in its own Node process: SIMD128, relaxed SIMD (fused
// multiply-add; V8's --experimental-wasm-relaxed-simd, which Node 20 needs) and scalar (for runtimes
// without SIMD), timing scaledDotProductAttention and linear. Prints a Markdown table.
//   node bench/builds.mjs          (npm run bench runs it too)
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { relaxedSimdFlags } from "../scripts/node-flags.mjs";

if (process.argv[2] === "--child") {
  const build = process.argv[3];
  const { init, scaledDotProductAttention, linear, runtimeInfo } = await import("../dist/index.js");
  const { measure, randomArray } = await import("./timing.mjs");
  await init(undefined, { simd: build });
  const rows = [];
  for (const N of [512, 2048]) {
    const [H, D] = [12, 64];
    const t = [1, 2, 3].map((s) => ({ data: randomArray(H * N * D, s), shape: [1, H, N, D] }));
    for (let i = 0; i < 5; i++) scaledDotProductAttention(...t);
    const { median } = await measure(() => scaledDotProductAttention(...t));
    rows.push({
      name: `SDPA B1 H12 N${N} D64`,
      ms: median,
      gflops: (4 * H * N * N * D) / median / 1e6,
    });
  }
  const x = { data: randomArray(512 * 768, 4), shape: [512, 768] };
  const w = randomArray(768 * 768, 5);
  for (let i = 0; i < 5; i++) linear(x, w);
  const { median } = await measure(() => linear(x, w));
  rows.push({
    name: "linear 512×768×768",
    ms: median,
    gflops: (2 * 512 * 768 * 768) / median / 1e6,
  });
  console.log(JSON.stringify({ build: runtimeInfo().build, rows }));
} else {
  const self = fileURLToPath(import.meta.url);
  const run = (flags, build) => {
    const args = [...flags, self, "--child", build];
    const result = JSON.parse(execFileSync(process.execPath, args, { encoding: "utf8" }));
    if (result.build !== build) throw new Error(`asked for ${build}, ran ${result.build}`);
    return result;
  };
  const simd = run([], "simd128");
  const relaxed = run(relaxedSimdFlags(), "relaxed");
  const scalar = run([], "scalar");
  console.log(`\n# The three builds, one thread, Node ${process.versions.node}\n`);
  console.log(
    `| case | SIMD128 GFLOP/s | relaxed GFLOP/s | relaxed × SIMD128 | scalar GFLOP/s | SIMD128 × scalar |`,
  );
  console.log(`|---|---|---|---|---|---|`);
  simd.rows.forEach((a, i) => {
    const [b, c] = [relaxed.rows[i], scalar.rows[i]];
    console.log(
      `| ${a.name} | ${a.gflops.toFixed(1)} | ${b.gflops.toFixed(1)} | ${(a.ms / b.ms).toFixed(2)}× | ` +
        `${c.gflops.toFixed(1)} | ${(c.ms / a.ms).toFixed(1)}× |`,
    );
  });
}
