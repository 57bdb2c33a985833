// Hardening of the attention ops (issue 14): no input, however hostile, corrupts the module, hangs
// a promise or passes silently. Every bad call must give an AttentionError with a documented code
// (the async twins reject, never throw), keep no WASM memory, grow none, and leave the module
// computing correctly; empty calls return at once; the async twins take their inputs before they
// return. Runs in every Node project, with the pool in "node-threads".

import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  AttentionError,
  alibiSlopes,
  allocTensor,
  applyRope,
  init,
  linearBackward,
  memoryStats,
  scaledDotProductAttention as sdpa,
  scaledDotProductAttentionAsync as sdpaAsync,
  scaledDotProductAttentionBackward as sdpaBackward,
  scaledDotProductAttentionBackwardAsync as sdpaBackwardAsync,
  type AttentionErrorCode,
  type Tensor,
} from "../src/index";
import { MAX_KEYS, planAttention } from "../src/engine/plan";
import { expectClose, type Tolerance } from "./helpers/conformance";
import { randomBoolMask, randomTensor, rng } from "./helpers/random";
import { referenceSdpa } from "./reference";
import { referenceSdpaBackward } from "./reference-backward";

const TOL: Tolerance = { atol: 3e-5, rtol: 3e-4 };
// Anything, typed as whatever the call wants: the point is what the ops do with wrong input.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const bad = (value: unknown): any => value;
const e = (s: number[]): Tensor => ({ data: new Float32Array(0), shape: s });

beforeAll(async () => {
  await init();
});

const r = rng(14);
const q = randomTensor(r, [1, 2, 3, 8]);
const k = randomTensor(r, [1, 2, 5, 8]);
const v = randomTensor(r, [1, 2, 5, 4]);

// The module still computes correctly.
function canary(): void {
  const mask = randomBoolMask(rng(3), [3, 5], 0.7);
  const got = sdpa(q, k, v, { mask, causal: true, returnWeights: true });
  const want = referenceSdpa(q, k, v, { mask, causal: true });
  expectClose(got.output, want.output, TOL, "canary output");
  expectClose(got.weights, want.weights, TOL, "canary weights");
}

let baseline: { memoryBytes: number; bytesInUse: number };
beforeEach(() => {
  baseline = memoryStats();
});
afterEach(() => {
  // Nothing kept, and the module still works (and still keeps nothing).
  expect(memoryStats().bytesInUse).toBe(baseline.bytesInUse);
  canary();
  expect(memoryStats().bytesInUse).toBe(baseline.bytesInUse);
});

function thrown(fn: () => unknown): AttentionError {
  let err: unknown;
  try {
    fn();
  } catch (x) {
    err = x;
  }
  expect(err, "expected an AttentionError").toBeInstanceOf(AttentionError);
  return err as AttentionError;
}

function expectError(fn: () => unknown, code: AttentionErrorCode, ...mentions: string[]): void {
  const before = memoryStats();
  const err = thrown(fn);
  // A failed call grows no memory and keeps none.
  expect(memoryStats()).toEqual(before);
  expect(err.code, err.message).toBe(code);
  for (const m of mentions) expect(err.message).toContain(m);
}

// A promise that must settle within `ms` (a hung promise fails the test instead of timing it out).
function settles<T>(p: Promise<T>, ms = 20_000): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`the promise did not settle in ${ms} ms`)), ms),
    ),
  ]);
}

// Calls an async twin, which must return a promise (never throw) that rejects with `code`.
async function expectRejects(
  fn: () => Promise<unknown>,
  code: AttentionErrorCode,
  ...mentions: string[]
): Promise<void> {
  const before = memoryStats();
  let promise: Promise<unknown> | undefined;
  expect(() => {
    promise = fn();
  }).not.toThrow();
  let err: unknown;
  await settles(promise!).then(
    () => expect.fail("expected a rejection"),
    (x: unknown) => {
      err = x;
    },
  );
  expect(err).toBeInstanceOf(AttentionError);
  expect((err as AttentionError).code, (err as Error).message).toBe(code);
  expect(memoryStats().bytesInUse).toBe(before.bytesInUse);
  for (const m of mentions) expect((err as Error).message).toContain(m);
}

function detach(buffer: ArrayBufferLike): void {
  structuredClone(buffer, { transfer: [buffer as ArrayBuffer] });
}

