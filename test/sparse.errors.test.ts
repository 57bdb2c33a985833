// Validation of blockSparseAttention, sparsePatterns, hardAttention and attentionPooling: the
// AttentionError code of each kind of bad argument, a message naming the function and the argument,
// and, after every failure, a module that still computes correctly with no WASM memory kept.

import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  attentionPooling,
  blockSparseAttention,
  hardAttention,
  init,
  sparsePatterns,
  type AttentionErrorCode,
  type Tensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { expectClose, type Tolerance } from "./helpers/conformance";
import { randomTensor, rng } from "./helpers/random";
import { referenceSdpa } from "./reference";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };

let bytesBefore = 0;

beforeAll(async () => {
  await init();
  bytesBefore = kernels("t").workspace.bytesInUse;
});

const r = rng(21);
// A valid block-sparse / hard call: q [2,2,8,4], k [2,1,12,4], v [2,1,12,3]; block size 4.
const q = randomTensor(r, [2, 2, 8, 4]);
const k = randomTensor(r, [2, 1, 12, 4]);
const v = randomTensor(r, [2, 1, 12, 3]);
const layout: Tensor<Uint8Array> = { data: Uint8Array.from([1, 0, 1, 1, 1, 0]), shape: [2, 3] };
// A valid pooling call: h [2,5,4], A = 3.
const h = randomTensor(r, [2, 5, 4]);
const w = randomTensor(r, [3, 4]).data;
const b = randomTensor(r, [3]).data;
const context = randomTensor(r, [3]).data;

/** Anything, typed as whatever the call wants: the point is what the API does with wrong input. */
function bad<T>(value: unknown): T {
  return value as T;
}

/** The module still computes correctly: one call of each op, against the references. */
function expectStillWorks(): void {
  const mask = new Uint8Array(2 * 8 * 12);
  for (let hh = 0; hh < 2; hh++)
    for (let i = 0; i < 8; i++)
      for (let j = 0; j < 12; j++)
        mask[(hh * 8 + i) * 12 + j] = layout.data[(i >> 2) * 3 + (j >> 2)];
  const sparse = blockSparseAttention(q, k, v, { layout, blockSize: 4, returnWeights: true });
  const want = referenceSdpa(q, k, v, { mask: { data: mask, shape: [2, 8, 12] } });
  expectClose(sparse.output, want.output, TOL, "blockSparseAttention after the error");
  expectClose(sparse.weights, want.weights, TOL, "blockSparseAttention weights after the error");
  // topK = Nk keeps every key: plain attention.
  const hard = hardAttention(q, k, v, { topK: 12 });
  expectClose(hard.output, referenceSdpa(q, k, v).output, TOL, "hardAttention after the error");
  const pooled = attentionPooling(h, { w, b, context });
  expect(pooled.output.shape).toEqual([2, 4]);
  for (let bi = 0; bi < 2; bi++) {
    const sum = pooled.weights.data.subarray(bi * 5, bi * 5 + 5).reduce((x, y) => x + y, 0);
    expect(sum).toBeCloseTo(1, 5);
  }
  expect(kernels("t").workspace.bytesInUse).toBe(bytesBefore);
}

interface ErrorCase {
  name: string;
  code: AttentionErrorCode;
  call: () => unknown;
  /** Substrings the message must contain. */
  mentions: string[];
}

const bsa = blockSparseAttention;
const shape = (rows: number, cols: number, heads?: number): Tensor<Uint8Array> => {
  const s = heads === undefined ? [rows, cols] : [heads, rows, cols];
  return { data: new Uint8Array(s.reduce((x, y) => x * y, 1)).fill(1), shape: s };
};

