// Validation of the attention family (additiveAttention, bilinearAttention, cosineAttention,
// hybridAttention): each bad argument raises an AttentionError with the code src/family/ uses, naming
// the op and the argument, BEFORE anything is written to WASM memory (bytes in use, memory size and
// memory contents unchanged), and the module keeps computing correctly afterwards.

import { beforeAll, describe, expect, it } from "vitest";
import {
  additiveAttention,
  bilinearAttention,
  cosineAttention,
  hybridAttention,
  init,
  type AttentionErrorCode,
  type FamilyOptions,
  type Matrix,
  type ScoreTerm,
  type Tensor,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { bad, expectUntouched, snapshot, thrown } from "./helpers/errors";
import { expectClose, type Tolerance } from "./helpers/conformance";
import { randomBoolMask, randomTensor, rng, uniform, type Rng } from "./helpers/random";
import {
  referenceAdditive,
  referenceBilinear,
  referenceCosine,
  referenceHybrid,
} from "./reference-family";

const TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };

beforeAll(async () => {
  await init();
});

// ---- Valid inputs to start from: B = 2, Nq = 3, Nk = 5, Dq = 4, Dk = 6, Dv = 3, A = 7 ----

const B = 2;
const NQ = 3;
const NK = 5;
const DQ = 4;
const DK = 6;
const DV = 3;
const A = 7;

const r0 = rng(2024);
const arr = (r: Rng, n: number, a = 1): Float32Array =>
  Float32Array.from({ length: n }, () => uniform(r, -a, a));
const q = randomTensor(r0, [B, NQ, DQ]);
const k = randomTensor(r0, [B, NK, DK]);
const v = randomTensor(r0, [B, NK, DV]);
/** A query with the keys' feature size, for the ops and terms that need Dq = Dk. */
const qs = randomTensor(r0, [B, NQ, DK]);
const P = {
  wq: arr(r0, A * DQ, 0.8),
  wk: arr(r0, A * DK, 0.8),
  va: arr(r0, A),
  bias: arr(r0, A),
  w: arr(r0, DQ * DK, 0.8),
  /** wq of an additive term on qs. */
  wqs: arr(r0, A * DK, 0.8),
};
const mask = randomBoolMask(r0, [B, 1, NK], 0.8);
mask.data[0] = 1; // no fully masked row needed here, but keep one key visible in each batch
mask.data[NK] = 1;

/** Every op still computes correctly (checked against the references). */
function expectWorks(): void {
  const opts = { mask, returnWeights: true };
  const a = additiveAttention(q, k, v, { wq: P.wq, wk: P.wk, va: P.va, bias: P.bias }, opts);
  const ra = referenceAdditive(q, k, v, P, { mask });
  expectClose(a.output, ra.output, TOL, "additive output");
  expectClose(a.weights, ra.weights, TOL, "additive weights");
  const b = bilinearAttention(q, k, v, { w: P.w }, opts);
  expectClose(b.output, referenceBilinear(q, k, v, { w: P.w }, { mask }).output, TOL, "bilinear");
  const c = cosineAttention(qs, k, v, { ...opts, temperature: 0.5 });
  expectClose(c.output, referenceCosine(qs, k, v, { mask, temperature: 0.5 }).output, TOL, "cos");
  const terms = [
    { kind: "scaled-dot" as const, weight: 0.5 },
    { kind: "additive" as const, weight: -1, wq: P.wqs, wk: P.wk, va: P.va },
    { kind: "cosine" as const, weight: 2 },
  ];
  const h = hybridAttention(qs, k, v, { terms }, opts);
  expectClose(h.output, referenceHybrid(qs, k, v, terms, { mask }).output, TOL, "hybrid");
}

type Call = () => unknown;
type Case = [string, AttentionErrorCode | AttentionErrorCode[], () => Call, string[]];