describe("empty tensors (class 1)", () => {
  it("a huge head dim of an empty call is SHAPE_MISMATCH, sync and async", async () => {
    const call = () => sdpa(e([0, 1, 1, 2 ** 22]), e([0, 1, 1, 2 ** 22]), e([0, 1, 1, 4]));
    expectError(call, "SHAPE_MISMATCH", "q", "head dim D", "4194304", "65536");
    expectError(
      () => sdpa(e([0, 1, 1, 4]), e([0, 1, 1, 4]), e([0, 1, 1, 2 ** 22])),
      "SHAPE_MISMATCH",
      "v",
      "Dv",
    );
    await expectRejects(
      () => sdpaAsync(e([0, 1, 1, 2 ** 22]), e([0, 1, 1, 2 ** 22]), e([0, 1, 1, 4])),
      "SHAPE_MISMATCH",
      "scaledDotProductAttentionAsync",
    );
  });

  it("an empty output returns at once, whatever the other dims, with every result requested", async () => {
    const big = 2 ** 31 - 1;
    const args = [e([0, 1, 3, 4]), e([0, 1, big, 4]), e([0, 1, big, 8])] as const;
    const opts = { returnWeights: true, returnLse: true, globalTokens: [5], causal: true };
    for (const res of [sdpa(...args, opts), await settles(sdpaAsync(...args, opts))]) {
      expect(res.output.shape).toEqual([0, 1, 3, 8]);
      expect(res.output.data.length).toBe(0);
      expect(res.weights!.shape).toEqual([0, 1, 3, big]);
      expect(res.weights!.data.length).toBe(0);
      expect(res.lse!.shape).toEqual([0, 1, 3]);
    }
    // No query row against real keys, and an `out` of 0 elements.
    const out = new Float32Array(0);
    const res = sdpa(randomTensor(r, [1, 2, 0, 8]), k, v, { out });
    expect(res.output.data).toBe(out);
    expect(res.output.shape).toEqual([1, 2, 0, 4]);
    // No heads at all.
    expect(sdpa(e([0, 4, 8]), e([0, 4, 8]), e([0, 4, 2])).output.shape).toEqual([0, 4, 2]);
  });

  it("no key (Nk = 0): zeros, lse -Infinity, empty weights, also into `out`, sync and async", async () => {
    const qq = randomTensor(r, [2, 3, 4]);
    const kk = e([2, 0, 4]);
    const vv = e([2, 0, 3]);
    const out = new Float32Array(2 * 3 * 3).fill(NaN);
    const results = [
      sdpa(qq, kk, vv, { returnWeights: true, returnLse: true, out }),
      await settles(sdpaAsync(qq, kk, vv, { returnWeights: true, returnLse: true })),
    ];
    expect(results[0].output.data).toBe(out);
    for (const res of results) {
      expect(Array.from(res.output.data)).toEqual(new Array(18).fill(0));
      expect(res.weights!.shape).toEqual([2, 3, 0]);
      expect(Array.from(res.lse!.data)).toEqual(new Array(6).fill(-Infinity));
    }
  });

  it("backward of an empty call: zero gradients without a kernel call", async () => {
    const qq = randomTensor(r, [1, 2, 3, 4]);
    const zeros = (n: number) => new Array(n).fill(0);
    // Nk = 0: dq zeros, dk and dv empty.
    const noKeys = [qq, e([1, 2, 0, 4]), e([1, 2, 0, 4]), randomTensor(r, [1, 2, 3, 4])] as const;
    const grad = randomTensor(r, [1, 2, 3, 4]);
    const lse = { data: new Float32Array(6).fill(-Infinity), shape: [1, 2, 3] };
    for (const g of [
      sdpaBackward(...noKeys, grad, { lse }),
      await settles(sdpaBackwardAsync(...noKeys, grad, { lse })),
    ]) {
      expect(Array.from(g.dq.data)).toEqual(zeros(24));
      expect(g.dk.shape).toEqual([1, 2, 0, 4]);
      expect(g.dv.data.length).toBe(0);
    }
    // No query: dk and dv zeros of k's and v's shapes.
    const g = sdpaBackward(e([1, 2, 0, 8]), k, v, e([1, 2, 0, 4]), e([1, 2, 0, 4]), {
      lse: e([1, 2, 0]),
    });
    expect(g.dq.shape).toEqual([1, 2, 0, 8]);
    expect(Array.from(g.dk.data)).toEqual(zeros(k.data.length));
    expect(Array.from(g.dv.data)).toEqual(zeros(v.data.length));
  });

  it("applyRope and linearBackward of empty inputs", () => {
    const x = applyRope(e([0, 2 ** 31 - 1, 4]));
    expect(x.shape).toEqual([0, 2 ** 31 - 1, 4]);
    expect(x.data.length).toBe(0);
    expectError(() => applyRope(e([0, 2, 2 ** 22])), "SHAPE_MISMATCH", "head dim D");
    // A sparse positions array of the (huge) row count: refused at its first hole, no long walk.
    expectError(
      () => applyRope(e([0, 2 ** 31 - 1, 4]), { positions: new Array(2 ** 31 - 1) }),
      "BAD_OPTION",
      "positions[0]",
    );
    const w = randomTensor(r, [3, 4]);
    const g = linearBackward(e([0, 4]), w, e([0, 3]));
    expect(g.dx.shape).toEqual([0, 4]);
    expect(Array.from(g.dw.data)).toEqual(new Array(12).fill(0));
    expect(Array.from(g.db.data)).toEqual([0, 0, 0]);
    expectError(
      () => linearBackward(e([0, 2 ** 22]), new Float32Array(0), e([0, 0])),
      "SHAPE_MISMATCH",
      "in",
      "65536",
    );
    expectError(
      () => linearBackward(e([0, 1]), new Float32Array(65537), e([0, 65537])),
      "SHAPE_MISMATCH",
      "out",
      "65537",
    );
  });
});