const BLOCK_SPARSE: ErrorCase[] = [
  ...[0, -4, 2.5, NaN, Infinity].map((bs): ErrorCase => ({
    name: `blockSize ${bs}`,
    code: "BAD_OPTION",
    call: () => bsa(q, k, v, { layout, blockSize: bs }),
    mentions: ["blockSparseAttention", "blockSize"],
  })),
  {
    name: "blockSize as a string",
    code: "BAD_OPTION",
    call: () => bsa(q, k, v, { layout, blockSize: bad<number>("4") }),
    mentions: ["blockSize", "string"],
  },
  {
    name: "blockSize missing",
    code: "BAD_OPTION",
    call: () => bsa(q, k, v, bad({ layout })),
    mentions: ["blockSize"],
  },
  {
    name: "Nq not a multiple of blockSize",
    code: "SHAPE_MISMATCH",
    call: () => bsa(randomTensor(r, [2, 2, 6, 4]), k, v, { layout, blockSize: 4 }),
    mentions: ["Nq = 6", "blockSize 4"],
  },
  {
    name: "Nk not a multiple of blockSize",
    code: "SHAPE_MISMATCH",
    call: () =>
      bsa(q, randomTensor(r, [2, 1, 10, 4]), randomTensor(r, [2, 1, 10, 3]), {
        layout,
        blockSize: 4,
      }),
    mentions: ["Nk = 10", "blockSize 4"],
  },
  {
    name: "Nq and Nk multiples of 4 but not of blockSize 3 (Nq = 8)",
    code: "SHAPE_MISMATCH",
    call: () => bsa(q, k, v, { layout: shape(3, 4), blockSize: 3 }),
    mentions: ["Nq = 8", "blockSize 3"],
  },
  {
    name: "layout transposed [Nk/bs, Nq/bs]",
    code: "SHAPE_MISMATCH",
    call: () => bsa(q, k, v, { layout: shape(3, 2), blockSize: 4 }),
    mentions: ["layout", "[3,2]", "[2,3]"],
  },
  {
    name: "layout with too few block columns",
    code: "SHAPE_MISMATCH",
    call: () => bsa(q, k, v, { layout: shape(2, 2), blockSize: 4 }),
    mentions: ["layout", "[2,2]", "[2,3]"],
  },
  {
    name: "per-head layout with the wrong head count (Hkv instead of H)",
    code: "SHAPE_MISMATCH",
    call: () => bsa(q, k, v, { layout: shape(2, 3, 1), blockSize: 4 }),
    mentions: ["layout", "[1,2,3]", "[2,2,3]"],
  },
  {
    name: "layout of rank 4 [B,H,R,C]",
    code: "SHAPE_MISMATCH",
    call: () =>
      bsa(q, k, v, { layout: { data: new Uint8Array(24), shape: [2, 2, 2, 3] }, blockSize: 4 }),
    mentions: ["layout", "[2,2,2,3]"],
  },
  {
    name: "layout of rank 1",
    code: "SHAPE_MISMATCH",
    call: () => bsa(q, k, v, { layout: { data: new Uint8Array(6), shape: [6] }, blockSize: 4 }),
    mentions: ["layout", "[6]"],
  },
  {
    name: "layout data shorter than its shape",
    code: "SHAPE_MISMATCH",
    call: () => bsa(q, k, v, { layout: { data: new Uint8Array(5), shape: [2, 3] }, blockSize: 4 }),
    mentions: ["layout", "5", "[2,3]"],
  },
  {
    name: "layout as float32",
    code: "BAD_DTYPE",
    call: () =>
      bsa(q, k, v, {
        layout: bad<Tensor<Uint8Array>>({ data: new Float32Array(6).fill(1), shape: [2, 3] }),
        blockSize: 4,
      }),
    mentions: ["layout", "Float32Array", "Uint8Array"],
  },
  {
    name: "layout as Int32Array",
    code: "BAD_DTYPE",
    call: () =>
      bsa(q, k, v, {
        layout: bad<Tensor<Uint8Array>>({ data: new Int32Array(6).fill(1), shape: [2, 3] }),
        blockSize: 4,
      }),
    mentions: ["layout", "Int32Array"],
  },
  {
    name: "layout missing",
    code: "BAD_OPTION",
    call: () => bsa(q, k, v, bad({ blockSize: 4 })),
    mentions: ["layout", "missing"],
  },
  {
    name: "layout as a bare Uint8Array (not a tensor)",
    code: "BAD_OPTION",
    call: () => bsa(q, k, v, { layout: bad(new Uint8Array(6)), blockSize: 4 }),
    mentions: ["layout"],
  },
  {
    name: "options missing",
    code: "BAD_OPTION",
    call: () => bsa(q, k, v, bad(undefined)),
    mentions: ["options"],
  },
  {
    name: "scale not finite",
    code: "BAD_OPTION",
    call: () => bsa(q, k, v, { layout, blockSize: 4, scale: NaN }),
    mentions: ["scale"],
  },
];

