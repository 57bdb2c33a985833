// linear(x, w, b) = x·Wᵀ + b (PyTorch nn.Linear layout) against the float64 reference of
// test/reference-mha.ts on random sizes: M = 1 and rows not a multiple of the 4-row micro-tile, in/out
// features not multiples of the 8-column panel, depths beyond one 256-deep block, x of rank 1–3, w
// bare or as a Tensor; then its validation (AttentionError before WASM memory is touched).

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  allocTensor,
  init,
  linear,
  type AttentionErrorCode,
  type Tensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { closeProblem, expectClose, type Tolerance } from "./helpers/conformance";
import { product, randomTensor, rng, uniform } from "./helpers/random";
import { referenceLinear } from "./reference-mha";

beforeAll(async () => {
  await init();
});

/** The brief's tolerance: relative ~1e-5 scaled by sqrt(in). */
function tolerance(K: number): Tolerance {
  return { atol: 1e-5 * Math.sqrt(Math.max(K, 1)), rtol: 1e-4 };
}

interface LinearCase {
  rank: 1 | 2 | 3;
  /** Leading dims of x (empty for rank 1). */
  lead: number[];
  K: number;
  N: number;
  bias: boolean;
  wAsTensor: boolean;
  seed: number;
}

function randomArray(seed: number, n: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => uniform(r, lo, hi));
}

function check(c: LinearCase): void {
  const r = rng(c.seed);
  const x = randomTensor(r, [...c.lead, c.K]);
  const wData = randomTensor(r, [c.N, c.K]).data;
  const b = c.bias ? randomTensor(r, [c.N], -2, 2).data : undefined;
  const xCopy = x.data.slice();
  const wCopy = wData.slice();
  const w: Float32Array | Tensor = c.wAsTensor ? { data: wData, shape: [c.N, c.K] } : wData;
  const y = linear(x, w, b);
  const want = referenceLinear(x, wData, c.N, b);
  const problem = closeProblem(y, want, tolerance(c.K));
  if (problem !== null) throw new Error(`${problem}\ncase: ${JSON.stringify(c)}`);
  if (!(y.data instanceof Float32Array)) throw new Error("output is not a Float32Array");
  if (y.data.buffer === kernels("test").exports.memory.buffer) {
    throw new Error("output is a view of WASM memory");
  }
  // Inputs are left alone.
  if (x.data.some((v, i) => !Object.is(v, xCopy[i])) || wData.some((v, i) => v !== wCopy[i])) {
    throw new Error(`linear modified its inputs\ncase: ${JSON.stringify(c)}`);
  }
}

/** Rows: 1, small, around the 4-row micro-tile and the 96-row block, or anything up to 40. */
const rowsArb = fc.oneof(
  fc.constantFrom(1, 2, 3, 4, 5, 7, 9, 13),
  fc.integer({ min: 1, max: 40 }),
  fc.constantFrom(95, 96, 97),
);
/** Features 1..300: mostly small, the 8-panel edges, and depths beyond one 256-deep block. */
const featuresArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 40 }), weight: 4 },
  { arbitrary: fc.constantFrom(1, 7, 8, 9, 15, 16, 17, 255, 256, 257), weight: 2 },
  { arbitrary: fc.integer({ min: 41, max: 300 }), weight: 2 },
);

const caseArb: fc.Arbitrary<LinearCase> = fc
  .record({
    rank: fc.constantFrom(1 as const, 2 as const, 3 as const),
    M: rowsArb,
    split: fc.integer({ min: 1, max: 3 }),
    K: featuresArb,
    N: featuresArb,
    bias: fc.boolean(),
    wAsTensor: fc.boolean(),
    seed: fc.integer({ min: 0, max: 0x7fffffff }),
  })
  .map(({ M, split, ...c }): LinearCase => {
    const lead = c.rank === 1 ? [] : c.rank === 2 ? [M] : [split, M];
    // Keep the float64 reference cheap: at most ~3M multiply-adds.
    const maxRows = Math.max(1, Math.floor(3_000_000 / (c.K * c.N)));
    if (product(lead) <= maxRows) return { ...c, lead };
    return { ...c, lead: c.rank === 2 ? [maxRows] : [1, maxRows] };
  });

