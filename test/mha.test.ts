// MultiHeadAttention and applyRope: the golden mha / rope_attention cases (as
// shared/conformance/run.mjs maps them), property tests against the float64 reference of
// test/reference-mha.ts (self/cross attention, kdim ≠ vdim, grouped-query heads, key padding, every
// mask form, causal, window, weights, rank-2 inputs, RoPE), the KV cache (prefill + decode equals one
// causal forward), given and initialised weights, and the module's lifecycle in WASM memory.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  MultiHeadAttention,
  allocTensor,
  applyRope,
  init,
  scaledDotProductAttention,
  type ApplyRopeOptions,
  type KVCache,
  type MultiHeadAttentionForwardOptions,
  type MultiHeadAttentionOptions,
  type ScaledDotProductAttentionOptions,
  type Tensor,
} from "../src/index";
import type { KVCacheImpl } from "../src/ops/mha/kv-cache";
import { kernels } from "../src/runtime/runtime";
import {
  closeProblem,
  decodeFloat,
  decodeTensor,
  expectClose,
  loadCases,
  type GoldenCase,
  type TensorLike,
  type Tolerance,
} from "./helpers/conformance";
import {
  randInt,
  randomAdditiveMask,
  randomBoolMask,
  randomTensor,
  rng,
  uniform,
  type Rng,
} from "./helpers/random";
import { referenceSdpa } from "./reference";
import {
  referenceMha,
  referenceRope,
  type RefMhaConfig,
  type RefMhaOptions,
  type RefMhaWeights,
  type RopeStyle,
} from "./reference-mha";

/** FORMAT.md's default tolerance; measured errors stay below 1e-6 (a tenth of it). */
const TOL: Tolerance = { atol: 1e-5, rtol: 1e-4 };
/** Two float32 computations of the same thing (cache vs. full forward). */
const SAME: Tolerance = { atol: 1e-5, rtol: 1e-4 };
/** applyRope: cos/sin are computed in float64 and rounded, so large positions cost no accuracy. */
const ROPE_TOL: Tolerance = { atol: 1e-5, rtol: 1e-4 };

beforeAll(async () => {
  await init();
});

/** Calls `fn`, which must throw an AttentionError of `code`; returns it. */
function expectAttentionError(fn: () => unknown, code: AttentionError["code"]): AttentionError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, "expected an AttentionError").toBeInstanceOf(AttentionError);
  expect((err as AttentionError).code, (err as AttentionError).message).toBe(code);
  return err as AttentionError;
}

function bytesInUse(): number {
  return kernels("test").workspace.bytesInUse;
}

// ---- Weights ----

type Weights = {
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  bo?: Float32Array;
};

interface Dims {
  E: number;
  H: number;
  Hkv: number;
  kdim: number;
  vdim: number;
}

/** Random weights in PyTorch's layout; entries uniform in ±gain/sqrt(in) so scores are O(1). */
function randomWeights(r: Rng, d: Dims, bias: boolean, gain = 3): Weights {
  const kvDim = (d.E / d.H) * d.Hkv;
  const mat = (out: number, inp: number): Float32Array => {
    const a = gain / Math.sqrt(inp);
    return Float32Array.from({ length: out * inp }, () => uniform(r, -a, a));
  };
  const vec = (n: number): Float32Array =>
    Float32Array.from({ length: n }, () => uniform(r, -1, 1));
  const w: Weights = {
    wq: mat(d.E, d.E),
    wk: mat(kvDim, d.kdim),
    wv: mat(kvDim, d.vdim),
    wo: mat(d.E, d.E),
  };
  if (bias) {
    w.bq = vec(d.E);
    w.bk = vec(kvDim);
    w.bv = vec(kvDim);
    w.bo = vec(d.E);
  }
  return w;
}

/** [B, s..e, F] of a [B, N, F] tensor. */
function sliceSeq(t: Tensor, s: number, e: number): Tensor {
  const [B, N, F] = t.shape;
  const data = new Float32Array(B * (e - s) * F);
  for (let b = 0; b < B; b++)
    data.set(t.data.subarray((b * N + s) * F, (b * N + e) * F), b * (e - s) * F);
  return { data, shape: [B, e - s, F] };
}

/** [B, 0..n) of a uint8 [B, N] key mask. */
function sliceKeyMask(m: Tensor<Uint8Array>, n: number): Tensor<Uint8Array> {
  const [B, N] = m.shape;
  const data = new Uint8Array(B * n);
  for (let b = 0; b < B; b++) data.set(m.data.subarray(b * N, b * N + n), b * n);
  return { data, shape: [B, n] };
}

// =====================================================================================
// 1. Golden cases
// =====================================================================================

const OPS = ["mha", "rope_attention"] as const;
const cases = loadCases().filter((c) => (OPS as readonly string[]).includes(c.op));

function causalOptions(causal: unknown): ScaledDotProductAttentionOptions {
  if (causal === null || causal === undefined) return {};
  if (causal === "upper_left") return { causal: true, align: "upper-left" };
  if (causal === "lower_right") return { causal: true };
  throw new Error(`unknown causal mode ${String(causal)}`);
}

/** One case through the public API exactly as shared/conformance/run.mjs maps it. */
function runCase(c: GoldenCase): Record<string, TensorLike | undefined> {
  const p = c.params;
  const f = (name: string): Tensor => decodeFloat(c.inputs[name]);
  const maybe = (name: string) => (c.inputs[name] ? decodeTensor(c.inputs[name]) : undefined);
  if (c.op === "mha") {
    const mha = new MultiHeadAttention({
      embedDim: p.embed_dim as number,
      numHeads: p.num_heads as number,
      kdim: p.kdim as number,
      vdim: p.vdim as number,
      bias: true,
      weights: {
        wq: f("Wq").data,
        wk: f("Wk").data,
        wv: f("Wv").data,
        wo: f("Wo").data,
        bq: f("bq").data,
        bk: f("bk").data,
        bv: f("bv").data,
        bo: f("bo").data,
      },
    });
    try {
      const r = mha.forward(f("query"), f("key"), f("value"), {
        keyMask: maybe("key_padding_mask") as Tensor<Uint8Array> | undefined,
        mask: maybe("attn_mask"),
        needWeights: true,
        averageWeights: p.average_attn_weights as boolean,
      });
      return { out: r.output, weights: r.weights };
    } finally {
      mha.dispose();
    }
  }
  const qr = applyRope(f("q"), {
    base: p.base as number,
    positions: Int32Array.from(p.q_positions as number[]),
  });
  const kr = applyRope(f("k"), {
    base: p.base as number,
    positions: Int32Array.from(p.k_positions as number[]),
  });
  const r = scaledDotProductAttention(qr, kr, f("v"), {
    ...causalOptions(p.causal),
    returnWeights: true,
  });
  return { q_rot: qr, k_rot: kr, out: r.output, weights: r.weights };
}

/** The same case through the float64 references (validates test/reference-mha.ts). */
function referenceCase(c: GoldenCase): Record<string, TensorLike> {
  const p = c.params;
  const f = (name: string): Tensor => decodeFloat(c.inputs[name]);
  const maybe = (name: string) => (c.inputs[name] ? decodeTensor(c.inputs[name]) : undefined);
  if (c.op === "mha") {
    const r = referenceMha(
      {
        embedDim: p.embed_dim as number,
        numHeads: p.num_heads as number,
        kdim: p.kdim as number,
        vdim: p.vdim as number,
      },
      {
        wq: f("Wq").data,
        wk: f("Wk").data,
        wv: f("Wv").data,
        wo: f("Wo").data,
        bq: f("bq").data,
        bk: f("bk").data,
        bv: f("bv").data,
        bo: f("bo").data,
      },
      f("query"),
      f("key"),
      f("value"),
      {
        keyMask: maybe("key_padding_mask") as Tensor<Uint8Array> | undefined,
        mask: maybe("attn_mask"),
        averageWeights: p.average_attn_weights as boolean,
      },
    );
    return { out: r.output, weights: r.weights };
  }
  const qr = referenceRope(f("q"), {
    base: p.base as number,
    positions: p.q_positions as number[],
  });
  const kr = referenceRope(f("k"), {
    base: p.base as number,
    positions: p.k_positions as number[],
  });
  const r = referenceSdpa(qr, kr, f("v"), causalOptions(p.causal));
  return { q_rot: qr, k_rot: kr, out: r.output, weights: r.weights };
}

