// The attention family (additiveAttention, bilinearAttention, cosineAttention, hybridAttention): the
// golden additive_attention / luong_general / cosine_attention cases (as
// shared/conformance/run.mjs maps them), property tests against the float64 references of
// test/reference-family.ts (Dq ≠ Dk ≠ Dv, every hidden size, bias, every mask form in both dtypes
// including fully masked rows, weights, rank-2 inputs, parameters bare and as tensors), the hybrid
// identities (one term of weight 1 is its own op; several terms match the reference; weight-0 terms
// change nothing), and the behaviour of cosine attention (zero vectors, temperature, norm
// invariance) and of masked keys holding NaN or Infinity.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  additiveAttention,
  bilinearAttention,
  cosineAttention,
  hybridAttention,
  init,
  scaledDotProductAttention,
  type FamilyOptions,
  type FamilyResult,
  type Matrix,
  type ScoreTerm,
  type Tensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import {
  closeProblem,
  decodeFloat,
  decodeTensor,
  expectClose,
  loadCases,
  type GoldenCase,
  type TensorLike,
  type Tolerance,
} from "./helpers/conformance";
import {
  randomAdditiveMask,
  randomBoolMask,
  randomTensor,
  rng,
  uniform,
  type Rng,
} from "./helpers/random";
import {
  referenceAdditive,
  referenceBilinear,
  referenceCosine,
  referenceHybrid,
  type RefFamilyResult,
  type RefTerm,
} from "./reference-family";

/** Against the float64 references. */
const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };
/** Two float32 computations that should agree (identities): within 1e-6. */
const SAME: Tolerance = { atol: 1e-6, rtol: 0 };
/** Bitwise equal. */
const EXACT: Tolerance = { atol: 0, rtol: 0 };

/**
 * The vector tanh of the additive score has ~2e-7 absolute error per hidden unit, so the score error
 * grows with Σ_t |weight_t|·A_t (one term of weight 1: A).
 */
function additiveTol(hidden: number): Tolerance {
  return { atol: 2e-5 * Math.max(1, hidden / 8), rtol: 2e-4 };
}

beforeAll(async () => {
  await init();
});

function bytesInUse(): number {
  return kernels("test").workspace.bytesInUse;
}

/** A [B, 1, N, D] view of a [B, N, D] (or [N, D]) tensor, for scaledDotProductAttention. */
function heads1(t: Tensor): Tensor {
  const s = t.shape;
  return { data: t.data, shape: s.length === 3 ? [s[0], 1, s[1], s[2]] : [1, 1, s[0], s[1]] };
}

/** A family mask (broadcasting to [B, Nq, Nk]) as an SDPA mask broadcasting to [B, 1, Nq, Nk]. */
function sdpaMask(m: Mask): Mask {
  const s = m.shape;
  return { data: m.data, shape: s.length === 3 ? [s[0], 1, s[1], s[2]] : [...s] } as Mask;
}

function hasNaN(data: ArrayLike<number>): boolean {
  for (let i = 0; i < data.length; i++) if (Number.isNaN(data[i])) return true;
  return false;
}

// =====================================================================================
// 1. Golden cases
// =====================================================================================

const OPS = ["additive_attention", "luong_general", "cosine_attention"] as const;
const cases = loadCases().filter((c) => (OPS as readonly string[]).includes(c.op));

/** One case through the public API exactly as shared/conformance/run.mjs maps it. */
function runCase(c: GoldenCase): Record<string, TensorLike | undefined> {
  const p = c.params;
  const f = (name: string): Tensor => decodeFloat(c.inputs[name]);
  const mask = c.inputs.attn_mask
    ? (decodeTensor(c.inputs.attn_mask) as FamilyOptions["mask"])
    : undefined;
  let r: FamilyResult;
  if (c.op === "additive_attention") {
    r = additiveAttention(
      f("q"),
      f("k"),
      f("v"),
      { wq: f("W_q").data, wk: f("W_k").data, va: f("v_a").data },
      { mask, returnWeights: true },
    );
  } else if (c.op === "luong_general") {
    r = bilinearAttention(
      f("q"),
      f("k"),
      f("v"),
      { w: f("W").data },
      { mask, returnWeights: true },
    );
  } else {
    r = cosineAttention(f("q"), f("k"), f("v"), {
      temperature: p.temperature as number,
      returnWeights: true,
    });
  }
  return { out: r.output, weights: r.weights };
}

/** The same case through the float64 references (validates test/reference-family.ts). */
function referenceCase(c: GoldenCase): Record<string, TensorLike> {
  const f = (name: string): Tensor => decodeFloat(c.inputs[name]);
  const mask = c.inputs.attn_mask
    ? (decodeTensor(c.inputs.attn_mask) as FamilyOptions["mask"])
    : undefined;
  let r: RefFamilyResult;
  if (c.op === "additive_attention") {
    r = referenceAdditive(
      f("q"),
      f("k"),
      f("v"),
      { wq: f("W_q").data, wk: f("W_k").data, va: f("v_a").data },
      { mask },
    );
  } else if (c.op === "luong_general") {
    r = referenceBilinear(f("q"), f("k"), f("v"), { w: f("W").data }, { mask });
  } else {
    r = referenceCosine(f("q"), f("k"), f("v"), { temperature: c.params.temperature as number });
  }
  return { out: r.output, weights: r.weights };
}

