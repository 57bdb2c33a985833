// MultiHeadAttention.backward: every gradient (inputs, weights, biases) against central finite
// differences of the float64 reference, for self- and cross-attention, grouped-query heads, every
// mask form, causal, window and both RoPE styles, then over random small shapes (fast-check); which
// gradients are returned for which arguments; keepForBackward with forwardAsync, setWeights and
// dispose; and the errors, which leave WASM memory untouched and the module usable.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  MultiHeadAttention,
  init,
  type MhaSaved,
  type MultiHeadAttentionGradients,
  type Tensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { bad, expectUntouched, snapshot, thrown } from "./helpers/errors";
import { checkGradients, runCase, type GradientCase } from "./helpers/mha-gradients";
import { randomAdditiveMask, randomBoolMask, randomTensor, rng } from "./helpers/random";

beforeAll(async () => {
  await init();
});

/** A [B, Nk] key mask with key `Nk − 1` padded in every entry and entry 1 fully padded. */
function paddedKeys(B: number, Nk: number): Tensor<Uint8Array> {
  const data = new Uint8Array(B * Nk).fill(1);
  for (let b = 0; b < B; b++) data[b * Nk + Nk - 1] = 0;
  if (B > 1) data.fill(0, Nk, 2 * Nk);
  return { data, shape: [B, Nk] };
}

const r = rng(2024);
const CASES: Array<[string, GradientCase]> = [
  ["self-attention with bias", { config: { embedDim: 8, numHeads: 2 }, B: 2, Nq: 5 }],
  [
    "self-attention without bias, rank 2",
    { config: { embedDim: 6, numHeads: 3, bias: false }, B: 1, Nq: 4, rank2: true },
  ],
  [
    "cross-attention, kdim ≠ vdim ≠ E",
    { config: { embedDim: 8, numHeads: 2, kdim: 5, vdim: 7 }, B: 2, Nq: 3, Nk: 6 },
  ],
  [
    "grouped-query heads, causal",
    { config: { embedDim: 8, numHeads: 4, numKvHeads: 2 }, B: 2, Nq: 5, options: { causal: true } },
  ],
  [
    "multi-query, cross, causal with more keys than queries",
    {
      config: { embedDim: 8, numHeads: 4, numKvHeads: 1, kdim: 6, vdim: 6 },
      B: 1,
      Nq: 3,
      Nk: 5,
      options: { causal: true },
    },
  ],
  [
    "keyMask (one entry fully padded)",
    {
      config: { embedDim: 8, numHeads: 2 },
      B: 2,
      Nq: 3,
      Nk: 4,
      options: { keyMask: paddedKeys(2, 4) },
    },
  ],
  [
    "keyMask ∩ boolean mask [Nq, Nk]",
    {
      config: { embedDim: 8, numHeads: 2 },
      B: 2,
      Nq: 4,
      options: { keyMask: paddedKeys(2, 4), mask: randomBoolMask(r, [4, 4], 0.7) },
    },
  ],
  [
    "keyMask ∩ additive mask [B, 1, Nq, Nk] with −Infinity",
    {
      config: { embedDim: 8, numHeads: 2, numKvHeads: 1 },
      B: 2,
      Nq: 4,
      options: { keyMask: paddedKeys(2, 4), mask: randomAdditiveMask(r, [2, 1, 4, 4], 0.8) },
    },
  ],
  [
    "PyTorch's [B·H, Nq, Nk] boolean mask",
    {
      config: { embedDim: 8, numHeads: 2 },
      B: 2,
      Nq: 3,
      Nk: 4,
      options: { mask: randomBoolMask(r, [4, 3, 4], 0.75) },
    },
  ],
  [
    "sliding window",
    { config: { embedDim: 8, numHeads: 2 }, B: 1, Nq: 6, options: { window: [2, 1] } },
  ],
  [
    "RoPE (neox), cross, causal: queries at positions Nk − Nq..",
    {
      config: { embedDim: 8, numHeads: 2, rope: {} },
      B: 2,
      Nq: 3,
      Nk: 5,
      options: { causal: true },
    },
  ],
  [
    "RoPE (gptj, base 100), grouped-query, self",
    {
      config: { embedDim: 8, numHeads: 2, numKvHeads: 1, rope: { style: "gptj", base: 100 } },
      B: 1,
      Nq: 5,
    },
  ],
];