const additive = (
  p: Partial<Record<"wq" | "wk" | "va" | "bias", unknown>>,
  options?: FamilyOptions,
): Call => {
  const params = bad<{ wq: Matrix; wk: Matrix; va: Float32Array; bias?: Float32Array }>({
    wq: P.wq,
    wk: P.wk,
    va: P.va,
    bias: P.bias,
    ...p,
  });
  return () => additiveAttention(q, k, v, params, options);
};
const bilinear = (w: unknown, options?: FamilyOptions): Call => {
  return () => bilinearAttention(q, k, v, { w: bad<Matrix>(w) }, options);
};
const hybrid = (terms: unknown, qq: Tensor = qs, options?: FamilyOptions): Call => {
  return () => hybridAttention(qq, k, v, { terms: bad<ScoreTerm[]>(terms) }, options);
};
const cosine = (options: unknown, qq: Tensor = qs): Call => {
  return () => cosineAttention(qq, k, v, bad<FamilyOptions>(options));
};
const f32 = (shape: number[]): Tensor => ({
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
  shape,
});

// =====================================================================================
// Parameters
// =====================================================================================

const PARAMETERS: Case[] = [
  // ---- SHAPE_MISMATCH: sizes ----
  [
    "additive: wq length not a multiple of Dq",
    "SHAPE_MISMATCH",
    () => additive({ wq: new Float32Array(A * DQ + 1) }),
    ["additiveAttention", "wq"],
  ],
  [
    "additive: wq tensor [A, Dq+1]",
    "SHAPE_MISMATCH",
    () => additive({ wq: f32([A, DQ + 1]) }),
    ["wq", `[${A},${DQ + 1}]`],
  ],
  [
    "additive: wq tensor of rank 1",
    "SHAPE_MISMATCH",
    () => additive({ wq: f32([A * DQ]) }),
    ["wq"],
  ],
  [
    "additive: wq tensor [A, Dk] (the key's size)",
    "SHAPE_MISMATCH",
    () => additive({ wq: f32([A, DK]) }),
    ["wq"],
  ],
  [
    "additive: wk with A+1 rows (bare)",
    "SHAPE_MISMATCH",
    () => additive({ wk: new Float32Array((A + 1) * DK) }),
    ["wk", `${(A + 1) * DK}`],
  ],
  [
    "additive: wk tensor with A−1 rows",
    "SHAPE_MISMATCH",
    () => additive({ wk: f32([A - 1, DK]) }),
    ["wk", `[${A - 1},${DK}]`],
  ],
  [
    "additive: wk tensor [A, Dq] (the query's size)",
    "SHAPE_MISMATCH",
    () => additive({ wk: f32([A, DQ]) }),
    ["wk"],
  ],
  [
    "additive: va of length A−1",
    "SHAPE_MISMATCH",
    () => additive({ va: new Float32Array(A - 1) }),
    ["va", `${A - 1}`, `${A}`],
  ],
  [
    "additive: va of length A+1",
    "SHAPE_MISMATCH",
    () => additive({ va: new Float32Array(A + 1) }),
    ["va", `${A + 1}`],
  ],
  [
    "additive: va tensor of length A+1",
    "SHAPE_MISMATCH",
    () => additive({ va: f32([A + 1]) }),
    ["va"],
  ],
  [
    "additive: bias of length A+1",
    "SHAPE_MISMATCH",
    () => additive({ bias: new Float32Array(A + 1) }),
    ["bias", `${A + 1}`, `${A}`],
  ],
  [
    "additive: bias of length 0",
    "SHAPE_MISMATCH",
    () => additive({ bias: new Float32Array(0) }),
    ["bias"],
  ],
  [
    "bilinear: w with one element too many",
    "SHAPE_MISMATCH",
    () => bilinear(new Float32Array(DQ * DK + 1)),
    ["bilinearAttention", "w"],
  ],
  ["bilinear: w of [Dq, Dq]", "SHAPE_MISMATCH", () => bilinear(new Float32Array(DQ * DQ)), ["w"]],
  [
    "bilinear: w tensor [Dk, Dq] (transposed)",
    "SHAPE_MISMATCH",
    () => bilinear(f32([DK, DQ])),
    ["w", `[${DK},${DQ}]`],
  ],
  ["bilinear: w tensor of rank 3", "SHAPE_MISMATCH", () => bilinear(f32([DQ, DK, 1])), ["w"]],
  [
    "bilinear: w tensor whose data length differs from its shape",
    "SHAPE_MISMATCH",
    () => bilinear({ data: new Float32Array(DQ * DK - 1), shape: [DQ, DK] }),
    ["w"],
  ],
  [
    "hybrid: additive term with va of length A+1",
    "SHAPE_MISMATCH",
    () =>
      hybrid(
        [
          { kind: "scaled-dot", weight: 1 },
          { kind: "additive", weight: 1, wq: P.wqs, wk: P.wk, va: new Float32Array(A + 1) },
        ],
        qs,
      ),
    ["hybridAttention", "terms[1].va"],
  ],
  [
    "hybrid: bilinear term with w [Dk, Dq]",
    "SHAPE_MISMATCH",
    () => hybrid([{ kind: "bilinear", weight: 2, w: f32([DK, DQ]) }], q),
    ["terms[0].w"],
  ],

  // ---- BAD_DTYPE: types ----
  [
    "additive: wq a Float64Array",
    "BAD_DTYPE",
    () => additive({ wq: new Float64Array(A * DQ) }),
    ["wq", "Float64Array"],
  ],
  [
    "additive: wq a tensor with Float64Array data",
    "BAD_DTYPE",
    () => additive({ wq: { data: new Float64Array(A * DQ), shape: [A, DQ] } }),
    ["wq", "Float64Array"],
  ],
  [
    "additive: wk a Uint8Array",
    "BAD_DTYPE",
    () => additive({ wk: new Uint8Array(A * DK) }),
    ["wk", "Uint8Array"],
  ],
  [
    "additive: va a Float64Array",
    "BAD_DTYPE",
    () => additive({ va: new Float64Array(A) }),
    ["va", "Float64Array"],
  ],
  ["additive: va a number[]", "BAD_DTYPE", () => additive({ va: Array.from(P.va) }), ["va"]],
  [
    "additive: va a tensor with Float64Array data",
    "BAD_DTYPE",
    () => additive({ va: { data: new Float64Array(A), shape: [A] } }),
    ["va"],
  ],
  [
    "additive: bias a Float64Array",
    "BAD_DTYPE",
    () => additive({ bias: new Float64Array(A) }),
    ["bias", "Float64Array"],
  ],
  [
    "additive: bias a number[]",
    "BAD_DTYPE",
    () => additive({ bias: new Array(A).fill(0) }),
    ["bias"],
  ],
  [
    "bilinear: w a Float64Array",
    "BAD_DTYPE",
    () => bilinear(new Float64Array(DQ * DK)),
    ["w", "Float64Array"],
  ],
  [
    "bilinear: w a tensor with Int32Array data",
    "BAD_DTYPE",
    () => bilinear({ data: new Int32Array(DQ * DK), shape: [DQ, DK] }),
    ["w", "Int32Array"],
  ],
  [
    "hybrid: additive term with wk a Float64Array",
    "BAD_DTYPE",
    () =>
      hybrid(
        [{ kind: "additive", weight: 1, wq: P.wq, wk: new Float64Array(A * DK), va: P.va }],
        q,
      ),
    ["terms[0].wk", "Float64Array"],
  ],
  // A plain array is not a tensor { data, shape }; the project reports that as BAD_OPTION or
  // BAD_DTYPE (see test/linear.test.ts), so either code is accepted for matrices.
  [
    "additive: wq a number[]",
    ["BAD_DTYPE", "BAD_OPTION"],
    () => additive({ wq: Array.from(P.wq) }),
    ["wq"],
  ],
  ["bilinear: w a number[]", ["BAD_DTYPE", "BAD_OPTION"], () => bilinear(Array.from(P.w)), ["w"]],

  // ---- BAD_OPTION: missing or not objects ----
  ["additive: wq missing", "BAD_OPTION", () => additive({ wq: undefined }), ["wq"]],
  ["additive: va missing", "BAD_OPTION", () => additive({ va: undefined }), ["va"]],
  [
    "additive: params null",
    "BAD_OPTION",
    () => () => additiveAttention(q, k, v, bad(null)),
    ["additiveAttention", "params"],
  ],
  [
    "bilinear: params undefined",
    "BAD_OPTION",
    () => () => bilinearAttention(q, k, v, bad(undefined)),
    ["bilinearAttention", "params"],
  ],
  ["bilinear: w missing", "BAD_OPTION", () => bilinear(undefined), ["w"]],
  [
    "hybrid: params null",
    "BAD_OPTION",
    () => () => hybridAttention(q, k, v, bad(null)),
    ["hybridAttention", "params"],
  ],
];

