// Flash-style forward pass of scaled dot-product attention (FlashAttention 2 loop order).
//
// For every (batch, head) and every block of QUERY_BLOCK query rows, the kernel walks the key tiles
// of KEY_TILE keys that the causal/window rules leave visible, and keeps an online softmax: a running
// row max m and row sum l, with the output accumulator rescaled by 2^(m_old − m_new) whenever the max
// grows. Nothing of size Nq·Nk is ever stored unless the caller asks for the weights.
//
// Units: Q is pre-scaled by scale·log2(e), so scores are in log2 units and the softmax uses 2^x.
// Additive masks and ALiBi biases are converted to log2 units when they are added.
//
// Layouts (all f32):
//   packed keys   [KEY_TILE/8][D][8]: the current key tile in panels of 8 keys, zero-padded past
//                 Nk. Packed (pack.ts) each time a query block visits the tile, so the
//                 working memory stays O(tile) even for a long KV cache.
//   packed query  [QUERY_BLOCK/4][D][4]: groups of 4 rows, the 4 rows' values of each d side by side.
//   scores        [QUERY_BLOCK/4][KEY_TILE][4]: per group, one v128 per key holding the group's 4 rows.
//                 This transposed layout makes row max and row sum plain vertical vector ops, and lets
//                 P·V broadcast a row's probability from the v128 it already holds.
//   accumulator   [QUERY_BLOCK][dvPad] row-major, dvPad = Dv rounded up to 4.
//
// Micro-kernels (register budget: V8 gives wasm about 15 xmm registers on x64):
//   Q·Kᵀ  4 rows × 8 keys: 8 accumulators + 1 query load + 2 key loads + broadcasts, loop over d.
//   P·V   4 rows × 8 value columns: 8 accumulators + 1 probability load + 2 value loads + broadcasts,
//         loop over the keys of the tile; a 4-column variant handles Dv mod 8 = 1..4.
//
// Tiles entirely outside the causal/window band are never visited; inside a visited tile each group of
// 4 rows only computes the 8-key panels its band touches.
//
// Masked scores become -Infinity and their probability exactly 0. When a tile of a group has masked
// entries, P·V skips keys with zero probability for all 4 rows and zeroes the products of the rows that
// masked a key, so NaN or Infinity stored in masked-out keys or values never reaches the output.

import {
  QUERY_BLOCK,
  KEY_TILE,
  KEY_PANEL,
  MASK_BOOL,
  MASK_ADDITIVE,
  SDPA_Q,
  SDPA_K,
  SDPA_V,
  SDPA_OUT,
  SDPA_WEIGHTS,
  SDPA_LSE,
  SDPA_MASK,
  SDPA_MASK_KIND,
  SDPA_MASK_STRIDE_B,
  SDPA_MASK_STRIDE_H,
  SDPA_MASK_STRIDE_Q,
  SDPA_MASK_STRIDE_K,
  SDPA_H,
  SDPA_HKV,
  SDPA_NQ,
  SDPA_NK,
  SDPA_D,
  SDPA_DV,
  SDPA_SCALE,
  SDPA_SOFTCAP,
  SDPA_ALIBI,
  SDPA_DIAG_OFFSET,
  SDPA_STRUCTURED,
  SDPA_WINDOW_LEFT,
  SDPA_WINDOW_RIGHT,
  SDPA_GLOBAL_KEYS,
  SDPA_GLOBAL_ROWS,
  SDPA_KEY_MASK,
  SDPA_KEY_MASK_STRIDE_B,
  SDPA_LAYOUT,
  SDPA_LAYOUT_BLOCK,
  SDPA_LAYOUT_STRIDE_H,
  SDPA_LAYOUT_COLS,
  SDPA_Q_STRIDE_B,
  SDPA_Q_STRIDE_H,
  SDPA_Q_STRIDE_ROW,
  SDPA_K_STRIDE_B,
  SDPA_K_STRIDE_H,
  SDPA_K_STRIDE_ROW,
  SDPA_V_STRIDE_B,
  SDPA_V_STRIDE_H,
  SDPA_V_STRIDE_ROW,
  SDPA_OUT_STRIDE_B,
  SDPA_OUT_STRIDE_H,
  SDPA_OUT_STRIDE_ROW,
} from "./shared";
import { exp2x4, tanhx4, LOG2E, LN2 } from "./exp";
import { madd } from "./madd";
import { scalarSdpaForward, scalarSdpaScratchBytes } from "./scalar-sdpa";
import { packPanels } from "./pack";
import {
  beginDropout,
  dropoutHead,
  dropoutOn,
  rowHashes,
  keepFactors,
  rowHash,
  keepFactorsOfKeys,
  keepFactor,
} from "./dropout";

const NEG_INF: f32 = -Infinity;
const GROUPS_PER_BLOCK: i32 = QUERY_BLOCK / 4;
// How far ahead of the current keys touchRows reads, and from which size of K and V on.
const PREFETCH_KEYS: i32 = 8;
const PREFETCH_MIN_BYTES: i64 = 8 << 20;
const SCORE_GROUP_BYTES: i32 = KEY_TILE * 16;
// 16 bytes of the worker's scratch to assemble a v128 from 4 scalars (lane indices must be
// constants). Not static memory: with threads, every worker needs its own.
let laneBuffer: usize = 0;

// ---- The current call, read once from the parameter block ----
// (Exported read-only for the backward pass, sdpa-backward.ts.)
let numHeads: i32 = 0;
let groupSize: i32 = 0;
export let nq: i32 = 0;
export let nk: i32 = 0;
export let headDim: i32 = 0;
export let valueDim: i32 = 0;
let accStride: i32 = 0; // floats per accumulator row (Dv rounded up to 4)
let diagOffset: i32 = 0;
let structured: bool = false;
let windowLeft: i32 = 0;
let windowRight: i32 = 0;
export let softcap2: f32 = 0; // softcap in log2 units, 0 = none
export let maskKind: i32 = 0;
let maskStrideQ: i32 = 0;
let maskStrideK: i32 = 0;
let globalKeys: usize = 0;
let globalRows: usize = 0;
export let numTiles: i32 = 0;
export let qRowStride: i32 = 0;
export let kRowBytes: i32 = 0;
export let vRowBytes: i32 = 0;
export let outRowStride: i32 = 0;

// ---- The current head ----
export let alibiSlope2: f32 = 0; // ALiBi slope in log2 units, 0 = none
export let qHead: usize = 0;
export let kHead: usize = 0;
export let vHead: usize = 0;
export let outHead: usize = 0;
let maskHead: usize = 0;
let singleRow: bool = false; // the current query block has one row
let prefetch: bool = false; // K and V are too large for the caches: touch ahead (touchRows)
export let keyMaskHead: usize = 0; // uint8 [Nk] of the current batch, 1 = real key; 0 = none
// Block-sparse layout of the current head: uint8 [Nq/bs, Nk/bs], 1 = block kept; 0 = none.
let layoutHead: usize = 0;
let layoutBlock: i32 = 0;
let layoutCols: i32 = 0;
let weightsHead: usize = 0;
let lseHead: usize = 0;

