// blockSparseAttention and sparsePatterns: the golden block_sparse_attention cases (FORMAT.md 4.9),
// run as shared/conformance/run.mjs maps them, and property tests against the float64 reference SDPA
// of test/reference.ts given the equivalent dense boolean mask (the layout expanded to [H?,Nq,Nk]).

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  allocTensor,
  blockSparseAttention,
  init,
  scaledDotProductAttention,
  sparsePatterns,
  type Tensor,
} from "../src/index";
import {
  decodeFloat,
  decodeTensor,
  expectClose,
  loadCases,
  type GoldenCase,
  type Tolerance,
} from "./helpers/conformance";
import { randInt, randomTensor, rng, type Rng } from "./helpers/random";
import { referenceSdpa } from "./reference";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };

beforeAll(async () => {
  await init();
});

// ---- Golden cases ----

describe("golden block_sparse_attention cases", () => {
  const cases = loadCases().filter((c) => c.op === "block_sparse_attention");

  it("are present", () => {
    expect(cases.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        "block_sparse_basic",
        "block_sparse_empty_block_row",
        "block_sparse_per_head",
        "block_sparse_rect",
      ]),
    );
  });

  it.each(cases.map((c): [string, GoldenCase] => [c.name, c]))("%s", (_name, c) => {
    const layout = decodeTensor(c.inputs.layout);
    expect(layout.data).toBeInstanceOf(Uint8Array);
    const r = blockSparseAttention(
      decodeFloat(c.inputs.q),
      decodeFloat(c.inputs.k),
      decodeFloat(c.inputs.v),
      {
        layout: layout as Tensor<Uint8Array>,
        blockSize: c.params.block_size as number,
        returnWeights: true,
      },
    );
    expectClose(r.output, decodeFloat(c.outputs.out), c.tolerance, `${c.name} out`);
    expectClose(r.weights, decodeFloat(c.outputs.weights), c.tolerance, `${c.name} weights`);
  });
});

// ---- Helpers ----

/**
 * The dense boolean mask equal to a block layout: [Nq, Nk] for a shared layout [R, C], [H, Nq, Nk]
 * for a per-head layout [H, R, C]; mask[.., i, j] = layout[.., i/bs, j/bs].
 */
function expandLayout(layout: Tensor<Uint8Array>, bs: number): Tensor<Uint8Array> {
  const s = layout.shape;
  const heads = s.length === 3 ? s[0] : 1;
  const R = s[s.length - 2];
  const C = s[s.length - 1];
  const Nq = R * bs;
  const Nk = C * bs;
  const data = new Uint8Array(heads * Nq * Nk);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < Nq; i++)
      for (let j = 0; j < Nk; j++)
        data[(h * Nq + i) * Nk + j] =
          layout.data[(h * R + Math.floor(i / bs)) * C + Math.floor(j / bs)];
  return { data, shape: s.length === 3 ? [heads, Nq, Nk] : [Nq, Nk] };
}

function randomLayout(r: Rng, shape: number[], density: number): Tensor<Uint8Array> {
  const data = new Uint8Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = r() < density ? 1 : 0;
  return { data, shape };
}

/** Rows (over all dims but the last) of a result whose elements are all exactly 0. */
function zeroRows(t: Tensor): number {
  const c = t.shape[t.shape.length - 1];
  let n = 0;
  for (let row = 0; row < t.data.length / c; row++) {
    let zero = true;
    for (let x = 0; x < c; x++) if (t.data[row * c + x] !== 0) zero = false;
    if (zero) n++;
  }
  return n;
}

interface SparseCase {
  rank: 2 | 3 | 4;
  B: number;
  H: number;
  Hkv: number;
  bs: number;
  rows: number;
  cols: number;
  D: number;
  Dv: number;
  density: number;
  perHead: boolean;
  emptyRows: number;
  causal: boolean;
  scale: number | undefined;
  returnWeights: boolean;
  seed: number;
}

interface Built {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  layout: Tensor<Uint8Array>;
  Nq: number;
  Nk: number;
}

