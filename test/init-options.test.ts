// init() takes its options in first place as well as after a source: init({ simd: "scalar" }) is
// the same call as init(undefined, { simd: "scalar" }). Node-only: it needs an uninitialised module.
import { describe, expect, it } from "vitest";
import { AttentionError, init, runtimeInfo, scaledDotProductAttention } from "../src/index";

describe("init(options)", () => {
  it("passing the options twice is a BAD_OPTION error naming both forms", async () => {
    const error = await init({ simd: "scalar" }, { simd: "scalar" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AttentionError);
    expect((error as AttentionError).code).toBe("BAD_OPTION");
    expect((error as AttentionError).message).toContain("init(options) or init(source, options)");
  });

  it("an options object in first place is read as the options", async () => {
    await init({ simd: "scalar" });
    expect(runtimeInfo().build).toBe("scalar");
    const q = { data: new Float32Array([1, 0, 0, 1]), shape: [2, 2] };
    const { output } = scaledDotProductAttention(q, q, q);
    expect(output.data.length).toBe(4);
  });
});
