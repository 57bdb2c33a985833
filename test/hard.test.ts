// hardAttention (top-k attention): the golden topk_attention cases (FORMAT.md 4.10, ties included)
// and property tests against a float64 reference: a stable descending sort of each row's scaled,
// masked scores, the first topK finite ones kept, a softmax over them, every other weight exactly 0.
//
// Most properties use data on a coarse grid (multiples of 1/4) and power-of-two scales, so that every
// score is exact in float32 and float64 alike: the kept set (ties included, which the grid makes
// common) must then be exactly the reference's, and only the softmax and the sum are rounded.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { hardAttention, init, scaledDotProductAttention, type Tensor } from "../src/index";
import {
  decodeFloat,
  expectClose,
  loadCases,
  type GoldenCase,
  type Tolerance,
} from "./helpers/conformance";
import { product, randInt, randomTensor, rng, type Rng } from "./helpers/random";
import { broadcastStrides, dims4, type RefTensor } from "./reference";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };

beforeAll(async () => {
  await init();
});

// ---- Golden cases ----

describe("golden topk_attention cases", () => {
  const cases = loadCases().filter((c) => c.op === "topk_attention");

  it("are present, ties included", () => {
    expect(cases.map((c) => c.name)).toEqual(
      expect.arrayContaining(["topk1_argmax", "topk4", "topk1_ties", "topk4_ties"]),
    );
  });

  it.each(cases.map((c): [string, GoldenCase] => [c.name, c]))("%s", (_name, c) => {
    const r = hardAttention(
      decodeFloat(c.inputs.q),
      decodeFloat(c.inputs.k),
      decodeFloat(c.inputs.v),
      { topK: c.params.k as number, returnWeights: true },
    );
    expectClose(r.output, decodeFloat(c.outputs.out), c.tolerance, `${c.name} out`);
    expectClose(r.weights, decodeFloat(c.outputs.weights), c.tolerance, `${c.name} weights`);
    // The kept set is exact: a weight is nonzero exactly where the golden one is.
    const want = decodeFloat(c.outputs.weights).data;
    const got = r.weights!.data;
    for (let i = 0; i < want.length; i++) expect(got[i] !== 0).toBe(want[i] !== 0);
  });
});

// ---- Reference ----

interface RefTopKOptions {
  topK: number;
  scale?: number;
  mask?: RefTensor<Uint8Array> | RefTensor<Float32Array>;
}

interface RefTopK {
  output: RefTensor<Float64Array>;
  weights: RefTensor<Float64Array>;
  /** Per row: the kept key indices, best first. */
  kept: number[][];
  /** Per row: how many keys are visible (finite score). */
  visible: number[];
  /** Smallest gap between the last kept score and the best dropped one over rows (∞ if none). */
  margin: number;
}

/** Top-k attention in float64, straight from API.md / FORMAT.md 4.10. */
function referenceTopK(q: RefTensor, k: RefTensor, v: RefTensor, o: RefTopKOptions): RefTopK {
  const [B, H, Nq, D] = dims4(q.shape);
  const [, Hkv, Nk] = dims4(k.shape);
  const Dv = v.shape[v.shape.length - 1];
  const group = H / Hkv;
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const mask = o.mask;
  const ms = mask ? broadcastStrides(mask.shape, [B, H, Nq, Nk]) : [0, 0, 0, 0];
  const bool = mask !== undefined && mask.data instanceof Uint8Array;
  const lead = q.shape.slice(0, -2);
  const output = new Float64Array(B * H * Nq * Dv);
  const weights = new Float64Array(B * H * Nq * Nk);
  const kept: number[][] = [];
  const visible: number[] = [];
  let margin = Infinity;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < Nq; i++) {
        const row = (b * H + h) * Nq + i;
        const scores: { j: number; s: number }[] = [];
        for (let j = 0; j < Nk; j++) {
          let s = 0;
          for (let d = 0; d < D; d++)
            s += q.data[row * D + d] * k.data[((b * Hkv + kvh) * Nk + j) * D + d];
          s *= scale;
          if (mask) {
            const m = mask.data[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]];
            if (bool) s = m === 0 ? -Infinity : s;
            else s = m === -Infinity ? -Infinity : s + m;
          }
          if (s !== -Infinity) scores.push({ j, s });
        }
        visible.push(scores.length);
        scores.sort((x, y) => y.s - x.s); // stable: equal scores keep ascending key order
        const top = scores.slice(0, o.topK);
        if (scores.length > o.topK && top[top.length - 1].s !== scores[o.topK].s) {
          margin = Math.min(margin, top[top.length - 1].s - scores[o.topK].s);
        }
        kept.push(top.map((t) => t.j));
        if (top.length === 0) continue;
        const max = top[0].s;
        let sum = 0;
        for (const t of top) sum += Math.exp(t.s - max);
        for (const t of top) {
          const p = Math.exp(t.s - max) / sum;
          weights[row * Nk + t.j] = p;
          for (let c = 0; c < Dv; c++)
            output[row * Dv + c] += p * v.data[((b * Hkv + kvh) * Nk + t.j) * Dv + c];
        }
      }
    }
  return {
    output: { data: output, shape: [...lead, Nq, Dv] },
    weights: { data: weights, shape: [...lead, Nq, Nk] },
    kept,
    visible,
    margin,
  };
}