// ---- Scratch layout ----
export let packedKeys: usize = 0;
export let packedQuery: usize = 0;
export let scores: usize = 0;
let accumulator: usize = 0;
export let rowMax: usize = 0;
export let rowSum: usize = 0;
let tileHasGlobal: usize = 0;

// ---- The current query block: key tiles in its causal/window band (findBandTiles) ----
let bandFirstTile: i32 = 0;
let bandLastTile: i32 = 0;

export function alignUp(x: usize, to: usize): usize {
  return (x + to - 1) & ~(to - 1);
}

// Lays the scratch regions out from `scratch`; returns the end address.
function layoutScratch(scratch: usize, d: i32, dv: i32, keys: i32): usize {
  packedKeys = scratch;
  packedQuery = alignUp(packedKeys + <usize>KEY_TILE * d * 4, 64);
  scores = alignUp(packedQuery + <usize>QUERY_BLOCK * d * 4, 64);
  accumulator = alignUp(scores + <usize>GROUPS_PER_BLOCK * SCORE_GROUP_BYTES, 64);
  rowMax = alignUp(accumulator + <usize>QUERY_BLOCK * alignUp(dv, 4) * 4, 64);
  rowSum = rowMax + QUERY_BLOCK * 4;
  tileHasGlobal = rowSum + QUERY_BLOCK * 4;
  laneBuffer = alignUp(tileHasGlobal + <usize>((keys + KEY_TILE - 1) / KEY_TILE), 16);
  return alignUp(laneBuffer + 16, 64);
}

/** Bytes of scratch memory sdpaForward needs for one worker. */
export function sdpaScratchBytes(d: i32, dv: i32, keys: i32): usize {
  if (!ASC_FEATURE_SIMD) return scalarSdpaScratchBytes(dv, keys);
  return layoutScratch(0, d, dv, keys);
}

/**
 * Runs attention for the (batch, head) pairs headBegin..headEnd-1 (index b·H + h) of the call
 * described by the parameter block at `params`, using `scratch` (sdpaScratchBytes) as working memory.
 */
export function sdpaForward(params: usize, scratch: usize, headBegin: i32, headEnd: i32): void {
  if (!ASC_FEATURE_SIMD) {
    scalarSdpaForward(params, scratch, headBegin, headEnd);
    return;
  }
  beginCall(params, scratch, headBegin, headEnd);
  const qScale = load<f32>(params + SDPA_SCALE) * LOG2E;
  for (let bh = headBegin; bh < headEnd; bh++) {
    beginHead(params, bh);
    for (let rowStart = 0; rowStart < nq; rowStart += QUERY_BLOCK) {
      queryBlock(rowStart, min(QUERY_BLOCK, nq - rowStart), qScale);
    }
  }
}

/**
 * Reads the call's parameter block into the kernel state and lays out the scratch from `scratch`
 * (also used by the backward pass, sdpa-backward.ts); returns the end of the scratch used.
 */
export function beginCall(params: usize, scratch: usize, headBegin: i32, headEnd: i32): usize {
  numHeads = load<i32>(params + SDPA_H);
  groupSize = numHeads / load<i32>(params + SDPA_HKV);
  nq = load<i32>(params + SDPA_NQ);
  nk = load<i32>(params + SDPA_NK);
  headDim = load<i32>(params + SDPA_D);
  valueDim = load<i32>(params + SDPA_DV);
  accStride = <i32>alignUp(valueDim, 4);
  diagOffset = load<i32>(params + SDPA_DIAG_OFFSET);
  structured = load<i32>(params + SDPA_STRUCTURED) != 0;
  windowLeft = load<i32>(params + SDPA_WINDOW_LEFT);
  windowRight = load<i32>(params + SDPA_WINDOW_RIGHT);
  softcap2 = load<f32>(params + SDPA_SOFTCAP) * LOG2E;
  const mask = load<usize>(params + SDPA_MASK);
  maskKind = mask ? load<i32>(params + SDPA_MASK_KIND) : 0;
  maskStrideQ = load<i32>(params + SDPA_MASK_STRIDE_Q);
  maskStrideK = load<i32>(params + SDPA_MASK_STRIDE_K);
  globalKeys = load<usize>(params + SDPA_GLOBAL_KEYS);
  globalRows = load<usize>(params + SDPA_GLOBAL_ROWS);
  qRowStride = load<i32>(params + SDPA_Q_STRIDE_ROW);
  kRowBytes = load<i32>(params + SDPA_K_STRIDE_ROW) * 4;
  vRowBytes = load<i32>(params + SDPA_V_STRIDE_ROW) * 4;
  outRowStride = load<i32>(params + SDPA_OUT_STRIDE_ROW);
  layoutBlock = load<i32>(params + SDPA_LAYOUT_BLOCK);
  layoutCols = load<i32>(params + SDPA_LAYOUT_COLS);
  beginDropout(params);

  const kvBytes: i64 = (<i64>(headEnd - headBegin) / groupSize) * nk * (headDim + valueDim) * 4;
  prefetch = kvBytes >= PREFETCH_MIN_BYTES;
  const end = layoutScratch(scratch, headDim, valueDim, nk);
  numTiles = (nk + KEY_TILE - 1) / KEY_TILE;
  markGlobalTiles();
  return end;
}

/** Points the kernel state at (batch, head) bh = b·H + h of the call at `params`. */
export function beginHead(params: usize, bh: i32): void {
  const b = bh / numHeads;
  const h = bh - b * numHeads;
  const kvH = h / groupSize;
  kHead =
    load<usize>(params + SDPA_K) +
    (<usize>b * load<i32>(params + SDPA_K_STRIDE_B) +
      <usize>kvH * load<i32>(params + SDPA_K_STRIDE_H)) *
      4;
  vHead =
    load<usize>(params + SDPA_V) +
    (<usize>b * load<i32>(params + SDPA_V_STRIDE_B) +
      <usize>kvH * load<i32>(params + SDPA_V_STRIDE_H)) *
      4;
  qHead =
    load<usize>(params + SDPA_Q) +
    (<usize>b * load<i32>(params + SDPA_Q_STRIDE_B) +
      <usize>h * load<i32>(params + SDPA_Q_STRIDE_H)) *
      4;
  outHead =
    load<usize>(params + SDPA_OUT) +
    (<usize>b * load<i32>(params + SDPA_OUT_STRIDE_B) +
      <usize>h * load<i32>(params + SDPA_OUT_STRIDE_H)) *
      4;
  const mask = load<usize>(params + SDPA_MASK);
  maskHead = mask
    ? mask +
      (<usize>b * load<i32>(params + SDPA_MASK_STRIDE_B) +
        <usize>h * load<i32>(params + SDPA_MASK_STRIDE_H)) *
        (maskKind == MASK_ADDITIVE ? 4 : 1)
    : 0;
  const keyMask = load<usize>(params + SDPA_KEY_MASK);
  keyMaskHead = keyMask ? keyMask + <usize>b * load<i32>(params + SDPA_KEY_MASK_STRIDE_B) : 0;
  const layout = load<usize>(params + SDPA_LAYOUT);
  layoutHead = layout ? layout + <usize>h * load<i32>(params + SDPA_LAYOUT_STRIDE_H) : 0;
  const weights = load<usize>(params + SDPA_WEIGHTS);
  weightsHead = weights ? weights + <usize>bh * nq * nk * 4 : 0;
  const lse = load<usize>(params + SDPA_LSE);
  lseHead = lse ? lse + <usize>bh * nq * 4 : 0;
  const alibi = load<usize>(params + SDPA_ALIBI);
  alibiSlope2 = alibi ? load<f32>(alibi + <usize>h * 4) * LOG2E : 0;
  if (dropoutOn) dropoutHead(bh);
}