describe("golden cases", () => {
  it.each(OPS.map((op) => [op, cases.filter((c) => c.op === op).length]))(
    "has cases for op %s (%i)",
    (_op, count) => {
      expect(count).toBeGreaterThan(0);
    },
  );

  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const before = bytesInUse();
    const got = runCase(c);
    const names = Object.keys(c.outputs);
    expect(names.length).toBeGreaterThan(0);
    if (c.op === "rope_attention")
      expect(names).toEqual(expect.arrayContaining(["q_rot", "k_rot"]));
    for (const name of names) {
      expectClose(got[name], decodeFloat(c.outputs[name]), c.tolerance, `${c.name}: ${name}`);
    }
    expect(bytesInUse()).toBe(before);
  });

  it.each(cases.map((c) => [c.name, c] as const))(
    "the float64 reference reproduces %s",
    (_n, c) => {
      const want = referenceCase(c);
      for (const name of Object.keys(c.outputs)) {
        expectClose(want[name], decodeFloat(c.outputs[name]), c.tolerance, `${c.name}: ${name}`);
      }
    },
  );
});

// =====================================================================================
// 2. Property tests against the reference
// =====================================================================================

const MASK_FORMS = ["qk", "bh_qk", "b1qk", "bhqk", "b11k", "k"] as const;
type MaskForm = (typeof MASK_FORMS)[number];

function maskShape(form: MaskForm, B: number, H: number, Nq: number, Nk: number): number[] {
  switch (form) {
    case "qk":
      return [Nq, Nk];
    case "bh_qk":
      return [B * H, Nq, Nk]; // PyTorch's 3-D form, index b·H + h
    case "b1qk":
      return [B, 1, Nq, Nk];
    case "bhqk":
      return [B, H, Nq, Nk];
    case "b11k":
      return [B, 1, 1, Nk];
    case "k":
      return [Nk];
  }
}

interface MhaCase {
  B: number;
  H: number;
  Hkv: number;
  hd: number;
  Nq: number;
  Nk: number;
  kdim: number;
  vdim: number;
  /** Self-attention: key/value omitted, passed as query itself, or passed as equal copies. */
  self?: "omit" | "same" | "copy";
  /** Cross-attention with key and value the same tensor object (kdim = vdim). */
  kvSame: boolean;
  rank2: boolean;
  bias: boolean;
  keyMask?: { side: "left" | "right" | "random"; pads: number[] };
  mask?: { form: MaskForm; dtype: "bool" | "additive"; density: number };
  causal: boolean;
  window?: [number, number];
  needWeights: boolean;
  averageWeights?: boolean;
  rope?: { base?: number; style?: RopeStyle };
  seed: number;
}

function keyMaskOf(c: MhaCase, r: Rng): Tensor<Uint8Array> | undefined {
  if (!c.keyMask) return undefined;
  const { side, pads } = c.keyMask;
  const data = new Uint8Array(c.B * c.Nk).fill(1);
  for (let b = 0; b < c.B; b++) {
    const pad = Math.min(pads[b % pads.length], c.Nk);
    for (let j = 0; j < c.Nk; j++) {
      const padded =
        side === "left" ? j < pad : side === "right" ? j >= c.Nk - pad : r() < pad / c.Nk;
      if (padded) data[b * c.Nk + j] = 0;
    }
  }
  return { data, shape: [c.B, c.Nk] };
}

interface BuiltMha {
  config: MultiHeadAttentionOptions;
  refConfig: RefMhaConfig;
  weights: Weights;
  query: Tensor;
  key?: Tensor;
  value?: Tensor;
  options: MultiHeadAttentionForwardOptions;
  refOptions: RefMhaOptions;
}

function buildMha(c: MhaCase): BuiltMha {
  const r = rng(c.seed);
  const E = c.H * c.hd;
  const dims: Dims = { E, H: c.H, Hkv: c.Hkv, kdim: c.kdim, vdim: c.vdim };
  const weights = randomWeights(r, dims, c.bias);
  const seq = (N: number, F: number): Tensor => randomTensor(r, c.rank2 ? [N, F] : [c.B, N, F]);
  const query = seq(c.Nq, E);
  let key: Tensor | undefined;
  let value: Tensor | undefined;
  if (c.self === "same") [key, value] = [query, query];
  else if (c.self === "copy") {
    key = { data: query.data.slice(), shape: [...query.shape] };
    value = { data: query.data.slice(), shape: [...query.shape] };
  } else if (c.self === undefined) {
    key = seq(c.Nk, c.kdim);
    value = c.kvSame ? key : seq(c.Nk, c.vdim);
  }
  const options: MultiHeadAttentionForwardOptions = {};
  const keyMask = keyMaskOf(c, r);
  if (keyMask) options.keyMask = keyMask;
  if (c.mask) {
    const shape = maskShape(c.mask.form, c.B, c.H, c.Nq, c.Nk);
    options.mask =
      c.mask.dtype === "bool"
        ? randomBoolMask(r, shape, c.mask.density)
        : randomAdditiveMask(r, shape, c.mask.density);
  }
  if (c.causal) options.causal = true;
  if (c.window) options.window = c.window;
  if (c.needWeights) options.needWeights = true;
  if (c.averageWeights !== undefined) options.averageWeights = c.averageWeights;
  const config: MultiHeadAttentionOptions = {
    embedDim: E,
    numHeads: c.H,
    bias: c.bias,
    weights,
  };
  if (c.Hkv !== c.H || c.seed % 2 === 0) config.numKvHeads = c.Hkv;
  if (c.kdim !== E || c.seed % 3 === 0) config.kdim = c.kdim;
  if (c.vdim !== E || c.seed % 5 === 0) config.vdim = c.vdim;
  if (c.rope) config.rope = c.rope;
  const refConfig: RefMhaConfig = {
    embedDim: E,
    numHeads: c.H,
    numKvHeads: c.Hkv,
    kdim: c.kdim,
    vdim: c.vdim,
    rope: c.rope,
  };
  const refOptions: RefMhaOptions = {
    keyMask,
    mask: options.mask,
    causal: c.causal,
    window: c.window,
    averageWeights: c.averageWeights,
  };
  return { config, refConfig, weights, query, key, value, options, refOptions };
}

/** Runs one case through the module and the reference; throws (with the case) on a mismatch. */
function checkMha(c: MhaCase): void {
  const b = buildMha(c);
  const before = bytesInUse();
  const mha = new MultiHeadAttention(b.config);
  const problems: string[] = [];
  try {
    const got =
      c.self === "omit"
        ? mha.forward(b.query, undefined, undefined, b.options)
        : mha.forward(b.query, b.key, b.value, b.options);
    const want = referenceMha(b.refConfig, b.weights, b.query, b.key, b.value, b.refOptions);
    const note = (what: string, p: string | null): void => {
      if (p !== null) problems.push(`${what}: ${p}`);
    };
    note("output", closeProblem(got.output, want.output, TOL));
    if (c.needWeights) note("weights", closeProblem(got.weights, want.weights, TOL));
    else if (got.weights !== undefined) problems.push("weights returned without needWeights");
  } finally {
    mha.dispose();
  }
  if (bytesInUse() !== before) problems.push(`${bytesInUse() - before} bytes left in use`);
  if (problems.length > 0) throw new Error(`${problems.join("\n")}\ncase: ${JSON.stringify(c)}`);
}

// ---- Arbitraries ----

const lengthArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 20 }), weight: 4 },
  { arbitrary: fc.constantFrom(1, 2, 7, 8, 9, 31, 33), weight: 1 },
);
const featureArb = fc.integer({ min: 1, max: 40 });
const windowBoundArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 6 }), weight: 4 },
  { arbitrary: fc.constant(Infinity), weight: 1 },
);
const maskArb = fc.record({
  form: fc.constantFrom(...MASK_FORMS),
  dtype: fc.constantFrom("bool" as const, "additive" as const),
  density: fc.constantFrom(0.4, 0.8, 1),
});
const keyMaskArb = fc.record({
  side: fc.constantFrom("left" as const, "right" as const, "random" as const),
  pads: fc.array(
    fc.oneof({ arbitrary: fc.integer({ min: 0, max: 5 }), weight: 5 }, fc.constant(1000)),
    { minLength: 1, maxLength: 3 },
  ),
});
const ropeArb = fc.record(
  {
    base: fc.constantFrom(10000, 500000, 100, 10, 2.5, 1e6),
    style: fc.constantFrom("neox" as const, "gptj" as const),
  },
  { requiredKeys: [] },
);

