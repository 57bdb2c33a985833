// The …Async twins built on steps (src/runtime/steps.ts): MultiHeadAttention.forwardAsync,
// blockSparseAttentionAsync, attentionPoolingAsync, hardAttentionAsync and the score-term family's give the same numbers as their synchronous ops (the split across
// workers is by row and by head, so results are bit-identical), through a KV cache too; rejections
// leave the module usable; dispose() while a call is pending. Runs with the pool in "node-threads"
// and on the calling thread elsewhere.
import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  MultiHeadAttention,
  additiveAttention,
  additiveAttentionAsync,
  bilinearAttention,
  bilinearAttentionAsync,
  cosineAttention,
  cosineAttentionAsync,
  hybridAttention,
  hybridAttentionAsync,
  hardAttention,
  hardAttentionAsync,
  attentionPooling,
  attentionPoolingAsync,
  blockSparseAttention,
  blockSparseAttentionAsync,
  init,
  sparsePatterns,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { randomAdditiveMask, randomBoolMask, randomTensor, rng } from "./helpers/random";

beforeAll(async () => {
  await init();
});

const same = (a: Float32Array | undefined, b: Float32Array | undefined): void =>
  expect(Array.from(a ?? [])).toEqual(Array.from(b ?? []));

describe("MultiHeadAttention.forwardAsync", () => {
  it("equals forward() on self and cross attention, with masks and weights", async () => {
    const r = rng(11);
    const mha = new MultiHeadAttention({
      embedDim: 48,
      numHeads: 6,
      numKvHeads: 2,
      kdim: 20,
      vdim: 12,
    });
    try {
      const q = randomTensor(r, [2, 70, 48]);
      const k = randomTensor(r, [2, 90, 20]);
      const v = randomTensor(r, [2, 90, 12]);
      const keyMask = randomBoolMask(r, [2, 90], 0.8);
      const options = { keyMask, needWeights: true, averageWeights: false };
      const sync = mha.forward(q, k, v, options);
      const async = await mha.forwardAsync(q, k, v, options);
      same(async.output.data, sync.output.data);
      expect(async.output.shape).toEqual(sync.output.shape);
      same(async.weights?.data, sync.weights?.data);
      expect(async.weights?.shape).toEqual([2, 6, 70, 90]);
    } finally {
      mha.dispose();
    }
    const self = new MultiHeadAttention({ embedDim: 64, numHeads: 4, rope: {} });
    try {
      const x = randomTensor(r, [300, 64]);
      const sync = self.forward(x, x, x, { causal: true });
      same((await self.forwardAsync(x, x, x, { causal: true })).output.data, sync.output.data);
      same((await self.forwardAsync(x)).output.data, self.forward(x).output.data);
    } finally {
      self.dispose();
    }
  });

  it("prefills and decodes through a KV cache like forward()", async () => {
    const r = rng(12);
    const mha = new MultiHeadAttention({ embedDim: 32, numHeads: 4, numKvHeads: 2, rope: {} });
    try {
      const syncCache = mha.createCache({ batch: 2, maxLength: 40 });
      const asyncCache = mha.createCache({ batch: 2, maxLength: 40 });
      const prompt = randomTensor(r, [2, 30, 32]);
      const opts = (cache: typeof syncCache) => ({ cache, causal: true });
      same(
        (await mha.forwardAsync(prompt, prompt, prompt, opts(asyncCache))).output.data,
        mha.forward(prompt, prompt, prompt, opts(syncCache)).output.data,
      );
      for (let step = 0; step < 5; step++) {
        const x = randomTensor(r, [2, 1, 32]);
        same(
          (await mha.forwardAsync(x, x, x, opts(asyncCache))).output.data,
          mha.forward(x, x, x, opts(syncCache)).output.data,
        );
      }
      expect(asyncCache.length).toBe(35);
    } finally {
      mha.dispose();
    }
  });

  it("rejects bad input with AttentionError, keeps nothing and stays usable", async () => {
    const r = rng(13);
    const mha = new MultiHeadAttention({ embedDim: 16, numHeads: 2 });
    const { workspace } = kernels("test");
    const inUse = workspace.bytesInUse;
    const x = randomTensor(r, [5, 16]);
    await expect(mha.forwardAsync(randomTensor(r, [5, 12]))).rejects.toMatchObject({
      code: "SHAPE_MISMATCH",
      message: expect.stringContaining("MultiHeadAttention.forwardAsync: query has shape [5,12]"),
    });
    const cache = mha.createCache({ maxLength: 2 });
    await expect(mha.forwardAsync(x, x, x, { cache })).rejects.toMatchObject({
      code: "CACHE_FULL",
    });
    expect(cache.length).toBe(0);
    cache.dispose();
    expect(workspace.bytesInUse).toBe(inUse);
    same((await mha.forwardAsync(x)).output.data, mha.forward(x).output.data);
    expect(workspace.bytesInUse).toBe(inUse);
    mha.dispose();
  });

  it("lets dispose() wait for pending calls before freeing the weights", async () => {
    const r = rng(14);
    const { workspace } = kernels("test");
    const before = workspace.bytesInUse;
    const mha = new MultiHeadAttention({ embedDim: 64, numHeads: 8 });
    const x = randomTensor(r, [256, 64]);
    const expected = mha.forward(x).output.data;
    const pending = mha.forwardAsync(x);
    mha.dispose();
    same((await pending).output.data, expected);
    expect(workspace.bytesInUse).toBe(before);
    expect(() => mha.forward(x)).toThrow(AttentionError);
    await expect(mha.forwardAsync(x)).rejects.toMatchObject({ code: "DISPOSED" });
  });
});

