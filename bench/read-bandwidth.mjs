// The single-thread read bandwidth of wasm on this machine: the ceiling the decode benchmark is
// compared with. Compiles bench/read-bandwidth.ts with asc, then sums 128 MiB repeatedly.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const wasmFile = `${root}build/read-bandwidth.wasm`;
mkdirSync(`${root}build`, { recursive: true });
const ascArgs = ["bench/read-bandwidth.ts", "-o", wasmFile, "-O3", "--noAssert"];
ascArgs.push("--enable", "simd", "--runtime", "stub", "--initialMemory", "2100");
execFileSync(`${root}node_modules/.bin/asc`, ascArgs, { cwd: root, stdio: "inherit" });

const { instance } = await WebAssembly.instantiate(readFileSync(wasmFile), {});
const { readSum, memory } = instance.exports;
const bytes = 128 << 20;
const ptr = 1 << 20;
new Float32Array(memory.buffer, ptr, bytes / 4).fill(1);
for (let i = 0; i < 3; i++) readSum(ptr, bytes);
const rates = [];
for (let i = 0; i < 9; i++) {
  const t0 = performance.now();
  readSum(ptr, bytes);
  rates.push(bytes / (performance.now() - t0) / 1e6);
}
rates.sort((a, b) => a - b);
console.log(
  `\nwasm sequential read, one thread, 128 MiB: ${rates[4].toFixed(1)} GB/s (median of 9)`,
);