describe("MultiHeadAttention.backward matches finite differences of the float64 reference", () => {
  it.each(CASES)("%s", (_name, c) => {
    const run = runCase(rng(7), c);
    expect(checkGradients(c, run)).toBeGreaterThan(100);
    const { got } = run;
    expect(got.dKey === undefined, "dKey present only for cross-attention").toBe(
      c.Nk === undefined,
    );
    expect(got.dValue === undefined).toBe(c.Nk === undefined);
    const bias = c.config.bias ?? true;
    for (const b of ["bq", "bk", "bv", "bo"] as const)
      expect(got.grads[b] !== undefined).toBe(bias);
  });

  it("holds over random small shapes and options (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.record({
          B: fc.integer({ min: 1, max: 2 }),
          H: fc.constantFrom(1, 2, 4),
          groups: fc.constantFrom(1, 2, 4),
          hd: fc.constantFrom(2, 4),
          Nq: fc.integer({ min: 1, max: 5 }),
          Nk: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
          kdim: fc.integer({ min: 1, max: 6 }),
          vdim: fc.integer({ min: 1, max: 6 }),
          bias: fc.boolean(),
          causal: fc.boolean(),
          rope: fc.constantFrom(undefined, "neox" as const, "gptj" as const),
          keyMask: fc.boolean(),
          seed: fc.integer(),
        }),
        (p) => {
          const Hkv = p.H % p.groups === 0 ? p.H / p.groups : p.H;
          const Nk = p.Nk ?? p.Nq;
          const keyMask = randomBoolMask(rng(p.seed), [p.B, Nk], 0.8);
          const c: GradientCase = {
            config: {
              embedDim: p.H * p.hd,
              numHeads: p.H,
              numKvHeads: Hkv,
              bias: p.bias,
              ...(p.Nk !== undefined ? { kdim: p.kdim, vdim: p.vdim } : {}),
              ...(p.rope ? { rope: { style: p.rope } } : {}),
            },
            B: p.B,
            Nq: p.Nq,
            Nk: p.Nk,
            options: { causal: p.causal, ...(p.keyMask ? { keyMask } : {}) },
          };
          checkGradients(c, runCase(rng(p.seed), c), 6);
        },
      ),
      { seed: 0x6ad, numRuns: 40 },
    );
  });
});

describe("which gradients backward returns", () => {
  const E = 8;

  it("self-attention: dQuery is the whole input gradient; passing x three times splits it", () => {
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: 2, seed: 5 });
    const x = randomTensor(rng(1), [2, 4, E]);
    const dy = randomTensor(rng(2), [2, 4, E]);
    const self = mha.backward(
      dy,
      mha.forward(x, undefined, undefined, { keepForBackward: true }).saved,
    );
    const split = mha.backward(dy, mha.forward(x, x, x, { keepForBackward: true }).saved);
    expect(self.dKey).toBeUndefined();
    expect(self.dValue).toBeUndefined();
    const sum = split.dQuery.data.map((g, i) => g + split.dKey!.data[i] + split.dValue!.data[i]);
    for (let i = 0; i < sum.length; i++) expect(self.dQuery.data[i]).toBeCloseTo(sum[i], 6);
    for (const name of ["wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"] as const)
      expect(split.grads[name]).toEqual(self.grads[name]);
    expect(Object.keys(mha.getWeights()).sort()).toEqual([
      "bk",
      "bo",
      "bq",
      "bv",
      "wk",
      "wo",
      "wq",
      "wv",
    ]);
    mha.dispose();
  });

  it("forwardAsync keeps the same state as forward", async () => {
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: 2, rope: {}, seed: 9 });
    const x = randomTensor(rng(3), [1, 5, E]);
    const dy = randomTensor(rng(4), [1, 5, E]);
    const opts = { causal: true, keepForBackward: true } as const;
    const sync = mha.backward(dy, mha.forward(x, undefined, undefined, opts).saved);
    const async = mha.backward(dy, (await mha.forwardAsync(x, undefined, undefined, opts)).saved);
    expect(async.dQuery.data).toEqual(sync.dQuery.data);
    expect(async.grads).toEqual(sync.grads);
    mha.dispose();
  });

  it("needWeights and keepForBackward together; without keepForBackward there is no saved", () => {
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: 2 });
    const x = randomTensor(rng(5), [1, 3, E]);
    const f = mha.forward(x, undefined, undefined, { needWeights: true, keepForBackward: true });
    expect(f.weights!.shape).toEqual([1, 3, 3]);
    expect(f.saved).toBeDefined();
    expect(mha.forward(x).saved).toBeUndefined();
    expect(mha.forward(x, undefined, undefined, { keepForBackward: false }).saved).toBeUndefined();
    mha.dispose();
  });
});

