// Specific behaviours of scaledDotProductAttention, softmax, alibiSlopes and allocTensor that API.md
// promises: single positions, fully masked rows, non-finite values in masked-out keys, `out`,
// WASM-resident tensors, softmax's notion of "masked", the ALiBi slope rule, weights and lse.

import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  alibiSlopes,
  allocTensor,
  init,
  scaledDotProductAttention,
  softmax,
  type ScaledDotProductAttentionOptions,
  type Tensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { expectClose, type TensorLike, type Tolerance } from "./helpers/conformance";
import {
  cloneTensor,
  randomAdditiveMask,
  randomBoolMask,
  randomTensor,
  rng,
  type Rng,
} from "./helpers/random";
import { referenceSdpa, referenceSoftmax, type RefSdpaOptions } from "./reference";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };
const LSE_TOL: Tolerance = { atol: 1e-4, rtol: 0 };
const EXACT: Tolerance = { atol: 0, rtol: 0 };

beforeAll(async () => {
  await init();
});

/** Runs the kernel with weights and lse, and the reference with the same options. */
function both(q: Tensor, k: Tensor, v: Tensor, options: ScaledDotProductAttentionOptions = {}) {
  const got = scaledDotProductAttention(q, k, v, {
    ...options,
    returnWeights: true,
    returnLse: true,
  });
  const { returnWeights: _w, returnLse: _l, out: _o, dropout: _d, ...rest } = options;
  const refOptions: RefSdpaOptions = {
    ...rest,
    globalTokens: rest.globalTokens ? Array.from(rest.globalTokens) : undefined,
  };
  const want = referenceSdpa(q, k, v, refOptions);
  return { got, want };
}

function expectMatchesReference(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: ScaledDotProductAttentionOptions = {},
): void {
  const { got, want } = both(q, k, v, options);
  expectClose(got.output, want.output, TOL, "output");
  expectClose(got.weights, want.weights, TOL, "weights");
  expectClose(got.lse, want.lse, LSE_TOL, "lse");
}

function hasNaN(data: ArrayLike<number>): boolean {
  for (let i = 0; i < data.length; i++) if (Number.isNaN(data[i])) return true;
  return false;
}

/** Rows (flat row index over all dims but the last) of a [..., N, C] result. */
function rowOf(t: TensorLike, row: number): number[] {
  const c = t.shape[t.shape.length - 1];
  return Array.from(t.data).slice(row * c, (row + 1) * c);
}

describe("single positions", () => {
  it("Nq = Nk = 1: the one key gets weight 1, the output is its value, lse its score", () => {
    const q = { data: new Float32Array([0.5, -1, 2]), shape: [1, 3] };
    const k = { data: new Float32Array([1, 1, 1]), shape: [1, 3] };
    const v = { data: new Float32Array([3, -4]), shape: [1, 2] };
    const r = scaledDotProductAttention(q, k, v, { returnWeights: true, returnLse: true });
    expect(r.output.shape).toEqual([1, 2]);
    expect(Array.from(r.output.data)).toEqual([3, -4]);
    expect(Array.from(r.weights!.data)).toEqual([1]);
    expect(r.lse!.shape).toEqual([1]);
    expect(r.lse!.data[0]).toBeCloseTo(1.5 / Math.sqrt(3), 5);
  });

  it("Nq = 1 against many keys (a decode step), with and without causal", () => {
    const r = rng(11);
    const q = randomTensor(r, [2, 3, 1, 16]);
    const k = randomTensor(r, [2, 3, 37, 16]);
    const v = randomTensor(r, [2, 3, 37, 12]);
    expectMatchesReference(q, k, v);
    expectMatchesReference(q, k, v, { causal: true });
    expectMatchesReference(q, k, v, { causal: true, align: "upper-left" });
  });

  it("Nk = 1: every query row outputs the one value", () => {
    const r = rng(12);
    const q = randomTensor(r, [4, 9, 7]);
    const k = randomTensor(r, [4, 1, 7]);
    const v = randomTensor(r, [4, 1, 5]);
    const { output } = scaledDotProductAttention(q, k, v);
    expect(output.shape).toEqual([4, 9, 5]);
    for (let h = 0; h < 4; h++) {
      for (let i = 0; i < 9; i++) {
        const row = rowOf(output, h * 9 + i);
        row.forEach((x, c) => expect(x).toBeCloseTo(v.data[h * 5 + c], 6));
      }
    }
  });

  it("D = 1 and Dv = 1", () => {
    const r = rng(13);
    expectMatchesReference(
      randomTensor(r, [5, 1]),
      randomTensor(r, [6, 1]),
      randomTensor(r, [6, 1]),
    );
  });

  it("outputs keep the rank of q: [N,D], [H,N,D] and [B,H,N,D]", () => {
    const r = rng(14);
    for (const lead of [[], [3], [2, 3]]) {
      const q = randomTensor(r, [...lead, 5, 4]);
      const k = randomTensor(r, [...lead, 6, 4]);
      const v = randomTensor(r, [...lead, 6, 7]);
      const res = scaledDotProductAttention(q, k, v, { returnWeights: true, returnLse: true });
      expect(res.output.shape).toEqual([...lead, 5, 7]);
      expect(res.weights!.shape).toEqual([...lead, 5, 6]);
      expect(res.lse!.shape).toEqual([...lead, 5]);
    }
  });

  it("reads inputs that are views into larger buffers (byteOffset != 0)", () => {
    const r = rng(16);
    const pool = randomTensor(r, [1000]).data;
    const q = { data: pool.subarray(3, 3 + 2 * 5 * 6), shape: [2, 5, 6] };
    const k = { data: pool.subarray(101, 101 + 2 * 7 * 6), shape: [2, 7, 6] };
    const v = { data: pool.subarray(777, 777 + 2 * 7 * 3), shape: [2, 7, 3] };
    const mask = { data: new Uint8Array(64).fill(1).subarray(9, 16), shape: [7] };
    expectMatchesReference(q, k, v, { mask, causal: true });
  });

  it("returns neither weights nor lse unless asked", () => {
    const r = rng(15);
    const t = randomTensor(r, [3, 4]);
    const res = scaledDotProductAttention(t, t, t);
    expect(res.weights).toBeUndefined();
    expect(res.lse).toBeUndefined();
  });
});