interface MhaSettings {
  self: "always" | "never" | "either";
  masks: boolean;
  keyMask: boolean;
  structure: boolean;
  rope: "always" | "never" | "either";
  gqa: boolean;
  maxH?: number;
}

function mhaArb(s: MhaSettings): fc.Arbitrary<MhaCase> {
  return fc
    .record({
      B: fc.integer({ min: 1, max: 3 }),
      H: fc.integer({ min: 1, max: s.maxH ?? 4 }),
      kvPick: fc.nat(),
      hd: fc.integer({ min: 1, max: 12 }),
      Nq: lengthArb,
      Nk: lengthArb,
      kdim: featureArb,
      vdim: featureArb,
      self:
        s.self === "never"
          ? fc.constant(undefined)
          : s.self === "always"
            ? fc.constantFrom("omit" as const, "same" as const, "copy" as const)
            : fc.constantFrom(undefined, "omit" as const, "same" as const, "copy" as const),
      kvSame: fc.boolean(),
      rank2: fc.boolean(),
      bias: fc.boolean(),
      keyMask: s.keyMask
        ? fc.option(keyMaskArb, { nil: undefined, freq: 2 })
        : fc.constant(undefined),
      mask: s.masks ? fc.option(maskArb, { nil: undefined, freq: 3 }) : fc.constant(undefined),
      causal: s.structure ? fc.boolean() : fc.constant(false),
      window: s.structure
        ? fc.option(fc.tuple(windowBoundArb, windowBoundArb), { nil: undefined, freq: 3 })
        : fc.constant(undefined),
      needWeights: fc.boolean(),
      averageWeights: fc.constantFrom(undefined, true, false),
      rope:
        s.rope === "never"
          ? fc.constant(undefined)
          : s.rope === "always"
            ? ropeArb
            : fc.option(ropeArb, { nil: undefined, freq: 3 }),
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
    })
    .map(({ kvPick, ...c }): MhaCase => {
      const B = c.rank2 ? 1 : c.B;
      const divisors = Array.from({ length: c.H }, (_, i) => i + 1).filter((d) => c.H % d === 0);
      const Hkv = s.gqa ? divisors[kvPick % divisors.length] : c.H;
      const hd = c.rope && c.hd % 2 === 1 ? c.hd + 1 : c.hd;
      const E = c.H * hd;
      let { Nk, kdim, vdim } = c;
      if (c.self !== undefined) [Nk, kdim, vdim] = [c.Nq, E, E];
      if (c.kvSame) vdim = kdim;
      return { ...c, B, Hkv, hd, Nk, kdim, vdim };
    });
}

describe("MultiHeadAttention matches the float64 reference", () => {
  it("self-attention (key/value omitted, same object or copies), masks, causal, window, rank 2/3", () => {
    const arb = mhaArb({
      self: "always",
      masks: true,
      keyMask: true,
      structure: true,
      rope: "never",
      gqa: false,
    });
    fc.assert(fc.property(arb, checkMha), { numRuns: 300, seed: 0x3a01 });
  });

  it("cross-attention with kdim ≠ vdim ≠ embedDim, bias on/off, key padding and masks", () => {
    const arb = mhaArb({
      self: "never",
      masks: true,
      keyMask: true,
      structure: true,
      rope: "never",
      gqa: false,
    });
    fc.assert(fc.property(arb, checkMha), { numRuns: 300, seed: 0x3a02 });
  });

  it("grouped-query heads with projections (numKvHeads | numHeads, including 1)", () => {
    const arb = mhaArb({
      self: "either",
      masks: true,
      keyMask: true,
      structure: true,
      rope: "either",
      gqa: true,
      maxH: 8,
    }).map((c): MhaCase => (c.Hkv === c.H && c.H > 1 ? { ...c, Hkv: 1 } : c));
    fc.assert(fc.property(arb, checkMha), { numRuns: 300, seed: 0x3a03 });
  });

  it("key padding on the left and on the right (needWeights, averaged and per head)", () => {
    const arb = mhaArb({
      self: "either",
      masks: false,
      keyMask: true,
      structure: false,
      rope: "never",
      gqa: true,
    }).map((c): MhaCase => ({
      ...c,
      keyMask: c.keyMask ?? { side: c.seed % 2 ? "left" : "right", pads: [c.seed % 4, 1] },
      needWeights: true,
    }));
    fc.assert(fc.property(arb, checkMha), { numRuns: 200, seed: 0x3a04 });
  });

  it("every mask form ([Nq,Nk], [B·H,Nq,Nk] with B > 1, [B,1,Nq,Nk], ...), bool and additive", () => {
    const arb = fc
      .tuple(
        mhaArb({
          self: "either",
          masks: true,
          keyMask: true,
          structure: true,
          rope: "never",
          gqa: true,
        }),
        maskArb,
        fc.integer({ min: 2, max: 3 }),
      )
      .map(([c, mask, B]): MhaCase => ({ ...c, mask, B: c.rank2 ? 1 : B, needWeights: true }));
    fc.assert(fc.property(arb, checkMha), { numRuns: 300, seed: 0x3a05 });
  });

  it("rotary embeddings (neox and gptj, various bases) on self- and cross-attention", () => {
    const arb = mhaArb({
      self: "either",
      masks: true,
      keyMask: true,
      structure: true,
      rope: "always",
      gqa: true,
    });
    fc.assert(fc.property(arb, checkMha), { numRuns: 300, seed: 0x3a06 });
  });

  it("the generators reach every mask form, both rope styles, both pad sides and GQA", () => {
    const seen = new Set<string>();
    const arb = mhaArb({
      self: "either",
      masks: true,
      keyMask: true,
      structure: true,
      rope: "either",
      gqa: true,
      maxH: 8,
    });
    fc.assert(
      fc.property(arb, (c) => {
        if (c.mask) seen.add(`mask ${c.mask.form}/${c.mask.dtype}`);
        if (c.mask?.form === "bh_qk" && c.B > 1) seen.add("mask bh_qk with B > 1");
        if (c.rope) seen.add(`rope ${c.rope.style ?? "default"}`);
        if (c.keyMask) seen.add(`pad ${c.keyMask.side}`);
        if (c.Hkv < c.H) seen.add("gqa");
        if (c.Hkv === 1 && c.H > 1) seen.add("mqa");
        if (c.rank2) seen.add("rank2");
        if (c.kdim !== c.vdim && c.self === undefined) seen.add("kdim≠vdim");
      }),
      { numRuns: 1000, seed: 0x3a07 },
    );
    for (const form of MASK_FORMS) {
      expect(seen).toContain(`mask ${form}/bool`);
      expect(seen).toContain(`mask ${form}/additive`);
    }
    for (const x of ["rope neox", "rope gptj", "rope default", "pad left", "pad right"]) {
      expect(seen).toContain(x);
    }
    for (const x of ["gqa", "mqa", "rank2", "kdim≠vdim", "mask bh_qk with B > 1"]) {
      expect(seen).toContain(x);
    }
  });
});

