// Which build init() picks: relaxed SIMD (fused multiply-add) where the runtime validates it, else
// SIMD128, else scalar. The numeric suites run against all three: project "node" (SIMD128),
// "node-relaxed" (V8's --experimental-wasm-relaxed-simd), "node-scalar" (pinned by
// WASM_ATTENTION_BUILD) and "chromium" (relaxed).
import { describe, expect, it } from "vitest";
import { AttentionError, init, runtimeInfo, scaledDotProductAttention } from "../src/index";
import { chooseBuild, relaxedSimdSupported } from "../src/runtime/runtime";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
const pinned = env?.WASM_ATTENTION_BUILD;
const threads = env?.WASM_ATTENTION_THREADS ? Number(env.WASM_ATTENTION_THREADS) : 1;

describe("build selection", () => {
  it("refuses an unknown build name", () => {
    expect(() => chooseBuild({ simd: "avx" as "auto" })).toThrow(AttentionError);
  });

  it("picks relaxed SIMD where the runtime validates it, SIMD128 elsewhere, unless pinned", async () => {
    await init();
    expect(runtimeInfo()).toEqual({
      build: pinned ?? (relaxedSimdSupported() ? "relaxed" : "simd128"),
      threads,
    });
    expect(chooseBuild({ simd: "scalar" })).toBe("scalar");
    expect(chooseBuild({ simd: "simd128" })).toBe("simd128");
    const t = { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] };
    const { output } = scaledDotProductAttention(t, t, t);
    expect(output.data.every(Number.isFinite)).toBe(true);
  });
});