describe("golden cases", () => {
  it.each(OPS.map((op) => [op, cases.filter((c) => c.op === op).length]))(
    "has cases for op %s (%i)",
    (_op, count) => {
      expect(count).toBeGreaterThan(0);
    },
  );

  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const before = bytesInUse();
    const got = runCase(c);
    const names = Object.keys(c.outputs);
    expect(names).toEqual(expect.arrayContaining(["out", "weights"]));
    for (const name of names) {
      expectClose(got[name], decodeFloat(c.outputs[name]), c.tolerance, `${c.name}: ${name}`);
    }
    expect(bytesInUse()).toBe(before);
  });

  it.each(cases.map((c) => [c.name, c] as const))(
    "the float64 reference reproduces %s",
    (_n, c) => {
      const want = referenceCase(c);
      for (const name of Object.keys(c.outputs)) {
        expectClose(want[name], decodeFloat(c.outputs[name]), c.tolerance, `${c.name}: ${name}`);
      }
    },
  );
});

// =====================================================================================
// 2. Property tests against the reference
// =====================================================================================

const MASK_FORMS = ["k", "qk", "b1k", "bqk"] as const;
type MaskForm = (typeof MASK_FORMS)[number];

function maskShape(form: MaskForm, B: number, Nq: number, Nk: number): number[] {
  switch (form) {
    case "k":
      return [Nk];
    case "qk":
      return [Nq, Nk];
    case "b1k":
      return [B, 1, Nk];
    case "bqk":
      return [B, Nq, Nk];
  }
}

interface MaskSpec {
  form: MaskForm;
  dtype: "bool" | "additive";
  density: number;
  /** Mask some rows (last-axis lines of the mask) entirely. */
  fullRows: boolean;
}

type Mask = Tensor<Uint8Array> | Tensor<Float32Array>;

/** A random mask; with fullRows about a third of its last-axis lines are masked entirely. */
function makeMask(r: Rng, m: MaskSpec, B: number, Nq: number, Nk: number): Mask {
  const shape = maskShape(m.form, B, Nq, Nk);
  const mask =
    m.dtype === "bool"
      ? randomBoolMask(r, shape, m.density)
      : randomAdditiveMask(r, shape, m.density);
  if (m.fullRows) {
    const lines = mask.data.length / Nk;
    for (let l = 0; l < lines; l++) {
      if (r() < 0.35) mask.data.fill(m.dtype === "bool" ? 0 : -Infinity, l * Nk, (l + 1) * Nk);
    }
  }
  return mask;
}

type Op = "additive" | "bilinear" | "cosine";

interface FamilyCase {
  op: Op;
  B: number;
  Nq: number;
  Nk: number;
  Dq: number;
  Dk: number;
  Dv: number;
  A: number;
  bias: boolean;
  temperature?: number;
  mask?: MaskSpec;
  returnWeights: boolean;
  rank2: boolean;
  /** Parameters as tensors { data, shape } instead of bare Float32Arrays. */
  tensorParams: boolean;
  seed: number;
}

const lengthArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 40 }), weight: 3 },
  { arbitrary: fc.constantFrom(1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37), weight: 2 },
);
const featureArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 40 }), weight: 3 },
  { arbitrary: fc.constantFrom(1, 3, 4, 5, 8, 13, 16, 33, 40), weight: 1 },
);
const hiddenArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 40 }), weight: 3 },
  { arbitrary: fc.constantFrom(1, 2, 3, 4, 5, 7, 9, 13, 37, 40), weight: 1 },
);
const maskArb: fc.Arbitrary<MaskSpec> = fc.record({
  form: fc.constantFrom(...MASK_FORMS),
  dtype: fc.constantFrom("bool" as const, "additive" as const),
  density: fc.constantFrom(0.3, 0.7, 1),
  fullRows: fc.boolean(),
});
const temperatureArb = fc.constantFrom(undefined, 1, 0.5, 0.1, 0.05, 2, 10);

function familyArb(op: Op): fc.Arbitrary<FamilyCase> {
  return fc
    .record({
      B: fc.integer({ min: 1, max: 2 }),
      Nq: lengthArb,
      Nk: lengthArb,
      Dq: featureArb,
      Dk: featureArb,
      Dv: featureArb,
      A: hiddenArb,
      bias: fc.boolean(),
      temperature: temperatureArb,
      mask: fc.option(maskArb, { nil: undefined, freq: 3 }),
      returnWeights: fc.boolean(),
      rank2: fc.boolean(),
      tensorParams: fc.boolean(),
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
    })
    .map((c): FamilyCase => {
      const out: FamilyCase = { ...c, op, B: c.rank2 ? 1 : c.B };
      if (op === "cosine") out.Dk = c.Dq;
      if (op !== "additive") out.bias = false;
      if (op !== "cosine") delete out.temperature;
      return out;
    });
}

/** Random parameters of one op; entries scaled so that scores are O(1)–O(10). */
interface Params {
  wq: Float32Array;
  wk: Float32Array;
  va: Float32Array;
  bias?: Float32Array;
  w: Float32Array;
}

function randomArray(r: Rng, n: number, a: number): Float32Array {
  return Float32Array.from({ length: n }, () => uniform(r, -a, a));
}

function randomParams(r: Rng, Dq: number, Dk: number, A: number, bias: boolean): Params {
  const p: Params = {
    wq: randomArray(r, A * Dq, 2 / Math.sqrt(Dq)),
    wk: randomArray(r, A * Dk, 2 / Math.sqrt(Dk)),
    va: randomArray(r, A, 1.5),
    w: randomArray(r, Dq * Dk, 8 / Math.sqrt(Dq * Dk)),
  };
  if (bias) p.bias = randomArray(r, A, 1);
  return p;
}

/** A bare Float32Array as the tensor { data, shape } API.md also accepts. */
function asParam(data: Float32Array, shape: number[], tensor: boolean): Float32Array {
  return tensor ? ({ data, shape } as unknown as Float32Array) : data;
}
function asMatrix(data: Float32Array, shape: number[], tensor: boolean): Matrix {
  return tensor ? { data, shape } : data;
}

interface Built {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  p: Params;
  mask?: Mask;
}

