// Key splits (Flash-Decoding, src/engine/key-split.ts) in the kernel: attention with too few heads for the
// pool runs on key ranges merged by log-sum-exp, and must match the float64 reference with every
// option that indexes keys (causal, windows, ALiBi, masks, key masks, global tokens, GQA) — and
// actually be split: every call checks which key ranges reached the pool. In the "node" project this
// suite starts three threads (so the asynchronous twin, which computes on the two workers only,
// splits too); "node-threads" pins two, where only synchronous calls split; a browser page's
// synchronous calls never split (its main thread may not block); elsewhere one thread checks the
// unsplit path against the same reference.
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { SDPA_NK } from "../assembly/shared";
import {
  MultiHeadAttention,
  init,
  runtimeInfo,
  scaledDotProductAttention,
  scaledDotProductAttentionAsync,
  type ScaledDotProductAttentionOptions,
  type Tensor,
} from "../src/index";
import { keyRanges } from "../src/engine/key-split";
import { kernels } from "../src/runtime/runtime";
import { planAttention } from "../src/engine/plan";
import { canBlock, type Task } from "../src/runtime/threads";
import { expectClose } from "./helpers/conformance";
import {
  randomAdditiveMask,
  randomBoolMask,
  randomTensor,
  rng,
  uniform,
  type Rng,
} from "./helpers/random";
import { referenceSdpa } from "./reference";
import { referenceMha } from "./reference-mha";

const TOL = { atol: 2e-5, rtol: 2e-4 };
const LSE_TOL = { atol: 1e-4, rtol: 0 };

beforeAll(async () => {
  await init(undefined, { threads: 3 });
});

// The Nk of every sdpaForward task handed to the pool, one list per kernel call.
const seen: number[][] = [];

beforeAll(() => {
  const pool = kernels("test").pool;
  if (!pool) return;
  const record = (tasks: Task[]): void => {
    const i32 = kernels("test").workspace.i32;
    const attention = tasks.filter((t) => t.fn === "sdpaForward");
    if (attention.length > 0) seen.push(attention.map((t) => i32[(t.args[0] >>> 2) + SDPA_NK / 4]));
  };
  const runAll = pool.runAll.bind(pool);
  const runAllAsync = pool.runAllAsync.bind(pool);
  vi.spyOn(pool, "runAll").mockImplementation((op, tasks) => {
    record(tasks);
    runAll(op, tasks);
  });
  vi.spyOn(pool, "runAllAsync").mockImplementation((op, tasks) => {
    record(tasks);
    return runAllAsync(op, tasks);
  });
});

afterEach(() => {
  seen.length = 0;
});

/** The key-range lengths a call of these sizes and options gets on `threads` threads, if split. */
function plannedSplit(
  dims: { B: number; H: number; Hkv: number; Nq: number; Nk: number; D: number },
  options: ScaledDotProductAttentionOptions,
  threads: number,
): number[] | undefined {
  const plan = planAttention("test", { ...dims, Dv: dims.D }, options);
  return keyRanges(plan, false, threads)?.map((r) => r.end - r.start);
}

/** What the pool saw of one attention call: its key ranges (or, when split by head, full Nk). */
function expectSplit(planned: number[] | undefined, Nk: number): void {
  const calls = seen.splice(0);
  if (planned) {
    expect(planned.length).toBeGreaterThanOrEqual(2);
    expect(calls).toEqual([planned]);
  } else {
    for (const call of calls) for (const nk of call) expect(nk).toBe(Nk);
  }
}

interface Case {
  name: string;
  B?: number;
  H?: number;
  Hkv?: number;
  Nq?: number;
  Nk: number;
  D?: number;
  options?: (r: Rng, Nq: number, Nk: number) => ScaledDotProductAttentionOptions;
  /** Query rows that see no key at all. */
  emptyRows?: number[];
}

/** A mask [1,1,Nq,Nk] hiding keys 0..2599 from every row and everything from row 2. */
function holes<T extends Uint8Array | Float32Array>(mask: Tensor<T>, Nq: number, Nk: number) {
  const masked = mask.data instanceof Uint8Array ? 0 : -Infinity;
  for (let i = 0; i < Nq; i++) mask.data.fill(masked, i * Nk, i * Nk + 2600);
  mask.data.fill(masked, 2 * Nk, 3 * Nk);
  return mask;
}