describe("MultiHeadAttention specifics", () => {
  it("large sizes: E > 256 and kdim > 256 (several GEMM depth blocks), > 96 rows, Nk > 64", () => {
    const r = rng(20);
    const c = { embedDim: 272, numHeads: 4, numKvHeads: 2, kdim: 300, vdim: 260 };
    const w = randomWeights(r, { E: 272, H: 4, Hkv: 2, kdim: 300, vdim: 260 }, true);
    const mha = new MultiHeadAttention({ ...c, weights: w });
    try {
      const q = randomTensor(r, [2, 50, 272]);
      const k = randomTensor(r, [2, 70, 300]);
      const v = randomTensor(r, [2, 70, 260]);
      const keyMask = randomBoolMask(r, [2, 70], 0.9);
      const opts = { keyMask, causal: true, window: [40, 0] as [number, number] };
      const got = mha.forward(q, k, v, { ...opts, needWeights: true });
      const want = referenceMha(c, w, q, k, v, opts);
      expectClose(got.output, want.output, TOL, "output");
      expectClose(got.weights, want.weights, TOL, "weights");
    } finally {
      mha.dispose();
    }
  });

  it("rank-2 inputs [N, E] mean B = 1: same numbers as [1, N, E], outputs of rank 2", () => {
    const r = rng(21);
    const dims = { E: 24, H: 4, Hkv: 2, kdim: 10, vdim: 14 };
    const w = randomWeights(r, dims, true);
    const mha = new MultiHeadAttention({
      embedDim: 24,
      numHeads: 4,
      numKvHeads: 2,
      kdim: 10,
      vdim: 14,
      weights: w,
    });
    try {
      const q = randomTensor(r, [5, 24]);
      const k = randomTensor(r, [7, 10]);
      const v = randomTensor(r, [7, 14]);
      const as3 = (t: Tensor): Tensor => ({ data: t.data, shape: [1, ...t.shape] });
      const keyMask = { data: Uint8Array.from([0, 1, 1, 1, 1, 1, 0]), shape: [1, 7] };
      for (const averageWeights of [true, false]) {
        const opts = { keyMask, needWeights: true, averageWeights, causal: true };
        const two = mha.forward(q, k, v, opts);
        const three = mha.forward(as3(q), as3(k), as3(v), opts);
        expect(two.output.shape).toEqual([5, 24]);
        expect(three.output.shape).toEqual([1, 5, 24]);
        expect(two.weights!.shape).toEqual(averageWeights ? [5, 7] : [4, 5, 7]);
        expect(three.weights!.shape).toEqual(averageWeights ? [1, 5, 7] : [1, 4, 5, 7]);
        expect(Array.from(two.output.data)).toEqual(Array.from(three.output.data));
        expect(Array.from(two.weights!.data)).toEqual(Array.from(three.weights!.data));
        const want = referenceMha(
          { embedDim: 24, numHeads: 4, numKvHeads: 2, kdim: 10, vdim: 14 },
          w,
          q,
          k,
          v,
          { keyMask, causal: true, averageWeights },
        );
        expectClose(two.output, want.output, TOL, "output");
        expectClose(two.weights, want.weights, TOL, "weights");
      }
    } finally {
      mha.dispose();
    }
  });

  it("a fully masked query row outputs bo and zero weights (never NaN)", () => {
    const r = rng(22);
    const w = randomWeights(r, { E: 12, H: 3, Hkv: 3, kdim: 12, vdim: 12 }, true);
    const mha = new MultiHeadAttention({ embedDim: 12, numHeads: 3, weights: w });
    try {
      const x = randomTensor(r, [2, 4, 12]);
      const keyMask = { data: Uint8Array.from([0, 0, 0, 0, 1, 1, 0, 1]), shape: [2, 4] };
      const res = mha.forward(x, undefined, undefined, { keyMask, needWeights: true });
      for (let i = 0; i < 4; i++) {
        expect(Array.from(res.output.data.subarray(i * 12, (i + 1) * 12))).toEqual(
          Array.from(w.bo!),
        );
      }
      expect(Array.from(res.weights!.data.subarray(0, 16))).toEqual(new Array(16).fill(0));
      expect(res.output.data.some(Number.isNaN)).toBe(false);
    } finally {
      mha.dispose();
    }
  });

  it("reads inputs and masks that live in WASM memory (allocTensor) in place", () => {
    const r = rng(23);
    const dims = { E: 16, H: 2, Hkv: 1, kdim: 9, vdim: 16 };
    const w = randomWeights(r, dims, true);
    const mha = new MultiHeadAttention({
      embedDim: 16,
      numHeads: 2,
      numKvHeads: 1,
      kdim: 9,
      weights: w,
    });
    const q = allocTensor([2, 3, 16]);
    const k = allocTensor([2, 6, 9]);
    const m = allocTensor([2, 6], "uint8");
    try {
      const plainQ = randomTensor(r, q.shape);
      const plainK = randomTensor(r, k.shape);
      const v = randomTensor(r, [2, 6, 16]);
      q.data.set(plainQ.data);
      k.data.set(plainK.data);
      m.data.set([1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
      const plainM = { data: m.data.slice(), shape: [2, 6] };
      const got = mha.forward(q, k, v, { keyMask: m, needWeights: true });
      const want = referenceMha(
        { embedDim: 16, numHeads: 2, numKvHeads: 1, kdim: 9 },
        w,
        plainQ,
        plainK,
        v,
        {
          keyMask: plainM,
        },
      );
      expectClose(got.output, want.output, TOL, "output");
      expectClose(got.weights, want.weights, TOL, "weights");
      expect(got.output.data.buffer).not.toBe(kernels("test").exports.memory.buffer);
    } finally {
      q.free();
      k.free();
      m.free();
      mha.dispose();
    }
  });

  it.each(["uint8", "float32"] as const)(
    "a WASM-resident %s mask in PyTorch's [B·H, Nq, Nk] form, when the call grows memory",
    (dtype) => {
      // The call's weights buffer is bigger than all of memory now, so the call must grow memory;
      // the mask must still be read correctly (in place, or copied while its view is live).
      const r = rng(24);
      const B = 2;
      const H = 2;
      const w = randomWeights(r, { E: 8, H, Hkv: H, kdim: 8, vdim: 8 }, true);
      const mha = new MultiHeadAttention({ embedDim: 8, numHeads: H, weights: w });
      const bytes = kernels("test").exports.memory.buffer.byteLength;
      const N = Math.ceil(Math.sqrt((3 * bytes) / (4 * B * H)));
      const x = randomTensor(r, [B, N, 8]);
      const plain =
        dtype === "uint8"
          ? randomBoolMask(r, [B * H, N, N], 0.5)
          : randomAdditiveMask(r, [B * H, N, N], 0.5);
      const resident =
        dtype === "uint8" ? allocTensor([B * H, N, N], "uint8") : allocTensor([B * H, N, N]);
      try {
        resident.data.set(plain.data as Uint8Array & Float32Array);
        const inUse = bytesInUse();
        let got: ReturnType<MultiHeadAttention["forward"]> | undefined;
        let error: unknown;
        try {
          got = mha.forward(x, undefined, undefined, { mask: resident, needWeights: true });
        } catch (e) {
          error = e;
        }
        expect(bytesInUse()).toBe(inUse);
        expect(kernels("test").exports.memory.buffer.byteLength).toBeGreaterThan(bytes);
        expect(error, String(error)).toBeUndefined();
        const want = mha.forward(x, undefined, undefined, { mask: plain, needWeights: true });
        expectClose(got!.output, want.output, SAME, "output");
        expectClose(got!.weights, want.weights!, SAME, "weights");
      } finally {
        resident.free();
        mha.dispose();
      }
    },
  );
});

// ---- applyRope alone ----

describe("applyRope matches the float64 reference", () => {
  it("neox and gptj, ranks 2–4, default and explicit positions, positionOffset, bases", () => {
    const arb = fc.record({
      lead: fc.constantFrom([] as number[], [3], [2, 3], [1, 1]),
      N: fc.integer({ min: 1, max: 40 }),
      half: fc.integer({ min: 1, max: 40 }),
      base: fc.constantFrom(undefined, 10000, 500000, 10, 1.5),
      style: fc.constantFrom(undefined, "neox" as const, "gptj" as const),
      positions: fc.constantFrom("default", "offset", "explicit", "explicit-array"),
      offset: fc.integer({ min: -50, max: 5000 }),
      seed: fc.nat(),
    });
    fc.assert(
      fc.property(arb, (c) => {
        const r = rng(c.seed);
        const D = 2 * c.half;
        const x = randomTensor(r, [...c.lead, c.N, D]);
        const copy = x.data.slice();
        const explicit = Array.from({ length: c.N }, () => randInt(r, -5, 3000));
        let positions: number[];
        const options: ApplyRopeOptions = { base: c.base, style: c.style };
        if (c.positions === "offset") {
          options.positionOffset = c.offset;
          positions = explicit.map((_, i) => c.offset + i);
        } else if (c.positions === "explicit") {
          options.positions = Int32Array.from(explicit);
          positions = explicit;
        } else if (c.positions === "explicit-array") {
          options.positions = explicit;
          positions = explicit;
        } else positions = explicit.map((_, i) => i);
        const got = applyRope(x, options);
        const want = referenceRope(x, { base: c.base, style: c.style, positions });
        const problem = closeProblem(got, want, ROPE_TOL);
        if (problem !== null) throw new Error(`${problem}\ncase: ${JSON.stringify(c)}`);
        if (!x.data.every((v, i) => v === copy[i])) throw new Error("applyRope modified x");
      }),
      { numRuns: 200, seed: 0x40be },
    );
  });

  it("position 0 is the identity and neox ≠ gptj elsewhere", () => {
    const x = randomTensor(rng(31), [2, 1, 8]);
    const at0 = applyRope(x, { positions: [0] });
    expect(Array.from(at0.data)).toEqual(Array.from(x.data));
    const neox = applyRope(x, { positions: [5] });
    const gptj = applyRope(x, { positions: [5], style: "gptj" });
    expect(closeProblem(neox, gptj, { atol: 1e-3, rtol: 0 })).not.toBeNull();
    expect(closeProblem(neox, referenceRope(x, { positions: [5] }), TOL)).toBeNull();
    expect(closeProblem(gptj, referenceRope(x, { positions: [5], style: "gptj" }), TOL)).toBeNull();
  });
});

// =====================================================================================
// 3. KV cache
// =====================================================================================

interface CacheSetup {
  H: number;
  Hkv: number;
  rope?: { base?: number; style?: RopeStyle };
  keyMask?: "left" | "right";
  window?: [number, number];
  /** Fill the new cache's memory with NaN first, as recycled WASM memory may hold anything. */
  poison?: boolean;
  seed: number;
}

const E_CACHE = 32;

function cacheModule(s: CacheSetup) {
  const r = rng(s.seed);
  const w = randomWeights(
    r,
    { E: E_CACHE, H: s.H, Hkv: s.Hkv, kdim: E_CACHE, vdim: E_CACHE },
    true,
  );
  const mha = new MultiHeadAttention({
    embedDim: E_CACHE,
    numHeads: s.H,
    numKvHeads: s.Hkv,
    rope: s.rope,
    weights: w,
  });
  return { r, w, mha };
}

/** A [B, N] key mask padding 2 and 1 tokens on one side. */
function paddingMask(B: number, N: number, side: "left" | "right"): Tensor<Uint8Array> {
  const data = new Uint8Array(B * N).fill(1);
  for (let b = 0; b < B; b++) {
    const pad = b === 0 ? 2 : 1;
    for (let p = 0; p < pad; p++) data[b * N + (side === "left" ? p : N - 1 - p)] = 0;
  }
  return { data, shape: [B, N] };
}

/** Rows s..e of every [b, h] plane of per-head weights [B, H, N, N], first `cols` columns. */
function weightRows(w: Tensor, s: number, e: number, cols: number): Tensor {
  const [B, H, N] = w.shape;
  const data = new Float32Array(B * H * (e - s) * cols);
  let at = 0;
  for (let p = 0; p < B * H; p++)
    for (let i = s; i < e; i++)
      for (let j = 0; j < cols; j++) data[at++] = w.data[(p * N + i) * N + j];
  return { data, shape: [B, H, e - s, cols] };
}

const CHUNKS = [4, 1, 1, 1, 3, 1]; // prefill 4, three decode steps, a 3-token chunk, one more

/**
 * Prefill + decode over a cache, each step compared with the rows of one full causal forward (and
 * that with the reference); returns the module for more checks.
 */
function decodeMatchesFull(s: CacheSetup): void {
  const B = 2;
  const N = CHUNKS.reduce((a, b) => a + b, 0);
  const { r, w, mha } = cacheModule(s);
  try {
    const x = randomTensor(r, [B, N, E_CACHE]);
    const keyMask = s.keyMask ? paddingMask(B, N, s.keyMask) : undefined;
    const full = mha.forward(x, undefined, undefined, {
      causal: true,
      window: s.window,
      keyMask,
      needWeights: true,
      averageWeights: false,
    });
    const want = referenceMha(
      { embedDim: E_CACHE, numHeads: s.H, numKvHeads: s.Hkv, rope: s.rope },
      w,
      x,
      undefined,
      undefined,
      { causal: true, window: s.window, keyMask, averageWeights: false },
    );
    expectClose(full.output, want.output, TOL, "full forward output");
    expectClose(full.weights, want.weights, TOL, "full forward weights");

    const cache = mha.createCache({ batch: B, maxLength: N + 3 });
    if (s.poison) {
      const f32 = kernels("test").workspace.f32;
      const floats = B * (N + 3) * (E_CACHE / s.H) * s.Hkv;
      // The addresses are internal (not on the public KVCache type).
      const { keysPtr, valuesPtr } = cache as KVCacheImpl;
      f32.fill(NaN, keysPtr >>> 2, (keysPtr >>> 2) + floats);
      f32.fill(NaN, valuesPtr >>> 2, (valuesPtr >>> 2) + floats);
    }
    expect(cache.length).toBe(0);
    expect(cache.maxLength).toBe(N + 3);
    let at = 0;
    for (const n of CHUNKS) {
      const step = mha.forward(sliceSeq(x, at, at + n), undefined, undefined, {
        cache,
        causal: n > 1, // one query row sees every cached key either way
        window: s.window,
        keyMask: keyMask ? sliceKeyMask(keyMask, at + n) : undefined,
        needWeights: true,
        averageWeights: false,
      });
      expect(cache.length).toBe(at + n);
      expect(step.output.shape).toEqual([B, n, E_CACHE]);
      expectClose(step.output, sliceSeq(full.output, at, at + n), SAME, `output of rows ${at}..`);
      expectClose(
        step.weights,
        weightRows(full.weights!, at, at + n, at + n),
        SAME,
        `weights ${at}..`,
      );
      at += n;
    }

    // reset() forgets everything: a new sequence prefilled in one go matches its own full forward.
    cache.reset();
    expect(cache.length).toBe(0);
    const y = randomTensor(r, [B, 6, E_CACHE]);
    const yFull = mha.forward(y, undefined, undefined, { causal: true });
    const y1 = mha.forward(sliceSeq(y, 0, 5), undefined, undefined, { cache, causal: true });
    const y2 = mha.forward(sliceSeq(y, 5, 6), undefined, undefined, { cache });
    expect(cache.length).toBe(6);
    expectClose(y1.output, sliceSeq(yFull.output, 0, 5), SAME, "after reset, prefill");
    expectClose(y2.output, sliceSeq(yFull.output, 5, 6), SAME, "after reset, decode");
  } finally {
    mha.dispose();
  }
}

describe("KV cache", () => {
  it.each([
    ["MHA, no rope", { H: 4, Hkv: 4, seed: 1 }],
    ["MHA, rope neox", { H: 4, Hkv: 4, rope: {}, seed: 2 }],
    [
      "MHA, rope gptj base 500000",
      { H: 2, Hkv: 2, rope: { style: "gptj", base: 500000 }, seed: 3 },
    ],
    ["GQA 4/2, no rope", { H: 4, Hkv: 2, seed: 4 }],
    ["GQA 8/2, rope neox", { H: 8, Hkv: 2, rope: { style: "neox" }, seed: 5 }],
    ["MQA 4/1, rope gptj", { H: 4, Hkv: 1, rope: { style: "gptj", base: 100 }, seed: 6 }],
    ["GQA 4/2, rope, left padding", { H: 4, Hkv: 2, rope: {}, keyMask: "left", seed: 7 }],
    ["MHA, right padding", { H: 4, Hkv: 4, keyMask: "right", seed: 8 }],
    ["GQA 4/2, rope, sliding window [3, 0]", { H: 4, Hkv: 2, rope: {}, window: [3, 0], seed: 9 }],
    [
      "GQA 4/1, window [2, 0], left padding",
      { H: 4, Hkv: 1, window: [2, 0], keyMask: "left", seed: 10 },
    ],
    [
      "GQA 4/2, rope, cache memory poisoned with NaN",
      { H: 4, Hkv: 2, rope: {}, poison: true, seed: 11 },
    ],
  ] as Array<[string, CacheSetup]>)(
    "%s: prefill + decode steps + a chunk = one causal forward (B = 2)",
    (_name, setup) => {
      decodeMatchesFull(setup);
    },
  );

  it("cross-attention with kdim ≠ vdim: new keys/values per step append to the cache", () => {
    const r = rng(40);
    const B = 2;
    const N = 8;
    const dims = { E: 24, H: 3, Hkv: 3, kdim: 10, vdim: 6 };
    const w = randomWeights(r, dims, true);
    const mha = new MultiHeadAttention({
      embedDim: 24,
      numHeads: 3,
      kdim: 10,
      vdim: 6,
      weights: w,
    });
    try {
      const q = randomTensor(r, [B, N, 24]);
      const k = randomTensor(r, [B, N, 10]);
      const v = randomTensor(r, [B, N, 6]);
      const full = mha.forward(q, k, v, { causal: true });
      const want = referenceMha({ embedDim: 24, numHeads: 3, kdim: 10, vdim: 6 }, w, q, k, v, {
        causal: true,
      });
      expectClose(full.output, want.output, TOL, "full");
      const cache = mha.createCache({ batch: B, maxLength: N });
      let at = 0;
      for (const n of [3, 1, 2, 1, 1]) {
        const slice = (t: Tensor): Tensor => sliceSeq(t, at, at + n);
        const step = mha.forward(slice(q), slice(k), slice(v), { cache, causal: true });
        expectClose(step.output, slice(full.output), SAME, `rows ${at}..${at + n}`);
        at += n;
        expect(cache.length).toBe(at);
      }
    } finally {
      mha.dispose();
    }
  });

  it("two caches of one module decode two sequences interleaved, independently", () => {
    const { r, mha } = cacheModule({ H: 4, Hkv: 2, rope: { style: "gptj" }, seed: 47 });
    try {
      const xa = randomTensor(r, [1, 6, E_CACHE]);
      const xb = randomTensor(r, [2, 6, E_CACHE]);
      const fa = mha.forward(xa, undefined, undefined, { causal: true }).output;
      const fb = mha.forward(xb, undefined, undefined, { causal: true }).output;
      const ca = mha.createCache({ batch: 1, maxLength: 6 });
      const cb = mha.createCache({ batch: 2, maxLength: 6 });
      const oa = mha.forward(sliceSeq(xa, 0, 2), undefined, undefined, { cache: ca, causal: true });
      const ob = mha.forward(sliceSeq(xb, 0, 3), undefined, undefined, { cache: cb, causal: true });
      expectClose(oa.output, sliceSeq(fa, 0, 2), SAME, "a prefill");
      expectClose(ob.output, sliceSeq(fb, 0, 3), SAME, "b prefill");
      for (let t = 0; t < 3; t++) {
        const a = mha.forward(sliceSeq(xa, 2 + t, 3 + t), undefined, undefined, { cache: ca });
        const b = mha.forward(sliceSeq(xb, 3 + t, 4 + t), undefined, undefined, { cache: cb });
        expectClose(a.output, sliceSeq(fa, 2 + t, 3 + t), SAME, `a step ${t}`);
        expectClose(b.output, sliceSeq(fb, 3 + t, 4 + t), SAME, `b step ${t}`);
      }
      expect([ca.length, cb.length]).toEqual([5, 6]);
    } finally {
      mha.dispose();
    }
  });

  it("a full cache raises CACHE_FULL and keeps exactly its tokens; decoding continues correctly", () => {
    const setup: CacheSetup = { H: 4, Hkv: 2, rope: {}, seed: 41 };
    const { r, mha } = cacheModule(setup);
    try {
      const B = 2;
      const x = randomTensor(r, [B, 8, E_CACHE]);
      const full = mha.forward(x, undefined, undefined, { causal: true });
      const cache = mha.createCache({ batch: B, maxLength: 8 });
      mha.forward(sliceSeq(x, 0, 6), undefined, undefined, { cache, causal: true });
      expect(cache.length).toBe(6);
      // Three more do not fit: refused, nothing kept, nothing leaked.
      const inUse = bytesInUse();
      const junk = randomTensor(r, [B, 3, E_CACHE]);
      const err = expectAttentionError(
        () => mha.forward(junk, undefined, undefined, { cache, causal: true }),
        "CACHE_FULL",
      );
      expect(err.message).toContain("8");
      expect(cache.length).toBe(6);
      expect(bytesInUse()).toBe(inUse);
      // The next two tokens still see exactly the six cached ones (and themselves).
      const s7 = mha.forward(sliceSeq(x, 6, 7), undefined, undefined, { cache });
      expectClose(s7.output, sliceSeq(full.output, 6, 7), SAME, "token 6 after CACHE_FULL");
      const s8 = mha.forward(sliceSeq(x, 7, 8), undefined, undefined, { cache });
      expectClose(s8.output, sliceSeq(full.output, 7, 8), SAME, "token 7 after CACHE_FULL");
      expect(cache.length).toBe(8);
      expectAttentionError(
        () => mha.forward(sliceSeq(x, 7, 8), undefined, undefined, { cache }),
        "CACHE_FULL",
      );
      expect(cache.length).toBe(8);
      expect(bytesInUse()).toBe(inUse);
    } finally {
      mha.dispose();
    }
  });

  it("a failed call (bad keyMask, bad mask) leaves the cache as it was", () => {
    const { r, mha } = cacheModule({ H: 4, Hkv: 4, seed: 42 });
    try {
      const B = 2;
      const x = randomTensor(r, [B, 5, E_CACHE]);
      const full = mha.forward(x, undefined, undefined, { causal: true });
      const cache = mha.createCache({ batch: B, maxLength: 5 });
      mha.forward(sliceSeq(x, 0, 3), undefined, undefined, { cache, causal: true });
      const inUse = bytesInUse();
      const junk = randomTensor(r, [B, 1, E_CACHE]);
      // keyMask must cover the cached keys too ([B, past + new] = [2, 4]).
      expectAttentionError(
        () =>
          mha.forward(junk, undefined, undefined, {
            cache,
            keyMask: { data: new Uint8Array(2), shape: [2, 1] },
          }),
        "SHAPE_MISMATCH",
      );
      expectAttentionError(
        () =>
          mha.forward(junk, undefined, undefined, {
            cache,
            mask: { data: new Uint8Array(3), shape: [1, 3] },
          }),
        "SHAPE_MISMATCH",
      );
      expect(cache.length).toBe(3);
      expect(bytesInUse()).toBe(inUse);
      const s = mha.forward(sliceSeq(x, 3, 5), undefined, undefined, { cache, causal: true });
      expectClose(s.output, sliceSeq(full.output, 3, 5), SAME, "after the failures");
    } finally {
      mha.dispose();
    }
  });

  it("refuses a cache from another module (BAD_OPTION) and a batch mismatch (SHAPE_MISMATCH)", () => {
    const a = cacheModule({ H: 4, Hkv: 4, seed: 43 });
    const b = cacheModule({ H: 4, Hkv: 4, seed: 44 });
    try {
      const x2 = randomTensor(a.r, [2, 1, E_CACHE]);
      const cacheB = b.mha.createCache({ batch: 2, maxLength: 4 });
      const err = expectAttentionError(
        () => a.mha.forward(x2, undefined, undefined, { cache: cacheB }),
        "BAD_OPTION",
      );
      expect(err.message).toContain("cache");
      expectAttentionError(
        () =>
          a.mha.forward(x2, undefined, undefined, { cache: { length: 0 } as unknown as KVCache }),
        "BAD_OPTION",
      );
      expect(cacheB.length).toBe(0);
      const cacheA = a.mha.createCache({ batch: 2, maxLength: 4 });
      expect(cacheA.batch).toBe(2);
      expectAttentionError(
        () =>
          a.mha.forward(randomTensor(a.r, [1, 1, E_CACHE]), undefined, undefined, {
            cache: cacheA,
          }),
        "SHAPE_MISMATCH",
      );
      expectAttentionError(
        () =>
          a.mha.forward(randomTensor(a.r, [1, E_CACHE]), undefined, undefined, { cache: cacheA }),
        "SHAPE_MISMATCH",
      );
      expectAttentionError(
        () =>
          a.mha.forward(randomTensor(a.r, [3, 1, E_CACHE]), undefined, undefined, {
            cache: cacheA,
          }),
        "SHAPE_MISMATCH",
      );
      expect(cacheA.length).toBe(0);
      // Still usable afterwards.
      a.mha.forward(x2, undefined, undefined, { cache: cacheA });
      expect(cacheA.length).toBe(1);
      // The default batch is 1, which takes rank-2 inputs.
      const single = a.mha.createCache({ maxLength: 2 });
      expect(single.batch).toBe(1);
      a.mha.forward(randomTensor(a.r, [1, E_CACHE]), undefined, undefined, { cache: single });
      expect(single.length).toBe(1);
    } finally {
      a.mha.dispose();
      b.mha.dispose();
    }
  });

  it("createCache validates its options", () => {
    const { mha } = cacheModule({ H: 2, Hkv: 2, seed: 45 });
    try {
      const inUse = bytesInUse();
      expectAttentionError(() => mha.createCache({ maxLength: 0 }), "BAD_OPTION");
      expectAttentionError(() => mha.createCache({ maxLength: 2.5 }), "BAD_OPTION");
      expectAttentionError(() => mha.createCache({ batch: 0, maxLength: 2 }), "BAD_OPTION");
      expectAttentionError(
        () => mha.createCache(undefined as unknown as { maxLength: number }),
        "BAD_OPTION",
      );
      expect(bytesInUse()).toBe(inUse);
    } finally {
      mha.dispose();
    }
  });

  it("a disposed cache is refused (DISPOSED) and gives its memory back", () => {
    const { r, mha } = cacheModule({ H: 2, Hkv: 1, seed: 46 });
    try {
      const before = bytesInUse();
      const cache = mha.createCache({ batch: 1, maxLength: 100 });
      const cacheBytes = bytesInUse() - before;
      expect(cacheBytes).toBeGreaterThanOrEqual(2 * 100 * 16 * 4); // keys + values, kvDim = 16
      cache.dispose();
      expect(bytesInUse()).toBe(before);
      cache.dispose(); // idempotent
      expect(bytesInUse()).toBe(before);
      expectAttentionError(
        () => mha.forward(randomTensor(r, [1, 1, E_CACHE]), undefined, undefined, { cache }),
        "DISPOSED",
      );
      expect(bytesInUse()).toBe(before);
    } finally {
      mha.dispose();
    }
  });
});

// =====================================================================================
// 4. Weights
// =====================================================================================

interface Block {
  bytes: number;
  what: string;
}

/** Runs `fn`, recording the workspace blocks it allocates and keeps (in allocation order). */
function keptBlocks<T>(fn: () => T): { result: T; blocks: Array<Block & { ptr: number }> } {
  const ws = kernels("test").workspace;
  const alloc = ws.alloc;
  const release = ws.release;
  const live = new Map<number, Block>();
  ws.alloc = (bytes: number, what: string): number => {
    const ptr = alloc.call(ws, bytes, what);
    live.set(ptr, { bytes, what });
    return ptr;
  };
  ws.release = (ptr: number): void => {
    live.delete(ptr);
    release.call(ws, ptr);
  };
  try {
    const result = fn();
    return { result, blocks: [...live].map(([ptr, b]) => ({ ptr, ...b })) };
  } finally {
    Reflect.deleteProperty(ws, "alloc");
    Reflect.deleteProperty(ws, "release");
  }
}

function floatsAt(block: { ptr: number; bytes: number }): Float32Array {
  const f32 = kernels("test").workspace.f32;
  return f32.slice(block.ptr >>> 2, (block.ptr >>> 2) + block.bytes / 4);
}

function sortedNonZero(a: ArrayLike<number>): number[] {
  return Array.from(a)
    .filter((x) => x !== 0)
    .sort((x, y) => x - y);
}

/** The four packed weight matrices (q, k, v, o) of a module built without biases. */
function packedWeights(options: MultiHeadAttentionOptions) {
  const { result: mha, blocks } = keptBlocks(() => new MultiHeadAttention(options));
  return { mha, blocks };
}

describe("weights", () => {
  it("given weights (bare arrays or Tensors) are used: the output matches the reference", () => {
    const r = rng(50);
    const dims = { E: 20, H: 5, Hkv: 5, kdim: 7, vdim: 11 };
    const w1 = randomWeights(r, dims, true);
    const w2 = randomWeights(r, dims, true);
    const q = randomTensor(r, [2, 4, 20]);
    const k = randomTensor(r, [2, 6, 7]);
    const v = randomTensor(r, [2, 6, 11]);
    const asTensors = {
      wq: { data: w2.wq, shape: [20, 20] },
      wk: { data: w2.wk, shape: [20, 7] },
      wv: { data: w2.wv, shape: [20, 11] },
      wo: { data: w2.wo, shape: [20, 20] },
      bq: w2.bq,
      bk: w2.bk,
      bv: w2.bv,
      bo: w2.bo,
    };
    const config = { embedDim: 20, numHeads: 5, kdim: 7, vdim: 11 };
    const m1 = new MultiHeadAttention({ ...config, weights: w1 });
    const m2 = new MultiHeadAttention({ ...config, weights: asTensors });
    try {
      const o1 = m1.forward(q, k, v).output;
      const o2 = m2.forward(q, k, v).output;
      expectClose(o1, referenceMha(config, w1, q, k, v).output, TOL, "weights 1");
      expectClose(o2, referenceMha(config, w2, q, k, v).output, TOL, "weights 2 (Tensors)");
      expect(closeProblem(o1, o2, { atol: 1e-3, rtol: 0 })).not.toBeNull();
    } finally {
      m1.dispose();
      m2.dispose();
    }
  });

  it("weights are copied at construction: changing the arrays afterwards changes nothing", () => {
    const r = rng(51);
    const dims = { E: 16, H: 2, Hkv: 2, kdim: 16, vdim: 16 };
    const w = randomWeights(r, dims, true);
    const original: RefMhaWeights = {
      wq: w.wq.slice(),
      wk: w.wk.slice(),
      wv: w.wv.slice(),
      wo: w.wo.slice(),
      bq: w.bq!.slice(),
      bk: w.bk!.slice(),
      bv: w.bv!.slice(),
      bo: w.bo!.slice(),
    };
    const mha = new MultiHeadAttention({ embedDim: 16, numHeads: 2, weights: w });
    try {
      for (const a of Object.values(w)) (a as Float32Array).fill(7);
      const x = randomTensor(r, [1, 5, 16]);
      const got = mha.forward(x).output;
      expectClose(got, referenceMha({ embedDim: 16, numHeads: 2 }, original, x).output, TOL, "out");
    } finally {
      mha.dispose();
    }
  });

  it("weights in WASM memory (allocTensor) are accepted, and may be freed after construction", () => {
    const r = rng(55);
    const dims = { E: 16, H: 4, Hkv: 2, kdim: 6, vdim: 16 };
    const w = randomWeights(r, dims, true);
    const config = { embedDim: 16, numHeads: 4, numKvHeads: 2, kdim: 6 };
    const resident = {
      wq: allocTensor([16, 16]),
      wk: allocTensor([8, 6]),
      wv: allocTensor([8, 16]),
      wo: allocTensor([16, 16]),
    };
    resident.wq.data.set(w.wq);
    resident.wk.data.set(w.wk);
    resident.wv.data.set(w.wv);
    resident.wo.data.set(w.wo);
    const mha = new MultiHeadAttention({
      ...config,
      weights: { ...resident, bq: w.bq, bk: w.bk, bv: w.bv, bo: w.bo },
    });
    try {
      for (const t of Object.values(resident)) {
        t.data.fill(NaN);
        t.free();
      }
      const x = randomTensor(r, [2, 3, 16]);
      const k = randomTensor(r, [2, 4, 6]);
      const v = randomTensor(r, [2, 4, 16]);
      const got = mha.forward(x, k, v).output;
      expectClose(got, referenceMha(config, w, x, k, v).output, TOL, "output");
    } finally {
      mha.dispose();
    }
  });

  it("omitted biases are zero with bias: true; bias: false has none", () => {
    const r = rng(52);
    const dims = { E: 12, H: 3, Hkv: 1, kdim: 5, vdim: 12 };
    const w = randomWeights(r, dims, false);
    const x = randomTensor(r, [2, 3, 12]);
    const k = randomTensor(r, [2, 4, 5]);
    const v = randomTensor(r, [2, 4, 12]);
    const config = { embedDim: 12, numHeads: 3, numKvHeads: 1, kdim: 5 };
    const want = referenceMha(config, w, x, k, v).output;
    for (const bias of [true, false]) {
      const mha = new MultiHeadAttention({ ...config, bias, weights: w });
      try {
        expectClose(mha.forward(x, k, v).output, want, TOL, `bias ${bias}`);
      } finally {
        mha.dispose();
      }
    }
    // Only some biases given: the others are zero.
    const partial = { ...w, bq: randomTensor(r, [12]).data, bo: randomTensor(r, [12]).data };
    const mha = new MultiHeadAttention({ ...config, weights: partial });
    try {
      const got = mha.forward(x, k, v).output;
      expectClose(got, referenceMha(config, partial, x, k, v).output, TOL, "bq and bo only");
    } finally {
      mha.dispose();
    }
  });

  it("without weights the initialisation is deterministic per seed", () => {
    const r = rng(53);
    const x = randomTensor(r, [2, 6, 24]);
    const run = (options: Partial<MultiHeadAttentionOptions>): Float32Array => {
      const mha = new MultiHeadAttention({ embedDim: 24, numHeads: 4, ...options });
      try {
        return mha.forward(x, undefined, undefined, { needWeights: true }).output.data;
      } finally {
        mha.dispose();
      }
    };
    const a = run({ seed: 3 });
    expect(Array.from(run({ seed: 3 }))).toEqual(Array.from(a));
    expect(
      closeProblem(
        { data: run({ seed: 4 }), shape: [a.length] },
        { data: a, shape: [a.length] },
        {
          atol: 1e-4,
          rtol: 0,
        },
      ),
    ).not.toBeNull();
    expect(Array.from(run({}))).toEqual(Array.from(run({ seed: 0 })));
    // The seed also drives kdim/vdim/GQA modules.
    const g = { numKvHeads: 2, kdim: 24, vdim: 24 } as const;
    expect(Array.from(run({ ...g, seed: 9 }))).toEqual(Array.from(run({ ...g, seed: 9 })));
    expect(a.some(Number.isNaN)).toBe(false);
  });

  it("the packed weights in WASM memory are exactly the given ones", () => {
    // Validates the inspection the next test relies on.
    const r = rng(54);
    const dims = { E: 12, H: 3, Hkv: 1, kdim: 9, vdim: 5 };
    const w = randomWeights(r, dims, false);
    const { mha, blocks } = packedWeights({
      embedDim: 12,
      numHeads: 3,
      numKvHeads: 1,
      kdim: 9,
      vdim: 5,
      bias: false,
      weights: w,
    });
    try {
      expect(blocks.length).toBe(4);
      const names = ["wq", "wk", "wv", "wo"] as const;
      names.forEach((name, i) => {
        expect(sortedNonZero(floatsAt(blocks[i])), name).toEqual(sortedNonZero(w[name]));
      });
    } finally {
      mha.dispose();
    }
  });

  it.each([
    ["kdim = vdim = E (PyTorch's packed in_proj_weight)", { embedDim: 32, numHeads: 4 }],
    ["kdim ≠ vdim", { embedDim: 24, numHeads: 3, kdim: 40, vdim: 8 }],
    ["grouped-query", { embedDim: 32, numHeads: 8, numKvHeads: 2 }],
    ["multi-query, kdim ≠ E", { embedDim: 48, numHeads: 4, numKvHeads: 1, kdim: 20 }],
  ] as Array<[string, MultiHeadAttentionOptions]>)(
    "initial wq/wk/wv fill the Xavier bound, wo PyTorch's 1/sqrt(E), biases zero: %s",
    (_name, options) => {
      const E = options.embedDim;
      const H = options.numHeads;
      const kvDim = (E / H) * (options.numKvHeads ?? H);
      const kdim = options.kdim ?? E;
      const vdim = options.vdim ?? E;
      const packedQkv = kdim === E && vdim === E && kvDim === E;
      const xavier = (out: number, inp: number): number =>
        Math.sqrt(6 / (packedQkv ? 4 * E : out + inp));
      const expected: Array<[string, number, number, number]> = [
        ["wq", E, E, xavier(E, E)],
        ["wk", kvDim, kdim, xavier(kvDim, kdim)],
        ["wv", kvDim, vdim, xavier(kvDim, vdim)],
        ["wo", E, E, 1 / Math.sqrt(E)],
      ];
      for (const seed of [0, 12345]) {
        const { mha, blocks } = packedWeights({ ...options, seed });
        try {
          // With biases: packed q, bq, packed k, bk, packed v, bv, packed o, bo.
          expect(blocks.length).toBe(8);
          expected.forEach(([name, out, inp, bound], i) => {
            const values = sortedNonZero(floatsAt(blocks[2 * i]));
            const bias = floatsAt(blocks[2 * i + 1]);
            expect(values.length, `${name} count`).toBeGreaterThan(out * inp - 3);
            expect(values.length, `${name} count`).toBeLessThanOrEqual(out * inp);
            const max = Math.max(-values[0], values[values.length - 1]);
            expect(max, `${name} within ±${bound}`).toBeLessThanOrEqual(bound * (1 + 1e-6));
            expect(max, `${name} fills ±${bound}`).toBeGreaterThan(bound * 0.9);
            const mean = values.reduce((a, b) => a + b, 0) / values.length;
            expect(Math.abs(mean), `${name} mean`).toBeLessThan(bound * 0.2);
            expect(bias.length).toBe(out);
            expect(
              bias.every((x) => x === 0),
              `${name}'s bias is zero`,
            ).toBe(true);
          });
        } finally {
          mha.dispose();
        }
      }
    },
  );
});

// =====================================================================================
// 5. Lifecycle
// =====================================================================================

describe("lifecycle", () => {
  it("dispose() frees the weights and every cache; bytesInUse returns to its value before", () => {
    const r = rng(60);
    const x = randomTensor(r, [2, 3, 32]);
    const before = bytesInUse();
    const mha = new MultiHeadAttention({ embedDim: 32, numHeads: 4, numKvHeads: 2, rope: {} });
    const afterConstruction = bytesInUse();
    expect(afterConstruction).toBeGreaterThan(before + 4 * 32 * 16 * 4 - 1);
    const c1 = mha.createCache({ batch: 2, maxLength: 64 });
    const c2 = mha.createCache({ maxLength: 200 });
    expect(bytesInUse()).toBeGreaterThan(afterConstruction);
    mha.forward(x, undefined, undefined, { cache: c1, causal: true });
    mha.forward(x, undefined, undefined, { needWeights: true });
    expect(c2.length).toBe(0);
    mha.dispose();
    expect(bytesInUse()).toBe(before);
    mha.dispose(); // idempotent
    c1.dispose(); // already freed by the module: a no-op
    expect(bytesInUse()).toBe(before);
  });

  it("forward / createCache after dispose() throw DISPOSED and allocate nothing", () => {
    const r = rng(61);
    const mha = new MultiHeadAttention({ embedDim: 16, numHeads: 2 });
    const cache = mha.createCache({ maxLength: 4 });
    mha.dispose();
    const before = bytesInUse();
    const x = randomTensor(r, [1, 2, 16]);
    const e1 = expectAttentionError(() => mha.forward(x), "DISPOSED");
    expect(e1.message).toContain("MultiHeadAttention");
    expectAttentionError(() => mha.forward(x, undefined, undefined, { cache }), "DISPOSED");
    expectAttentionError(() => mha.createCache({ maxLength: 4 }), "DISPOSED");
    expect(bytesInUse()).toBe(before);
  });

  it("many modules built and disposed leave WASM memory as it was", () => {
    const r = rng(62);
    const x = randomTensor(r, [2, 5, 24]);
    const warm = new MultiHeadAttention({ embedDim: 24, numHeads: 3 });
    warm.forward(x, undefined, undefined, { causal: true, needWeights: true });
    warm.dispose();
    const before = bytesInUse();
    const bytes = kernels("test").exports.memory.buffer.byteLength;
    for (let i = 0; i < 30; i++) {
      const mha = new MultiHeadAttention({
        embedDim: 24,
        numHeads: 3,
        numKvHeads: i % 2 ? 1 : 3,
        seed: i,
      });
      const cache = mha.createCache({ batch: 2, maxLength: 10 });
      mha.forward(x, undefined, undefined, { cache, causal: true, needWeights: true });
      mha.dispose();
      expect(bytesInUse()).toBe(before);
    }
    expect(kernels("test").exports.memory.buffer.byteLength).toBe(bytes);
  });
});
