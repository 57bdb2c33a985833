// Backward pass of scaled dot-product attention (FlashAttention-2's algorithm, on the forward
// kernel's tiles and micro-kernels, sdpa.ts).
//
// For every (batch, head) and block of QUERY_BLOCK query rows, the kernel walks the key tiles the
// forward pass visits. For each group of 4 rows and tile it recomputes the scores S (log2 units,
// every mask applied by the forward's adjustScores) and the probabilities P = 2^(S − lse·log2 e)
// from the forward's lse, then
//   dP = dO·Vᵀ                                     (computeScores on packed dO and value panels)
//   dS = scale · P ⊙ (dP − δ) [⊙ softcap′]         δ = rowsum(dO ⊙ O), one per row
//   dQ_block += dS·K                                (accumulateValues, the forward's P·V kernel)
// and once every group of the block has its P and dS for the tile,
//   dV_tile += Pᵀ·dO_block,  dK_tile += dSᵀ·Q_block  (addKeyGradients: 4 keys × 8 columns)
// read-modify-writing dK and dV in place, so grouped-query heads add into their shared kv head.
// Working memory is O(tile): nothing of size Nq·Nk is stored.
//
// P and dS are computed like the forward's scores: per group of 4 rows, one v128 per key holding
// the 4 rows ([QUERY_BLOCK/4][KEY_TILE][4]), which dS·K reads. Each group then copies them, 4×4
// transposed, into [KEY_TILE/4][QUERY_BLOCK][4 keys] buffers, where the key-gradient kernel finds
// the 4 keys of a row side by side. Those are cleared per tile, so keys a group cannot see stay 0
// and the kernel runs over whole tiles. Masked keys have P = 0 and dS forced to 0 (not 0·dP, which
// is NaN when a masked-out value is NaN), and dS·K skips them, as the forward's P·V does.

import {
  QUERY_BLOCK,
  KEY_TILE,
  KEY_PANEL,
  SDPA_SCALE,
  SDPA_Q,
  SDPA_K,
  SDPA_V,
  SDPA_OUT,
} from "./shared";
import {
  alignUp,
  beginCall,
  beginHead,
  findBandTiles,
  tileVisited,
  tileHasGlobalKey,
  groupTile,
  packQueries,
  computeScores,
  adjustScores,
  accumulateValues,
  sdpaScratchBytes,
  nq,
  nk,
  headDim,
  valueDim,
  softcap2,
  maskKind,
  alibiSlope2,
  keyMaskHead,
  numTiles,
  qRowStride,
  kRowBytes,
  vRowBytes,
  outRowStride,
  qHead,
  kHead,
  vHead,
  outHead,
  packedKeys,
  packedQuery,
  scores,
  rowMax,
  rowSum,
} from "./sdpa";
import { packPanels } from "./pack";
import { exp2x4, tanhx4, LOG2E } from "./exp";
import { madd } from "./madd";
import { dropoutOn, rowHashes, keepFactors } from "./dropout";
import { scalarSdpaBackward, scalarSdpaBackwardScratchBytes } from "./scalar-sdpa";

const GROUPS_PER_BLOCK: i32 = QUERY_BLOCK / 4;
const SCORE_GROUP_BYTES: i32 = KEY_TILE * 16;
// Transposed P and dS: [KEY_TILE/4][QUERY_BLOCK][4], per quad of keys one v128 per row.
const QUAD_BYTES: i32 = QUERY_BLOCK * 16;
const TRANSPOSED_BYTES: i32 = (KEY_TILE / 4) * QUAD_BYTES;

// ---- Scratch beyond the forward's: value panels, packed dO, dS, raw scores, dQ accumulator ----
let packedValues: usize = 0;
let packedGrad: usize = 0;
let dsBuffer: usize = 0;
let capBuffer: usize = 0; // one group's scores before the softcap, for its derivative
let pT: usize = 0;
let dsT: usize = 0;
let dqAcc: usize = 0;
let dqStride: i32 = 0; // floats per dQ accumulator row (D rounded up to 4)

// ---- The current head ----
let dqHead: usize = 0;
let dkHead: usize = 0;
let dvHead: usize = 0;
let gradHead: usize = 0;
let lseHead: usize = 0;
let dsScale: f32 = 0;
let tileTouched: bool = false;

