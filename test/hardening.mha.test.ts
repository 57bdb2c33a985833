// Issue 14 (hardening) for linear / linearAsync and MultiHeadAttention: every hostile argument is an
// AttentionError with its code, named in the message; a failed call grows no memory and leaks
// nothing (bytesInUse back at its baseline) and the module keeps working (a canary call); empty
// outputs come back at once (also from the async twins with a pool: every promise settles); async
// twins take their inputs before they return (detaching them afterwards changes nothing).

import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  MultiHeadAttention,
  init,
  linear,
  linearAsync,
  memoryStats,
  type AttentionErrorCode,
  type Tensor,
} from "../src/index";
import { bad } from "./helpers/errors";
import { randomTensor, rng, uniform } from "./helpers/random";

const e = (shape: number[]): Tensor => ({ data: new Float32Array(0), shape });

beforeAll(async () => {
  await init();
});

function detach(buffer: ArrayBufferLike): void {
  structuredClone(buffer, { transfer: [buffer as ArrayBuffer] });
}

function arr(r: () => number, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => uniform(r, -1, 1));
}

/** A Float32Array subclass whose `length` lies. */
class Liar extends Float32Array {
  override get length(): number {
    return 1e9;
  }
}

function canary(): void {
  const y = linear({ data: new Float32Array([1, 2]), shape: [1, 2] }, new Float32Array([1, 1]));
  expect(Array.from(y.data)).toEqual([3]);
}

/** The AttentionError `fn` throws or rejects with; checks code, message and memory. */
async function refuses(
  fn: () => unknown,
  code: AttentionErrorCode | AttentionErrorCode[],
  mentions: string[] = [],
): Promise<AttentionError> {
  const before = memoryStats();
  let err: unknown;
  try {
    await fn();
  } catch (x) {
    err = x;
  }
  expect(err, `expected an AttentionError, got ${String(err)}`).toBeInstanceOf(AttentionError);
  const a = err as AttentionError;
  expect([code].flat(), a.message).toContain(a.code);
  for (const m of mentions) expect(a.message).toContain(m);
  const after = memoryStats();
  expect(after.bytesInUse, "bytesInUse").toBe(before.bytesInUse);
  expect(after.memoryBytes, "memory size").toBe(before.memoryBytes);
  canary();
  return a;
}

/** An async twin must return a promise (never throw synchronously). */
function promiseOf(fn: () => unknown): Promise<unknown> {
  let p: unknown;
  expect(() => (p = fn())).not.toThrow();
  expect(p).toBeInstanceOf(Promise);
  return p as Promise<unknown>;
}