function build(c: FamilyCase): Built {
  const r = rng(c.seed);
  const seq = (N: number, F: number): Tensor => randomTensor(r, c.rank2 ? [N, F] : [c.B, N, F]);
  const q = seq(c.Nq, c.Dq);
  const k = seq(c.Nk, c.Dk);
  const v = seq(c.Nk, c.Dv);
  const p = randomParams(r, c.Dq, c.Dk, c.A, c.bias);
  const mask = c.mask ? makeMask(r, c.mask, c.B, c.Nq, c.Nk) : undefined;
  return { q, k, v, p, mask };
}

function runOp(c: FamilyCase, b: Built): FamilyResult {
  const options: FamilyOptions = {};
  if (b.mask) options.mask = b.mask;
  if (c.returnWeights) options.returnWeights = true;
  const t = c.tensorParams;
  switch (c.op) {
    case "additive":
      return additiveAttention(
        b.q,
        b.k,
        b.v,
        {
          wq: asMatrix(b.p.wq, [c.A, c.Dq], t),
          wk: asMatrix(b.p.wk, [c.A, c.Dk], t),
          va: asParam(b.p.va, [c.A], t),
          ...(b.p.bias ? { bias: asParam(b.p.bias, [c.A], t) } : {}),
        },
        options,
      );
    case "bilinear":
      return bilinearAttention(b.q, b.k, b.v, { w: asMatrix(b.p.w, [c.Dq, c.Dk], t) }, options);
    case "cosine":
      return cosineAttention(b.q, b.k, b.v, {
        ...options,
        ...(c.temperature !== undefined ? { temperature: c.temperature } : {}),
      });
  }
}

function runReference(c: FamilyCase, b: Built): RefFamilyResult {
  const options = { mask: b.mask };
  switch (c.op) {
    case "additive":
      return referenceAdditive(b.q, b.k, b.v, b.p, options);
    case "bilinear":
      return referenceBilinear(b.q, b.k, b.v, b.p, options);
    case "cosine":
      return referenceCosine(b.q, b.k, b.v, { ...options, temperature: c.temperature });
  }
}

function snapshotInputs(b: Built): Float32Array[] {
  const arrays = [b.q.data, b.k.data, b.v.data, b.p.wq, b.p.wk, b.p.va, b.p.w];
  if (b.p.bias) arrays.push(b.p.bias);
  return arrays.map((a) => a.slice());
}

