// Before init() every op throws AttentionError NOT_INITIALIZED (vitest gives each test file a fresh
// module graph, so nothing here is initialised until the last test calls init()).

import { describe, expect, it } from "vitest";
import {
  AttentionError,
  allocTensor,
  init,
  scaledDotProductAttention,
  softmax,
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
