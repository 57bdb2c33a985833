// Before init() every op throws AttentionError NOT_INITIALIZED (vitest gives each test file a fresh
// module graph, so nothing here is initialised until the last test calls init()).

import { describe, expect, it } from "vitest";
import {
  AttentionError,
  alibiSlopes,
  allocTensor,
  attentionEntropy,
  attentionRollout,
  init,
  renderHeatmapSvg,
  scaledDotProductAttention,
  softmax,
  sparsePatterns,
} from "../src/index";

const t = { data: new Float32Array([1, 0, 0, 1]), shape: [2, 2] };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AttentionError);
    return (err as AttentionError).code;
  }
  return undefined;
}

describe("before init()", () => {
  it("scaledDotProductAttention throws NOT_INITIALIZED naming the op and init", () => {
    let error: unknown;
    try {
      scaledDotProductAttention(t, t, t);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AttentionError);
    expect((error as AttentionError).code).toBe("NOT_INITIALIZED");
    expect((error as AttentionError).message).toContain("scaledDotProductAttention");
    expect((error as AttentionError).message).toContain("init");
  });

  it("every option combination throws NOT_INITIALIZED, not a crash", () => {
    expect(
      codeOf(() =>
        scaledDotProductAttention(t, t, t, { causal: true, returnWeights: true, returnLse: true }),
      ),
    ).toBe("NOT_INITIALIZED");
  });

  it("softmax throws NOT_INITIALIZED", () => {
    expect(codeOf(() => softmax(t))).toBe("NOT_INITIALIZED");
  });

  it("allocTensor throws NOT_INITIALIZED", () => {
    expect(codeOf(() => allocTensor([2, 2]))).toBe("NOT_INITIALIZED");
  });

  it("the pure JavaScript helpers need no init() and still validate their arguments", () => {
    expect(Array.from(alibiSlopes(2))).toEqual([1 / 16, 1 / 256]);
    expect(sparsePatterns.longformer(4, { window: 1 }).shape).toEqual([4, 4]);
    const weights = { data: new Float32Array([1, 0, 0.5, 0.5]), shape: [2, 2] };
    expect(attentionEntropy(weights).shape).toEqual([2]);
    expect(attentionRollout([{ data: weights.data, shape: [1, 1, 2, 2] }]).shape).toEqual([
      1, 2, 2,
    ]);
    expect(renderHeatmapSvg(weights)).toContain("<svg");
    expect(codeOf(() => alibiSlopes(-1))).toBe("BAD_OPTION");
    expect(codeOf(() => attentionEntropy({ data: new Float32Array(3), shape: [2, 2] }))).toBe(
      "SHAPE_MISMATCH",
    );
  });

  it("after init() the same calls work", async () => {
    await init();
    const { output } = scaledDotProductAttention(t, t, t, { causal: true });
    // Row 0 sees only key 0; row 1 sees both with scores 0 and 1/sqrt(2).
    const p1 = 1 / (1 + Math.exp(Math.SQRT1_2));
    const expected = [1, 0, p1, 1 - p1];
    Array.from(output.data).forEach((x, i) => expect(x).toBeCloseTo(expected[i], 6));
    expect(Array.from(softmax({ data: new Float32Array([0, 0]), shape: [2] }).data)).toEqual([
      0.5, 0.5,
    ]);
    const w = allocTensor([2, 2]);
    w.free();
  });
});
