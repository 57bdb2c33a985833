// Property tests of scaledDotProductAttentionBackward (WebAssembly, float32) against the float64
// gradients of test/reference-backward.ts, on the random calls of the forward property tests: every
// rank, grouped-query heads, D ≠ Dv, Nq ≠ Nk, odd sizes across the kernel's tile edges, masks of
// every broadcast form with fully masked rows, causal, windows, global tokens, softcap and ALiBi.

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
import { randomBoolMask, randomTensor, rng } from "./helpers/random";
import { build, caseArb, poison, type Case } from "./helpers/sdpa-cases";
import { referenceSdpa } from "./reference";
import { referenceSdpaBackward } from "./reference-backward";

const TOL: Tolerance = { atol: 1e-4, rtol: 1e-3 };

beforeAll(async () => {
  await init();
});

function gradients(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  gradOutput: Tensor,
  options: ScaledDotProductAttentionOptions,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const { returnWeights: _w, returnLse: _l, ...forward } = options;
  const f = scaledDotProductAttention(q, k, v, { ...forward, returnLse: true });
  return scaledDotProductAttentionBackward(q, k, v, f.output, gradOutput, {
    ...forward,
    lse: f.lse!,
  });
}

function gradOutputFor(c: Case, q: Tensor): Tensor {
  return randomTensor(rng(c.seed + 1), [...q.shape.slice(0, -1), c.Dv]);
}

function check(c: Case): void {
  const { q, k, v, options, refOptions } = build(c);
  const dout = gradOutputFor(c, q);
  const got = gradients(q, k, v, dout, options);
  const want = referenceSdpaBackward(q, k, v, dout, refOptions);
  const problems = (["dq", "dk", "dv"] as const)
    .map((g) => [g, closeProblem(got[g], want[g], TOL)] as const)
    .filter(([, p]) => p !== null)
    .map(([g, p]) => `${g}: ${p}`);
  if (problems.length > 0) throw new Error(`${problems.join("\n")}\ncase: ${JSON.stringify(c)}`);
}

describe("scaledDotProductAttentionBackward matches the float64 gradients", () => {
  it("on random shapes with every option family", () => {
    fc.assert(fc.property(caseArb({ masks: true, structure: true, extras: true }), check), {
      numRuns: 300,
      seed: 0xbac01,
    });
  });

  it("with masks of every broadcast shape, in both dtypes, with fully masked rows", () => {
    const arb = caseArb({ masks: true, structure: false, extras: false }).filter(
      (c) => c.mask !== undefined,
    );
    fc.assert(fc.property(arb, check), { numRuns: 200, seed: 0xbac02 });
  });

  it("with causal, windows, global tokens, softcap and ALiBi", () => {
    fc.assert(fc.property(caseArb({ masks: false, structure: true, extras: true }), check), {
      numRuns: 200,
      seed: 0xbac03,
    });
  });

  it("with grouped-query and multi-query heads (dk and dv summed over each group)", () => {
    const arb = caseArb({ masks: true, structure: true, extras: false, maxH: 8 }).map(
      (c): Case => ({ ...c, rank: 4, H: 8, Hkv: [1, 2, 4, 8][c.seed % 4] }),
    );
    fc.assert(fc.property(arb, check), { numRuns: 100, seed: 0xbac04 });
  });

  // Several query blocks (64 rows) and key tiles (64 keys), ragged at both ends.
  it.each([
    ["plain", {}],
    ["causal lower-right", { causal: true }],
    ["causal upper-left", { causal: true, align: "upper-left" }],
    ["window and global tokens", { window: [9, 4], globalTokens: Int32Array.from([3, 100]) }],
    ["softcap and ALiBi", { softcap: 2, alibiSlopes: Float32Array.from([0.3, 0.05]) }],
  ] as Array<[string, ScaledDotProductAttentionOptions]>)(
    "across query blocks and key tiles: %s",
    (_label, options) => {
      const r = rng(31);
      const [Nq, Nk, D, Dv] = [130, 157, 19, 13];
      const q = randomTensor(r, [1, 2, Nq, D]);
      const k = randomTensor(r, [1, 1, Nk, D]);
      const v = randomTensor(r, [1, 1, Nk, Dv]);
      const mask = randomBoolMask(r, [1, 1, 1, Nk], 0.9);
      const dout = randomTensor(r, [1, 2, Nq, Dv]);
      const got = gradients(q, k, v, dout, { ...options, mask });
      const want = referenceSdpaBackward(q, k, v, dout, { ...options, mask });
      for (const g of ["dq", "dk", "dv"] as const) {
        expect(closeProblem(got[g], want[g], TOL), g).toBeNull();
      }
    },
  );
});

describe("non-finite values in masked-out keys and values", () => {
  it("reach no gradient of a row that cannot see them, and their own dk and dv stay 0", () => {
    const arb = fc.tuple(
      caseArb({ masks: true, structure: true, extras: true }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
    );
    let checked = 0;
    fc.assert(
      fc.property(arb, ([c, picks]) => {
        const keys = [...new Set(picks.map((p) => p % c.Nk))];
        const { q, k, v, options, refOptions } = build(c);
        const { scores } = referenceSdpa(q, k, v, refOptions);
        const rows = c.B * c.H * c.Nq;
        const seen = (j: number): boolean => {
          for (let r = 0; r < rows; r++) if (scores.data[r * c.Nk + j] !== -Infinity) return true;
          return false;
        };
        // Only when no row sees a poisoned key is every gradient defined.
        if (keys.some(seen)) return;
        const dout = gradOutputFor(c, q);
        const clean = gradients(q, k, v, dout, options);
        const dirty = gradients(q, poison(k, keys), poison(v, keys), dout, options);
        expect(Array.from(dirty.dq.data)).toEqual(Array.from(clean.dq.data));
        for (const g of ["dk", "dv"] as const) {
          expect(dirty[g].data.every(Number.isFinite), g).toBe(true);
          expect(Array.from(dirty[g].data)).toEqual(Array.from(clean[g].data));
        }
        checked++;
      }),
      { numRuns: 300, seed: 0xbac05 },
    );
    expect(checked).toBeGreaterThan(30);
  });
});
