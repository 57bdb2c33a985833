// Reading attention: attentionEntropy, attentionRollout and renderHeatmapSvg against the golden
// cases and plain float64 references, and the heatmap's structure and determinism.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  AttentionError,
  attentionEntropy,
  attentionRollout,
  init,
  renderHeatmapSvg,
  type Tensor,
} from "../src/index";
import { decodeFloat, expectClose, loadCases } from "./helpers/conformance";
import { rng } from "./helpers/random";

beforeAll(async () => {
  await init();
});

function rowStochastic(r: () => number, shape: number[], zeros = 0.2): Tensor {
  const n = shape[shape.length - 1];
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let row = 0; row < data.length / n; row++) {
    let sum = 0;
    for (let j = 0; j < n; j++) sum += data[row * n + j] = r() < zeros ? 0 : r();
    for (let j = 0; j < n; j++) data[row * n + j] = sum > 0 ? data[row * n + j] / sum : 0;
  }
  return { data, shape };
}

function referenceRollout(
  layers: Tensor[],
  fusion: "mean" | "max" | "min",
  residual: boolean,
): Float64Array {
  const [B, H, N] = layers[0].shape;
  const out = new Float64Array(B * N * N);
  for (let b = 0; b < B; b++) {
    let R: number[][] | undefined;
    for (const layer of layers) {
      const A = Array.from({ length: N }, (_, i) =>
        Array.from({ length: N }, (_, j) => {
          const xs = Array.from({ length: H }, (_, h) => layer.data[((b * H + h) * N + i) * N + j]);
          const f =
            fusion === "mean"
              ? xs.reduce((a, x) => a + x, 0) / H
              : fusion === "max"
                ? Math.max(...xs)
                : Math.min(...xs);
          return f + (residual && i === j ? 1 : 0);
        }),
      );
      for (const row of A) {
        const sum = row.reduce((a, x) => a + x, 0);
        if (sum > 0) row.forEach((x, j) => (row[j] = x / sum));
      }
      R =
        R === undefined
          ? A
          : A.map((row) => R![0].map((_, j) => row.reduce((a, x, k) => a + x * R![k][j], 0)));
    }
    R!.forEach((row, i) => row.forEach((x, j) => (out[(b * N + i) * N + j] = x)));
  }
  return out;
}

describe("golden cases", () => {
  const cases = loadCases().filter((c) => c.op === "entropy" || c.op === "attention_rollout");
  it("has entropy and rollout cases", () => expect(cases.length).toBe(3));
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    if (c.op === "entropy") {
      expectClose(
        attentionEntropy(decodeFloat(c.inputs.p)),
        decodeFloat(c.outputs.entropy),
        c.tolerance,
      );
    } else {
      const all = decodeFloat(c.inputs.attentions);
      const [L, B, H, N] = all.shape;
      const per = B * H * N * N;
      const layers = Array.from({ length: L }, (_, l) => ({
        data: all.data.slice(l * per, (l + 1) * per),
        shape: [B, H, N, N],
      }));
      expectClose(
        attentionRollout(layers, { headFusion: "mean", residual: true }),
        decodeFloat(c.outputs.rollout),
        c.tolerance,
      );
    }
  });
});

describe("attentionEntropy", () => {
  it("matches −Σ p ln p (0 ln 0 = 0) on random distributions, uniform and one-hot rows", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer(),
        (rows, n, seed) => {
          const t = rowStochastic(rng(seed), [rows, n]);
          const got = attentionEntropy(t);
          expect(got.shape).toEqual([rows]);
          for (let r = 0; r < rows; r++) {
            let h = 0;
            for (let j = 0; j < n; j++) {
              const p = t.data[r * n + j];
              if (p > 0) h -= p * Math.log(p);
            }
            expect(got.data[r]).toBeCloseTo(h, 5);
          }
        },
      ),
      { seed: 0xe7, numRuns: 100 },
    );
    const uniform = { data: new Float32Array(8).fill(1 / 8), shape: [8] };
    expect(attentionEntropy(uniform).data[0]).toBeCloseTo(Math.log(8), 6);
    expect(attentionEntropy({ data: new Float32Array([0, 1, 0]), shape: [3] }).data[0]).toBe(0);
    expect(attentionEntropy({ data: new Float32Array(4), shape: [4] }).data[0]).toBe(0);
  });
});

