// WASM memory over many calls: every call gives back what it took (bytesInUse returns to its
// baseline after each call, failed calls included), and once every kind of call has run once,
// linear memory stops growing.

import { beforeAll, afterAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  allocTensor,
  init,
  scaledDotProductAttention,
  softmax,
  type Tensor,
  type WasmTensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { expectClose, type Tolerance } from "./helpers/conformance";
import { randInt, randomAdditiveMask, randomBoolMask, randomTensor, rng } from "./helpers/random";
import { referenceSdpa, referenceSoftmax } from "./reference";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };
const CALLS = 3000;

/** One kind of call. `run` returns the numbers it produced (or throws, for failing kinds). */
interface Kind {
  name: string;
  fails?: AttentionError["code"];
  run: () => Float32Array;
  /** The float64 reference of what `run` returns, for spot checks. */
  expected?: () => ArrayLike<number>;
}

const persistent: WasmTensor[] = [];
let kinds: Kind[] = [];

beforeAll(async () => {
  await init();
  const r = rng(2024);
  const t = (shape: number[]): Tensor => randomTensor(r, shape);

  // A KV cache living in WASM memory for the whole test, as a long-running app would keep one.
  const cacheK = allocTensor([1, 2, 50, 16]);
  const cacheV = allocTensor([1, 2, 50, 12]);
  cacheK.data.set(randomTensor(r, cacheK.shape).data);
  cacheV.data.set(randomTensor(r, cacheV.shape).data);
  const outTensor = allocTensor([1, 4, 3, 12]);
  persistent.push(cacheK, cacheV, outTensor);
  const cachedK = randomTensor(r, cacheK.shape);
  cachedK.data.set(cacheK.data);
  const cachedV = randomTensor(r, cacheV.shape);
  cachedV.data.set(cacheV.data);

  const q1 = t([2, 4, 7, 8]);
  const k1 = t([2, 2, 9, 8]);
  const v1 = t([2, 2, 9, 5]);
  const q2 = t([70, 33]);
  const k2 = t([129, 33]);
  const v2 = t([129, 17]);
  const q3 = t([1, 4, 3, 16]);
  const x = t([5, 9, 13]);
  const boolMask = randomBoolMask(r, [2, 1, 7, 9], 0.6);
  const addMask = randomAdditiveMask(r, [70, 129], 0.8);
  const out1 = new Float32Array(2 * 4 * 7 * 5);
  const huge = { data: new Float32Array(40000), shape: [40000, 1] };

  kinds = [
    {
      name: "gqa + bool mask + weights + lse",
      run: () => {
        const res = scaledDotProductAttention(q1, k1, v1, {
          mask: boolMask,
          returnWeights: true,
          returnLse: true,
        });
        return res.weights!.data;
      },
      expected: () => referenceSdpa(q1, k1, v1, { mask: boolMask }).weights.data,
    },
    {
      name: "causal into out",
      run: () => scaledDotProductAttention(q1, k1, v1, { causal: true, out: out1 }).output.data,
      expected: () => referenceSdpa(q1, k1, v1, { causal: true }).output.data,
    },
    {
      name: "rank 2, tiles, additive mask, softcap",
      run: () =>
        scaledDotProductAttention(q2, k2, v2, { mask: addMask, softcap: 4, returnLse: true }).output
          .data,
      expected: () => referenceSdpa(q2, k2, v2, { mask: addMask, softcap: 4 }).output.data,
    },
    {
      name: "rank 2, window + globals + weights",
      run: () =>
        scaledDotProductAttention(q2, k2, v2, {
          window: [4, 4],
          globalTokens: Int32Array.from([0, 100]),
          returnWeights: true,
        }).weights!.data,
      expected: () =>
        referenceSdpa(q2, k2, v2, { window: [4, 4], globalTokens: [0, 100] }).weights.data,
    },
    {
      name: "decode against the WASM-resident cache, into a WasmTensor out",
      run: () =>
        scaledDotProductAttention(q3, cacheK, cacheV, { causal: true, out: outTensor.data }).output
          .data,
      expected: () => referenceSdpa(q3, cachedK, cachedV, { causal: true }).output.data,
    },
    {
      name: "softmax axis 1",
      run: () => softmax(x, { axis: 1 }).data,
      expected: () => referenceSoftmax(x, 1).data,
    },
    {
      name: "softmax last axis of a WasmTensor",
      run: () => softmax(cacheV).data,
      expected: () => referenceSoftmax(cachedV).data,
    },
    {
      name: "allocTensor + free inside the loop",
      run: () => {
        const tmp = allocTensor([1, 2, 9, 8]);
        try {
          tmp.data.set(k1.data.subarray(0, tmp.data.length));
          return scaledDotProductAttention(tmp, tmp, tmp, { causal: true }).output.data;
        } finally {
          tmp.free();
        }
      },
    },
    {
      name: "failing: shape mismatch",
      fails: "SHAPE_MISMATCH",
      run: () => scaledDotProductAttention(q1, k2, v2).output.data,
    },
    {
      name: "failing: mask does not broadcast",
      fails: "SHAPE_MISMATCH",
      run: () => scaledDotProductAttention(q2, k2, v2, { mask: boolMask }).output.data,
    },
    {
      name: "failing: bad option",
      fails: "BAD_OPTION",
      run: () => scaledDotProductAttention(q1, k1, v1, { window: [0.5, 1] }).output.data,
    },
    {
      name: "failing: out of memory",
      fails: "OUT_OF_MEMORY",
      run: () => scaledDotProductAttention(huge, huge, huge, { returnWeights: true }).output.data,
    },
    {
      name: "failing: wrong out length",
      fails: "SHAPE_MISMATCH",
      run: () => scaledDotProductAttention(q1, k1, v1, { out: new Float32Array(3) }).output.data,
    },
  ];
});