describe("fully masked rows", () => {
  /** Asserts zero output, zero weights and lse -Infinity on `rows`, and no NaN anywhere. */
  function expectEmptyRows(
    res: ReturnType<typeof scaledDotProductAttention>,
    rows: number[],
  ): void {
    expect(hasNaN(res.output.data)).toBe(false);
    expect(hasNaN(res.weights!.data)).toBe(false);
    expect(hasNaN(res.lse!.data)).toBe(false);
    for (const row of rows) {
      expect(rowOf(res.output, row).every((x) => x === 0)).toBe(true);
      expect(rowOf(res.weights!, row).every((x) => x === 0)).toBe(true);
      expect(res.lse!.data[row]).toBe(-Infinity);
    }
  }

  const r = rng(21);
  const q = randomTensor(r, [2, 2, 6, 8]);
  const k = randomTensor(r, [2, 2, 9, 8]);
  const v = randomTensor(r, [2, 2, 9, 5]);

  it("by a boolean mask: zero output, zero weights, lse -Infinity, never NaN", () => {
    const mask = randomBoolMask(rng(22), [6, 9], 0.7);
    mask.data.fill(0, 2 * 9, 3 * 9); // query row 2
    mask.data.fill(0, 5 * 9, 6 * 9); // query row 5
    const { got } = both(q, k, v, { mask });
    // Rows 2 and 5 of every (b, h).
    expectEmptyRows(got, [2, 5, 8, 11, 14, 17, 20, 23]);
    expectMatchesReference(q, k, v, { mask });
  });

  it("by an additive mask of -Infinity", () => {
    const mask = randomAdditiveMask(rng(23), [2, 1, 6, 9], 0.7);
    mask.data.fill(-Infinity, 0, 9); // b 0, query row 0
    mask.data.fill(-Infinity, 6 * 9 + 4 * 9, 6 * 9 + 5 * 9); // b 1, query row 4
    const { got } = both(q, k, v, { mask });
    expectEmptyRows(got, [0, 6, 12 + 4, 18 + 4]);
    expectMatchesReference(q, k, v, { mask });
  });

  it("by causal lower-right with Nq > Nk: the first Nq − Nk rows see no key", () => {
    const r2 = rng(24);
    const qt = randomTensor(r2, [1, 2, 11, 8]);
    const kt = randomTensor(r2, [1, 2, 4, 8]);
    const vt = randomTensor(r2, [1, 2, 4, 3]);
    const { got } = both(qt, kt, vt, { causal: true });
    expectEmptyRows(got, [0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16, 17]);
    expectMatchesReference(qt, kt, vt, { causal: true });
  });

  it("by a window that leaves some rows nothing (upper-left, Nq > Nk)", () => {
    const r2 = rng(25);
    const qt = randomTensor(r2, [10, 4]);
    const kt = randomTensor(r2, [6, 4]);
    const vt = randomTensor(r2, [6, 6]);
    const options = { window: [1, 0] as const, align: "upper-left" as const };
    const { got } = both(qt, kt, vt, options);
    expectEmptyRows(got, [7, 8, 9]); // rows i >= Nk + 1 have no key in [i − 1, i]
    expectMatchesReference(qt, kt, vt, options);
  });

  it("by a mask that removes every key of every row", () => {
    const { got } = both(q, k, v, { mask: { data: new Uint8Array(9), shape: [9] } });
    expectEmptyRows(
      got,
      Array.from({ length: 24 }, (_, i) => i),
    );
  });

  it("is not caused by a finite additive mask of -1e30: such a row averages its values", () => {
    const r2 = rng(26);
    const qt = randomTensor(r2, [3, 4]);
    const kt = randomTensor(r2, [5, 4]);
    const vt = randomTensor(r2, [5, 2]);
    const mask = { data: new Float32Array(15).fill(0), shape: [3, 5] };
    mask.data.fill(-1e30, 5, 10); // row 1: every key at -1e30
    mask.data.fill(-1e30, 10, 12); // row 2: keys 0, 1 at -1e30, the others ordinary
    const res = scaledDotProductAttention(qt, kt, vt, {
      mask,
      returnWeights: true,
      returnLse: true,
    });
    // Row 1: the scores differ by far less than the spacing of floats near -1e30: uniform weights.
    expect(rowOf(res.weights!, 1).every((w) => Math.abs(w - 0.2) < 1e-6)).toBe(true);
    for (let c = 0; c < 2; c++) {
      let mean = 0;
      for (let j = 0; j < 5; j++) mean += vt.data[j * 2 + c] / 5;
      expect(res.output.data[2 + c]).toBeCloseTo(mean, 6);
    }
    expect(res.lse!.data[1]).toBeLessThan(-9e29);
    expect(rowOf(res.weights!, 2).slice(0, 2)).toEqual([0, 0]);
    expect(hasNaN(res.output.data)).toBe(false);
    const want = referenceSdpa(qt, kt, vt, { mask });
    expectClose(res.output, want.output, TOL, "output");
    expectClose(res.weights, want.weights, TOL, "weights");
  });

  it("when there are no keys at all (Nk = 0)", () => {
    const empty = { data: new Float32Array(0), shape: [2, 2, 0, 8] };
    const emptyV = { data: new Float32Array(0), shape: [2, 2, 0, 5] };
    const res = scaledDotProductAttention(q, empty, emptyV, {
      returnWeights: true,
      returnLse: true,
    });
    expect(res.output.shape).toEqual([2, 2, 6, 5]);
    expect(res.weights!.shape).toEqual([2, 2, 6, 0]);
    expect(res.output.data.every((x) => x === 0)).toBe(true);
    expect(res.lse!.data.every((x) => x === -Infinity)).toBe(true);
  });
});