/** Runs one case through the op and the reference; throws (with the case) on a mismatch. */
function checkCase(c: FamilyCase): void {
  const b = build(c);
  const inputs = snapshotInputs(b);
  const before = bytesInUse();
  const got = runOp(c, b);
  const want = runReference(c, b);
  const tol = c.op === "additive" ? additiveTol(c.A) : TOL;
  const problems: string[] = [];
  const note = (what: string, p: string | null): void => {
    if (p !== null) problems.push(`${what}: ${p}`);
  };
  note("output", closeProblem(got.output, want.output, tol));
  if (c.returnWeights) note("weights", closeProblem(got.weights, want.weights, tol));
  else if (got.weights !== undefined) problems.push("weights returned without returnWeights");
  if (bytesInUse() !== before) problems.push(`${bytesInUse() - before} bytes left in use`);
  snapshotInputs(b).forEach((now, i) => {
    if (!sameBytes(now, inputs[i])) {
      problems.push(`input ${i} was modified`);
    }
  });
  if (problems.length > 0) throw new Error(`${problems.join("\n")}\ncase: ${JSON.stringify(c)}`);
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

describe("the family matches the float64 reference", () => {
  it("additiveAttention: Dq ≠ Dk ≠ Dv, A 1–40, bias on/off, masks, weights, rank 2, tensor params", () => {
    fc.assert(fc.property(familyArb("additive"), checkCase), { numRuns: 250, seed: 0xfa01 });
  });

  it("bilinearAttention: Dq ≠ Dk ≠ Dv, masks, weights, rank 2, tensor params", () => {
    fc.assert(fc.property(familyArb("bilinear"), checkCase), { numRuns: 250, seed: 0xfa02 });
  });

  it("cosineAttention: temperatures, masks, weights, rank 2", () => {
    fc.assert(fc.property(familyArb("cosine"), checkCase), { numRuns: 250, seed: 0xfa03 });
  });

  it("every mask form in both dtypes with fully masked rows, B = 2, weights returned", () => {
    const arb = fc
      .tuple(
        fc.constantFrom<Op>("additive", "bilinear", "cosine"),
        fc.constantFrom(...MASK_FORMS),
        fc.constantFrom("bool" as const, "additive" as const),
      )
      .chain(([op, form, dtype]) =>
        familyArb(op).map((c): FamilyCase => ({
          ...c,
          B: 2,
          rank2: false,
          mask: { form, dtype, density: 0.6, fullRows: true },
          returnWeights: true,
        })),
      );
    fc.assert(fc.property(arb, checkCase), { numRuns: 200, seed: 0xfa04 });
  });

  it("the generators reach every mask form and dtype, fully masked rows, primes and edge sizes", () => {
    const seen = new Set<string>();
    const arb = fc.constantFrom<Op>("additive", "bilinear", "cosine").chain(familyArb);
    fc.assert(
      fc.property(arb, (c) => {
        if (c.mask) seen.add(`mask ${c.mask.form}/${c.mask.dtype}`);
        if (c.mask?.fullRows) seen.add("full rows");
        if (c.rank2) seen.add("rank2");
        if (c.tensorParams) seen.add("tensor params");
        if (c.bias) seen.add("bias");
        if (c.returnWeights) seen.add("weights");
        if (c.Nq === 1) seen.add("Nq=1");
        if (c.Nk === 1) seen.add("Nk=1");
        if (c.Nk === 37 || c.Nq === 37) seen.add("N prime > 32");
        if (c.Dq !== c.Dk && c.Dk !== c.Dv && c.Dq !== c.Dv) seen.add("Dq≠Dk≠Dv");
        if (c.op === "additive" && c.A % 4 !== 0) seen.add("A % 4 ≠ 0");
        if (c.op === "additive" && c.A === 1) seen.add("A=1");
        if (c.op === "additive" && c.A === 40) seen.add("A=40");
        if (c.temperature !== undefined && c.temperature < 1) seen.add("low temperature");
      }),
      { numRuns: 600, seed: 0xfa05 },
    );
    const want = [
      ...MASK_FORMS.flatMap((f) => [`mask ${f}/bool`, `mask ${f}/additive`]),
      "full rows",
      "rank2",
      "tensor params",
      "bias",
      "weights",
      "Nq=1",
      "Nk=1",
      "N prime > 32",
      "Dq≠Dk≠Dv",
      "A % 4 ≠ 0",
      "A=1",
      "A=40",
      "low temperature",
    ];
    expect([...seen].sort()).toEqual(want.sort());
  });

  it("a fully masked row gives exactly zero output and zero weights (never NaN), every op", () => {
    const r = rng(71);
    const [B, Nq, Nk, D] = [2, 5, 7, 6];
    const q = randomTensor(r, [B, Nq, D]);
    const k = randomTensor(r, [B, Nk, D]);
    const v = randomTensor(r, [B, Nk, D]);
    const p = randomParams(r, D, D, 9, true);
    const bool = randomBoolMask(r, [B, Nq, Nk], 1);
    bool.data.fill(0, 2 * Nk, 3 * Nk); // b 0, row 2
    bool.data.fill(0, (Nq + 4) * Nk, (Nq + 5) * Nk); // b 1, row 4
    const additive: Tensor = {
      data: Float32Array.from(bool.data, (x) => (x ? uniform(r, -1, 1) : -Infinity)),
      shape: bool.shape,
    };
    const rows = [2, Nq + 4];
    const calls: Array<[string, (m: Mask) => FamilyResult]> = [
      ["additive", (m) => additiveAttention(q, k, v, p, { mask: m, returnWeights: true })],
      ["bilinear", (m) => bilinearAttention(q, k, v, p, { mask: m, returnWeights: true })],
      ["cosine", (m) => cosineAttention(q, k, v, { mask: m, returnWeights: true })],
      [
        "hybrid",
        (m) =>
          hybridAttention(
            q,
            k,
            v,
            {
              terms: [
                { kind: "scaled-dot", weight: 0.5 },
                { kind: "additive", weight: -1, ...p },
                { kind: "cosine", weight: 2 },
              ],
            },
            { mask: m, returnWeights: true },
          ),
      ],
    ];
    for (const [name, call] of calls) {
      for (const mask of [bool, additive]) {
        const res = call(mask);
        expect(hasNaN(res.output.data), `${name}: NaN in output`).toBe(false);
        expect(hasNaN(res.weights!.data), `${name}: NaN in weights`).toBe(false);
        for (const row of rows) {
          expect(Array.from(res.output.data.subarray(row * D, (row + 1) * D))).toEqual(
            new Array(D).fill(0),
          );
          expect(Array.from(res.weights!.data.subarray(row * Nk, (row + 1) * Nk))).toEqual(
            new Array(Nk).fill(0),
          );
        }
        // Other rows still sum to 1.
        for (let row = 0; row < B * Nq; row++) {
          if (rows.includes(row)) continue;
          let s = 0;
          for (let j = 0; j < Nk; j++) s += res.weights!.data[row * Nk + j];
          expect(Math.abs(s - 1), `${name}: row ${row} sums to ${s}`).toBeLessThan(1e-5);
        }
      }
    }
  });

  it("rank-2 inputs give rank-2 outputs equal to the B = 1 rank-3 call", () => {
    const r = rng(72);
    const [Nq, Nk, Dq, Dk, Dv, A] = [6, 9, 5, 7, 3, 10];
    const q = randomTensor(r, [Nq, Dq]);
    const k = randomTensor(r, [Nk, Dk]);
    const v = randomTensor(r, [Nk, Dv]);
    const p = randomParams(r, Dq, Dk, A, true);
    const as3 = (t: Tensor): Tensor => ({ data: t.data, shape: [1, ...t.shape] });
    const opts = { returnWeights: true };
    const two = additiveAttention(q, k, v, p, opts);
    const three = additiveAttention(as3(q), as3(k), as3(v), p, opts);
    expect(two.output.shape).toEqual([Nq, Dv]);
    expect(two.weights!.shape).toEqual([Nq, Nk]);
    expect(three.output.shape).toEqual([1, Nq, Dv]);
    expectClose(two.output, { data: three.output.data, shape: [Nq, Dv] }, EXACT, "additive");
    const b2 = bilinearAttention(q, k, v, p, opts);
    const b3 = bilinearAttention(as3(q), as3(k), as3(v), p, opts);
    expect(b2.output.shape).toEqual([Nq, Dv]);
    expectClose(b2.weights, { data: b3.weights!.data, shape: [Nq, Nk] }, EXACT, "bilinear");
  });

  it("parameters as tensors give bitwise the same result as bare Float32Arrays", () => {
    const r = rng(73);
    const [B, Nq, Nk, Dq, Dk, Dv, A] = [2, 4, 6, 3, 5, 4, 7];
    const q = randomTensor(r, [B, Nq, Dq]);
    const k = randomTensor(r, [B, Nk, Dk]);
    const v = randomTensor(r, [B, Nk, Dv]);
    const p = randomParams(r, Dq, Dk, A, true);
    const bare = additiveAttention(q, k, v, p, { returnWeights: true });
    const tens = additiveAttention(q, k, v, {
      wq: { data: p.wq, shape: [A, Dq] },
      wk: { data: p.wk, shape: [A, Dk] },
      va: asParam(p.va, [A], true),
      bias: asParam(p.bias!, [A], true),
    });
    expectClose(tens.output, bare.output, EXACT, "additive output");
    const w1 = bilinearAttention(q, k, v, { w: p.w });
    const w2 = bilinearAttention(q, k, v, { w: { data: p.w, shape: [Dq, Dk] } });
    expectClose(w2.output, w1.output, EXACT, "bilinear output");
  });
});

// =====================================================================================
// 3. Hybrid attention
// =====================================================================================

type Kind = ScoreTerm["kind"];

interface TermSpec {
  kind: Kind;
  weight: number;
  A: number;
  bias: boolean;
  temperature?: number;
}

interface HybridCase {
  B: number;
  Nq: number;
  Nk: number;
  Dq: number;
  Dk: number;
  Dv: number;
  terms: TermSpec[];
  mask?: MaskSpec;
  returnWeights: boolean;
  rank2: boolean;
  tensorParams: boolean;
  seed: number;
}

const weightArb = fc.oneof(
  { arbitrary: fc.constant(0), weight: 1 },
  { arbitrary: fc.constantFrom(1, -1, 0.5, -0.25, 2), weight: 1 },
  { arbitrary: fc.double({ min: -2, max: 2, noNaN: true }), weight: 2 },
);
const termArb: fc.Arbitrary<TermSpec> = fc.record({
  kind: fc.constantFrom<Kind>("scaled-dot", "additive", "bilinear", "cosine"),
  weight: weightArb,
  A: hiddenArb,
  bias: fc.boolean(),
  temperature: temperatureArb,
});

function hybridArb(minTerms: number, maxTerms: number): fc.Arbitrary<HybridCase> {
  return fc
    .record({
      B: fc.integer({ min: 1, max: 2 }),
      Nq: lengthArb,
      Nk: lengthArb,
      Dq: featureArb,
      Dk: featureArb,
      Dv: featureArb,
      terms: fc.array(termArb, { minLength: minTerms, maxLength: maxTerms }),
      mask: fc.option(maskArb, { nil: undefined, freq: 3 }),
      returnWeights: fc.boolean(),
      rank2: fc.boolean(),
      tensorParams: fc.boolean(),
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
    })
    .map((c): HybridCase => {
      const sameDims = c.terms.some((t) => t.kind === "scaled-dot" || t.kind === "cosine");
      return { ...c, B: c.rank2 ? 1 : c.B, Dk: sameDims ? c.Dq : c.Dk };
    });
}

interface BuiltHybrid {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  terms: ScoreTerm[];
  refTerms: RefTerm[];
  mask?: Mask;
}

function buildHybrid(c: HybridCase): BuiltHybrid {
  const r = rng(c.seed);
  const seq = (N: number, F: number): Tensor => randomTensor(r, c.rank2 ? [N, F] : [c.B, N, F]);
  const q = seq(c.Nq, c.Dq);
  const k = seq(c.Nk, c.Dk);
  const v = seq(c.Nk, c.Dv);
  const t = c.tensorParams;
  const terms: ScoreTerm[] = [];
  const refTerms: RefTerm[] = [];
  for (const s of c.terms) {
    const p = randomParams(r, c.Dq, c.Dk, s.A, s.bias);
    switch (s.kind) {
      case "scaled-dot":
        terms.push({ kind: "scaled-dot", weight: s.weight });
        refTerms.push({ kind: "scaled-dot", weight: s.weight });
        break;
      case "bilinear":
        terms.push({ kind: "bilinear", weight: s.weight, w: asMatrix(p.w, [c.Dq, c.Dk], t) });
        refTerms.push({ kind: "bilinear", weight: s.weight, w: p.w });
        break;
      case "cosine": {
        const term: ScoreTerm = { kind: "cosine", weight: s.weight };
        if (s.temperature !== undefined) term.temperature = s.temperature;
        terms.push(term);
        refTerms.push({ kind: "cosine", weight: s.weight, temperature: s.temperature });
        break;
      }
      case "additive": {
        const term: ScoreTerm = {
          kind: "additive",
          weight: s.weight,
          wq: asMatrix(p.wq, [s.A, c.Dq], t),
          wk: asMatrix(p.wk, [s.A, c.Dk], t),
          va: asParam(p.va, [s.A], t),
        };
        if (p.bias) term.bias = asParam(p.bias, [s.A], t);
        terms.push(term);
        refTerms.push({ kind: "additive", weight: s.weight, ...p });
        break;
      }
    }
  }
  const mask = c.mask ? makeMask(r, c.mask, c.B, c.Nq, c.Nk) : undefined;
  return { q, k, v, terms, refTerms, mask };
}

function hybridTol(terms: readonly TermSpec[]): Tolerance {
  let hidden = 0;
  for (const t of terms) if (t.kind === "additive") hidden += t.A * Math.max(1, Math.abs(t.weight));
  return additiveTol(hidden);
}

function checkHybrid(c: HybridCase): void {
  const b = buildHybrid(c);
  const before = bytesInUse();
  const got = hybridAttention(
    b.q,
    b.k,
    b.v,
    { terms: b.terms },
    { mask: b.mask, returnWeights: c.returnWeights },
  );
  const want = referenceHybrid(b.q, b.k, b.v, b.refTerms, { mask: b.mask });
  const tol = hybridTol(c.terms);
  const problems: string[] = [];
  const note = (what: string, p: string | null): void => {
    if (p !== null) problems.push(`${what}: ${p}`);
  };
  note("output", closeProblem(got.output, want.output, tol));
  if (c.returnWeights) note("weights", closeProblem(got.weights, want.weights, tol));
  else if (got.weights !== undefined) problems.push("weights returned without returnWeights");
  if (bytesInUse() !== before) problems.push(`${bytesInUse() - before} bytes left in use`);
  if (problems.length > 0) throw new Error(`${problems.join("\n")}\ncase: ${JSON.stringify(c)}`);
}

describe("hybridAttention", () => {
  it("one scaled-dot term of weight 1 equals scaledDotProductAttention on [B,1,N,D] views", () => {
    const arb = hybridArb(1, 1).map((c): HybridCase => ({
      ...c,
      Dk: c.Dq,
      terms: [{ ...c.terms[0], kind: "scaled-dot", weight: 1 }],
    }));
    fc.assert(
      fc.property(arb, (c) => {
        const b = buildHybrid(c);
        const got = hybridAttention(
          b.q,
          b.k,
          b.v,
          { terms: [{ kind: "scaled-dot", weight: 1 }] },
          { mask: b.mask, returnWeights: true },
        );
        const sdpa = scaledDotProductAttention(heads1(b.q), heads1(b.k), heads1(b.v), {
          mask: b.mask ? sdpaMask(b.mask) : undefined,
          returnWeights: true,
        });
        expectClose(got.output, { data: sdpa.output.data, shape: got.output.shape }, SAME);
        expectClose(got.weights, { data: sdpa.weights!.data, shape: got.weights!.shape }, SAME);
      }),
      { numRuns: 150, seed: 0xfb01 },
    );
  });

  it("one additive, bilinear or cosine term of weight 1 equals its own op", () => {
    const arb = fc
      .tuple(hybridArb(1, 1), fc.constantFrom<Kind>("additive", "bilinear", "cosine"))
      .map(([c, kind]): HybridCase => {
        const Dk = kind === "cosine" ? c.Dq : c.Dk;
        return { ...c, Dk, terms: [{ ...c.terms[0], kind, weight: 1 }] };
      });
    fc.assert(
      fc.property(arb, (c) => {
        const b = buildHybrid(c);
        const options = { mask: b.mask, returnWeights: true };
        const got = hybridAttention(b.q, b.k, b.v, { terms: b.terms }, options);
        const term = b.terms[0];
        let own: FamilyResult;
        if (term.kind === "additive") own = additiveAttention(b.q, b.k, b.v, term, options);
        else if (term.kind === "bilinear") own = bilinearAttention(b.q, b.k, b.v, term, options);
        else if (term.kind === "cosine")
          own = cosineAttention(b.q, b.k, b.v, { ...options, temperature: term.temperature });
        else throw new Error(`unexpected kind ${term.kind}`);
        expectClose(got.output, own.output, SAME, `${term.kind} output`);
        expectClose(got.weights, own.weights!, SAME, `${term.kind} weights`);
      }),
      { numRuns: 150, seed: 0xfb02 },
    );
  });

  it("2–4 terms (weights negative, 0 and positive, repeated kinds) match the reference", () => {
    fc.assert(fc.property(hybridArb(2, 4), checkHybrid), { numRuns: 250, seed: 0xfb03 });
  });

  it("repeated kinds of every kind, Dq ≠ Dk when no term needs Dq = Dk", () => {
    const arb = fc
      .tuple(
        hybridArb(2, 4),
        fc.constantFrom<Kind>("scaled-dot", "additive", "bilinear", "cosine"),
        fc.boolean(),
      )
      .map(([c, kind, mixed]): HybridCase => {
        // All terms of one kind, or that kind twice plus the rest.
        const terms = mixed
          ? [{ ...c.terms[0], kind }, ...c.terms.slice(1), { ...c.terms[1], kind }]
          : c.terms.map((t) => ({ ...t, kind }));
        const sameDims = terms.some((t) => t.kind === "scaled-dot" || t.kind === "cosine");
        return { ...c, terms, Dk: sameDims ? c.Dq : c.Dk };
      });
    fc.assert(fc.property(arb, checkHybrid), { numRuns: 150, seed: 0xfb04 });
  });

  it("terms of weight 0 change nothing", () => {
    const arb = fc
      .tuple(
        hybridArb(1, 3),
        fc.array(termArb, { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
      )
      .map(([c, extra, at]) => {
        const zeros = extra.map((t): TermSpec => ({ ...t, weight: 0 }));
        const all = [...c.terms, ...zeros];
        const sameDims = all.some((t) => t.kind === "scaled-dot" || t.kind === "cosine");
        return { c: { ...c, Dk: sameDims ? c.Dq : c.Dk }, zeros, at };
      });
    fc.assert(
      fc.property(arb, ({ c, zeros, at }) => {
        const a = buildHybrid(c);
        const extra = buildHybrid({ ...c, terms: zeros, seed: c.seed ^ 0x5a5a5a }).terms;
        const terms = [...a.terms];
        extra.forEach((t, i) => terms.splice(at[i] % (terms.length + 1), 0, t));
        const options = { mask: a.mask, returnWeights: true };
        const got = hybridAttention(a.q, a.k, a.v, { terms }, options);
        const want = hybridAttention(a.q, a.k, a.v, { terms: a.terms }, options);
        expectClose(got.output, want.output, SAME, "output");
        expectClose(got.weights, want.weights!, SAME, "weights");
      }),
      { numRuns: 150, seed: 0xfb05 },
    );
  });

  it("the generators reach every kind, repeated kinds, weights 0 and negative, Dq ≠ Dk", () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(hybridArb(2, 4), (c) => {
        const kinds = c.terms.map((t) => t.kind);
        for (const k of kinds) seen.add(k);
        if (new Set(kinds).size < kinds.length) seen.add("repeated");
        if (c.terms.some((t) => t.weight === 0)) seen.add("weight 0");
        if (c.terms.some((t) => t.weight < 0)) seen.add("negative");
        if (c.terms.length === 4) seen.add("4 terms");
        if (c.Dq !== c.Dk) seen.add("Dq≠Dk");
        if (c.mask) seen.add("mask");
      }),
      { numRuns: 400, seed: 0xfb06 },
    );
    expect([...seen].sort()).toEqual(
      [
        "scaled-dot",
        "additive",
        "bilinear",
        "cosine",
        "repeated",
        "weight 0",
        "negative",
        "4 terms",
        "Dq≠Dk",
        "mask",
      ].sort(),
    );
  });

  it("a cosine term of weight 1/τ equals cosineAttention at temperature τ", () => {
    const r = rng(81);
    const q = randomTensor(r, [2, 7, 12]);
    const k = randomTensor(r, [2, 9, 12]);
    const v = randomTensor(r, [2, 9, 5]);
    for (const tau of [0.05, 0.3, 1, 4]) {
      const a = cosineAttention(q, k, v, { temperature: tau, returnWeights: true });
      const b = hybridAttention(
        q,
        k,
        v,
        { terms: [{ kind: "cosine", weight: 1 / tau }] },
        { returnWeights: true },
      );
      expectClose(b.output, a.output, { atol: 1e-6, rtol: 1e-5 }, `τ = ${tau} output`);
      expectClose(b.weights, a.weights!, { atol: 1e-6, rtol: 1e-5 }, `τ = ${tau} weights`);
    }
  });
});

// =====================================================================================
// 4. Cosine attention and poisoned masked keys
// =====================================================================================

/** Cosine of two rows in float64 with the norms clamped at 1e-8. */
function cos64(
  a: ArrayLike<number>,
  ai: number,
  b: ArrayLike<number>,
  bi: number,
  D: number,
): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let c = 0; c < D; c++) {
    dot += a[ai * D + c] * b[bi * D + c];
    na += a[ai * D + c] ** 2;
    nb += b[bi * D + c] ** 2;
  }
  return dot / (Math.max(Math.sqrt(na), 1e-8) * Math.max(Math.sqrt(nb), 1e-8));
}