function markGlobalTiles(): void {
  if (!globalKeys) return;
  for (let t = 0; t < numTiles; t++) {
    const end = min(nk, (t + 1) * KEY_TILE);
    let any: u8 = 0;
    for (let j = t * KEY_TILE; j < end; j++) any |= load<u8>(globalKeys + j);
    store<u8>(tileHasGlobal + t, any);
  }
}

function anyGlobalRow(first: i32, count: i32): bool {
  if (!globalRows) return false;
  for (let i = 0; i < count; i++) if (load<u8>(globalRows + first + i)) return true;
  return false;
}

function queryBlock(rowStart: i32, rows: i32, qScale: f32): void {
  const groups = (rows + 3) >> 2;
  // A block of one row (a decode step) reads keys in place instead of packing them.
  singleRow = rows == 1;
  if (singleRow) copyQueryRow(rowStart, qScale);
  else packQueries(qHead, qRowStride, rowStart, rows, headDim, qScale, packedQuery);
  for (let g = 0; g < groups; g++) {
    v128.store(rowMax + g * 16, f32x4.splat(NEG_INF));
    v128.store(rowSum + g * 16, f32x4.splat(0));
  }
  memory.fill(accumulator, 0, <usize>groups * 4 * accStride * 4);
  if (weightsHead) {
    fillF32(weightsHead + <usize>rowStart * nk * 4, <usize>rows * nk, NEG_INF);
  }

  findBandTiles(rowStart, rows);
  for (let t = 0; t < numTiles; t++) {
    if (!tileVisited(t, rowStart, rows)) continue;
    const keyStart = t * KEY_TILE;
    const keyEnd = min(nk, keyStart + KEY_TILE);
    if (!singleRow) {
      packPanels(
        kHead + <usize>keyStart * kRowBytes,
        kRowBytes,
        keyEnd - keyStart,
        headDim,
        packedKeys,
      );
    }
    const hasGlobalKey = tileHasGlobalKey(t);
    for (let g = 0; g < groups; g++) {
      const groupRow = rowStart + g * 4;
      groupTile(g, groupRow, min(4, nq - groupRow), keyStart, keyEnd, hasGlobalKey, attendRange);
    }
  }
  finishBlock(rowStart, rows);
}

/**
 * Sets bandFirstTile..bandLastTile to the key tiles the causal/window band of the block of rows
 * rowStart..rowStart+rows−1 touches: all of them without a band or when a row of the block is
 * global.
 */
export function findBandTiles(rowStart: i32, rows: i32): void {
  bandFirstTile = 0;
  bandLastTile = numTiles - 1;
  if (structured && !anyGlobalRow(rowStart, rows)) {
    const lo = <i64>rowStart + diagOffset - windowLeft;
    const hi = <i64>rowStart + rows - 1 + diagOffset + windowRight;
    bandFirstTile = lo <= 0 ? 0 : <i32>min(lo / KEY_TILE, <i64>numTiles);
    bandLastTile = hi < 0 ? -1 : <i32>min(hi / KEY_TILE, <i64>(numTiles - 1));
  }
}

export function tileHasGlobalKey(t: i32): bool {
  return globalKeys != 0 && load<u8>(tileHasGlobal + t) != 0;
}

/**
 * Whether the block of rows rowStart.. (after findBandTiles) visits key tile t: the tile is in its
 * band or holds a global key, and with a block-sparse layout it holds a kept block.
 */
export function tileVisited(t: i32, rowStart: i32, rows: i32): bool {
  if (!(t >= bandFirstTile && t <= bandLastTile) && !tileHasGlobalKey(t)) return false;
  if (!layoutHead) return true;
  const keyStart = t * KEY_TILE;
  return anyBlockKept(rowStart, rows, keyStart, min(nk, keyStart + KEY_TILE));
}

/**
 * Packs rows rowStart..rowStart+rows−1 of a [rows][d] matrix at `head` (row stride `rowStride`
 * floats), times `scale`, into groups of 4 rows [d][4] at `dst`; rows past `rows` in the last group
 * are zero.
 */
export function packQueries(
  head: usize,
  rowStride: i32,
  rowStart: i32,
  rows: i32,
  d: i32,
  scale: f32,
  dst: usize,
): void {
  const groups = (rows + 3) >> 2;
  for (let g = 0; g < groups; g++) {
    const group = dst + <usize>g * 16 * d;
    for (let r = 0; r < 4; r++) {
      const row = g * 4 + r;
      let to = group + r * 4;
      if (row < rows) {
        let src = head + <usize>(rowStart + row) * rowStride * 4;
        for (let i = 0; i < d; i++) {
          store<f32>(to, load<f32>(src) * scale);
          src += 4;
          to += 16;
        }
      } else {
        for (let i = 0; i < d; i++) {
          store<f32>(to, 0);
          to += 16;
        }
      }
    }
  }
}

function fillF32(ptr: usize, count: usize, value: f32): void {
  const v = f32x4.splat(value);
  const end = ptr + count * 4;
  while (ptr + 16 <= end) {
    v128.store(ptr, v);
    ptr += 16;
  }
  while (ptr < end) {
    store<f32>(ptr, value);
    ptr += 4;
  }
}

/**
 * The work of one group of 4 query rows on keys keyStart..first..end..keyEnd−1 of a tile: `bandMask`
 * says single entries need the causal/window/global test, `layoutMask` the block-sparse layout
 * test. attendRange in the forward pass, backwardRange in the backward pass.
 */
export type RangeVisitor = (
  g: i32,
  groupRow: i32,
  rows: i32,
  keyStart: i32,
  first: i32,
  end: i32,
  bandMask: bool,
  layoutMask: bool,
) => void;

/**
 * Calls `visit` on the keys of tile keyStart..keyEnd−1 that group g (rows groupRow..+rows−1) can
 * see: the span of its causal/window band, or each run of kept blocks of a block-sparse layout.
 */