// =====================================================================================
// Temperature and terms
// =====================================================================================

const OPTIONS: Case[] = [
  ["cosine: temperature 0", "BAD_OPTION", () => cosine({ temperature: 0 }), ["temperature"]],
  ["cosine: temperature −1", "BAD_OPTION", () => cosine({ temperature: -1 }), ["temperature"]],
  ["cosine: temperature NaN", "BAD_OPTION", () => cosine({ temperature: NaN }), ["temperature"]],
  [
    "cosine: temperature Infinity",
    "BAD_OPTION",
    () => cosine({ temperature: Infinity }),
    ["temperature"],
  ],
  [
    "cosine: temperature a string",
    "BAD_OPTION",
    () => cosine({ temperature: "2" }),
    ["temperature"],
  ],
  ["cosine: options a string", "BAD_OPTION", () => cosine("yes"), ["cosineAttention"]],
  [
    "hybrid: cosine term with temperature 0",
    "BAD_OPTION",
    () => hybrid([{ kind: "cosine", weight: 1, temperature: 0 }]),
    ["terms[0].temperature"],
  ],
  [
    "hybrid: cosine term with temperature NaN",
    "BAD_OPTION",
    () =>
      hybrid([
        { kind: "scaled-dot", weight: 1 },
        { kind: "cosine", weight: 1, temperature: NaN },
      ]),
    ["terms[1].temperature"],
  ],
  ["cosine: Dq ≠ Dk", "SHAPE_MISMATCH", () => cosine({}, q), ["cosineAttention", `${DQ}`, `${DK}`]],
  [
    "hybrid: scaled-dot term with Dq ≠ Dk",
    "SHAPE_MISMATCH",
    () => hybrid([{ kind: "scaled-dot", weight: 1 }], q),
    ["scaled-dot", `${DQ}`, `${DK}`],
  ],
  [
    "hybrid: cosine term with Dq ≠ Dk (after a valid bilinear term)",
    "SHAPE_MISMATCH",
    () =>
      hybrid(
        [
          { kind: "bilinear", weight: 1, w: P.w },
          { kind: "cosine", weight: 1 },
        ],
        q,
      ),
    ["cosine", `${DQ}`, `${DK}`],
  ],
  ["hybrid: terms empty", "BAD_OPTION", () => hybrid([]), ["terms"]],
  ["hybrid: terms an object", "BAD_OPTION", () => hybrid({}), ["terms"]],
  ["hybrid: terms a string", "BAD_OPTION", () => hybrid("scaled-dot"), ["terms"]],
  ["hybrid: terms missing", "BAD_OPTION", () => hybrid(undefined), ["terms"]],
  ["hybrid: a null term", "BAD_OPTION", () => hybrid([null]), ["terms[0]"]],
  [
    "hybrid: a number term",
    "BAD_OPTION",
    () => hybrid([{ kind: "cosine", weight: 1 }, 3]),
    ["terms[1]"],
  ],
  [
    "hybrid: unknown kind",
    "BAD_OPTION",
    () => hybrid([{ kind: "dot", weight: 1 }]),
    ["terms[0].kind", "dot"],
  ],
  ["hybrid: kind missing", "BAD_OPTION", () => hybrid([{ weight: 1 }]), ["terms[0].kind"]],
  [
    "hybrid: weight NaN",
    "BAD_OPTION",
    () => hybrid([{ kind: "scaled-dot", weight: NaN }]),
    ["terms[0].weight"],
  ],
  [
    "hybrid: weight Infinity",
    "BAD_OPTION",
    () =>
      hybrid([
        { kind: "cosine", weight: 1 },
        { kind: "scaled-dot", weight: Infinity },
      ]),
    ["terms[1].weight"],
  ],
  [
    "hybrid: weight −Infinity",
    "BAD_OPTION",
    () => hybrid([{ kind: "additive", weight: -Infinity, wq: P.wq, wk: P.wk, va: P.va }], q),
    ["terms[0].weight"],
  ],
  [
    "hybrid: weight a string",
    "BAD_OPTION",
    () => hybrid([{ kind: "cosine", weight: "1" }]),
    ["terms[0].weight"],
  ],
  [
    "hybrid: weight missing",
    "BAD_OPTION",
    () => hybrid([{ kind: "bilinear", w: P.w }], q),
    ["terms[0].weight"],
  ],
  [
    "hybrid: additive term without wk",
    "BAD_OPTION",
    () => hybrid([{ kind: "additive", weight: 1, wq: P.wq, va: P.va }], q),
    ["terms[0].wk"],
  ],
];