describe("cosineAttention", () => {
  it("a zero query row has cosine 0 with every key: uniform weights, the mean of v", () => {
    const r = rng(91);
    const [Nq, Nk, D, Dv] = [5, 8, 6, 3];
    const q = randomTensor(r, [1, Nq, D]);
    q.data.fill(0, 2 * D, 3 * D);
    const k = randomTensor(r, [1, Nk, D]);
    const v = randomTensor(r, [1, Nk, Dv]);
    for (const temperature of [1, 0.1]) {
      const res = cosineAttention(q, k, v, { temperature, returnWeights: true });
      for (let j = 0; j < Nk; j++) expect(res.weights!.data[2 * Nk + j]).toBeCloseTo(1 / Nk, 6);
      for (let c = 0; c < Dv; c++) {
        let mean = 0;
        for (let j = 0; j < Nk; j++) mean += v.data[j * Dv + c] / Nk;
        expect(Math.abs(res.output.data[2 * Dv + c] - mean)).toBeLessThan(1e-6);
      }
      expectClose(res.output, referenceCosine(q, k, v, { temperature }).output, TOL);
    }
  });

  it("a zero key row has score 0 against every query (weights relative to key 0)", () => {
    const r = rng(92);
    const [Nq, Nk, D, Dv] = [6, 7, 9, 4];
    const q = randomTensor(r, [Nq, D]);
    const k = randomTensor(r, [Nk, D]);
    k.data.fill(0, 4 * D, 5 * D);
    const v = randomTensor(r, [Nk, Dv]);
    const tau = 0.5;
    const res = cosineAttention(q, k, v, { temperature: tau, returnWeights: true });
    for (let i = 0; i < Nq; i++) {
      const w = res.weights!.data;
      // log(p_i4 / p_i0) = s_i4 − s_i0 = 0 − cos(q_i, k_0)/τ
      const got = Math.log(w[i * Nk + 4] / w[i * Nk + 0]);
      const want = -cos64(q.data, i, k.data, 0, D) / tau;
      expect(Math.abs(got - want), `row ${i}`).toBeLessThan(1e-5);
    }
    expectClose(res.weights, referenceCosine(q, k, v, { temperature: tau }).weights, TOL);
  });

  it("rows below the 1e-8 norm clamp (zero, tiny) match the reference", () => {
    const r = rng(93);
    const [B, Nq, Nk, D] = [2, 6, 8, 7];
    const q = randomTensor(r, [B, Nq, D]);
    const k = randomTensor(r, [B, Nk, D]);
    const v = randomTensor(r, [B, Nk, 5]);
    q.data.fill(0, 0, D); // zero
    for (let c = 0; c < D; c++) q.data[3 * D + c] = 1e-10 * uniform(r, -1, 1); // below the clamp
    for (let c = 0; c < D; c++) q.data[(Nq + 1) * D + c] = 1e-7 * uniform(r, -1, 1); // above it
    k.data.fill(0, 2 * D, 3 * D);
    for (let c = 0; c < D; c++) k.data[(Nk + 5) * D + c] = 3e-9 * uniform(r, -1, 1);
    const res = cosineAttention(q, k, v, { returnWeights: true, temperature: 0.2 });
    const want = referenceCosine(q, k, v, { temperature: 0.2 });
    expectClose(res.output, want.output, TOL, "output");
    expectClose(res.weights, want.weights, TOL, "weights");
  });

  it("temperature τ divides every score: log-weight differences scale by 1/τ", () => {
    const r = rng(94);
    const [B, Nq, Nk, D] = [2, 5, 9, 11];
    const q = randomTensor(r, [B, Nq, D]);
    const k = randomTensor(r, [B, Nk, D]);
    const v = randomTensor(r, [B, Nk, 3]);
    const base = cosineAttention(q, k, v, { returnWeights: true }).weights!.data;
    for (const tau of [0.25, 0.5, 2, 4]) {
      const w = cosineAttention(q, k, v, { temperature: tau, returnWeights: true }).weights!.data;
      for (let row = 0; row < B * Nq; row++) {
        for (let j = 1; j < Nk; j++) {
          const got = Math.log(w[row * Nk + j] / w[row * Nk]);
          const want = Math.log(base[row * Nk + j] / base[row * Nk]) / tau;
          expect(Math.abs(got - want), `τ ${tau} row ${row} key ${j}`).toBeLessThan(1e-4);
        }
      }
    }
  });

  it("the default temperature is 1", () => {
    const r = rng(95);
    const q = randomTensor(r, [2, 4, 6]);
    const k = randomTensor(r, [2, 5, 6]);
    const v = randomTensor(r, [2, 5, 3]);
    expectClose(
      cosineAttention(q, k, v).output,
      cosineAttention(q, k, v, { temperature: 1 }).output,
      EXACT,
    );
  });

  it("is invariant to positive rescaling of query and key rows", () => {
    const r = rng(96);
    const [B, Nq, Nk, D] = [2, 6, 10, 8];
    const q = randomTensor(r, [B, Nq, D]);
    const k = randomTensor(r, [B, Nk, D]);
    const v = randomTensor(r, [B, Nk, 4]);
    const scaleRows = (t: Tensor, N: number): Tensor => {
      const data = t.data.slice();
      for (let row = 0; row < B * N; row++) {
        const f = Math.pow(10, uniform(r, -3, 3));
        for (let c = 0; c < D; c++) data[row * D + c] *= f;
      }
      return { data, shape: t.shape };
    };
    const a = cosineAttention(q, k, v, { temperature: 0.3, returnWeights: true });
    const b = cosineAttention(scaleRows(q, Nq), scaleRows(k, Nk), v, {
      temperature: 0.3,
      returnWeights: true,
    });
    expectClose(b.output, a.output, TOL, "output");
    expectClose(b.weights, a.weights!, TOL, "weights");
  });
});

