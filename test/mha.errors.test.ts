// Validation of MultiHeadAttention (construction and forward) and applyRope: each bad argument raises
// an AttentionError with the code src/ops/mha/mha.ts / src/ops/rope.ts use, naming the argument, BEFORE anything
// is written to WASM memory (bytes in use, memory size and memory contents unchanged), and the module
// keeps working afterwards.

import { beforeAll, describe, expect, it } from "vitest";
import {
  MultiHeadAttention,
  applyRope,
  init,
  type ApplyRopeOptions,
  type AttentionErrorCode,
  type MultiHeadAttentionForwardOptions,
  type MultiHeadAttentionOptions,
  type MultiHeadAttentionWeights,
  type Tensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { bad, expectUntouched, snapshot, thrown } from "./helpers/errors";
import { expectClose, type Tolerance } from "./helpers/conformance";
import { randomBoolMask, randomTensor, rng, uniform, type Rng } from "./helpers/random";
import { referenceMha, referenceRope } from "./reference-mha";

const TOL: Tolerance = { atol: 1e-5, rtol: 1e-4 };

beforeAll(async () => {
  await init();
});

// ---- A valid module to start from: E = 24, H = 4, Hkv = 2, kdim = 10, vdim = 14 ----

const E = 24;
const H = 4;
const HKV = 2;
const KVDIM = (E / H) * HKV; // 12
const KDIM = 10;
const VDIM = 14;

function weights(r: Rng): Required<{ [K in keyof MultiHeadAttentionWeights]: Float32Array }> {
  const arr = (n: number, a: number): Float32Array =>
    Float32Array.from({ length: n }, () => uniform(r, -a, a));
  return {
    wq: arr(E * E, 0.5),
    wk: arr(KVDIM * KDIM, 0.8),
    wv: arr(KVDIM * VDIM, 0.8),
    wo: arr(E * E, 0.5),
    bq: arr(E, 1),
    bk: arr(KVDIM, 1),
    bv: arr(KVDIM, 1),
    bo: arr(E, 1),
  };
}

const r0 = rng(99);
const W = weights(r0);
const CONFIG = { embedDim: E, numHeads: H, numKvHeads: HKV, kdim: KDIM, vdim: VDIM } as const;
const q = randomTensor(r0, [2, 3, E]);
const k = randomTensor(r0, [2, 5, KDIM]);
const v = randomTensor(r0, [2, 5, VDIM]);
const keyMask = randomBoolMask(r0, [2, 5], 0.8);

/** The module computes correctly (checked against the reference). */
function expectWorks(mha: MultiHeadAttention): void {
  const got = mha.forward(q, k, v, { keyMask, needWeights: true, averageWeights: false });
  const want = referenceMha(CONFIG, W, q, k, v, { keyMask, averageWeights: false });
  expectClose(got.output, want.output, TOL, "output");
  expectClose(got.weights, want.weights, TOL, "weights");
}

// =====================================================================================
// Construction
// =====================================================================================

const CONSTRUCTION: Array<[string, AttentionErrorCode, () => MultiHeadAttentionOptions, string[]]> =
  [
    [
      "embedDim not divisible by numHeads",
      "BAD_OPTION",
      () => ({ embedDim: 10, numHeads: 3 }),
      ["embedDim", "10", "3"],
    ],
    [
      "numHeads not divisible by numKvHeads",
      "BAD_OPTION",
      () => ({ embedDim: 24, numHeads: 4, numKvHeads: 3 }),
      ["numKvHeads", "4", "3"],
    ],
    [
      "numKvHeads larger than numHeads",
      "BAD_OPTION",
      () => ({ embedDim: 24, numHeads: 2, numKvHeads: 4 }),
      ["numKvHeads"],
    ],
    ["non-integer embedDim", "BAD_OPTION", () => ({ embedDim: 24.5, numHeads: 1 }), ["embedDim"]],
    ["embedDim 0", "BAD_OPTION", () => ({ embedDim: 0, numHeads: 1 }), ["embedDim"]],
    [
      "embedDim as a string",
      "BAD_OPTION",
      () => bad({ embedDim: "24", numHeads: 4 }),
      ["embedDim"],
    ],
    ["numHeads 0", "BAD_OPTION", () => ({ embedDim: 24, numHeads: 0 }), ["numHeads"]],
    ["non-integer numHeads", "BAD_OPTION", () => ({ embedDim: 24, numHeads: 2.5 }), ["numHeads"]],
    [
      "non-integer numKvHeads",
      "BAD_OPTION",
      () => ({ embedDim: 24, numHeads: 4, numKvHeads: 1.5 }),
      ["numKvHeads"],
    ],
    ["negative kdim", "BAD_OPTION", () => ({ embedDim: 24, numHeads: 4, kdim: -3 }), ["kdim"]],
    ["NaN vdim", "BAD_OPTION", () => ({ embedDim: 24, numHeads: 4, vdim: NaN }), ["vdim"]],
    ["non-integer seed", "BAD_OPTION", () => ({ embedDim: 24, numHeads: 4, seed: 0.5 }), ["seed"]],
    [
      "bias not a boolean",
      "BAD_OPTION",
      () => bad({ embedDim: 24, numHeads: 4, bias: 1 }),
      ["bias"],
    ],
    ["options null", "BAD_OPTION", () => bad(null), ["options"]],
    ["weights not an object", "BAD_OPTION", () => bad({ ...CONFIG, weights: 5 }), ["weights"]],
    [
      "wq of the wrong length",
      "SHAPE_MISMATCH",
      () => ({ ...CONFIG, weights: { ...W, wq: new Float32Array(E * E - 1) } }),
      ["wq", `${E * E - 1}`],
    ],
    [
      "wk sized for numKvHeads = numHeads ([E, kdim] instead of [E·Hkv/H, kdim])",
      "SHAPE_MISMATCH",
      () => ({ ...CONFIG, weights: { ...W, wk: new Float32Array(E * KDIM) } }),
      ["wk", `${E * KDIM}`, `${KVDIM * KDIM}`],
    ],
    [
      "wk laid out [kdim, E·Hkv/H] as a Tensor",
      "SHAPE_MISMATCH",
      () => ({ ...CONFIG, weights: { ...W, wk: { data: W.wk, shape: [KDIM, KVDIM] } } }),
      ["wk", `[${KDIM},${KVDIM}]`],
    ],
    [
      "wv of the wrong length",
      "SHAPE_MISMATCH",
      () => ({ ...CONFIG, weights: { ...W, wv: new Float32Array(KVDIM * KDIM) } }),
      ["wv", `${KVDIM * KDIM}`],
    ],
    [
      "wo of the wrong length",
      "SHAPE_MISMATCH",
      () => ({ ...CONFIG, weights: { ...W, wo: new Float32Array(E * E + E) } }),
      ["wo"],
    ],
    [
      "wo a Tensor with Float64Array data",
      "BAD_DTYPE",
      () => ({
        ...CONFIG,
        weights: { ...W, wo: bad<Tensor>({ data: new Float64Array(E * E), shape: [E, E] }) },
      }),
      ["wo", "Float64Array"],
    ],
    [
      "bq of the wrong length",
      "SHAPE_MISMATCH",
      () => ({ ...CONFIG, weights: { ...W, bq: new Float32Array(E + 1) } }),
      ["bq", `${E + 1}`, `${E}`],
    ],
    [
      "bk of length E instead of E·Hkv/H",
      "SHAPE_MISMATCH",
      () => ({ ...CONFIG, weights: { ...W, bk: new Float32Array(E) } }),
      ["bk", `${E}`, `${KVDIM}`],
    ],
    [
      "bv of the wrong length",
      "SHAPE_MISMATCH",
      () => ({ ...CONFIG, weights: { ...W, bv: new Float32Array(1) } }),
      ["bv"],
    ],
    [
      "bo of the wrong length",
      "SHAPE_MISMATCH",
      () => ({ ...CONFIG, weights: { ...W, bo: new Float32Array(0) } }),
      ["bo"],
    ],
    [
      "bo a Float64Array",
      "BAD_DTYPE",
      () => ({ ...CONFIG, weights: { ...W, bo: bad<Float32Array>(new Float64Array(E)) } }),
      ["bo", "Float64Array"],
    ],
    [
      "bq a number[]",
      "BAD_DTYPE",
      () => ({ ...CONFIG, weights: { ...W, bq: bad<Float32Array>(new Array(E).fill(0)) } }),
      ["bq"],
    ],
    [
      "a bias given with bias: false",
      "BAD_OPTION",
      () => {
        const { bq: _q, bk: _k, bv: _v, ...noBias } = W;
        return { ...CONFIG, bias: false, weights: { ...noBias, bo: W.bo } };
      },
      ["bo", "bias"],
    ],
    [
      "odd head dim with rope",
      "SHAPE_MISMATCH",
      () => ({ embedDim: 12, numHeads: 4, rope: {} }),
      ["3"],
    ],
    [
      "rope base 0",
      "BAD_OPTION",
      () => ({ embedDim: 24, numHeads: 4, rope: { base: 0 } }),
      ["base"],
    ],
    [
      "rope base negative",
      "BAD_OPTION",
      () => ({ embedDim: 24, numHeads: 4, rope: { base: -10000 } }),
      ["base"],
    ],
    [
      "rope style 'foo'",
      "BAD_OPTION",
      () => ({ embedDim: 24, numHeads: 4, rope: bad({ style: "foo" }) }),
      ["style", "foo"],
    ],
    [
      "rope not an object",
      "BAD_OPTION",
      () => ({ embedDim: 24, numHeads: 4, rope: bad(true) }),
      ["rope"],
    ],
  ];

describe("MultiHeadAttention construction errors", () => {
  it("the valid configuration used below constructs and computes", () => {
    const mha = new MultiHeadAttention({ ...CONFIG, weights: W });
    try {
      expectWorks(mha);
    } finally {
      mha.dispose();
    }
  });

  it.each(CONSTRUCTION)(
    "%s → %s, before touching WASM memory",
    (_name, code, options, mentions) => {
      // Build the options first: that is plain JavaScript, not part of what is checked.
      const opts = options();
      const before = snapshot();
      const err = thrown(() => new MultiHeadAttention(opts));
      expect(err.code, err.message).toBe(code);
      expect(err.message).toContain("MultiHeadAttention");
      for (const m of mentions) expect(err.message).toContain(m);
      expectUntouched(before);
      // Nothing broken: a valid module still works, and gives everything back.
      const mha = new MultiHeadAttention({ ...CONFIG, weights: W });
      try {
        expectWorks(mha);
      } finally {
        mha.dispose();
      }
      expect(kernels("test").workspace.bytesInUse).toBe(before.inUse);
    },
  );

  it("a bare Float64Array as a weight matrix is refused before touching memory", () => {
    const before = snapshot();
    const err = thrown(
      () =>
        new MultiHeadAttention({
          ...CONFIG,
          weights: { ...W, wq: bad<Float32Array>(new Float64Array(E * E)) },
        }),
    );
    expect(["BAD_DTYPE", "BAD_OPTION"]).toContain(err.code);
    expect(err.message).toContain("wq");
    expectUntouched(before);
  });
});

// =====================================================================================
// Forward
// =====================================================================================

type ForwardArgs = [
  Tensor,
  Tensor | undefined,
  Tensor | undefined,
  MultiHeadAttentionForwardOptions?,
];

const FORWARD: Array<[string, AttentionErrorCode, () => ForwardArgs, string[]]> = [
  [
    "query last dim ≠ embedDim",
    "SHAPE_MISMATCH",
    () => [randomTensor(r0, [2, 3, E + 1]), k, v],
    ["query", `[2,3,${E + 1}]`, `${E}`],
  ],
  [
    "query of rank 4",
    "SHAPE_MISMATCH",
    () => [randomTensor(r0, [1, 2, 3, E]), k, v],
    ["query", `[1,2,3,${E}]`],
  ],
  ["query of rank 1", "SHAPE_MISMATCH", () => [randomTensor(r0, [E]), k, v], ["query", `[${E}]`]],
  [
    "query with Float64Array data",
    "BAD_DTYPE",
    () => [bad<Tensor>({ data: new Float64Array(2 * 3 * E), shape: [2, 3, E] }), k, v],
    ["query", "Float64Array"],
  ],
  [
    "query data length ≠ product of its shape",
    "SHAPE_MISMATCH",
    () => [{ data: new Float32Array(2 * 3 * E - 1), shape: [2, 3, E] }, k, v],
    ["query"],
  ],
  [
    "query not a tensor",
    "BAD_OPTION",
    () => [bad<Tensor>(new Float32Array(2 * 3 * E)), k, v],
    ["query"],
  ],
  [
    "key last dim ≠ kdim",
    "SHAPE_MISMATCH",
    () => [q, randomTensor(r0, [2, 5, E]), v],
    ["key", `[2,5,${E}]`, `${KDIM}`],
  ],
  [
    "value last dim ≠ vdim",
    "SHAPE_MISMATCH",
    () => [q, k, randomTensor(r0, [2, 5, KDIM])],
    ["value", `[2,5,${KDIM}]`, `${VDIM}`],
  ],
  [
    "self-attention on a module with kdim ≠ embedDim",
    "SHAPE_MISMATCH",
    () => [q, undefined, undefined],
    ["key"],
  ],
  [
    "key and value of different lengths",
    "SHAPE_MISMATCH",
    () => [q, k, randomTensor(r0, [2, 6, VDIM])],
    ["key", "value"],
  ],
  [
    "key batch ≠ query batch",
    "SHAPE_MISMATCH",
    () => [q, randomTensor(r0, [1, 5, KDIM]), randomTensor(r0, [1, 5, VDIM])],
    ["batch"],
  ],
  [
    "value batch ≠ query batch",
    "SHAPE_MISMATCH",
    () => [q, k, randomTensor(r0, [3, 5, VDIM])],
    ["batch"],
  ],
  [
    "rank-2 query (B = 1) with batch-2 key and value",
    "SHAPE_MISMATCH",
    () => [randomTensor(r0, [3, E]), k, v],
    ["batch"],
  ],
  [
    "keyMask [B, Nk + 1]",
    "SHAPE_MISMATCH",
    () => [q, k, v, { keyMask: randomBoolMask(r0, [2, 6], 0.5) }],
    ["keyMask", "[2,6]", "[2,5]"],
  ],
  [
    "keyMask [Nk] (no batch dim)",
    "SHAPE_MISMATCH",
    () => [q, k, v, { keyMask: randomBoolMask(r0, [5], 0.5) }],
    ["keyMask", "[5]"],
  ],
  [
    "keyMask [B, 1, Nk]",
    "SHAPE_MISMATCH",
    () => [q, k, v, { keyMask: randomBoolMask(r0, [2, 1, 5], 0.5) }],
    ["keyMask", "[2,1,5]"],
  ],
  [
    "keyMask [1, Nk] for B = 2",
    "SHAPE_MISMATCH",
    () => [q, k, v, { keyMask: randomBoolMask(r0, [1, 5], 0.5) }],
    ["keyMask", "[1,5]"],
  ],
  [
    "keyMask of float32",
    "BAD_DTYPE",
    () => [q, k, v, { keyMask: bad<Tensor<Uint8Array>>(randomTensor(r0, [2, 5])) }],
    ["keyMask", "Float32Array"],
  ],
  [
    "keyMask data length ≠ product of its shape",
    "SHAPE_MISMATCH",
    () => [q, k, v, { keyMask: { data: new Uint8Array(9), shape: [2, 5] } }],
    ["keyMask"],
  ],
  [
    "mask [Nq, Nk + 1]",
    "SHAPE_MISMATCH",
    () => [q, k, v, { mask: randomBoolMask(r0, [3, 6], 0.5) }],
    ["mask", "[3,6]"],
  ],
  [
    "mask [Nk, Nq] (transposed)",
    "SHAPE_MISMATCH",
    () => [q, k, v, { mask: randomTensor(r0, [5, 3]) }],
    ["mask", "[5,3]"],
  ],
  [
    "mask [B·H + 1, Nq, Nk]",
    "SHAPE_MISMATCH",
    () => [q, k, v, { mask: randomBoolMask(r0, [2 * H + 1, 3, 5], 0.5) }],
    ["mask"],
  ],
  [
    "mask [B, Hkv, Nq, Nk] (kv heads, not query heads)",
    "SHAPE_MISMATCH",
    () => [q, k, v, { mask: randomBoolMask(r0, [2, HKV, 3, 5], 0.5) }],
    ["mask", `[2,${HKV},3,5]`],
  ],
  [
    "mask of rank 5",
    "SHAPE_MISMATCH",
    () => [q, k, v, { mask: randomBoolMask(r0, [1, 2, H, 3, 5], 0.5) }],
    ["mask"],
  ],
  [
    "mask with Float64Array data",
    "BAD_DTYPE",
    () => [q, k, v, { mask: bad<Tensor>({ data: new Float64Array(15), shape: [3, 5] }) }],
    ["mask", "Float64Array"],
  ],
  [
    "needWeights not a boolean",
    "BAD_OPTION",
    () => [q, k, v, { needWeights: bad<boolean>("yes") }],
    ["needWeights"],
  ],
  [
    "averageWeights not a boolean",
    "BAD_OPTION",
    () => [q, k, v, { needWeights: true, averageWeights: bad<boolean>(0) }],
    ["averageWeights"],
  ],
  [
    "causal not a boolean",
    "BAD_OPTION",
    () => [q, k, v, { causal: bad<boolean>("true") }],
    ["causal"],
  ],
  [
    "window of one bound",
    "BAD_OPTION",
    () => [q, k, v, { window: bad<[number, number]>([2]) }],
    ["window"],
  ],
  [
    "window with a fractional bound",
    "BAD_OPTION",
    () => [q, k, v, { window: [1.5, 0] }],
    ["window"],
  ],
  ["options a string", "BAD_OPTION", () => [q, k, v, bad("causal")], ["options"]],
  [
    "cache not made by createCache",
    "BAD_OPTION",
    () => [q, k, v, { cache: bad({ length: 0, maxLength: 10 }) }],
    ["cache"],
  ],
];

describe("MultiHeadAttention.forward errors", () => {
  it.each(FORWARD)("%s → %s, before touching WASM memory", (_name, code, args, mentions) => {
    const mha = new MultiHeadAttention({ ...CONFIG, weights: W });
    try {
      expectWorks(mha); // memory has grown for this size already
      const [query, key, value, options] = args();
      const before = snapshot();
      const err = thrown(() => mha.forward(query, key, value, options));
      expect(err.code, err.message).toBe(code);
      expect(err.message).toContain("MultiHeadAttention.forward");
      for (const m of mentions) expect(err.message).toContain(m);
      expectUntouched(before);
      expectWorks(mha);
      expect(kernels("test").workspace.bytesInUse).toBe(before.inUse);
    } finally {
      mha.dispose();
    }
  });
});

// =====================================================================================
// applyRope
// =====================================================================================

const x4 = randomTensor(r0, [2, 3, 5, 8]);

const ROPE: Array<[string, AttentionErrorCode, () => [Tensor, ApplyRopeOptions?], string[]]> = [
  ["odd D", "SHAPE_MISMATCH", () => [randomTensor(r0, [2, 3, 5, 7])], ["7"]],
  ["D = 1", "SHAPE_MISMATCH", () => [randomTensor(r0, [4, 1])], ["1"]],
  ["x of rank 1", "SHAPE_MISMATCH", () => [randomTensor(r0, [8])], ["x", "[8]"]],
  ["x of rank 5", "SHAPE_MISMATCH", () => [randomTensor(r0, [1, 2, 3, 5, 8])], ["x"]],
  [
    "x with Float64Array data",
    "BAD_DTYPE",
    () => [bad<Tensor>({ data: new Float64Array(16), shape: [2, 8] })],
    ["x", "Float64Array"],
  ],
  [
    "positions shorter than N",
    "SHAPE_MISMATCH",
    () => [x4, { positions: Int32Array.from([0, 1, 2, 3]) }],
    ["positions", "4", "5"],
  ],
  [
    "positions longer than N",
    "SHAPE_MISMATCH",
    () => [x4, { positions: [0, 1, 2, 3, 4, 5] }],
    ["positions", "6", "5"],
  ],
  [
    "non-integer positions",
    "BAD_OPTION",
    () => [x4, { positions: [0, 1, 2.5, 3, 4] }],
    ["positions", "2.5"],
  ],
  ["NaN position", "BAD_OPTION", () => [x4, { positions: [0, 1, NaN, 3, 4] }], ["positions"]],
  [
    "positions a Float32Array",
    "BAD_DTYPE",
    () => [x4, { positions: bad<number[]>(new Float32Array(5)) }],
    ["positions", "Float32Array"],
  ],
  [
    "non-integer positionOffset",
    "BAD_OPTION",
    () => [x4, { positionOffset: 0.5 }],
    ["positionOffset"],
  ],
  ["base 0", "BAD_OPTION", () => [x4, { base: 0 }], ["base"]],
  ["base negative", "BAD_OPTION", () => [x4, { base: -2 }], ["base"]],
  ["base NaN", "BAD_OPTION", () => [x4, { base: NaN }], ["base"]],
  ["base Infinity", "BAD_OPTION", () => [x4, { base: Infinity }], ["base"]],
  ["style 'foo'", "BAD_OPTION", () => [x4, { style: bad<"neox">("foo") }], ["style", "foo"]],
  ["options a string", "BAD_OPTION", () => [x4, bad("neox")], ["options"]],
];

function expectRopeWorks(): void {
  const got = applyRope(x4, { style: "gptj", positionOffset: 7, base: 500 });
  const positions = [7, 8, 9, 10, 11];
  expectClose(got, referenceRope(x4, { style: "gptj", base: 500, positions }), TOL, "applyRope");
}

describe("applyRope errors", () => {
  it.each(ROPE)("%s → %s, before touching WASM memory", (_name, code, args, mentions) => {
    expectRopeWorks();
    const [x, options] = args();
    const before = snapshot();
    const err = thrown(() => applyRope(x, options));
    expect(err.code, err.message).toBe(code);
    expect(err.message).toContain("applyRope");
    for (const m of mentions) expect(err.message).toContain(m);
    expectUntouched(before);
    expectRopeWorks();
    expect(kernels("test").workspace.bytesInUse).toBe(before.inUse);
  });
});
