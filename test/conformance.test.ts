// The golden cases (PyTorch float64 references, see shared/conformance/FORMAT.md) of the ops this
// package implements, run through the public API exactly as shared/conformance/run.mjs maps them.

import { beforeAll, describe, expect, it } from "vitest";
import {
  alibiSlopes,
  init,
  scaledDotProductAttention,
  softmax,
  type ScaledDotProductAttentionOptions,
  type Tensor,
} from "../src/index";
import {
  decodeFloat,
  decodeTensor,
  expectClose,
  loadCases,
  type GoldenCase,
  type TensorLike,
} from "./helpers/conformance";

const OPS = ["sdpa", "gqa", "local_attention", "alibi_attention", "softmax"] as const;

beforeAll(async () => {
  await init();
});

/** FORMAT.md 3.4: "upper_left" is PyTorch's is_causal; "lower_right" is the API default (left implicit). */
function causalOptions(causal: unknown): ScaledDotProductAttentionOptions {
  if (causal === null || causal === undefined) return {};
  if (causal === "upper_left") return { causal: true, align: "upper-left" };
  if (causal === "lower_right") return { causal: true };
  throw new Error(`unknown causal mode ${String(causal)}`);
}

/** Runs one case; returns its outputs by the names cases.json uses. */
function runCase(c: GoldenCase): Record<string, TensorLike | undefined> {
  const input = (name: string): Tensor => decodeFloat(c.inputs[name]);
  const p = c.params;
  switch (c.op) {
    case "sdpa":
    case "gqa": {
      const mask = c.inputs.attn_mask ? decodeTensor(c.inputs.attn_mask) : undefined;
      const r = scaledDotProductAttention(input("q"), input("k"), input("v"), {
        mask,
        scale: typeof p.scale === "number" ? p.scale : undefined,
        ...causalOptions(p.causal),
        returnWeights: true,
      });
      return { out: r.output, weights: r.weights };
    }
    case "local_attention": {
      const w = p.window as number;
      const options: ScaledDotProductAttentionOptions =
        p.mode === "symmetric" ? { window: [w, w] } : { window: [w, 0], causal: true };
      const globals = p.global_indices as number[] | undefined;
      if (globals && globals.length > 0) options.globalTokens = Int32Array.from(globals);
      const r = scaledDotProductAttention(input("q"), input("k"), input("v"), {
        ...options,
        returnWeights: true,
      });
      return { out: r.output, weights: r.weights };
    }
    case "alibi_attention": {
      const q = input("q");
      const H = q.shape[1];
      const slopes = alibiSlopes(H);
      const r = scaledDotProductAttention(q, input("k"), input("v"), {
        alibiSlopes: slopes,
        ...causalOptions(p.causal),
        returnWeights: true,
      });
      return { out: r.output, weights: r.weights, slopes: { data: slopes, shape: [H] } };
    }
    case "softmax": {
      const x = input("x");
      return { y: softmax(x, { axis: x.shape.length - 1 }) };
    }
    default:
      throw new Error(`op ${c.op} is not covered here`);
  }
}

const cases = loadCases().filter((c) => (OPS as readonly string[]).includes(c.op));

describe("golden cases", () => {
  it.each(OPS.map((op) => [op, cases.filter((c) => c.op === op).length]))(
    "has cases for op %s (%i)",
    (_op, count) => {
      expect(count).toBeGreaterThan(0);
    },
  );

  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const got = runCase(c);
    const names = Object.keys(c.outputs);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      expectClose(got[name], decodeFloat(c.outputs[name]), c.tolerance, `${c.name}: ${name}`);
    }
  });
});