const CASES: Case[] = [
  { name: "one head, 4096 keys", Nk: 4096 },
  { name: "one head, 4099 keys (not whole tiles)", Nk: 4099 },
  { name: "two heads", H: 2, Nk: 4096, D: 64 },
  { name: "GQA: three heads on one kv head", H: 3, Hkv: 1, Nq: 2, Nk: 3000, D: 64 },
  ...[1, 2, 3, 4, 5].map((Nq) => ({
    name: `causal lower-right, Nq = ${Nq}`,
    Nq,
    Nk: 4100,
    options: () => ({ causal: true }),
  })),
  {
    name: "sliding window",
    Nq: 3,
    Nk: 5000,
    options: () => ({ causal: true, window: [700, 0] as const }),
  },
  {
    name: "upper-left window bounded on the right",
    Nq: 4,
    Nk: 6000,
    options: () => ({ align: "upper-left" as const, window: [100, 3000] as const }),
  },
  {
    name: "ALiBi",
    H: 3,
    Nq: 2,
    Nk: 4096,
    D: 64,
    options: () => ({ causal: true, alibiSlopes: new Float32Array([0.01, 0.002, 0.0005]) }),
  },
  { name: "softcap", Nq: 2, Nk: 4096, options: () => ({ softcap: 5, scale: 0.5 }) },
  {
    name: "bool mask: a range and a row fully masked",
    Nq: 3,
    Nk: 4096,
    options: (r, Nq, Nk) => ({ mask: holes(randomBoolMask(r, [1, 1, Nq, Nk], 0.7), Nq, Nk) }),
    emptyRows: [2],
  },
  {
    name: "additive mask: a range and a row fully masked",
    Nq: 3,
    Nk: 4096,
    options: (r, Nq, Nk) => ({ mask: holes(randomAdditiveMask(r, [1, 1, Nq, Nk], 0.7), Nq, Nk) }),
    emptyRows: [2],
  },
  {
    name: "global tokens outside a window (a global row too)",
    Nq: 2,
    Nk: 4096,
    options: () => ({ causal: true, window: [300, 0] as const, globalTokens: [5, 1000, 4095] }),
  },
];

describe("key splits match the reference and are taken", () => {
  it.each(CASES)("$name", async (c) => {
    const { B = 1, H = 1, Hkv = H, Nq = 1, Nk, D = 128 } = c;
    const r = rng(Nk + Nq * 7 + H);
    const q = randomTensor(r, [B, H, Nq, D]);
    const k = randomTensor(r, [B, Hkv, Nk, D]);
    const v = randomTensor(r, [B, Hkv, Nk, D]);
    const options = c.options?.(r, Nq, Nk) ?? {};
    const want = referenceSdpa(q, k, v, options);
    const threads = runtimeInfo().threads;
    const dims = { B, H, Hkv, Nq, Nk, D };
    // Every case is large enough for a synchronous call to use the pool.
    expect(B * H * Nq * Nk * 2 * D).toBeGreaterThanOrEqual(1 << 20);
    // A browser page's main thread may not block: its synchronous calls compute alone, unsplit.
    const syncThreads = canBlock() ? threads : 1;
    const syncSplit = plannedSplit(dims, options, syncThreads);
    const asyncSplit = plannedSplit(dims, options, threads - 1);
    // One head always splits on a pool; three split on two threads (on three, by head).
    if (syncThreads > 1 && B * H === 1) expect(syncSplit).toBeDefined();
    if (B * H === 3 && (syncThreads === 2 || threads - 1 === 2)) {
      expect(syncSplit ?? asyncSplit).toBeDefined();
    }

    const sync = scaledDotProductAttention(q, k, v, { ...options, returnLse: true });
    expectSplit(syncSplit, Nk);
    const async = await scaledDotProductAttentionAsync(q, k, v, { ...options, returnLse: true });
    expectSplit(asyncSplit, Nk);

    for (const got of [sync, async]) {
      expect(got.output.data.every(Number.isFinite)).toBe(true);
      expectClose(got.output, want.output, TOL, "output");
      expectClose(got.lse, want.lse, LSE_TOL, "lse");
      for (const row of c.emptyRows ?? []) {
        expect(Array.from(got.output.data.subarray(row * D, (row + 1) * D))).toEqual(
          new Array(D).fill(0),
        );
        expect(got.lse!.data[row]).toBe(-Infinity);
      }
    }
  });

  it("writes into `out` with the output's layout", () => {
    const r = rng(77);
    const [Nk, D] = [4096, 128];
    const q = randomTensor(r, [1, 1, 2, D]);
    const k = randomTensor(r, [1, 1, Nk, D]);
    const v = randomTensor(r, [1, 1, Nk, D]);
    const out = new Float32Array(2 * D).fill(NaN);
    const got = scaledDotProductAttention(q, k, v, { out });
    expect(got.output.data).toBe(out);
    expectClose(got.output, referenceSdpa(q, k, v).output, TOL, "output");
  });
});

