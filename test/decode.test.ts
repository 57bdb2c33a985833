// Decoding: one query row per head against a long key/value sequence. Such calls take the kernel's
// one-row path (keys read in place, no packing) and, once K and V outgrow the caches, its
// touch-ahead reads; both must match the float64 reference exactly as the tiled path does.
import { beforeAll, describe, expect, it } from "vitest";
import { allocTensor, init, scaledDotProductAttention } from "../src/index";
import { expectClose } from "./helpers/conformance";
import { randomBoolMask, randomTensor, rng } from "./helpers/random";
import { referenceSdpa } from "./reference";

const TOL = { atol: 2e-5, rtol: 2e-4 };

beforeAll(async () => {
  await init();
});

describe("decode: one query row against many keys", () => {
  it.each([
    { H: 2, Hkv: 2, Nk: 37, D: 16, Dv: 16 },
    { H: 4, Hkv: 1, Nk: 130, D: 30, Dv: 9 },
    { H: 3, Hkv: 3, Nk: 257, D: 7, Dv: 33 },
  ])("matches the reference on small caches: %o", ({ H, Hkv, Nk, D, Dv }) => {
    const r = rng(Nk);
    const q = randomTensor(r, [2, H, 1, D]);
    const k = randomTensor(r, [2, Hkv, Nk, D]);
    const v = randomTensor(r, [2, Hkv, Nk, Dv]);
    for (const options of [{}, { causal: true }, { window: [20, 0] as const, causal: true }]) {
      const got = scaledDotProductAttention(q, k, v, { ...options, returnLse: true });
      const want = referenceSdpa(q, k, v, options);
      expectClose(got.output, want.output, TOL);
      expectClose(got.lse!, want.lse, { atol: 1e-4, rtol: 0 });
    }
  });

  it("matches the reference when K and V exceed the caches (touch-ahead reads)", () => {
    // 2 heads × 20000 keys × (64 + 64) floats = 20 MiB: above the kernel's prefetch threshold.
    const [H, Nk, D] = [2, 20000, 64];
    const r = rng(99);
    const q = randomTensor(r, [1, H, 1, D]);
    const k = allocTensor([1, H, Nk, D]);
    const v = allocTensor([1, H, Nk, D]);
    const kPlain = randomTensor(r, [1, H, Nk, D]);
    const vPlain = randomTensor(r, [1, H, Nk, D]);
    k.data.set(kPlain.data);
    v.data.set(vPlain.data);
    try {
      const mask = randomBoolMask(r, [1, 1, 1, Nk], 0.8);
      for (const options of [{}, { mask }, { window: [5000, 0] as const, causal: true }]) {
        const got = scaledDotProductAttention(q, k, v, options);
        expectClose(got.output, referenceSdpa(q, kPlain, vPlain, options).output, TOL);
      }
    } finally {
      k.free();
      v.free();
    }
  });

  it("ignores NaN and Infinity in keys and values that the row cannot see", () => {
    const [H, Nk, D] = [2, 300, 24];
    const r = rng(5);
    const q = randomTensor(r, [1, H, 1, D]);
    const k = randomTensor(r, [1, H, Nk, D]);
    const v = randomTensor(r, [1, H, Nk, D]);
    const mask = { data: new Uint8Array(Nk).fill(1), shape: [Nk] };
    const poisoned = { k: randomTensor(r, [1, H, Nk, D]), v: randomTensor(r, [1, H, Nk, D]) };
    poisoned.k.data.set(k.data);
    poisoned.v.data.set(v.data);
    for (const j of [0, 3, 64, 131, 299]) {
      mask.data[j] = 0;
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < D; d++) {
          poisoned.k.data[(h * Nk + j) * D + d] = d % 2 ? NaN : Infinity;
          poisoned.v.data[(h * Nk + j) * D + d] = d % 2 ? -Infinity : NaN;
        }
      }
    }
    const clean = scaledDotProductAttention(q, k, v, { mask });
    const dirty = scaledDotProductAttention(q, poisoned.k, poisoned.v, { mask });
    expect(Array.from(dirty.output.data)).toEqual(Array.from(clean.output.data));
  });
});