describe("non-finite values in masked-out keys and values never reach the output", () => {
  const POISON = [NaN, Infinity, -Infinity];

  /** A copy of `t` [.., N, C] whose rows `rows` (of every leading index) hold NaN and ±Infinity. */
  function poisonRows(t: Tensor, rows: number[]): Tensor {
    const out = cloneTensor(t);
    const n = t.shape[t.shape.length - 2];
    const c = t.shape[t.shape.length - 1];
    const lead = t.data.length / (n * c);
    for (let l = 0; l < lead; l++) {
      for (const row of rows) {
        for (let x = 0; x < c; x++) out.data[(l * n + row) * c + x] = POISON[(row + x) % 3];
      }
    }
    return out;
  }

  /**
   * Runs the call with finite k and v and with rows `poisoned` of k and v made non-finite; the
   * query rows `checked` (flat over all dims but the last) must not change at all, and the
   * finite call must match the reference.
   */
  function expectUnchanged(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    poisoned: number[],
    checked: number[],
    options: ScaledDotProductAttentionOptions,
  ): void {
    expectMatchesReference(q, k, v, options);
    const clean = scaledDotProductAttention(q, k, v, {
      ...options,
      returnWeights: true,
      returnLse: true,
    });
    const dirty = scaledDotProductAttention(q, poisonRows(k, poisoned), poisonRows(v, poisoned), {
      ...options,
      returnWeights: true,
      returnLse: true,
    });
    expect(checked.length).toBeGreaterThan(0);
    for (const row of checked) {
      const where = `query row ${row}`;
      expect(rowOf(dirty.output, row), where).toEqual(rowOf(clean.output, row));
      expect(rowOf(dirty.weights!, row), where).toEqual(rowOf(clean.weights!, row));
      expect(dirty.lse!.data[row], where).toBe(clean.lse!.data[row]);
    }
  }

  const allRows = (n: number, heads: number): number[] =>
    Array.from({ length: n * heads }, (_, i) => i);

  // Dv 3 (4-column path), 8 (8-column path) and 13 (both).
  for (const Dv of [3, 8, 13]) {
    const r = rng(30 + Dv);
    const q = randomTensor(r, [2, 2, 7, 6]);
    const k = randomTensor(r, [2, 2, 19, 6]);
    const v = randomTensor(r, [2, 2, 19, Dv]);
    const padded = [3, 8, 17, 18];

    it(`keys removed by a boolean key-padding mask (Dv = ${Dv})`, () => {
      const mask = { data: new Uint8Array(19).fill(1), shape: [1, 1, 1, 19] };
      for (const j of padded) mask.data[j] = 0;
      expectUnchanged(q, k, v, padded, allRows(7, 4), { mask });
    });

    it(`keys removed by an additive -Infinity mask (Dv = ${Dv})`, () => {
      const mask = randomAdditiveMask(rng(40 + Dv), [19], 1);
      for (const j of padded) mask.data[j] = -Infinity;
      expectUnchanged(q, k, v, padded, allRows(7, 4), { mask });
    });

    it(`a key masked for some query rows only: the rows that cannot see it (Dv = ${Dv})`, () => {
      // Key 5 is masked for even query rows and visible to odd ones (which then see NaN).
      const mask = { data: new Uint8Array(7 * 19).fill(1), shape: [7, 19] };
      for (let i = 0; i < 7; i += 2) mask.data[i * 19 + 5] = 0;
      const even = allRows(7, 4).filter((row) => (row % 7) % 2 === 0);
      expectUnchanged(q, k, v, [5], even, { mask });
    });
  }

  it("future keys under causal (N = 10): rows i < j cannot see key j", () => {
    const r = rng(50);
    const q = randomTensor(r, [1, 2, 10, 5]);
    const k = randomTensor(r, [1, 2, 10, 5]);
    const v = randomTensor(r, [1, 2, 10, 9]);
    for (const j of [1, 4, 7, 9]) {
      const checked = [0, 1].flatMap((h) => Array.from({ length: j }, (_, i) => h * 10 + i));
      expectUnchanged(q, k, v, [j], checked, { causal: true });
    }
    // Several future keys at once: rows 0..5 see none of 6, 8, 9.
    expectUnchanged(q, k, v, [6, 8, 9], [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15], {
      causal: true,
    });
  });

  it("future keys under causal across tiles (N = 70, upper-left and lower-right)", () => {
    const r = rng(51);
    const q = randomTensor(r, [1, 1, 70, 4]);
    const k = randomTensor(r, [1, 1, 70, 4]);
    const v = randomTensor(r, [1, 1, 70, 6]);
    // Key 66 lies in the second key tile; key 61 in the last panel of the first one.
    expectUnchanged(
      q,
      k,
      v,
      [66],
      Array.from({ length: 66 }, (_, i) => i),
      { causal: true },
    );
    expectUnchanged(
      q,
      k,
      v,
      [61],
      Array.from({ length: 61 }, (_, i) => i),
      {
        causal: true,
        align: "upper-left",
      },
    );
    // Lower-right with Nq < Nk: row i sees keys <= i + 40.
    const qShort = randomTensor(r, [1, 1, 30, 4]);
    expectUnchanged(
      qShort,
      k,
      v,
      [55],
      Array.from({ length: 15 }, (_, i) => i),
      { causal: true },
    );
  });

  it("keys outside a sliding window", () => {
    const r = rng(52);
    const q = randomTensor(r, [2, 20, 7]);
    const k = randomTensor(r, [2, 20, 7]);
    const v = randomTensor(r, [2, 20, 10]);
    // window [2, 2]: key 10 is visible only to rows 8..12.
    const checked = [0, 1].flatMap((h) =>
      Array.from({ length: 20 }, (_, i) => i)
        .filter((i) => Math.abs(i - 10) > 2)
        .map((i) => h * 20 + i),
    );
    expectUnchanged(q, k, v, [10], checked, { window: [2, 2] });
    // window [3, 0] + causal: key 4 is visible only to rows 4..7.
    const checked2 = [0, 1].flatMap((h) =>
      Array.from({ length: 20 }, (_, i) => i)
        .filter((i) => i < 4 || i > 7)
        .map((i) => h * 20 + i),
    );
    expectUnchanged(q, k, v, [4], checked2, { window: [3, 0], causal: true });
  });

  it("keys masked by the explicit mask stay masked even when they are global tokens", () => {
    const r = rng(53);
    const q = randomTensor(r, [12, 8]);
    const k = randomTensor(r, [12, 8]);
    const v = randomTensor(r, [12, 8]);
    const mask = { data: new Uint8Array(12).fill(1), shape: [12] };
    mask.data[3] = 0;
    expectUnchanged(q, k, v, [3], allRows(12, 1), {
      mask,
      window: [1, 1],
      globalTokens: Int32Array.from([3, 7]),
    });
  });
});