describe("linear matches the float64 reference", () => {
  it("on random sizes (rank 1/2/3 x, M incl. 1, in/out 1..300, bias on/off, w bare or Tensor)", () => {
    fc.assert(fc.property(caseArb, check), { numRuns: 400, seed: 0x11ea01 });
  });

  it("with depths split into several 256-deep blocks", () => {
    const deep = caseArb.map((c) => ({ ...c, K: 257 + (c.seed % 44) }));
    fc.assert(fc.property(deep, check), { numRuns: 40, seed: 0x11ea02 });
  });

  it.each([
    [1, 1, 1],
    [1, 300, 1],
    [1, 1, 300],
    [5, 256, 8],
    [4, 257, 9],
    [97, 3, 17],
    [3, 512, 33],
    [2, 513, 7],
  ])("M = %i, in = %i, out = %i (with and without bias)", (M, K, N) => {
    for (const bias of [false, true]) {
      check({ rank: 2, lead: [M], K, N, bias, wAsTensor: false, seed: M * 7919 + K * 31 + N });
    }
  });

  it("is exact for the identity, for zero weights (y = b) and for one-hot rows", () => {
    const r = rng(3);
    const K = 37;
    const x = randomTensor(r, [2, 5, K]);
    const eye = new Float32Array(K * K);
    for (let i = 0; i < K; i++) eye[i * K + i] = 1;
    expect(Array.from(linear(x, eye).data)).toEqual(Array.from(x.data));
    const b = randomArray(9, 11);
    const y = linear(x, new Float32Array(11 * K), b);
    expect(y.shape).toEqual([2, 5, 11]);
    for (let row = 0; row < 10; row++) {
      expect(Array.from(y.data.subarray(row * 11, (row + 1) * 11))).toEqual(Array.from(b));
    }
    // A one-hot x picks one column of W (plus bias): y[o] = W[o, k] + b[o].
    const w = randomArray(10, 11 * K);
    const hot = { data: new Float32Array(K), shape: [K] };
    hot.data[4] = 1;
    const picked = linear(hot, { data: w, shape: [11, K] }, b);
    expect(picked.shape).toEqual([11]);
    for (let o = 0; o < 11; o++) expect(picked.data[o]).toBe(Math.fround(w[o * K + 4] + b[o]));
  });

  it("reads WASM-resident x and w (allocTensor) in place", () => {
    const r = rng(4);
    const xs = allocTensor([6, 70]);
    const ws = allocTensor([19, 70]);
    try {
      const plainX = randomTensor(r, [6, 70]);
      const plainW = randomTensor(r, [19, 70]);
      xs.data.set(plainX.data);
      ws.data.set(plainW.data);
      const b = randomArray(5, 19);
      const y = linear(xs, ws, b);
      expectClose(y, referenceLinear(plainX, plainW.data, 19, b), tolerance(70), "y");
      expect(y.data.buffer).not.toBe(kernels("test").exports.memory.buffer);
    } finally {
      xs.free();
      ws.free();
    }
  });

  it("leaves WASM memory as it found it", () => {
    const { workspace } = kernels("test");
    const r = rng(6);
    const x = randomTensor(r, [33, 300]);
    const w = randomTensor(r, [45, 300]);
    linear(x, w); // warm up: memory may grow once
    const inUse = workspace.bytesInUse;
    const bytes = kernels("test").exports.memory.buffer.byteLength;
    for (let i = 0; i < 20; i++) linear(x, w, randomArray(i, 45));
    expect(workspace.bytesInUse).toBe(inUse);
    expect(kernels("test").exports.memory.buffer.byteLength).toBe(bytes);
  });
});

// ---- Validation ----

const vr = rng(77);
const x0 = randomTensor(vr, [3, 4, 10]);
const w0 = randomTensor(vr, [6, 10]);
const b0 = randomTensor(vr, [6]).data;

function bad<T>(value: unknown): T {
  return value as T;
}

/** linear still computes correctly. */
function expectStillWorks(): void {
  expectClose(linear(x0, w0.data, b0), referenceLinear(x0, w0.data, 6, b0), tolerance(10), "y");
  expectClose(linear(x0, w0), referenceLinear(x0, w0.data, 6), tolerance(10), "y (no bias)");
}