describe("attentionRollout", () => {
  it("matches the float64 reference for every head fusion, with and without the residual", () => {
    for (const fusion of ["mean", "max", "min"] as const) {
      for (const residual of [true, false]) {
        const r = rng(fusion.length * 7 + (residual ? 1 : 0));
        const layers = [0, 1, 2].map(() => rowStochastic(r, [2, 3, 9, 9], 0.1));
        const got = attentionRollout(layers, { headFusion: fusion, residual });
        expect(got.shape).toEqual([2, 9, 9]);
        expectClose(
          got,
          { data: referenceRollout(layers, fusion, residual), shape: [2, 9, 9] },
          { atol: 1e-5, rtol: 1e-4 },
        );
      }
    }
  });

  it("of one layer is that layer's normalised fused attention; rows of the result sum to 1", () => {
    const layer = rowStochastic(rng(3), [1, 2, 5, 5]);
    const got = attentionRollout([layer]);
    for (let i = 0; i < 5; i++) {
      const sum = got.data.slice(i * 5, i * 5 + 5).reduce((a, x) => a + x, 0);
      expect(sum).toBeCloseTo(1, 5);
    }
  });

  it("refuses bad input", () => {
    const ok = rowStochastic(rng(1), [1, 1, 3, 3]);
    expect(() => attentionRollout([])).toThrow(AttentionError);
    expect(() => attentionRollout([ok, rowStochastic(rng(2), [1, 1, 4, 4])])).toThrow(
      /layers\[1\]/,
    );
    expect(() => attentionRollout([{ data: new Float32Array(6), shape: [1, 1, 2, 3] }])).toThrow(
      /\[B,H,N,N\]/,
    );
    expect(() => attentionRollout([ok], { headFusion: "median" as "mean" })).toThrow(
      AttentionError,
    );
  });
});

describe("renderHeatmapSvg", () => {
  const weights = rowStochastic(rng(9), [3, 4]);

  it("draws one cell per (query, key) with hover text, labels, a title and a legend", () => {
    const svg = renderHeatmapSvg(weights, {
      rowLabels: ["the", "cat", "<sat>"],
      colLabels: ["a", "b", "c", "d"],
      title: "layer 0 & head 1",
    });
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.trim().endsWith("</svg>")).toBe(true);
    expect(svg.match(/<title>/g)?.length).toBe(12);
    expect(svg).toContain("layer 0 &amp; head 1");
    expect(svg).toContain("&lt;sat&gt;");
    expect(svg).toContain(`cat → b: ${weights.data[5].toFixed(4)}`);
    // The legend: 20 swatches and its two end labels.
    expect(svg.match(/width="12" height="5"/g)?.length).toBe(20);
  });

  it("is deterministic: the same input gives the same bytes", () => {
    expect(renderHeatmapSvg(weights)).toBe(
      renderHeatmapSvg({ data: Float32Array.from(weights.data), shape: [3, 4] }),
    );
  });

  it("accepts [1, 1, Nq, Nk] and refuses other shapes and wrong label counts", () => {
    expect(renderHeatmapSvg({ data: weights.data, shape: [1, 1, 3, 4] })).toBe(
      renderHeatmapSvg(weights),
    );
    expect(() => renderHeatmapSvg({ data: new Float32Array(24), shape: [2, 3, 4] })).toThrow(
      AttentionError,
    );
    expect(() => renderHeatmapSvg(weights, { rowLabels: ["a"] })).toThrow(/rowLabels/);
  });
});
