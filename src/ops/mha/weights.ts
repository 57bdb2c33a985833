// MultiHeadAttention's weights: checked or initialised, packed into WASM memory, read back, replaced.

import { stagedBytes, withCall } from "../../runtime/call.js";
import { AttentionError } from "../../core/errors.js";
import { packedWeightsBytes, readVector, weightTensor } from "../linear.js";
import { unpackWeights } from "./packed-weights.js";
import { type MhaParameters } from "./saved.js";
import { type Kernels } from "../../runtime/runtime.js";
import { readOptions } from "../../core/option-values.js";
import { type Tensor } from "../../core/tensor.js";
import { formatBytes, Workspace } from "../../runtime/workspace.js";
import { mulberry32 } from "../../core/mulberry32.js";
import {
  NAME,
  WEIGHT_KEYS,
  type CheckedOptions,
  type MultiHeadAttentionWeights,
} from "./options.js";

export interface Projection {
  packed: number; // packed weights (gemm layout)
  bias: number; // 0 = none
  outFeatures: number;
  inFeatures: number;
}

/** The four projections of a module, packed in WASM memory. */
export interface Projections {
  q: Projection;
  k: Projection;
  v: Projection;
  o: Projection;
}

/**
 * Checks that everything the module keeps in WASM memory fits, before anything is allocated (or
 * made in JavaScript: initWeights makes the matrices first).
 */
export function checkWeightsFit(k: Kernels, c: CheckedOptions): void {
  const { E, H, Hkv, kdim, vdim, kvDim, bias } = c;
  const block = Workspace.blockSize;
  const shapes: Array<[number, number]> = [
    [E, E],
    [kvDim, kdim],
    [kvDim, vdim],
    [E, E],
  ];
  const needed =
    shapes.reduce((n, [out, inp]) => n + block(packedWeightsBytes(k, out, inp)), 0) +
    (bias ? 2 * block(E * 4) + 2 * block(kvDim * 4) : 0) +
    Math.max(...shapes.map(([out, inp]) => block(out * inp * 4)));
  const available = k.workspace.bytesAvailable();
  if (!(needed <= available)) {
    throw new AttentionError(
      "OUT_OF_MEMORY",
      `${NAME}: the weights of embedDim ${E}, kdim ${kdim}, vdim ${vdim} (${Hkv} of ${H} heads for keys ` +
        `and values) need about ${formatBytes(needed)} of WASM memory but only ` +
        `${formatBytes(available)} can be provided within the 4 GiB wasm32 limit`,
    );
  }
}

// Packs one weight matrix (and copies its bias) into memory kept until dispose(), allocated by
// `persistent`.
export function packProjection(
  kernels: Kernels,
  weight: Tensor,
  bias: Tensor | undefined,
  persistent: (bytes: number, what: string) => number,
): Projection {
  const { exports, workspace } = kernels;
  const [outFeatures, inFeatures] = weight.shape;
  const packed = persistent(packedWeightsBytes(kernels, outFeatures, inFeatures), "weights");
  withCall(
    NAME,
    (k) => stagedBytes(weight, k),
    (call) => {
      const raw = call.inputF32(weight, "weights");
      exports.packWeights(raw, outFeatures, inFeatures, inFeatures, packed);
    },
  );
  let biasPtr = 0;
  if (bias) {
    biasPtr = persistent(outFeatures * 4, "bias");
    workspace.f32.set(bias.data, biasPtr >>> 2);
  }
  return { packed, bias: biasPtr, outFeatures, inFeatures };
}

/** Packs checked weights over the projections in place (setWeights). */
export function repackWeights(
  op: string,
  kernels: Kernels,
  p: Projections,
  w: CheckedWeights,
): void {
  const { exports, workspace } = kernels;
  const pairs = [
    [p.q, w.wq, w.bq],
    [p.k, w.wk, w.bk],
    [p.v, w.wv, w.bv],
    [p.o, w.wo, w.bo],
  ] as const;
  withCall(
    op,
    (k) => pairs.reduce((n, [, weight]) => n + stagedBytes(weight, k), 0),
    (call) => {
      for (const [projection, weight, bias] of pairs) {
        const raw = call.inputF32(weight, "weights");
        const { outFeatures, inFeatures, packed } = projection;
        exports.packWeights(raw, outFeatures, inFeatures, inFeatures, packed);
        if (bias) workspace.f32.set(bias.data, projection.bias >>> 2);
      }
    },
  );
}