// ---- Generated cases ----

type MaskKind = "none" | "bool" | "additive";

interface HardCase {
  rank: 2 | 3 | 4;
  B: number;
  H: number;
  Hkv: number;
  Nq: number;
  Nk: number;
  D: number;
  Dv: number;
  topK: number;
  maskKind: MaskKind;
  /** Which of the 4 dims of [B,H,Nq,Nk] the mask keeps (else 1), and its rank (from the right). */
  maskDims: boolean[];
  maskRank: number;
  density: number;
  fullRows: number;
  /** undefined = the default 1/sqrt(D). */
  scale: number | undefined;
  /** Key vectors copied over others (exact ties). */
  duplicates: number;
  /** Data on the grid of 1/4 (exact scores), or continuous. */
  grid: boolean;
  returnWeights: boolean;
  seed: number;
}

function gridTensor(r: Rng, shape: readonly number[]): Tensor {
  const data = new Float32Array(product(shape));
  for (let i = 0; i < data.length; i++) data[i] = randInt(r, -4, 4) / 4;
  return { data, shape: [...shape] };
}

function inputShape(c: HardCase, heads: number, n: number, d: number): number[] {
  if (c.rank === 2) return [n, d];
  if (c.rank === 3) return [heads, n, d];
  return [c.B, heads, n, d];
}

interface Built {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  mask?: Tensor<Uint8Array> | Tensor;
}

function buildCase(c: HardCase): Built {
  const r = rng(c.seed);
  const make = (shape: number[]): Tensor =>
    c.grid ? gridTensor(r, shape) : randomTensor(r, shape);
  const q = make(inputShape(c, c.H, c.Nq, c.D));
  const k = make(inputShape(c, c.Hkv, c.Nk, c.D));
  const v = randomTensor(r, inputShape(c, c.Hkv, c.Nk, c.Dv));
  // Exact ties: key j takes the vector of key src (same head), its value stays its own.
  for (let n = 0; n < c.duplicates && c.Nk > 1; n++) {
    const src = randInt(r, 0, c.Nk - 1);
    const dst = randInt(r, 0, c.Nk - 1);
    for (let l = 0; l < k.data.length / (c.Nk * c.D); l++)
      k.data.copyWithin((l * c.Nk + dst) * c.D, (l * c.Nk + src) * c.D, (l * c.Nk + src + 1) * c.D);
  }
  if (c.maskKind === "none") return { q, k, v };
  const full = [c.B, c.H, c.Nq, c.Nk];
  const shape = full.map((n, i) => (c.maskDims[i] ? n : 1)).slice(4 - c.maskRank);
  const size = product(shape);
  const rowLength = shape[shape.length - 1];
  let mask: Tensor<Uint8Array> | Tensor;
  if (c.maskKind === "bool") {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = r() < c.density ? 1 : 0;
    for (let f = 0; f < c.fullRows; f++) {
      const row = randInt(r, 0, size / rowLength - 1);
      data.fill(0, row * rowLength, (row + 1) * rowLength);
    }
    mask = { data, shape };
  } else {
    // Biases on the grid of 1/4 keep the masked scores exact.
    const data = new Float32Array(size);
    for (let i = 0; i < size; i++)
      data[i] = r() < c.density ? (c.grid ? randInt(r, -8, 8) / 4 : r() * 4 - 2) : -Infinity;
    for (let f = 0; f < c.fullRows; f++) {
      const row = randInt(r, 0, size / rowLength - 1);
      data.fill(-Infinity, row * rowLength, (row + 1) * rowLength);
    }
    mask = { data, shape };
  }
  return { q, k, v, mask };
}

