// Splitting kernel calls across the worker pool (src/threads.ts): attention by (batch, head), the
// GEMM by rows. Each thread gets its own scratch; outputs are disjoint, so results do not depend on
// the number of threads. Small calls stay on the calling thread: handing work to a worker costs
// tens of microseconds.

import { GEMM_MR } from "../assembly/shared.js";
import type { Call } from "./call.js";
import type { Task } from "./threads.js";

// Below this many multiply-adds a call runs on the calling thread alone.
const MIN_PARALLEL_WORK = 1 << 20;

function threadsFor(call: Call, work: number, units: number): number {
  const pool = call.kernels.pool;
  if (!pool || work < MIN_PARALLEL_WORK) return 1;
  return Math.max(1, Math.min(pool.size, units));
}

/** sdpaForward over (batch, head) pairs 0..heads−1 of the call described at `params`. */
export function attendHeads(
  call: Call,
  params: number,
  scratchBytes: number,
  heads: number,
  work: number,
): void {
  const threads = threadsFor(call, work, heads);
  const tasks: Task[] = [];
  for (let t = 0; t < threads; t++) {
    const begin = Math.floor((t * heads) / threads);
    const end = Math.floor(((t + 1) * heads) / threads);
    tasks.push({
      fn: "sdpaForward",
      args: [params, call.alloc(scratchBytes, "scratch"), begin, end],
    });
  }
  run(call, tasks);
}

/** attendHeads on the pool's workers, without blocking the calling thread. */
export async function attendHeadsAsync(
  call: Call,
  params: number,
  scratchBytes: number,
  heads: number,
): Promise<void> {
  const workers = call.kernels.pool?.workers ?? 0;
  const threads = Math.max(1, Math.min(workers, heads));
  const tasks: Task[] = [];
  for (let t = 0; t < threads; t++) {
    const begin = Math.floor((t * heads) / threads);
    const end = Math.floor(((t + 1) * heads) / threads);
    tasks.push({
      fn: "sdpaForward",
      args: [params, call.alloc(scratchBytes, "scratch"), begin, end],
    });
  }
  await runAsync(call, tasks);
}

/** y [m, n] (row stride ldy) = x [m, k] (row stride ldx) · Wᵀ + bias, W packed (gemm layout). */
export function gemmRows(
  call: Call,
  x: number,
  m: number,
  k: number,
  ldx: number,
  packed: number,
  n: number,
  bias: number,
  y: number,
  ldy: number,
): void {
  const scratchBytes = call.kernels.exports.gemmScratchBytes();
  const threads = threadsFor(call, m * n * k, Math.ceil(m / GEMM_MR));
  const tasks: Task[] = [];
  for (let t = 0; t < threads; t++) {
    // Row ranges in whole micro-tiles.
    const begin = Math.floor((t * m) / threads / GEMM_MR) * GEMM_MR;
    const end = t === threads - 1 ? m : Math.floor(((t + 1) * m) / threads / GEMM_MR) * GEMM_MR;
    if (end <= begin) continue;
    const scratch = call.alloc(scratchBytes, "gemm scratch");
    tasks.push({
      fn: "gemm",
      args: [
        x + begin * ldx * 4,
        end - begin,
        k,
        ldx,
        packed,
        n,
        bias,
        y + begin * ldy * 4,
        ldy,
        scratch,
      ],
    });
  }
  run(call, tasks);
}

/** gemmRows on the pool's workers, without blocking the calling thread. */
export async function gemmRowsAsync(
  call: Call,
  x: number,
  m: number,
  k: number,
  ldx: number,
  packed: number,
  n: number,
  bias: number,
  y: number,
  ldy: number,
): Promise<void> {
  const scratchBytes = call.kernels.exports.gemmScratchBytes();
  const threads = Math.max(1, Math.min(call.kernels.pool?.workers ?? 0, Math.ceil(m / GEMM_MR)));
  const tasks: Task[] = [];
  for (let t = 0; t < threads; t++) {
    const begin = Math.floor((t * m) / threads / GEMM_MR) * GEMM_MR;
    const end = t === threads - 1 ? m : Math.floor(((t + 1) * m) / threads / GEMM_MR) * GEMM_MR;
    if (end <= begin) continue;
    const scratch = call.alloc(scratchBytes, "gemm scratch");
    tasks.push({
      fn: "gemm",
      args: [
        x + begin * ldx * 4,
        end - begin,
        k,
        ldx,
        packed,
        n,
        bias,
        y + begin * ldy * 4,
        ldy,
        scratch,
      ],
    });
  }
  await runAsync(call, tasks);
}

/** Runs tasks on the workers (the calling thread when there are none). */
export function runAsync(call: Call, tasks: Task[]): Promise<void> {
  const pool = call.kernels.pool;
  if (pool) return pool.runAllAsync(call.op, tasks);
  run(call, tasks);
  return Promise.resolve();
}

function run(call: Call, tasks: Task[]): void {
  const pool = call.kernels.pool;
  if (pool) pool.runAll(call.op, tasks);
  else {
    const table = call.kernels.exports as unknown as Record<string, (...args: number[]) => unknown>;
    for (const task of tasks) table[task.fn](...task.args);
  }
}