describe("weights, memory and lifecycle", () => {
  const E = 8;
  const bytesInUse = (): number => kernels("test").workspace.bytesInUse;

  it("getWeights reads back exactly the weights given, across panel and depth-block edges", () => {
    // E = 12 rows (not a multiple of the 8-row panels), kdim = 300 (more than one 256-deep block).
    const [E, kvDim, kdim, vdim] = [12, 6, 300, 5];
    const rr = rng(77);
    const values = (n: number): Float32Array => randomTensor(rr, [n]).data;
    const weights = {
      wq: values(E * E),
      wk: values(kvDim * kdim),
      wv: values(kvDim * vdim),
      wo: values(E * E),
      bq: values(E),
      bk: values(kvDim),
      bv: values(kvDim),
      bo: values(E),
    };
    const mha = new MultiHeadAttention({
      embedDim: E,
      numHeads: 4,
      numKvHeads: 2,
      kdim,
      vdim,
      weights,
    });
    const back = mha.getWeights();
    for (const name of Object.keys(weights) as Array<keyof typeof weights>) {
      expect(Array.from(back[name]!), name).toEqual(Array.from(weights[name]));
    }
    mha.dispose();
  });

  it("saved keeps the weights of its forward call across setWeights", () => {
    const a = new MultiHeadAttention({ embedDim: E, numHeads: 2, seed: 1 });
    const b = new MultiHeadAttention({ embedDim: E, numHeads: 2, seed: 2 });
    const x = randomTensor(rng(6), [1, 4, E]);
    const dy = randomTensor(rng(7), [1, 4, E]);
    const wa = a.getWeights();
    const saved = a.forward(x, undefined, undefined, { keepForBackward: true }).saved;
    const before = a.backward(dy, saved);
    a.setWeights(b.getWeights());
    expect(a.forward(x).output.data).toEqual(b.forward(x).output.data);
    expect(a.backward(dy, saved)).toEqual(before);
    // getWeights returns copies: changing them changes nothing.
    a.getWeights().wq.fill(0);
    expect(a.getWeights().wq).toEqual(b.getWeights().wq);
    expect(wa.wq).not.toEqual(a.getWeights().wq);
    a.dispose();
    b.dispose();
  });

  it("setWeights is refused while a forwardAsync call is pending, and checks its weights", async () => {
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: 2 });
    const w = mha.getWeights();
    const pending = mha.forwardAsync(randomTensor(rng(8), [1, 3, E]));
    expect(thrown(() => mha.setWeights(w)).code).toBe("BAD_OPTION");
    await pending;
    mha.setWeights(w);
    const before = snapshot();
    const err = thrown(() => mha.setWeights({ ...w, wk: new Float32Array(3) }));
    expect(err.code).toBe("SHAPE_MISMATCH");
    expect(err.message).toMatch(/setWeights: weights\.wk has 3 elements/);
    expectUntouched(before);
    mha.dispose();
  });

  it("saved holds no WASM memory, and outlives dispose()", () => {
    const start = bytesInUse();
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: 2 });
    const afterConstruction = bytesInUse();
    const x = randomTensor(rng(9), [2, 3, E]);
    const { saved } = mha.forward(x, undefined, undefined, { keepForBackward: true });
    expect(bytesInUse()).toBe(afterConstruction);
    mha.backward(randomTensor(rng(10), [2, 3, E]), saved);
    expect(bytesInUse()).toBe(afterConstruction);
    mha.dispose();
    expect(bytesInUse()).toBe(start);
    expect(thrown(() => mha.backward(x, saved)).code).toBe("DISPOSED");
  });
});

