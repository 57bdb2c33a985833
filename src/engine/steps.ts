// One body for an op and its …Async twin: the body is a generator that yields its heavy steps (a
// GEMM, an attention call, other kernels split across threads) and does the light work (staging,
// small kernels) in between. runSteps runs each step on the calling thread and the pool, blocking
// where allowed; runStepsAsync awaits each on the workers, so the calling thread never blocks.

import { type Call, withCall, withCallAsync } from "../runtime/call.js";
import type { Kernels } from "../runtime/runtime.js";
import {
  gemmRows,
  gemmRowsAsync,
  runSplit,
  runSplitAsync,
  type GemmCall,
  type SplitCall,
} from "../runtime/parallel.js";
import { runAttention, runAttentionAsync } from "./run.js";
import { type AttentionOperands } from "./params.js";
import { type AttentionPlan } from "./plan.js";

/** An attention call; `result` is filled in once it has run. */
export interface AttentionStep {
  gemm?: undefined;
  split?: undefined;
  plan: AttentionPlan;
  operands: AttentionOperands;
  result?: { weights?: Float32Array; lse?: Float32Array };
}

export type Step =
  | { gemm: GemmCall; split?: undefined; plan?: undefined }
  | { split: SplitCall; gemm?: undefined; plan?: undefined }
  | AttentionStep;

/** The body of an op: yields its steps, returns its result. */
export type Steps<T> = Generator<Step, T, void>;

export function runSteps<T>(call: Call, steps: Steps<T>): T {
  for (let s = steps.next(); ; s = steps.next()) {
    if (s.done) return s.value;
    const step = s.value;
    if (step.gemm) gemmRows(call, step.gemm);
    else if (step.split) runSplit(call, step.split);
    else step.result = runAttention(call, step.plan, step.operands);
  }
}

export async function runStepsAsync<T>(call: Call, steps: Steps<T>): Promise<T> {
  for (let s = steps.next(); ; s = steps.next()) {
    if (s.done) return s.value;
    const step = s.value;
    if (step.gemm) await gemmRowsAsync(call, step.gemm);
    else if (step.split) await runSplitAsync(call, step.split);
    else step.result = await runAttentionAsync(call, step.plan, step.operands);
  }
}

/** A checked and planned op: the workspace bytes it needs and its body. */
export interface Planned<T> {
  bytes: (kernels: Kernels) => number;
  steps: (call: Call) => Steps<T>;
}

/** Runs a planned op in a call of its own. */
export function runPlanned<T>(op: string, plan: Planned<T>): T {
  return withCall(op, plan.bytes, (call) => runSteps(call, plan.steps(call)));
}

/** runPlanned without blocking the calling thread. */
export function runPlannedAsync<T>(op: string, plan: Planned<T>): Promise<T> {
  return withCallAsync(op, plan.bytes, (call) => runStepsAsync(call, plan.steps(call)));
}
