// The cases of bench/engines.mjs, in plain JavaScript that every engine runs as it is (Node, Deno,
// Bun) or bundled into a page (Chromium, Firefox, WebKit): the built package, one thread, the
// build init() picks by itself ("auto"). Each case is timed as the median of a fixed number of
// repetitions after a fixed warm-up, so that every engine does exactly the same work.
//
//   SDPA       B1 H12 N512 D64, non-causal, inputs as Float32Arrays (copied in per call), as
//              bench/sdpa.mjs; GFLOP/s = 4·B·H·N²·D / time
//   MHA        MultiHeadAttention.forward, self-attention with projections, E768 H12 B1, N = 128 and
//              512, as bench/mha.mjs; GFLOP/s = (4·2·N·E² + 4·H·N²·D) / time (the four projections
//              and the two attention products; D = E / H)
//   decode     one query token, H32 D128, 4096 keys and values resident in WASM memory
//              (allocTensor), causal, into a preallocated output, as bench/mha.mjs "Decode step"
//              (each sample times 8 steps in a row: browsers' clocks are coarse);
//              K+V read GB/s = 2·H·Nk·D·4 bytes / time
import {
  init,
  runtimeInfo,
  scaledDotProductAttention,
  MultiHeadAttention,
  allocTensor,
} from "../../dist/index.js";
import { mhaWeights, randomArray } from "../timing.mjs";

/** Warm-up calls and timed repetitions per case: the full run, and --quick for the plumbing. */
const REPS = {
  full: {
    sdpa: [5, 21],
    mha128: [5, 21],
    mha512: [3, 11],
    decode: [10, 15],
  },
  quick: { sdpa: [1, 3], mha128: [1, 3], mha512: [1, 3], decode: [1, 3] },
};

/** Which engine and version runs this (a browser reports its user agent; the runner names it). */
export function engineVersion() {
  const g = globalThis;
  if (g.Deno?.version) return `Deno ${g.Deno.version.deno} (V8 ${g.Deno.version.v8})`;
  if (g.Bun?.version) return `Bun ${g.Bun.version} (JavaScriptCore)`;
  if (g.process?.versions?.node) {
    return `Node ${g.process.versions.node} (V8 ${g.process.versions.v8})`;
  }
  return g.navigator?.userAgent ?? "unknown engine";
}

/** The median time of one call of `fn`; each of the `reps` samples times `batch` calls in a row. */
function median(fn, [warmup, reps], batch = 1) {
  for (let i = 0; i < warmup; i++) fn();
  const times = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    for (let j = 0; j < batch; j++) fn();
    times.push((performance.now() - t0) / batch);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

/** The smallest step of performance.now() here (browsers coarsen it; 5 µs to 1 ms). */
function timerResolution() {
  let best = Infinity;
  for (let steps = 0; steps < 20; steps++) {
    const t0 = performance.now();
    let t1 = t0;
    while (t1 === t0) t1 = performance.now();
    best = Math.min(best, t1 - t0);
  }
  return best;
}

function sum(data) {
  let s = 0;
  for (let i = 0; i < data.length; i++) s += data[i];
  return s;
}

/** Runs every case; resolves to what the runner tabulates (plain JSON). */
export async function runCases({ quick = false } = {}) {
  const reps = quick ? REPS.quick : REPS.full;
  await init({ threads: 1 });
  const { build, threads } = runtimeInfo();
  const cases = [];

  // Let the engine tier the kernels up before anything is timed (first calls may run in a
  // baseline compiler), as bench/sdpa.mjs does.
  {
    const t = { data: randomArray(12 * 256 * 64, 9), shape: [1, 12, 256, 64] };
    for (let i = 0; i < (quick ? 2 : 40); i++) scaledDotProductAttention(t, t, t);
  }

  // ---- SDPA B1 H12 N512 D64 ----
  {
    const [B, H, N, D] = [1, 12, 512, 64];
    const tensors = [1, 2, 3].map((seed) => ({
      data: randomArray(B * H * N * D, seed),
      shape: [B, H, N, D],
    }));
    const ms = median(() => scaledDotProductAttention(...tensors), reps.sdpa);
    const flops = 4 * B * H * N * N * D;
    cases.push({
      id: "sdpa",
      ms,
      gflops: flops / ms / 1e6,
      runs: reps.sdpa[1],
      checksum: sum(scaledDotProductAttention(...tensors).output.data),
    });
  }

  // ---- MultiHeadAttention.forward, E768 H12, N = 128 and 512 ----
  for (const N of [128, 512]) {
    const [B, E, H] = [1, 768, 12];
    const weights = mhaWeights(E);
    const x = { data: randomArray(B * N * E, 19), shape: [B, N, E] };
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: H, weights });
    const r = reps[`mha${N}`];
    const ms = median(() => mha.forward(x), r);
    const checksum = sum(mha.forward(x).output.data);
    mha.dispose();
    const flops = B * (4 * 2 * N * E * E + 4 * H * N * N * (E / H));
    cases.push({ id: `mha${N}`, ms, gflops: flops / ms / 1e6, runs: r[1], checksum });
  }

  // ---- Decode step: H32 D128, 4096 cached keys ----
  {
    const [H, Nk, D] = [32, 4096, 128];
    const q = { data: randomArray(H * D, 21), shape: [1, H, 1, D] };
    const k = allocTensor([1, H, Nk, D]);
    const v = allocTensor([1, H, Nk, D]);
    k.data.set(randomArray(H * Nk * D, 22));
    v.data.set(randomArray(H * Nk * D, 23));
    const out = new Float32Array(H * D);
    // A decode step takes a few milliseconds: each sample times a batch of them, so that a
    // browser's coarse clock does not round them.
    const batch = 8;
    const call = () => scaledDotProductAttention(q, k, v, { causal: true, out });
    const ms = median(call, reps.decode, batch);
    k.free();
    v.free();
    const bytes = 2 * H * Nk * D * 4;
    cases.push({
      id: "decode",
      ms,
      gbs: bytes / ms / 1e6,
      runs: reps.decode[1] * batch,
      checksum: sum(out),
    });
  }

  return { engine: engineVersion(), build, threads, quick, timerMs: timerResolution(), cases };
}
