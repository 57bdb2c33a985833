// SIMD128 against relaxed SIMD (fused multiply-add) on the same machine: each build runs in its own
// Node process (the relaxed one with V8's --experimental-wasm-relaxed-simd, which Node 20 needs),
// timing scaledDotProductAttention and linear. Prints a Markdown table.
//   node bench/builds.mjs          (npm run bench runs it too)
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

if (process.argv[2] === "--child") {
  const { init, scaledDotProductAttention, linear, runtimeInfo } = await import("../dist/index.js");
  const { measure, randomArray } = await import("./timing.mjs");
  await init();
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
  const run = (flags) =>
    JSON.parse(execFileSync(process.execPath, [...flags, self, "--child"], { encoding: "utf8" }));
  const simd = run([]);
  const relaxed = run(["--experimental-wasm-relaxed-simd"]);
  if (simd.build !== "simd128" || relaxed.build !== "relaxed")
    throw new Error("builds not as expected");
  console.log(`\n# SIMD128 and relaxed-SIMD builds, one thread, Node ${process.versions.node}\n`);
  console.log(`| case | SIMD128 ms | GFLOP/s | relaxed ms | GFLOP/s | relaxed × faster |`);
  console.log(`|---|---|---|---|---|---|`);
  simd.rows.forEach((a, i) => {
    const b = relaxed.rows[i];
    console.log(
      `| ${a.name} | ${a.ms.toFixed(2)} | ${a.gflops.toFixed(1)} | ${b.ms.toFixed(2)} | ` +
        `${b.gflops.toFixed(1)} | ${(a.ms / b.ms).toFixed(2)}× |`,
    );
  });
}
