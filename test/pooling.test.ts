// attentionPooling (hierarchical attention pooling, Yang et al. 2016) against a float64 reference:
// u = tanh(W h + b), a = softmax over the (unmasked) elements of u · context, out = Σ a h.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { attentionPooling, init, type Tensor } from "../src/index";
import { expectClose, type Tolerance } from "./helpers/conformance";
import { randInt, randomTensor, rng } from "./helpers/random";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };

beforeAll(async () => {
  await init();
});

interface RefPooling {
  output: { data: Float64Array; shape: number[] };
  weights: { data: Float64Array; shape: number[] };
}

/** h [B,N,D] or [N,D]; w [A,D] row-major; mask uint8 [B,N] or [N] (1 = real element). */
function referencePooling(
  h: Tensor,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  context: ArrayLike<number>,
  mask?: Tensor<Uint8Array>,
): RefPooling {
  const rank2 = h.shape.length === 2;
  const [B, N, D] = rank2 ? [1, h.shape[0], h.shape[1]] : [h.shape[0], h.shape[1], h.shape[2]];
  const A = b.length;
  const output = new Float64Array(B * D);
  const weights = new Float64Array(B * N);
  for (let bi = 0; bi < B; bi++) {
    const scores = new Float64Array(N);
    for (let n = 0; n < N; n++) {
      const hn = (bi * N + n) * D;
      let s = 0;
      for (let a = 0; a < A; a++) {
        let z = b[a];
        for (let d = 0; d < D; d++) z += w[a * D + d] * h.data[hn + d];
        s += Math.tanh(z) * context[a];
      }
      const visible = !mask || mask.data[mask.shape.length === 2 ? bi * N + n : n] !== 0;
      scores[n] = visible ? s : -Infinity;
    }
    const max = Math.max(...scores);
    if (max === -Infinity) continue;
    let sum = 0;
    for (let n = 0; n < N; n++) sum += Math.exp(scores[n] - max);
    for (let n = 0; n < N; n++) {
      const p = Math.exp(scores[n] - max) / sum;
      weights[bi * N + n] = p;
      for (let d = 0; d < D; d++) output[bi * D + d] += p * h.data[(bi * N + n) * D + d];
    }
  }
  return {
    output: { data: output, shape: rank2 ? [D] : [B, D] },
    weights: { data: weights, shape: rank2 ? [N] : [B, N] },
  };
}

interface PoolCase {
  rank: 2 | 3;
  B: number;
  N: number;
  D: number;
  A: number;
  maskForm: "none" | "BN" | "N";
  density: number;
  fullRows: number;
  wAsTensor: boolean;
  paramScale: number;
  seed: number;
}

function check(c: PoolCase): void {
  const r = rng(c.seed);
  const B = c.rank === 2 ? 1 : c.B;
  const h = randomTensor(r, c.rank === 2 ? [c.N, c.D] : [B, c.N, c.D]);
  const w = randomTensor(r, [c.A, c.D], -c.paramScale, c.paramScale);
  const b = randomTensor(r, [c.A], -0.5, 0.5).data;
  const context = randomTensor(r, [c.A], -c.paramScale, c.paramScale).data;
  let mask: Tensor<Uint8Array> | undefined;
  if (c.maskForm !== "none") {
    const shape = c.maskForm === "BN" ? [B, c.N] : [c.N];
    const data = new Uint8Array(shape[0] * (shape[1] ?? 1));
    for (let i = 0; i < data.length; i++) data[i] = r() < c.density ? 1 : 0;
    for (let f = 0; f < c.fullRows; f++) {
      const row = c.maskForm === "BN" ? randInt(r, 0, B - 1) : 0;
      data.fill(0, row * c.N, (row + 1) * c.N);
    }
    mask = { data, shape };
  }
  const got = attentionPooling(
    h,
    { w: c.wAsTensor ? w : w.data, b, context },
    mask ? { mask } : undefined,
  );
  const want = referencePooling(h, w.data, b, context, mask);
  const what = JSON.stringify(c);
  expectClose(got.output, want.output, TOL, `output of ${what}`);
  expectClose(got.weights, want.weights, TOL, `weights of ${what}`);
  for (let bi = 0; bi < B; bi++) {
    const row = got.weights.data.subarray(bi * c.N, (bi + 1) * c.N);
    const sum = row.reduce((x, y) => x + y, 0);
    const seen = mask
      ? Array.from({ length: c.N }, (_, n) =>
          mask.shape.length === 2 ? mask.data[bi * c.N + n] : mask.data[n],
        ).some((x) => x !== 0)
      : true;
    if (seen) {
      if (!(Math.abs(sum - 1) < 1e-5)) expect.fail(`weights of batch ${bi} sum to ${sum}: ${what}`);
    } else {
      const out = got.output.data.subarray(bi * c.D, (bi + 1) * c.D);
      if (!out.every((x) => x === 0) || !row.every((x) => x === 0)) {
        expect.fail(`fully masked batch ${bi} is not zero: ${what}`);
      }
    }
  }
}