afterAll(() => {
  for (const t of persistent) t.free();
});

/** Runs a kind; returns the output or the error code. */
function runKind(kind: Kind): Float32Array | string {
  try {
    return kind.run();
  } catch (err) {
    if (err instanceof AttentionError) return err.code;
    throw err;
  }
}

describe("WASM memory over thousands of mixed calls", () => {
  it("returns to the baseline after every call and stops growing after a warm-up", () => {
    const { exports, workspace } = kernels("test");
    const baseline = workspace.bytesInUse;

    // Warm-up: each kind once, checked against the reference.
    const first = new Map<string, Float32Array>();
    for (const kind of kinds) {
      const got = runKind(kind);
      expect(workspace.bytesInUse, kind.name).toBe(baseline);
      if (kind.fails) {
        expect(got, kind.name).toBe(kind.fails);
        continue;
      }
      expect(got, kind.name).toBeInstanceOf(Float32Array);
      const data = (got as Float32Array).slice();
      first.set(kind.name, data);
      if (kind.expected) {
        const want = kind.expected();
        expectClose(
          { data, shape: [data.length] },
          { data: want, shape: [want.length] },
          TOL,
          kind.name,
        );
      }
    }
    const warmBytes = exports.memory.buffer.byteLength;

    const r = rng(99);
    let failures = 0;
    for (let call = 0; call < CALLS; call++) {
      const kind = kinds[randInt(r, 0, kinds.length - 1)];
      const got = runKind(kind);
      if (workspace.bytesInUse !== baseline) {
        expect.fail(
          `call ${call} (${kind.name}) left ${workspace.bytesInUse - baseline} bytes in use`,
        );
      }
      if (exports.memory.buffer.byteLength !== warmBytes) {
        expect.fail(
          `call ${call} (${kind.name}) grew memory from ${warmBytes} to ${exports.memory.buffer.byteLength} bytes`,
        );
      }
      if (kind.fails) {
        failures++;
        if (got !== kind.fails) expect.fail(`call ${call} (${kind.name}) gave ${String(got)}`);
        continue;
      }
      // Same inputs, same bits: no state leaks from one call into the next.
      if (call % 7 === 0) {
        const want = first.get(kind.name)!;
        expect(Array.from(got as Float32Array), `call ${call} (${kind.name})`).toEqual(
          Array.from(want),
        );
      }
    }
    expect(failures).toBeGreaterThan(CALLS / 10);
    expect(workspace.bytesInUse).toBe(baseline);
    expect(exports.memory.buffer.byteLength).toBe(warmBytes);
  });
});

describe("working memory", () => {
  it("is not O(Nq·Nk): a 2048 × 2048 call without weights grows memory by far less than Nq·Nk floats", () => {
    const { exports, workspace } = kernels("test");
    const r = rng(7);
    const N = 2048;
    const D = 8;
    const q = randomTensor(r, [N, D]);
    const k = randomTensor(r, [N, D]);
    const v = randomTensor(r, [N, D]);
    // Warm the free list up to the size of the inputs and outputs first.
    const tmp = allocTensor([6 * N * D]);
    tmp.free();
    const before = exports.memory.buffer.byteLength;
    const inUse = workspace.bytesInUse;
    const res = scaledDotProductAttention(q, k, v, { causal: true, returnLse: true });
    expect(exports.memory.buffer.byteLength - before).toBeLessThan((N * N * 4) / 8);
    expect(workspace.bytesInUse).toBe(inUse);
    // Spot-check a few rows against the reference (the whole call would be slow in float64).
    const rows = [0, 1, 63, 64, 1000, N - 1];
    const sub = (t: Tensor, n: number): Tensor => ({
      data: t.data.subarray(0, n * D),
      shape: [n, D],
    });
    for (const i of rows) {
      const want = referenceSdpa(
        { data: q.data.subarray(i * D, (i + 1) * D), shape: [1, D] },
        sub(k, i + 1),
        sub(v, i + 1),
      );
      const got = { data: res.output.data.subarray(i * D, (i + 1) * D), shape: [1, D] };
      expectClose(got, want.output, TOL, `row ${i}`);
    }
  });
});