describe("dims a kernel divides or loops by (class 2)", () => {
  it("H = 0 query heads against Hkv = 1 is SHAPE_MISMATCH, not a wasm trap", async () => {
    const kk = randomTensor(r, [1, 4, 8]);
    expectError(() => sdpa(e([0, 4, 8]), kk, kk), "SHAPE_MISMATCH", "k", "H = 0");
    await expectRejects(() => sdpaAsync(e([0, 4, 8]), kk, kk), "SHAPE_MISMATCH", "H = 0");
    await expectRejects(
      () => sdpaBackwardAsync(e([0, 4, 8]), kk, kk, e([0, 4, 8]), e([0, 4, 8]), { lse: e([0, 4]) }),
      "SHAPE_MISMATCH",
      "H = 0",
    );
    // Fewer query heads than kv heads.
    expectError(
      () =>
        sdpa(randomTensor(r, [1, 2, 8]), randomTensor(r, [4, 2, 8]), randomTensor(r, [4, 2, 8])),
      "SHAPE_MISMATCH",
      "H = 1",
    );
  });

  it("planAttention checks the sizes internal callers hand it", () => {
    const dims = { B: 1, H: 1, Hkv: 1, Nq: 1, Nk: 4, D: 4, Dv: 4 };
    expectError(() => planAttention("op", { ...dims, D: 0 }, {}), "SHAPE_MISMATCH", "D = 0");
    expectError(() => planAttention("op", { ...dims, Dv: 2 ** 22 }, {}), "SHAPE_MISMATCH");
    expectError(() => planAttention("op", { ...dims, H: 0 }, {}), "SHAPE_MISMATCH", "Hkv");
    expectError(() => planAttention("op", { ...dims, Nk: NaN }, {}), "SHAPE_MISMATCH");
    expectError(
      () => planAttention("op", { ...dims, Nk: MAX_KEYS + 1 }, {}),
      "OUT_OF_MEMORY",
      "Nk",
    );
    // The same sizes with no query row are an empty call: fine.
    expect(planAttention("op", { ...dims, Nq: 0, Nk: 2 ** 31 - 1 }, {}).Nk).toBe(2 ** 31 - 1);
  });
});

