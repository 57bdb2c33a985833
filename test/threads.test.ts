// The worker pool: with threads, calls large enough to be split give the float64 reference's
// results (the split is by head and by row, so they equal the one-thread results), and the pool
// survives errors. Runs in the "node-threads" project (WASM_ATTENTION_THREADS=2) and, as a plain
// check of the default, with one thread elsewhere.
import { beforeAll, describe, expect, it, vi } from "vitest";
import {
  AttentionError,
  MultiHeadAttention,
  init,
  linear,
  runtimeInfo,
  scaledDotProductAttention,
  scaledDotProductAttentionBackward,
  scaledDotProductAttentionBackwardAsync,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { expectClose } from "./helpers/conformance";
import { randomBoolMask, randomTensor, rng } from "./helpers/random";
import { referenceSdpa } from "./reference";
import { referenceLinear } from "./reference-mha";
import { referenceSdpaBackward } from "./reference-backward";

const pinned = (globalThis as { process?: { env: Record<string, string | undefined> } }).process
  ?.env.WASM_ATTENTION_THREADS;
const TOL = { atol: 2e-5, rtol: 2e-4 };

beforeAll(async () => {
  await init();
});

describe("threads", () => {
  it("runs on the pinned number of threads (1 by default)", () => {
    expect(runtimeInfo().threads).toBe(pinned ? Number(pinned) : 1);
  });

  it("splits attention by head and matches the reference (masks, causal, GQA, weights, lse)", () => {
    const r = rng(21);
    const [B, H, Hkv, N, D] = [2, 6, 3, 130, 40];
    const q = randomTensor(r, [B, H, N, D]);
    const k = randomTensor(r, [B, Hkv, N, D]);
    const v = randomTensor(r, [B, Hkv, N, D]);
    const mask = randomBoolMask(r, [B, 1, 1, N], 0.9);
    const options = { causal: true, mask };
    const got = scaledDotProductAttention(q, k, v, {
      ...options,
      returnWeights: true,
      returnLse: true,
    });
    const want = referenceSdpa(q, k, v, options);
    expectClose(got.output, want.output, TOL);
    expectClose(got.weights!, want.weights, TOL);
    expectClose(got.lse!, want.lse, { atol: 1e-4, rtol: 0 });
  });

  it("splits a decode step over many heads", () => {
    const r = rng(5);
    const [H, N, D] = [8, 3000, 64];
    const q = randomTensor(r, [1, H, 1, D]);
    const k = randomTensor(r, [1, H, N, D]);
    const v = randomTensor(r, [1, H, N, D]);
    expectClose(scaledDotProductAttention(q, k, v).output, referenceSdpa(q, k, v).output, TOL);
  });

  it("splits the GEMM by rows (linear and multi-head attention)", () => {
    const r = rng(8);
    const x = randomTensor(r, [301, 256]);
    const w = randomTensor(r, [200, 256]);
    const b = randomTensor(r, [200]).data;
    expectClose(linear(x, w, b), referenceLinear(x, w.data, 200, b), { atol: 2e-4, rtol: 2e-4 });
    const mha = new MultiHeadAttention({ embedDim: 128, numHeads: 4, seed: 3 });
    try {
      const seq = randomTensor(r, [2, 96, 128]);
      const a = mha.forward(seq, seq, seq, { causal: true }).output.data;
      const again = mha.forward(seq, seq, seq, { causal: true }).output.data;
      expect(Array.from(again)).toEqual(Array.from(a));
      expect(a.every(Number.isFinite)).toBe(true);
    } finally {
      mha.dispose();
    }
  });

  it("splits the attention backward by (batch, kv-head) group, sync and async", async () => {
    const r = rng(17);
    const [B, H, Hkv, N, D] = [2, 4, 2, 150, 24];
    const q = randomTensor(r, [B, H, N, D]);
    const k = randomTensor(r, [B, Hkv, N, D]);
    const v = randomTensor(r, [B, Hkv, N, D]);
    const dout = randomTensor(r, [B, H, N, D]);
    const options = { causal: true, dropout: { p: 0.2, seed: 5 } };
    const f = scaledDotProductAttention(q, k, v, { ...options, returnLse: true });
    const args = [q, k, v, f.output, dout, { ...options, lse: f.lse! }] as const;
    const pool = kernels("test").pool;
    const taskCounts: number[] = [];
    const runAll = pool?.runAll.bind(pool);
    const spy = pool
      ? vi.spyOn(pool, "runAll").mockImplementation((op, tasks) => {
          taskCounts.push(tasks.filter((t) => t.fn === "sdpaBackward").length);
          runAll!(op, tasks);
        })
      : undefined;
    const sync = scaledDotProductAttentionBackward(...args);
    spy?.mockRestore();
    // Every thread of the pool gets groups: 4 (batch, kv-head) groups over its threads.
    if (pool) expect(taskCounts).toEqual([pool.size]);
    const want = referenceSdpaBackward(q, k, v, dout, options);
    for (const g of ["dq", "dk", "dv"] as const) {
      expectClose(sync[g], want[g], { atol: 1e-4, rtol: 1e-3 });
    }
    // Whole groups per thread: the async split (workers only) gives the same bits.
    const async = await scaledDotProductAttentionBackwardAsync(...args);
    for (const g of ["dq", "dk", "dv"] as const) {
      expect(Array.from(async[g].data)).toEqual(Array.from(sync[g].data));
    }
  });

  it("keeps working after a failed call", () => {
    const r = rng(2);
    const q = randomTensor(r, [1, 4, 200, 32]);
    expect(() => scaledDotProductAttention(q, randomTensor(r, [1, 4, 200, 31]), q)).toThrow(
      AttentionError,
    );
    expectClose(scaledDotProductAttention(q, q, q).output, referenceSdpa(q, q, q).output, TOL);
  });
});
