// Key splits (src/engine/key-split.ts) on paper: when an attention call is split by keys, into which ranges,
// and the log-sum-exp merge of the ranges' results (src/engine/lse-merge.ts). Pure functions, no wasm.
import { describe, expect, it } from "vitest";
import { KEY_TILE } from "../assembly/shared";
import { keyRanges, MIN_SPLIT_TILES, type KeyRange } from "../src/engine/key-split";
import { mergeSplits } from "../src/engine/lse-merge";
import { planAttention } from "../src/engine/plan";
import { type AttentionOptions } from "../src/engine/options";
import { rng, uniform } from "./helpers/random";

function plan(
  dims: { B?: number; H?: number; Nq?: number; Nk: number },
  options: AttentionOptions,
) {
  const { B = 1, H = 1, Nq = 1, Nk } = dims;
  return planAttention("test", { B, H, Hkv: H, Nq, Nk, D: 64, Dv: 64 }, options);
}

/** Ranges are contiguous, tile-aligned, non-empty and end at or before Nk. */
function expectWellFormed(ranges: KeyRange[], Nk: number): void {
  for (let s = 0; s < ranges.length; s++) {
    const { start, end } = ranges[s];
    expect(start % KEY_TILE).toBe(0);
    expect(end).toBeGreaterThan(start);
    expect(end).toBeLessThanOrEqual(Nk);
    if (s > 0) expect(start).toBe(ranges[s - 1].end);
  }
}

describe("keyRanges: when to split by keys", () => {
  it("splits a one-head decode into one range per thread, evenly", () => {
    expect(keyRanges(plan({ Nk: 4096 }, {}), false, 2)).toEqual([
      { start: 0, end: 2048 },
      { start: 2048, end: 4096 },
    ]);
    const three = keyRanges(plan({ Nk: 4099 }, {}), false, 3)!;
    expect(three).toHaveLength(3);
    expectWellFormed(three, 4099);
    expect(three[0].start).toBe(0);
    expect(three[2].end).toBe(4099);
  });

  it("splits only when the heads cannot balance the threads", () => {
    const ranges = (B: number, H: number, threads: number) =>
      keyRanges(plan({ B, H, Nk: 4096 }, {}), false, threads)?.length;
    expect(ranges(1, 1, 1)).toBeUndefined(); // one thread
    expect(ranges(1, 2, 2)).toBeUndefined(); // one head per thread already
    expect(ranges(1, 3, 2)).toBe(2); // the head split would give one thread two heads of three
    expect(ranges(3, 1, 2)).toBe(2); // batch entries count as heads
    expect(ranges(1, 4, 2)).toBeUndefined(); // 2·threads heads: balanced
    expect(ranges(1, 3, 4)).toBe(4); // fewer heads than threads
    expect(ranges(1, 6, 4)).toBe(4);
    expect(ranges(1, 8, 4)).toBeUndefined();
    expect(ranges(1, 9, 4)).toBeUndefined(); // from 2·threads on, the head split loses at most a third
  });

  it("does not split returned weights, a block-sparse layout or too few keys", () => {
    expect(keyRanges(plan({ Nk: 4096 }, { returnWeights: true }), false, 2)).toBeUndefined();
    expect(keyRanges(plan({ Nk: 4096 }, {}), true, 2)).toBeUndefined();
    const tiles = (n: number) => plan({ Nk: n * KEY_TILE }, {});
    expect(keyRanges(tiles(2 * MIN_SPLIT_TILES - 1), false, 2)).toBeUndefined();
    expect(keyRanges(tiles(2 * MIN_SPLIT_TILES), false, 2)).toHaveLength(2);
    expect(keyRanges(tiles(2 * MIN_SPLIT_TILES), false, 4)).toHaveLength(2);
  });

  it("splits only the keys the band lets some row see", () => {
    // A sliding-window decode: the last 1001 keys.
    const window = keyRanges(plan({ Nk: 20000 }, { causal: true, window: [1000, 0] }), false, 2)!;
    expectWellFormed(window, 20000);
    expect(window[0].start).toBe(Math.floor((19999 - 1000) / KEY_TILE) * KEY_TILE);
    expect(window[1].end).toBe(20000);
    // Upper-left, right-bounded window: keys 0..3003 for rows 0..3.
    const upper = keyRanges(
      plan({ Nq: 4, Nk: 9000 }, { align: "upper-left", window: [100, 3000] }),
      false,
      2,
    )!;
    expectWellFormed(upper, 9000);
    expect(upper[0].start).toBe(0);
    expect(upper[1].end).toBe(Math.ceil(3004 / KEY_TILE) * KEY_TILE);
    // Upper-left causal with few rows sees 10 keys: nothing worth splitting.
    expect(
      keyRanges(plan({ Nq: 10, Nk: 5000 }, { causal: true, align: "upper-left" }), false, 2),
    ).toBeUndefined();
    // Global tokens see and are seen by everything: all keys, even outside the window.
    const global = keyRanges(
      plan({ Nk: 20000 }, { causal: true, window: [1000, 0], globalTokens: [0] }),
      false,
      2,
    )!;
    expect(global[0].start).toBe(0);
    expect(global[1].end).toBe(20000);
  });

  it("balances (row, key) pairs: a causal prefill's first keys weigh more", () => {
    const N = 4096;
    const [first, second] = keyRanges(plan({ Nq: N, Nk: N }, { causal: true }), false, 2)!;
    // Key j is seen by N − j rows: half the pairs lie below N·(1 − 1/√2) ≈ 1200.
    expect(Math.abs(first.end - N * (1 - Math.SQRT1_2))).toBeLessThanOrEqual(KEY_TILE);
    expect(second.end).toBe(N);
  });
});