export function groupTile(
  g: i32,
  groupRow: i32,
  rows: i32,
  keyStart: i32,
  keyEnd: i32,
  tileGlobal: bool,
  visit: RangeVisitor,
): void {
  // The keys of this tile the group's band can see, and whether single entries need masking.
  let first = keyStart;
  let end = keyEnd;
  let bandMask = false;
  if (structured) {
    if (tileGlobal || anyGlobalRow(groupRow, rows)) {
      bandMask = true;
    } else {
      const firstRowDiag = groupRow + diagOffset;
      const lastRowDiag = groupRow + rows - 1 + diagOffset;
      first = max(keyStart, firstRowDiag - windowLeft);
      end = min(keyEnd, lastRowDiag + windowRight + 1);
      if (first >= end) return;
      // Every row sees all of first..end-1 only if the last row's lower bound and the first row's
      // upper bound both contain it.
      bandMask = first < lastRowDiag - windowLeft || end - 1 > firstRowDiag + windowRight;
    }
  }
  if (!layoutHead) {
    visit(g, groupRow, rows, keyStart, first, end, bandMask, false);
  } else if (layoutBlock % 4 == 0) {
    // The group's 4 rows lie in one block row: attend to each run of kept blocks, skip the rest.
    const layoutRow = layoutHead + <usize>(groupRow / layoutBlock) * layoutCols;
    let j = first;
    while (j < end) {
      const block = j / layoutBlock;
      const blockEnd = min(end, (block + 1) * layoutBlock);
      if (!load<u8>(layoutRow + block)) {
        j = blockEnd;
        continue;
      }
      let runEnd = blockEnd;
      while (runEnd < end && load<u8>(layoutRow + runEnd / layoutBlock)) {
        runEnd = min(end, runEnd + layoutBlock);
      }
      visit(g, groupRow, rows, keyStart, j, runEnd, bandMask, false);
      j = runEnd;
    }
  } else {
    visit(g, groupRow, rows, keyStart, first, end, bandMask, true);
  }
}

// True when the layout keeps a block of rows rowStart.. (rows) × keys keyStart..keyEnd-1.
function anyBlockKept(rowStart: i32, rows: i32, keyStart: i32, keyEnd: i32): bool {
  const lastRow = (rowStart + rows - 1) / layoutBlock;
  const lastCol = (keyEnd - 1) / layoutBlock;
  for (let r = rowStart / layoutBlock; r <= lastRow; r++) {
    const row = layoutHead + <usize>r * layoutCols;
    for (let c = keyStart / layoutBlock; c <= lastCol; c++) if (load<u8>(row + c)) return true;
  }
  return false;
}

// Scores, online softmax update and P·V of one group of 4 rows over keys first..end-1 of the tile
// starting at keyStart. `bandMask`: single entries need the causal/window/global test;
// `layoutMask`: single entries need the block-sparse layout test.
function attendRange(
  g: i32,
  groupRow: i32,
  rows: i32,
  keyStart: i32,
  first: i32,
  end: i32,
  bandMask: bool,
  layoutMask: bool,
): void {
  const queryGroup = packedQuery + <usize>g * 16 * headDim;
  const groupScores = scores + <usize>g * SCORE_GROUP_BYTES;
  const panelsMax = singleRow
    ? computeRowScores(packedQuery, groupScores, keyStart, first, end)
    : computeScores(queryGroup, packedKeys, headDim, groupScores, keyStart, first, end);

  let tileMax: v128;
  const masked = bandMask || layoutMask || maskKind != 0 || keyMaskHead != 0;
  if (masked || softcap2 != 0 || alibiSlope2 != 0) {
    tileMax = adjustScores(groupScores, groupRow, rows, keyStart, first, end, bandMask, layoutMask);
  } else if (singleRow || ((first | end) & (KEY_PANEL - 1)) == 0) {
    // The scores computed cover exactly first..end-1: their max is the tile max.
    tileMax = panelsMax;
  } else {
    tileMax = f32x4.splat(NEG_INF);
    let s = groupScores + <usize>(first - keyStart) * 16;
    for (let j = first; j < end; j++) {
      tileMax = f32x4.pmax(tileMax, v128.load(s));
      s += 16;
    }
  }
  if (weightsHead) storeRawWeights(groupScores, groupRow, rows, keyStart, first, end);
  // Nothing visible for any of the 4 rows in this tile: nothing to add.
  if (i32x4.bitmask(f32x4.eq(tileMax, f32x4.splat(NEG_INF))) == 15) return;

  // Online softmax update. Rows that have seen no key yet keep max -Infinity; they use 0 as the
  // reference so that no -Infinity − -Infinity (NaN) arises.
  const maxPtr = rowMax + g * 16;
  const oldMax = v128.load(maxPtr);
  const newMax = f32x4.pmax(oldMax, tileMax);
  const reference = v128.andnot(newMax, f32x4.eq(newMax, f32x4.splat(NEG_INF)));
  const rescale = exp2x4(f32x4.sub(oldMax, reference));
  let sum = f32x4.splat(0);
  let s = groupScores + <usize>(first - keyStart) * 16;
  if (dropoutOn) {
    // The softmax sum counts every key; P·V sees the dropped and rescaled probabilities.
    const rows = rowHashes(groupRow);
    for (let j = first; j < end; j++) {
      const p = exp2x4(f32x4.sub(v128.load(s), reference));
      v128.store(s, f32x4.mul(p, keepFactors(rows, j)));
      sum = f32x4.add(sum, p);
      s += 16;
    }
  } else {
    for (let j = first; j < end; j++) {
      const p = exp2x4(f32x4.sub(v128.load(s), reference));
      v128.store(s, p);
      sum = f32x4.add(sum, p);
      s += 16;
    }
  }
  v128.store(maxPtr, newMax);
  const sumPtr = rowSum + g * 16;
  v128.store(sumPtr, f32x4.add(f32x4.mul(v128.load(sumPtr), rescale), sum));

  const probs = groupScores + <usize>(first - keyStart) * 16;
  const values = vHead + <usize>first * vRowBytes;
  const acc = accumulator + <usize>g * 16 * accStride;
  const skipZeros = masked || dropoutOn;
  if (singleRow) accumulateRowValues(probs, values, end - first, acc, rescale, skipZeros);
  else accumulateValues(probs, values, vRowBytes, end - first, acc, accStride, rescale, skipZeros);
}