function layoutBackward(at: usize, d: i32, dv: i32): usize {
  dqStride = <i32>alignUp(d, 4);
  packedValues = alignUp(at, 64);
  packedGrad = alignUp(packedValues + <usize>KEY_TILE * dv * 4, 64);
  dsBuffer = alignUp(packedGrad + <usize>QUERY_BLOCK * dv * 4, 64);
  capBuffer = dsBuffer + <usize>GROUPS_PER_BLOCK * SCORE_GROUP_BYTES;
  pT = capBuffer + SCORE_GROUP_BYTES;
  dsT = pT + TRANSPOSED_BYTES;
  dqAcc = dsT + TRANSPOSED_BYTES;
  return dqAcc + <usize>QUERY_BLOCK * dqStride * 4;
}

/** Bytes of scratch memory sdpaBackward needs. */
export function sdpaBackwardScratchBytes(d: i32, dv: i32, keys: i32): usize {
  if (!ASC_FEATURE_SIMD) return scalarSdpaBackwardScratchBytes(keys);
  return layoutBackward(sdpaScratchBytes(d, dv, keys), d, dv);
}

/**
 * Gradients of L = Σ output ⊙ gradOut for the (batch, head) pairs headBegin..headEnd−1 of the
 * forward call at `params`: dq [B,H,Nq,D] with q's strides (overwritten), dk and dv [B,Hkv,Nk,·]
 * with k's and v's strides (added to: they must start zeroed). gradOut has the output's strides,
 * lse is the forward's [B,H,Nq]. A fully masked row (lse = -Infinity) contributes nothing.
 */
export function sdpaBackward(
  params: usize,
  scratch: usize,
  gradOut: usize,
  lse: usize,
  dq: usize,
  dk: usize,
  dv: usize,
  headBegin: i32,
  headEnd: i32,
): void {
  if (!ASC_FEATURE_SIMD) {
    scalarSdpaBackward(params, scratch, gradOut, lse, dq, dk, dv, headBegin, headEnd);
    return;
  }
  layoutBackward(beginCall(params, scratch, headBegin, headEnd), headDim, valueDim);
  dsScale = load<f32>(params + SDPA_SCALE);
  for (let bh = headBegin; bh < headEnd; bh++) {
    beginHead(params, bh);
    // The gradients share the strides of the tensors they belong to.
    dqHead = dq + (qHead - load<usize>(params + SDPA_Q));
    dkHead = dk + (kHead - load<usize>(params + SDPA_K));
    dvHead = dv + (vHead - load<usize>(params + SDPA_V));
    gradHead = gradOut + (outHead - load<usize>(params + SDPA_OUT));
    lseHead = lse + <usize>bh * nq * 4;
    for (let rowStart = 0; rowStart < nq; rowStart += QUERY_BLOCK) {
      backwardBlock(rowStart, min(QUERY_BLOCK, nq - rowStart));
    }
  }
}

function backwardBlock(rowStart: i32, rows: i32): void {
  const groups = (rows + 3) >> 2;
  packQueries(qHead, qRowStride, rowStart, rows, headDim, dsScale * LOG2E, packedQuery);
  packQueries(gradHead, outRowStride, rowStart, rows, valueDim, 1, packedGrad);
  rowTerms(rowStart, rows);
  memory.fill(dqAcc, 0, <usize>groups * 4 * dqStride * 4);

  findBandTiles(rowStart, rows);
  for (let t = 0; t < numTiles; t++) {
    if (!tileVisited(t, rowStart, rows)) continue;
    const keyStart = t * KEY_TILE;
    const keys = min(nk, keyStart + KEY_TILE) - keyStart;
    packPanels(kHead + <usize>keyStart * kRowBytes, kRowBytes, keys, headDim, packedKeys);
    packPanels(vHead + <usize>keyStart * vRowBytes, vRowBytes, keys, valueDim, packedValues);
    const quadsBytes = <usize>((keys + 3) >> 2) * QUAD_BYTES;
    memory.fill(pT, 0, quadsBytes);
    memory.fill(dsT, 0, quadsBytes);
    tileTouched = false;
    const tileGlobal = tileHasGlobalKey(t);
    for (let g = 0; g < groups; g++) {
      const groupRow = rowStart + g * 4;
      groupTile(
        g,
        groupRow,
        min(4, nq - groupRow),
        keyStart,
        keyStart + keys,
        tileGlobal,
        backwardRange,
      );
    }
    if (!tileTouched) continue;
    addKeyGradients(
      pT,
      gradHead + <usize>rowStart * outRowStride * 4,
      <usize>outRowStride * 4,
      valueDim,
      dvHead + <usize>keyStart * vRowBytes,
      vRowBytes,
      keys,
      rows,
    );
    addKeyGradients(
      dsT,
      qHead + <usize>rowStart * qRowStride * 4,
      <usize>qRowStride * 4,
      headDim,
      dkHead + <usize>keyStart * kRowBytes,
      kRowBytes,
      keys,
      rows,
    );
  }
  for (let r = 0; r < rows; r++) {
    memory.copy(
      dqHead + <usize>(rowStart + r) * qRowStride * 4,
      dqAcc + <usize>r * dqStride * 4,
      <usize>headDim * 4,
    );
  }
}

