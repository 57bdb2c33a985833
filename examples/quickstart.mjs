// npm start: scaled dot-product attention on sample data, timed against plain JavaScript.
import { init, scaledDotProductAttention } from "wasm-attention";

await init();

// 12 heads of 512 tokens with 64-dim heads, as in BERT-base.
const [B, H, N, D] = [1, 12, 512, 64];
const sample = (seed) => {
  const data = new Float32Array(B * H * N * D);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37 + seed) * 0.8;
  return { data, shape: [B, H, N, D] };
};
const q = sample(1);
const k = sample(2);
const v = sample(3);

const { output } = scaledDotProductAttention(q, k, v, { causal: true });
console.log(
  `output shape [${output.shape}], first values ${Array.from(output.data.slice(0, 4), (x) => x.toFixed(4))}`,
);

// Timing: warm up first (V8 starts wasm in its baseline compiler), then take the median.
const median = (fn, runs) => {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[runs >> 1];
};
for (let i = 0; i < 3; i++) scaledDotProductAttention(q, k, v, { causal: true });
const wasmMs = median(() => scaledDotProductAttention(q, k, v, { causal: true }), 9);

function plainCausalAttention(q, k, v) {
  const out = new Float32Array(B * H * N * D);
  const scores = new Float32Array(N);
  const scale = 1 / Math.sqrt(D);
  for (let h = 0; h < B * H; h++) {
    const base = h * N * D;
    for (let i = 0; i < N; i++) {
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q.data[base + i * D + d] * k.data[base + j * D + d];
        scores[j] = s * scale;
        max = Math.max(max, scores[j]);
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) sum += scores[j] = Math.exp(scores[j] - max);
      for (let j = 0; j <= i; j++) {
        for (let d = 0; d < D; d++)
          out[base + i * D + d] += (scores[j] / sum) * v.data[base + j * D + d];
      }
    }
  }
  return out;
}
const plainMs = median(() => plainCausalAttention(q, k, v), 3);
const plain = plainCausalAttention(q, k, v);
let maxDiff = 0;
for (let i = 0; i < plain.length; i++)
  maxDiff = Math.max(maxDiff, Math.abs(plain[i] - output.data[i]));

console.log(`causal attention B=${B} H=${H} N=${N} D=${D}:`);
console.log(`  wasm-attention  ${wasmMs.toFixed(1)} ms`);
console.log(
  `  plain JS        ${plainMs.toFixed(1)} ms  (${(plainMs / wasmMs).toFixed(0)}× slower)`,
);
console.log(`  max |difference| ${maxDiff.toExponential(1)}`);