// The weights and biases, read back out of WASM memory (the module keeps no other copy).
export function readWeights(
  kernels: Kernels,
  projections: Projections,
  hasBias: boolean,
): MhaParameters {
  const read = (p: Projection): Float32Array =>
    unpackWeights(kernels, p.packed, p.outFeatures, p.inFeatures);
  const bias = (p: Projection): Float32Array | undefined => {
    const at = p.bias >>> 2;
    return p.bias ? kernels.workspace.f32.slice(at, at + p.outFeatures) : undefined;
  };
  const { q, k, v, o } = projections;
  const w: MhaParameters = { wq: read(q), wk: read(k), wv: read(v), wo: read(o) };
  if (hasBias) Object.assign(w, { bq: bias(q), bk: bias(k), bv: bias(v), bo: bias(o) });
  return w;
}

export interface CheckedWeights {
  wq: Tensor;
  wk: Tensor;
  wv: Tensor;
  wo: Tensor;
  bq?: Tensor;
  bk?: Tensor;
  bv?: Tensor;
  bo?: Tensor;
}

export function checkWeights(
  weights: unknown,
  E: number,
  kvDim: number,
  kdim: number,
  vdim: number,
  bias: boolean,
  op: string = NAME,
): CheckedWeights {
  const w = readOptions<MultiHeadAttentionWeights>(op, weights, WEIGHT_KEYS, "weights");
  const matrix = (name: "wq" | "wk" | "wv" | "wo", inp: number, out: number): Tensor => {
    const m = w[name];
    if (m === undefined) {
      throw new AttentionError("BAD_OPTION", `${op}: weights.${name} [${out},${inp}] is missing`);
    }
    return weightTensor(op, `weights.${name}`, m, inp, out);
  };
  const checked: CheckedWeights = {
    wq: matrix("wq", E, E),
    wk: matrix("wk", kdim, kvDim),
    wv: matrix("wv", vdim, kvDim),
    wo: matrix("wo", E, E),
  };
  const biasSizes = { bq: E, bk: kvDim, bv: kvDim, bo: E } as const;
  for (const name of ["bq", "bk", "bv", "bo"] as const) {
    const b = w[name];
    const n = biasSizes[name];
    if (b === undefined) {
      if (bias) checked[name] = { data: new Float32Array(n), shape: [n] };
      continue;
    }
    if (!bias) {
      throw new AttentionError("BAD_OPTION", `${op}: weights.${name} is given but bias is false`);
    }
    checked[name] = readVector(
      op,
      `weights.${name}`,
      b,
      n,
      name === "bq" || name === "bo" ? "[E]" : "[E·Hkv/H]",
    );
  }
  return checked;
}

// PyTorch's initialisation: Xavier uniform on the input projections (one [3E, E] matrix when
// kdim = vdim = E and there is no grouping, as torch's in_proj_weight; separate matrices
// otherwise), the default Linear bound 1/sqrt(E) on the output projection, zero biases.
export function initWeights(
  E: number,
  kvDim: number,
  kdim: number,
  vdim: number,
  bias: boolean,
  seed: number,
): CheckedWeights {
  const random = mulberry32(seed);
  const uniform = (n: number, bound: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (random() * 2 - 1) * bound;
    return a;
  };
  const packed = kdim === E && vdim === E && kvDim === E;
  const xavier = (out: number, inp: number): number =>
    Math.sqrt(6 / (packed ? E + 3 * E : inp + out));
  const w: CheckedWeights = {
    wq: { data: uniform(E * E, xavier(E, E)), shape: [E, E] },
    wk: { data: uniform(kvDim * kdim, xavier(kvDim, kdim)), shape: [kvDim, kdim] },
    wv: { data: uniform(kvDim * vdim, xavier(kvDim, vdim)), shape: [kvDim, vdim] },
    wo: { data: uniform(E * E, 1 / Math.sqrt(E)), shape: [E, E] },
  };
  if (bias) {
    const zeros = (n: number): Tensor => ({ data: new Float32Array(n), shape: [n] });
    w.bq = zeros(E);
    w.bk = zeros(kvDim);
    w.bv = zeros(kvDim);
    w.bo = zeros(E);
  }
  return w;
}