// Per row of the block, into the forward's rowMax and rowSum slots (one v128 per group of 4 rows):
// the lse in log2 units and δ = rowsum(dO ⊙ O). A fully masked row (lse = -Infinity) and the
// padding rows of the last group get lse = +Infinity, so that their probabilities are exactly 0.
function rowTerms(rowStart: i32, rows: i32): void {
  const padded = (rows + 3) & ~3;
  for (let r = 0; r < padded; r++) {
    let lse2 = Infinity;
    let delta: f32 = 0;
    if (r < rows) {
      const lse = load<f32>(lseHead + <usize>(rowStart + r) * 4);
      if (lse != -Infinity) lse2 = lse * LOG2E;
      const grad = gradHead + <usize>(rowStart + r) * outRowStride * 4;
      const out = outHead + <usize>(rowStart + r) * outRowStride * 4;
      for (let c = 0; c < valueDim; c++) {
        delta += load<f32>(grad + <usize>c * 4) * load<f32>(out + <usize>c * 4);
      }
    }
    store<f32>(rowMax + <usize>r * 4, <f32>lse2);
    store<f32>(rowSum + <usize>r * 4, delta);
  }
}

// Group g's P and dS over keys first..end−1 of the tile at keyStart, and its dQ += dS·K.
function backwardRange(
  g: i32,
  groupRow: i32,
  rows: i32,
  keyStart: i32,
  first: i32,
  end: i32,
  bandMask: bool,
  layoutMask: bool,
): void {
  const groupScores = scores + <usize>g * SCORE_GROUP_BYTES;
  const groupDs = dsBuffer + <usize>g * SCORE_GROUP_BYTES;
  const at = <usize>(first - keyStart) * 16;
  const count = end - first;
  computeScores(
    packedQuery + <usize>g * 16 * headDim,
    packedKeys,
    headDim,
    groupScores,
    keyStart,
    first,
    end,
  );
  if (softcap2 != 0) memory.copy(capBuffer + at, groupScores + at, <usize>count * 16);
  const masked = bandMask || layoutMask || maskKind != 0 || keyMaskHead != 0;
  if (masked || softcap2 != 0 || alibiSlope2 != 0) {
    adjustScores(groupScores, groupRow, rows, keyStart, first, end, bandMask, layoutMask);
  }
  // dP = dO·Vᵀ into the dS buffer.
  computeScores(
    packedGrad + <usize>g * 16 * valueDim,
    packedValues,
    valueDim,
    groupDs,
    keyStart,
    first,
    end,
  );

  const lse2 = v128.load(rowMax + <usize>g * 16);
  const delta = v128.load(rowSum + <usize>g * 16);
  const scale = f32x4.splat(dsScale);
  const zero = f32x4.splat(0);
  const one = f32x4.splat(1);
  const invCap = f32x4.splat(softcap2 != 0 ? 1 / softcap2 : 0);
  let s = groupScores + at;
  let d = groupDs + at;
  let raw = capBuffer + at;
  const sEnd = s + <usize>count * 16;
  const rowHash = dropoutOn ? rowHashes(groupRow) : zero;
  let j = first;
  while (s < sEnd) {
    const p = exp2x4(f32x4.sub(v128.load(s), lse2));
    let dp = v128.load(d);
    let pv = p; // the probability P·V used
    if (dropoutOn) {
      // Forward: O = (P ⊙ M)·V, so dV takes P ⊙ M and dP = (dO·Vᵀ) ⊙ M (0, not NaN, where dropped).
      const m = keepFactors(rowHash, j);
      pv = f32x4.mul(p, m);
      dp = v128.bitselect(f32x4.mul(dp, m), zero, f32x4.ne(m, zero));
    }
    let ds = f32x4.mul(f32x4.mul(p, f32x4.sub(dp, delta)), scale);
    if (softcap2 != 0) {
      // d(c·tanh(x/c))/dx = 1 − tanh²(x/c), from the score before the cap.
      const th = tanhx4(f32x4.mul(v128.load(raw), invCap));
      ds = f32x4.mul(ds, f32x4.sub(one, f32x4.mul(th, th)));
    }
    v128.store(s, pv);
    v128.store(d, v128.bitselect(ds, zero, f32x4.ne(p, zero)));
    s += 16;
    d += 16;
    raw += 16;
    j++;
  }
  // computeScores filled whole 8-key panels: clear the keys outside first..end−1 it touched, then
  // copy the quads of keys first..end−1 lies in, transposed, for the key-gradient kernels.
  const panelStart = <usize>((first / KEY_PANEL) * KEY_PANEL - keyStart) * 16;
  const panelEnd =
    min(<usize>(((end + KEY_PANEL - 1) / KEY_PANEL) * KEY_PANEL - keyStart), <usize>KEY_TILE) * 16;
  const endAt = <usize>(end - keyStart) * 16;
  memory.fill(groupScores + panelStart, 0, at - panelStart);
  memory.fill(groupDs + panelStart, 0, at - panelStart);
  if (panelEnd > endAt) {
    memory.fill(groupScores + endAt, 0, panelEnd - endAt);
    memory.fill(groupDs + endAt, 0, panelEnd - endAt);
  }
  transposeQuads(groupScores, pT, g, first - keyStart, end - keyStart);
  transposeQuads(groupDs, dsT, g, first - keyStart, end - keyStart);

  accumulateValues(
    groupDs + at,
    kHead + <usize>first * kRowBytes,
    kRowBytes,
    count,
    dqAcc + <usize>g * 16 * dqStride,
    dqStride,
    one,
    masked,
  );
  tileTouched = true;
}

