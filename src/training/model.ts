// A tiny attention model: token embedding + position embedding → `layers` MultiHeadAttention
// layers, each with a residual connection (h ← h + attention(h)) → a linear readout to logits over
// the vocabulary, trained with softmax cross-entropy. The attention layers and the readout run on
// the package's kernels (forward/backward, linear/linearBackward); the embeddings and the loss are
// plain TypeScript.

import {
  MultiHeadAttention,
  linear,
  linearBackward,
  type MhaParameters,
  type MhaSaved,
  type Tensor,
} from "../index.js";
import type { Batch } from "./task.js";
import { seeded, uniformArray } from "./random.js";

export interface ModelConfig {
  vocab: number;
  /** Sequence length (the position embedding has one row per position). */
  length: number;
  embedDim: number;
  numHeads: number;
  layers: number;
  /** Causal self-attention (each position sees only itself and earlier ones). */
  causal: boolean;
  /** Seed of the initialisation. */
  seed: number;
}

// The order of a layer's arrays in parameters() and gradients.
const LAYER_ARRAYS = ["wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"] as const;

function layerArrays(p: MhaParameters): Float32Array[] {
  return LAYER_ARRAYS.flatMap((name) => (p[name] ? [p[name]] : []));
}

export class AttentionModel {
  readonly config: ModelConfig;
  readonly #tokenEmbedding: Float32Array; // [vocab, E]
  readonly #positionEmbedding: Float32Array; // [length, E]
  readonly #layers: MultiHeadAttention[];
  // JavaScript copies of the layers' weights: the optimiser updates these in place and sync()
  // hands them to the layers (whose own weights live in WASM memory).
  readonly #layerWeights: MhaParameters[];
  readonly #readoutWeight: Float32Array; // [vocab, E]
  readonly #readoutBias: Float32Array; // [vocab]

  constructor(config: ModelConfig) {
    this.config = config;
    const { vocab, length, embedDim: E, numHeads, layers, seed } = config;
    const random = seeded(seed);
    this.#tokenEmbedding = uniformArray(random, vocab * E, 1);
    this.#positionEmbedding = uniformArray(random, length * E, 1);
    this.#layers = [];
    try {
      for (let l = 0; l < layers; l++)
        this.#layers.push(new MultiHeadAttention({ embedDim: E, numHeads, seed: seed + 1 + l }));
    } catch (err) {
      this.dispose();
      throw err;
    }
    this.#layerWeights = this.#layers.map((layer) => layer.getWeights());
    this.#readoutWeight = uniformArray(random, vocab * E, 1 / Math.sqrt(E));
    this.#readoutBias = new Float32Array(vocab);
  }

  /** Every trainable array, in the order of lossAndGradients()'s gradients. */
  parameters(): Float32Array[] {
    return [
      this.#tokenEmbedding,
      this.#positionEmbedding,
      ...this.#layerWeights.flatMap(layerArrays),
      this.#readoutWeight,
      this.#readoutBias,
    ];
  }

  /** Hands parameters changed in place (by the optimiser) to the attention layers. */
  sync(): void {
    this.#layers.forEach((layer, l) => layer.setWeights(this.#layerWeights[l]));
  }

