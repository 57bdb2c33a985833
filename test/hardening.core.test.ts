// Hostile arguments against what every op shares: tensor snapshots (src/core/tensor.ts,
// src/core/typed-arrays.ts), options snapshots (src/core/option-values.ts), `out` (src/runtime/call.ts checkOut) and the
// allocator's guards (src/runtime/workspace.ts). Each bad call must end in an AttentionError and leave WASM
// memory exactly as it was.

import { beforeAll, describe, expect, it } from "vitest";
import {
  allocTensor,
  init,
  memoryStats,
  scaledDotProductAttention,
  scaledDotProductAttentionAsync,
  softmax,
} from "../src/index";
import { bad, expectUntouched, snapshot, thrown } from "./helpers/errors";
import { randomTensor, rng } from "./helpers/random";

beforeAll(async () => {
  await init();
});

const x = (): { data: Float32Array; shape: number[] } => ({
  data: Float32Array.of(1, 2, 3, 4, 5, 6),
  shape: [2, 3],
});
const softmaxRow = (a: number, b: number, c: number): number[] => {
  const m = Math.max(a, b, c);
  const e = [a, b, c].map((v) => Math.exp(v - m));
  const s = e[0] + e[1] + e[2];
  return e.map((v) => v / s);
};

function expectClose(got: ArrayLike<number>, want: readonly number[]): void {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 6));
}

describe("tensor data that is not a genuine typed array", () => {
  it.each([
    ["an object made from Float32Array.prototype", () => Object.create(Float32Array.prototype)],
    ["a Proxy of a Float32Array", () => new Proxy(new Float32Array(6), {})],
    ["a Float64Array", () => new Float64Array(6)],
    ["a plain array", () => [1, 2, 3, 4, 5, 6]],
  ])("%s is BAD_DTYPE", (_, make) => {
    const before = snapshot();
    expect(thrown(() => softmax({ data: make(), shape: [2, 3] })).code).toBe("BAD_DTYPE");
    expectUntouched(before);
  });

  it("a subclass whose length lies is read by its real length", () => {
    class Liar extends Float32Array {
      override get length(): number {
        return 1e6;
      }
    }
    const data = new Liar(6);
    data.set([1, 2, 3, 4, 5, 6]);
    const { data: y } = softmax({ data, shape: [2, 3] });
    expectClose(y, [...softmaxRow(1, 2, 3), ...softmaxRow(4, 5, 6)]);
    // ...and its real length must match the shape.
    expect(thrown(() => softmax({ data: new Liar(5), shape: [2, 3] })).code).toBe("SHAPE_MISMATCH");
  });

  it("a detached buffer is BAD_DTYPE, not a TypeError", () => {
    const data = new Float32Array(6);
    structuredClone(data.buffer, { transfer: [data.buffer] });
    const err = thrown(() => softmax({ data, shape: [2, 3] }));
    expect(err.code).toMatch(/BAD_DTYPE|SHAPE_MISMATCH/);
  });
});

describe("shapes", () => {
  it.each([
    ["a holey shape", () => [2, , 3]], // eslint-disable-line no-sparse-arrays
    ["a dim of 2^31", () => [2 ** 31, 0]],
    ["a fractional dim", () => [1.5, 4]],
    ["a NaN dim", () => [NaN, 6]],
    ["a negative dim", () => [-2, -3]],
    ["33 dims", () => new Array(33).fill(1)],
    ["an array of length 1e9", () => new Array(1e9)],
    ["a string", () => "2,3"],
  ])("%s is SHAPE_MISMATCH", (_, shape) => {
    const before = snapshot();
    expect(thrown(() => softmax({ data: new Float32Array(6), shape: bad(shape()) })).code).toBe(
      "SHAPE_MISMATCH",
    );
    expectUntouched(before);
  });

  it("allocTensor refuses holey and impossible shapes without touching memory", () => {
    const before = snapshot();
    // eslint-disable-next-line no-sparse-arrays
    expect(thrown(() => allocTensor(bad([1, , 4]))).code).toBe("SHAPE_MISMATCH");
    expect(thrown(() => allocTensor([2 ** 31 - 1, 2 ** 31 - 1])).code).toBe("OUT_OF_MEMORY");
    expect(thrown(() => allocTensor([2 ** 20, 2 ** 20], "uint8")).code).toBe("OUT_OF_MEMORY");
    expectUntouched(before);
  });
});

describe("arguments are read once", () => {
  it("getters that answer differently later cannot change what was validated", () => {
    let dataReads = 0;
    let shapeReads = 0;
    const tensor = {
      get data() {
        dataReads++;
        return dataReads === 1 ? x().data : new Float32Array(1);
      },
      get shape() {
        shapeReads++;
        return shapeReads === 1 ? [2, 3] : [1e6, 1e6];
      },
    };
    const { data, shape } = softmax(tensor);
    expect(shape).toEqual([2, 3]);
    expectClose(data, [...softmaxRow(1, 2, 3), ...softmaxRow(4, 5, 6)]);
    expect([dataReads, shapeReads]).toEqual([1, 1]);
  });

  it("a getter that throws is an AttentionError", () => {
    const tensor = {
      shape: [2, 3],
      get data(): Float32Array {
        throw new Error("on the GPU");
      },
    };
    expect(thrown(() => softmax(tensor)).code).toBe("BAD_DTYPE");
    const options = {
      get axis(): number {
        throw new Error("no");
      },
    };
    expect(thrown(() => softmax(x(), options)).code).toBe("BAD_OPTION");
  });

  it("options are read once", () => {
    let reads = 0;
    const options = {
      get axis() {
        reads++;
        return reads === 1 ? 0 : 99;
      },
    };
    expect(softmax(x(), options).shape).toEqual([2, 3]);
    expect(reads).toBe(1);
  });
});