describe("linear / linearAsync", () => {
  const r = rng(3);
  const x = randomTensor(r, [3, 4]);
  const w = arr(r, 5 * 4);
  const b = arr(r, 5);

  it("an empty output resolves at once with [0, out], without the pool, leaking nothing", async () => {
    const before = memoryStats();
    const y = await linearAsync(e([0, 4]), new Float32Array(8));
    expect(y.shape).toEqual([0, 2]);
    expect(y.data.length).toBe(0);
    expect(linear(e([0, 4]), new Float32Array(8)).shape).toEqual([0, 2]);
    const x4 = { data: new Float32Array(24), shape: [2, 3, 4] };
    expect((await linearAsync(x4, new Float32Array(0))).shape).toEqual([2, 3, 0]);
    expect(linear(e([2 ** 31 - 1, 2 ** 31 - 1, 0]), new Float32Array(0)).shape).toEqual([
      2 ** 31 - 1,
      2 ** 31 - 1,
      0,
    ]);
    expect(memoryStats()).toEqual(before);
  });

  it("in = 0 gives the bias on every row (the empty sum), zeros without bias", async () => {
    const bias = new Float32Array([1, 2, 3]);
    const w0 = e([3, 0]);
    for (const y of [linear(e([2, 0]), w0, bias), await linearAsync(e([2, 0]), w0, bias)]) {
      expect(y.shape).toEqual([2, 3]);
      expect(Array.from(y.data)).toEqual([1, 2, 3, 1, 2, 3]);
    }
    expect(Array.from(linear(e([2, 0]), w0).data)).toEqual([0, 0, 0, 0, 0, 0]);
    await refuses(() => linear(e([2 ** 31 - 1, 2 ** 31 - 1, 0]), w0), "OUT_OF_MEMORY");
  });

  it("refuses hostile w and b, sync and async", async () => {
    const cases: Array<[string, unknown, unknown, AttentionErrorCode]> = [
      ["w a lying subclass", Liar.from(w), b, "SHAPE_MISMATCH"],
      ["w a Proxy", new Proxy(w, {}), b, "BAD_DTYPE"],
      ["w an Int32Array", new Int32Array(20), b, "BAD_DTYPE"],
      ["w a string", "w", b, "BAD_DTYPE"],
      ["w holey shape", { data: w, shape: [5, , 4] }, b, "SHAPE_MISMATCH"],
      ["b a string", w, "yes", "BAD_DTYPE"],
      ["b a lying subclass of the wrong length", w, Liar.from([1, 2]), "SHAPE_MISMATCH"],
      ["b a look-alike", w, Object.create(Float32Array.prototype), "BAD_DTYPE"],
      ["b wrong length", w, new Float32Array(4), "SHAPE_MISMATCH"],
    ];
    // A lying subclass is read through the built-in accessors: its real length is what counts.
    expect(linear(x, Liar.from(w), b).shape).toEqual([3, 5]);
    for (const [name, ww, bb, code] of cases.slice(1)) {
      await refuses(() => linear(x, bad(ww), bad(bb)), code, ["linear"]).catch((err) => {
        throw new Error(`${name}: ${String(err)}`);
      });
      await refuses(() => promiseOf(() => linearAsync(x, bad(ww), bad(bb))), code);
    }
    const detached = new Float32Array(5);
    detach(detached.buffer);
    await refuses(() => linear(x, w, detached), ["BAD_DTYPE", "SHAPE_MISMATCH"]);
    await refuses(() => promiseOf(() => linearAsync(bad("x"), w)), "BAD_OPTION");
  });

  it("linearAsync takes x, w and b before it returns", async () => {
    const want = linear(x, w, b);
    const xs = { data: x.data.slice(), shape: x.shape };
    const ws = w.slice();
    const bs = b.slice();
    const pending = linearAsync(xs, ws, bs);
    detach(xs.data.buffer);
    detach(ws.buffer);
    detach(bs.buffer);
    expect(Array.from((await pending).data)).toEqual(Array.from(want.data));
  });
});

// A small module: E = 8, H = 2, Hkv = 1, kdim = 6, vdim = 5.
const CONFIG = { embedDim: 8, numHeads: 2, numKvHeads: 1, kdim: 6, vdim: 5 } as const;

function module(extra: object = {}): MultiHeadAttention {
  return new MultiHeadAttention({ ...CONFIG, seed: 7, ...extra });
}

