// Validation: each AttentionError code where API.md says it is raised, with a message that names the
// argument and the shapes involved. After every failure the module must still work and must not
// have kept any WASM memory.

import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  alibiSlopes,
  allocTensor,
  init,
  scaledDotProductAttention,
  softmax,
  type AttentionErrorCode,
  type Tensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { expectClose, type Tolerance } from "./helpers/conformance";
import { randomBoolMask, randomTensor, rng } from "./helpers/random";
import { referenceSdpa, referenceSoftmax } from "./reference";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };

beforeAll(async () => {
  await init();
});

const r = rng(1);
// A valid call: q [2,3,5,8], k [2,3,6,8], v [2,3,6,4].
const q = randomTensor(r, [2, 3, 5, 8]);
const k = randomTensor(r, [2, 3, 6, 8]);
const v = randomTensor(r, [2, 3, 6, 4]);
const x = randomTensor(r, [2, 3, 4]);

/** Anything, typed as a Tensor: the point of these tests is what the API does with wrong input. */
function bad(value: unknown): Tensor {
  return value as Tensor;
}

/** Calls `fn`, which must throw; returns the error. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return expect.fail("expected the call to throw");
}

/** The module still computes correctly: an SDPA call with a mask and a softmax call. */
function expectStillWorks(): void {
  const mask = randomBoolMask(rng(7), [5, 6], 0.7);
  const res = scaledDotProductAttention(q, k, v, { mask, causal: true, returnWeights: true });
  const want = referenceSdpa(q, k, v, { mask, causal: true });
  expectClose(res.output, want.output, TOL, "output after the error");
  expectClose(res.weights, want.weights, TOL, "weights after the error");
  expectClose(softmax(x), referenceSoftmax(x), TOL, "softmax after the error");
}

interface ErrorCase {
  name: string;
  code: AttentionErrorCode;
  call: () => unknown;
  /** Substrings the message must contain: the argument, what it got, what it should be. */
  mentions: string[];
}

const sdpa = scaledDotProductAttention;