function check(c: HardCase): void {
  const { q, k, v, mask } = buildCase(c);
  const want = referenceTopK(q, k, v, { topK: c.topK, scale: c.scale, mask });
  if (!c.grid) fc.pre(want.margin > 1e-4); // continuous data: skip the (rare) near-ties at the cut
  const got = hardAttention(q, k, v, {
    topK: c.topK,
    scale: c.scale,
    mask,
    returnWeights: c.returnWeights,
  });
  const what = JSON.stringify(c);
  expectClose(got.output, want.output, TOL, `output of ${what}`);
  if (!c.returnWeights) {
    expect(got.weights).toBeUndefined();
    return;
  }
  expectClose(got.weights, want.weights, TOL, `weights of ${what}`);
  const w = got.weights!.data;
  const Dv = c.Dv;
  for (let row = 0; row < want.kept.length; row++) {
    const nonzero: number[] = [];
    let sum = 0;
    for (let j = 0; j < c.Nk; j++) {
      const x = w[row * c.Nk + j];
      if (x !== 0) nonzero.push(j);
      sum += x;
    }
    const expected = [...want.kept[row]].sort((a, b) => a - b);
    if (nonzero.join() !== expected.join()) {
      expect.fail(
        `row ${row}: nonzero weights at [${nonzero.join(",")}], want [${expected.join(",")}] in ${what}`,
      );
    }
    if (nonzero.length !== Math.min(c.topK, want.visible[row])) {
      expect.fail(
        `row ${row}: ${nonzero.length} nonzero weights, want min(topK, visible) in ${what}`,
      );
    }
    if (nonzero.length > 0 && !(Math.abs(sum - 1) < 1e-5)) {
      expect.fail(`row ${row}: weights sum to ${sum} in ${what}`);
    }
    if (nonzero.length === 0) {
      for (let x = 0; x < Dv; x++) {
        if (got.output.data[row * Dv + x] !== 0) expect.fail(`row ${row} is not zero in ${what}`);
      }
    }
  }
}

function caseArb(
  s: { grid?: boolean; masks?: boolean; maxH?: number } = {},
): fc.Arbitrary<HardCase> {
  return fc
    .record({
      rank: fc.constantFrom(2 as const, 3 as const, 4 as const, 4 as const),
      B: fc.integer({ min: 1, max: 2 }),
      H: fc.integer({ min: 1, max: s.maxH ?? 4 }),
      kvPick: fc.nat(),
      Nq: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.constantFrom(63, 65)),
      Nk: fc.oneof(
        { arbitrary: fc.integer({ min: 1, max: 24 }), weight: 4 },
        { arbitrary: fc.integer({ min: 60, max: 140 }), weight: 1 },
      ),
      D: fc.constantFrom(1, 3, 4, 5, 8, 13, 16),
      Dv: fc.integer({ min: 1, max: 11 }),
      topKPick: fc.nat(),
      maskKind:
        s.masks === false
          ? fc.constant("none" as const)
          : fc.constantFrom("none" as const, "bool" as const, "additive" as const),
      maskDims: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      maskRank: fc.integer({ min: 1, max: 4 }),
      density: fc.constantFrom(0.3, 0.6, 0.9, 1),
      fullRows: fc.constantFrom(0, 0, 1, 2),
      scalePick: fc.constantFrom<number | undefined>(undefined, undefined, 0.25, 0.5, 1),
      duplicates: fc.constantFrom(0, 1, 3, 6),
      grid: s.grid === undefined ? fc.boolean() : fc.constant(s.grid),
      returnWeights: fc.constantFrom(true, true, true, false),
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
    })
    .map(({ kvPick, topKPick, scalePick, ...c }): HardCase => {
      const B = c.rank === 4 ? c.B : 1;
      const H = c.rank === 2 ? 1 : c.H;
      const divisors = Array.from({ length: H }, (_, i) => i + 1).filter((d) => H % d === 0);
      // topK from 1 to Nk + 3, with the small values and the edges (Nk, Nk + 1) frequent.
      const choices = [1, 2, 3, c.Nk, c.Nk + 1, 1 + (topKPick % (c.Nk + 3))];
      const topK = choices[topKPick % choices.length];
      // Exact scores need a power-of-two scale: the default 1/sqrt(D) is one for D = 1, 4, 16;
      // without an additive mask any scale keeps the order of exact dot products.
      let scale = scalePick;
      if (c.grid && c.maskKind === "additive" && scale === undefined && ![1, 4, 16].includes(c.D))
        scale = 0.5;
      if (!c.grid && scalePick !== undefined) scale = scalePick * 1.37;
      return { ...c, B, H, Hkv: divisors[kvPick % divisors.length], topK, scale };
    });
}

