// Property tests: scaledDotProductAttention (WebAssembly, float32) against the float64 reference of
// test/reference.ts on random shapes and option combinations. Every property runs from a fixed seed,
// so a failure reproduces; fast-check prints the shrunk counterexample.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  alibiSlopes,
  init,
  scaledDotProductAttention,
  type ScaledDotProductAttentionOptions,
  type Tensor,
} from "../src/index";
import { closeProblem, type Tolerance } from "./helpers/conformance";
import {
  product,
  randInt,
  randomAdditiveMask,
  randomBoolMask,
  randomTensor,
  rng,
  uniform,
  type Rng,
} from "./helpers/random";
import { dims4, referenceSdpa, type RefSdpaOptions } from "./reference";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };
const LSE_TOL: Tolerance = { atol: 1e-4, rtol: 0 };

beforeAll(async () => {
  await init();
});

/** The mask shapes of API.md's numpy broadcasting to [B,H,Nq,Nk] that the tests use. */
// The last four also broadcast along the key axis (a mask value per query row, or one for all).
const MASK_FORMS = [
  "k",
  "qk",
  "1k",
  "b11k",
  "b1qk",
  "1hqk",
  "bhqk",
  "hqk",
  "q1",
  "b1q1",
  "h1k",
  "scalar",
] as const;
type MaskForm = (typeof MASK_FORMS)[number];

interface MaskSpec {
  form: MaskForm;
  dtype: "bool" | "additive";
  density: number;
  /** How many rows (all dims but the last) of the mask are masked entirely. */
  fullRows: number;
}

/** One generated call: shapes, options, and the seed of the data. */
interface Case {
  rank: 2 | 3 | 4;
  B: number;
  H: number;
  Hkv: number;
  Nq: number;
  Nk: number;
  D: number;
  Dv: number;
  seed: number;
  scaleFactor?: number;
  mask?: MaskSpec;
  causal: boolean;
  align?: "lower-right" | "upper-left";
  window?: [number, number];
  globals: number[];
  softcap?: number;
  alibi: "none" | "press" | "random";
  returnWeights: boolean;
  returnLse: boolean;
}

function maskShape(form: MaskForm, B: number, H: number, Nq: number, Nk: number): number[] {
  switch (form) {
    case "k":
      return [Nk];
    case "qk":
      return [Nq, Nk];
    case "1k":
      return [1, Nk];
    case "b11k":
      return [B, 1, 1, Nk];
    case "b1qk":
      return [B, 1, Nq, Nk];
    case "1hqk":
      return [1, H, Nq, Nk];
    case "bhqk":
      return [B, H, Nq, Nk];
    case "hqk":
      return [H, Nq, Nk];
    case "q1":
      return [Nq, 1];
    case "b1q1":
      return [B, 1, Nq, 1];
    case "h1k":
      return [H, 1, Nk];
    case "scalar":
      return [];
  }
}

function makeMask(r: Rng, spec: MaskSpec, shape: number[]): Tensor<Uint8Array> | Tensor {
  const mask =
    spec.dtype === "bool"
      ? randomBoolMask(r, shape, spec.density)
      : randomAdditiveMask(r, shape, spec.density);
  const len = shape.length > 0 ? shape[shape.length - 1] : 1;
  const rows = product(shape) / Math.max(len, 1);
  for (let n = 0; n < spec.fullRows && rows > 0; n++) {
    const row = randInt(r, 0, rows - 1);
    if (mask.data instanceof Uint8Array) mask.data.fill(0, row * len, (row + 1) * len);
    else mask.data.fill(-Infinity, row * len, (row + 1) * len);
  }
  return mask;
}

interface Built {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  options: ScaledDotProductAttentionOptions;
  refOptions: RefSdpaOptions;
}

/** Shapes of the given rank: [N,D] and [H,N,D] only exist with B = 1 (and H = 1). */
function shapeOf(rank: 2 | 3 | 4, B: number, H: number, N: number, D: number): number[] {
  if (rank === 2) return [N, D];
  if (rank === 3) return [H, N, D];
  return [B, H, N, D];
}

function build(c: Case): Built {
  const r = rng(c.seed);
  const q = randomTensor(r, shapeOf(c.rank, c.B, c.H, c.Nq, c.D));
  const k = randomTensor(r, shapeOf(c.rank, c.B, c.Hkv, c.Nk, c.D));
  const v = randomTensor(r, shapeOf(c.rank, c.B, c.Hkv, c.Nk, c.Dv));
  const options: ScaledDotProductAttentionOptions = {};
  if (c.scaleFactor !== undefined) options.scale = Math.fround(c.scaleFactor / Math.sqrt(c.D));
  if (c.mask) options.mask = makeMask(r, c.mask, maskShape(c.mask.form, c.B, c.H, c.Nq, c.Nk));
  if (c.causal) options.causal = true;
  if (c.align) options.align = c.align;
  if (c.window) options.window = c.window;
  if (c.globals.length > 0) options.globalTokens = Int32Array.from(c.globals);
  if (c.softcap !== undefined) options.softcap = c.softcap;
  if (c.alibi === "press") options.alibiSlopes = alibiSlopes(c.H);
  if (c.alibi === "random") {
    options.alibiSlopes = Float32Array.from({ length: c.H }, () => uniform(r, 0, 0.5));
  }
  if (c.returnWeights) options.returnWeights = true;
  if (c.returnLse) options.returnLse = true;
  const { returnWeights: _w, returnLse: _l, ...refOptions } = options;
  return { q, k, v, options, refOptions };
}

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

