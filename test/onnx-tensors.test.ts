// ONNX Runtime's tensors ({ data, dims }, no `shape`) pass wherever a Tensor is accepted, without a
// copy in JavaScript, and give the same results as { data, shape }; an object with both `dims` and
// `shape` that disagree is a SHAPE_MISMATCH error.
import * as ort from "onnxruntime-web";
import { beforeAll, describe, expect, it } from "vitest";
import {
  applyRope,
  attentionEntropy,
  cosineAttention,
  hardAttention,
  init,
  linear,
  MultiHeadAttention,
  scaledDotProductAttention,
  scaledDotProductAttentionAsync,
  scaledDotProductAttentionBackward,
  softmax,
  type Tensor,
} from "../src/index";
import { expectClose } from "./helpers/conformance";
import { expectUntouched, snapshot, thrown } from "./helpers/errors";
import { randomTensor, rng } from "./helpers/random";
import { referenceSdpa } from "./reference";

const TOL = { atol: 2e-5, rtol: 2e-4 };

beforeAll(async () => {
  await init();
});

/** The same data as an ONNX Runtime tensor. */
const onnx = (t: Tensor): ort.TypedTensor<"float32"> =>
  new ort.Tensor("float32", t.data, [...t.shape]);

const r = rng(31);

describe("ONNX Runtime tensors", () => {
  it("are q, k, v (and the mask) of scaledDotProductAttention and its async twin", async () => {
    const q = randomTensor(r, [1, 2, 5, 8]);
    const k = randomTensor(r, [1, 2, 7, 8]);
    const v = randomTensor(r, [1, 2, 7, 4]);
    const maskData = Uint8Array.from({ length: 7 }, (_, j) => (j === 3 ? 0 : 1));
    const ortMask = new ort.Tensor("uint8", maskData, [7]);
    expect("shape" in onnx(q)).toBe(false); // a real { data, dims } object
    const options = { causal: true, mask: ortMask as unknown as Tensor<Uint8Array> };
    const got = scaledDotProductAttention(onnx(q), onnx(k), onnx(v), options);
    const want = referenceSdpa(q, k, v, { causal: true, mask: { data: maskData, shape: [7] } });
    expect(got.output.shape).toEqual([1, 2, 5, 4]);
    expectClose(got.output, want.output, TOL, "output");
    const asyncResult = await scaledDotProductAttentionAsync(onnx(q), onnx(k), onnx(v), options);
    expectClose(asyncResult.output, want.output, TOL, "async output");
  });

  it("flow through the backward pass", () => {
    const q = randomTensor(r, [2, 3, 4]);
    const k = randomTensor(r, [2, 6, 4]);
    const v = randomTensor(r, [2, 6, 4]);
    const fwd = scaledDotProductAttention(q, k, v, { returnLse: true });
    const grad = randomTensor(r, [2, 3, 4]);
    const plain = scaledDotProductAttentionBackward(q, k, v, fwd.output, grad, {
      lse: fwd.lse as Tensor,
    });
    const viaOnnx = scaledDotProductAttentionBackward(
      onnx(q),
      onnx(k),
      onnx(v),
      onnx(fwd.output),
      onnx(grad),
      { lse: onnx(fwd.lse as Tensor) as unknown as Tensor },
    );
    expectClose(viaOnnx.dq, plain.dq, TOL, "dq");
    expectClose(viaOnnx.dk, plain.dk, TOL, "dk");
    expectClose(viaOnnx.dv, plain.dv, TOL, "dv");
  });

  it("are the input of MultiHeadAttention (self- and cross-attention)", () => {
    const mha = new MultiHeadAttention({ embedDim: 8, numHeads: 2, seed: 4 });
    try {
      const x = randomTensor(r, [2, 5, 8]);
      const memory = randomTensor(r, [2, 3, 8]);
      const ortX = onnx(x);
      expectClose(mha.forward(ortX).output, mha.forward(x).output, TOL, "self-attention");
      expectClose(
        mha.forward(ortX, ortX, ortX).output,
        mha.forward(x, x, x).output,
        TOL,
        "the same tensor as query, key and value",
      );
      expectClose(
        mha.forward(ortX, onnx(memory), onnx(memory)).output,
        mha.forward(x, memory, memory).output,
        TOL,
        "cross-attention",
      );
    } finally {
      mha.dispose();
    }
  });

  it("pass the other ops taking tensors", () => {
    const x = randomTensor(r, [1, 2, 4, 6]);
    const x3 = randomTensor(r, [1, 4, 6]);
    const w = randomTensor(r, [3, 6]);
    expectClose(softmax(onnx(x)), softmax(x), TOL, "softmax");
    expectClose(applyRope(onnx(x)), applyRope(x), TOL, "applyRope");
    expectClose(linear(onnx(x), onnx(w)), linear(x, w), TOL, "linear");
    const p = softmax(x);
    expectClose(attentionEntropy(onnx(p)), attentionEntropy(p), TOL, "attentionEntropy");
    expectClose(
      cosineAttention(onnx(x3), onnx(x3), onnx(x3)).output,
      cosineAttention(x3, x3, x3).output,
      TOL,
      "cosineAttention",
    );
    expectClose(
      hardAttention(onnx(x), onnx(x), onnx(x), { topK: 2 }).output,
      hardAttention(x, x, x, { topK: 2 }).output,
      TOL,
      "hardAttention",
    );
  });

  it("an object whose dims and shape disagree is a SHAPE_MISMATCH error naming both", () => {
    const q = randomTensor(r, [1, 4, 8]);
    const both = { data: q.data, shape: [1, 4, 8], dims: [1, 8, 4] };
    const before = snapshot();
    const error = thrown(() => scaledDotProductAttention(both, q, q));
    expect(error.code).toBe("SHAPE_MISMATCH");
    expect(error.message).toContain("q has shape");
    expect(error.message).toContain("dims");
    expectUntouched(before);
    // Agreeing dims and shape are fine.
    const agree = { data: q.data, shape: [1, 4, 8], dims: [1, 4, 8] };
    expectClose(
      scaledDotProductAttention(agree, q, q).output,
      scaledDotProductAttention(q, q, q).output,
      TOL,
      "agree",
    );
  });
});