const CASES: ErrorCase[] = [
  // ---- SHAPE_MISMATCH ----
  {
    name: "k head dim differs from q's",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, randomTensor(r, [2, 3, 6, 7]), v),
    mentions: ["k", "[2,3,6,7]", "D = 8"],
  },
  {
    name: "k batch differs from q's",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, randomTensor(r, [1, 3, 6, 8]), randomTensor(r, [1, 3, 6, 4])),
    mentions: ["k", "[1,3,6,8]", "B = 2"],
  },
  {
    name: "H not divisible by Hkv",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, randomTensor(r, [2, 2, 6, 8]), randomTensor(r, [2, 2, 6, 4])),
    mentions: ["k", "[2,2,6,8]", "H = 3"],
  },
  {
    name: "v has another number of keys than k",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, k, randomTensor(r, [2, 3, 5, 4])),
    mentions: ["v", "[2,3,5,4]", "[2,3,6,Dv]"],
  },
  {
    name: "v has another batch or head count than k",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, k, randomTensor(r, [2, 1, 6, 4])),
    mentions: ["v", "[2,1,6,4]"],
  },
  {
    name: "q data length differs from the product of its shape",
    code: "SHAPE_MISMATCH",
    call: () => sdpa({ data: new Float32Array(239), shape: [2, 3, 5, 8] }, k, v),
    mentions: ["q", "239", "[2,3,5,8]", "240"],
  },
  {
    name: "v data longer than its shape",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, k, { data: new Float32Array(145), shape: [2, 3, 6, 4] }),
    mentions: ["v", "145", "[2,3,6,4]", "144"],
  },
  {
    name: "mask whose last dim is not Nk",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, k, v, { mask: randomBoolMask(r, [5, 7], 0.5) }),
    mentions: ["mask", "[5,7]", "[2,3,5,6]"],
  },
  {
    name: "mask whose batch does not broadcast",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, k, v, { mask: randomBoolMask(r, [3, 1, 1, 6], 0.5) }),
    mentions: ["mask", "[3,1,1,6]", "[2,3,5,6]"],
  },
  {
    name: "mask of rank 5",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, k, v, { mask: randomTensor(r, [1, 2, 3, 5, 6]) }),
    mentions: ["mask", "[1,2,3,5,6]", "[2,3,5,6]"],
  },
  {
    name: "mask data length differs from its shape",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, k, v, { mask: { data: new Uint8Array(5), shape: [6] } }),
    mentions: ["mask", "5", "[6]"],
  },
  {
    name: "alibiSlopes with one slope too few",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, k, v, { alibiSlopes: new Float32Array(2) }),
    mentions: ["alibiSlopes", "[2]", "[3]"],
  },
  {
    name: "q of rank 1",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(randomTensor(r, [8]), k, v),
    mentions: ["q", "[8]", "rank"],
  },
  {
    name: "k of rank 5",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, randomTensor(r, [1, 2, 3, 6, 8]), v),
    mentions: ["k", "[1,2,3,6,8]", "rank"],
  },
  {
    name: "out of the wrong length",
    code: "SHAPE_MISMATCH",
    call: () => sdpa(q, k, v, { out: new Float32Array(121) }),
    mentions: ["out", "121", "[2,3,5,4]", "120"],
  },
  {
    name: "shape with a negative or fractional dim",
    code: "SHAPE_MISMATCH",
    call: () => sdpa({ data: new Float32Array(4), shape: [2, -2] }, k, v),
    mentions: ["q", "shape"],
  },
  // ---- BAD_DTYPE ----
  {
    name: "q as a Float64Array",
    code: "BAD_DTYPE",
    call: () => sdpa(bad({ data: new Float64Array(240), shape: [2, 3, 5, 8] }), k, v),
    mentions: ["q", "Float64Array", "Float32Array"],
  },
  {
    name: "q data as a plain array",
    code: "BAD_DTYPE",
    call: () => sdpa(bad({ data: Array.from(q.data), shape: q.shape }), k, v),
    mentions: ["q", "array", "Float32Array"],
  },
  {
    name: "k as a Uint8Array",
    code: "BAD_DTYPE",
    call: () => sdpa(q, bad({ data: new Uint8Array(288), shape: k.shape }), v),
    mentions: ["k", "Uint8Array", "Float32Array"],
  },
  {
    name: "mask as an Int32Array",
    code: "BAD_DTYPE",
    call: () => sdpa(q, k, v, { mask: bad({ data: new Int32Array(6), shape: [6] }) }),
    mentions: ["mask", "Int32Array", "Uint8Array", "Float32Array"],
  },
  {
    name: "alibiSlopes as number[]",
    code: "BAD_DTYPE",
    call: () => sdpa(q, k, v, { alibiSlopes: [0.5, 0.25, 0.125] as unknown as Float32Array }),
    mentions: ["alibiSlopes", "Float32Array"],
  },
  {
    name: "softmax of a Float64Array",
    code: "BAD_DTYPE",
    call: () => softmax(bad({ data: new Float64Array(24), shape: [2, 3, 4] })),
    mentions: ["x", "Float64Array"],
  },
  // ---- BAD_OPTION ----
  {
    name: "scale NaN",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { scale: NaN }),
    mentions: ["scale", "NaN"],
  },
  {
    name: "scale Infinity",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { scale: Infinity }),
    mentions: ["scale", "Infinity"],
  },
  {
    name: "softcap 0",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { softcap: 0 }),
    mentions: ["softcap", "0"],
  },
  {
    name: "softcap negative",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { softcap: -2 }),
    mentions: ["softcap", "-2"],
  },
  {
    name: "window with a fractional bound",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { window: [1.5, 2] }),
    mentions: ["window", "1.5"],
  },
  {
    name: "window with a NaN bound",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { window: [2, NaN] }),
    mentions: ["window", "NaN"],
  },
  {
    name: "window that is not a pair",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { window: [2] as unknown as [number, number] }),
    mentions: ["window"],
  },
  {
    name: 'align "foo"',
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { align: "foo" as "upper-left" }),
    mentions: ["align", "foo", "lower-right", "upper-left"],
  },
  {
    name: "globalTokens past the last key",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { globalTokens: Int32Array.from([0, 6]) }),
    mentions: ["globalTokens", "6", "[0, 6)"],
  },
  {
    name: "globalTokens negative",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { globalTokens: Int32Array.from([-1]) }),
    mentions: ["globalTokens", "-1"],
  },
  {
    name: "dropout with p = 1",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { dropout: { p: 1, seed: 1 } }),
    mentions: ["dropout.p", "[0, 1)", "1"],
  },
  {
    name: "dropout with a negative p",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { dropout: { p: -0.1, seed: 1 } }),
    mentions: ["dropout.p", "-0.1"],
  },
  {
    name: "dropout with p NaN",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { dropout: { p: NaN, seed: 1 } }),
    mentions: ["dropout.p", "NaN"],
  },
  {
    name: "dropout with a fractional seed",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { dropout: { p: 0.1, seed: 1.5 } }),
    mentions: ["dropout.seed", "1.5"],
  },
  {
    name: "dropout not an object",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { dropout: 0.1 as unknown as { p: number; seed: number } }),
    mentions: ["dropout", "object", "0.1"],
  },
  {
    name: "causal not a boolean",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { causal: "yes" as unknown as boolean }),
    mentions: ["causal", "yes"],
  },
  {
    name: "causal as a number",
    code: "BAD_OPTION",
    call: () => sdpa(q, k, v, { causal: 1 as unknown as boolean }),
    mentions: ["causal", "1"],
  },
  {
    name: "softmax axis past the rank",
    code: "BAD_OPTION",
    call: () => softmax(x, { axis: 3 }),
    mentions: ["axis", "3", "[2,3,4]"],
  },
  {
    name: "softmax axis below -rank",
    code: "BAD_OPTION",
    call: () => softmax(x, { axis: -4 }),
    mentions: ["axis", "-4", "[2,3,4]"],
  },
  {
    name: "softmax fractional axis",
    code: "BAD_OPTION",
    call: () => softmax(x, { axis: 0.5 }),
    mentions: ["axis", "0.5"],
  },
  {
    name: "alibiSlopes(0)",
    code: "BAD_OPTION",
    call: () => alibiSlopes(0),
    mentions: ["numHeads", "0"],
  },
  {
    name: "alibiSlopes(2.5)",
    code: "BAD_OPTION",
    call: () => alibiSlopes(2.5),
    mentions: ["numHeads", "2.5"],
  },
];