describe("blockSparseAttentionAsync", () => {
  it("equals blockSparseAttention, per-head and shared layouts, causal, weights", async () => {
    const r = rng(15);
    const q = randomTensor(r, [2, 4, 128, 24]);
    const k = randomTensor(r, [2, 2, 192, 24]);
    const v = randomTensor(r, [2, 2, 192, 20]);
    const shared = randomBoolMask(r, [8, 12], 0.3);
    const perHead = randomBoolMask(r, [4, 8, 12], 0.3);
    for (const layout of [shared, perHead]) {
      for (const causal of [false, true]) {
        const options = { layout, blockSize: 16, causal, returnWeights: true };
        const sync = blockSparseAttention(q, k, v, options);
        const async = await blockSparseAttentionAsync(q, k, v, options);
        same(async.output.data, sync.output.data);
        expect(async.output.shape).toEqual([2, 4, 128, 20]);
        same(async.weights?.data, sync.weights?.data);
      }
    }
  });

  it("takes sparsePatterns layouts and rejects bad input with AttentionError", async () => {
    const r = rng(16);
    const x = randomTensor(r, [1, 2, 256, 16]);
    const layout = sparsePatterns.longformer(8, { window: 1, globalBlocks: [0] });
    const options = { layout, blockSize: 32 };
    same(
      (await blockSparseAttentionAsync(x, x, x, options)).output.data,
      blockSparseAttention(x, x, x, options).output.data,
    );
    const { workspace } = kernels("test");
    const inUse = workspace.bytesInUse;
    await expect(
      blockSparseAttentionAsync(x, x, x, { layout, blockSize: 24 }),
    ).rejects.toMatchObject({
      code: "SHAPE_MISMATCH",
      message: expect.stringContaining("blockSparseAttentionAsync: Nq = 256"),
    });
    await expect(
      blockSparseAttentionAsync(x, x, x, { layout, blockSize: 16 }),
    ).rejects.toBeInstanceOf(AttentionError);
    expect(workspace.bytesInUse).toBe(inUse);
  });
});

describe("attentionPoolingAsync", () => {
  it("equals attentionPooling, with and without a mask, and rejects bad input", async () => {
    const r = rng(17);
    const h = randomTensor(r, [3, 200, 40]);
    const params = {
      w: randomTensor(r, [24, 40]),
      b: randomTensor(r, [24]).data,
      context: randomTensor(r, [24]).data,
    };
    for (const mask of [undefined, randomBoolMask(r, [3, 200], 0.7)]) {
      const sync = attentionPooling(h, params, { mask });
      const async = await attentionPoolingAsync(h, params, { mask });
      same(async.output.data, sync.output.data);
      same(async.weights.data, sync.weights.data);
      expect(async.output.shape).toEqual([3, 40]);
    }
    await expect(
      attentionPoolingAsync(h, { ...params, context: new Float32Array(5) }),
    ).rejects.toMatchObject({ code: "SHAPE_MISMATCH" });
  });
});

