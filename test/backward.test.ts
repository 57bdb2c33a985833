// scaledDotProductAttentionBackward: the golden sdpa_backward cases, and central finite differences
// of the float64 reference for every forward option the backward pass supports.
import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  alibiSlopes,
  init,
  linear,
  linearBackward,
  scaledDotProductAttention,
  scaledDotProductAttentionBackward,
  type ScaledDotProductAttentionOptions,
  type Tensor,
} from "../src/index";
import { decodeFloat, decodeTensor, expectClose, loadCases } from "./helpers/conformance";
import { randomAdditiveMask, randomBoolMask, randomTensor, rng } from "./helpers/random";
import { referenceSdpa } from "./reference";

beforeAll(async () => {
  await init();
});

describe("golden sdpa_backward cases", () => {
  const cases = loadCases().filter((c) => c.op === "sdpa_backward");
  it("has cases", () => expect(cases.length).toBe(5));
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const I = Object.fromEntries(Object.entries(c.inputs).map(([k, t]) => [k, decodeTensor(t)]));
    const p = c.params as { scale: number | null; causal: string | null };
    const options: ScaledDotProductAttentionOptions = {
      mask: I.attn_mask,
      scale: p.scale ?? undefined,
      ...(p.causal === "upper_left"
        ? { causal: true, align: "upper-left" as const }
        : p.causal
          ? { causal: true }
          : {}),
    };
    const q = I.q as Tensor;
    const k = I.k as Tensor;
    const v = I.v as Tensor;
    const f = scaledDotProductAttention(q, k, v, { ...options, returnLse: true });
    const g = scaledDotProductAttentionBackward(q, k, v, f.output, I.dout as Tensor, {
      ...options,
      lse: f.lse!,
    });
    expectClose(g.dq, decodeFloat(c.outputs.dq), c.tolerance, "dq");
    expectClose(g.dk, decodeFloat(c.outputs.dk), c.tolerance, "dk");
    expectClose(g.dv, decodeFloat(c.outputs.dv), c.tolerance, "dv");
  });
});

// L = Σ output ⊙ dout of the float64 reference.
function loss(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  dout: Tensor,
  options: ScaledDotProductAttentionOptions,
): number {
  const out = referenceSdpa(q, k, v, options).output.data;
  let l = 0;
  for (let i = 0; i < out.length; i++) l += out[i] * dout.data[i];
  return l;
}

function finiteDifference(
  which: "q" | "k" | "v",
  index: number,
  inputs: { q: Tensor; k: Tensor; v: Tensor; dout: Tensor },
  options: ScaledDotProductAttentionOptions,
): number {
  const eps = 1e-3;
  const at = (delta: number): number => {
    const t = inputs[which];
    const data = Float32Array.from(t.data);
    data[index] += delta;
    const moved = { ...inputs, [which]: { data, shape: t.shape } };
    // The reference runs in float64 on the float32 values; the step is exact in float32 here.
    return loss(moved.q, moved.k, moved.v, moved.dout, options);
  };
  const step = Math.fround(inputs[which].data[index] + eps) - inputs[which].data[index];
  return (at(eps) - at(-eps)) / (2 * step);
}

function fullyMaskedRow(mask: Tensor<Uint8Array>): Tensor<Uint8Array> {
  const Nk = mask.shape[mask.shape.length - 1];
  mask.data.fill(0, 2 * Nk, 3 * Nk);
  return mask;
}