// Softmax of `scores` over keys from..to−1 against values v (dv per key), in float64: output, lse.
function attend(scores: number[], v: number[], dv: number, from: number, to: number) {
  let max = -Infinity;
  for (let j = from; j < to; j++) max = Math.max(max, scores[j]);
  const out = new Array<number>(dv).fill(0);
  if (max === -Infinity) return { out, lse: -Infinity };
  let sum = 0;
  for (let j = from; j < to; j++) {
    const p = Math.exp(scores[j] - max);
    sum += p;
    for (let c = 0; c < dv; c++) out[c] += p * v[j * dv + c];
  }
  return { out: out.map((x) => x / sum), lse: max + Math.log(sum) };
}

describe("mergeSplits", () => {
  it("merges key ranges into the whole softmax, skipping ranges that saw nothing", () => {
    const r = rng(3);
    const [H, Nq, dv, Nk] = [2, 3, 5, 40];
    const rows = H * Nq;
    const cuts = [0, 12, 25, 40];
    const splits = cuts.length - 1;
    // Parts first, then the target: [Nq, H·dv] row-major, as MultiHeadAttention lays heads out.
    const partsOut = 0;
    const partsLse = splits * rows * dv;
    const target = partsLse + splits * rows;
    const f32 = new Float32Array(target + Nq * H * dv + rows).fill(NaN);
    const want: { out: number[]; lse: number }[] = [];
    for (let row = 0; row < rows; row++) {
      const v = Array.from({ length: Nk * dv }, () => uniform(r, -1, 1));
      const scores = Array.from({ length: Nk }, () => uniform(r, -4, 4));
      // Row 1 sees no key of the middle range, row 4 no key at all.
      if (row === 1) for (let j = cuts[1]; j < cuts[2]; j++) scores[j] = -Infinity;
      if (row === 4) scores.fill(-Infinity);
      want.push(attend(scores, v, dv, 0, Nk));
      for (let s = 0; s < splits; s++) {
        const part = attend(scores, v, dv, cuts[s], cuts[s + 1]);
        // A range that saw nothing may hold anything in its output: it must not leak.
        if (part.lse !== -Infinity) f32.set(part.out, partsOut + (s * rows + row) * dv);
        f32[partsLse + s * rows + row] = part.lse;
      }
    }
    mergeSplits(
      f32,
      { out: partsOut, lse: partsLse, splits, rows, dv },
      {
        out: target,
        strideB: H * Nq * dv,
        strideH: dv,
        strideRow: H * dv,
        H,
        Nq,
        lse: target + Nq * H * dv,
      },
    );
    for (let row = 0; row < rows; row++) {
      const h = Math.floor(row / Nq);
      const i = row % Nq;
      const got = Array.from(
        f32.subarray(target + i * H * dv + h * dv, target + i * H * dv + (h + 1) * dv),
      );
      for (let c = 0; c < dv; c++) expect(got[c]).toBeCloseTo(want[row].out[c], 6);
      const lse = f32[target + Nq * H * dv + row];
      if (row === 4) {
        expect(got).toEqual([0, 0, 0, 0, 0]);
        expect(lse).toBe(-Infinity);
      } else expect(lse).toBeCloseTo(want[row].lse, 5);
    }
  });
});
