// The worker pool in a real browser page (the chromium project; the test server sends COOP/COEP, so
// the page is cross-origin isolated): Web Workers on shared memory. The page's main thread may not
// block, so the synchronous ops compute on it alone and the …Async twins use the workers.
import { beforeAll, describe, expect, it, vi } from "vitest";
import {
  MultiHeadAttention,
  allocTensor,
  init,
  linear,
  linearAsync,
  runtimeInfo,
  scaledDotProductAttention,
  scaledDotProductAttentionAsync,
  terminateThreads,
} from "../src/index";
import { expectClose } from "./helpers/conformance";
import { randomTensor, rng } from "./helpers/random";
import { referenceSdpa } from "./reference";

beforeAll(async () => {
  await init(undefined, { threads: 2 });
});

describe("threads in the browser", () => {
  it("runs a pool of two in a cross-origin isolated page", () => {
    expect((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated).toBe(true);
    expect(runtimeInfo().threads).toBe(2);
  });

  it("computes attention on the workers with scaledDotProductAttentionAsync", async () => {
    const r = rng(4);
    const q = randomTensor(r, [1, 4, 70, 24]);
    const k = randomTensor(r, [1, 4, 90, 24]);
    const v = randomTensor(r, [1, 4, 90, 24]);
    const [a, b] = await Promise.all([
      scaledDotProductAttentionAsync(q, k, v, { causal: true }),
      scaledDotProductAttentionAsync(q, k, v),
    ]);
    expectClose(a.output, referenceSdpa(q, k, v, { causal: true }).output, {
      atol: 2e-5,
      rtol: 2e-4,
    });
    expectClose(b.output, referenceSdpa(q, k, v).output, { atol: 2e-5, rtol: 2e-4 });
    // The synchronous op (on the page's thread) gives the same numbers.
    expect(Array.from(scaledDotProductAttention(q, k, v).output.data)).toEqual(
      Array.from(b.output.data),
    );
  });

  it("computes linear on the workers with linearAsync", async () => {
    const r = rng(6);
    const x = randomTensor(r, [130, 48]);
    const w = randomTensor(r, [40, 48]).data;
    expect(Array.from((await linearAsync(x, w)).data)).toEqual(Array.from(linear(x, w).data));
  });

  it("computes multi-head attention on the workers with forwardAsync", async () => {
    const r = rng(7);
    const mha = new MultiHeadAttention({ embedDim: 64, numHeads: 8, numKvHeads: 2 });
    const x = randomTensor(r, [2, 140, 64]);
    const async = await mha.forwardAsync(x, x, x, { causal: true });
    const sync = mha.forward(x, x, x, { causal: true });
    mha.dispose();
    expect(Array.from(async.output.data)).toEqual(Array.from(sync.output.data));
  });

  it("rejects bad input with AttentionError", async () => {
    const q = randomTensor(rng(1), [2, 4]);
    await expect(
      scaledDotProductAttentionAsync(q, randomTensor(rng(2), [2, 3]), q),
    ).rejects.toMatchObject({
      code: "SHAPE_MISMATCH",
    });
  });

  it("terminateThreads() terminates the Web Workers after a pending call; init({ threads }) starts new ones", async () => {
    const r = rng(9);
    const q = randomTensor(r, [1, 4, 70, 24]);
    const kept = allocTensor(q.shape);
    kept.data.set(q.data);
    const want = Array.from(scaledDotProductAttention(q, q, q).output.data);
    const terminate = vi.spyOn(Worker.prototype, "terminate");
    const pending = scaledDotProductAttentionAsync(kept, q, q);
    const stopped = terminateThreads();
    expect(runtimeInfo().threads).toBe(1);
    expect(Array.from((await pending).output.data)).toEqual(want);
    await stopped;
    expect(terminate).toHaveBeenCalledOnce();
    terminate.mockRestore();
    // On the page's thread now, with the same results.
    expect(Array.from((await scaledDotProductAttentionAsync(kept, q, q)).output.data)).toEqual(
      want,
    );
    await init({ threads: 2 });
    expect(runtimeInfo().threads).toBe(2);
    expect(Array.from((await scaledDotProductAttentionAsync(kept, q, q)).output.data)).toEqual(
      want,
    );
    kept.free();
  });
});