const caseArb: fc.Arbitrary<PoolCase> = fc.record({
  rank: fc.constantFrom(2 as const, 3 as const, 3 as const),
  B: fc.integer({ min: 1, max: 4 }),
  N: fc.oneof(
    { arbitrary: fc.constant(1), weight: 1 },
    { arbitrary: fc.integer({ min: 1, max: 24 }), weight: 4 },
    { arbitrary: fc.integer({ min: 60, max: 150 }), weight: 1 },
  ),
  D: fc.oneof(fc.integer({ min: 1, max: 13 }), fc.constantFrom(16, 32, 37)),
  A: fc.oneof(fc.integer({ min: 1, max: 13 }), fc.constantFrom(16, 24, 33)),
  maskForm: fc.constantFrom("none" as const, "BN" as const, "N" as const),
  density: fc.constantFrom(0.3, 0.7, 1),
  fullRows: fc.constantFrom(0, 0, 1),
  wAsTensor: fc.boolean(),
  paramScale: fc.constantFrom(0.3, 1, 2),
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
});

describe("attentionPooling matches the float64 reference", () => {
  it("on random B, N (incl. 1), D, A, with and without masks ([B,N] and [N])", () => {
    fc.assert(fc.property(caseArb, check), { numRuns: 300, seed: 0x9001 });
  });

  it("rank-2 h gives output [D] and weights [N]; rank 3 gives [B,D] and [B,N]", () => {
    const r = rng(3);
    const params = {
      w: randomTensor(r, [5, 7]).data,
      b: randomTensor(r, [5]).data,
      context: randomTensor(r, [5]).data,
    };
    const h2 = randomTensor(r, [9, 7]);
    const p2 = attentionPooling(h2, params);
    expect(p2.output.shape).toEqual([7]);
    expect(p2.weights.shape).toEqual([9]);
    const want2 = referencePooling(h2, params.w, params.b, params.context);
    expectClose(p2.output, want2.output, TOL, "rank-2 output");
    expectClose(p2.weights, want2.weights, TOL, "rank-2 weights");
    // The same sequence as a batch of one.
    const p3 = attentionPooling({ data: h2.data, shape: [1, 9, 7] }, params);
    expect(p3.output.shape).toEqual([1, 7]);
    expect(p3.weights.shape).toEqual([1, 9]);
    expectClose(p3.output, { data: want2.output.data, shape: [1, 7] }, TOL, "rank-3 output");
    expectClose(p3.weights, { data: want2.weights.data, shape: [1, 9] }, TOL, "rank-3 weights");
    // Rank 2 with a [N] mask and with a [1, N] mask.
    const mask = { data: Uint8Array.from([1, 0, 1, 1, 0, 0, 1, 1, 0]), shape: [9] };
    const want = referencePooling(h2, params.w, params.b, params.context, mask);
    expectClose(attentionPooling(h2, params, { mask }).output, want.output, TOL, "[N] mask");
    expectClose(
      attentionPooling(h2, params, { mask: { data: mask.data, shape: [1, 9] } }).output,
      want.output,
      TOL,
      "[1,N] mask",
    );
  });

  it("N = 1: the weight is 1 and the output is h itself", () => {
    const r = rng(4);
    const h = randomTensor(r, [3, 1, 6]);
    const res = attentionPooling(h, {
      w: randomTensor(r, [4, 6]).data,
      b: randomTensor(r, [4]).data,
      context: randomTensor(r, [4]).data,
    });
    expect(Array.from(res.weights.data)).toEqual([1, 1, 1]);
    expectClose(res.output, { data: h.data, shape: [3, 6] }, { atol: 1e-7, rtol: 1e-6 }, "output");
  });

  it("a fully masked sequence pools to zeros with zero weights; the others are unaffected", () => {
    const r = rng(5);
    const h = randomTensor(r, [3, 10, 5]);
    const params = {
      w: randomTensor(r, [6, 5]).data,
      b: randomTensor(r, [6]).data,
      context: randomTensor(r, [6]).data,
    };
    const mask = { data: new Uint8Array(30).fill(1), shape: [3, 10] };
    mask.data.fill(0, 10, 20);
    mask.data[25] = 0;
    const res = attentionPooling(h, params, { mask });
    expect(Array.from(res.output.data.subarray(5, 10))).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(res.weights.data.subarray(10, 20))).toEqual(new Array(10).fill(0));
    expect(res.weights.data[25]).toBe(0);
    const want = referencePooling(h, params.w, params.b, params.context, mask);
    expectClose(res.output, want.output, TOL, "output");
    expectClose(res.weights, want.weights, TOL, "weights");
    // All masked with a [N] mask: every batch entry pools to zeros.
    const none = attentionPooling(h, params, { mask: { data: new Uint8Array(10), shape: [10] } });
    expect(none.output.data.every((x) => x === 0)).toBe(true);
    expect(none.weights.data.every((x) => x === 0)).toBe(true);
  });

  it("NaN in masked elements of h does not reach the output", () => {
    const r = rng(6);
    const h = randomTensor(r, [2, 12, 4]);
    const params = {
      w: randomTensor(r, [3, 4]).data,
      b: randomTensor(r, [3]).data,
      context: randomTensor(r, [3]).data,
    };
    const mask = { data: new Uint8Array(12).fill(1), shape: [12] };
    mask.data[3] = 0;
    mask.data[8] = 0;
    const clean = attentionPooling(h, params, { mask });
    const dirty = { data: h.data.slice(), shape: h.shape };
    for (const b of [0, 1])
      for (const n of [3, 8]) dirty.data.fill(NaN, (b * 12 + n) * 4, (b * 12 + n + 1) * 4);
    const res = attentionPooling(dirty, params, { mask });
    expect(Array.from(res.output.data)).toEqual(Array.from(clean.output.data));
    expect(Array.from(res.weights.data)).toEqual(Array.from(clean.weights.data));
  });
});