describe("options arguments", () => {
  it("null and undefined mean no options, also as values", () => {
    const want = softmax(x()).data;
    expect(softmax(x(), bad(null)).data).toEqual(want);
    expect(softmax(x(), { axis: bad(null) }).data).toEqual(want);
    expect(softmax(x(), { axis: undefined, out: undefined }).data).toEqual(want);
  });

  it.each([
    ["a string", "axis"],
    ["a number", 5],
    ["an array", [0]],
    ["a typed array", new Float32Array(1)],
  ])("%s as the options object is BAD_OPTION", (_, options) => {
    expect(thrown(() => softmax(x(), bad(options))).code).toBe("BAD_OPTION");
  });
});

describe("out", () => {
  it("softmax of a scalar writes [1] into out", () => {
    const out = new Float32Array(1);
    const { data, shape } = softmax({ data: Float32Array.of(5), shape: [] }, { out });
    expect(shape).toEqual([]);
    expect(data).toBe(out);
    expect(Array.from(out)).toEqual([1]);
  });

  it("an out that views WASM memory outside a WasmTensor is refused, memory untouched", () => {
    const t = allocTensor([6]);
    const memory = t.data.buffer;
    const stale = t.data;
    t.free();
    const before = snapshot();
    for (const out of [new Float32Array(memory, 0, 6), stale]) {
      expect(thrown(() => softmax(x(), { out })).code).toBe("BAD_OPTION");
    }
    expectUntouched(before);
  });

  it("an out inside a live WasmTensor is written in place", () => {
    const t = allocTensor([2, 3]);
    const { data } = softmax(x(), { out: t.data });
    expectClose(t.data, [...softmaxRow(1, 2, 3), ...softmaxRow(4, 5, 6)]);
    expect(data.buffer).toBe(t.data.buffer);
    t.free();
  });

  it("an out that overlaps an input is BAD_OPTION", () => {
    const input = x();
    expect(thrown(() => softmax(input, { out: input.data })).code).toBe("BAD_OPTION");
    const shared = new Float32Array(9);
    const overlapping = { data: shared.subarray(0, 6), shape: [2, 3] };
    expect(thrown(() => softmax(overlapping, { out: shared.subarray(3, 9) })).code).toBe(
      "BAD_OPTION",
    );
    // Adjacent ranges of one buffer do not overlap.
    const adjacent = new Float32Array(12);
    adjacent.set(x().data);
    softmax({ data: adjacent.subarray(0, 6), shape: [2, 3] }, { out: adjacent.subarray(6) });
    expectClose(adjacent.subarray(6), [...softmaxRow(1, 2, 3), ...softmaxRow(4, 5, 6)]);
  });

  it("an out that overlaps a WasmTensor input is BAD_OPTION", () => {
    const r = rng(3);
    const q = randomTensor(r, [1, 1, 128, 8]);
    const kv = allocTensor([1, 1, 128, 8]);
    kv.data.set(randomTensor(r, [1, 1, 128, 8]).data);
    expect(thrown(() => scaledDotProductAttention(q, kv, kv, { out: kv.data })).code).toBe(
      "BAD_OPTION",
    );
    kv.free();
  });

  it.each([
    ["the wrong length", () => new Float32Array(5), "SHAPE_MISMATCH"],
    ["a Float64Array", () => new Float64Array(6), "BAD_DTYPE"],
    ["a look-alike", () => Object.create(Float32Array.prototype), "BAD_DTYPE"],
  ])("an out of %s is refused", (_, out, code) => {
    expect(thrown(() => softmax(x(), { out: bad(out()) })).code).toBe(code);
  });
});

describe("WasmTensors used in place by an async call", () => {
  it("stay allocated until the call ends, even when freed meanwhile", async () => {
    const r = rng(5);
    const q = randomTensor(r, [1, 2, 16, 8]);
    const k = allocTensor([1, 2, 16, 8]);
    k.data.set(randomTensor(r, [1, 2, 16, 8]).data);
    const plain = { data: k.data.slice(), shape: k.shape };
    const want = scaledDotProductAttention(q, plain, plain).output.data;
    const baseline = memoryStats().bytesInUse - 1 * 2 * 16 * 8 * 4;
    const pending = scaledDotProductAttentionAsync(q, k, k);
    k.free();
    // Another allocation now cannot take k's block while the call reads it.
    const other = allocTensor([1, 2, 16, 8]);
    other.data.fill(7);
    expect((await pending).output.data).toEqual(want);
    other.free();
    expect(memoryStats().bytesInUse).toBeLessThanOrEqual(baseline + 64);
  });
});

describe("inputs that view WASM memory without being a WasmTensor", () => {
  it("are read correctly even when the call grows memory", () => {
    const n = memoryStats().memoryBytes / 4 + 1024; // the call must grow memory to stage a copy
    const t = allocTensor([n]);
    t.data.fill(0);
    const view = new Float32Array(t.data.buffer, t.byteOffset, n);
    view[0] = 50;
    const { data } = softmax({ data: view, shape: [n] });
    expect(data[0]).toBeCloseTo(1, 6);
    t.free();
  });
});