describe("the out option", () => {
  const r = rng(60);
  const q = randomTensor(r, [2, 3, 5, 4]);
  const k = randomTensor(r, [2, 3, 6, 4]);
  const v = randomTensor(r, [2, 3, 6, 7]);

  it("writes the output into the given array and returns that array", () => {
    const out = new Float32Array(2 * 3 * 5 * 7).fill(NaN);
    const res = scaledDotProductAttention(q, k, v, { out, causal: true });
    expect(res.output.data).toBe(out);
    expect(res.output.shape).toEqual([2, 3, 5, 7]);
    expectClose(res.output, referenceSdpa(q, k, v, { causal: true }).output, TOL, "output");
  });

  it("without out, each call returns a fresh array owned by the caller", () => {
    const a = scaledDotProductAttention(q, k, v).output.data;
    const b = scaledDotProductAttention(q, k, v).output.data;
    expect(a).not.toBe(b);
    expect(a.buffer).not.toBe(kernels("test").exports.memory.buffer);
    expect(Array.from(a)).toEqual(Array.from(b));
    const full = scaledDotProductAttention(q, k, v, { returnWeights: true, returnLse: true });
    expect(full.weights!.data.buffer).not.toBe(kernels("test").exports.memory.buffer);
    expect(full.lse!.data.buffer).not.toBe(kernels("test").exports.memory.buffer);
    expect(full.output.data.buffer).not.toBe(full.weights!.data.buffer);
  });

  it("accepts the data of a WasmTensor as out", () => {
    const o = allocTensor([2, 3, 5, 7]);
    try {
      const res = scaledDotProductAttention(q, k, v, { out: o.data });
      const want = referenceSdpa(q, k, v).output;
      expectClose({ data: o.data, shape: o.shape }, want, TOL, "out tensor");
      expectClose(res.output, want, TOL, "returned output");
    } finally {
      o.free();
    }
  });

  it("writes into a WasmTensor out even when the call itself grows memory", () => {
    const memory = kernels("test").exports.memory;
    const o = allocTensor([2, 3]);
    try {
      // Keys larger than all of current memory: copying them in must grow it, which detaches
      // every view of the old buffer, the out array passed in included.
      const D = 4;
      const Nk = Math.ceil(memory.buffer.byteLength / (4 * D)) + 4096;
      const r2 = rng(61);
      const qt = randomTensor(r2, [2, D]);
      const kt = randomTensor(r2, [Nk, D]);
      const vt = randomTensor(r2, [Nk, 3]);
      const before = memory.buffer.byteLength;
      const res = scaledDotProductAttention(qt, kt, vt, { out: o.data, window: [3, 0] });
      expect(memory.buffer.byteLength).toBeGreaterThan(before);
      const want = referenceSdpa(qt, kt, vt, { window: [3, 0] }).output;
      expectClose(res.output, want, TOL, "returned output");
      expectClose({ data: o.data, shape: o.shape }, want, TOL, "out tensor");
    } finally {
      o.free();
    }
  });

  it("rejects an out of the wrong length with SHAPE_MISMATCH, before writing anything", () => {
    const out = new Float32Array(2 * 3 * 5 * 7 - 1).fill(7);
    let error: unknown;
    try {
      scaledDotProductAttention(q, k, v, { out });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AttentionError);
    expect((error as AttentionError).code).toBe("SHAPE_MISMATCH");
    expect((error as AttentionError).message).toContain("out");
    expect(out.every((x) => x === 7)).toBe(true);
  });
});