describe("AttentionError", () => {
  it("is an Error subclass with a code", () => {
    const err = thrown(() => sdpa(q, k, v, { scale: NaN }));
    expect(err).toBeInstanceOf(Error);
    expect(err).toBeInstanceOf(AttentionError);
    expect((err as AttentionError).name).toBe("AttentionError");
    expect(typeof (err as AttentionError).code).toBe("string");
  });

  it.each(CASES.map((c) => [c.code, c.name, c] as const))("%s: %s", (_code, _name, c) => {
    const { workspace } = kernels("test");
    const inUse = workspace.bytesInUse;
    const err = thrown(c.call);
    expect(err).toBeInstanceOf(AttentionError);
    const e = err as AttentionError;
    expect(e.code, e.message).toBe(c.code);
    for (const m of c.mentions) expect(e.message).toContain(m);
    // Nothing kept, and the module keeps working (and still keeps nothing).
    expect(workspace.bytesInUse).toBe(inUse);
    expectStillWorks();
    expect(workspace.bytesInUse).toBe(inUse);
  });

  it("has cases for every validation code", () => {
    const codes = new Set(CASES.map((c) => c.code));
    expect([...codes].sort()).toEqual(["BAD_DTYPE", "BAD_OPTION", "SHAPE_MISMATCH"]);
  });
});

describe("OUT_OF_MEMORY", () => {
  it("a call needing more than 4 GiB fails before allocating anything, and the module recovers", () => {
    const { exports, workspace } = kernels("test");
    // Nq = Nk = 40000 with returnWeights: 40000² weights of 4 bytes = 6.4 GB > 4 GiB.
    const N = 40000;
    const big = { data: new Float32Array(N).fill(0.5), shape: [1, 1, N, 1] };
    const bytes = exports.memory.buffer.byteLength;
    const inUse = workspace.bytesInUse;
    const err = thrown(() => sdpa(big, big, big, { returnWeights: true }));
    expect(err).toBeInstanceOf(AttentionError);
    expect((err as AttentionError).code).toBe("OUT_OF_MEMORY");
    expect((err as AttentionError).message).toContain("scaledDotProductAttention");
    expect(exports.memory.buffer.byteLength).toBe(bytes);
    expect(workspace.bytesInUse).toBe(inUse);
    expectStillWorks();
    expect(workspace.bytesInUse).toBe(inUse);
  });

  it("allocTensor beyond 4 GiB fails without growing memory", () => {
    const { exports, workspace } = kernels("test");
    const bytes = exports.memory.buffer.byteLength;
    const inUse = workspace.bytesInUse;
    const err = thrown(() => allocTensor([1 << 30, 2]));
    expect(err).toBeInstanceOf(AttentionError);
    expect((err as AttentionError).code).toBe("OUT_OF_MEMORY");
    expect(exports.memory.buffer.byteLength).toBe(bytes);
    expect(workspace.bytesInUse).toBe(inUse);
    expectStillWorks();
  });

  it("does not count tensors already in WASM memory (allocTensor) as memory still to provide", () => {
    // A KV cache of 16 MiB in WASM memory, read in place. The call itself needs the query, the
    // output and O(Nk·D) scratch at most: about one cache size, not three.
    const { workspace } = kernels("test");
    const D = 16;
    const Nk = 1 << 18;
    const cacheBytes = Nk * D * 4;
    const cache = allocTensor([1, 1, Nk, D]);
    const r2 = rng(5);
    const plain = randomTensor(r2, [1, 1, Nk, D]);
    cache.data.set(plain.data);
    const q1 = randomTensor(r2, [1, 1, 2, D]);
    // Take the rest of the 4 GiB address space but twice the cache's size (untouched pages, so
    // this costs no real memory), as a large application would.
    const reserved = workspace.alloc(workspace.bytesAvailable() - 2 * cacheBytes, "test reserve");
    try {
      const res = sdpa(q1, cache, cache, { causal: true });
      expectClose(res.output, referenceSdpa(q1, plain, plain, { causal: true }).output, TOL);
    } finally {
      workspace.release(reserved);
      cache.free();
    }
  });
});
