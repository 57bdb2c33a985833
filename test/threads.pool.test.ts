// The pool itself (only in the "node-threads" project, where init() runs two threads): it survives
// long runs, and a failure inside a worker reaches the caller and leaves the pool usable.
import { beforeAll, describe, expect, it } from "vitest";
import { init, scaledDotProductAttention } from "../src/index";
import { kernels } from "../src/runtime";
import { randomTensor, rng } from "./helpers/random";

beforeAll(async () => {
  await init();
});

describe("the worker pool", () => {
  it("survives 100 000 calls that use the pool, and a failure inside a worker", () => {
    const pool = kernels("test").pool!;
    expect(pool.size).toBeGreaterThan(1);
    const r = rng(12);
    // Just above the size from which calls are split across threads.
    const q = randomTensor(r, [1, 2, 64, 64]);
    const want = scaledDotProductAttention(q, q, q).output.data;
    for (let i = 0; i < 100_000; i++) {
      const got = scaledDotProductAttention(q, q, q).output.data;
      if (i % 5000 === 0) expect(Array.from(got)).toEqual(Array.from(want));
    }
    // A task that throws inside a worker reaches the caller as AttentionError WORKER_FAILED...
    expect(() =>
      pool.runAll("test", [
        { fn: "heapBase", args: [] },
        { fn: "noSuchKernel", args: [] },
      ]),
    ).toThrow(expect.objectContaining({ code: "WORKER_FAILED" }));
    // ...and the pool keeps working.
    expect(Array.from(scaledDotProductAttention(q, q, q).output.data)).toEqual(Array.from(want));
  });
});
