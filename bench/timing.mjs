// Timing helpers for the benchmarks: warm up (V8 first runs wasm in its baseline compiler), then
// repeat until both a minimum count and a minimum time are reached, and report the median.

export async function measure(fn, { warmup = 2, minRuns = 5, maxRuns = 30, minMs = 1000 } = {}) {
  for (let i = 0; i < warmup; i++) await fn();
  const times = [];
  const start = performance.now();
  while (times.length < minRuns || (performance.now() - start < minMs && times.length < maxRuns)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[times.length >> 1], runs: times.length };
}

export function randomArray(n, seed) {
  // xorshift32: reproducible inputs without a dependency.
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

export function machine(os) {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  return `${cpu}, ${os.cpus().length} cores, Node ${process.versions.node} (V8 ${process.versions.v8}), ${new Date().toISOString().slice(0, 10)}`;
}

export function maxAbsDiff(a, b) {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** The seeded MultiHeadAttention weights (E × E, scaled by 0.05, and biases) every MHA bench uses. */
export function mhaWeights(E) {
  const matrix = (seed) => randomArray(E * E, seed).map((x) => x * 0.05);
  return {
    wq: matrix(11),
    wk: matrix(12),
    wv: matrix(13),
    wo: matrix(14),
    bq: randomArray(E, 15),
    bk: randomArray(E, 16),
    bv: randomArray(E, 17),
    bo: randomArray(E, 18),
  };
}
