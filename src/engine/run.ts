// Running a planned attention call: the workspace it needs, then the kernel on the calling thread or
// the pool, split by (batch, head) or by keys (key-split.ts), sync or async.

import * as P from "../../assembly/shared.js";
import { type Call, stagedBytes } from "../runtime/call.js";
import { keyRanges, keySplitBytes, keySplitTasks } from "./key-split.js";
import {
  attendHeads,
  attendHeadsAsync,
  keySplitThreads,
  keySplitThreadsAsync,
  run,
  runAsync,
} from "../runtime/parallel.js";
import { type Kernels } from "../runtime/runtime.js";
import { Workspace } from "../runtime/workspace.js";
import { type AttentionPlan } from "./plan.js";
import { type AttentionOperands, setUpAttention } from "./params.js";

// The weights and lse of a call with no query row: empty.
export function emptyResults(p: AttentionPlan): { weights?: Float32Array; lse?: Float32Array } {
  return {
    weights: p.returnWeights ? new Float32Array(0) : undefined,
    lse: p.returnLse ? new Float32Array(0) : undefined,
  };
}

/**
 * Workspace bytes runAttention takes beyond its operands: mask, outputs, flags, scratch and the
 * buffers of a key split.
 */
export function attentionBytes(kernels: Kernels, p: AttentionPlan): number {
  // A call without query rows runs no kernel (runAttention) and stages nothing.
  if (p.B * p.H * p.Nq === 0) return 0;
  const block = Workspace.blockSize;
  let bytes = 0;
  if (p.mask) bytes += stagedBytes(p.mask.tensor, kernels);
  if (p.returnWeights) bytes += block(p.B * p.H * p.Nq * p.Nk * 4);
  if (p.returnLse) bytes += block(p.B * p.H * p.Nq * 4);
  if (p.alibi) bytes += block(p.H * 4);
  if (p.globalKeys) bytes += block(p.Nk) + block(p.Nq);
  const threads = kernels.pool?.size ?? 1;
  bytes += keySplitBytes(kernels, p);
  return bytes + threads * block(kernels.exports.sdpaScratchBytes(p.D, p.Dv, p.Nk));
}

/**
 * Runs the attention kernel (assembly/sdpa.ts) for a validated plan on operands already in WASM
 * memory: the one attention implementation every op uses. The pool splits the call by (batch, head),
 * or by keys when there are too few heads (src/engine/key-split.ts). Returns the weights [B,H,Nq,Nk] and
 * lse [B,H,Nq] when the plan asks for them.
 */
export function runAttention(
  call: Call,
  p: AttentionPlan,
  operands: AttentionOperands,
): { weights?: Float32Array; lse?: Float32Array } {
  // No query row: nothing to compute, and nothing for the kernel to divide or loop by.
  if (p.B * p.H * p.Nq === 0) return emptyResults(p);
  const { params } = call.kernels;
  const done = setUpAttention(call, p, operands, params);
  const work = p.B * p.H * p.Nq * p.Nk * (p.D + p.Dv);
  const ranges = keyRanges(p, operands.layout !== undefined, keySplitThreads(call, work));
  if (ranges) {
    const split = keySplitTasks(call, p, done, ranges, operands.out);
    run(call, split.tasks);
    split.merge();
  } else attendHeads(call, params, done.scratchBytes, p.B * p.H, work);
  return done.results();
}

/**
 * runAttention that never blocks the calling thread: the heads (or key ranges) are computed by the
 * pool's workers (on the calling thread only when there is no pool). The call has its own parameter
 * block, so other calls may run meanwhile.
 */
export async function runAttentionAsync(
  call: Call,
  p: AttentionPlan,
  operands: AttentionOperands,
): Promise<{ weights?: Float32Array; lse?: Float32Array }> {
  if (p.B * p.H * p.Nq === 0) return emptyResults(p);
  const params = call.alloc(P.SDPA_PARAMS_BYTES, "parameters");
  const done = setUpAttention(call, p, operands, params);
  const ranges = keyRanges(p, operands.layout !== undefined, keySplitThreadsAsync(call));
  if (ranges) {
    const split = keySplitTasks(call, p, done, ranges, operands.out);
    await runAsync(call, split.tasks);
    split.merge();
  } else await attendHeadsAsync(call, params, done.scratchBytes, p.B * p.H);
  return done.results();
}