describe("MultiHeadAttention constructor", () => {
  it("refuses sizes past what can exist before allocating anything", async () => {
    const err = await refuses(
      () => new MultiHeadAttention({ embedDim: 2 ** 17, numHeads: 1 }),
      ["OUT_OF_MEMORY", "BAD_OPTION"],
    );
    expect(err.message).toContain("131072");
    await refuses(
      () => new MultiHeadAttention({ embedDim: 2 ** 14, numHeads: 4 }),
      "OUT_OF_MEMORY",
      ["4 GiB"],
    );
    await refuses(
      () => new MultiHeadAttention({ embedDim: 8, numHeads: 1, kdim: 2 ** 31 - 1 }),
      "OUT_OF_MEMORY",
    );
  });

  it.each<[string, unknown, AttentionErrorCode]>([
    ["options a string", "big", "BAD_OPTION"],
    ["options null", null, "BAD_OPTION"],
    ["embedDim missing", { numHeads: 2 }, "BAD_OPTION"],
    ["embedDim 2^31", { embedDim: 2 ** 31, numHeads: 1 }, "BAD_OPTION"],
    ["embedDim 1.5", { embedDim: 1.5, numHeads: 1 }, "BAD_OPTION"],
    ["embedDim '8'", { embedDim: "8", numHeads: 1 }, "BAD_OPTION"],
    ["embedDim NaN", { embedDim: NaN, numHeads: 1 }, "BAD_OPTION"],
    ["numHeads 0", { embedDim: 8, numHeads: 0 }, "BAD_OPTION"],
    ["numHeads > embedDim", { embedDim: 8, numHeads: 16 }, "BAD_OPTION"],
    ["numHeads not dividing", { embedDim: 8, numHeads: 3 }, "BAD_OPTION"],
    ["numKvHeads not dividing", { embedDim: 8, numHeads: 4, numKvHeads: 3 }, "BAD_OPTION"],
    ["numKvHeads 0", { embedDim: 8, numHeads: 4, numKvHeads: 0 }, "BAD_OPTION"],
    ["kdim 0", { embedDim: 8, numHeads: 4, kdim: 0 }, "BAD_OPTION"],
    ["vdim Infinity", { embedDim: 8, numHeads: 4, vdim: Infinity }, "BAD_OPTION"],
    ["head dim past 65536", { embedDim: 2 ** 17, numHeads: 1 }, "BAD_OPTION"],
    ["bias 'false'", { embedDim: 8, numHeads: 2, bias: "false" }, "BAD_OPTION"],
    ["seed 1.5", { embedDim: 8, numHeads: 2, seed: 1.5 }, "BAD_OPTION"],
    ["seed 2^60", { embedDim: 8, numHeads: 2, seed: 2 ** 60 }, "BAD_OPTION"],
    ["rope a string", { embedDim: 8, numHeads: 2, rope: "neox" }, "BAD_OPTION"],
    ["rope.base 1e39", { embedDim: 8, numHeads: 2, rope: { base: 1e39 } }, "BAD_OPTION"],
    ["rope.base 0", { embedDim: 8, numHeads: 2, rope: { base: 0 } }, "BAD_OPTION"],
    ["rope.style 'x'", { embedDim: 8, numHeads: 2, rope: { style: "x" } }, "BAD_OPTION"],
    ["rope unknown key", { embedDim: 8, numHeads: 2, rope: { bse: 2 } }, "BAD_OPTION"],
    ["rope on an odd head dim", { embedDim: 6, numHeads: 2, rope: {} }, "SHAPE_MISMATCH"],
    ["weights a string", { embedDim: 8, numHeads: 2, weights: "w" }, "BAD_OPTION"],
    ["weights.wq missing", { embedDim: 2, numHeads: 1, weights: {} }, "BAD_OPTION"],
  ])("%s → %s", async (_name, options, code) => {
    await refuses(() => new MultiHeadAttention(bad(options)), code, ["MultiHeadAttention"]);
  });

  it("reads the weights once, as genuine arrays", async () => {
    const r = rng(5);
    const weights = {
      wq: arr(r, 4),
      wk: arr(r, 4),
      wv: arr(r, 4),
      wo: arr(r, 4),
      bq: arr(r, 2),
    };
    const base = { embedDim: 2, numHeads: 1 };
    await refuses(
      () => new MultiHeadAttention({ ...base, weights: { ...weights, bq: bad(Liar.from([1])) } }),
      "SHAPE_MISMATCH",
    );
    await refuses(
      () => new MultiHeadAttention({ ...base, weights: { ...weights, wq: bad([1, 2, 3, 4]) } }),
      "BAD_DTYPE",
    );
    await refuses(
      () => new MultiHeadAttention({ ...base, weights: { ...weights, bk: bad("0") } }),
      "BAD_DTYPE",
    );
    await refuses(() => new MultiHeadAttention({ ...base, bias: false, weights }), "BAD_OPTION", [
      "bq",
    ]);
    let reads = 0;
    const counting = {
      ...weights,
      get wk() {
        reads++;
        return weights.wk;
      },
    };
    const mha = new MultiHeadAttention({ ...base, weights: counting });
    expect(reads).toBe(1);
    expect(Array.from(mha.getWeights().wk)).toEqual(Array.from(weights.wk));
    mha.dispose();
  });
});

