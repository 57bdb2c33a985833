// A window that leaves no key visible to any query row of the call (FlashAttention writes "no bound"
// as -1, so its [-1, 0] here would silently zero every output) is a BAD_OPTION error that points at
// Infinity; shifted windows that still reach a key stay legal and match the reference. Checked in
// every op that takes `window`.
import { beforeAll, describe, expect, it } from "vitest";
import {
  init,
  MultiHeadAttention,
  scaledDotProductAttention,
  scaledDotProductAttentionAsync,
  scaledDotProductAttentionBackward,
  scaledDotProductAttentionBackwardAsync,
  type ScaledDotProductAttentionOptions,
  type Tensor,
} from "../src/index";
import { expectClose, type Tolerance } from "./helpers/conformance";
import { expectUntouched, snapshot, thrown } from "./helpers/errors";
import { randomTensor, rng } from "./helpers/random";
import { referenceSdpa } from "./reference";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };

beforeAll(async () => {
  await init();
});

const r = rng(8);
/** q [1,2,Nq,8], k and v [1,2,Nk,8]. */
function inputs(Nq: number, Nk: number): { q: Tensor; k: Tensor; v: Tensor } {
  return {
    q: randomTensor(r, [1, 2, Nq, 8]),
    k: randomTensor(r, [1, 2, Nk, 8]),
    v: randomTensor(r, [1, 2, Nk, 8]),
  };
}

type Options = ScaledDotProductAttentionOptions;

// [name, Nq, Nk, options]: windows with no key visible to any row.
const HIDING: Array<[string, number, number, Options]> = [
  ["FlashAttention's [-1, 0]", 5, 5, { window: [-1, 0] }],
  ["FlashAttention's [-1, -1]", 4, 6, { window: [-1, -1] }],
  ["[-1, 0] in a decode step", 1, 9, { window: [-1, 0] }],
  ["[-1, 3] with causal (causal caps right at 0)", 5, 5, { window: [-1, 3], causal: true }],
  [
    "[-5, 10] upper-left: the band starts past the last key",
    2,
    4,
    {
      window: [-5, 10],
      align: "upper-left",
    },
  ],
  ["[10, -7] lower-right: the band ends before the first key", 3, 3, { window: [10, -7] }],
];

// [name, Nq, Nk, options]: shifted or unusual windows that leave some key visible.
const LEGAL: Array<[string, number, number, Options]> = [
  ["[-2, 5]: keys 2..5 after the diagonal", 4, 9, { window: [-2, 5], align: "upper-left" }],
  ["[-1, 3] without causal", 5, 5, { window: [-1, 3] }],
  [
    "[Infinity, -1] with causal: strictly earlier keys",
    5,
    5,
    { window: [Infinity, -1], causal: true },
  ],
  [
    "[-3, 10] upper-left: only row 0 reaches key 3",
    2,
    4,
    { window: [-3, 10], align: "upper-left" },
  ],
  ["[-1, 0] rescued by a global token", 4, 4, { window: [-1, 0], globalTokens: [1] }],
  ["[Infinity, 0]: no left bound, the way to write it", 5, 5, { window: [Infinity, 0] }],
];

describe("a window that hides every key is a BAD_OPTION error mentioning Infinity", () => {
  it.each(HIDING)("%s", (_, Nq, Nk, options) => {
    const { q, k, v } = inputs(Nq, Nk);
    const before = snapshot();
    const error = thrown(() => scaledDotProductAttention(q, k, v, options));
    expect(error.code).toBe("BAD_OPTION");
    expect(error.message).toContain(`window [${options.window?.join(", ")}]`);
    expect(error.message).toContain("leaves no key visible");
    expect(error.message).toContain("Infinity");
    if (options.causal) expect(error.message).toContain("with causal");
    expectUntouched(before);
  });

  it("the async twin and the backward passes reject it too", async () => {
    const { q, k, v } = inputs(5, 5);
    const fwd = scaledDotProductAttention(q, k, v, { returnLse: true });
    const options = { window: [-1, 0] as const, lse: fwd.lse as Tensor };
    const err = (e: unknown): unknown => e;
    for (const error of [
      await scaledDotProductAttentionAsync(q, k, v, { window: [-1, 0] }).catch(err),
      thrown(() => scaledDotProductAttentionBackward(q, k, v, fwd.output, fwd.output, options)),
      await scaledDotProductAttentionBackwardAsync(q, k, v, fwd.output, fwd.output, options).catch(
        err,
      ),
    ]) {
      expect(error).toMatchObject({ code: "BAD_OPTION" });
      expect((error as Error).message).toMatch(/leaves no key visible.*Infinity/);
    }
  });

  it("MultiHeadAttention.forward (and forwardAsync, and with a cache) reject it", async () => {
    const mha = new MultiHeadAttention({ embedDim: 8, numHeads: 2 });
    try {
      const x = randomTensor(r, [1, 4, 8]);
      expect(thrown(() => mha.forward(x, x, x, { window: [-1, 0] })).code).toBe("BAD_OPTION");
      const rejected = await mha.forwardAsync(x, x, x, { window: [-1, 0] }).catch((e) => e);
      expect(rejected).toMatchObject({ code: "BAD_OPTION" });
      const cache = mha.createCache({ maxLength: 8 });
      mha.forward(x, undefined, undefined, { cache, causal: true });
      const step = randomTensor(r, [1, 1, 8]);
      const error = thrown(() =>
        mha.forward(step, undefined, undefined, { cache, window: [-1, 0] }),
      );
      expect(error.message).toContain("Nk = 5"); // the cached keys count
      expect(cache.length).toBe(4); // the failed step appended nothing
      // A window over the cache that reaches keys works.
      const ok = mha.forward(step, undefined, undefined, { cache, window: [2, 0] });
      expect(ok.output.data.every(Number.isFinite)).toBe(true);
      expect(cache.length).toBe(5);
    } finally {
      mha.dispose();
    }
  });

  it("the module stays usable after the error", () => {
    const { q, k, v } = inputs(3, 3);
    thrown(() => scaledDotProductAttention(q, k, v, { window: [-1, 0] }));
    const out = scaledDotProductAttention(q, k, v, { window: [Infinity, 0] }).output;
    expectClose(out, referenceSdpa(q, k, v, { window: [Infinity, 0] }).output, TOL, "output");
  });
});

describe("windows that leave some key visible stay legal", () => {
  it.each(LEGAL)("%s matches the reference", (_, Nq, Nk, options) => {
    const { q, k, v } = inputs(Nq, Nk);
    const got = scaledDotProductAttention(q, k, v, { ...options, returnWeights: true });
    const globalTokens = options.globalTokens ? Int32Array.from(options.globalTokens) : undefined;
    const want = referenceSdpa(q, k, v, { ...options, globalTokens });
    expectClose(got.output, want.output, TOL, "output");
    expectClose(got.weights, want.weights, TOL, "weights");
    // Some row sees some key: not everything is zero.
    expect(got.weights?.data.some((w) => w > 0)).toBe(true);
  });
});