// Scores of the group's 4 rows (packed [d][4] at queryGroup) against the 8-key panels of the tile
// at `panels` (packPanels layout, depth d) covering first..end-1, stored transposed (one v128 of 4
// rows per key) at groupScores + (key − keyStart)·16. Returns the per-row max over all computed
// panels (which may include keys outside first..end-1). The backward pass computes dO·Vᵀ with it.
export function computeScores(
  queryGroup: usize,
  panels: usize,
  d: i32,
  groupScores: usize,
  keyStart: i32,
  first: i32,
  end: i32,
): v128 {
  const panelBytes = <usize>KEY_PANEL * d * 4;
  const firstPanel = first / KEY_PANEL;
  const endPanel = (end + KEY_PANEL - 1) / KEY_PANEL;
  let panel = panels + <usize>(firstPanel - keyStart / KEY_PANEL) * panelBytes;
  let dst = groupScores + <usize>(firstPanel * KEY_PANEL - keyStart) * 16;
  let panelsMax = f32x4.splat(NEG_INF);
  for (let p = firstPanel; p < endPanel; p++) {
    let r0lo = f32x4.splat(0);
    let r0hi = f32x4.splat(0);
    let r1lo = f32x4.splat(0);
    let r1hi = f32x4.splat(0);
    let r2lo = f32x4.splat(0);
    let r2hi = f32x4.splat(0);
    let r3lo = f32x4.splat(0);
    let r3hi = f32x4.splat(0);
    let qp = queryGroup;
    let kp = panel;
    const qEnd = queryGroup + <usize>d * 16;
    while (qp < qEnd) {
      const klo = v128.load(kp);
      const khi = v128.load(kp, 16);
      let qr = v128.load32_splat(qp);
      r0lo = madd(qr, klo, r0lo);
      r0hi = madd(qr, khi, r0hi);
      qr = v128.load32_splat(qp, 4);
      r1lo = madd(qr, klo, r1lo);
      r1hi = madd(qr, khi, r1hi);
      qr = v128.load32_splat(qp, 8);
      r2lo = madd(qr, klo, r2lo);
      r2hi = madd(qr, khi, r2hi);
      qr = v128.load32_splat(qp, 12);
      r3lo = madd(qr, klo, r3lo);
      r3hi = madd(qr, khi, r3hi);
      qp += 16;
      kp += 32;
    }
    // 4×4 transposes: rows × keys → keys × rows.
    let t0 = f32x4.shuffle(r0lo, r1lo, 0, 4, 1, 5);
    let t1 = f32x4.shuffle(r2lo, r3lo, 0, 4, 1, 5);
    let t2 = f32x4.shuffle(r0lo, r1lo, 2, 6, 3, 7);
    let t3 = f32x4.shuffle(r2lo, r3lo, 2, 6, 3, 7);
    let key = f32x4.shuffle(t0, t1, 0, 1, 4, 5);
    v128.store(dst, key);
    let max = key;
    key = f32x4.shuffle(t0, t1, 2, 3, 6, 7);
    v128.store(dst, key, 16);
    max = f32x4.pmax(max, key);
    key = f32x4.shuffle(t2, t3, 0, 1, 4, 5);
    v128.store(dst, key, 32);
    max = f32x4.pmax(max, key);
    key = f32x4.shuffle(t2, t3, 2, 3, 6, 7);
    v128.store(dst, key, 48);
    max = f32x4.pmax(max, key);
    t0 = f32x4.shuffle(r0hi, r1hi, 0, 4, 1, 5);
    t1 = f32x4.shuffle(r2hi, r3hi, 0, 4, 1, 5);
    t2 = f32x4.shuffle(r0hi, r1hi, 2, 6, 3, 7);
    t3 = f32x4.shuffle(r2hi, r3hi, 2, 6, 3, 7);
    key = f32x4.shuffle(t0, t1, 0, 1, 4, 5);
    v128.store(dst, key, 64);
    max = f32x4.pmax(max, key);
    key = f32x4.shuffle(t0, t1, 2, 3, 6, 7);
    v128.store(dst, key, 80);
    max = f32x4.pmax(max, key);
    key = f32x4.shuffle(t2, t3, 0, 1, 4, 5);
    v128.store(dst, key, 96);
    max = f32x4.pmax(max, key);
    key = f32x4.shuffle(t2, t3, 2, 3, 6, 7);
    v128.store(dst, key, 112);
    panelsMax = f32x4.pmax(panelsMax, f32x4.pmax(max, key));
    panel += panelBytes;
    dst += KEY_PANEL * 16;
  }
  return panelsMax;
}

// The query row of a one-row block, scaled, contiguous [D].
function copyQueryRow(row: i32, qScale: f32): void {
  const src = qHead + <usize>row * qRowStride * 4;
  for (let i = 0; i < headDim; i++) {
    store<f32>(packedQuery + <usize>i * 4, load<f32>(src + <usize>i * 4) * qScale);
  }
}

// Scores of one query row (contiguous [D] at `query`) against keys first..end-1 read in place from
// K, 4 keys at a time (4 accumulators over d, then a 4×4 transpose-add). Each score is stored
// broadcast to all 4 lanes of its v128, so the group code downstream works unchanged. Returns the
// max score (broadcast).
function computeRowScores(
  query: usize,
  groupScores: usize,
  keyStart: i32,
  first: i32,
  end: i32,
): v128 {
  const d4 = headDim & ~3;
  const rowBytes = <usize>kRowBytes;
  let max = f32x4.splat(NEG_INF);
  let dst = groupScores + <usize>(first - keyStart) * 16;
  let j = first;
  let touched: f32 = 0;
  for (; j + 4 <= end; j += 4) {
    const k0 = kHead + <usize>j * rowBytes;
    const k1 = k0 + rowBytes;
    const k2 = k1 + rowBytes;
    const k3 = k2 + rowBytes;
    if (prefetch && j + PREFETCH_KEYS + 4 <= nk) touched += touchRows(j);
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    for (let i = 0; i < d4; i += 4) {
      const at = <usize>i * 4;
      const q = v128.load(query + at);
      a0 = madd(q, v128.load(k0 + at), a0);
      a1 = madd(q, v128.load(k1 + at), a1);
      a2 = madd(q, v128.load(k2 + at), a2);
      a3 = madd(q, v128.load(k3 + at), a3);
    }
    // Horizontal sums of a0..a3 into the lanes of one vector.
    const t0 = f32x4.add(f32x4.shuffle(a0, a1, 0, 4, 1, 5), f32x4.shuffle(a0, a1, 2, 6, 3, 7));
    const t1 = f32x4.add(f32x4.shuffle(a2, a3, 0, 4, 1, 5), f32x4.shuffle(a2, a3, 2, 6, 3, 7));
    let sums = f32x4.add(f32x4.shuffle(t0, t1, 0, 1, 4, 5), f32x4.shuffle(t0, t1, 2, 3, 6, 7));
    if (d4 < headDim) sums = f32x4.add(sums, tailDots(query, k0, d4));
    max = f32x4.pmax(max, sums);
    v128.store(dst, f32x4.shuffle(sums, sums, 0, 0, 0, 0));
    v128.store(dst, f32x4.shuffle(sums, sums, 1, 1, 1, 1), 16);
    v128.store(dst, f32x4.shuffle(sums, sums, 2, 2, 2, 2), 32);
    v128.store(dst, f32x4.shuffle(sums, sums, 3, 3, 3, 3), 48);
    dst += 64;
  }
  for (; j < end; j++) {
    const key = kHead + <usize>j * rowBytes;
    let sum: f32 = 0;
    for (let i = 0; i < headDim; i++)
      sum += load<f32>(query + <usize>i * 4) * load<f32>(key + <usize>i * 4);
    const score = f32x4.splat(sum);
    max = f32x4.pmax(max, score);
    v128.store(dst, score);
    dst += 16;
  }
  store<f32>(laneBuffer, touched); // keeps the touching loads alive
  const lanes = f32x4.pmax(max, f32x4.shuffle(max, max, 2, 3, 0, 1));
  return f32x4.pmax(lanes, f32x4.shuffle(lanes, lanes, 1, 0, 3, 2));
}

