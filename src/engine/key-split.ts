// Key splits (Flash-Decoding): an attention call with fewer (batch, head) pairs than the pool can
// balance — a decode step of one head, or three heads on two threads — is split along the keys
// instead. Each thread runs the unchanged kernel (sdpaForward over every head) on one contiguous
// range of keys with a parameter block of its own, writing a normalised output and a log-sum-exp
// per row into temporary buffers; src/engine/lse-merge.ts then combines the ranges. Results equal the
// unsplit call's to float rounding (the merge reorders the sums), not bit for bit.

import * as P from "../../assembly/shared.js";
import type { Call } from "../runtime/call.js";
import { mergeSplits } from "./lse-merge.js";
import type { Kernels } from "../runtime/runtime.js";
import { type AttentionPlan } from "./plan.js";
import {
  type AttentionSetUp,
  contiguousOperand,
  type Operand,
  PARAM_FIELDS as F,
  ParamBlock,
} from "./params.js";
import type { Task } from "../runtime/threads.js";
import { Workspace } from "../runtime/workspace.js";

// Fewest key tiles a range gets: a range costs a task hand-off (tens of microseconds) and its own
// pass of the merge, which a few hundred keys per head no longer pay for.
export const MIN_SPLIT_TILES = 4;

/** Keys start..end−1 of one range (start a multiple of KEY_TILE). */
export interface KeyRange {
  start: number;
  end: number;
}

/**
 * The key ranges to split an attention call into on `threads` threads, or undefined to split it by
 * head as usual. Keys split when the (batch, head) pairs are fewer than 2·threads and not a
 * multiple of `threads`: the head split then gives some thread one head more than the average (or
 * leaves threads idle), losing up to half of the pool, while from 2·threads pairs on it loses at
 * most a third and needs no merge. Never with returned weights, a block-sparse layout (`layout`) or
 * dropout, which the kernel indexes by absolute key. Only the keys some row can see (the causal/window band)
 * are split, in ranges of about equal (row, key) pairs, aligned to the kernel's KEY_TILE.
 */
export function keyRanges(
  p: AttentionPlan,
  layout: boolean,
  threads: number,
): KeyRange[] | undefined {
  const heads = p.B * p.H;
  if (threads < 2 || p.returnWeights || layout || p.dropout) return undefined;
  if (heads >= 2 * threads || heads % threads === 0) return undefined;
  const span = visibleKeys(p);
  if (!span) return undefined;
  const firstTile = Math.floor(span.first / P.KEY_TILE);
  const tiles = Math.floor(span.last / P.KEY_TILE) + 1 - firstTile;
  const splits = Math.min(threads, Math.floor(tiles / MIN_SPLIT_TILES));
  if (splits < 2) return undefined;

  // Work per tile: the rows that see its middle key (within the band) times its keys.
  const work: number[] = [];
  let total = 0;
  for (let t = 0; t < tiles; t++) {
    const start = (firstTile + t) * P.KEY_TILE;
    const end = Math.min(p.Nk, start + P.KEY_TILE);
    const middle = Math.min(span.last, Math.max(span.first, (start + end - 1) >> 1));
    const w = Math.max(1, rowsSeeing(p, middle)) * (end - start);
    work.push(w);
    total += w;
  }
  // Range s ends at the first tile where the running work reaches s/splits of the total, leaving
  // every later range at least one tile.
  const ranges: KeyRange[] = [];
  let tile = 0;
  let done = 0;
  for (let s = 1; s <= splits; s++) {
    const begin = tile;
    if (s === splits) tile = tiles;
    else {
      const goal = (total * s) / splits;
      do done += work[tile++];
      while (done < goal && tile < tiles - (splits - s));
    }
    const start = (firstTile + begin) * P.KEY_TILE;
    ranges.push({ start, end: Math.min(p.Nk, (firstTile + tile) * P.KEY_TILE) });
  }
  return ranges;
}

// Keys first..last that some query row may see: the band's, all of them without a band or with
// global tokens (global keys and rows lie outside it). Keys outside are masked for every row and
// contribute nothing, so the ranges need not cover them. Undefined when no row sees any key.
function visibleKeys(p: AttentionPlan): { first: number; last: number } | undefined {
  let first = 0;
  let last = p.Nk - 1;
  if (p.structured && !p.globalKeys) {
    first = Math.max(first, p.diagOffset - p.windowLeft);
    last = Math.min(last, p.Nq - 1 + p.diagOffset + p.windowRight);
  }
  return first <= last ? { first, last } : undefined;
}