// =====================================================================================
// q, k, v and masks (for every op)
// =====================================================================================

/** "hybrid" has an additive term (its score matrix takes the mask); "hybrid-dot" has none. */
type OpName = "additive" | "bilinear" | "cosine" | "hybrid" | "hybrid-dot";
const OP_NAMES: OpName[] = ["additive", "bilinear", "cosine", "hybrid", "hybrid-dot"];
const FN_NAME: Record<OpName, string> = {
  additive: "additiveAttention",
  bilinear: "bilinearAttention",
  cosine: "cosineAttention",
  hybrid: "hybridAttention",
  "hybrid-dot": "hybridAttention",
};
const LABEL: Record<OpName, string> = {
  ...FN_NAME,
  hybrid: "hybridAttention (additive + scaled-dot)",
  "hybrid-dot": "hybridAttention (scaled-dot + cosine)",
};

/** A call of op `name` on q, k, v (q's features = DK for cosine/hybrid, so every op accepts it). */
function callOp(
  name: OpName,
  qq: Tensor,
  kk: Tensor,
  vv: Tensor,
  options: FamilyOptions = {},
): Call {
  const Dq = qq.shape[qq.shape.length - 1];
  switch (name) {
    case "additive":
      return () =>
        additiveAttention(
          qq,
          kk,
          vv,
          { wq: new Float32Array(A * Dq), wk: P.wk, va: P.va },
          options,
        );
    case "bilinear":
      return () => bilinearAttention(qq, kk, vv, { w: new Float32Array(Dq * DK) }, options);
    case "cosine":
      return () => cosineAttention(qq, kk, vv, options);
    case "hybrid":
      return () =>
        hybridAttention(
          qq,
          kk,
          vv,
          {
            terms: [
              { kind: "scaled-dot", weight: 1 },
              { kind: "additive", weight: 0.5, wq: new Float32Array(A * Dq), wk: P.wk, va: P.va },
            ],
          },
          options,
        );
    case "hybrid-dot":
      return () =>
        hybridAttention(
          qq,
          kk,
          vv,
          {
            terms: [
              { kind: "scaled-dot", weight: 1 },
              { kind: "cosine", weight: 2, temperature: 0.5 },
            ],
          },
          options,
        );
  }
}