// Reads one float per cache line of the keys PREFETCH_KEYS rows after key j (4 rows) and of the
// values of keys j..j+3, so that their DRAM reads overlap with the arithmetic: wasm has no prefetch
// instruction, and in decoding the hardware prefetcher alone left the kernel at a third of the
// memory bandwidth. Returns their sum, which the caller keeps so the loads stay.
function touchRows(j: i32): f32 {
  let sum: f32 = 0;
  const kRow = kHead + <usize>(j + PREFETCH_KEYS) * kRowBytes;
  const vRow = vHead + <usize>j * vRowBytes;
  const kBytes = <usize>headDim * 4;
  const vBytes = <usize>valueDim * 4;
  for (let r: usize = 0; r < 4; r++) {
    const k = kRow + r * <usize>kRowBytes;
    for (let t: usize = 0; t < kBytes; t += 64) sum += load<f32>(k + t);
    const v = vRow + r * <usize>vRowBytes;
    for (let t: usize = 0; t < vBytes; t += 64) sum += load<f32>(v + t);
  }
  return sum;
}

// The products of dims d4..D−1 of the query with 4 consecutive key rows from k0, as one vector.
function tailDots(query: usize, k0: usize, d4: i32): v128 {
  const rowBytes = <usize>kRowBytes;
  for (let c = 0; c < 4; c++) {
    let sum: f32 = 0;
    for (let i = d4; i < headDim; i++) {
      sum += load<f32>(query + <usize>i * 4) * load<f32>(k0 + <usize>c * rowBytes + <usize>i * 4);
    }
    store<f32>(laneBuffer + c * 4, sum);
  }
  return v128.load(laneBuffer);
}

// acc[0][accStride] = acc · rescale + Σ_j p[j] · V[j] for one query row (lane 0 of the scores),
// 32 value columns per pass over the keys (8 accumulators), then 4 at a time. (Streaming whole V
// rows with the accumulator row in L1 instead was measured 1.5× slower.) With `masked`, keys of
// probability 0 are skipped, so non-finite values of masked keys cannot leak in.
function accumulateRowValues(
  probs: usize,
  values: usize,
  count: i32,
  acc: usize,
  rescale: v128,
  masked: bool,
): void {
  const scale = f32x4.shuffle(rescale, rescale, 0, 0, 0, 0);
  const step = <usize>vRowBytes;
  let c = 0;
  for (; c + 32 <= accStride; c += 32) {
    const o = acc + <usize>c * 4;
    let a0 = f32x4.mul(v128.load(o), scale);
    let a1 = f32x4.mul(v128.load(o, 16), scale);
    let a2 = f32x4.mul(v128.load(o, 32), scale);
    let a3 = f32x4.mul(v128.load(o, 48), scale);
    let a4 = f32x4.mul(v128.load(o, 64), scale);
    let a5 = f32x4.mul(v128.load(o, 80), scale);
    let a6 = f32x4.mul(v128.load(o, 96), scale);
    let a7 = f32x4.mul(v128.load(o, 112), scale);
    let pp = probs;
    let vp = values + <usize>c * 4;
    for (let j = 0; j < count; j++) {
      const p = v128.load32_splat(pp);
      if (!masked || f32x4.extract_lane(p, 0) != 0) {
        a0 = madd(p, v128.load(vp), a0);
        a1 = madd(p, v128.load(vp, 16), a1);
        a2 = madd(p, v128.load(vp, 32), a2);
        a3 = madd(p, v128.load(vp, 48), a3);
        a4 = madd(p, v128.load(vp, 64), a4);
        a5 = madd(p, v128.load(vp, 80), a5);
        a6 = madd(p, v128.load(vp, 96), a6);
        a7 = madd(p, v128.load(vp, 112), a7);
      }
      pp += 16;
      vp += step;
    }
    v128.store(o, a0);
    v128.store(o, a1, 16);
    v128.store(o, a2, 32);
    v128.store(o, a3, 48);
    v128.store(o, a4, 64);
    v128.store(o, a5, 80);
    v128.store(o, a6, 96);
    v128.store(o, a7, 112);
  }
  for (; c < accStride; c += 4) {
    const o = acc + <usize>c * 4;
    let a = f32x4.mul(v128.load(o), scale);
    let pp = probs;
    let vp = values + <usize>c * 4;
    for (let j = 0; j < count; j++) {
      const p = v128.load32_splat(pp);
      if (!masked || f32x4.extract_lane(p, 0) != 0) a = f32x4.add(a, f32x4.mul(p, v128.load(vp)));
      pp += 16;
      vp += step;
    }
    v128.store(o, a);
  }
}

// Applies, in order, softcap, ALiBi, the mask, the key-padding mask, the block-sparse layout and the
// causal/window/global band to the scores of keys first..end-1; returns the per-row max of the result.
export function adjustScores(
  groupScores: usize,
  groupRow: i32,
  rows: i32,
  keyStart: i32,
  first: i32,
  end: i32,
  bandMask: bool,
  layoutMask: bool,
): v128 {
  const negInf = f32x4.splat(NEG_INF);
  const cap = f32x4.splat(softcap2);
  const invCap = f32x4.splat(softcap2 != 0 ? 1 / softcap2 : 0);
  const slope = f32x4.splat(alibiSlope2);
  const lane = i32x4(0, 1, 2, 3);
  // Diagonal key of each of the 4 rows.
  const rowDiag = i32x4.add(i32x4.splat(groupRow + diagOffset), lane);
  const lowerBound = i32x4.splat(-windowLeft);
  const upperBound = i32x4.splat(windowRight);
  // Rows past Nq (padding of the last group) take no part: mark them global, read no mask for them.
  for (let r = 0; r < 4; r++) {
    const global = r >= rows || (globalRows != 0 && load<u8>(globalRows + groupRow + r) != 0);
    store<i32>(laneBuffer + r * 4, global ? -1 : 0);
  }
  const rowIsGlobal = v128.load(laneBuffer);
  const maskRow = maskHead + <usize>groupRow * maskStrideQ * (maskKind == MASK_ADDITIVE ? 4 : 1);
  const rowBroadcast = maskStrideQ == 0 || rows == 1;

  let tileMax = negInf;
  let s = groupScores + <usize>(first - keyStart) * 16;
  for (let j = first; j < end; j++) {
    let score = v128.load(s);
    if (softcap2 != 0) score = f32x4.mul(cap, tanhx4(f32x4.mul(score, invCap)));
    if (alibiSlope2 != 0) {
      const distance = f32x4.convert_i32x4_s(i32x4.abs(i32x4.sub(rowDiag, i32x4.splat(j))));
      score = f32x4.sub(score, f32x4.mul(slope, distance));
    }
    let allowed = i32x4.splat(-1);
    if (maskKind == MASK_BOOL) {
      const at = maskRow + <usize>j * maskStrideK;
      let bits: v128;
      if (rowBroadcast) {
        bits = i32x4.splat(<i32>load<u8>(at));
      } else {
        for (let r = 0; r < 4; r++) {
          store<i32>(laneBuffer + r * 4, r < rows ? <i32>load<u8>(at + <usize>r * maskStrideQ) : 1);
        }
        bits = v128.load(laneBuffer);
      }
      allowed = i32x4.ne(bits, i32x4.splat(0));
    } else if (maskKind == MASK_ADDITIVE) {
      const at = maskRow + <usize>j * maskStrideK * 4;
      let bias: v128;
      if (rowBroadcast) {
        bias = f32x4.splat(load<f32>(at));
      } else {
        for (let r = 0; r < 4; r++) {
          store<f32>(laneBuffer + r * 4, r < rows ? load<f32>(at + <usize>r * maskStrideQ * 4) : 0);
        }
        bias = v128.load(laneBuffer);
      }
      // Select rather than add for -Infinity, so a NaN score of a masked key stays masked.
      allowed = f32x4.ne(bias, negInf);
      score = f32x4.add(score, f32x4.mul(bias, f32x4.splat(LOG2E)));
    }
    if (keyMaskHead && load<u8>(keyMaskHead + j) == 0) allowed = i32x4.splat(0);
    if (layoutMask) {
      const column = <usize>(j / layoutBlock);
      for (let r = 0; r < 4; r++) {
        const row = min(groupRow + r, nq - 1) / layoutBlock;
        const kept = load<u8>(layoutHead + <usize>row * layoutCols + column);
        store<i32>(laneBuffer + r * 4, kept ? -1 : 0);
      }
      allowed = v128.and(allowed, v128.load(laneBuffer));
    }
    if (bandMask) {
      const delta = i32x4.sub(i32x4.splat(j), rowDiag);
      let inBand = v128.and(i32x4.ge_s(delta, lowerBound), i32x4.le_s(delta, upperBound));
      inBand = v128.or(inBand, rowIsGlobal);
      if (globalKeys && load<u8>(globalKeys + j)) inBand = i32x4.splat(-1);
      allowed = v128.and(allowed, inBand);
    }
    score = v128.bitselect(score, negInf, allowed);
    v128.store(s, score);
    tileMax = f32x4.pmax(tileMax, score);
    s += 16;
  }
  return tileMax;
}

