// The training run shared by the command line (examples/train, `npm run train`), the demo
// (src/cli/demo.ts, which shows the heads it learns), the browser page (examples/browser) and
// test/train.test.ts: a task (task.ts), the model (model.ts) and Adam (adam.ts), all seeded.
// Needs init() first.

import { Adam } from "./adam.js";
import { AttentionModel, type ModelConfig } from "./model.js";
import { seeded } from "./random.js";
import { TASKS, type TaskName } from "./task.js";
import type { Tensor } from "../index.js";

export interface TrainOptions extends Partial<ModelConfig> {
  /** Default "recall" (two causal layers); "reverse" defaults to one bidirectional layer. */
  task?: TaskName;
  /** Optimiser steps; default 600. */
  steps?: number;
  /** Sequences per step; default 32. */
  batch?: number;
  /** Adam's peak learning rate (decayed to 0 along a cosine); default 0.01. */
  learningRate?: number;
  /** Held-out sequences the accuracy is measured on; default 512. */
  evalSequences?: number;
  /** train() calls it every `logEvery` steps (and after the last) with the progress so far. */
  onLog?: (entry: LogEntry) => void;
  /** Default 100. */
  logEvery?: number;
  /**
   * A sequence of `length` tokens: the report then holds the attention weights of every layer on
   * it, before the first step and after the last.
   */
  probe?: Int32Array;
}

/** Per layer, the weights [1, H, length, length] of each head on the probe sequence. */
export interface ProbeAttention {
  untrained: Tensor[];
  trained: Tensor[];
}

export interface LogEntry {
  step: number;
  /** Mean training loss over the steps since the previous entry. */
  loss: number;
  milliseconds: number;
}

export interface TrainReport {
  task: TaskName;
  config: ModelConfig;
  steps: number;
  /** The training loss of every step (the batch's mean cross-entropy, before its update). */
  losses: number[];
  /** On the held-out sequences after training: mean loss, targets right, sequences all right. */
  evalLoss: number;
  accuracy: number;
  sequenceAccuracy: number;
  /** Wall time of the training steps and the evaluation. */
  milliseconds: number;
  /** With the `probe` option. */
  probeAttention?: ProbeAttention;
}

// Sequences of 12 tokens over a vocabulary of 16 (in recall, 15 tokens and the marker), E = 32 in
// 4 heads; each task's depth and masking is the smallest that can solve it.
const SHARED = { vocab: 16, length: 12, embedDim: 32, numHeads: 4, seed: 1 };
const TASK_DEFAULTS: Record<TaskName, ModelConfig> = {
  recall: { ...SHARED, layers: 2, causal: true },
  reverse: { ...SHARED, layers: 1, causal: false },
};

/** The model configuration of a run: the task's defaults, overridden by `options`. */
export function modelConfig(options: TrainOptions = {}): ModelConfig {
  const defaults = TASK_DEFAULTS[options.task ?? "recall"];
  return {
    vocab: options.vocab ?? defaults.vocab,
    length: options.length ?? defaults.length,
    embedDim: options.embedDim ?? defaults.embedDim,
    numHeads: options.numHeads ?? defaults.numHeads,
    layers: options.layers ?? defaults.layers,
    causal: options.causal ?? defaults.causal,
    seed: options.seed ?? defaults.seed,
  };
}

/** A whole training run; returns its report. */
export function train(options: TrainOptions = {}): TrainReport {
  const run = training(options);
  for (;;) {
    const next = run.next();
    if (next.done) return next.value;
    options.onLog?.(next.value);
  }
}

/**
 * The training run as a generator: it yields a LogEntry every `logEvery` steps and after the last,
 * and returns the report, so a page can let the browser draw between entries.
 */
export function* training(options: TrainOptions = {}): Generator<LogEntry, TrainReport, void> {
  const task = options.task ?? "recall";
  const makeBatch = TASKS[task];
  const config = modelConfig(options);
  const steps = options.steps ?? 600;
  const batchSize = options.batch ?? 32;
  const logEvery = options.logEvery ?? 100;
  const learningRate = options.learningRate ?? 0.01;
  // Separate streams for the training batches and the held-out set, both from the seed.
  const data = seeded(config.seed * 2 + 1);
  const heldOut = makeBatch(
    seeded(config.seed * 2 + 2),
    options.evalSequences ?? 512,
    config.length,
    config.vocab,
  );
  const model = new AttentionModel(config);
  try {
    const untrained = options.probe && model.attentionWeights(options.probe);
    const adam = new Adam(model.parameters(), { learningRate });
    const losses: number[] = [];
    const t0 = performance.now();
    for (let step = 1; step <= steps; step++) {
      const batch = makeBatch(data, batchSize, config.length, config.vocab);
      const { loss, gradients } = model.lossAndGradients(batch);
      losses.push(loss);
      clipGlobalNorm(gradients, CLIP);
      // Cosine decay to zero over the run: large steps early, settling at the end.
      adam.step(gradients, learningRate * 0.5 * (1 + Math.cos((Math.PI * (step - 1)) / steps)));
      model.sync();
      if (step % logEvery === 0 || step === steps) {
        const recent = losses.slice(-(step % logEvery || logEvery));
        yield {
          step,
          loss: recent.reduce((a, b) => a + b, 0) / recent.length,
          milliseconds: performance.now() - t0,
        };
      }
    }
    const result = model.evaluate(heldOut);
    const probeAttention =
      options.probe && untrained
        ? { untrained, trained: model.attentionWeights(options.probe) }
        : undefined;
    return {
      task,
      config,
      steps,
      losses,
      evalLoss: result.loss,
      accuracy: result.accuracy,
      sequenceAccuracy: result.sequenceAccuracy,
      milliseconds: performance.now() - t0,
      ...(probeAttention ? { probeAttention } : {}),
    };
  } finally {
    model.dispose();
  }
}

// Gradients are scaled down to this global norm when above it: a model without normalisation
// layers can otherwise take one huge step and undo what it has learnt.
const CLIP = 1;

function clipGlobalNorm(gradients: Float32Array[], maxNorm: number): void {
  let sum = 0;
  for (const g of gradients) for (const x of g) sum += x * x;
  const norm = Math.sqrt(sum);
  if (norm <= maxNorm) return;
  const scale = maxNorm / norm;
  for (const g of gradients) for (let i = 0; i < g.length; i++) g[i] *= scale;
}