const HARD: ErrorCase[] = [
  ...[0, -1, 1.5, NaN, Infinity, -Infinity].map((topK): ErrorCase => ({
    name: `topK ${topK}`,
    code: "BAD_OPTION",
    call: () => hardAttention(q, k, v, { topK }),
    mentions: ["hardAttention", "topK"],
  })),
  {
    name: "topK as a string",
    code: "BAD_OPTION",
    call: () => hardAttention(q, k, v, { topK: bad<number>("2") }),
    mentions: ["topK", "string"],
  },
  {
    name: "topK missing",
    code: "BAD_OPTION",
    call: () => hardAttention(q, k, v, bad({ returnWeights: true })),
    mentions: ["topK"],
  },
  {
    name: "options missing",
    code: "BAD_OPTION",
    call: () => hardAttention(q, k, v, bad(undefined)),
    mentions: ["options"],
  },
  {
    name: "mask whose last dim is not Nk",
    code: "SHAPE_MISMATCH",
    call: () =>
      hardAttention(q, k, v, { topK: 2, mask: { data: new Uint8Array(8 * 11), shape: [8, 11] } }),
    mentions: ["mask", "[8,11]"],
  },
  {
    name: "mask whose batch does not broadcast",
    code: "SHAPE_MISMATCH",
    call: () =>
      hardAttention(q, k, v, {
        topK: 2,
        mask: { data: new Float32Array(36), shape: [3, 1, 1, 12] },
      }),
    mentions: ["mask", "[3,1,1,12]"],
  },
  {
    name: "mask of rank 5",
    code: "SHAPE_MISMATCH",
    call: () =>
      hardAttention(q, k, v, {
        topK: 2,
        mask: { data: new Uint8Array(12), shape: [1, 1, 1, 1, 12] },
      }),
    mentions: ["mask", "[1,1,1,1,12]"],
  },
  {
    name: "mask as Int32Array",
    code: "BAD_DTYPE",
    call: () =>
      hardAttention(q, k, v, { topK: 2, mask: bad({ data: new Int32Array(12), shape: [12] }) }),
    mentions: ["mask", "Int32Array"],
  },
  {
    name: "k head count not dividing H",
    code: "SHAPE_MISMATCH",
    call: () =>
      hardAttention(
        randomTensor(r, [2, 3, 8, 4]),
        randomTensor(r, [2, 2, 12, 4]),
        randomTensor(r, [2, 2, 12, 3]),
        { topK: 2 },
      ),
    mentions: ["k", "[2,2,12,4]"],
  },
];

