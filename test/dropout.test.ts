// Dropout of the attention probabilities: the kernels against the float64 reference with the same
// hash mask (forward and backward), the statistics of the mask, the expectation over seeds, and
// that the backward pass regenerates exactly the forward's mask.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  init,
  scaledDotProductAttention,
  scaledDotProductAttentionBackward,
  type ScaledDotProductAttentionOptions,
  type Tensor,
} from "../src/index";
import { closeProblem, type Tolerance } from "./helpers/conformance";
import { randomTensor, rng } from "./helpers/random";
import { build, caseArb, type Case } from "./helpers/sdpa-cases";
import { referenceSdpa } from "./reference";
import { referenceSdpaBackward } from "./reference-backward";

const TOL: Tolerance = { atol: 5e-5, rtol: 5e-4 };
const GRAD_TOL: Tolerance = { atol: 2e-4, rtol: 2e-3 };

beforeAll(async () => {
  await init();
});

const withDropout = fc.record({
  p: fc.constantFrom(0.1, 0.5, 0.9),
  seed: fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
});

function forwardAndBackward(c: Case, dropout: { p: number; seed: number }): { problems: string[] } {
  const { q, k, v, options, refOptions } = build(c);
  const { returnWeights: _w, returnLse: _l, ...forward } = options;
  const opts: ScaledDotProductAttentionOptions = { ...forward, dropout };
  const got = scaledDotProductAttention(q, k, v, { ...opts, returnWeights: true, returnLse: true });
  const want = referenceSdpa(q, k, v, { ...refOptions, dropout });
  const dout = randomTensor(rng(c.seed + 7), [...q.shape.slice(0, -1), c.Dv]);
  const grads = scaledDotProductAttentionBackward(q, k, v, got.output, dout, {
    ...opts,
    lse: got.lse!,
  });
  const wantGrads = referenceSdpaBackward(q, k, v, dout, { ...refOptions, dropout });
  const problems = [
    ["output", closeProblem(got.output, want.output, TOL)],
    ["weights", closeProblem(got.weights, want.weights, TOL)],
    ["lse", closeProblem(got.lse, want.lse, { atol: 1e-4, rtol: 0 })],
    ["dq", closeProblem(grads.dq, wantGrads.dq, GRAD_TOL)],
    ["dk", closeProblem(grads.dk, wantGrads.dk, GRAD_TOL)],
    ["dv", closeProblem(grads.dv, wantGrads.dv, GRAD_TOL)],
  ]
    .filter(([, p]) => p !== null)
    .map(([what, p]) => `${what}: ${p}`);
  return { problems };
}

