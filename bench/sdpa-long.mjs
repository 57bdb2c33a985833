// A sequence far beyond what an N×N score matrix allows: N = 32768, H = 1, D = 64 (the scores alone
// would take 4 GiB). Inputs and output live in WASM memory (allocTensor). Run by bench/sdpa.mjs in a
// fresh process, so the WASM memory minus inputs and output bounds the kernel's working memory
// (it also holds the module's static data and what the small warm-up calls used).
import { init, scaledDotProductAttention, allocTensor, memoryStats } from "../dist/index.js";
import { randomArray } from "./timing.mjs";

const N = 32768;
const D = 64;
await init();

// Warm up on small inputs until V8 has tiered the kernel up (first calls run in its baseline tier).
const small = { data: randomArray(64 * 64, 7), shape: [1, 1, 64, 64] };
for (let i = 0; i < 300; i++) scaledDotProductAttention(small, small, small);

const q = allocTensor([1, 1, N, D]);
const k = allocTensor([1, 1, N, D]);
const v = allocTensor([1, 1, N, D]);
const out = allocTensor([1, 1, N, D]);
q.data.set(randomArray(N * D, 1));
k.data.set(randomArray(N * D, 2));
v.data.set(randomArray(N * D, 3));
const ioBytes = 4 * N * D * 4;
const t0 = performance.now();
scaledDotProductAttention(q, k, v, { out: out.data });
const ms = performance.now() - t0;
const after = memoryStats().memoryBytes;
const mib = (b) => (b / 2 ** 20).toFixed(1);
console.log(`# N = ${N}, H = 1, D = ${D} (one run)\n`);
console.log(`| time | GFLOP/s | WASM memory | inputs + output | beyond inputs and output |`);
console.log(`|---|---|---|---|---|`);
console.log(
  `| ${(ms / 1000).toFixed(2)} s | ${((4 * N * N * D) / ms / 1e6).toFixed(1)} | ${mib(after)} MiB | ` +
    `${mib(ioBytes)} MiB | ${mib(after - ioBytes)} MiB |`,
);