describe("tensors in WASM memory (allocTensor)", () => {
  function fill(t: { data: Float32Array }, src: Float32Array): void {
    t.data.set(src);
  }

  it("is zero-filled, typed by dtype and shaped as asked", () => {
    const f = allocTensor([3, 5]);
    const u = allocTensor([4], "uint8");
    try {
      expect(f.data).toBeInstanceOf(Float32Array);
      expect(f.data.length).toBe(15);
      expect(f.data.every((x) => x === 0)).toBe(true);
      expect(u.data).toBeInstanceOf(Uint8Array);
      expect(f.shape).toEqual([3, 5]);
    } finally {
      f.free();
      u.free();
    }
  });

  it("used in place as q, k, v and mask, gives the same result as plain tensors", () => {
    const r = rng(70);
    const q = randomTensor(r, [2, 4, 9, 12]);
    const k = randomTensor(r, [2, 2, 13, 12]);
    const v = randomTensor(r, [2, 2, 13, 10]);
    const mask = randomBoolMask(r, [2, 1, 9, 13], 0.7);
    const wq = allocTensor(q.shape);
    const wk = allocTensor(k.shape);
    const wv = allocTensor(v.shape);
    const wm = allocTensor(mask.shape, "uint8");
    try {
      fill(wq, q.data);
      fill(wk, k.data);
      fill(wv, v.data);
      wm.data.set(mask.data);
      const options = { mask, causal: true, returnWeights: true, returnLse: true } as const;
      const plain = scaledDotProductAttention(q, k, v, options);
      const inPlace = scaledDotProductAttention(wq, wk, wv, { ...options, mask: wm });
      expectClose(inPlace.output, plain.output, EXACT, "output");
      expectClose(inPlace.weights, plain.weights!, EXACT, "weights");
      expectClose(inPlace.lse, plain.lse!, EXACT, "lse");
      // Mixed: some inputs in WASM memory, some not; additive mask in WASM memory.
      const add = randomAdditiveMask(r, [9, 13], 0.8);
      const wadd = allocTensor(add.shape);
      try {
        fill(wadd, add.data);
        const mixed = scaledDotProductAttention(q, wk, v, { mask: wadd, returnWeights: true });
        const want = referenceSdpa(q, k, v, { mask: add });
        expectClose(mixed.output, want.output, TOL, "output");
        expectClose(mixed.weights, want.weights, TOL, "weights");
      } finally {
        wadd.free();
      }
      // The inputs are read, not modified.
      expect(Array.from(wq.data)).toEqual(Array.from(q.data));
      expect(Array.from(wk.data)).toEqual(Array.from(k.data));
    } finally {
      wq.free();
      wk.free();
      wv.free();
      wm.free();
    }
  });

  it("keeps its data readable and usable across memory growth", () => {
    const memory = kernels("test").exports.memory;
    const r = rng(71);
    const q = randomTensor(r, [3, 8, 6]);
    const k = randomTensor(r, [3, 11, 6]);
    const v = randomTensor(r, [3, 11, 5]);
    const wk = allocTensor(k.shape);
    wk.data.set(k.data);
    const viewBefore = wk.data;
    const before = memory.buffer.byteLength;
    // Larger than everything allocated so far: memory must grow.
    const big = allocTensor([before / 4 + 1024 * 1024]);
    try {
      expect(memory.buffer.byteLength).toBeGreaterThan(before);
      // Growth detaches old views of an ordinary memory (a shared one, with threads, keeps them).
      if (typeof SharedArrayBuffer === "undefined" || !(memory.buffer instanceof SharedArrayBuffer))
        expect(viewBefore.length).toBe(0);
      expect(wk.data.length).toBe(k.data.length); // ...but data re-views the new memory
      expect(Array.from(wk.data)).toEqual(Array.from(k.data));
      const res = scaledDotProductAttention(q, wk, v, { returnWeights: true });
      const want = referenceSdpa(q, k, v);
      expectClose(res.output, want.output, TOL, "output");
      expectClose(res.weights, want.weights, TOL, "weights");
    } finally {
      big.free();
      wk.free();
    }
  });

  it("throws AttentionError when used after free()", () => {
    const t = allocTensor([4, 4]);
    const plain = randomTensor(rng(72), [4, 4]);
    t.free();
    expect(() => t.data).toThrow(AttentionError);
    expect(() => scaledDotProductAttention(t, plain, plain)).toThrow(AttentionError);
    expect(() => scaledDotProductAttention(plain, t, plain)).toThrow(AttentionError);
    expect(() => softmax(t)).toThrow(AttentionError);
    t.free(); // a second free is harmless
    expectClose(
      scaledDotProductAttention(plain, plain, plain).output,
      referenceSdpa(plain, plain, plain).output,
      TOL,
    );
  });

  it("gives its memory back on free()", () => {
    const ws = kernels("test").workspace;
    const base = ws.bytesInUse;
    const t = allocTensor([1000]);
    expect(ws.bytesInUse).toBeGreaterThanOrEqual(base + 4000);
    t.free();
    expect(ws.bytesInUse).toBe(base);
  });
});

