// `npm run train [-- --task recall|reverse --steps n --seed s --layers l]`: trains the model of
// src/training/model.ts in Node, printing the training loss as it falls, then the held-out accuracy and the wall
// time. Bundled and run by train.mjs.

import { init, runtimeInfo } from "../../src/index";
import { modelConfig, train, type TrainOptions } from "../../src/training/trainer.js";
import { TASKS, type TaskName } from "../../src/training/task.js";

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function integerFlag(name: string): number | undefined {
  const value = flag(name);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
}

const task = flag("task") ?? "recall";
if (!(task in TASKS)) throw new Error(`--task must be one of ${Object.keys(TASKS).join(", ")}`);
const options: TrainOptions = {
  task: task as TaskName,
  steps: integerFlag("steps"),
  seed: integerFlag("seed"),
  layers: integerFlag("layers"),
  onLog: ({ step, loss, milliseconds }) =>
    console.log(
      `step ${String(step).padStart(5)}  loss ${loss.toFixed(4)}  ${(milliseconds / 1000).toFixed(1)} s`,
    ),
};

await init();
const c = modelConfig(options);
console.log(
  `${task}: ${c.length} tokens, vocabulary ${c.vocab}; ${c.layers} ${c.causal ? "causal" : "bidirectional"} ` +
    `attention layer(s), E = ${c.embedDim}, ${c.numHeads} heads; seed ${c.seed}; ${runtimeInfo().build} build`,
);
const report = train(options);
console.log(
  `held-out: ${(report.accuracy * 100).toFixed(1)}% of targets, ` +
    `${(report.sequenceAccuracy * 100).toFixed(1)}% of sequences entirely right, ` +
    `loss ${report.evalLoss.toFixed(4)}; ${report.steps} steps in ${(report.milliseconds / 1000).toFixed(1)} s`,
);