function shapeOf(c: SparseCase, heads: number, n: number, d: number): number[] {
  if (c.rank === 2) return [n, d];
  if (c.rank === 3) return [heads, n, d];
  return [c.B, heads, n, d];
}

function build(c: SparseCase): Built {
  const r = rng(c.seed);
  const Nq = c.rows * c.bs;
  const Nk = c.cols * c.bs;
  const q = randomTensor(r, shapeOf(c, c.H, Nq, c.D));
  const k = randomTensor(r, shapeOf(c, c.Hkv, Nk, c.D));
  const v = randomTensor(r, shapeOf(c, c.Hkv, Nk, c.Dv));
  const layout = randomLayout(r, c.perHead ? [c.H, c.rows, c.cols] : [c.rows, c.cols], c.density);
  // Empty block rows: every block of a row dropped (in one head of a per-head layout).
  const heads = c.perHead ? c.H : 1;
  for (let e = 0; e < c.emptyRows; e++) {
    const h = randInt(r, 0, heads - 1);
    const row = randInt(r, 0, c.rows - 1);
    layout.data.fill(0, (h * c.rows + row) * c.cols, (h * c.rows + row + 1) * c.cols);
  }
  return { q, k, v, layout, Nq, Nk };
}

function check(c: SparseCase): void {
  const { q, k, v, layout, Nq, Nk } = build(c);
  const got = blockSparseAttention(q, k, v, {
    layout,
    blockSize: c.bs,
    causal: c.causal,
    scale: c.scale,
    returnWeights: c.returnWeights,
  });
  const want = referenceSdpa(q, k, v, {
    mask: expandLayout(layout, c.bs),
    causal: c.causal,
    scale: c.scale,
  });
  const what = JSON.stringify(c);
  expectClose(got.output, want.output, TOL, `output of ${what}`);
  if (c.returnWeights) {
    expectClose(got.weights, want.weights, TOL, `weights of ${what}`);
    expect(got.weights!.shape).toEqual([...q.shape.slice(0, -2), Nq, Nk]);
  } else {
    expect(got.weights).toBeUndefined();
  }
  // Rows that see no key are exactly zero (the reference's lse says which).
  const blind = Array.from(want.lse.data).filter((x) => x === -Infinity).length;
  expect(zeroRows(got.output)).toBeGreaterThanOrEqual(blind);
}

const BLOCK_SIZES = [1, 2, 3, 4, 6, 8, 12, 16, 64];

/** Block counts of a side of at most ~200 elements, often crossing 64-row/64-key boundaries. */
function blocksArb(bs: number): fc.Arbitrary<number> {
  const max = Math.max(1, Math.floor(200 / bs));
  const crossing = Math.min(max, Math.floor(64 / bs) + 1);
  return fc.oneof(
    { arbitrary: fc.integer({ min: 1, max: Math.min(max, 6) }), weight: 2 },
    { arbitrary: fc.integer({ min: crossing, max }), weight: 2 },
  );
}

function caseArb(settings: { maxH?: number; bs?: number[] } = {}): fc.Arbitrary<SparseCase> {
  return fc
    .record({
      rank: fc.constantFrom(2 as const, 3 as const, 4 as const, 4 as const),
      B: fc.integer({ min: 1, max: 2 }),
      H: fc.integer({ min: 1, max: settings.maxH ?? 4 }),
      kvPick: fc.nat(),
      bs: fc.constantFrom(...(settings.bs ?? BLOCK_SIZES)),
      D: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constantFrom(4, 8, 16, 33)),
      Dv: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constantFrom(4, 8, 16, 33)),
      density: fc.constantFrom(0, 0.15, 0.4, 0.7, 1),
      perHead: fc.boolean(),
      emptyRows: fc.constantFrom(0, 0, 1, 2),
      causal: fc.boolean(),
      scale: fc.option(fc.double({ min: 0.05, max: 1.5, noNaN: true }), {
        nil: undefined,
        freq: 3,
      }),
      returnWeights: fc.boolean(),
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
    })
    .chain((c) =>
      fc.tuple(blocksArb(c.bs), blocksArb(c.bs)).map(([rows, cols]) => ({ ...c, rows, cols })),
    )
    .map(({ kvPick, ...c }): SparseCase => {
      const B = c.rank === 4 ? c.B : 1;
      const H = c.rank === 2 ? 1 : c.H;
      const divisors = Array.from({ length: H }, (_, i) => i + 1).filter((d) => H % d === 0);
      return { ...c, B, H, Hkv: divisors[kvPick % divisors.length] };
    });
}

