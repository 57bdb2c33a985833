// The parameter block's map (src/engine/params.ts) against the offsets the kernels read
// (assembly/shared.ts): every int32 slot of the block has exactly one field.
import { describe, expect, it } from "vitest";
import { SDPA_PARAMS_BYTES } from "../assembly/shared";
import { PARAM_FIELDS } from "../src/engine/params";

describe("the parameter block's fields", () => {
  it("cover every slot of the block once", () => {
    const offsets = Object.values(PARAM_FIELDS).sort((a, b) => a - b);
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(offsets.every((o) => o % 4 === 0)).toBe(true);
    expect(offsets).toEqual(Array.from({ length: SDPA_PARAMS_BYTES / 4 }, (_, i) => i * 4));
  });

  it("give each operand its own pointer and three strides", () => {
    for (const name of ["q", "k", "v", "out"] as const) {
      for (const suffix of ["StrideB", "StrideH", "StrideRow"] as const) {
        expect(PARAM_FIELDS[`${name}${suffix}`]).toBeGreaterThan(0);
      }
      expect(PARAM_FIELDS[name]).toBeGreaterThanOrEqual(0);
    }
  });
});