// ---- Arbitraries ----

/** Sequence lengths 1..70, weighted towards primes, 1, and the 8-key panel / 64-row block edges. */
const lengthArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 70 }), weight: 3 },
  {
    arbitrary: fc.constantFrom(
      1,
      2,
      3,
      4,
      5,
      7,
      8,
      9,
      11,
      13,
      16,
      17,
      31,
      37,
      53,
      61,
      63,
      64,
      65,
      67,
    ),
    weight: 2,
  },
);
/** Head dims 1..40 mostly (many not multiples of 4), sometimes up to 130. */
const dimArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 40 }), weight: 5 },
  { arbitrary: fc.integer({ min: 41, max: 130 }), weight: 1 },
);
const windowBoundArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 24 }), weight: 6 },
  { arbitrary: fc.constant(Infinity), weight: 2 },
  { arbitrary: fc.integer({ min: -3, max: -1 }), weight: 1 },
);
const maskArb: fc.Arbitrary<MaskSpec> = fc.record({
  form: fc.constantFrom(...MASK_FORMS),
  dtype: fc.constantFrom("bool" as const, "additive" as const),
  density: fc.constantFrom(0.3, 0.6, 0.9, 1),
  fullRows: fc.constantFrom(0, 0, 1, 2),
});

/** Which option families a generator draws (the others stay off). */
interface ArbSettings {
  /** mask, in every broadcast form and both dtypes */
  masks: boolean;
  /** causal, align, window, globalTokens */
  structure: boolean;
  /** softcap, alibiSlopes */
  extras: boolean;
  maxB?: number;
  maxH?: number;
}

function caseArb(s: ArbSettings): fc.Arbitrary<Case> {
  return fc
    .record({
      rank: fc.constantFrom(2 as const, 3 as const, 4 as const, 4 as const),
      B: fc.integer({ min: 1, max: s.maxB ?? 2 }),
      H: fc.integer({ min: 1, max: s.maxH ?? 4 }),
      kvPick: fc.nat(),
      Nq: lengthArb,
      Nk: lengthArb,
      D: dimArb,
      Dv: dimArb,
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
      scaleFactor: fc.option(fc.double({ min: -1.5, max: 2.5, noNaN: true }), { nil: undefined }),
      mask: s.masks ? fc.option(maskArb, { nil: undefined, freq: 3 }) : fc.constant(undefined),
      causal: s.structure ? fc.boolean() : fc.constant(false),
      align: s.structure
        ? fc.constantFrom(undefined, "lower-right" as const, "upper-left" as const)
        : fc.constant(undefined),
      window: s.structure
        ? fc.option(fc.tuple(windowBoundArb, windowBoundArb), { nil: undefined, freq: 2 })
        : fc.constant(undefined),
      globalPicks: s.structure
        ? fc.oneof(fc.constant([] as number[]), fc.array(fc.nat(), { minLength: 1, maxLength: 3 }))
        : fc.constant([] as number[]),
      softcap: s.extras
        ? fc.option(fc.double({ min: 0.5, max: 30, noNaN: true }), { nil: undefined, freq: 2 })
        : fc.constant(undefined),
      alibi: s.extras
        ? fc.constantFrom("none" as const, "press" as const, "random" as const)
        : fc.constant("none" as const),
      returnWeights: fc.boolean(),
      returnLse: fc.boolean(),
    })
    .map(({ kvPick, globalPicks, ...c }): Case => {
      const B = c.rank === 4 ? c.B : 1;
      const H = c.rank === 2 ? 1 : c.H;
      const divisors = Array.from({ length: H }, (_, i) => i + 1).filter((d) => H % d === 0);
      // Grouped-query attention works at every rank ([H,N,D] q with [Hkv,N,D] k and v too).
      const Hkv = divisors[kvPick % divisors.length];
      const globals = [...new Set(globalPicks.map((g) => g % c.Nk))];
      return { ...c, B, H, Hkv, globals };
    });
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

const POISON = [NaN, Infinity, -Infinity];

/** A copy of k or v [..., Nk, C] whose rows `keys` (of every leading index) hold NaN and ±Infinity. */
function poison(t: Tensor, keys: number[]): Tensor {
  const data = t.data.slice();
  const n = t.shape[t.shape.length - 2];
  const c = t.shape[t.shape.length - 1];
  for (let l = 0; l < data.length / (n * c); l++) {
    for (const j of keys)
      for (let x = 0; x < c; x++) data[(l * n + j) * c + x] = POISON[(j + x) % 3];
  }
  return { data, shape: t.shape };
}

/** Flat row `row` (over all dims but the last) of a result tensor. */
function row(t: Tensor | undefined, index: number): number[] {
  const c = t!.shape[t!.shape.length - 1];
  return Array.from(t!.data.subarray(index * c, (index + 1) * c));
}

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