// The quads of keys holding tile keys from..to−1 of group g's [key][4 rows] buffer `src` into the
// transposed buffer `dst` ([quad][row][4 keys]), through 4×4 register transposes.
function transposeQuads(src: usize, dst: usize, g: i32, from: i32, to: i32): void {
  for (let quad = from >> 2; quad < (to + 3) >> 2; quad++) {
    const at = src + <usize>quad * 64;
    const k0 = v128.load(at);
    const k1 = v128.load(at, 16);
    const k2 = v128.load(at, 32);
    const k3 = v128.load(at, 48);
    const t0 = f32x4.shuffle(k0, k1, 0, 4, 1, 5);
    const t1 = f32x4.shuffle(k2, k3, 0, 4, 1, 5);
    const t2 = f32x4.shuffle(k0, k1, 2, 6, 3, 7);
    const t3 = f32x4.shuffle(k2, k3, 2, 6, 3, 7);
    const rows = dst + <usize>quad * QUAD_BYTES + <usize>g * 64;
    v128.store(rows, f32x4.shuffle(t0, t1, 0, 1, 4, 5));
    v128.store(rows, f32x4.shuffle(t0, t1, 2, 3, 6, 7), 16);
    v128.store(rows, f32x4.shuffle(t2, t3, 0, 1, 4, 5), 32);
    v128.store(rows, f32x4.shuffle(t2, t3, 2, 3, 6, 7), 48);
  }
}