// With returnWeights: keeps the adjusted scores of keys first..end-1 in the weights rows; finishBlock
// turns them into probabilities once the row max and sum are final.
function storeRawWeights(
  groupScores: usize,
  groupRow: i32,
  rows: i32,
  keyStart: i32,
  first: i32,
  end: i32,
): void {
  const rowBytes = <usize>nk * 4;
  const row0 = weightsHead + <usize>groupRow * rowBytes;
  let s = groupScores + <usize>(first - keyStart) * 16;
  for (let j = first; j < end; j++) {
    const score = v128.load(s);
    const at = row0 + <usize>j * 4;
    store<f32>(at, f32x4.extract_lane(score, 0));
    if (rows > 1) store<f32>(at + rowBytes, f32x4.extract_lane(score, 1));
    if (rows > 2) store<f32>(at + 2 * rowBytes, f32x4.extract_lane(score, 2));
    if (rows > 3) store<f32>(at + 3 * rowBytes, f32x4.extract_lane(score, 3));
    s += 16;
  }
}

// acc[4][accStride] = acc · rescale (per row) + Σ_j p[j] (4 rows) · V[j], for `count` keys (value
// rows `valueStep` bytes apart, accStride a multiple of 4 columns). With `masked`, keys whose
// probability is 0 for all 4 rows are skipped and zero probabilities zero their products, so
// non-finite values of masked keys cannot leak in. The backward pass computes dS·K with it.
export function accumulateValues(
  probs: usize,
  values: usize,
  valueStep: usize,
  count: i32,
  acc: usize,
  accStride: i32,
  rescale: v128,
  masked: bool,
): void {
  const rowBytes = <usize>accStride * 4;
  const wide = accStride & ~7;
  const probsEnd = probs + <usize>count * 16;
  for (let c = 0; c < wide; c += 8) {
    const o = acc + <usize>c * 4;
    let s = f32x4.shuffle(rescale, rescale, 0, 0, 0, 0);
    let a0lo = f32x4.mul(v128.load(o), s);
    let a0hi = f32x4.mul(v128.load(o, 16), s);
    s = f32x4.shuffle(rescale, rescale, 1, 1, 1, 1);
    let a1lo = f32x4.mul(v128.load(o + rowBytes), s);
    let a1hi = f32x4.mul(v128.load(o + rowBytes, 16), s);
    s = f32x4.shuffle(rescale, rescale, 2, 2, 2, 2);
    let a2lo = f32x4.mul(v128.load(o + 2 * rowBytes), s);
    let a2hi = f32x4.mul(v128.load(o + 2 * rowBytes, 16), s);
    s = f32x4.shuffle(rescale, rescale, 3, 3, 3, 3);
    let a3lo = f32x4.mul(v128.load(o + 3 * rowBytes), s);
    let a3hi = f32x4.mul(v128.load(o + 3 * rowBytes, 16), s);
    let pp = probs;
    let vp = values + <usize>c * 4;
    if (!masked) {
      while (pp < probsEnd) {
        const vlo = v128.load(vp);
        const vhi = v128.load(vp, 16);
        let pr = v128.load32_splat(pp);
        a0lo = madd(pr, vlo, a0lo);
        a0hi = madd(pr, vhi, a0hi);
        pr = v128.load32_splat(pp, 4);
        a1lo = madd(pr, vlo, a1lo);
        a1hi = madd(pr, vhi, a1hi);
        pr = v128.load32_splat(pp, 8);
        a2lo = madd(pr, vlo, a2lo);
        a2hi = madd(pr, vhi, a2hi);
        pr = v128.load32_splat(pp, 12);
        a3lo = madd(pr, vlo, a3lo);
        a3hi = madd(pr, vhi, a3hi);
        pp += 16;
        vp += valueStep;
      }
    } else {
      while (pp < probsEnd) {
        const p = v128.load(pp);
        const live = f32x4.ne(p, f32x4.splat(0));
        const liveBits = i32x4.bitmask(live);
        if (liveBits != 0) {
          let vlo = v128.load(vp);
          let vhi = v128.load(vp, 16);
          if (liveBits == 15) {
            let pr = f32x4.shuffle(p, p, 0, 0, 0, 0);
            a0lo = madd(pr, vlo, a0lo);
            a0hi = madd(pr, vhi, a0hi);
            pr = f32x4.shuffle(p, p, 1, 1, 1, 1);
            a1lo = madd(pr, vlo, a1lo);
            a1hi = madd(pr, vhi, a1hi);
            pr = f32x4.shuffle(p, p, 2, 2, 2, 2);
            a2lo = madd(pr, vlo, a2lo);
            a2hi = madd(pr, vhi, a2hi);
            pr = f32x4.shuffle(p, p, 3, 3, 3, 3);
            a3lo = madd(pr, vlo, a3lo);
            a3hi = madd(pr, vhi, a3hi);
          } else {
            let pr = f32x4.shuffle(p, p, 0, 0, 0, 0);
            let keep = i32x4.shuffle(live, live, 0, 0, 0, 0);
            a0lo = f32x4.add(a0lo, v128.and(f32x4.mul(pr, vlo), keep));
            a0hi = f32x4.add(a0hi, v128.and(f32x4.mul(pr, vhi), keep));
            pr = f32x4.shuffle(p, p, 1, 1, 1, 1);
            keep = i32x4.shuffle(live, live, 1, 1, 1, 1);
            a1lo = f32x4.add(a1lo, v128.and(f32x4.mul(pr, vlo), keep));
            a1hi = f32x4.add(a1hi, v128.and(f32x4.mul(pr, vhi), keep));
            pr = f32x4.shuffle(p, p, 2, 2, 2, 2);
            keep = i32x4.shuffle(live, live, 2, 2, 2, 2);
            a2lo = f32x4.add(a2lo, v128.and(f32x4.mul(pr, vlo), keep));
            a2hi = f32x4.add(a2hi, v128.and(f32x4.mul(pr, vhi), keep));
            pr = f32x4.shuffle(p, p, 3, 3, 3, 3);
            keep = i32x4.shuffle(live, live, 3, 3, 3, 3);
            a3lo = f32x4.add(a3lo, v128.and(f32x4.mul(pr, vlo), keep));
            a3hi = f32x4.add(a3hi, v128.and(f32x4.mul(pr, vhi), keep));
          }
        }
        pp += 16;
        vp += valueStep;
      }
    }
    v128.store(o, a0lo);
    v128.store(o, a0hi, 16);
    v128.store(o + rowBytes, a1lo);
    v128.store(o + rowBytes, a1hi, 16);
    v128.store(o + 2 * rowBytes, a2lo);
    v128.store(o + 2 * rowBytes, a2hi, 16);
    v128.store(o + 3 * rowBytes, a3lo);
    v128.store(o + 3 * rowBytes, a3hi, 16);
  }
  if (wide < accStride)
    accumulateValues4(
      probs,
      values + <usize>wide * 4,
      valueStep,
      count,
      acc + <usize>wide * 4,
      rowBytes,
      rescale,
      masked,
    );
}

