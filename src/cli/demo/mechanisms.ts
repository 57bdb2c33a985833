// Every attention mechanism of the package on the same tokens (the demo's table and its first
// heatmaps): the representation of the last layer split into heads, and each mechanism's weights
// of the first head, with which keys each query may see (for the maps' colour scale).

import {
  additiveAttention,
  attentionEntropy,
  blockSparseAttention,
  cosineAttention,
  hardAttention,
  scaledDotProductAttention,
  sparsePatterns,
  type Tensor,
} from "../../index.js";
import { label, visibleKeys } from "./heatmap.js";

/** One row of the printed table, and one heatmap. */
export interface MechanismReport {
  name: string;
  /** The heatmap's file name, without .svg. */
  file: string;
  ms: number;
  /** Mean over the rows with more than one visible key of entropy / ln(visible keys): 1 = uniform. */
  relativeEntropy: number;
  /** For a few query tokens, the key token each attends most. */
  focus: string[];
  /** [Nq, Nk] weights of the first head, for the heatmap. */
  weights: Float32Array;
  /** Whether query `row` may see key `col`. */
  visible: (row: number, col: number) => boolean;
}

/** Mean of entropy / ln(visible keys) over rows that have a choice (more than one key). */
export function relativeEntropy(entropy: ArrayLike<number>, keys: number[]): number {
  let sum = 0;
  let rows = 0;
  keys.forEach((k, row) => {
    if (k < 2) return;
    sum += entropy[row] / Math.log(k);
    rows++;
  });
  return rows ? sum / rows : 0;
}

function time<T>(fn: () => T): { result: T; ms: number } {
  fn(); // the first call runs in V8's baseline tier
  const t0 = performance.now();
  const result = fn();
  return { result, ms: performance.now() - t0 };
}

// Head h of [N, E] as [N, E/H], all heads as [1, H, N, E/H].
function heads(x: Float32Array, N: number, E: number, H: number): Tensor {
  const hd = E / H;
  const data = new Float32Array(H * N * hd);
  for (let h = 0; h < H; h++)
    for (let n = 0; n < N; n++)
      data.set(x.subarray(n * E + h * hd, n * E + (h + 1) * hd), (h * N + n) * hd);
  return { data, shape: [1, H, N, hd] };
}

// Seeded small weights for additive attention's projections.
function smallWeights(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s / 2 ** 32 - 0.5) * 0.4;
  });
}

interface Mechanism {
  name: string;
  file: string;
  run: () => Tensor;
  visible: (row: number, col: number) => boolean;
}

/** Runs every mechanism on the final layer's representation x [N, E] in H heads. */
export function runMechanisms(
  x: Float32Array,
  tokens: string[],
  E: number,
  H: number,
): MechanismReport[] {
  const N = tokens.length;
  const t = heads(x, N, E, H);
  const hd = E / H;
  const seq = { data: x, shape: [1, N, E] };
  const A = 32;
  // Block-sparse attention needs N a multiple of the block: zero-padded tokens, cropped after. The
  // padding keys stay visible to the real queries, so a cropped row can sum to a little under 1.
  const block = 4;
  const padded = Math.ceil(N / block) * block;
  const layout = sparsePatterns.longformer(padded / block, { window: 1, globalBlocks: [0] });
  const pad = (src: Tensor): Tensor => {
    const data = new Float32Array(H * padded * hd);
    for (let h = 0; h < H; h++)
      data.set(src.data.subarray(h * N * hd, (h + 1) * N * hd), h * padded * hd);
    return { data, shape: [1, H, padded, hd] };
  };
  const crop = (w: Tensor): Tensor => {
    const data = new Float32Array(H * N * N);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < N; i++) {
        const from = (h * padded + i) * padded;
        data.set(w.data.subarray(from, from + N), (h * N + i) * N);
      }
    return { data, shape: [1, H, N, N] };
  };
  const all = (): boolean => true;
  const mechanisms: Mechanism[] = [
    {
      name: "scaled dot-product",
      file: "scaled-dot-product",
      run: () => scaledDotProductAttention(t, t, t, { returnWeights: true }).weights!,
      visible: all,
    },
    {
      name: "causal",
      file: "causal",
      run: () => scaledDotProductAttention(t, t, t, { causal: true, returnWeights: true }).weights!,
      visible: (r, c) => c <= r,
    },
    {
      name: "local window ±2",
      file: "local-window",
      run: () =>
        scaledDotProductAttention(t, t, t, { window: [2, 2], returnWeights: true }).weights!,
      visible: (r, c) => Math.abs(r - c) <= 2,
    },
    {
      name: "additive (Bahdanau)",
      file: "additive-bahdanau",
      run: () =>
        additiveAttention(
          seq,
          seq,
          seq,
          { wq: smallWeights(A * E, 1), wk: smallWeights(A * E, 2), va: smallWeights(A, 3) },
          { returnWeights: true },
        ).weights!,
      visible: all,
    },
    {
      name: "cosine (τ = 0.1)",
      file: "cosine",
      run: () => cosineAttention(seq, seq, seq, { temperature: 0.1, returnWeights: true }).weights!,
      visible: all,
    },
    {
      // Every key is visible: the top 3 are the mechanism's choice, not a mask.
      name: "hard top-3",
      file: "hard-top-3",
      run: () => hardAttention(t, t, t, { topK: 3, returnWeights: true }).weights!,
      visible: all,
    },
    {
      name: "block-sparse (longformer)",
      file: "block-sparse-longformer",
      run: () =>
        crop(
          blockSparseAttention(pad(t), pad(t), pad(t), {
            layout,
            blockSize: block,
            returnWeights: true,
          }).weights!,
        ),
      visible: (r, c) =>
        layout.data[Math.floor(r / block) * (padded / block) + Math.floor(c / block)] === 1,
    },
  ];
  return mechanisms.map(({ name, file, run, visible }) => {
    const { result, ms } = time(run);
    return summarise(name, file, ms, result, tokens, visible);
  });
}

/** Relative entropy and focus tokens of the first head of weights [1, H, N, N]. */
function summarise(
  name: string,
  file: string,
  ms: number,
  weights: Tensor,
  tokens: string[],
  visible: (row: number, col: number) => boolean,
): MechanismReport {
  const N = tokens.length;
  const first = weights.data.slice(0, N * N);
  const entropy = attentionEntropy({ data: first, shape: [N, N] }).data;
  const queries = [0, Math.floor(N / 2), N - 1].filter((q, i, all) => all.indexOf(q) === i);
  const focus = queries.map((q) => {
    let best = 0;
    for (let j = 1; j < N; j++) if (first[q * N + j] > first[q * N + best]) best = j;
    return `${label(tokens[q])}→${label(tokens[best])}`;
  });
  return {
    name,
    file,
    ms,
    relativeEntropy: relativeEntropy(entropy, visibleKeys(N, visible)),
    focus,
    weights: first,
    visible,
  };
}
