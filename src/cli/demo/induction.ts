// The demo's trained model: the recall task of src/train (copy the token that follows a marker;
// two causal layers of four heads, an induction circuit) trained in a few seconds, then both
// layers' heads on one probe sequence, before and after training. Measured on that sequence: in
// layer 1, how much of its attention the token after the marker puts on the marker (the head that
// does it most); in layer 2, how much the later tokens put on the token after the marker (mean
// over heads), the one they must output.

import type { Tensor } from "../../index.js";
import { modelConfig, train } from "../../training/trainer.js";
import { headWeights } from "./layers.js";

/** recall's ordinary tokens are ids 0-14, shown as letters; id 15 is the marker. */
const NAMES = "abcdefghijklmno#";
/** The probe: the marker at position 4, so "j" (position 5) is what positions 6-11 must output. */
const PROBE = [3, 7, 1, 12, 15, 9, 4, 2, 11, 5, 0, 8];
const MARKER_AT = PROBE.indexOf(15);

export interface InductionReport {
  tokens: string[];
  steps: number;
  layers: number;
  heads: number;
  /** Share of held-out targets predicted right after training. */
  accuracy: number;
  milliseconds: number;
  /** Per layer [1, H, N, N]. */
  untrained: Tensor[];
  trained: Tensor[];
  /** Layer 1's head that attends most from the token after the marker to the marker. */
  previousTokenHead: { head: number; trained: number; untrained: number };
  /** Layer 2, mean over heads and over the tokens after the follower, weight on the follower. */
  retrieval: { trained: number; untrained: number };
}

export function trainInduction(steps: number): InductionReport {
  const config = modelConfig({ task: "recall" });
  const report = train({ task: "recall", steps, probe: Int32Array.from(PROBE) });
  const { untrained, trained } = report.probeAttention!;
  const N = PROBE.length;
  const H = config.numHeads;
  const follower = MARKER_AT + 1;
  const onMarker = (layer: Tensor, h: number): number =>
    headWeights(layer, h, N)[follower * N + MARKER_AT];
  let best = 0;
  for (let h = 1; h < H; h++) if (onMarker(trained[0], h) > onMarker(trained[0], best)) best = h;
  const onFollower = (layer: Tensor): number => {
    let sum = 0;
    let count = 0;
    for (let h = 0; h < H; h++)
      for (let q = follower + 1; q < N; q++, count++)
        sum += headWeights(layer, h, N)[q * N + follower];
    return sum / count;
  };
  return {
    tokens: PROBE.map((id) => NAMES[id]),
    steps,
    layers: config.layers,
    heads: H,
    accuracy: report.accuracy,
    milliseconds: report.milliseconds,
    untrained,
    trained,
    previousTokenHead: {
      head: best,
      trained: onMarker(trained[0], best),
      untrained: onMarker(untrained[0], best),
    },
    retrieval: { trained: onFollower(trained[1]), untrained: onFollower(untrained[1]) },
  };
}

/** The lines the demo prints about it. */
export function describeInduction(r: InductionReport): string[] {
  const marker = r.tokens[MARKER_AT];
  const follower = r.tokens[MARKER_AT + 1];
  const p = r.previousTokenHead;
  return [
    `induction heads: the recall task, ${r.layers} causal layers of ${r.heads} heads, trained ${r.steps} steps ` +
      `in ${(r.milliseconds / 1000).toFixed(1)} s; ${(r.accuracy * 100).toFixed(1)}% of held-out targets right`,
    `  probe: ${r.tokens.join(" ")}  (every token after "${marker} ${follower}" must output "${follower}")`,
    `  layer 1, head ${p.head + 1}: "${follower}" puts ${p.trained.toFixed(2)} of its attention on "${marker}" ` +
      `(untrained ${p.untrained.toFixed(2)})`,
    `  layer 2, mean of ${r.heads} heads: the tokens after "${follower}" put ${r.retrieval.trained.toFixed(2)} ` +
      `of their attention on it (untrained ${r.retrieval.untrained.toFixed(2)})`,
  ];
}