const POOLING: ErrorCase[] = [
  {
    name: "w with a length that is not a multiple of D",
    code: "SHAPE_MISMATCH",
    call: () => attentionPooling(h, { w: new Float32Array(13), b, context }),
    mentions: ["attentionPooling", "w", "13"],
  },
  {
    name: "w tensor [A, D + 1]",
    code: "SHAPE_MISMATCH",
    call: () => attentionPooling(h, { w: randomTensor(r, [3, 5]), b, context }),
    mentions: ["w", "[3,5]"],
  },
  {
    name: "w tensor of rank 3",
    code: "SHAPE_MISMATCH",
    call: () => attentionPooling(h, { w: randomTensor(r, [1, 3, 4]), b, context }),
    mentions: ["w", "[1,3,4]"],
  },
  {
    name: "b one element too long",
    code: "SHAPE_MISMATCH",
    call: () => attentionPooling(h, { w, b: new Float32Array(4), context }),
    mentions: ["b", "[4]", "[3]"],
  },
  {
    name: "context one element too short",
    code: "SHAPE_MISMATCH",
    call: () => attentionPooling(h, { w, b, context: new Float32Array(2) }),
    mentions: ["context", "[2]", "[3]"],
  },
  {
    name: "w rows (A = 4) not matching b and context (3)",
    code: "SHAPE_MISMATCH",
    call: () => attentionPooling(h, { w: new Float32Array(16), b, context }),
    mentions: ["b", "[3]", "[4]"],
  },
  {
    name: "w missing",
    code: "BAD_OPTION",
    call: () => attentionPooling(h, bad({ b, context })),
    mentions: ["w", "missing"],
  },
  {
    name: "b as number[]",
    code: "BAD_DTYPE",
    call: () => attentionPooling(h, { w, b: bad([0, 0, 0]), context }),
    mentions: ["b", "Float32Array"],
  },
  {
    name: "mask [B, N + 1]",
    code: "SHAPE_MISMATCH",
    call: () =>
      attentionPooling(h, { w, b, context }, { mask: { data: new Uint8Array(12), shape: [2, 6] } }),
    mentions: ["mask", "[2,6]", "[2,5]"],
  },
  {
    name: "mask [N, B] (transposed)",
    code: "SHAPE_MISMATCH",
    call: () =>
      attentionPooling(h, { w, b, context }, { mask: { data: new Uint8Array(10), shape: [5, 2] } }),
    mentions: ["mask", "[5,2]"],
  },
  {
    name: "mask [B, 1, N] (rank 3)",
    code: "SHAPE_MISMATCH",
    call: () =>
      attentionPooling(
        h,
        { w, b, context },
        { mask: { data: new Uint8Array(10), shape: [2, 1, 5] } },
      ),
    mentions: ["mask", "[2,1,5]"],
  },
  {
    name: "mask [N - 1]",
    code: "SHAPE_MISMATCH",
    call: () =>
      attentionPooling(h, { w, b, context }, { mask: { data: new Uint8Array(4), shape: [4] } }),
    mentions: ["mask", "[4]"],
  },
  {
    name: "mask as float32",
    code: "BAD_DTYPE",
    call: () =>
      attentionPooling(
        h,
        { w, b, context },
        { mask: bad({ data: new Float32Array(10), shape: [2, 5] }) },
      ),
    mentions: ["mask", "Float32Array"],
  },
  {
    name: "h of rank 4",
    code: "SHAPE_MISMATCH",
    call: () => attentionPooling(randomTensor(r, [1, 2, 5, 4]), { w, b, context }),
    mentions: ["h", "[1,2,5,4]"],
  },
  {
    name: "params missing",
    code: "BAD_OPTION",
    call: () => attentionPooling(h, bad(undefined)),
    mentions: ["params"],
  },
];

