// Misspelled options are errors, never silently ignored: every public op, constructor and method
// that takes an options object (or a nested one: params, weights, rope, dropout, hybrid terms)
// rejects an unknown key with BAD_OPTION naming the key and the closest valid one, before touching
// WASM memory.
import { beforeAll, describe, expect, it } from "vitest";
import {
  additiveAttention,
  additiveAttentionAsync,
  applyRope,
  attentionPooling,
  attentionPoolingAsync,
  attentionRollout,
  bilinearAttention,
  blockSparseAttention,
  blockSparseAttentionAsync,
  cosineAttention,
  cosineAttentionAsync,
  hardAttention,
  hardAttentionAsync,
  hybridAttention,
  hybridAttentionAsync,
  init,
  MultiHeadAttention,
  renderHeatmapSvg,
  scaledDotProductAttention,
  scaledDotProductAttentionAsync,
  scaledDotProductAttentionBackward,
  scaledDotProductAttentionBackwardAsync,
  softmax,
  sparsePatterns,
  type Tensor,
} from "../src/index";
import { closestKey, editDistance } from "../src/core/option-keys";
import { chooseBuild } from "../src/runtime/runtime";
import { bad, expectUntouched, snapshot, thrown } from "./helpers/errors";
import { randomTensor, rng } from "./helpers/random";

// One module and one forward pass for every case, made before any snapshot of memory is taken.
let module: MultiHeadAttention;
let moduleWeights: ReturnType<MultiHeadAttention["getWeights"]>;
let forward: { output: Tensor; lse: Tensor };
beforeAll(async () => {
  await init();
  module = new MultiHeadAttention({ embedDim: 4, numHeads: 2 });
  moduleWeights = module.getWeights();
  const result = scaledDotProductAttention(q, k, v, { returnLse: true });
  forward = { output: result.output, lse: result.lse as Tensor };
});

const r = rng(77);
const q = randomTensor(r, [1, 2, 4, 4]);
const k = randomTensor(r, [1, 2, 4, 4]);
const v = randomTensor(r, [1, 2, 4, 4]);
const q3 = randomTensor(r, [1, 4, 4]);
const w = { w: new Float32Array(16) };
const additiveParams = {
  wq: new Float32Array(12),
  wk: new Float32Array(12),
  va: new Float32Array(3),
};
const layout = sparsePatterns.strided(2, { stride: 1 });
const weights2d = { data: new Float32Array([0.5, 0.5, 0.25, 0.75]), shape: [2, 2] };
const layer = { data: new Float32Array(16).fill(0.25), shape: [1, 1, 4, 4] };

/** Adds an unknown key to an options object. */
const plus = <T extends object>(options: T, key: string): T => bad<T>({ ...options, [key]: true });

interface Case {
  /** The call, given the options object with the unknown key added at the place under test. */
  name: string;
  call: (key: string) => unknown;
  /** A misspelling and the valid key it should be matched to. */
  typo: string;
  suggestion: string;
  /** A params bag (or hybrid term): other keys pass, as ops share bags; misspellings of absent keys fail. */
  bag?: true;
}

const poolingParams = {
  w: new Float32Array(8),
  b: new Float32Array(2),
  context: new Float32Array(2),
};

