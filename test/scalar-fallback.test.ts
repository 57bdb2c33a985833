// A runtime without WebAssembly SIMD (an old Safari or WebView): init() must pick the scalar build
// by itself. Node always has SIMD, so WebAssembly.validate is made to report no SIMD support.
import { afterAll, describe, expect, it, vi } from "vitest";
import { init, runtimeInfo, scaledDotProductAttention } from "../src/index";

afterAll(() => {
  vi.restoreAllMocks();
});

describe("without WebAssembly SIMD", () => {
  it("init() falls back to the scalar build, which computes the same attention", async () => {
    vi.spyOn(WebAssembly, "validate").mockReturnValue(false);
    await init();
    expect(runtimeInfo().build).toBe("scalar");
    const q = { data: new Float32Array([1, 0, 0, 1]), shape: [2, 2] };
    const v = { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] };
    const { output } = scaledDotProductAttention(q, q, v, { causal: true });
    const p = 1 / (1 + Math.exp(Math.SQRT1_2));
    const expected = [1, 2, p * 1 + (1 - p) * 3, p * 2 + (1 - p) * 4];
    expected.forEach((x, i) => expect(output.data[i]).toBeCloseTo(x, 6));
  });
});