describe("key splits through MultiHeadAttention and a KV cache", () => {
  // One head of 128: a prefill of N − 1 tokens, then a decode step, both against the float64
  // reference (the prefill's last rows), sync and async, with left padding in the key mask.
  const [E, N] = [128, 4096];

  function weights(r: Rng) {
    const mat = () => Float32Array.from({ length: E * E }, () => uniform(r, -2, 2) / Math.sqrt(E));
    const vec = () => Float32Array.from({ length: E }, () => uniform(r, -1, 1));
    return {
      wq: mat(),
      wk: mat(),
      wv: mat(),
      wo: mat(),
      bq: vec(),
      bk: vec(),
      bv: vec(),
      bo: vec(),
    };
  }

  function rows(x: Tensor, from: number, to: number): Tensor {
    return { data: x.data.slice(from * E, to * E), shape: [1, to - from, E] };
  }

  it.each([false, true])("prefill and decode (async: %s)", async (async) => {
    const r = rng(async ? 31 : 30);
    const w = weights(r);
    const config = { embedDim: E, numHeads: 1 };
    const mha = new MultiHeadAttention({ ...config, weights: w });
    const cache = mha.createCache({ maxLength: N });
    try {
      const x = randomTensor(r, [1, N, E]);
      const keyMask = { data: new Uint8Array(N).fill(1), shape: [1, N] };
      keyMask.data.fill(0, 0, 100);
      const prefixMask = { data: keyMask.data.slice(0, N - 1), shape: [1, N - 1] };
      const forward = (input: Tensor, mask: Tensor<Uint8Array>, causal: boolean) =>
        async
          ? mha.forwardAsync(input, undefined, undefined, { cache, causal, keyMask: mask })
          : Promise.resolve(
              mha.forward(input, undefined, undefined, { cache, causal, keyMask: mask }),
            );
      const threads = async ? runtimeInfo().threads - 1 : canBlock() ? runtimeInfo().threads : 1;
      const dims = { B: 1, H: 1, Hkv: 1, D: E };

      const prefill = await forward(rows(x, 0, N - 1), prefixMask, true);
      expectSplit(
        plannedSplit({ ...dims, Nq: N - 1, Nk: N - 1 }, { causal: true }, threads),
        N - 1,
      );
      const tail = referenceMha(config, w, rows(x, N - 4, N - 1), rows(x, 0, N - 1), undefined, {
        causal: true,
        keyMask: prefixMask,
      });
      expectClose(rows(prefill.output, N - 4, N - 1), tail.output, TOL, "prefill's last rows");

      const step = await forward(rows(x, N - 1, N), keyMask, false);
      expectSplit(plannedSplit({ ...dims, Nq: 1, Nk: N }, {}, threads), N);
      const want = referenceMha(config, w, rows(x, N - 1, N), x, undefined, { keyMask });
      expectClose(step.output, want.output, TOL, "decode step");
      expect(cache.length).toBe(N);
    } finally {
      mha.dispose();
    }
  });
});
