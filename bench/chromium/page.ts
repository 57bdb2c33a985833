// The page of bench/chromium.mjs: times scaledDotProductAttention and linear in the build named by
// ?simd= (one build per page load: init() picks a build once), and reports medians to the runner.
import { init, linear, runtimeInfo, scaledDotProductAttention } from "../../src/index";

function random(n: number, seed: number): Float32Array {
  let x = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = (x >>> 0) / 2147483648 - 1;
  }
  return a;
}

function median(fn: () => void, minRuns = 7, minMs = 1500): number {
  for (let i = 0; i < 3; i++) fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < minRuns || (performance.now() - start < minMs && times.length < 40)) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

async function run(): Promise<unknown> {
  const simd = new URLSearchParams(location.search).get("simd") as "simd128" | "relaxed";
  await init(undefined, { simd });
  const rows: Array<{ name: string; ms: number; gflops: number }> = [];
  for (const N of [512, 2048]) {
    const shape = [1, 12, N, 64];
    const [q, k, v] = [1, 2, 3].map((s) => ({ data: random(12 * N * 64, s), shape }));
    const ms = median(() => scaledDotProductAttention(q, k, v));
    rows.push({ name: `SDPA B1 H12 N${N} D64`, ms, gflops: (4 * 12 * N * N * 64) / ms / 1e6 });
  }
  const x = { data: random(512 * 768, 4), shape: [512, 768] };
  const w = random(768 * 768, 5);
  const ms = median(() => linear(x, w));
  rows.push({ name: "linear 512×768×768", ms, gflops: (2 * 512 * 768 * 768) / ms / 1e6 });
  return { build: runtimeInfo().build, rows };
}

(window as unknown as { benchResult: Promise<unknown> }).benchResult = run();