const INPUT_CASES: Array<[string, AttentionErrorCode, (op: OpName) => Call, string[]]> = [
  [
    "k batch ≠ q batch",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, f32([B + 1, NK, DK]), v),
    [`[${B + 1},${NK},${DK}]`],
  ],
  [
    "v batch ≠ q batch",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, k, f32([1, NK, DV])),
    [`[1,${NK},${DV}]`],
  ],
  [
    "v length ≠ k length",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, k, f32([B, NK + 1, DV])),
    [`[${B},${NK + 1},${DV}]`],
  ],
  [
    "rank-2 q (B = 1) with rank-3 k of B = 2",
    "SHAPE_MISMATCH",
    (op) => callOp(op, f32([NQ, DK]), k, v),
    [`[${NQ},${DK}]`],
  ],
  ["rank-1 q", "SHAPE_MISMATCH", (op) => callOp(op, f32([DK]), k, v), ["q", "rank"]],
  [
    "rank-4 q",
    "SHAPE_MISMATCH",
    (op) => callOp(op, f32([B, 1, NQ, DK]), k, v),
    ["q", `[${B},1,${NQ},${DK}]`],
  ],
  [
    "rank-4 k",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, f32([B, 1, NK, DK]), v),
    ["k", `[${B},1,${NK},${DK}]`],
  ],
  ["rank-1 v", "SHAPE_MISMATCH", (op) => callOp(op, qs, k, f32([DV])), ["v"]],
  [
    "q data length differs from its shape",
    "SHAPE_MISMATCH",
    (op) => callOp(op, { data: new Float32Array(B * NQ * DK - 1), shape: [B, NQ, DK] }, k, v),
    ["q"],
  ],
  [
    "k with Float64Array data",
    "BAD_DTYPE",
    (op) => callOp(op, qs, bad<Tensor>({ data: new Float64Array(B * NK * DK), shape: k.shape }), v),
    ["k", "Float64Array"],
  ],
  [
    "v with Uint8Array data",
    "BAD_DTYPE",
    (op) => callOp(op, qs, k, bad<Tensor>({ data: new Uint8Array(B * NK * DV), shape: v.shape })),
    ["v", "Uint8Array"],
  ],
  [
    "mask [Nq+1, Nk]",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, k, v, { mask: randomBoolMask(r0, [NQ + 1, NK], 0.5) }),
    ["mask", `[${NQ + 1},${NK}]`],
  ],
  [
    "mask [Nk+1]",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, k, v, { mask: randomBoolMask(r0, [NK + 1], 0.5) }),
    ["mask", `[${NK + 1}]`],
  ],
  [
    "mask [B+1, 1, Nk]",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, k, v, { mask: f32([B + 1, 1, NK]) }),
    ["mask"], // the shape itself: see "names the mask's own shape" below
  ],
  [
    "mask [B, Nq, Nk, 1]",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, k, v, { mask: randomBoolMask(r0, [B, NQ, NK, 1], 0.5) }),
    ["mask", `[${B},${NQ},${NK},1]`],
  ],
  [
    "mask [1, 1, Nq, Nk] (rank 4)",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, k, v, { mask: f32([1, 1, NQ, NK]) }),
    ["mask", `[1,1,${NQ},${NK}]`],
  ],
  [
    "mask [Nk, Nq] (transposed)",
    "SHAPE_MISMATCH",
    (op) => callOp(op, qs, k, v, { mask: randomBoolMask(r0, [NK, NQ], 0.5) }),
    ["mask", `[${NK},${NQ}]`],
  ],
];

