// src/train (the model of examples/train, the demo and the page): the model's hand-written
// gradients (embeddings, residuals, readout, cross-entropy around the library's backward passes)
// against finite differences of its loss; a short, seeded run of each task must cut the loss by a
// stated factor (the full runs and their accuracies are in examples/train/README.md) and reproduce
// exactly from its seed; the probe returns each layer's attention before and after training. Needs
// no Node API, so it also runs in Chromium.

import { beforeAll, describe, expect, it } from "vitest";
import { init } from "../src/index";
import { AttentionModel } from "../src/training/model";
import { seeded } from "../src/training/random";
import { recallBatch } from "../src/training/task";
import { train } from "../src/training/trainer";

beforeAll(async () => {
  await init();
});

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe("src/train", () => {
  it("the model's gradients match central differences of its loss", () => {
    const config = {
      vocab: 6,
      length: 5,
      embedDim: 8,
      numHeads: 2,
      layers: 2,
      causal: true,
      seed: 3,
    };
    const model = new AttentionModel(config);
    const batch = recallBatch(seeded(4), 3, config.length, config.vocab);
    const { gradients } = model.lossAndGradients(batch);
    const params = model.parameters();
    expect(gradients.map((g) => g.length)).toEqual(params.map((p) => p.length));
    const loss = (): number => model.evaluate(batch).loss;
    const h = 1e-2; // float32 forward: the loss's rounding (~1e-7) over h stays well below tolerance
    let nonzero = 0;
    params.forEach((p, k) => {
      for (const i of [0, Math.floor(p.length / 3), p.length - 1]) {
        const x = p[i];
        p[i] = x + h;
        model.sync();
        const up = loss();
        p[i] = x - h;
        model.sync();
        const down = loss();
        p[i] = x;
        model.sync();
        const fd = (up - down) / (2 * h);
        const got = gradients[k][i];
        expect(Math.abs(got - fd), `parameter ${k}[${i}]: ${got} vs ${fd}`).toBeLessThan(
          2e-4 + 0.02 * Math.abs(fd),
        );
        if (Math.abs(fd) > 1e-3) nonzero++;
      }
    });
    // Most checked entries have a gradient (an all-zero result would pass trivially otherwise).
    expect(nonzero).toBeGreaterThan(params.length);
    model.dispose();
  });

  it.each([
    // Measured (node, SIMD128): recall 2.79 → 0.0010, reverse 2.80 → 0.0006, both 100% held out.
    ["recall", 200],
    ["reverse", 100],
  ] as const)("%s: %i steps cut the loss a hundredfold and learn the task", (task, steps) => {
    const report = train({ task, steps, evalSequences: 128 });
    const first = mean(report.losses.slice(0, 10));
    const last = mean(report.losses.slice(-10));
    // The first steps are at chance: ln 15 ≈ 2.71 (recall's 15 tokens), ln 16 ≈ 2.77 (reverse).
    expect(first).toBeGreaterThan(2.5);
    expect(last).toBeLessThan(first / 100);
    expect(report.accuracy).toBeGreaterThanOrEqual(0.95);
  });

  it("reproduces from its seed", () => {
    const a = train({ steps: 5, evalSequences: 16 });
    const b = train({ steps: 5, evalSequences: 16 });
    const c = train({ steps: 5, evalSequences: 16, seed: 2 });
    expect(b.losses).toEqual(a.losses);
    expect(c.losses).not.toEqual(a.losses);
  });

  it("returns each layer's causal attention on a probe, before and after training", () => {
    const probe = Int32Array.from([3, 7, 1, 12, 15, 9, 4, 2, 11, 5, 0, 8]);
    const report = train({ steps: 5, evalSequences: 16, probe });
    const { untrained, trained } = report.probeAttention!;
    const N = probe.length;
    expect(untrained.map((w) => w.shape)).toEqual([
      [1, 4, N, N],
      [1, 4, N, N],
    ]);
    expect(trained.map((w) => w.shape)).toEqual(untrained.map((w) => w.shape));
    for (const w of [...untrained, ...trained]) {
      for (let row = 0; row < 4 * N; row++) {
        const q = row % N;
        const weights = w.data.subarray(row * N, (row + 1) * N);
        expect(weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
        expect(weights.subarray(q + 1).every((x) => x === 0)).toBe(true);
      }
    }
    // Five steps change the weights; a run without a probe reports none.
    expect(trained[1].data).not.toEqual(untrained[1].data);
    expect(train({ steps: 1, evalSequences: 16 }).probeAttention).toBeUndefined();
  });
});