const PATTERNS: ErrorCase[] = [
  ...[0, -2, 2.5, NaN].map((n): ErrorCase => ({
    name: `strided numBlocks ${n}`,
    code: "BAD_OPTION",
    call: () => sparsePatterns.strided(n, { stride: 2 }),
    mentions: ["sparsePatterns.strided", "numBlocks"],
  })),
  {
    name: "strided stride 0",
    code: "BAD_OPTION",
    call: () => sparsePatterns.strided(4, { stride: 0 }),
    mentions: ["strided", "stride"],
  },
  {
    name: "strided without options",
    code: "BAD_OPTION",
    call: () => sparsePatterns.strided(4, bad(undefined)),
    mentions: ["strided", "stride"],
  },
  {
    name: "fixed stride 1.5",
    code: "BAD_OPTION",
    call: () => sparsePatterns.fixed(4, { stride: 1.5 }),
    mentions: ["fixed", "stride"],
  },
  {
    name: "fixed summary 0",
    code: "BAD_OPTION",
    call: () => sparsePatterns.fixed(4, { stride: 2, summary: 0 }),
    mentions: ["fixed", "summary"],
  },
  {
    name: "fixed numBlocks 0",
    code: "BAD_OPTION",
    call: () => sparsePatterns.fixed(0, { stride: 2 }),
    mentions: ["fixed", "numBlocks"],
  },
  {
    name: "longformer window -1",
    code: "BAD_OPTION",
    call: () => sparsePatterns.longformer(4, { window: -1 }),
    mentions: ["longformer", "window"],
  },
  {
    name: "longformer window missing",
    code: "BAD_OPTION",
    call: () => sparsePatterns.longformer(4, bad({ globalBlocks: [0] })),
    mentions: ["longformer", "window"],
  },
  {
    name: "longformer global block out of range",
    code: "BAD_OPTION",
    call: () => sparsePatterns.longformer(4, { window: 1, globalBlocks: [4] }),
    mentions: ["longformer", "4"],
  },
  {
    name: "longformer negative global block",
    code: "BAD_OPTION",
    call: () => sparsePatterns.longformer(4, { window: 1, globalBlocks: [-1] }),
    mentions: ["longformer", "global"],
  },
  {
    name: "longformer fractional global block",
    code: "BAD_OPTION",
    call: () => sparsePatterns.longformer(4, { window: 1, globalBlocks: [1.5] }),
    mentions: ["longformer", "global"],
  },
  {
    name: "longformer globalBlocks not an array",
    code: "BAD_OPTION",
    call: () => sparsePatterns.longformer(4, { window: 1, globalBlocks: bad(2) }),
    mentions: ["longformer", "globalBlocks"],
  },
  {
    name: "bigbird randomBlocks missing",
    code: "BAD_OPTION",
    call: () => sparsePatterns.bigbird(8, bad({ window: 1 })),
    mentions: ["bigbird", "randomBlocks"],
  },
  {
    name: "bigbird randomBlocks -1",
    code: "BAD_OPTION",
    call: () => sparsePatterns.bigbird(8, { window: 1, randomBlocks: -1 }),
    mentions: ["bigbird", "randomBlocks"],
  },
  {
    name: "bigbird seed 1.5",
    code: "BAD_OPTION",
    call: () => sparsePatterns.bigbird(8, { window: 1, randomBlocks: 1, seed: 1.5 }),
    mentions: ["bigbird", "seed"],
  },
  {
    name: "bigbird global block out of range",
    code: "BAD_OPTION",
    call: () => sparsePatterns.bigbird(8, { window: 1, randomBlocks: 1, globalBlocks: [8] }),
    mentions: ["bigbird", "8"],
  },
  {
    name: "bigbird numBlocks 0",
    code: "BAD_OPTION",
    call: () => sparsePatterns.bigbird(0, { window: 1, randomBlocks: 1 }),
    mentions: ["bigbird", "numBlocks"],
  },
];

function runCases(cases: ErrorCase[]): void {
  it.each(cases.map((c): [string, ErrorCase] => [c.name, c]))("%s", (_name, c) => {
    let err: unknown;
    try {
      c.call();
    } catch (e) {
      err = e;
    }
    expect(err, "the call must throw").toBeInstanceOf(AttentionError);
    expect(err).toBeInstanceOf(Error);
    const e = err as AttentionError;
    expect(e.name).toBe("AttentionError");
    expect(e.code, e.message).toBe(c.code);
    for (const m of c.mentions) expect(e.message).toContain(m);
    expectStillWorks();
  });
}

describe("blockSparseAttention errors", () => runCases(BLOCK_SPARSE));
describe("hardAttention errors", () => runCases(HARD));
describe("attentionPooling errors", () => runCases(POOLING));
describe("sparsePatterns errors", () => runCases(PATTERNS));

describe("valid edge arguments are accepted", () => {
  it("blockSize equal to Nq and Nk (one block), topK far above Nk, N = 1 pooling", () => {
    const one = bsa(q, randomTensor(r, [2, 1, 8, 4]), randomTensor(r, [2, 1, 8, 3]), {
      layout: shape(1, 1),
      blockSize: 8,
    });
    expect(one.output.shape).toEqual([2, 2, 8, 3]);
    expect(hardAttention(q, k, v, { topK: 1000 }).output.shape).toEqual([2, 2, 8, 3]);
    expect(attentionPooling(randomTensor(r, [1, 4]), { w, b, context }).output.shape).toEqual([4]);
    expect(sparsePatterns.longformer(3, { window: 5 }).data.every((x) => x === 1)).toBe(true);
    expect(sparsePatterns.bigbird(3, { window: 0, randomBlocks: 0 }).data).toEqual(
      Uint8Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]),
    );
    expectStillWorks();
  });
});