// Masks the additive path (additiveAttention, hybrid terms with an additive term) stages itself:
// their dtype and data length must be checked as for the other ops.
const MASK_CONTENT_CASES: Array<
  [string, AttentionErrorCode, () => FamilyOptions["mask"], string[]]
> = [
  [
    "mask with Float64Array data",
    "BAD_DTYPE",
    () => bad({ data: new Float64Array(NK), shape: [NK] }),
    ["mask", "Float64Array"],
  ],
  [
    "mask with Int8Array data",
    "BAD_DTYPE",
    () => bad({ data: new Int8Array(NK).fill(1), shape: [NK] }),
    ["mask", "Int8Array"],
  ],
  [
    "uint8 mask whose data is shorter than its shape",
    "SHAPE_MISMATCH",
    () => ({ data: new Uint8Array(NK - 2).fill(1), shape: [NK] }),
    ["mask"],
  ],
  [
    "float32 mask whose data is shorter than its shape",
    "SHAPE_MISMATCH",
    () => ({ data: new Float32Array(B * NK - 1), shape: [B, 1, NK] }),
    ["mask"],
  ],
  ["mask a string", "BAD_OPTION", () => bad("keys"), ["mask"]],
];

// =====================================================================================
// Tests
// =====================================================================================

function expectRefused(
  call: Call,
  code: AttentionErrorCode | AttentionErrorCode[],
  mentions: string[],
): void {
  expectWorks(); // memory has grown for these sizes already
  const before = snapshot();
  const err = thrown(call);
  if (Array.isArray(code)) expect(code, err.message).toContain(err.code);
  else expect(err.code, err.message).toBe(code);
  for (const m of mentions) expect(err.message).toContain(m);
  expectUntouched(before);
  expectWorks();
  expect(kernels("test").workspace.bytesInUse).toBe(before.inUse);
}