// The last 4 value columns when Dv mod 8 is 1..4: the same update with one v128 per row.
function accumulateValues4(
  probs: usize,
  values: usize,
  valueStep: usize,
  count: i32,
  o: usize,
  rowBytes: usize,
  rescale: v128,
  masked: bool,
): void {
  let a0 = f32x4.mul(v128.load(o), f32x4.shuffle(rescale, rescale, 0, 0, 0, 0));
  let a1 = f32x4.mul(v128.load(o + rowBytes), f32x4.shuffle(rescale, rescale, 1, 1, 1, 1));
  let a2 = f32x4.mul(v128.load(o + 2 * rowBytes), f32x4.shuffle(rescale, rescale, 2, 2, 2, 2));
  let a3 = f32x4.mul(v128.load(o + 3 * rowBytes), f32x4.shuffle(rescale, rescale, 3, 3, 3, 3));
  let pp = probs;
  let vp = values;
  for (let j = 0; j < count; j++) {
    const p = v128.load(pp);
    const live = masked ? f32x4.ne(p, f32x4.splat(0)) : i32x4.splat(-1);
    if (v128.any_true(live)) {
      const v = v128.load(vp);
      a0 = f32x4.add(
        a0,
        v128.and(
          f32x4.mul(f32x4.shuffle(p, p, 0, 0, 0, 0), v),
          i32x4.shuffle(live, live, 0, 0, 0, 0),
        ),
      );
      a1 = f32x4.add(
        a1,
        v128.and(
          f32x4.mul(f32x4.shuffle(p, p, 1, 1, 1, 1), v),
          i32x4.shuffle(live, live, 1, 1, 1, 1),
        ),
      );
      a2 = f32x4.add(
        a2,
        v128.and(
          f32x4.mul(f32x4.shuffle(p, p, 2, 2, 2, 2), v),
          i32x4.shuffle(live, live, 2, 2, 2, 2),
        ),
      );
      a3 = f32x4.add(
        a3,
        v128.and(
          f32x4.mul(f32x4.shuffle(p, p, 3, 3, 3, 3), v),
          i32x4.shuffle(live, live, 3, 3, 3, 3),
        ),
      );
    }
    pp += 16;
    vp += valueStep;
  }
  v128.store(o, a0);
  v128.store(o + rowBytes, a1);
  v128.store(o + 2 * rowBytes, a2);
  v128.store(o + 3 * rowBytes, a3);
}

// Divides each row by its softmax sum and writes output, lse and weights of the block's rows.
// A row that saw no key (sum 0) gets zeros, lse = -Infinity and zero weights.
function finishBlock(rowStart: i32, rows: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = rowStart + r;
    const g = r >> 2;
    const lane = r & 3;
    const sum = load<f32>(rowSum + g * 16 + lane * 4);
    const max = load<f32>(rowMax + g * 16 + lane * 4);
    const inv: f32 = sum > 0 ? 1 / sum : 0;
    const acc = accumulator + <usize>(g * 4 + lane) * accStride * 4;
    const out = outHead + <usize>row * outRowStride * 4;
    const invv = f32x4.splat(inv);
    let c = 0;
    for (; c + 4 <= valueDim; c += 4) {
      v128.store(out + <usize>c * 4, f32x4.mul(v128.load(acc + <usize>c * 4), invv));
    }
    for (; c < valueDim; c++) store<f32>(out + <usize>c * 4, load<f32>(acc + <usize>c * 4) * inv);
    if (sum == 0) {
      // An all-masked row may have accumulated nothing but 0·x; make it exactly zero.
      for (c = 0; c < valueDim; c++) store<f32>(out + <usize>c * 4, 0);
    }
    if (lseHead) {
      store<f32>(lseHead + <usize>row * 4, sum > 0 ? <f32>((max + Math.log2(sum)) * LN2) : NEG_INF);
    }
    if (weightsHead) {
      const reference = max == NEG_INF ? <f32>0 : max;
      normalizeRow(weightsHead + <usize>row * nk * 4, nk, reference, inv);
      if (dropoutOn) dropRow(weightsHead + <usize>row * nk * 4, row);
    }
  }
}

// w[j] = 2^(w[j] − reference) · inv over one row of raw log2 scores.
function normalizeRow(ptr: usize, count: i32, reference: f32, inv: f32): void {
  const ref4 = f32x4.splat(reference);
  const inv4 = f32x4.splat(inv);
  let j = 0;
  for (; j + 4 <= count; j += 4) {
    const at = ptr + <usize>j * 4;
    v128.store(at, f32x4.mul(exp2x4(f32x4.sub(v128.load(at), ref4)), inv4));
  }
  for (; j < count; j++) {
    const at = ptr + <usize>j * 4;
    store<f32>(at, f32x4.extract_lane(exp2x4(f32x4.splat(load<f32>(at) - reference)), 0) * inv);
  }
}

// With dropout, the returned weights are the probabilities P·V used: dropped keys 0, the others
// scaled by 1/(1 − p) (as PyTorch returns them).
function dropRow(ptr: usize, row: i32): void {
  const hash = rowHash(row);
  let j = 0;
  for (; j + 4 <= nk; j += 4) {
    const at = ptr + <usize>j * 4;
    v128.store(at, f32x4.mul(v128.load(at), keepFactorsOfKeys(hash, j)));
  }
  for (; j < nk; j++) {
    const at = ptr + <usize>j * 4;
    store<f32>(at, load<f32>(at) * keepFactor(hash, j));
  }
}
