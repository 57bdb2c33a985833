// Plain float64 reference implementations, written straight from shared/API.md with no attention
// to speed: scaled dot-product attention with every option (dropout with the package's hash mask,
// test/reference-dropout.ts), and softmax over any axis.
// The property and behaviour tests compare the WebAssembly kernels against these.

/** Any numeric tensor: data row-major, length = product(shape). */
import { dropoutFactors } from "./reference-dropout";

export interface RefTensor<T extends ArrayLike<number> = ArrayLike<number>> {
  data: T;
  shape: readonly number[];
}

export interface RefSdpaOptions {
  mask?: RefTensor<Uint8Array> | RefTensor<Float32Array>;
  causal?: boolean;
  align?: "lower-right" | "upper-left";
  window?: readonly [number, number];
  scale?: number;
  softcap?: number;
  alibiSlopes?: ArrayLike<number>;
  globalTokens?: ArrayLike<number>;
  dropout?: { p: number; seed: number };
}

export interface RefSdpaResult {
  /** [..., Nq, Dv] with the leading dims of q. */
  output: RefTensor<Float64Array>;
  /** Softmax probabilities, [..., Nq, Nk]. */
  weights: RefTensor<Float64Array>;
  /** Natural-log sum-exp of each row's final scores, [..., Nq]; -Infinity for a fully masked row. */
  lse: RefTensor<Float64Array>;
  /** The final scores (scaled, capped, biased, masked; -Infinity where masked), [..., Nq, Nk]. */
  scores: RefTensor<Float64Array>;
}

/** [B, H, N, D] of a rank 2 [N,D], 3 [H,N,D] or 4 [B,H,N,D] tensor. */
export function dims4(shape: readonly number[]): [number, number, number, number] {
  if (shape.length === 4) return [shape[0], shape[1], shape[2], shape[3]];
  if (shape.length === 3) return [1, shape[0], shape[1], shape[2]];
  if (shape.length === 2) return [1, 1, shape[0], shape[1]];
  throw new Error(`reference: rank ${shape.length} is not an attention input`);
}

/**
 * Element strides reading a tensor of `shape` as if broadcast (numpy rules, right-aligned) to
 * `target`: 0 along repeated dims.
 */
export function broadcastStrides(shape: readonly number[], target: readonly number[]): number[] {
  if (shape.length > target.length) {
    throw new Error(`reference: [${shape.join(",")}] does not broadcast to [${target.join(",")}]`);
  }
  const strides = new Array<number>(target.length).fill(0);
  let stride = 1;
  for (let i = 1; i <= shape.length; i++) {
    const dim = shape[shape.length - i];
    const want = target[target.length - i];
    if (dim !== want && dim !== 1) {
      throw new Error(
        `reference: [${shape.join(",")}] does not broadcast to [${target.join(",")}]`,
      );
    }
    if (dim !== 1) strides[target.length - i] = stride;
    stride *= dim;
  }
  return strides;
}

/**
 * Scaled dot-product attention in float64, as API.md specifies it. With dropout, the weights and the
 * output use the dropped, rescaled probabilities (the lse does not change).
 */