// ---- Properties against the dense-mask reference ----

describe("blockSparseAttention matches referenceSdpa with the expanded layout as a bool mask", () => {
  it("on random shapes, block sizes, densities, layouts (shared/per head), causal, GQA", () => {
    fc.assert(fc.property(caseArb(), check), { numRuns: 250, seed: 0xb10c01 });
  });

  it("with grouped-query heads (H up to 6, every divisor as Hkv) and per-head layouts", () => {
    const arb = caseArb({ maxH: 6 }).map((c): SparseCase => {
      const H = c.H === 1 ? 6 : c.H;
      const divisors = Array.from({ length: H }, (_, i) => i + 1).filter((d) => H % d === 0);
      return { ...c, rank: 4, perHead: true, H, Hkv: divisors[c.seed % divisors.length] };
    });
    fc.assert(fc.property(arb, check), { numRuns: 80, seed: 0xb10c02 });
  });

  it.each(BLOCK_SIZES)(
    "block size %i (fast path when bs is a multiple of 4, else element-wise)",
    (bs) => {
      // Lengths that cross the 64-row query blocks and 64-key tiles, square and rectangular.
      const long = bs * Math.floor(200 / bs);
      const short = bs * Math.max(1, Math.floor(70 / bs));
      const shapes: [number, number][] = [
        [long, long],
        [short, long],
        [long, short],
      ];
      let seed = 100 * bs;
      for (const [Nq, Nk] of shapes) {
        for (const perHead of [false, true]) {
          for (const causal of [false, true]) {
            check({
              rank: 4,
              B: 1,
              H: 2,
              Hkv: perHead ? 1 : 2,
              bs,
              rows: Nq / bs,
              cols: Nk / bs,
              D: 7,
              Dv: 5,
              density: 0.45,
              perHead,
              emptyRows: 1,
              causal,
              scale: undefined,
              returnWeights: true,
              seed: seed++,
            });
          }
        }
      }
    },
  );

  it("with a query block of a single row (Nq = 64·n + 1, element-wise path)", () => {
    for (const [bs, rows, cols] of [
      [1, 65, 70],
      [3, 43, 20],
      [1, 129, 129],
    ]) {
      for (const causal of [false, true]) {
        check({
          rank: 3,
          B: 1,
          H: 2,
          Hkv: 1,
          bs,
          rows,
          cols,
          D: 9,
          Dv: 6,
          density: 0.5,
          perHead: true,
          emptyRows: 1,
          causal,
          scale: 0.4,
          returnWeights: true,
          seed: bs * 1000 + rows + (causal ? 1 : 0),
        });
      }
    }
  });
});

