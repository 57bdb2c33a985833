// Gradient checks of MultiHeadAttention.backward: central finite differences of the float64
// reference (test/reference-mha.ts) of L = Σ output ⊙ gradOutput, for every weight, bias and input.

import { expect } from "vitest";
import {
  MultiHeadAttention,
  type MultiHeadAttentionForwardOptions,
  type MultiHeadAttentionGradients,
  type MultiHeadAttentionOptions,
  type Tensor,
} from "../../src/index";
import { referenceMha, type RefMhaOptions, type RefMhaWeights } from "../reference-mha";
import { randomTensor, uniform, type Rng } from "./random";

/** One gradient check: a module, its inputs and the forward options. */
export interface GradientCase {
  config: Omit<MultiHeadAttentionOptions, "weights" | "seed">;
  B: number;
  Nq: number;
  /** Cross-attention (key and value passed) over Nk keys; self-attention when absent. */
  Nk?: number;
  /** Rank-2 inputs [N, features] (B must be 1). */
  rank2?: boolean;
  options?: MultiHeadAttentionForwardOptions;
}

/** Float32 arrays of everything the loss depends on, by name. */
type Parameters = Record<string, Float32Array>;

/** Random weights with entries in ±1/sqrt(in) and biases in ±0.5, so scores are O(1). */
function randomParameters(r: Rng, c: GradientCase): Parameters {
  const E = c.config.embedDim;
  const kvDim = (E / c.config.numHeads) * (c.config.numKvHeads ?? c.config.numHeads);
  const mat = (out: number, inp: number): Float32Array =>
    Float32Array.from({ length: out * inp }, () => uniform(r, -1, 1) / Math.sqrt(inp));
  const vec = (n: number): Float32Array =>
    Float32Array.from({ length: n }, () => uniform(r, -0.5, 0.5));
  const p: Parameters = {
    wq: mat(E, E),
    wk: mat(kvDim, c.config.kdim ?? E),
    wv: mat(kvDim, c.config.vdim ?? E),
    wo: mat(E, E),
  };
  if (c.config.bias ?? true) {
    p.bq = vec(E);
    p.bk = vec(kvDim);
    p.bv = vec(kvDim);
    p.bo = vec(E);
  }
  return p;
}

const seqShape = (c: GradientCase, n: number, features: number): number[] =>
  c.rank2 ? [n, features] : [c.B, n, features];

/** The module's gradients, with the arrays they belong to, for one random draw of `c`. */
export function runCase(
  r: Rng,
  c: GradientCase,
): {
  params: Parameters;
  gradOutput: Tensor;
  shapes: Record<string, readonly number[]>;
  got: MultiHeadAttentionGradients;
} {
  const E = c.config.embedDim;
  const params = randomParameters(r, c);
  const query = randomTensor(r, seqShape(c, c.Nq, E));
  params.query = query.data;
  const shapes: Record<string, readonly number[]> = { query: query.shape };
  let key: Tensor | undefined;
  let value: Tensor | undefined;
  if (c.Nk !== undefined) {
    key = randomTensor(r, seqShape(c, c.Nk, c.config.kdim ?? E));
    value = randomTensor(r, seqShape(c, c.Nk, c.config.vdim ?? E));
    params.key = key.data;
    params.value = value.data;
    shapes.key = key.shape;
    shapes.value = value.shape;
  }
  const gradOutput = randomTensor(r, query.shape);
  const { wq, wk, wv, wo, bq, bk, bv, bo } = params;
  const mha = new MultiHeadAttention({
    ...c.config,
    weights: { wq, wk, wv, wo, bq, bk, bv, bo },
  });
  try {
    const f = mha.forward(query, key, value, { ...c.options, keepForBackward: true });
    const got = mha.backward(gradOutput, f.saved);
    return { params, gradOutput, shapes, got };
  } finally {
    mha.dispose();
  }
}

/** L = Σ output ⊙ gradOutput of the float64 reference, at float64 copies of the parameters. */
function referenceLoss(
  c: GradientCase,
  p: Record<string, Float64Array>,
  shapes: Record<string, readonly number[]>,
  gradOutput: Tensor,
): number {
  const o = c.options ?? {};
  const refOptions: RefMhaOptions = {
    keyMask: o.keyMask,
    mask: o.mask,
    causal: o.causal,
    window: o.window,
  };
  const query = { data: p.query, shape: shapes.query };
  const key = p.key ? { data: p.key, shape: shapes.key } : query;
  const value = p.value ? { data: p.value, shape: shapes.value } : query;
  const out = referenceMha(c.config, p as unknown as RefMhaWeights, query, key, value, refOptions)
    .output.data;
  let loss = 0;
  for (let i = 0; i < out.length; i++) loss += out[i] * gradOutput.data[i];
  return loss;
}

/** Where each parameter's gradient is in the result. */
function gradientOf(got: MultiHeadAttentionGradients, name: string): Float32Array | undefined {
  if (name === "query") return got.dQuery.data;
  if (name === "key") return got.dKey?.data;
  if (name === "value") return got.dValue?.data;
  return got.grads[name as keyof MultiHeadAttentionGradients["grads"]];
}

/**
 * Checks the gradient of every parameter (every element, or `sample` evenly spread ones) against
 * central differences of the float64 reference: |got − fd| <= atol + rtol·|fd|. Returns the number
 * of elements checked.
 */
export function checkGradients(
  c: GradientCase,
  run: ReturnType<typeof runCase>,
  sample = Infinity,
  tol = { atol: 2e-5, rtol: 1e-3 },
): number {
  const { params, gradOutput, shapes, got } = run;
  const p64: Record<string, Float64Array> = {};
  for (const [name, a] of Object.entries(params)) p64[name] = Float64Array.from(a);
  const h = 1e-4; // float64 throughout: truncation ~h², rounding ~1e-16/h
  let checked = 0;
  for (const name of Object.keys(params)) {
    const grad = gradientOf(got, name);
    expect(grad, `gradient of ${name}`).toBeDefined();
    expect(grad!.length, `gradient of ${name}`).toBe(params[name].length);
    const n = params[name].length;
    const count = Math.min(n, sample);
    for (let s = 0; s < count; s++) {
      const i = count === n ? s : Math.floor(((s + 0.5) / count) * n);
      const x = p64[name][i];
      p64[name][i] = x + h;
      const up = referenceLoss(c, p64, shapes, gradOutput);
      p64[name][i] = x - h;
      const down = referenceLoss(c, p64, shapes, gradOutput);
      p64[name][i] = x;
      const fd = (up - down) / (2 * h);
      const err = Math.abs(grad![i] - fd);
      if (!(err <= tol.atol + tol.rtol * Math.abs(fd))) {
        expect.fail(`d${name}[${i}]: got ${grad![i]}, finite difference ${fd}`);
      }
      checked++;
    }
  }
  return checked;
}