const CASES: Case[] = [
  {
    name: "scaledDotProductAttention",
    call: (key) => scaledDotProductAttention(q, k, v, plus({ causal: false }, key)),
    typo: "casual",
    suggestion: "causal",
  },
  {
    name: "scaledDotProductAttention dropout",
    call: (key) => scaledDotProductAttention(q, k, v, { dropout: plus({ p: 0.1, seed: 1 }, key) }),
    typo: "sed",
    suggestion: "seed",
  },
  {
    name: "scaledDotProductAttentionBackward",
    call: (key) =>
      scaledDotProductAttentionBackward(
        q,
        k,
        v,
        forward.output,
        forward.output,
        plus({ lse: forward.lse }, key),
      ),
    typo: "LSE",
    suggestion: "lse",
  },
  {
    name: "MultiHeadAttention constructor",
    call: (key) => new MultiHeadAttention(plus({ embedDim: 4, numHeads: 2 }, key)),
    typo: "num_heads",
    suggestion: "numHeads",
  },
  {
    name: "MultiHeadAttention constructor rope",
    call: (key) => new MultiHeadAttention({ embedDim: 4, numHeads: 2, rope: plus({}, key) }),
    typo: "styel",
    suggestion: "style",
  },
  {
    name: "MultiHeadAttention constructor weights",
    call: (key) =>
      new MultiHeadAttention({ embedDim: 4, numHeads: 2, weights: plus(moduleWeights, key) }),
    typo: "wQ",
    suggestion: "wq",
  },
  {
    name: "MultiHeadAttention.forward",
    call: (key) => module.forward(q3, undefined, undefined, plus({}, key)),
    typo: "need_weights",
    suggestion: "needWeights",
  },
  {
    name: "MultiHeadAttention.createCache",
    call: (key) => module.createCache(plus({ maxLength: 4 }, key)),
    typo: "max_length",
    suggestion: "maxLength",
  },
  {
    name: "MultiHeadAttention.setWeights",
    call: (key) => module.setWeights(plus(moduleWeights, key)),
    typo: "bo_",
    suggestion: "bo",
  },
  {
    name: "softmax",
    call: (key) => softmax(q, plus({}, key)),
    typo: "axes",
    suggestion: "axis",
  },
  {
    name: "applyRope",
    call: (key) => applyRope(q, plus({}, key)),
    typo: "position_offset",
    suggestion: "positionOffset",
  },
  {
    name: "additiveAttention options",
    call: (key) => additiveAttention(q3, q3, q3, additiveParams, plus({}, key)),
    typo: "returnWeight",
    suggestion: "returnWeights",
  },
  {
    name: "additiveAttention params",
    bag: true,
    call: (key) => additiveAttention(q3, q3, q3, plus(additiveParams, key)),
    typo: "bais",
    suggestion: "bias",
  },
  {
    name: "bilinearAttention params",
    bag: true,
    call: (key) => bilinearAttention(q3, q3, q3, plus(bad<typeof w>({}), key)),
    typo: "W",
    suggestion: "w",
  },
  {
    name: "cosineAttention",
    call: (key) => cosineAttention(q3, q3, q3, plus({}, key)),
    typo: "temprature",
    suggestion: "temperature",
  },
  {
    name: "hybridAttention params",
    bag: true,
    call: (key) => hybridAttention(q3, q3, q3, plus(bad<{ terms: [] }>({}), key)),
    typo: "term",
    suggestion: "terms",
  },
  {
    name: "hybridAttention term",
    bag: true,
    call: (key) =>
      hybridAttention(q3, q3, q3, { terms: [plus({ kind: "cosine", weight: 1 }, key)] }),
    typo: "temperture",
    suggestion: "temperature",
  },
  {
    name: "hybridAttention options (no temperature there)",
    call: (key) =>
      hybridAttention(q3, q3, q3, { terms: [{ kind: "scaled-dot", weight: 1 }] }, plus({}, key)),
    typo: "mask_",
    suggestion: "mask",
  },
  {
    name: "hardAttention",
    call: (key) => hardAttention(q, k, v, plus({ topK: 2 }, key)),
    typo: "topk",
    suggestion: "topK",
  },
  {
    name: "blockSparseAttention",
    call: (key) => blockSparseAttention(q, k, v, plus({ layout, blockSize: 2 }, key)),
    typo: "block_size",
    suggestion: "blockSize",
  },
  {
    name: "attentionPooling params",
    bag: true,
    call: (key) => {
      const { w, b } = poolingParams;
      return attentionPooling(q3, plus(bad<typeof poolingParams>({ w, b }), key));
    },
    typo: "contxt",
    suggestion: "context",
  },
  {
    name: "attentionPooling options",
    call: (key) => attentionPooling(q3, poolingParams, plus({}, key)),
    typo: "masks",
    suggestion: "mask",
  },
  {
    name: "sparsePatterns.strided",
    call: (key) => sparsePatterns.strided(4, plus({ stride: 2 }, key)),
    typo: "casual",
    suggestion: "causal",
  },
  {
    name: "sparsePatterns.fixed",
    call: (key) => sparsePatterns.fixed(4, plus({ stride: 2 }, key)),
    typo: "sumary",
    suggestion: "summary",
  },
  {
    name: "sparsePatterns.longformer",
    call: (key) => sparsePatterns.longformer(4, plus({ window: 1 }, key)),
    typo: "global_blocks",
    suggestion: "globalBlocks",
  },
  {
    name: "sparsePatterns.bigbird",
    call: (key) => sparsePatterns.bigbird(4, plus({ window: 1, randomBlocks: 1 }, key)),
    typo: "randomBlock",
    suggestion: "randomBlocks",
  },
  {
    name: "attentionRollout",
    call: (key) => attentionRollout([layer], plus({}, key)),
    typo: "head_fusion",
    suggestion: "headFusion",
  },
  {
    name: "renderHeatmapSvg",
    call: (key) => renderHeatmapSvg(weights2d, plus({}, key)),
    typo: "tilte",
    suggestion: "title",
  },
  {
    name: "init (chooseBuild, shared by init and initSync)",
    call: (key) => chooseBuild(plus({}, key)),
    typo: "thread",
    suggestion: "threads",
  },
];