describe("blockSparseAttention edge layouts", () => {
  const r = rng(42);
  const q = randomTensor(r, [2, 2, 96, 12]);
  const k = randomTensor(r, [2, 2, 128, 12]);
  const v = randomTensor(r, [2, 2, 128, 10]);

  it.each([1, 2, 4, 16, 32])("an all-zero layout (bs %i) gives zero output and weights", (bs) => {
    const layout: Tensor<Uint8Array> = {
      data: new Uint8Array((96 / bs) * (128 / bs)),
      shape: [96 / bs, 128 / bs],
    };
    const res = blockSparseAttention(q, k, v, { layout, blockSize: bs, returnWeights: true });
    expect(res.output.shape).toEqual([2, 2, 96, 10]);
    expect(res.weights!.shape).toEqual([2, 2, 96, 128]);
    expect(res.output.data.every((x) => x === 0)).toBe(true);
    expect(res.weights!.data.every((x) => x === 0)).toBe(true);
  });

  it.each([1, 2, 4, 8, 16, 32])(
    "an all-ones layout (bs %i) equals dense scaledDotProductAttention",
    (bs) => {
      for (const causal of [false, true]) {
        const layout: Tensor<Uint8Array> = {
          data: new Uint8Array(2 * (96 / bs) * (128 / bs)).fill(1),
          shape: [2, 96 / bs, 128 / bs],
        };
        const res = blockSparseAttention(q, k, v, {
          layout,
          blockSize: bs,
          causal,
          returnWeights: true,
        });
        const dense = scaledDotProductAttention(q, k, v, { causal, returnWeights: true });
        const tight: Tolerance = { atol: 1e-6, rtol: 1e-5 };
        expectClose(res.output, dense.output, tight, `output (bs ${bs}, causal ${causal})`);
        expectClose(res.weights, dense.weights!, tight, `weights (bs ${bs}, causal ${causal})`);
      }
    },
  );

  it("an empty block row outputs bs zero rows with zero weights; the other rows are untouched", () => {
    const bs = 8;
    const layout = randomLayout(rng(5), [96 / bs, 128 / bs], 0.6);
    layout.data.fill(0, 3 * 16, 4 * 16); // block row 3 → query rows 24..31
    layout.data[0] = 1;
    const res = blockSparseAttention(q, k, v, { layout, blockSize: bs, returnWeights: true });
    for (let bh = 0; bh < 4; bh++) {
      for (let i = 0; i < 96; i++) {
        const out = res.output.data.subarray((bh * 96 + i) * 10, (bh * 96 + i + 1) * 10);
        const w = res.weights!.data.subarray((bh * 96 + i) * 128, (bh * 96 + i + 1) * 128);
        const sum = w.reduce((a, b) => a + b, 0);
        if (i >= 24 && i < 32) {
          expect(out.every((x) => x === 0)).toBe(true);
          expect(w.every((x) => x === 0)).toBe(true);
        } else if (layout.data.subarray((i >> 3) * 16, ((i >> 3) + 1) * 16).some((x) => x)) {
          expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
        }
      }
    }
    const want = referenceSdpa(q, k, v, { mask: expandLayout(layout, bs) });
    expectClose(res.output, want.output, TOL, "output");
    expectClose(res.weights, want.weights, TOL, "weights");
  });

  it("weights are exactly 0 outside the kept blocks (and causal band)", () => {
    const bs = 4;
    const layout = randomLayout(rng(6), [2, 24, 32], 0.3);
    for (const causal of [false, true]) {
      const res = blockSparseAttention(q, k, v, {
        layout,
        blockSize: bs,
        causal,
        returnWeights: true,
      });
      const offset = 128 - 96;
      const wrong: string[] = [];
      let keptSeen = 0;
      for (let b = 0; b < 2; b++)
        for (let h = 0; h < 2; h++)
          for (let i = 0; i < 96; i++)
            for (let j = 0; j < 128; j++) {
              const kept =
                layout.data[(h * 24 + (i >> 2)) * 32 + (j >> 2)] === 1 &&
                (!causal || j <= i + offset);
              const w = res.weights!.data[((b * 2 + h) * 96 + i) * 128 + j];
              if (kept) keptSeen++;
              else if (w !== 0) wrong.push(`[${b},${h},${i},${j}] = ${w}`);
            }
      expect(wrong.slice(0, 5)).toEqual([]);
      expect(keptSeen).toBeGreaterThan(1000);
    }
  });

  it("accepts a layout that lives in WASM memory (allocTensor uint8)", () => {
    const bs = 16;
    const host = randomLayout(rng(7), [6, 8], 0.5);
    const layout = allocTensor([6, 8], "uint8");
    try {
      layout.data.set(host.data);
      const res = blockSparseAttention(q, k, v, {
        layout: layout as Tensor<Uint8Array>,
        blockSize: bs,
        returnWeights: true,
      });
      const want = referenceSdpa(q, k, v, { mask: expandLayout(host, bs) });
      expectClose(res.output, want.output, TOL, "output");
      expectClose(res.weights, want.weights, TOL, "weights");
    } finally {
      layout.free();
    }
  });

  it("NaN and Infinity in keys/values of dropped blocks do not reach the output", () => {
    for (const bs of [4, 6, 16]) {
      const rows = Math.floor(96 / bs);
      const cols = Math.floor(128 / bs);
      const layout = randomLayout(rng(bs), [rows, cols], 1);
      // Key block 1 is dropped for every query block.
      for (let row = 0; row < rows; row++) layout.data[row * cols + 1] = 0;
      const qq = randomTensor(rng(11), [1, 2, rows * bs, 8]);
      const kk = randomTensor(rng(12), [1, 2, cols * bs, 8]);
      const vv = randomTensor(rng(13), [1, 2, cols * bs, 8]);
      const clean = blockSparseAttention(qq, kk, vv, {
        layout,
        blockSize: bs,
        returnWeights: true,
      });
      const poison = (t: Tensor): Tensor => {
        const data = t.data.slice();
        for (let h = 0; h < 2; h++)
          for (let j = bs; j < 2 * bs; j++)
            for (let x = 0; x < 8; x++)
              data[(h * cols * bs + j) * 8 + x] = [NaN, Infinity, -Infinity][(j + x) % 3];
        return { data, shape: t.shape };
      };
      const dirty = blockSparseAttention(qq, poison(kk), poison(vv), {
        layout,
        blockSize: bs,
        returnWeights: true,
      });
      expect(Array.from(dirty.output.data)).toEqual(Array.from(clean.output.data));
      expect(Array.from(dirty.weights!.data)).toEqual(Array.from(clean.weights!.data));
    }
  });
});