  /** Mean cross-entropy over every position of the batch, and its gradients (see parameters()). */
  lossAndGradients(batch: Batch): { loss: number; gradients: Float32Array[] } {
    const { vocab, length: N, embedDim: E } = this.config;
    const rows = batch.batch * N;
    const { logits, last, saved } = this.#forward(batch, true);
    const { loss, gradLogits } = crossEntropy(logits, batch.targets, vocab);

    const readout = linearBackward({ data: last, shape: [rows, E] }, this.#readoutWeight, {
      data: gradLogits,
      shape: [rows, vocab],
    });
    // Back through the layers: h_{l+1} = h_l + attention_l(h_l), so dh_l = dh_{l+1} + dQuery.
    let grad = readout.dx.data;
    const layerGrads: Float32Array[][] = [];
    for (let l = this.#layers.length - 1; l >= 0; l--) {
      const g = this.#layers[l].backward({ data: grad, shape: [batch.batch, N, E] }, saved[l]);
      const next = grad.slice();
      for (let i = 0; i < next.length; i++) next[i] += g.dQuery.data[i];
      grad = next;
      layerGrads[l] = layerArrays(g.grads);
    }
    // The embeddings: each row of dh_0 goes to its token's and its position's row.
    const dToken = new Float32Array(this.#tokenEmbedding.length);
    const dPosition = new Float32Array(this.#positionEmbedding.length);
    for (let r = 0; r < rows; r++) {
      const token = batch.tokens[r];
      const position = r % N;
      for (let e = 0; e < E; e++) {
        dToken[token * E + e] += grad[r * E + e];
        dPosition[position * E + e] += grad[r * E + e];
      }
    }
    return {
      loss,
      gradients: [dToken, dPosition, ...layerGrads.flat(), readout.dw.data, readout.db.data],
    };
  }

  /**
   * Mean loss, the share of target positions predicted right, and of sequences with every target
   * position right.
   */
  evaluate(batch: Batch): { loss: number; accuracy: number; sequenceAccuracy: number } {
    const { vocab, length: N } = this.config;
    const { logits } = this.#forward(batch, false);
    let correct = 0;
    let counted = 0;
    let sequences = 0;
    for (let b = 0; b < batch.batch; b++) {
      let all = true;
      for (let i = 0; i < N; i++) {
        const r = b * N + i;
        if (batch.targets[r] < 0) continue;
        const ok = argmax(logits, r * vocab, vocab) === batch.targets[r];
        counted++;
        if (ok) correct++;
        all &&= ok;
      }
      if (all) sequences++;
    }
    return {
      loss: crossEntropy(logits, batch.targets, vocab).loss,
      accuracy: correct / counted,
      sequenceAccuracy: sequences / batch.batch,
    };
  }

  /** Each layer's attention weights [1, H, length, length] on one sequence of `length` tokens. */
  attentionWeights(tokens: Int32Array): Tensor[] {
    const { length } = this.config;
    if (tokens.length !== length) {
      throw new Error(`attentionWeights: needs ${length} tokens, got ${tokens.length}`);
    }
    const weights: Tensor[] = [];
    this.#forward({ tokens, targets: new Int32Array(length).fill(-1), batch: 1 }, false, weights);
    return weights;
  }

  /** Frees the attention layers' WASM memory. */
  dispose(): void {
    for (const layer of this.#layers) layer.dispose();
  }

  // Logits [batch·N, vocab], the last hidden state [batch·N, E] and, with `keep`, each layer's saved;
  // given `weights`, each layer's per-head attention weights [batch, H, N, N] are pushed onto it.
  #forward(
    batch: Batch,
    keep: boolean,
    weights?: Tensor[],
  ): { logits: Float32Array; last: Float32Array; saved: MhaSaved[] } {
    const { length: N, embedDim: E, causal } = this.config;
    const rows = batch.batch * N;
    let h = new Float32Array(rows * E);
    for (let r = 0; r < rows; r++) {
      const token = batch.tokens[r] * E;
      const position = (r % N) * E;
      for (let e = 0; e < E; e++)
        h[r * E + e] = this.#tokenEmbedding[token + e] + this.#positionEmbedding[position + e];
    }
    const saved: MhaSaved[] = [];
    for (const layer of this.#layers) {
      const x = { data: h, shape: [batch.batch, N, E] };
      const f = layer.forward(x, undefined, undefined, {
        causal,
        keepForBackward: keep,
        ...(weights ? { needWeights: true, averageWeights: false } : {}),
      });
      if (f.saved) saved.push(f.saved);
      if (weights && f.weights) weights.push(f.weights);
      const next = h.slice();
      for (let i = 0; i < next.length; i++) next[i] += f.output.data[i];
      h = next;
    }
    const logits = linear({ data: h, shape: [rows, E] }, this.#readoutWeight, this.#readoutBias);
    return { logits: logits.data, last: h, saved };
  }
}

/**
 * Mean softmax cross-entropy of rows of logits [rows, vocab] over the rows with a target (a target
 * of −1 means none), and its gradient.
 */
function crossEntropy(
  logits: Float32Array,
  targets: Int32Array,
  vocab: number,
): { loss: number; gradLogits: Float32Array } {
  const grad = new Float32Array(logits.length);
  let counted = 0;
  for (const t of targets) if (t >= 0) counted++;
  let loss = 0;
  for (let r = 0; r < targets.length; r++) {
    const target = targets[r];
    if (target < 0) continue;
    const at = r * vocab;
    let max = -Infinity;
    for (let c = 0; c < vocab; c++) max = Math.max(max, logits[at + c]);
    let sum = 0;
    for (let c = 0; c < vocab; c++) sum += Math.exp(logits[at + c] - max);
    const logSum = max + Math.log(sum);
    loss += logSum - logits[at + target];
    // d(mean loss)/d logit = (softmax − one-hot) / counted.
    for (let c = 0; c < vocab; c++) grad[at + c] = Math.exp(logits[at + c] - logSum) / counted;
    grad[at + target] -= 1 / counted;
  }
  return { loss: loss / counted, gradLogits: grad };
}

function argmax(x: Float32Array, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[from + i] > x[from + best]) best = i;
  return best;
}
