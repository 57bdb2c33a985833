// Which build init() picks: relaxed SIMD (fused multiply-add) where the runtime validates it, else
// SIMD128. The numeric suites run against both: in Node (SIMD128, and relaxed with
// --experimental-wasm-relaxed-simd in the node-relaxed project) and in Chromium (relaxed).
import { describe, expect, it } from "vitest";
import { AttentionError, init, runtimeInfo, scaledDotProductAttention } from "../src/index";
import { relaxedSimdSupported } from "../src/runtime";

describe("build selection", () => {
  it("refuses the scalar build, which is not shipped, without initialising", async () => {
    await expect(init(undefined, { simd: "scalar" })).rejects.toThrow(AttentionError);
    await expect(init(undefined, { simd: "scalar" })).rejects.toMatchObject({ code: "BAD_OPTION" });
    expect(() => runtimeInfo()).toThrow(AttentionError);
  });

  it("picks relaxed SIMD exactly where the runtime validates it", async () => {
    await init();
    expect(runtimeInfo()).toEqual({
      build: relaxedSimdSupported() ? "relaxed" : "simd128",
      threads: 1,
    });
    const t = { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] };
    const { output } = scaledDotProductAttention(t, t, t);
    expect(output.data.every(Number.isFinite)).toBe(true);
  });
});