// ---- sparsePatterns ----

/** A layout as rows of "0"/"1" strings, for readable expectations. */
function rowsOf(t: Tensor<Uint8Array>): string[] {
  const [R, C] = t.shape;
  const out: string[] = [];
  for (let r = 0; r < R; r++) out.push(Array.from(t.data.subarray(r * C, (r + 1) * C)).join(""));
  return out;
}

function countRow(t: Tensor<Uint8Array>, r: number): number {
  const C = t.shape[1];
  let n = 0;
  for (let c = 0; c < C; c++) n += t.data[r * C + c];
  return n;
}

describe("sparsePatterns", () => {
  it("strided(6, { stride: 2 }) is causal: the previous 2 blocks and every 2nd block back", () => {
    const t = sparsePatterns.strided(6, { stride: 2 });
    expect(t.shape).toEqual([6, 6]);
    expect(t.data).toBeInstanceOf(Uint8Array);
    expect(rowsOf(t)).toEqual(["100000", "110000", "111000", "011100", "101110", "010111"]);
  });

  it("strided(5, { stride: 3, causal: false }) is symmetric", () => {
    expect(rowsOf(sparsePatterns.strided(5, { stride: 3, causal: false }))).toEqual([
      "11110",
      "11111",
      "11111",
      "11111",
      "01111",
    ]);
    expect(rowsOf(sparsePatterns.strided(1, { stride: 4 }))).toEqual(["1"]);
  });

  it("fixed(8, { stride: 4, summary: 1 }): own chunk plus the last block of each chunk, causal", () => {
    expect(rowsOf(sparsePatterns.fixed(8, { stride: 4, summary: 1 }))).toEqual([
      "10000000",
      "11000000",
      "11100000",
      "11110000",
      "00011000",
      "00011100",
      "00011110",
      "00011111",
    ]);
  });

  it("fixed(6, { stride: 3, summary: 2, causal: false })", () => {
    // Chunks {0,1,2}, {3,4,5}; summary blocks (c % 3 >= 1): 1, 2, 4, 5.
    expect(rowsOf(sparsePatterns.fixed(6, { stride: 3, summary: 2, causal: false }))).toEqual([
      "111011",
      "111011",
      "111011",
      "011111",
      "011111",
      "011111",
    ]);
    // summary defaults to 1
    expect(rowsOf(sparsePatterns.fixed(4, { stride: 2, causal: false }))).toEqual([
      "1101",
      "1101",
      "0111",
      "0111",
    ]);
  });

  it("longformer(6, { window: 1, globalBlocks: [0] }): a band of 1 plus global row and column 0", () => {
    expect(rowsOf(sparsePatterns.longformer(6, { window: 1, globalBlocks: [0] }))).toEqual([
      "111111",
      "111000",
      "111100",
      "101110",
      "100111",
      "100011",
    ]);
    expect(rowsOf(sparsePatterns.longformer(4, { window: 0 }))).toEqual([
      "1000",
      "0100",
      "0010",
      "0001",
    ]);
    expect(
      rowsOf(
        sparsePatterns.longformer(5, {
          window: 0,
          globalBlocks: Int32Array.from([1, 3]) as unknown as number[],
        }),
      ),
    ).toEqual(["11010", "11111", "01110", "11111", "01011"]);
  });

  it("bigbird is deterministic per seed and adds min(randomBlocks, free) blocks to window + globals", () => {
    for (const [n, window, globals, randomBlocks] of [
      [16, 1, [0], 2],
      [10, 0, [], 3],
      [12, 2, [0, 11], 1],
      [6, 1, [2], 10], // more random blocks than free ones: the row fills up
      [8, 0, [], 0],
    ] as [number, number, number[], number][]) {
      const base = sparsePatterns.longformer(n, { window, globalBlocks: globals });
      const distinct = new Set<string>();
      for (const seed of [0, 1, 2, 3, 12345]) {
        const options = { window, globalBlocks: globals, randomBlocks, seed };
        const a = sparsePatterns.bigbird(n, options);
        const b = sparsePatterns.bigbird(n, options);
        expect(a.shape).toEqual([n, n]);
        expect(Array.from(a.data)).toEqual(Array.from(b.data));
        for (let i = 0; i < n * n; i++) {
          expect(a.data[i] === 0 || a.data[i] === 1).toBe(true);
          if (base.data[i]) expect(a.data[i]).toBe(1);
        }
        for (let r = 0; r < n; r++) {
          const free = n - countRow(base, r);
          expect(countRow(a, r) - countRow(base, r)).toBe(Math.min(randomBlocks, free));
        }
        distinct.add(rowsOf(a).join("/"));
      }
      if (randomBlocks > 0 && n - 2 * window - 1 - globals.length > randomBlocks) {
        expect(distinct.size).toBeGreaterThan(1);
      }
    }
    // seed defaults to 0
    expect(Array.from(sparsePatterns.bigbird(12, { window: 1, randomBlocks: 2 }).data)).toEqual(
      Array.from(sparsePatterns.bigbird(12, { window: 1, randomBlocks: 2, seed: 0 }).data),
    );
  });

  it("every pattern's layout works as blockSparseAttention input and matches the reference", () => {
    const n = 12;
    const layouts: [string, Tensor<Uint8Array>][] = [
      ["strided", sparsePatterns.strided(n, { stride: 3 })],
      ["strided acausal", sparsePatterns.strided(n, { stride: 4, causal: false })],
      ["fixed", sparsePatterns.fixed(n, { stride: 4, summary: 1 })],
      ["fixed acausal", sparsePatterns.fixed(n, { stride: 3, summary: 2, causal: false })],
      ["longformer", sparsePatterns.longformer(n, { window: 1, globalBlocks: [0, 7] })],
      [
        "bigbird",
        sparsePatterns.bigbird(n, { window: 1, globalBlocks: [0], randomBlocks: 2, seed: 9 }),
      ],
    ];
    let seed = 1;
    for (const [name, layout] of layouts) {
      for (const bs of [4, 6, 16]) {
        for (const causal of [false, true]) {
          const r = rng(seed++);
          const N = n * bs;
          const q = randomTensor(r, [2, 4, N, 16]);
          const k = randomTensor(r, [2, 2, N, 16]);
          const v = randomTensor(r, [2, 2, N, 12]);
          const res = blockSparseAttention(q, k, v, {
            layout,
            blockSize: bs,
            causal,
            returnWeights: true,
          });
          const want = referenceSdpa(q, k, v, { mask: expandLayout(layout, bs), causal });
          expectClose(res.output, want.output, TOL, `${name} output (bs ${bs}, causal ${causal})`);
          expectClose(res.weights, want.weights, TOL, `${name} weights (bs ${bs})`);
        }
      }
    }
  });
});