describe("softmax", () => {
  it("treats -1e30 as an ordinary score and only -Infinity as masked", () => {
    const x = {
      data: new Float32Array([-1e30, -1e30, 0, -1e30, -Infinity, -1e30, -Infinity, -Infinity]),
      shape: [4, 2],
    };
    expect(Array.from(softmax(x).data)).toEqual([0.5, 0.5, 1, 0, 0, 1, 0, 0]);
  });

  it("gives zeros for an all -Infinity line, along any axis", () => {
    const x = { data: new Float32Array(12).fill(-Infinity), shape: [3, 4] };
    for (const axis of [0, 1, -1, -2]) {
      const y = softmax(x, { axis });
      expect(y.shape).toEqual([3, 4]);
      expect(y.data.every((v) => v === 0)).toBe(true);
    }
  });

  // [2,6,8] takes the 4-lines-at-once path for axis 0 and 1; [3,5,7] the strided remainder.
  for (const shape of [
    [2, 6, 8],
    [3, 5, 7],
    [1, 1, 13],
  ]) {
    it(`matches the reference over axes 0, 1, 2, -1, -2, -3 of [${shape.join(",")}]`, () => {
      const r = rng(80 + shape[2]);
      const x = randomTensor(r, shape, -6, 6);
      // Some -Infinity entries and some lines of ±1e30.
      for (let i = 0; i < x.data.length; i += 5) x.data[i] = -Infinity;
      x.data[1] = -1e30;
      x.data[x.data.length - 2] = 1e30;
      for (const axis of [0, 1, 2, -1, -2, -3]) {
        expectClose(softmax(x, { axis }), referenceSoftmax(x, axis), TOL, `axis ${axis}`);
      }
    });
  }

  it("defaults to the last axis", () => {
    const x = randomTensor(rng(90), [3, 4, 5]);
    expect(Array.from(softmax(x).data)).toEqual(Array.from(softmax(x, { axis: -1 }).data));
    expect(Array.from(softmax(x).data)).toEqual(Array.from(softmax(x, { axis: 2 }).data));
  });

  it("is stable for huge scores and returns a fresh array", () => {
    const x = { data: new Float32Array([3e4, 3e4 - 1, -3e4, 1e4, 88.8, 89]), shape: [6] };
    const y = softmax(x);
    expect(y.data).not.toBe(x.data);
    expectClose(y, referenceSoftmax(x), TOL, "softmax");
  });
});

