// Random scaled dot-product attention calls for the property tests: a Case (shapes, options, data
// seed), its fast-check arbitrary, and build() turning it into tensors and options for the kernel
// and the float64 reference. Shared by the forward and backward property tests.

import fc from "fast-check";
import { alibiSlopes, type ScaledDotProductAttentionOptions, type Tensor } from "../../src/index";
import {
  product,
  randInt,
  randomAdditiveMask,
  randomBoolMask,
  randomTensor,
  rng,
  uniform,
  type Rng,
} from "./random";
import type { RefSdpaOptions } from "../reference";

/** The mask shapes of API.md's numpy broadcasting to [B,H,Nq,Nk] that the tests use. */
// The last four also broadcast along the key axis (a mask value per query row, or one for all).
export const MASK_FORMS = [
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
export type MaskForm = (typeof MASK_FORMS)[number];

export interface MaskSpec {
  form: MaskForm;
  dtype: "bool" | "additive";
  density: number;
  /** How many rows (all dims but the last) of the mask are masked entirely. */
  fullRows: number;
}

/** One generated call: shapes, options, and the seed of the data. */
export interface Case {
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

export interface Built {
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

export function build(c: Case): Built {
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

// ---- Arbitraries ----

/** Sequence lengths 1..70, weighted towards primes, 1, and the 8-key panel / 64-row block edges. */
export const lengthArb = fc.oneof(
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
export const dimArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 40 }), weight: 5 },
  { arbitrary: fc.integer({ min: 41, max: 130 }), weight: 1 },
);
const windowBoundArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 24 }), weight: 6 },
  { arbitrary: fc.constant(Infinity), weight: 2 },
  { arbitrary: fc.integer({ min: -3, max: -1 }), weight: 1 },
);
export const maskArb: fc.Arbitrary<MaskSpec> = fc.record({
  form: fc.constantFrom(...MASK_FORMS),
  dtype: fc.constantFrom("bool" as const, "additive" as const),
  density: fc.constantFrom(0.3, 0.6, 0.9, 1),
  fullRows: fc.constantFrom(0, 0, 1, 2),
});

/** Which option families a generator draws (the others stay off). */
export interface ArbSettings {
  /** mask, in every broadcast form and both dtypes */
  masks: boolean;
  /** causal, align, window, globalTokens */
  structure: boolean;
  /** softcap, alibiSlopes */
  extras: boolean;
  maxB?: number;
  maxH?: number;
}

export function caseArb(s: ArbSettings): fc.Arbitrary<Case> {
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
    })
    .filter((c) => c.globals.length > 0 || !windowHidesEveryKey(c));
}

/**
 * Whether the case's window (with causal) leaves no key visible to any query row: such a call is a
 * BAD_OPTION error (a window like [-1, 0] is FlashAttention's spelling of "no bound"), not a case.
 */
export function windowHidesEveryKey(c: Case): boolean {
  if (!c.window || c.Nq === 0 || c.Nk === 0) return false;
  const [left, right] = c.window;
  const offset = c.align === "upper-left" ? 0 : c.Nk - c.Nq;
  for (let i = 0; i < c.Nq; i++) {
    for (let j = 0; j < c.Nk; j++) {
      const diagonal = i + offset;
      const inWindow = diagonal - left <= j && j <= diagonal + right;
      if (inWindow && (!c.causal || j <= diagonal)) return false;
    }
  }
  return true;
}

const POISON = [NaN, Infinity, -Infinity];

/** A copy of k or v [..., Nk, C] whose rows `keys` (of every leading index) hold NaN and ±Infinity. */
export function poison(t: Tensor, keys: number[]): Tensor {
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
export function row(t: Tensor | undefined, index: number): number[] {
  const c = t!.shape[t!.shape.length - 1];
  return Array.from(t!.data.subarray(index * c, (index + 1) * c));
}