describe("the score-term family's async twins", () => {
  // B = 1 splits the additive scores by query rows, B = 3 by batch entries; masks broadcast.
  it.each([
    [1, [1, 90, 70]],
    [3, [90, 70]],
  ] as const)("equal their synchronous ops (B = %i, mask %j)", async (B, maskShape) => {
    const r = rng(18 + B);
    const q = randomTensor(r, [B, 90, 16]);
    const k = randomTensor(r, [B, 70, 12]);
    const v = randomTensor(r, [B, 70, 10]);
    const additive = {
      wq: randomTensor(r, [20, 16]),
      wk: randomTensor(r, [20, 12]),
      va: randomTensor(r, [20]).data,
      bias: randomTensor(r, [20]).data,
    };
    const bilinear = { w: randomTensor(r, [16, 12]) };
    for (const mask of [randomBoolMask(r, maskShape, 0.7), randomAdditiveMask(r, maskShape, 0.7)]) {
      const options = { mask, returnWeights: true };
      const pairs = [
        [
          additiveAttention(q, k, v, additive, options),
          await additiveAttentionAsync(q, k, v, additive, options),
        ],
        [
          bilinearAttention(q, k, v, bilinear, options),
          await bilinearAttentionAsync(q, k, v, bilinear, options),
        ],
        [
          hybridAttention(
            q,
            k,
            v,
            {
              terms: [
                { kind: "additive", weight: 0.5, ...additive },
                { kind: "bilinear", weight: 2, ...bilinear },
                { kind: "additive", weight: -1, ...additive },
              ],
            },
            options,
          ),
          await hybridAttentionAsync(
            q,
            k,
            v,
            {
              terms: [
                { kind: "additive", weight: 0.5, ...additive },
                { kind: "bilinear", weight: 2, ...bilinear },
                { kind: "additive", weight: -1, ...additive },
              ],
            },
            options,
          ),
        ],
      ];
      for (const [sync, async] of pairs) {
        same(async.output.data, sync.output.data);
        same(async.weights?.data, sync.weights?.data);
        expect(async.output.shape).toEqual(sync.output.shape);
      }
    }
    const c = randomTensor(r, [B, 70, 16]);
    same(
      (await cosineAttentionAsync(q, c, v, { temperature: 0.5 })).output.data,
      cosineAttention(q, c, v, { temperature: 0.5 }).output.data,
    );
  });

  it("reject bad input with AttentionError and keep nothing", async () => {
    const r = rng(21);
    const x = randomTensor(r, [1, 8, 6]);
    const { workspace } = kernels("test");
    const inUse = workspace.bytesInUse;
    await expect(
      bilinearAttentionAsync(x, x, x, { w: randomTensor(r, [5, 6]) }),
    ).rejects.toMatchObject({
      code: "SHAPE_MISMATCH",
      message: expect.stringContaining("bilinearAttentionAsync"),
    });
    await expect(additiveAttentionAsync(x, x, x, null as never)).rejects.toBeInstanceOf(
      AttentionError,
    );
    await expect(hybridAttentionAsync(x, x, x, { terms: [] })).rejects.toMatchObject({
      code: "BAD_OPTION",
    });
    expect(workspace.bytesInUse).toBe(inUse);
  });
});

describe("hardAttentionAsync", () => {
  // B = 1 splits by kv-head groups, B = 3 by batch entries; masks broadcast over heads or batches.
  it.each([
    [1, [1, 4, 40, 50]],
    [3, [3, 1, 40, 50]],
    [3, [40, 50]],
  ] as const)("equals hardAttention (B = %i, mask %j)", async (B, maskShape) => {
    const r = rng(22 + B);
    const q = randomTensor(r, [B, 4, 40, 12]);
    const k = randomTensor(r, [B, 2, 50, 12]);
    const v = randomTensor(r, [B, 2, 50, 9]);
    for (const mask of [randomBoolMask(r, maskShape, 0.6), randomAdditiveMask(r, maskShape, 0.6)]) {
      const options = { topK: 5, mask, returnWeights: true };
      const sync = hardAttention(q, k, v, options);
      const async = await hardAttentionAsync(q, k, v, options);
      same(async.output.data, sync.output.data);
      same(async.weights?.data, sync.weights?.data);
    }
    await expect(hardAttentionAsync(q, k, v, { topK: 0 })).rejects.toMatchObject({
      code: "BAD_OPTION",
      message: expect.stringContaining("hardAttentionAsync: topK"),
    });
  });
});