describe("errors leave memory untouched and the module usable", () => {
  const E = 8;
  const mha = (): MultiHeadAttention => new MultiHeadAttention({ embedDim: E, numHeads: 2 });
  const x = randomTensor(rng(11), [2, 3, E]);
  const dy = randomTensor(rng(12), [2, 3, E]);

  function expectError(call: () => unknown, code: string, message: RegExp): void {
    const before = snapshot();
    const err = thrown(call);
    expect(err.code, err.message).toBe(code);
    expect(err.message).toMatch(message);
    expectUntouched(before);
  }

  it("checks gradOutput", () => {
    const m = mha();
    const { saved } = m.forward(x, undefined, undefined, { keepForBackward: true });
    const good: MultiHeadAttentionGradients = m.backward(dy, saved);
    expectError(
      () => m.backward(randomTensor(rng(13), [2, 4, E]), saved),
      "SHAPE_MISMATCH",
      /backward: gradOutput has shape \[2,4,8\] but must be the forward output's shape \[2,3,8\]/,
    );
    expectError(
      () => m.backward({ data: new Float32Array(2 * 3 * 9), shape: [2, 3, 9] }, saved),
      "SHAPE_MISMATCH",
      /gradOutput has shape \[2,3,9\]/,
    );
    expectError(
      () => m.backward(bad({ data: new Float64Array(48), shape: [2, 3, E] }), saved),
      "BAD_DTYPE",
      /gradOutput\.data must be a Float32Array, got Float64Array/,
    );
    expectError(
      () => m.backward(bad(undefined), saved),
      "BAD_OPTION",
      /gradOutput must be a tensor/,
    );
    expect(m.backward(dy, saved)).toEqual(good);
    m.dispose();
  });

  it("checks saved: missing, forged or from another module", () => {
    const m = mha();
    const other = mha();
    const foreign = other.forward(x, undefined, undefined, { keepForBackward: true }).saved;
    expectError(
      () => m.backward(dy, bad<MhaSaved>(undefined)),
      "BAD_OPTION",
      /saved must be what forward\(\.\.\., \{ keepForBackward: true \}\) returned/,
    );
    expectError(
      () => m.backward(dy, bad<MhaSaved>({})),
      "BAD_OPTION",
      /saved must be .*got Object/,
    );
    expectError(
      () => m.backward(dy, foreign),
      "BAD_OPTION",
      /saved comes from .*another MultiHeadAttention/,
    );
    // The other module's state is intact, and this module still works.
    expect(other.backward(dy, foreign).dQuery.shape).toEqual([2, 3, E]);
    const { saved } = m.forward(x, undefined, undefined, { keepForBackward: true });
    expect(m.backward(dy, saved).dQuery.shape).toEqual([2, 3, E]);
    m.dispose();
    other.dispose();
  });

  it("refuses keepForBackward with a KV cache, or not a boolean", () => {
    const m = mha();
    const cache = m.createCache({ maxLength: 8 });
    const one = randomTensor(rng(14), [1, 2, E]);
    expectError(
      () => m.forward(one, undefined, undefined, { cache, keepForBackward: true }),
      "BAD_OPTION",
      /forward: keepForBackward cannot be combined with cache/,
    );
    expect(cache.length).toBe(0);
    expectError(
      () => m.forward(one, undefined, undefined, bad({ keepForBackward: 1 })),
      "BAD_OPTION",
      /keepForBackward must be true or false, got number 1/,
    );
    expect(m.forward(one, undefined, undefined, { cache }).output.shape).toEqual([1, 2, E]);
    expect(cache.length).toBe(2);
    m.dispose();
  });

  it("rejects forwardAsync with keepForBackward and a cache the same way", async () => {
    const m = mha();
    const cache = m.createCache({ maxLength: 8 });
    await expect(
      m.forwardAsync(randomTensor(rng(15), [1, 2, E]), undefined, undefined, {
        cache,
        keepForBackward: true,
      }),
    ).rejects.toThrow(/forwardAsync: keepForBackward cannot be combined with cache/);
    m.dispose();
  });
});
