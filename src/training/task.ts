// The tasks, as batches of input tokens and per-position targets (−1: no target at that position).
//
// reverse: `length` tokens drawn uniformly from the vocabulary; the target at position i is the
// token at position length − 1 − i. One bidirectional layer learns it: each position attends to its
// mirror position and copies the token found there.
//
// recall ("copy the token that follows a marker"): tokens drawn from all but the last id, which is
// the marker, placed once at a random position p <= length − 3; every position after p + 1 must
// output the token at p + 1. With causal attention this takes two layers (an induction head): one
// lets the token after the marker see that the marker precedes it, the next retrieves that token.

import type { Random } from "./random.js";

export interface Batch {
  /** [batch · length] input tokens. */
  tokens: Int32Array;
  /** [batch · length] the target of each position, −1 for none. */
  targets: Int32Array;
  batch: number;
}

export function reverseBatch(random: Random, batch: number, length: number, vocab: number): Batch {
  const tokens = new Int32Array(batch * length);
  const targets = new Int32Array(batch * length);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < length; i++) tokens[b * length + i] = Math.floor(random() * vocab);
    for (let i = 0; i < length; i++) targets[b * length + i] = tokens[b * length + length - 1 - i];
  }
  return { tokens, targets, batch };
}

export function recallBatch(random: Random, batch: number, length: number, vocab: number): Batch {
  const tokens = new Int32Array(batch * length);
  const targets = new Int32Array(batch * length).fill(-1);
  const marker = vocab - 1;
  for (let b = 0; b < batch; b++) {
    const row = b * length;
    for (let i = 0; i < length; i++) tokens[row + i] = Math.floor(random() * marker);
    const p = Math.floor(random() * (length - 2));
    tokens[row + p] = marker;
    for (let i = p + 2; i < length; i++) targets[row + i] = tokens[row + p + 1];
  }
  return { tokens, targets, batch };
}

export const TASKS = { reverse: reverseBatch, recall: recallBatch } as const;
export type TaskName = keyof typeof TASKS;