describe("alibiSlopes", () => {
  /** API.md: 2^(−8(h+1)/H) for H a power of two, else slopes(c) + even-indexed slopes(2c)[: H − c]. */
  function formula(H: number): number[] {
    const pow2 = (n: number): number[] =>
      Array.from({ length: n }, (_, h) => Math.pow(2, (-8 * (h + 1)) / n));
    if (Number.isInteger(Math.log2(H))) return pow2(H);
    let c = 1;
    while (c * 2 < H) c *= 2;
    return [
      ...pow2(c),
      ...pow2(2 * c)
        .filter((_, i) => i % 2 === 0)
        .slice(0, H - c),
    ];
  }

  it.each([1, 2, 6, 8, 12, 16])("H = %i follows Press et al.", (H) => {
    const slopes = alibiSlopes(H);
    expect(slopes).toBeInstanceOf(Float32Array);
    expect(slopes.length).toBe(H);
    expectClose(
      { data: slopes, shape: [H] },
      { data: formula(H), shape: [H] },
      { atol: 0, rtol: 1e-7 },
    );
  });

  it("gives the slopes FORMAT.md lists for H = 6, 8 and 12", () => {
    const p = (e: number): number => Math.fround(Math.pow(2, e));
    expect(Array.from(alibiSlopes(6))).toEqual([-2, -4, -6, -8, -1, -3].map(p));
    expect(Array.from(alibiSlopes(8))).toEqual([-1, -2, -3, -4, -5, -6, -7, -8].map(p));
    expect(Array.from(alibiSlopes(12))).toEqual(
      [-1, -2, -3, -4, -5, -6, -7, -8, -0.5, -1.5, -2.5, -3.5].map(p),
    );
  });
});