describe("options (class 3)", () => {
  const cases: [string, unknown, AttentionErrorCode, string[]][] = [
    ["a string as the options", "causal", "BAD_OPTION", ["options", "causal"]],
    ["an array as the options", [1], "BAD_OPTION", ["options"]],
    ["returnWeights: 'yes'", { returnWeights: "yes" }, "BAD_OPTION", ["returnWeights", "yes"]],
    ["returnLse: 1", { returnLse: 1 }, "BAD_OPTION", ["returnLse"]],
    ["causal: 'no'", { causal: "no" }, "BAD_OPTION", ["causal", "no"]],
    ["globalTokens: 5", { globalTokens: 5 }, "BAD_OPTION", ["globalTokens", "5"]],
    [
      "globalTokens as Float32Array",
      { globalTokens: new Float32Array([1]) },
      "BAD_DTYPE",
      ["globalTokens"],
    ],
    ["globalTokens with a hole", { globalTokens: [0, , 1] }, "BAD_OPTION", ["globalTokens"]],
    [
      "globalTokens sparse and huge",
      { globalTokens: new Array(2 ** 32 - 1) },
      "BAD_OPTION",
      ["globalTokens"],
    ],
    ["globalTokens '1'", { globalTokens: ["1"] }, "BAD_OPTION", ["globalTokens", "1"]],
    ["scale 1e39", { scale: 1e39 }, "BAD_OPTION", ["scale", "1e+39"]],
    ["scale '1'", { scale: "1" }, "BAD_OPTION", ["scale"]],
    ["softcap 1e39", { softcap: 1e39 }, "BAD_OPTION", ["softcap"]],
    ["softcap 1e-46", { softcap: 1e-46 }, "BAD_OPTION", ["softcap"]],
    ["softcap 1e-40 (reciprocal overflows)", { softcap: 1e-40 }, "BAD_OPTION", ["softcap"]],
    ["alibiSlopes: 5", { alibiSlopes: 5 }, "BAD_OPTION", ["alibiSlopes"]],
    [
      "alibiSlopes with NaN",
      { alibiSlopes: new Float32Array([0.5, NaN]) },
      "BAD_OPTION",
      ["alibiSlopes[1]"],
    ],
    [
      "alibiSlopes look-alike",
      { alibiSlopes: Object.create(Float32Array.prototype) },
      "BAD_DTYPE",
      ["alibiSlopes"],
    ],
    ["window as a typed array", { window: new Int32Array([1, 1]) }, "BAD_OPTION", ["window"]],
    ["window with a string", { window: [1, "2"] }, "BAD_OPTION", ["window"]],
    ["align: 5", { align: 5 }, "BAD_OPTION", ["align"]],
    ["dropout: 'x'", { dropout: "x" }, "BAD_OPTION", ["dropout"]],
    ["dropout without seed", { dropout: { p: 0.1 } }, "BAD_OPTION", ["dropout.seed"]],
    [
      "dropout with an unknown key",
      { dropout: { p: 0.1, seed: 1, rate: 2 } },
      "BAD_OPTION",
      ["rate"],
    ],
    ["dropout seed 1e300", { dropout: { p: 0.1, seed: 1e300 } }, "BAD_OPTION", ["dropout.seed"]],
    ["mask: 5", { mask: 5 }, "BAD_OPTION", ["mask"]],
    ["an unknown key", { casual: true }, "BAD_OPTION", ["casual", "causal"]],
  ];
  it.each(cases)("%s", async (_name, options, code, mentions) => {
    expectError(() => sdpa(q, k, v, bad(options)), code, ...mentions);
    await expectRejects(() => sdpaAsync(q, k, v, bad(options)), code, ...mentions);
    if (options !== null && typeof options === "object" && !Array.isArray(options)) {
      const lse = { data: new Float32Array(6), shape: [1, 2, 3] };
      const out = randomTensor(r, [1, 2, 3, 4]);
      const backOptions = { ...options, lse };
      expectError(() => sdpaBackward(q, k, v, out, out, bad(backOptions)), code, ...mentions);
      await expectRejects(
        () => sdpaBackwardAsync(q, k, v, out, out, bad(backOptions)),
        code,
        ...mentions,
      );
    }
  });

  it("null means absent: options null, a key null", async () => {
    const want = sdpa(q, k, v).output;
    expectClose(sdpa(q, k, v, bad(null)).output, want, TOL);
    expectClose(
      sdpa(q, k, v, bad({ globalTokens: null, mask: null, scale: null })).output,
      want,
      TOL,
    );
    expectClose((await sdpaAsync(q, k, v, bad(null))).output, want, TOL);
    expectClose(applyRope(q, bad(null)), applyRope(q), TOL);
  });

  it("backward errors name the backward op (sync and async), not the forward", async () => {
    const lse = { data: new Float32Array(6), shape: [1, 2, 3] };
    const out = randomTensor(r, [1, 2, 3, 4]);
    const err = thrown(() => sdpaBackward(q, k, v, out, out, { lse, dropout: { p: 2, seed: 1 } }));
    expect(err.message).toMatch(/^scaledDotProductAttentionBackward: dropout\.p/);
    await expectRejects(
      () => sdpaBackwardAsync(q, k, v, out, out, { lse, dropout: { p: 2, seed: 1 } }),
      "BAD_OPTION",
      "scaledDotProductAttentionBackwardAsync: dropout.p",
    );
    await expectRejects(() => sdpaBackwardAsync(q, k, v, out, out, bad("x")), "BAD_OPTION");
    await expectRejects(
      () => sdpaBackwardAsync(q, k, v, out, out, bad(undefined)),
      "BAD_OPTION",
      "lse",
    );
  });

  it("applyRope and alibiSlopes options", () => {
    expectError(() => applyRope(q, bad("neox")), "BAD_OPTION", "options");
    expectError(() => applyRope(q, { base: 1e39 }), "BAD_OPTION", "base");
    expectError(() => applyRope(q, { base: 1e-300 }), "BAD_OPTION", "base");
    expectError(() => applyRope(q, bad({ positions: 3 })), "BAD_OPTION", "positions");
    expectError(
      () => applyRope(q, bad({ positions: new Float32Array(3) })),
      "BAD_DTYPE",
      "positions",
    );
    expectError(() => applyRope(q, bad({ positions: [0, 1, 1.5] })), "BAD_OPTION", "positions[2]");
    expectError(() => applyRope(q, bad({ positionOffset: 1e300 })), "BAD_OPTION", "positionOffset");
    expectError(() => applyRope(q, bad({ style: "x" })), "BAD_OPTION", "style");
    expectError(() => alibiSlopes(2 ** 32), "BAD_OPTION", "numHeads", "65536");
    expectError(() => alibiSlopes(65537), "BAD_OPTION", "numHeads");
    expectError(() => alibiSlopes(bad("4")), "BAD_OPTION", "numHeads");
    expect(alibiSlopes(65536).length).toBe(65536);
  });
});