describe("masked-out keys holding NaN or Infinity", () => {
  const r = rng(101);
  const [B, Nq, Nk, Dq, Dk, Dv, A] = [2, 5, 9, 6, 6, 4, 7];
  const q = randomTensor(r, [B, Nq, Dq]);
  const k = randomTensor(r, [B, Nk, Dk]);
  const v = randomTensor(r, [B, Nk, Dv]);
  const p = randomParams(r, Dq, Dk, A, true);
  // Keys 2 and 7 of batch 0 and key 4 of batch 1 are masked for every query.
  const masked = [
    [0, 2],
    [0, 7],
    [1, 4],
  ];
  const keep = new Uint8Array(B * Nk).fill(1);
  for (const [b, j] of masked) keep[b * Nk + j] = 0;
  const full = new Uint8Array(B * Nq * Nk);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Nq; i++)
      for (let j = 0; j < Nk; j++)
        full[(b * Nq + i) * Nk + j] = keep[b * Nk + j] && r() < 0.85 ? 1 : 0;
  const toAdditive = (m: Tensor<Uint8Array>): Tensor => ({
    data: Float32Array.from(m.data, (x) => (x ? uniform(r, -1, 1) : -Infinity)),
    shape: m.shape,
  });
  const boolB1k: Tensor<Uint8Array> = { data: keep, shape: [B, 1, Nk] };
  const boolBqk: Tensor<Uint8Array> = { data: full, shape: [B, Nq, Nk] };
  const masks: Array<[string, Mask]> = [
    ["bool [B,1,Nk]", boolB1k],
    ["bool [B,Nq,Nk]", boolBqk],
    ["additive [B,1,Nk]", toAdditive(boolB1k)],
    ["additive [B,Nq,Nk]", toAdditive(boolBqk)],
  ];
  const poison = (t: Tensor, F: number, value: number): Tensor => {
    const data = t.data.slice();
    for (const [b, j] of masked) data.fill(value, (b * Nk + j) * F, (b * Nk + j + 1) * F);
    return { data, shape: t.shape };
  };
  const ops: Array<[string, (k: Tensor, v: Tensor, m: Mask) => FamilyResult]> = [
    ["additive", (kk, vv, m) => additiveAttention(q, kk, vv, p, { mask: m, returnWeights: true })],
    ["bilinear", (kk, vv, m) => bilinearAttention(q, kk, vv, p, { mask: m, returnWeights: true })],
    ["cosine", (kk, vv, m) => cosineAttention(q, kk, vv, { mask: m, returnWeights: true })],
    [
      "hybrid (dot terms)",
      (kk, vv, m) =>
        hybridAttention(
          q,
          kk,
          vv,
          {
            terms: [
              { kind: "scaled-dot", weight: 1 },
              { kind: "bilinear", weight: -0.5, w: p.w },
              { kind: "cosine", weight: 2, temperature: 0.5 },
            ],
          },
          { mask: m, returnWeights: true },
        ),
    ],
    [
      "hybrid (additive and dot terms)",
      (kk, vv, m) =>
        hybridAttention(
          q,
          kk,
          vv,
          {
            terms: [
              { kind: "additive", weight: 1, ...p },
              { kind: "scaled-dot", weight: 0.5 },
            ],
          },
          { mask: m, returnWeights: true },
        ),
    ],
  ];
  const cases = ops.flatMap(([op, call]) =>
    masks.flatMap(([maskName, mask]) =>
      [NaN, Infinity, -Infinity].map(
        (value) => [`${op}, ${maskName}, ${value}`, call, mask, value] as const,
      ),
    ),
  );

  it.each(cases)("%s: outputs and weights unchanged", (_name, call, mask, value) => {
    const clean = call(k, v, mask);
    const dirty = call(poison(k, Dk, value), poison(v, Dv, value), mask);
    expect(hasNaN(clean.output.data)).toBe(false);
    expectClose(dirty.output, clean.output, EXACT, "output");
    expectClose(dirty.weights, clean.weights!, EXACT, "weights");
  });
});