describe("the valid inputs work", () => {
  it("every op matches its reference and gives its memory back", () => {
    const inUse = kernels("test").workspace.bytesInUse;
    expectWorks();
    expect(kernels("test").workspace.bytesInUse).toBe(inUse);
  });
});

describe("parameters", () => {
  it.each(PARAMETERS)("%s → %s, before touching WASM memory", (_name, code, make, mentions) => {
    expectRefused(make(), code, mentions);
  });
});

describe("temperature and terms", () => {
  it.each(OPTIONS)("%s → %s, before touching WASM memory", (_name, code, make, mentions) => {
    expectRefused(make(), code, mentions);
  });
});

describe("q, k, v and masks", () => {
  const cases = INPUT_CASES.flatMap(([name, code, make, mentions]) =>
    OP_NAMES.map((op) => [`${LABEL[op]}: ${name}`, code, op, make, mentions] as const),
  );
  it.each(cases)("%s → %s, before touching WASM memory", (_name, code, op, make, mentions) => {
    expectRefused(make(op), code, [FN_NAME[op], ...mentions]);
  });

  // API.md: the message names "the shape it got". A 3-D mask is viewed as [B,1,Nq,Nk] inside;
  // the message must still show the shape the caller passed.
  it.each(OP_NAMES.map((op) => [LABEL[op], op] as const))(
    "%s: a mask error names the mask's own shape [B+1,1,Nk] and the target [B,Nq,Nk]",
    (_label, op) => {
      const err = thrown(callOp(op, qs, k, v, { mask: f32([B + 1, 1, NK]) }));
      expect(err.code).toBe("SHAPE_MISMATCH");
      expect(err.message).toContain(`mask of shape [${B + 1},1,${NK}]`);
      expect(err.message).toContain(`[${B},${NQ},${NK}]`);
    },
  );

  const contents = MASK_CONTENT_CASES.flatMap(([name, code, make, mentions]) =>
    OP_NAMES.map((op) => [`${LABEL[op]}: ${name}`, code, op, make, mentions] as const),
  );
  it.each(contents)("%s → %s, before touching WASM memory", (_name, code, op, make, mentions) => {
    expectRefused(callOp(op, qs, k, v, { mask: make() }), code, [FN_NAME[op], ...mentions]);
  });
});