describe("tensor arguments are validated snapshots (class 4)", () => {
  class Lying extends Float32Array {
    override get length(): number {
      return 1e9;
    }
  }
  it("look-alikes, proxies, detached buffers and lying getters", async () => {
    const lookAlike = { data: Object.create(Float32Array.prototype), shape: [1, 2, 3, 8] };
    expectError(() => sdpa(bad(lookAlike), k, v), "BAD_DTYPE", "q");
    expectError(
      () => sdpa(q, bad({ data: new Proxy(k.data, {}), shape: k.shape }), v),
      "BAD_DTYPE",
      "k",
    );
    // A detached buffer: BAD_DTYPE where the runtime tells (ArrayBuffer.prototype.detached, Node
    // 22+), else its length of 0 is a SHAPE_MISMATCH; never a TypeError.
    const detached = new Float32Array(40);
    detach(detached.buffer);
    const code = thrown(() => sdpa(q, k, { data: detached, shape: [1, 2, 5, 4] })).code;
    expect(["BAD_DTYPE", "SHAPE_MISMATCH"]).toContain(code);
    const mask = { data: Object.create(Uint8Array.prototype), shape: [5] };
    expectError(() => sdpa(q, k, v, bad({ mask })), "BAD_DTYPE", "mask");
    const lse = { data: new Float32Array(6), shape: [1, 2, 3] };
    detach(lse.data.buffer);
    const out = randomTensor(r, [1, 2, 3, 4]);
    expectError(() => sdpaBackward(q, k, v, out, out, { lse }), code, "lse");
    await expectRejects(() => sdpaBackwardAsync(q, k, v, out, out, { lse }), code, "lse");
    // A subclass whose `length` lies is read through the built-in accessors.
    const lying = new Lying(v.data);
    expectClose(sdpa(q, k, { data: lying, shape: v.shape }).output, sdpa(q, k, v).output, TOL);
    // A shape getter that answers differently on a later read: the first answer is used.
    let reads = 0;
    const shifty = {
      data: q.data,
      get shape() {
        return reads++ === 0 ? [1, 2, 3, 8] : [1, 1, 1, 2 ** 22];
      },
    };
    expectClose(sdpa(bad(shifty), k, v).output, sdpa(q, k, v).output, TOL);
    expect(reads).toBe(1);
    // A getter that throws.
    const throwing = {
      shape: [1, 2, 3, 8],
      get data(): never {
        throw new Error("no");
      },
    };
    expectError(() => sdpa(bad(throwing), k, v), "BAD_DTYPE", "q.data");
    // linearBackward and applyRope take snapshots too.
    expectError(() => linearBackward(bad(lookAlike), new Float32Array(8), q), "BAD_DTYPE", "x");
    expectError(
      () => applyRope(bad({ data: new Proxy(q.data, {}), shape: q.shape })),
      "BAD_DTYPE",
      "x",
    );
    const w = randomTensor(r, [3, 8]);
    const x = randomTensor(r, [4, 8]);
    const g = randomTensor(r, [4, 3]);
    const want = linearBackward(x, w, g);
    const got = linearBackward(x, new Lying(w.data), g);
    expectClose(got.dw, want.dw, TOL);
    expectClose(got.dx, want.dx, TOL);
  });
});