describe("gradients match central finite differences of the float64 reference", () => {
  const r = rng(77);
  const [B, H, Hkv, Nq, Nk, D, Dv] = [1, 4, 2, 7, 9, 6, 5];
  const variants: Array<[string, ScaledDotProductAttentionOptions]> = [
    ["plain", {}],
    ["causal lower-right", { causal: true }],
    ["causal upper-left", { causal: true, align: "upper-left" }],
    [
      "bool mask with a fully masked row",
      { mask: fullyMaskedRow(randomBoolMask(r, [Nq, Nk], 0.7)) },
    ],
    ["additive mask", { mask: randomAdditiveMask(r, [B, 1, Nq, Nk], 0.8) }],
    ["window", { window: [2, 1] }],
    ["softcap", { softcap: 0.7 }],
    ["alibi", { alibiSlopes: alibiSlopes(H) }],
    [
      "scale and global tokens",
      { scale: 0.9, globalTokens: Int32Array.from([0, 5]), window: [1, 1] },
    ],
  ];
  it.each(variants)("%s", (_name, options) => {
    const rr = rng(5);
    const inputs = {
      q: randomTensor(rr, [B, H, Nq, D]),
      k: randomTensor(rr, [B, Hkv, Nk, D]),
      v: randomTensor(rr, [B, Hkv, Nk, Dv]),
      dout: randomTensor(rr, [B, H, Nq, Dv]),
    };
    const f = scaledDotProductAttention(inputs.q, inputs.k, inputs.v, {
      ...options,
      returnLse: true,
    });
    const g = scaledDotProductAttentionBackward(
      inputs.q,
      inputs.k,
      inputs.v,
      f.output,
      inputs.dout,
      {
        ...options,
        lse: f.lse!,
      },
    );
    const grads = { q: g.dq, k: g.dk, v: g.dv };
    for (const which of ["q", "k", "v"] as const) {
      const n = inputs[which].data.length;
      for (let s = 0; s < 6; s++) {
        const index = Math.floor(((s + 0.5) / 6) * n);
        const fd = finiteDifference(which, index, inputs, options);
        const got = grads[which].data[index];
        expect(Math.abs(got - fd), `d${which}[${index}]: ${got} vs ${fd}`).toBeLessThanOrEqual(
          2e-3 + 5e-3 * Math.abs(fd),
        );
      }
    }
    expect([...g.dq.data, ...g.dk.data, ...g.dv.data].every(Number.isFinite)).toBe(true);
  });
});

describe("errors", () => {
  it("needs the forward lse and matching shapes", () => {
    const r = rng(1);
    const q = randomTensor(r, [2, 3, 4]);
    const f = scaledDotProductAttention(q, q, q, { returnLse: true });
    expect(() =>
      scaledDotProductAttentionBackward(q, q, q, f.output, f.output, {} as { lse: Tensor }),
    ).toThrow(AttentionError);
    expect(() =>
      scaledDotProductAttentionBackward(q, q, q, f.output, randomTensor(r, [2, 3, 5]), {
        lse: f.lse!,
      }),
    ).toThrow(/gradOutput/);
    expect(() =>
      scaledDotProductAttentionBackward(q, q, q, f.output, f.output, {
        lse: randomTensor(r, [2, 4]),
      }),
    ).toThrow(/lse/);
  });
});

describe("linearBackward", () => {
  it("gives dx = dY·W, dw = dYᵀ·X and db = Σ dY, checked by finite differences", () => {
    const r = rng(3);
    const [M, IN, OUT] = [5, 7, 4];
    const x = randomTensor(r, [M, IN]);
    const w = randomTensor(r, [OUT, IN]).data;
    const b = randomTensor(r, [OUT]).data;
    const dy = randomTensor(r, [M, OUT]);
    const g = linearBackward(x, w, dy);
    expect(g.dx.shape).toEqual([M, IN]);
    expect(g.dw.shape).toEqual([OUT, IN]);
    const lossOf = (xx: Float32Array, ww: Float32Array, bb: Float32Array): number =>
      linear({ data: xx, shape: [M, IN] }, ww, bb).data.reduce((a, y, i) => a + y * dy.data[i], 0);
    const check = (
      name: string,
      base: Float32Array,
      grad: Float32Array,
      f: (t: Float32Array) => number,
    ): void => {
      for (const i of [0, Math.floor(base.length / 2), base.length - 1]) {
        const up = Float32Array.from(base);
        const down = Float32Array.from(base);
        up[i] += 1e-2;
        down[i] -= 1e-2;
        const fd = (f(up) - f(down)) / (up[i] - down[i]);
        expect(Math.abs(grad[i] - fd), `${name}[${i}]`).toBeLessThan(2e-3 + 2e-3 * Math.abs(fd));
      }
    };
    check("dx", x.data, g.dx.data, (t) => lossOf(t, w, b));
    check("dw", w, g.dw.data, (t) => lossOf(x.data, t, b));
    check("db", b, g.db.data, (t) => lossOf(x.data, w, t));
    expect(() => linearBackward(x, w, randomTensor(r, [M, OUT + 1]))).toThrow(AttentionError);
  });
});