describe("MultiHeadAttention.forward / forwardAsync", () => {
  const r = rng(11);
  const q = randomTensor(r, [2, 3, 8]);
  const k = randomTensor(r, [2, 4, 6]);
  const v = randomTensor(r, [2, 4, 5]);

  it.each<[string, () => unknown[], AttentionErrorCode]>([
    ["options a string", () => [q, k, v, "causal"], "BAD_OPTION"],
    ["causal 'no'", () => [q, k, v, { causal: "no" }], "BAD_OPTION"],
    ["needWeights 'yes'", () => [q, k, v, { needWeights: "yes" }], "BAD_OPTION"],
    ["averageWeights 1", () => [q, k, v, { averageWeights: 1 }], "BAD_OPTION"],
    ["keepForBackward 'true'", () => [q, k, v, { keepForBackward: "true" }], "BAD_OPTION"],
    ["window [1]", () => [q, k, v, { window: [1] }], "BAD_OPTION"],
    ["window [1.5, 0]", () => [q, k, v, { window: [1.5, 0] }], "BAD_OPTION"],
    ["window an Int32Array", () => [q, k, v, { window: new Int32Array(2) }], "BAD_OPTION"],
    ["unknown option", () => [q, k, v, { casual: true }], "BAD_OPTION"],
    ["query a string", () => ["q"], "BAD_OPTION"],
    ["query holey shape", () => [{ data: q.data, shape: [2, , 8] }], "SHAPE_MISMATCH"],
    [
      "query a lying subclass",
      () => [{ data: Liar.from(q.data), shape: [1, 3, 8] }],
      "SHAPE_MISMATCH",
    ],
    ["query of rank 4", () => [{ data: q.data, shape: [1, 2, 3, 8] }], "SHAPE_MISMATCH"],
    ["key feature dim", () => [q, v, v], "SHAPE_MISMATCH"],
    [
      "key a Float64 tensor",
      () => [q, { data: new Float64Array(48), shape: [2, 4, 6] }, v],
      "BAD_DTYPE",
    ],
    ["mask a number", () => [q, k, v, { mask: 1 }], "BAD_OPTION"],
    [
      "mask not broadcasting",
      () => [q, k, v, { mask: { data: new Uint8Array(5), shape: [5] } }],
      "SHAPE_MISMATCH",
    ],
    [
      "keyMask float32",
      () => [q, k, v, { keyMask: { data: new Float32Array(8), shape: [2, 4] } }],
      "BAD_DTYPE",
    ],
    [
      "keyMask wrong shape",
      () => [q, k, v, { keyMask: { data: new Uint8Array(4), shape: [1, 4] } }],
      "SHAPE_MISMATCH",
    ],
    ["cache forged", () => [q, k, v, { cache: { length: 0 } }], "BAD_OPTION"],
  ])("%s → %s (sync and async)", async (_name, args, code) => {
    const mha = module();
    try {
      const a = args();
      await refuses(() => mha.forward(...(a as Parameters<typeof mha.forward>)), code, [
        "MultiHeadAttention.forward",
      ]);
      await refuses(
        () => promiseOf(() => mha.forwardAsync(...(a as Parameters<typeof mha.forwardAsync>))),
        code,
        ["MultiHeadAttention.forwardAsync"],
      );
    } finally {
      mha.dispose();
    }
  });

  it("empty batches and sequences: empty results at once, with any other dim", async () => {
    const mha = module();
    try {
      const before = memoryStats();
      const empties: Array<[Tensor, Tensor, Tensor, number[]]> = [
        [e([0, 3, 8]), e([0, 4, 6]), e([0, 4, 5]), [0, 3, 8]],
        [e([2, 0, 8]), k, v, [2, 0, 8]],
        [
          e([0, 2 ** 31 - 1, 8]),
          e([0, 2 ** 31 - 1, 6]),
          e([0, 2 ** 31 - 1, 5]),
          [0, 2 ** 31 - 1, 8],
        ],
        [e([0, 8]), { data: k.data.slice(0, 24), shape: [4, 6] }, randomTensor(r, [4, 5]), [0, 8]],
      ];
      for (const [qq, kk, vv, shape] of empties) {
        const opts = { needWeights: true, averageWeights: false };
        const sync = mha.forward(qq, kk, vv, opts);
        const async_ = await mha.forwardAsync(qq, kk, vv, opts);
        for (const res of [sync, async_]) {
          expect(res.output.shape).toEqual(shape);
          expect(res.output.data.length).toBe(0);
          expect(res.weights?.data.length).toBe(0);
        }
      }
      expect(memoryStats()).toEqual(before);
      // Empty with keepForBackward: backward gives zero gradients.
      const res = mha.forward(e([2, 0, 8]), k, v, { keepForBackward: true });
      const g = mha.backward(e([2, 0, 8]), res.saved);
      expect(g.dQuery.shape).toEqual([2, 0, 8]);
      expect(g.dKey?.data.every((x) => x === 0)).toBe(true);
      expect(g.grads.wq.every((x) => x === 0)).toBe(true);
    } finally {
      mha.dispose();
    }
  });

  it("no key (Nk = 0): every row fully masked, the output is the output bias", async () => {
    const r2 = rng(4);
    const bo = arr(r2, 8);
    const E = 8;
    const w = {
      wq: arr(r2, 64),
      wk: arr(r2, 24),
      wv: arr(r2, 20),
      wo: arr(r2, 64),
      bo,
    };
    const mha = new MultiHeadAttention({ ...CONFIG, weights: w });
    try {
      const kk = e([2, 0, 6]);
      const vv = e([2, 0, 5]);
      const want = Array.from({ length: 6 }, () => Array.from(bo)).flat();
      const sync = mha.forward(q, kk, vv, { needWeights: true, keepForBackward: true });
      const async_ = await mha.forwardAsync(q, kk, vv, { needWeights: true });
      for (const res of [sync, async_]) {
        expect(res.output.shape).toEqual([2, 3, E]);
        expect(Array.from(res.output.data)).toEqual(want);
        expect(res.weights?.shape).toEqual([2, 3, 0]);
      }
      const dy = randomTensor(r2, [2, 3, 8]);
      const g = mha.backward(dy, sync.saved);
      expect(g.dQuery.data.every((x) => x === 0)).toBe(true);
      expect(g.dKey?.shape).toEqual([2, 0, 6]);
      const dbo = new Float32Array(8);
      for (let i = 0; i < 6; i++) for (let j = 0; j < 8; j++) dbo[j] += dy.data[i * 8 + j];
      expect(Array.from(g.grads.bo ?? [])).toEqual(Array.from(dbo));
      expect(g.grads.wo.every((x) => x === 0)).toBe(true);
    } finally {
      mha.dispose();
    }
  });

  it("forwardAsync takes query, key, value, mask and keyMask before it returns", async () => {
    const mha = module({ rope: {} });
    try {
      const r3 = rng(8);
      const mask = {
        data: Uint8Array.from({ length: 12 }, (_, i) => (i % 5 === 0 ? 0 : 1)),
        shape: [3, 4],
      };
      const keyMask = { data: new Uint8Array([1, 1, 0, 1, 1, 0, 1, 1]), shape: [2, 4] };
      const opts = { needWeights: true, causal: true, keepForBackward: true } as const;
      const want = mha.forward(q, k, v, { ...opts, mask, keyMask });
      const fresh = (t: {
        data: Float32Array | Uint8Array;
        shape: number[] | readonly number[];
      }) => ({
        data: t.data.slice(),
        shape: [...t.shape],
      });
      const [qq, kk, vv, mm, km] = [q, k, v, mask, keyMask].map(fresh);
      const pending = mha.forwardAsync(qq as Tensor, kk as Tensor, vv as Tensor, {
        ...opts,
        mask: mm as Tensor<Uint8Array>,
        keyMask: km as Tensor<Uint8Array>,
      });
      for (const t of [qq, kk, vv, mm, km]) detach(t.data.buffer);
      const got = await pending;
      expect(Array.from(got.output.data)).toEqual(Array.from(want.output.data));
      expect(Array.from(got.weights?.data ?? [])).toEqual(Array.from(want.weights?.data ?? []));
      const dy = randomTensor(r3, [2, 3, 8]);
      const g1 = mha.backward(dy, want.saved);
      const g2 = mha.backward(dy, got.saved);
      expect(Array.from(g2.dKey?.data ?? [])).toEqual(Array.from(g1.dKey?.data ?? []));
      expect(Array.from(g2.grads.wq)).toEqual(Array.from(g1.grads.wq));
    } finally {
      mha.dispose();
    }
  });

  it("a cache fed keys without queries takes them", async () => {
    const mha = module();
    try {
      const cache = mha.createCache({ batch: 2, maxLength: 8 });
      mha.forward(e([2, 0, 8]), k, v, { cache });
      expect(cache.length).toBe(4);
      const step = mha.forward(q, e([2, 0, 6]), e([2, 0, 5]), { cache });
      const whole = mha.forward(q, k, v);
      const diff = step.output.data.map((x, i) => Math.abs(x - whole.output.data[i]));
      expect(Math.max(...diff)).toBeLessThan(1e-5);
      expect(cache.length).toBe(4);
    } finally {
      mha.dispose();
    }
  });
});