describe("async twins take their inputs before they return (class 5)", () => {
  it("scaledDotProductAttentionAsync: inputs detached or changed at once give the same result", async () => {
    const make = () => ({
      q: randomTensor(rng(1), [2, 4, 6, 8]),
      k: randomTensor(rng(2), [2, 2, 7, 8]),
      v: randomTensor(rng(3), [2, 2, 7, 4]),
      mask: randomBoolMask(rng(4), [6, 7], 0.8),
      alibi: alibiSlopes(4),
      tokens: Int32Array.from([2]),
      window: [3, 1] as [number, number],
    });
    const a = make();
    const options = (x: ReturnType<typeof make>) => ({
      mask: x.mask,
      alibiSlopes: x.alibi,
      globalTokens: x.tokens,
      window: x.window,
      returnLse: true,
      returnWeights: true,
    });
    const want = sdpa(a.q, a.k, a.v, options(a));
    const b = make();
    const pending = sdpaAsync(b.q, b.k, b.v, options(b));
    for (const t of [b.q, b.k, b.v, b.mask]) detach(t.data.buffer);
    b.alibi.fill(NaN);
    b.tokens[0] = 99;
    b.window[0] = -100;
    const got = await settles(pending);
    expectClose(got.output, want.output, TOL, "output");
    expectClose(got.weights, want.weights!, TOL, "weights");
    expectClose(got.lse, want.lse!, TOL, "lse");
  });

  it("scaledDotProductAttentionBackwardAsync: the same", async () => {
    const make = () => ({
      q: randomTensor(rng(5), [1, 2, 4, 8]),
      k: randomTensor(rng(6), [1, 2, 6, 8]),
      v: randomTensor(rng(7), [1, 2, 6, 4]),
      g: randomTensor(rng(8), [1, 2, 4, 4]),
    });
    const a = make();
    const fwd = sdpa(a.q, a.k, a.v, { causal: true, returnLse: true });
    const want = sdpaBackward(a.q, a.k, a.v, fwd.output, a.g, { causal: true, lse: fwd.lse! });
    const ref = referenceSdpaBackward(a.q, a.k, a.v, a.g, { causal: true });
    expectClose(want.dq, ref.dq, TOL, "dq");
    const b = make();
    const out = { data: fwd.output.data.slice(), shape: fwd.output.shape };
    const lse = { data: fwd.lse!.data.slice(), shape: fwd.lse!.shape };
    const pending = sdpaBackwardAsync(b.q, b.k, b.v, out, b.g, { causal: true, lse });
    for (const t of [b.q, b.k, b.v, b.g, out, lse]) detach(t.data.buffer);
    const got = await settles(pending);
    expectClose(got.dq, want.dq, TOL, "dq");
    expectClose(got.dk, want.dk, TOL, "dk");
    expectClose(got.dv, want.dv, TOL, "dv");
  });

  it("an `out` detached while the call runs rejects, and the module recovers", async () => {
    const out = new Float32Array(24);
    await expectRejects(
      () => {
        const pending = sdpaAsync(q, k, v, { out });
        detach(out.buffer);
        return pending;
      },
      "BAD_OPTION",
      "out",
    );
  });

  it("never throws synchronously, whatever the arguments", async () => {
    await expectRejects(() => sdpaAsync(bad(null), bad(1), bad("x"), bad(5)), "BAD_OPTION");
    await expectRejects(
      () => sdpaBackwardAsync(bad(null), bad(null), bad(null), bad(null), bad(null), bad(null)),
      "BAD_OPTION",
    );
  });
});