describe("weights and lse", () => {
  /** Mixed options with fully masked rows: bool mask, causal lower-right, Nq > Nk. */
  function setup(r: Rng) {
    const q = randomTensor(r, [2, 3, 12, 10]);
    const k = randomTensor(r, [2, 3, 9, 10]);
    const v = randomTensor(r, [2, 3, 9, 6]);
    const mask = randomBoolMask(r, [2, 1, 12, 9], 0.75);
    mask.data.fill(0, 9 * 9, 10 * 9); // b 0, row 9
    const options = { mask, causal: true, softcap: 5, alibiSlopes: alibiSlopes(3) } as const;
    return { q, k, v, options };
  }

  it("weights rows sum to 1, or to 0 for fully masked rows", () => {
    const { q, k, v, options } = setup(rng(100));
    const res = scaledDotProductAttention(q, k, v, {
      ...options,
      returnWeights: true,
      returnLse: true,
    });
    const want = referenceSdpa(q, k, v, options);
    let empty = 0;
    for (let row = 0; row < 2 * 3 * 12; row++) {
      const sum = rowOf(res.weights!, row).reduce((a, b) => a + b, 0);
      if (want.lse.data[row] === -Infinity) {
        empty++;
        expect(sum).toBe(0);
      } else {
        expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
      }
      expect(rowOf(res.weights!, row).every((w) => w >= 0 && w <= 1)).toBe(true);
    }
    expect(empty).toBeGreaterThan(0);
    expect(empty).toBeLessThan(2 * 3 * 12);
  });

  it("lse is the natural-log sum of exp of the final scores", () => {
    const { q, k, v, options } = setup(rng(101));
    const res = scaledDotProductAttention(q, k, v, { ...options, returnLse: true });
    const { scores } = referenceSdpa(q, k, v, options);
    const Nk = 9;
    const lse = new Float64Array(2 * 3 * 12);
    for (let row = 0; row < lse.length; row++) {
      let sum = 0;
      for (let j = 0; j < Nk; j++) sum += Math.exp(scores.data[row * Nk + j]);
      lse[row] = Math.log(sum);
    }
    expectClose(res.lse, { data: lse, shape: [2, 3, 12] }, LSE_TOL, "lse");
  });

  it("weights are exp(score − lse)", () => {
    const { q, k, v, options } = setup(rng(102));
    const res = scaledDotProductAttention(q, k, v, {
      ...options,
      returnWeights: true,
      returnLse: true,
    });
    const { scores } = referenceSdpa(q, k, v, options);
    const expected = new Float64Array(scores.data.length);
    for (let i = 0; i < expected.length; i++) {
      const lse = res.lse!.data[Math.floor(i / 9)];
      expected[i] = lse === -Infinity ? 0 : Math.exp(scores.data[i] - lse);
    }
    expectClose(res.weights, { data: expected, shape: scores.shape }, TOL, "weights");
  });

  it("a default scale of 1/sqrt(D) and an explicit one agree", () => {
    const r = rng(103);
    const q = randomTensor(r, [3, 5, 9]);
    const k = randomTensor(r, [3, 6, 9]);
    const v = randomTensor(r, [3, 6, 2]);
    const a = scaledDotProductAttention(q, k, v, { returnLse: true });
    const b = scaledDotProductAttention(q, k, v, { scale: 1 / 3, returnLse: true });
    expectClose(a.output, b.output, { atol: 1e-6, rtol: 1e-6 }, "output");
    expectClose(a.lse!, b.lse!, { atol: 1e-6, rtol: 1e-6 }, "lse");
  });

  it("dropout with p = 0 is accepted and changes nothing", () => {
    const r = rng(104);
    const q = randomTensor(r, [4, 6]);
    const plain = scaledDotProductAttention(q, q, q);
    const zero = scaledDotProductAttention(q, q, q, { dropout: { p: 0, seed: 1 } });
    expect(Array.from(zero.output.data)).toEqual(Array.from(plain.output.data));
  });
});