describe("MultiHeadAttention: backward, caches, weights, dispose", () => {
  const r = rng(13);
  const q = randomTensor(r, [1, 3, 8]);
  const module = (): MultiHeadAttention => new MultiHeadAttention({ embedDim: 8, numHeads: 2 });

  it("backward checks gradOutput and saved", async () => {
    const mha = module();
    try {
      const { saved } = mha.forward(q, undefined, undefined, { keepForBackward: true });
      await refuses(() => mha.backward(bad("dy"), saved), "BAD_OPTION", ["gradOutput"]);
      // A lying subclass is read through the built-in accessors: its real length counts.
      const honest = mha.backward(q, saved);
      const lying = mha.backward({ data: Liar.from(q.data), shape: [1, 3, 8] }, saved);
      expect(Array.from(lying.grads.wq)).toEqual(Array.from(honest.grads.wq));
      await refuses(() => mha.backward(e([1, 3, 0]), saved), "SHAPE_MISMATCH");
      await refuses(() => mha.backward(q, bad({})), "BAD_OPTION", ["saved"]);
    } finally {
      mha.dispose();
    }
  });

  it.each<[string, unknown, AttentionErrorCode]>([
    ["a string", "big", "BAD_OPTION"],
    ["null (maxLength required)", null, "BAD_OPTION"],
    ["maxLength 2^31", { maxLength: 2 ** 31 }, "BAD_OPTION"],
    ["maxLength 0", { maxLength: 0 }, "BAD_OPTION"],
    ["maxLength '8'", { maxLength: "8" }, "BAD_OPTION"],
    ["batch 1.5", { batch: 1.5, maxLength: 8 }, "BAD_OPTION"],
    ["unknown key", { maxLen: 8 }, "BAD_OPTION"],
    ["past 4 GiB", { batch: 2 ** 20, maxLength: 2 ** 20 }, "OUT_OF_MEMORY"],
  ])("createCache %s → %s", async (_name, options, code) => {
    const mha = module();
    try {
      await refuses(() => mha.createCache(bad(options)), code, ["createCache"]);
    } finally {
      mha.dispose();
    }
  });

  it("setWeights reads its argument once and refuses hostile weights", async () => {
    const mha = module();
    try {
      const w = mha.getWeights();
      await refuses(() => mha.setWeights(bad("w")), "BAD_OPTION");
      await refuses(() => mha.setWeights({ ...w, bq: new Float32Array(3) }), "SHAPE_MISMATCH");
      await refuses(
        () => mha.setWeights({ ...w, wo: bad({ data: w.wo, shape: [8, 8, 1] }) }),
        "SHAPE_MISMATCH",
      );
      await refuses(() => mha.setWeights({ ...w, extra: 1 } as never), "BAD_OPTION");
      const detached = w.wq.slice();
      detach(detached.buffer);
      await refuses(() => mha.setWeights({ ...w, wq: detached }), ["BAD_DTYPE", "SHAPE_MISMATCH"]);
      mha.setWeights(w);
      expect(Array.from(mha.getWeights().wv)).toEqual(Array.from(w.wv));
    } finally {
      mha.dispose();
    }
  });

  it("every method after dispose → DISPOSED", async () => {
    const mha = module();
    const { saved } = mha.forward(q, undefined, undefined, { keepForBackward: true });
    const w = mha.getWeights();
    mha.dispose();
    await refuses(() => mha.forward(q), "DISPOSED");
    await refuses(() => promiseOf(() => mha.forwardAsync(q)), "DISPOSED");
    await refuses(() => mha.backward(q, saved), "DISPOSED");
    await refuses(() => mha.getWeights(), "DISPOSED");
    await refuses(() => mha.setWeights(w), "DISPOSED");
    await refuses(() => mha.createCache({ maxLength: 4 }), "DISPOSED");
    mha.dispose(); // twice is fine
  });
});