describe("hardAttention matches the float64 top-k reference", () => {
  it("on grid data (exact scores, many ties): any rank, GQA, masks, topK 1..Nk+3", () => {
    fc.assert(fc.property(caseArb({ grid: true }), check), { numRuns: 400, seed: 0x70c01 });
  });

  it("on continuous data (ties only from duplicated keys), custom scales", () => {
    fc.assert(fc.property(caseArb({ grid: false }), check), { numRuns: 300, seed: 0x70c02 });
  });

  it("with grouped-query heads (H up to 8) and masks of every broadcast form", () => {
    const arb = caseArb({ grid: true, maxH: 8 }).map((c): HardCase => {
      const H = c.H === 1 ? 8 : c.H;
      const divisors = Array.from({ length: H }, (_, i) => i + 1).filter((d) => H % d === 0);
      return {
        ...c,
        rank: 4,
        H,
        Hkv: divisors[c.seed % divisors.length],
        maskKind: c.maskKind === "none" ? "bool" : c.maskKind,
        returnWeights: true,
      };
    });
    fc.assert(fc.property(arb, check), { numRuns: 150, seed: 0x70c03 });
  });
});

describe("hardAttention special cases", () => {
  const r = rng(77);
  const q = randomTensor(r, [2, 3, 9, 8]);
  const k = randomTensor(r, [2, 3, 14, 8]);
  const v = randomTensor(r, [2, 3, 14, 6]);

  it("topK ≥ the visible keys keeps them all: equal to scaledDotProductAttention", () => {
    const mask = { data: new Uint8Array(14).fill(1), shape: [1, 1, 1, 14] };
    mask.data[3] = 0;
    mask.data[10] = 0;
    for (const topK of [12, 13, 14, 15, 100]) {
      const hard = hardAttention(q, k, v, { topK, mask, returnWeights: true });
      const dense = scaledDotProductAttention(q, k, v, { mask, returnWeights: true });
      expectClose(hard.output, dense.output, TOL, `output (topK ${topK})`);
      expectClose(hard.weights, dense.weights!, TOL, `weights (topK ${topK})`);
    }
    // Without a mask, topK = Nk is plain attention; with scale.
    const hard = hardAttention(q, k, v, { topK: 14, scale: 0.3 });
    const dense = scaledDotProductAttention(q, k, v, { scale: 0.3 });
    expectClose(hard.output, dense.output, TOL, "output (topK = Nk, scale 0.3)");
  });

  it("topK = 1 is argmax attention: weight exactly 1, output exactly that value row", () => {
    const res = hardAttention(q, k, v, { topK: 1, returnWeights: true });
    const want = referenceTopK(q, k, v, { topK: 1 });
    for (let row = 0; row < 2 * 3 * 9; row++) {
      const j = want.kept[row][0];
      const bh = Math.floor(row / 9);
      expect(res.weights!.data[row * 14 + j]).toBe(1);
      expect(Array.from(res.output.data.subarray(row * 6, row * 6 + 6))).toEqual(
        Array.from(v.data.subarray((bh * 14 + j) * 6, (bh * 14 + j + 1) * 6)),
      );
    }
  });

  it("exact ties go to the lower key index", () => {
    // Every key the same vector: all scores tie, so topK keeps keys 0..topK-1 with equal weights.
    const kSame: Tensor = { data: new Float32Array(14 * 8), shape: [14, 8] };
    for (let j = 0; j < 14; j++) kSame.data.set(k.data.subarray(0, 8), j * 8);
    const vv = randomTensor(rng(3), [14, 5]);
    const qq = randomTensor(rng(4), [5, 8]);
    for (const topK of [1, 2, 5, 13]) {
      const res = hardAttention(qq, kSame, vv, { topK, returnWeights: true });
      for (let i = 0; i < 5; i++) {
        const row = Array.from(res.weights!.data.subarray(i * 14, (i + 1) * 14));
        expect(row.map((x) => (x === 0 ? 0 : 1)).join("")).toBe(
          "1".repeat(topK) + "0".repeat(14 - topK),
        );
        for (let j = 0; j < topK; j++) expect(row[j]).toBeCloseTo(1 / topK, 6);
      }
    }
    // A tie at the cut-off: keys 2 and 7 duplicate the best key 5; with topK = 2, keys 2 and 5 win.
    const q1: Tensor = { data: Float32Array.from([1, 0, 0, 0]), shape: [1, 4] };
    const k1: Tensor = { data: new Float32Array(9 * 4), shape: [9, 4] };
    for (let j = 0; j < 9; j++) k1.data[j * 4] = j === 2 || j === 5 || j === 7 ? 2 : j / 10;
    const v1 = randomTensor(rng(5), [9, 3]);
    const res = hardAttention(q1, k1, v1, { topK: 2, returnWeights: true });
    expect(Array.from(res.weights!.data)).toEqual([0, 0, 0.5, 0, 0, 0.5, 0, 0, 0]);
    expect(res.output.shape).toEqual([1, 3]);
    expect(res.weights!.shape).toEqual([1, 9]);
  });

  it("fully masked rows output zeros with zero weights (bool and additive)", () => {
    const boolMask = { data: new Uint8Array(9 * 14).fill(1), shape: [9, 14] };
    boolMask.data.fill(0, 4 * 14, 5 * 14);
    const addMask = { data: new Float32Array(9 * 14), shape: [1, 1, 9, 14] };
    addMask.data.fill(-Infinity, 7 * 14, 8 * 14);
    for (const [mask, row] of [
      [boolMask, 4],
      [addMask, 7],
    ] as const) {
      const res = hardAttention(q, k, v, { topK: 3, mask, returnWeights: true });
      for (let bh = 0; bh < 6; bh++) {
        const at = bh * 9 + row;
        expect(Array.from(res.output.data.subarray(at * 6, at * 6 + 6))).toEqual([
          0, 0, 0, 0, 0, 0,
        ]);
        expect(res.weights!.data.subarray(at * 14, at * 14 + 14).every((x) => x === 0)).toBe(true);
      }
      const want = referenceTopK(q, k, v, { topK: 3, mask });
      expectClose(res.output, want.output, TOL, "output");
      expectClose(res.weights, want.weights, TOL, "weights");
    }
  });

  it("NaN and Infinity in masked keys and values do not change the output", () => {
    const bad = [NaN, Infinity, -Infinity];
    const masked = [1, 6, 13];
    const poison = (t: Tensor): Tensor => {
      const data = t.data.slice();
      const c = t.shape[3];
      for (let l = 0; l < 6; l++)
        for (const j of masked)
          for (let x = 0; x < c; x++) data[(l * 14 + j) * c + x] = bad[(j + x) % 3];
      return { data, shape: t.shape };
    };
    const boolMask = { data: new Uint8Array(14).fill(1), shape: [14] };
    const addMask = { data: new Float32Array(2 * 14), shape: [2, 1, 1, 14] };
    for (let b = 0; b < 2; b++) for (let j = 0; j < 14; j++) addMask.data[b * 14 + j] = (j % 5) / 4;
    for (const j of masked) {
      boolMask.data[j] = 0;
      addMask.data[j] = -Infinity;
      addMask.data[14 + j] = -Infinity;
    }
    for (const mask of [boolMask, addMask]) {
      for (const topK of [1, 4, 11, 20]) {
        const clean = hardAttention(q, k, v, { topK, mask, returnWeights: true });
        const dirty = hardAttention(q, poison(k), poison(v), { topK, mask, returnWeights: true });
        expect(Array.from(dirty.output.data)).toEqual(Array.from(clean.output.data));
        expect(Array.from(dirty.weights!.data)).toEqual(Array.from(clean.weights!.data));
        expect(clean.output.data.every(Number.isFinite)).toBe(true);
      }
    }
  });

  it("keeps the rank of q (2, 3 and 4) in output and weights", () => {
    const r2 = hardAttention(
      randomTensor(r, [5, 4]),
      randomTensor(r, [7, 4]),
      randomTensor(r, [7, 3]),
      {
        topK: 2,
        returnWeights: true,
      },
    );
    expect(r2.output.shape).toEqual([5, 3]);
    expect(r2.weights!.shape).toEqual([5, 7]);
    const r3 = hardAttention(
      randomTensor(r, [4, 5, 4]),
      randomTensor(r, [2, 7, 4]),
      randomTensor(r, [2, 7, 3]),
      { topK: 2, returnWeights: true },
    );
    expect(r3.output.shape).toEqual([4, 5, 3]);
    expect(r3.weights!.shape).toEqual([4, 5, 7]);
    const r4 = hardAttention(q, k, v, { topK: 2 });
    expect(r4.output.shape).toEqual([2, 3, 9, 6]);
    expect(r4.weights).toBeUndefined();
  });
});
