// Long-running use: 100 000 mixed calls (plain and in-place outputs, varied shapes, every op family,
// some failing on bad input) must leave WASM memory exactly as the warm-up left it; memory grown
// between calls must not disturb results or live WasmTensor views.
import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  MultiHeadAttention,
  allocTensor,
  hardAttention,
  init,
  linear,
  scaledDotProductAttention,
  softmax,
  type Tensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { randomTensor, rng } from "./helpers/random";

const CALLS = 100_000;
const WARM_UP = 2_000;

beforeAll(async () => {
  await init();
});

describe("reliability", () => {
  it(`keeps memory flat over ${CALLS} mixed calls`, () => {
    const { workspace, exports } = kernels("test");
    const r = rng(7);
    const shapes = [
      [1, 1, 1, 4],
      [1, 2, 5, 8],
      [2, 1, 9, 3],
      [1, 4, 16, 16],
    ];
    const inputs = shapes.map((s) => ({
      q: randomTensor(r, s),
      k: randomTensor(r, s),
      v: randomTensor(r, s),
    }));
    const outs = shapes.map((s) => new Float32Array(s.reduce((a, b) => a * b, 1)));
    const x = randomTensor(r, [3, 12]);
    const w = randomTensor(r, [5, 12]).data;
    const mha = new MultiHeadAttention({ embedDim: 8, numHeads: 2, seed: 1 });
    const seq = randomTensor(r, [1, 6, 8]);
    const bad: Tensor = { data: new Float32Array(3), shape: [1, 3] };
    const baseline = workspace.bytesInUse;
    let grownAfterWarmUp = 0;
    let memoryAtWarmUp = 0;
    let failures = 0;
    for (let call = 0; call < CALLS; call++) {
      const i = call % shapes.length;
      const { q, k, v } = inputs[i];
      switch (call % 7) {
        case 0:
          scaledDotProductAttention(q, k, v);
          break;
        case 1:
          scaledDotProductAttention(q, k, v, { out: outs[i], causal: true });
          break;
        case 2:
          softmax(q, { axis: (call >> 3) % 2 === 0 ? -1 : 0 });
          break;
        case 3:
          linear(x, w);
          break;
        case 4:
          mha.forward(seq, seq, seq, { causal: true });
          break;
        case 5:
          hardAttention(q, k, v, { topK: 2, returnWeights: true });
          break;
        default:
          try {
            scaledDotProductAttention(q, bad, v);
          } catch (err) {
            if (!(err instanceof AttentionError)) throw err;
            failures++;
          }
      }
      if (workspace.bytesInUse !== baseline) {
        throw new Error(`call ${call}: ${workspace.bytesInUse - baseline} bytes left in use`);
      }
      if (call === WARM_UP) memoryAtWarmUp = exports.memory.buffer.byteLength;
      if (call > WARM_UP && exports.memory.buffer.byteLength !== memoryAtWarmUp) grownAfterWarmUp++;
    }
    mha.dispose();
    expect(failures).toBe(Math.floor(CALLS / 7));
    expect(grownAfterWarmUp).toBe(0);
  }, 120_000);

  it("keeps results and live WasmTensor views right when memory grows between calls", () => {
    const { exports } = kernels("test");
    const r = rng(11);
    const shape = [1, 2, 33, 16];
    const q = allocTensor(shape);
    const k = allocTensor(shape);
    const v = allocTensor(shape);
    for (const t of [q, k, v]) t.data.set(randomTensor(r, shape).data);
    const out = allocTensor(shape);
    const before = Float32Array.from(
      scaledDotProductAttention(q, k, v, { out: out.data }).output.data,
    );
    const bytes = exports.memory.buffer.byteLength;
    // Force growth: a tensor larger than all memory so far.
    const big = allocTensor([bytes / 2]);
    expect(exports.memory.buffer.byteLength).toBeGreaterThan(bytes);
    try {
      // The old views were detached by the growth; `data` re-views memory on access.
      expect(Array.from(out.data)).toEqual(Array.from(before));
      const after = scaledDotProductAttention(q, k, v, { out: out.data }).output.data;
      expect(Array.from(after)).toEqual(Array.from(before));
      expect(Array.from(out.data)).toEqual(Array.from(before));
    } finally {
      big.free();
      for (const t of [q, k, v, out]) t.free();
    }
  });
});