describe("dropout", () => {
  it("matches the float64 reference with the same mask, forward and backward", () => {
    const arb = fc.tuple(caseArb({ masks: true, structure: true, extras: true }), withDropout);
    fc.assert(
      fc.property(arb, ([c, dropout]) => {
        const { problems } = forwardAndBackward(c, dropout);
        if (problems.length > 0) {
          throw new Error(`${problems.join("\n")}\ncase: ${JSON.stringify({ c, dropout })}`);
        }
      }),
      { numRuns: 200, seed: 0xd80 },
    );
  });

  it("drops a fraction p of the weights and scales the rest by 1/(1 − p)", () => {
    const r = rng(3);
    const [H, N, D] = [4, 96, 16];
    const q = randomTensor(r, [1, H, N, D]);
    const k = randomTensor(r, [1, H, N, D]);
    const plain = scaledDotProductAttention(q, k, k, { returnWeights: true }).weights!.data;
    for (const p of [0.1, 0.5, 0.8]) {
      const dropped = scaledDotProductAttention(q, k, k, {
        returnWeights: true,
        dropout: { p, seed: 11 },
      }).weights!.data;
      let zeros = 0;
      for (let i = 0; i < plain.length; i++) {
        if (dropped[i] === 0) zeros++;
        else expect(dropped[i] / plain[i]).toBeCloseTo(1 / (1 - p), 5);
      }
      // 36 864 draws: 5 standard deviations of the binomial proportion.
      const sd = Math.sqrt((p * (1 - p)) / plain.length);
      expect(Math.abs(zeros / plain.length - p)).toBeLessThan(5 * sd);
    }
  });

  it("has the output without dropout as its expectation over seeds", () => {
    const r = rng(5);
    const shape = [1, 2, 8, 8];
    const [q, k, v] = [randomTensor(r, shape), randomTensor(r, shape), randomTensor(r, shape)];
    const plain = scaledDotProductAttention(q, k, v).output.data;
    const seeds = 2000;
    const mean = new Float64Array(plain.length);
    for (let seed = 0; seed < seeds; seed++) {
      const out = scaledDotProductAttention(q, k, v, { dropout: { p: 0.3, seed } }).output.data;
      for (let i = 0; i < mean.length; i++) mean[i] += out[i] / seeds;
    }
    // Each output is a sum of 8 terms of variance ≤ p/(1−p)·(p_j v_j)²: the mean over 2000 seeds
    // is within a few hundredths of the expectation.
    for (let i = 0; i < mean.length; i++) expect(Math.abs(mean[i] - plain[i])).toBeLessThan(0.03);
    // And a single draw is not: the mask really changes the output.
    const one = scaledDotProductAttention(q, k, v, { dropout: { p: 0.3, seed: 1 } }).output.data;
    expect(Math.max(...one.map((x, i) => Math.abs(x - plain[i])))).toBeGreaterThan(0.05);
  });

  it("gives the same mask for the same seed and another for another seed", () => {
    const r = rng(9);
    const shape = [2, 3, 70, 20];
    const [q, k, v] = [randomTensor(r, shape), randomTensor(r, shape), randomTensor(r, shape)];
    const run = (seed: number): Float32Array =>
      scaledDotProductAttention(q, k, v, { causal: true, dropout: { p: 0.2, seed } }).output.data;
    expect(Array.from(run(42))).toEqual(Array.from(run(42)));
    expect(Array.from(run(42))).not.toEqual(Array.from(run(43)));
    // Seeds are read as unsigned 32-bit integers.
    expect(Array.from(run(-1))).toEqual(Array.from(run(2 ** 32 - 1)));
  });

  it("backward agrees with central finite differences of the dropped forward", () => {
    const r = rng(13);
    const [H, Nq, Nk, D] = [2, 9, 11, 5];
    const inputs = {
      q: randomTensor(r, [1, H, Nq, D]),
      k: randomTensor(r, [1, H, Nk, D]),
      v: randomTensor(r, [1, H, Nk, D]),
    };
    const dout = randomTensor(r, [1, H, Nq, D]);
    const dropout = { p: 0.4, seed: 1234 };
    const f = scaledDotProductAttention(inputs.q, inputs.k, inputs.v, {
      causal: true,
      dropout,
      returnLse: true,
    });
    const g = scaledDotProductAttentionBackward(inputs.q, inputs.k, inputs.v, f.output, dout, {
      causal: true,
      dropout,
      lse: f.lse!,
    });
    const loss = (t: Record<"q" | "k" | "v", Tensor>): number => {
      const out = referenceSdpa(t.q, t.k, t.v, { causal: true, dropout }).output.data;
      return out.reduce((a, y, i) => a + y * dout.data[i], 0);
    };
    const grads = { q: g.dq, k: g.dk, v: g.dv };
    for (const which of ["q", "k", "v"] as const) {
      for (let s = 0; s < 8; s++) {
        const index = Math.floor(((s + 0.5) / 8) * inputs[which].data.length);
        const shifted = (delta: number): number => {
          const data = Float64Array.from(inputs[which].data);
          data[index] += delta;
          return loss({ ...inputs, [which]: { data, shape: inputs[which].shape } });
        };
        const fd = (shifted(1e-4) - shifted(-1e-4)) / 2e-4;
        expect(Math.abs(grads[which].data[index] - fd)).toBeLessThan(2e-3 + 5e-3 * Math.abs(fd));
      }
    }
  });
});