const ERRORS: Array<[string, AttentionErrorCode, () => unknown, string[]]> = [
  [
    "w length not a multiple of in",
    "SHAPE_MISMATCH",
    () => linear(x0, new Float32Array(61)),
    ["w", "61", "10"],
  ],
  ["w shorter than one row", "SHAPE_MISMATCH", () => linear(x0, new Float32Array(7)), ["w", "7"]],
  [
    "w Tensor [out, in+1]",
    "SHAPE_MISMATCH",
    () => linear(x0, randomTensor(vr, [6, 11])),
    ["w", "[6,11]"],
  ],
  [
    "w Tensor [in, out] (transposed)",
    "SHAPE_MISMATCH",
    () => linear(x0, randomTensor(vr, [10, 6])),
    ["w", "[10,6]"],
  ],
  [
    "w Tensor of rank 1",
    "SHAPE_MISMATCH",
    () => linear(x0, { data: new Float32Array(60), shape: [60] }),
    ["w", "[60]"],
  ],
  [
    "w Tensor of rank 3",
    "SHAPE_MISMATCH",
    () => linear(x0, randomTensor(vr, [1, 6, 10])),
    ["w", "[1,6,10]"],
  ],
  [
    "w Tensor whose data length differs from its shape",
    "SHAPE_MISMATCH",
    () => linear(x0, { data: new Float32Array(59), shape: [6, 10] }),
    ["w", "59"],
  ],
  [
    "w Tensor with Float64Array data",
    "BAD_DTYPE",
    () => linear(x0, bad<Tensor>({ data: new Float64Array(60), shape: [6, 10] })),
    ["w", "Float64Array"],
  ],
  ["b too short", "SHAPE_MISMATCH", () => linear(x0, w0, new Float32Array(5)), ["b", "5", "6"]],
  ["b too long", "SHAPE_MISMATCH", () => linear(x0, w0, new Float32Array(7)), ["b", "7", "6"]],
  [
    "b a Float64Array",
    "BAD_DTYPE",
    () => linear(x0, w0, bad<Float32Array>(new Float64Array(6))),
    ["b", "Float64Array"],
  ],
  ["b a number[]", "BAD_DTYPE", () => linear(x0, w0, bad<Float32Array>([1, 2, 3, 4, 5, 6])), ["b"]],
  [
    "b a Tensor",
    "BAD_DTYPE",
    () => linear(x0, w0, bad<Float32Array>({ data: new Float32Array(6), shape: [6] })),
    ["b"],
  ],
  [
    "x with Float64Array data",
    "BAD_DTYPE",
    () => linear(bad<Tensor>({ data: new Float64Array(120), shape: [3, 4, 10] }), w0),
    ["x", "Float64Array"],
  ],
  [
    "x with Uint8Array data",
    "BAD_DTYPE",
    () => linear(bad<Tensor>({ data: new Uint8Array(120), shape: [3, 4, 10] }), w0),
    ["x", "Uint8Array"],
  ],
  [
    "x data length differs from its shape",
    "SHAPE_MISMATCH",
    () => linear({ data: new Float32Array(119), shape: [3, 4, 10] }, w0),
    ["x", "119"],
  ],
  [
    "x of rank 0",
    "SHAPE_MISMATCH",
    () => linear({ data: new Float32Array(1), shape: [] }, w0),
    ["x"],
  ],
  [
    "x whose last dim is not w's in",
    "SHAPE_MISMATCH",
    () => linear(randomTensor(vr, [4, 9]), w0),
    ["w", "[6,10]"],
  ],
];

describe("linear validation", () => {
  it.each(ERRORS)("%s → %s", (_name, code, call, mentions) => {
    const { workspace, exports } = kernels("test");
    expectStillWorks(); // warm: memory has grown for this size already
    const inUse = workspace.bytesInUse;
    const bytes = exports.memory.buffer.byteLength;
    let err: unknown;
    try {
      call();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AttentionError);
    const e = err as AttentionError;
    expect(e.code, e.message).toBe(code);
    expect(e.message).toContain("linear");
    for (const m of mentions) expect(e.message).toContain(m);
    expect(workspace.bytesInUse).toBe(inUse);
    expect(exports.memory.buffer.byteLength).toBe(bytes);
    expectStillWorks();
    expect(workspace.bytesInUse).toBe(inUse);
  });

  it("a bare Float64Array as w is refused with an AttentionError", () => {
    const { workspace } = kernels("test");
    const inUse = workspace.bytesInUse;
    let err: unknown;
    try {
      linear(x0, bad<Float32Array>(new Float64Array(60)));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AttentionError);
    expect(["BAD_DTYPE", "BAD_OPTION"]).toContain((err as AttentionError).code);
    expect((err as AttentionError).message).toContain("Float64Array");
    expect(workspace.bytesInUse).toBe(inUse);
    expectStillWorks();
  });
});
