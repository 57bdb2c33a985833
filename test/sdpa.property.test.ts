// Property tests: scaledDotProductAttention (WebAssembly, float32) against the float64 reference of
// test/reference.ts on random shapes and option combinations. Every property runs from a fixed seed,
// so a failure reproduces; fast-check prints the shrunk counterexample.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  init,
  scaledDotProductAttention,
  type ScaledDotProductAttentionOptions,
} from "../src/index";
import { closeProblem, type Tolerance } from "./helpers/conformance";
import { randomBoolMask, randomTensor, rng } from "./helpers/random";
import { MASK_FORMS, build, caseArb, maskArb, poison, row, type Case } from "./helpers/sdpa-cases";
import { dims4, referenceSdpa } from "./reference";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };
const LSE_TOL: Tolerance = { atol: 1e-4, rtol: 0 };

beforeAll(async () => {
  await init();
});

/** Runs the case through the kernel and the reference; throws (with the case) on a mismatch. */
function check(c: Case): void {
  const { q, k, v, options, refOptions } = build(c);
  const got = scaledDotProductAttention(q, k, v, options);
  const want = referenceSdpa(q, k, v, refOptions);
  const problems: string[] = [];
  const note = (what: string, p: string | null): void => {
    if (p !== null) problems.push(`${what}: ${p}`);
  };
  note("output", closeProblem(got.output, want.output, TOL));
  if (c.returnWeights) note("weights", closeProblem(got.weights, want.weights, TOL));
  else if (got.weights !== undefined) problems.push("weights returned without returnWeights");
  if (c.returnLse) note("lse", closeProblem(got.lse, want.lse, LSE_TOL));
  else if (got.lse !== undefined) problems.push("lse returned without returnLse");
  if (problems.length > 0) {
    throw new Error(`${problems.join("\n")}\ncase: ${JSON.stringify(c)}`);
  }
}

const RUNS = { numRuns: 400 };

describe("scaledDotProductAttention matches the float64 reference", () => {
  it("on random shapes (rank 2/3/4, GQA, D ≠ Dv, Nq ≠ Nk) with every option family", () => {
    fc.assert(fc.property(caseArb({ masks: true, structure: true, extras: true }), check), {
      numRuns: 800,
      seed: 0x5eed01,
    });
  });

  it("with masks of every broadcast shape, in both dtypes, with fully masked rows", () => {
    fc.assert(
      fc.property(
        caseArb({ masks: true, structure: false, extras: false }).filter(
          (c) => c.mask !== undefined,
        ),
        check,
      ),
      { ...RUNS, seed: 0x5eed02 },
    );
  });

  it("with causal (both alignments), windows and global tokens", () => {
    fc.assert(fc.property(caseArb({ masks: false, structure: true, extras: false }), check), {
      ...RUNS,
      seed: 0x5eed03,
    });
  });

  it("with softcap and ALiBi, alone and with causal/window", () => {
    fc.assert(fc.property(caseArb({ masks: false, structure: true, extras: true }), check), {
      ...RUNS,
      seed: 0x5eed04,
    });
  });

  it("with grouped-query and multi-query heads (H up to 8, every divisor as Hkv)", () => {
    const gqaArb = caseArb({ masks: true, structure: true, extras: true, maxH: 8 }).map(
      (c): Case => {
        const H = c.H === 1 ? 8 : c.H;
        const divisors = Array.from({ length: H }, (_, i) => i + 1).filter((d) => H % d === 0);
        return { ...c, rank: 4, H, Hkv: divisors[c.seed % divisors.length] };
      },
    );
    fc.assert(fc.property(gqaArb, check), { numRuns: 300, seed: 0x5eed05 });
  });

  it("every mask form and dtype is exercised by the generators", () => {
    // Guards the generators themselves: the mask property must reach every form in both dtypes.
    const seen = new Set<string>();
    fc.assert(
      fc.property(maskArb, (m) => {
        seen.add(`${m.form}/${m.dtype}`);
      }),
      { numRuns: 400, seed: 0x5eed06 },
    );
    expect(seen.size).toBe(MASK_FORMS.length * 2);
  });
});

// ---- Non-finite values in keys a row cannot see ----