export function referenceSdpa(
  q: RefTensor,
  k: RefTensor,
  v: RefTensor,
  options: RefSdpaOptions = {},
): RefSdpaResult {
  const [B, H, Nq, D] = dims4(q.shape);
  const [Bk, Hkv, Nk, Dk] = dims4(k.shape);
  const [Bv, Hv, Nv, Dv] = dims4(v.shape);
  if (Bk !== B || Bv !== B || Dk !== D || Hv !== Hkv || Nv !== Nk || H % Hkv !== 0) {
    throw new Error("reference: inconsistent q, k, v shapes");
  }
  const group = H / Hkv;
  const offset = options.align === "upper-left" ? 0 : Nk - Nq;
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const softcap = options.softcap;
  const slopes = options.alibiSlopes;
  const [left, right] = options.window ?? [Infinity, Infinity];

  const globalKey = new Array<boolean>(Nk).fill(false);
  const globalPosition = new Set<number>();
  if (options.globalTokens) {
    for (let t = 0; t < options.globalTokens.length; t++) {
      const j = options.globalTokens[t];
      globalPosition.add(j);
      if (j >= 0 && j < Nk) globalKey[j] = true;
    }
  }

  const mask = options.mask;
  const maskStrides = mask ? broadcastStrides(mask.shape, [B, H, Nq, Nk]) : [0, 0, 0, 0];
  const boolMask = mask !== undefined && mask.data instanceof Uint8Array;

  const keep = dropoutFactors(options.dropout);
  const lead = q.shape.slice(0, -2);
  const output = new Float64Array(B * H * Nq * Dv);
  const weights = new Float64Array(B * H * Nq * Nk);
  const scores = new Float64Array(B * H * Nq * Nk);
  const lse = new Float64Array(B * H * Nq);
  const row = new Float64Array(Nk);

  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      const qBase = (b * H + h) * Nq * D;
      const kBase = (b * Hkv + kvh) * Nk * D;
      const vBase = (b * Hkv + kvh) * Nk * Dv;
      for (let i = 0; i < Nq; i++) {
        const diag = i + offset;
        const rowGlobal = globalPosition.has(diag);
        for (let j = 0; j < Nk; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q.data[qBase + i * D + d] * k.data[kBase + j * D + d];
          s *= scale;
          if (softcap !== undefined) s = softcap * Math.tanh(s / softcap);
          if (slopes) s -= slopes[h] * Math.abs(diag - j);
          if (mask) {
            const m =
              mask.data[
                b * maskStrides[0] + h * maskStrides[1] + i * maskStrides[2] + j * maskStrides[3]
              ];
            if (boolMask) {
              if (m === 0) s = -Infinity;
            } else if (m === -Infinity) {
              s = -Infinity;
            } else {
              s += m;
            }
          }
          let structural = true;
          if (options.causal && j > diag) structural = false;
          if (j < diag - left || j > diag + right) structural = false;
          if (rowGlobal || globalKey[j]) structural = true;
          if (!structural) s = -Infinity;
          row[j] = s;
        }
        let max = -Infinity;
        for (let j = 0; j < Nk; j++) if (row[j] > max) max = row[j];
        const r = (b * H + h) * Nq + i;
        for (let j = 0; j < Nk; j++) scores[r * Nk + j] = row[j];
        if (max === -Infinity) {
          lse[r] = -Infinity; // output and weights stay 0
          continue;
        }
        let sum = 0;
        for (let j = 0; j < Nk; j++) sum += row[j] === -Infinity ? 0 : Math.exp(row[j] - max);
        lse[r] = max + Math.log(sum);
        for (let j = 0; j < Nk; j++) {
          if (row[j] === -Infinity) continue;
          const p = (Math.exp(row[j] - max) / sum) * keep(b * H + h, i, j);
          weights[r * Nk + j] = p;
          for (let c = 0; c < Dv; c++) output[r * Dv + c] += p * v.data[vBase + j * Dv + c];
        }
      }
    }
  }
  return {
    output: { data: output, shape: [...lead, Nq, Dv] },
    weights: { data: weights, shape: [...lead, Nq, Nk] },
    lse: { data: lse, shape: [...lead, Nq] },
    scores: { data: scores, shape: [...lead, Nq, Nk] },
  };
}

/** Softmax over `axis` (negative counts from the end) in float64; an all -Infinity line gives 0s. */
export function referenceSoftmax(x: RefTensor, axis = -1): RefTensor<Float64Array> {
  const rank = x.shape.length;
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < rank)) throw new Error(`reference: axis ${axis} out of range`);
  const outer = x.shape.slice(0, a).reduce((p, n) => p * n, 1);
  const len = x.shape[a];
  const inner = x.shape.slice(a + 1).reduce((p, n) => p * n, 1);
  const y = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < inner; c++) {
      const at = (j: number): number => (o * len + j) * inner + c;
      let max = -Infinity;
      for (let j = 0; j < len; j++) max = Math.max(max, x.data[at(j)]);
      if (max === -Infinity) continue;
      let sum = 0;
      for (let j = 0; j < len; j++) sum += Math.exp(x.data[at(j)] - max);
      for (let j = 0; j < len; j++) y[at(j)] = Math.exp(x.data[at(j)] - max) / sum;
    }
  }
  return { data: y, shape: [...x.shape] };
}
