// The demo behind `npm start` and `npx wasm-attention demo`: the user's text through every
// mechanism of the package and an untrained stack of multi-head attention layers, and beside them a
// tiny model trained in a few seconds whose heads have learnt something (src/cli/demo/induction.ts).
// It prints what it measured and hands each heatmap (SVG) and an HTML report to `io.write`. Node
// or browser alike; src/cli/cli.ts writes the files.

import { attentionRollout, init } from "../index.js";
import { MAX_DRAWN_TOKENS, renderDemoHeatmap } from "./demo/heatmap.js";
import { describeInduction, trainInduction, type InductionReport } from "./demo/induction.js";
import { headWeights, runLayers } from "./demo/layers.js";
import { runMechanisms, type MechanismReport } from "./demo/mechanisms.js";
import { mechanismTable, reportHtml, type Figure, type Section } from "./demo/report.js";
import { MAX_TOKENS, tokenize } from "./demo/tokenize.js";

export { runLayers } from "./demo/layers.js";
export { MAX_TOKENS, tokenize } from "./demo/tokenize.js";

export const DEFAULT_TEXT =
  "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill";

/** Where the command line writes by default, relative to the working directory. */
export const DEFAULT_OUT = "attention-report";

/** Training steps of the induction model by default: 100% held out (test/train.test.ts: 200). */
export const DEFAULT_STEPS = 300;

export interface DemoOptions {
  text: string;
  heads: number;
  layers: number;
  /** Training steps of the induction model; 0 leaves it out. */
  steps: number;
  out: string;
}

export interface DemoIo {
  log: (line: string) => void;
  progress: (done: number, total: number, what: string) => void;
  write: (file: string, text: string) => void;
}

/** Why `text` cannot be the demo's input, or undefined when it can. */
export function textProblem(text: string): string | undefined {
  const n = tokenize(text).length;
  if (n < 2) return `--text needs at least two tokens, got ${n}`;
  if (n > MAX_TOKENS) return `--text has ${n} tokens; the demo takes at most ${MAX_TOKENS}`;
  return undefined;
}

export async function runDemo(
  options: DemoOptions,
  io: DemoIo,
): Promise<{ mechanisms: MechanismReport[]; induction?: InductionReport }> {
  const problem = textProblem(options.text);
  if (problem) throw new Error(problem);
  await init();
  const tokens = tokenize(options.text);
  const N = tokens.length;
  const H = options.heads;
  const L = options.layers;
  const E = H * 16;
  const total = L + 8 + (options.steps > 0 ? 1 : 0);
  let done = 0;
  const step = (what: string): void => io.progress(++done, total, what);

  const { x, layers } = runLayers(tokens, E, H, L);
  for (let l = 0; l < L; l++) step(`layer ${l + 1}`);
  const mechanisms = runMechanisms(x, tokens, E, H);
  mechanisms.forEach((r) => step(r.name));
  const rollout = attentionRollout(layers, { headFusion: "mean", residual: true });
  step("rollout");
  const induction = options.steps > 0 ? trainInduction(options.steps) : undefined;
  if (induction) step("training");

  let maps = 0;
  const draw = (
    file: string,
    title: string,
    weights: Float32Array,
    labels: string[],
    visible?: (row: number, col: number) => boolean,
  ): Figure => {
    io.write(`${file}.svg`, renderDemoHeatmap({ weights, tokens: labels, title, visible }));
    maps++;
    return { file: `${file}.svg`, title };
  };
  const sections: Section[] = [];
  if (induction) {
    const n = induction.tokens.length;
    const causal = (row: number, col: number): boolean => col <= row;
    const figures: Figure[] = [];
    // Per head, the untrained map and the trained one side by side.
    for (let l = 0; l < induction.layers; l++) {
      for (let h = 0; h < induction.heads; h++) {
        for (const [state, weights] of [
          ["untrained", induction.untrained],
          ["trained", induction.trained],
        ] as const) {
          const title = `induction model, ${state}: layer ${l + 1}, head ${h + 1}`;
          const file = `induction-${state}-layer-${l + 1}-head-${h + 1}`;
          figures.push(draw(file, title, headWeights(weights[l], h, n), induction.tokens, causal));
        }
      }
    }
    sections.push({
      heading: "Trained: induction heads",
      text: describeInduction(induction),
      figures,
      columns: 2,
    });
  }
  sections.push({
    heading: "Every mechanism on your text",
    text: [`Head 1 of each mechanism on the representation after ${L} untrained layers.`],
    figures: mechanisms.map((r) => draw(r.file, `${r.name}, head 1`, r.weights, tokens, r.visible)),
  });
  const stack: Figure[] = [];
  layers.forEach((layer, l) => {
    for (let h = 0; h < H; h++) {
      const title = `multi-head attention, untrained: layer ${l + 1}, head ${h + 1}`;
      stack.push(
        draw(`multi-head-layer-${l + 1}-head-${h + 1}`, title, headWeights(layer, h, N), tokens),
      );
    }
  });
  stack.push(draw("attention-rollout", `attention rollout over ${L} layers`, rollout.data, tokens));
  sections.push({
    heading: "Untrained multi-head attention on your text",
    text: ["Seeded random weights have learnt nothing: these heads stay close to uniform (pale)."],
    figures: stack,
  });

  const intro = [
    `${N} tokens, ${L} layers of ${H} heads (E = ${E})` +
      (N > MAX_DRAWN_TOKENS ? `; maps draw the first ${MAX_DRAWN_TOKENS}` : ""),
  ];
  const table = mechanismTable(mechanisms);
  io.write("index.html", reportHtml([...intro, tokens.join(" ")], table, sections));
  intro.forEach((line) => io.log(line));
  io.log("");
  table.forEach((line) => io.log(line));
  if (induction) {
    io.log("");
    describeInduction(induction).forEach((line) => io.log(line));
  }
  io.log(`\nwrote ${maps} heatmaps and index.html to ${options.out}`);
  io.log(`open ${options.out}/index.html in a browser to see them`);
  return { mechanisms, induction };
}