describe("non-finite values in masked-out keys and values", () => {
  it("never reach a query row that cannot see them (any mask, causal, window, globals)", () => {
    const arb = fc.tuple(
      caseArb({ masks: true, structure: true, extras: true }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
    );
    let checkedRows = 0;
    fc.assert(
      fc.property(arb, ([c, picks]) => {
        const keys = [...new Set(picks.map((p) => p % c.Nk))];
        const { q, k, v, options, refOptions } = build({
          ...c,
          returnWeights: true,
          returnLse: true,
        });
        // Which rows see none of the poisoned keys: the reference's scores say (-Infinity = unseen).
        const { scores } = referenceSdpa(q, k, v, refOptions);
        const rows = c.B * c.H * c.Nq;
        const blind: number[] = [];
        for (let r = 0; r < rows; r++) {
          if (keys.every((j) => scores.data[r * c.Nk + j] === -Infinity)) blind.push(r);
        }
        const clean = scaledDotProductAttention(q, k, v, options);
        const dirty = scaledDotProductAttention(q, poison(k, keys), poison(v, keys), options);
        for (const r of blind) {
          const same =
            row(dirty.output, r).join() === row(clean.output, r).join() &&
            row(dirty.weights, r).join() === row(clean.weights, r).join() &&
            Object.is(dirty.lse!.data[r], clean.lse!.data[r]);
          if (!same) {
            throw new Error(
              `query row ${r} changed when keys ${keys.join(",")} (which it cannot see) became ` +
                `non-finite: output ${row(dirty.output, r).join(",")} vs ${row(clean.output, r).join(",")}\n` +
                `case: ${JSON.stringify(c)}`,
            );
          }
        }
        checkedRows += blind.length;
      }),
      { numRuns: 400, seed: 0x5eed07 },
    );
    expect(checkedRows).toBeGreaterThan(1000);
  });
});

// ---- Tile boundaries: 64 query rows per block, 64 keys per tile, 8-key panels ----

const EDGE_LENGTHS = [63, 64, 65, 127, 128, 129];

interface EdgeOptions {
  causal?: boolean;
  align?: "lower-right" | "upper-left";
  window?: readonly [number, number];
  /** Global key indices (those >= Nk are dropped). */
  globalTokens?: number[];
  /** Add a boolean key-padding mask [1,1,1,Nk]. */
  keyMask?: boolean;
}

const EDGE_OPTIONS: Array<[string, EdgeOptions]> = [
  ["causal lower-right", { causal: true }],
  ["causal upper-left", { causal: true, align: "upper-left" }],
  ["window [5,3]", { window: [5, 3] }],
  ["window [70,0] + causal", { window: [70, 0], causal: true }],
  ["window [0,64] upper-left", { window: [0, 64], align: "upper-left" }],
  ["window [Infinity,1]", { window: [Infinity, 1] }],
  ["window [3,3] + global tokens", { window: [3, 3], globalTokens: [0, 64, 62] }],
  [
    "causal + global tokens + key mask",
    { causal: true, globalTokens: [1, 127, 63], keyMask: true },
  ],
];

describe("at the kernel's tile boundaries", () => {
  const grid = EDGE_OPTIONS.flatMap(([label, opts]) =>
    EDGE_LENGTHS.flatMap((Nq) => EDGE_LENGTHS.map((Nk) => [label, Nq, Nk, opts] as const)),
  );
  it.each(grid)("%s, Nq = %i, Nk = %i", (label, Nq, Nk, edge) => {
    const r = rng(Nq * 1000 + Nk + label.length * 7919);
    const H = 2;
    const D = 5;
    const Dv = 9;
    const q = randomTensor(r, [1, H, Nq, D]);
    const k = randomTensor(r, [1, 1, Nk, D]);
    const v = randomTensor(r, [1, 1, Nk, Dv]);
    const { keyMask, globalTokens, ...rest } = edge;
    const globals = globalTokens?.filter((g) => g < Nk);
    const mask = keyMask ? randomBoolMask(r, [1, 1, 1, Nk], 0.8) : undefined;
    const want = referenceSdpa(q, k, v, { ...rest, globalTokens: globals, mask });
    const options: ScaledDotProductAttentionOptions = {
      ...rest,
      mask,
      globalTokens: globals ? Int32Array.from(globals) : undefined,
    };
    const got = scaledDotProductAttention(q, k, v, {
      ...options,
      returnWeights: true,
      returnLse: true,
    });
    const problems = [
      ["output", closeProblem(got.output, want.output, TOL)],
      ["weights", closeProblem(got.weights, want.weights, TOL)],
      ["lse", closeProblem(got.lse, want.lse, LSE_TOL)],
    ].filter(([, p]) => p !== null);
    expect(problems).toEqual([]);
    // Without weights and lse the kernel skips their bookkeeping; the output must not change.
    const plain = scaledDotProductAttention(q, k, v, options);
    expect(closeProblem(plain.output, want.output, TOL)).toBeNull();
  });

  it("dims4 reads ranks 2, 3 and 4 as [B,H,N,D]", () => {
    expect(dims4([5, 3])).toEqual([1, 1, 5, 3]);
    expect(dims4([2, 5, 3])).toEqual([1, 2, 5, 3]);
    expect(dims4([4, 2, 5, 3])).toEqual([4, 2, 5, 3]);
  });
});