describe("sizes and out (classes 6, 7)", () => {
  it("weights past 4 GiB are OUT_OF_MEMORY before anything is allocated, async too", async () => {
    const N = 40000;
    const big = { data: new Float32Array(N).fill(0.5), shape: [1, 1, N, 1] };
    expectError(() => sdpa(big, big, big, { returnWeights: true }), "OUT_OF_MEMORY");
    await expectRejects(() => sdpaAsync(big, big, big, { returnWeights: true }), "OUT_OF_MEMORY");
  });

  it("out: wrong type, length, overlap with an input, WASM memory outside a WasmTensor", async () => {
    expectError(() => sdpa(q, k, v, bad({ out: new Float64Array(24) })), "BAD_DTYPE", "out");
    expectError(() => sdpa(q, k, v, { out: new Float32Array(23) }), "SHAPE_MISMATCH", "out");
    const shared = new Float32Array(24 + v.data.length);
    shared.set(v.data, 24);
    const vIn = { data: shared.subarray(24), shape: v.shape };
    expectError(
      () => sdpa(q, k, vIn, { out: shared.subarray(20, 44) }),
      "BAD_OPTION",
      "overlaps v",
    );
    await expectRejects(
      () => sdpaAsync(q, k, vIn, { out: shared.subarray(20, 44) }),
      "BAD_OPTION",
      "overlaps",
    );
    // An out inside a WasmTensor is written in place.
    const t = allocTensor([1, 2, 3, 4]);
    try {
      const res = sdpa(q, k, v, { out: t.data });
      expectClose(res.output, referenceSdpa(q, k, v).output, TOL);
      expectClose({ data: t.data, shape: t.shape }, referenceSdpa(q, k, v).output, TOL);
    } finally {
      t.free();
    }
  });
});

describe("decode (Nq = 1) and key splits", () => {
  it("one query row over many keys (a key split with a pool) equals the reference, sync and async", async () => {
    const rr = rng(9);
    // Nk·(D + Dv) above 2^20 multiply-adds: worth the pool, split by keys (one head).
    const qq = randomTensor(rr, [1, 1, 1, 32]);
    const kk = randomTensor(rr, [1, 1, 20000, 32]);
    const vv = randomTensor(rr, [1, 1, 20000, 32]);
    const want = referenceSdpa(qq, kk, vv);
    for (const res of [
      sdpa(qq, kk, vv, { returnLse: true }),
      await settles(sdpaAsync(qq, kk, vv, { returnLse: true })),
    ]) {
      expectClose(res.output, want.output, TOL, "output");
      expectClose(res.lse, want.lse, TOL, "lse");
    }
  });

  it("decode with empty and fully masked inputs settles with the defined result", async () => {
    const qq = randomTensor(r, [1, 3, 1, 8]);
    const none = await settles(
      sdpaAsync(qq, e([1, 3, 0, 8]), e([1, 3, 0, 8]), { returnLse: true }),
    );
    expect(Array.from(none.lse!.data)).toEqual([-Infinity, -Infinity, -Infinity]);
    const batchless = await settles(sdpaAsync(e([0, 3, 1, 8]), e([0, 3, 9, 8]), e([0, 3, 9, 8])));
    expect(batchless.output.shape).toEqual([0, 3, 1, 8]);
    const kk = randomTensor(r, [1, 3, 400, 8]);
    const masked = await settles(
      sdpaAsync(qq, kk, kk, { mask: { data: new Uint8Array(400), shape: [400] }, returnLse: true }),
    );
    expect(Array.from(masked.output.data)).toEqual(new Array(24).fill(0));
    expect(Array.from(masked.lse!.data)).toEqual([-Infinity, -Infinity, -Infinity]);
  });
});