describe("an unknown option key is a BAD_OPTION error naming it and the closest valid key", () => {
  it.each(CASES)("$name: '$typo' → did you mean '$suggestion'?", ({ call, typo, suggestion }) => {
    const before = snapshot();
    const error = thrown(() => call(typo));
    expect(error.code).toBe("BAD_OPTION");
    expect(error.message).toContain(`unknown key '${typo}'`);
    expect(error.message).toContain(`did you mean '${suggestion}'?`);
    expect(error.message).toContain("valid keys:");
    expectUntouched(before);
  });

  const strict = CASES.filter((c) => !c.bag);
  it.each(strict)(
    "$name: a key like nothing valid lists the valid keys",
    ({ call, suggestion }) => {
      const error = thrown(() => call("zzzzqqqq"));
      expect(error.code).toBe("BAD_OPTION");
      expect(error.message).toContain("unknown key 'zzzzqqqq'");
      expect(error.message).not.toContain("did you mean");
      expect(error.message).toContain(suggestion);
    },
  );

  it("a params bag may hold other ops' parameters, but not a misspelling of a missing one", () => {
    const bag = { ...additiveParams, ...w, wqs: new Float32Array(12), note: "shared" };
    const shared = additiveAttention(q3, q3, q3, bag).output;
    expect(shared.data).toEqual(additiveAttention(q3, q3, q3, additiveParams).output.data);
    expect(bilinearAttention(q3, q3, q3, bag).output.data.every(Number.isFinite)).toBe(true);
    const error = thrown(() => additiveAttention(q3, q3, q3, plus(bag, "bais")));
    expect(error.message).toContain("did you mean 'bias'?");
  });

  it("the asynchronous twins reject the same way", async () => {
    const calls: Array<() => Promise<unknown>> = [
      () => scaledDotProductAttentionAsync(q, k, v, bad({ casual: true })),
      () =>
        scaledDotProductAttentionBackwardAsync(
          q,
          k,
          v,
          forward.output,
          forward.output,
          bad({ lse: forward.lse, casual: true }),
        ),
      () => additiveAttentionAsync(q3, q3, q3, additiveParams, bad({ casual: true })),
      () => cosineAttentionAsync(q3, q3, q3, bad({ casual: true })),
      () => hybridAttentionAsync(q3, q3, q3, { terms: [] }, bad({ casual: true })),
      () => hardAttentionAsync(q, k, v, bad({ topK: 1, casual: true })),
      () => blockSparseAttentionAsync(q, k, v, bad({ layout, blockSize: 2, casual: true })),
      () => attentionPoolingAsync(q3, poolingParams, bad({ casual: true })),
      () => module.forwardAsync(q3, undefined, undefined, bad({ casual: true })),
    ];
    for (const call of calls) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "BAD_OPTION" });
      expect((error as Error).message).toContain("unknown key 'casual'");
    }
  });

  it("{ casual: true } no longer returns non-causal output: the module stays usable", () => {
    expect(() => scaledDotProductAttention(q, k, v, bad({ casual: true }))).toThrow(
      /did you mean 'causal'/,
    );
    const causal = scaledDotProductAttention(q, k, v, { causal: true }).output;
    expect(causal.data.every(Number.isFinite)).toBe(true);
  });
});

describe("closestKey", () => {
  it("matches case, underscores and transpositions, and refuses far-off keys", () => {
    const keys = ["causal", "needWeights", "window", "mask"];
    expect(closestKey("casual", keys)).toBe("causal");
    expect(closestKey("need_weights", keys)).toBe("needWeights");
    expect(closestKey("NeedWeights", keys)).toBe("needWeights");
    expect(closestKey("weights", keys)).toBe("needWeights");
    expect(closestKey("windw", keys)).toBe("window");
    expect(closestKey("temperature", keys)).toBeUndefined();
  });

  it("editDistance counts an adjacent swap as one edit", () => {
    expect(editDistance("casual", "causal")).toBe(1);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("same", "same")).toBe(0);
  });
});
