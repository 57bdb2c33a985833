// Splitting kernel calls across the worker pool (src/runtime/threads.ts): attention by (batch, head), the
// GEMM by rows. Each thread gets its own scratch; outputs are disjoint, so results do not depend on
// the number of threads. (Attention with too few heads is split by keys instead, src/engine/key-split.ts;
// its merge makes results depend on the thread count to float rounding.) Small synchronous calls
// stay on the calling thread: handing work to a worker costs tens of microseconds. Asynchronous
// calls give everything to the workers.

import { GEMM_MR } from "../../assembly/shared.js";
import type { Call } from "./call.js";
import { canBlock, type Task } from "./threads.js";

// Below this many multiply-adds a synchronous call runs on the calling thread alone.
const MIN_PARALLEL_WORK = 1 << 20;

/** Threads for a synchronous call: the pool when the work is worth it. */
function syncThreads(call: Call, work: number, units: number): number {
  const pool = call.kernels.pool;
  if (!pool || work < MIN_PARALLEL_WORK) return 1;
  return Math.max(1, Math.min(pool.size, units));
}

/** Threads for an asynchronous call: the workers (the calling thread only without a pool). */
function asyncThreads(call: Call, units: number): number {
  return Math.max(1, Math.min(call.kernels.pool?.workers ?? 0, units));
}

/**
 * Threads a synchronous key split may use: the pool's live threads when the work is worth it and
 * this thread may block. Elsewhere (a browser's main thread, a failed pool) runAll computes every
 * task on the calling thread, where a split would only add its merge.
 */
export function keySplitThreads(call: Call, work: number): number {
  const pool = call.kernels.pool;
  if (!pool || work < MIN_PARALLEL_WORK || !canBlock()) return 1;
  return 1 + pool.workers;
}

/** Threads an asynchronous key split may use: the workers (the calling thread never computes). */
export function keySplitThreadsAsync(call: Call): number {
  return call.kernels.pool?.workers ?? 0;
}

// sdpaForward over heads 0..heads−1 in `threads` contiguous ranges.
function headTasks(
  call: Call,
  params: number,
  scratchBytes: number,
  heads: number,
  threads: number,
): Task[] {
  const tasks: Task[] = [];
  for (let t = 0; t < threads; t++) {
    const begin = Math.floor((t * heads) / threads);
    const end = Math.floor(((t + 1) * heads) / threads);
    tasks.push({
      fn: "sdpaForward",
      args: [params, call.alloc(scratchBytes, "scratch"), begin, end],
    });
  }
  return tasks;
}

/** sdpaForward over (batch, head) pairs 0..heads−1 of the call described at `params`. */
export function attendHeads(
  call: Call,
  params: number,
  scratchBytes: number,
  heads: number,
  work: number,
): void {
  run(call, headTasks(call, params, scratchBytes, heads, syncThreads(call, work, heads)));
}

/** attendHeads on the pool's workers, without blocking the calling thread. */
export async function attendHeadsAsync(
  call: Call,
  params: number,
  scratchBytes: number,
  heads: number,
): Promise<void> {
  await runAsync(call, headTasks(call, params, scratchBytes, heads, asyncThreads(call, heads)));
}

/** The rows and depth of a GEMM: y [m, n] (row stride ldy) = x [m, k] (row stride ldx) · Wᵀ + bias. */
export interface GemmCall {
  x: number;
  m: number;
  k: number;
  ldx: number;
  packed: number;
  n: number;
  bias: number;
  y: number;
  ldy: number;
}

// The GEMM in `threads` row ranges of whole micro-tiles.
function gemmTasks(call: Call, g: GemmCall, threads: number): Task[] {
  const scratchBytes = call.kernels.exports.gemmScratchBytes();
  const tasks: Task[] = [];
  for (let t = 0; t < threads; t++) {
    const begin = Math.floor((t * g.m) / threads / GEMM_MR) * GEMM_MR;
    const end = t === threads - 1 ? g.m : Math.floor(((t + 1) * g.m) / threads / GEMM_MR) * GEMM_MR;
    if (end <= begin) continue;
    const scratch = call.alloc(scratchBytes, "gemm scratch");
    const x = g.x + begin * g.ldx * 4;
    const y = g.y + begin * g.ldy * 4;
    tasks.push({
      fn: "gemm",
      args: [x, end - begin, g.k, g.ldx, g.packed, g.n, g.bias, y, g.ldy, scratch],
    });
  }
  return tasks;
}

/** A GEMM (W packed in the gemm layout), split by rows across the pool when worth it. */
export function gemmRows(call: Call, g: GemmCall): void {
  run(call, gemmTasks(call, g, syncThreads(call, g.m * g.n * g.k, Math.ceil(g.m / GEMM_MR))));
}

/** gemmRows on the pool's workers, without blocking the calling thread. */
export async function gemmRowsAsync(call: Call, g: GemmCall): Promise<void> {
  await runAsync(call, gemmTasks(call, g, asyncThreads(call, Math.ceil(g.m / GEMM_MR))));
}

/** Work that splits into at most `units` parts; `tasks(threads)` makes one task per thread. */
export interface SplitCall {
  units: number;
  work: number; // multiply-adds, for the synchronous threshold
  tasks: (threads: number) => Task[];
}

/** A SplitCall across the pool when worth it. */
export function runSplit(call: Call, s: SplitCall): void {
  run(call, s.tasks(syncThreads(call, s.work, s.units)));
}

/** runSplit on the pool's workers, without blocking the calling thread. */
export async function runSplitAsync(call: Call, s: SplitCall): Promise<void> {
  await runAsync(call, s.tasks(asyncThreads(call, s.units)));
}

/**
 * Runs tasks on the workers (on the calling thread when there are none). Always settles, and never
 * throws: no task resolves at once, a failure rejects.
 */
export async function runAsync(call: Call, tasks: Task[]): Promise<void> {
  const pool = call.kernels.pool;
  if (pool) await pool.runAllAsync(call.op, tasks);
  else run(call, tasks);
}

/** Runs tasks on the calling thread and the pool, and returns when all are done. */
export function run(call: Call, tasks: Task[]): void {
  const pool = call.kernels.pool;
  if (pool) pool.runAll(call.op, tasks);
  else {
    const table = call.kernels.exports as unknown as Record<string, (...args: number[]) => unknown>;
    for (const task of tasks) table[task.fn](...task.args);
  }
}