// Query rows whose band holds key j: i + offset − left <= j <= i + offset + right.
function rowsSeeing(p: AttentionPlan, j: number): number {
  if (!p.structured || p.globalKeys) return p.Nq;
  const first = Math.max(0, j - p.diagOffset - p.windowRight);
  const last = Math.min(p.Nq - 1, j - p.diagOffset + p.windowLeft);
  return Math.max(0, last - first + 1);
}

/** Workspace bytes a key split may take: room for one range per thread of the pool. */
export function keySplitBytes(kernels: Kernels, p: AttentionPlan): number {
  const threads = kernels.pool?.size ?? 1;
  if (threads < 2 || p.returnWeights || p.dropout || p.B * p.H >= 2 * threads) return 0;
  const block = Workspace.blockSize;
  const rows = p.B * p.H * p.Nq;
  return (
    block(threads * rows * p.Dv * 4) +
    block(threads * rows * 4) +
    threads * block(P.SDPA_PARAMS_BYTES)
  );
}

/**
 * The kernel calls of a key split of the call whose parameter block setUpAttention filled (`setUp`):
 * one block per range, copied from it and patched. `merge`, once they have run, writes the merged
 * rows to `out` and, when the plan asks for it, their lse [B, H, Nq] where setUp says.
 */
export function keySplitTasks(
  call: Call,
  p: AttentionPlan,
  setUp: AttentionSetUp,
  ranges: readonly KeyRange[],
  out: Operand,
): { tasks: Task[]; merge(): void } {
  const { scratchBytes, lsePtr } = setUp;
  const splits = ranges.length;
  const rows = p.B * p.H * p.Nq;
  const outs = call.alloc(splits * rows * p.Dv * 4, "key split outputs");
  const lses = call.alloc(splits * rows * 4, "key split lse");
  const blocks = ranges.map(
    () => new ParamBlock(call, call.alloc(P.SDPA_PARAMS_BYTES, "key split parameters")),
  );
  const scratch = ranges.map(() => call.alloc(scratchBytes, "scratch"));
  const whole = setUp.block;
  const maskBytes = whole.get(F.maskKind) === P.MASK_ADDITIVE ? 4 : 1;
  ranges.forEach(({ start, end }, s) => {
    const block = blocks[s];
    block.copyFrom(whole);
    // Everything indexed by key moves to the range's first key; what is indexed by query row (q,
    // the global rows) stays. The diagonal moves the other way, so that i + offset − j, which
    // causal, window and ALiBi use, is unchanged.
    block.set(F.k, whole.get(F.k) + start * whole.get(F.kStrideRow) * 4);
    block.set(F.v, whole.get(F.v) + start * whole.get(F.vStrideRow) * 4);
    if (whole.get(F.mask)) {
      block.set(F.mask, whole.get(F.mask) + start * whole.get(F.maskStrideK) * maskBytes);
    }
    if (whole.get(F.keyMask)) block.set(F.keyMask, whole.get(F.keyMask) + start);
    if (whole.get(F.globalKeys)) block.set(F.globalKeys, whole.get(F.globalKeys) + start);
    block.set(F.Nk, end - start);
    block.set(F.diagOffset, whole.get(F.diagOffset) - start);
    block.setOperand("out", contiguousOperand(outs + s * rows * p.Dv * 4, p.H, p.Nq, p.Dv));
    block.set(F.lse, lses + s * rows * 4);
    block.set(F.weights, 0);
  });
  const tasks = ranges.map((_, s): Task => ({
    fn: "sdpaForward",
    args: [blocks[s].ptr, scratch[s], 0, p.B * p.H],
  }));
  const merge = (): void =>
    mergeSplits(
      call.workspace.f32,
      { out: outs >>> 2, lse: lses >>> 2, splits, rows, dv: p.Dv },
      {
        out: out.ptr >>> 2,
        strideB: out.strideB,
        strideH: out.strideH,
        strideRow: out.strideRow,
        H: p.H,
        Nq: p.Nq,
        lse: lsePtr ? lsePtr >>> 2 : undefined,
      },
    );
  return { tasks, merge };
}