// dst[key][c] += Σ_row a[key][row] · b[row][c] for `keys` keys × `cols` columns over `rows` rows,
// where `a` is a transposed P or dS buffer ([quad][QUERY_BLOCK][4 keys]), b's rows are `bStep`
// bytes apart and dst's rows `dstStep` bytes apart: dV += Pᵀ·dO and dK += dSᵀ·Q for one tile.
function addKeyGradients(
  a: usize,
  b: usize,
  bStep: usize,
  cols: i32,
  dst: usize,
  dstStep: usize,
  keys: i32,
  rows: i32,
): void {
  const cols8 = cols & ~7;
  const cols4 = cols & ~3;
  let k = 0;
  for (; k + 4 <= keys; k += 4) {
    const row0 = dst + <usize>k * dstStep;
    const quad = a + <usize>(k >> 2) * QUAD_BYTES;
    for (let c = 0; c < cols8; c += 8) {
      addKeys4x8(quad, b + <usize>c * 4, bStep, row0 + <usize>c * 4, dstStep, rows);
    }
  }
  // The columns and keys the 4 × 8 kernel left: 4 columns, then single floats.
  for (let key = 0; key < keys; key++) {
    const from = key < k ? cols8 : 0;
    const ak = a + <usize>(key >> 2) * QUAD_BYTES + <usize>(key & 3) * 4;
    const row = dst + <usize>key * dstStep;
    let c = from;
    for (; c < cols4; c += 4) addKey1x4(ak, b + <usize>c * 4, bStep, row + <usize>c * 4, rows);
    for (; c < cols; c++) addKey1x1(ak, b + <usize>c * 4, bStep, row + <usize>c * 4, rows);
  }
}

// 4 keys × 8 columns: 8 accumulators, per row 2 loads of b and 4 broadcast loads of a (the row's
// 4 keys, side by side in the transposed buffer).
function addKeys4x8(
  quad: usize,
  bc: usize,
  bStep: usize,
  dk: usize,
  dStep: usize,
  rows: i32,
): void {
  let k0lo = v128.load(dk);
  let k0hi = v128.load(dk, 16);
  let k1lo = v128.load(dk + dStep);
  let k1hi = v128.load(dk + dStep, 16);
  let k2lo = v128.load(dk + 2 * dStep);
  let k2hi = v128.load(dk + 2 * dStep, 16);
  let k3lo = v128.load(dk + 3 * dStep);
  let k3hi = v128.load(dk + 3 * dStep, 16);
  let ap = quad;
  let bp = bc;
  const aEnd = quad + <usize>rows * 16;
  while (ap < aEnd) {
    const blo = v128.load(bp);
    const bhi = v128.load(bp, 16);
    let x = v128.load32_splat(ap);
    k0lo = madd(x, blo, k0lo);
    k0hi = madd(x, bhi, k0hi);
    x = v128.load32_splat(ap, 4);
    k1lo = madd(x, blo, k1lo);
    k1hi = madd(x, bhi, k1hi);
    x = v128.load32_splat(ap, 8);
    k2lo = madd(x, blo, k2lo);
    k2hi = madd(x, bhi, k2hi);
    x = v128.load32_splat(ap, 12);
    k3lo = madd(x, blo, k3lo);
    k3hi = madd(x, bhi, k3hi);
    ap += 16;
    bp += bStep;
  }
  v128.store(dk, k0lo);
  v128.store(dk, k0hi, 16);
  v128.store(dk + dStep, k1lo);
  v128.store(dk + dStep, k1hi, 16);
  v128.store(dk + 2 * dStep, k2lo);
  v128.store(dk + 2 * dStep, k2hi, 16);
  v128.store(dk + 3 * dStep, k3lo);
  v128.store(dk + 3 * dStep, k3hi, 16);
}

// One key × 4 columns, and one key × one column; `ak` is the key's first lane (row stride 16).
function addKey1x4(ak: usize, bc: usize, bStep: usize, dk: usize, rows: i32): void {
  let acc = v128.load(dk);
  let bp = bc;
  for (let row = 0; row < rows; row++) {
    acc = madd(v128.load32_splat(ak + <usize>row * 16), v128.load(bp), acc);
    bp += bStep;
  }
  v128.store(dk, acc);
}

function addKey1x1(ak: usize, bc: usize, bStep: usize, dk: usize, rows: i32): void {
  let acc = load<f32>(dk);
  let bp = bc;
  for (let row = 0; row < rows; row++) {
    acc += load<f32>(ak + <usize>row * 16) * load<f32>(bp);
    bp += bStep;
  }
  store<f32>(dk, acc);
}
