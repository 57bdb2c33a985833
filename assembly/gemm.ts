// y = x·Wᵀ + b, the engine of every projection: x [M, K] (row stride ldx), W [N, K] in PyTorch's
// (out_features, in_features) layout, b [N] or none, y [M, N] (row stride ldy).
//
// Packed, register-blocked GEMM (Goto's loop order). W is packed once (packWeights) into blocks of
// GEMM_KC depth, each a row of 8-column panels [kc][8], zero-padded past N; a MultiHeadAttention
// packs its weights at construction and reuses them. Per call, GEMM_MC × GEMM_KC blocks of x are
// packed into micro-panels [kc][GEMM_MR] (zero-padded past M), and the micro-kernel computes a
// GEMM_MR × 8 tile of y over one depth block: 8 accumulators, 2 weight loads and one broadcast
// load per row per step. The first depth block starts from the bias (or zero), later ones add to y.

import { GEMM_MR, GEMM_NR, GEMM_KC, GEMM_MC } from "./shared";
import { madd } from "./madd";
import { packPanels } from "./pack";

function panelsOf(n: i32): i32 {
  return (n + GEMM_NR - 1) / GEMM_NR;
}

/** Bytes of a packed weight matrix [N, K]. */
export function packedWeightsBytes(n: i32, k: i32): usize {
  if (!ASC_FEATURE_SIMD) return <usize>n * k * 4; // the scalar build keeps W row-major
  return <usize>panelsOf(n) * GEMM_NR * k * 4;
}

/** Bytes of scratch gemm needs: one packed block of x, then the edge tile. */
export function gemmScratchBytes(): usize {
  return <usize>GEMM_MC * GEMM_KC * 4 + GEMM_MR * GEMM_NR * 4;
}

/**
 * Packs W [N, K] (row stride ldw) for gemm: depth block kb (depth kc = min(GEMM_KC, K − kb·GEMM_KC))
 * starts at dst + kb·GEMM_KC·panels·32 and holds `panels` panels of kc × 8 floats.
 */
export function packWeights(w: usize, n: i32, k: i32, ldw: i32, dst: usize): void {
  if (!ASC_FEATURE_SIMD) {
    for (let r = 0; r < n; r++)
      memory.copy(dst + <usize>r * k * 4, w + <usize>r * ldw * 4, <usize>k * 4);
    return;
  }
  const panels = panelsOf(n);
  for (let k0 = 0; k0 < k; k0 += GEMM_KC) {
    const kc = min(GEMM_KC, k - k0);
    packPanels(w + <usize>k0 * 4, <usize>ldw * 4, n, kc, dst + <usize>k0 * panels * GEMM_NR * 4);
  }
}

/**
 * y [M, N] = x [M, K] · Wᵀ + bias, with W packed by packWeights. `bias` (N floats) may be 0 for none.
 * `scratch` holds gemmScratchBytes() bytes.
 */
export function gemm(
  x: usize,
  m: i32,
  k: i32,
  ldx: i32,
  packedW: usize,
  n: i32,
  bias: usize,
  y: usize,
  ldy: i32,
  scratch: usize,
): void {
  if (!ASC_FEATURE_SIMD) {
    scalarGemm(x, m, k, ldx, packedW, n, bias, y, ldy);
    return;
  }
  const panels = panelsOf(n);
  // A tile of y that reaches past M or N is computed in the scratch's edge tile, then copied out.
  const edgeTile = scratch + <usize>GEMM_MC * GEMM_KC * 4;
  if (k == 0) {
    fillRows(y, m, n, ldy, bias);
    return;
  }
  for (let k0 = 0; k0 < k; k0 += GEMM_KC) {
    const kc = min(GEMM_KC, k - k0);
    const wBlock = packedW + <usize>k0 * panels * GEMM_NR * 4;
    const first = k0 == 0;
    for (let m0 = 0; m0 < m; m0 += GEMM_MC) {
      const mc = min(GEMM_MC, m - m0);
      packInputs(x + (<usize>m0 * ldx + k0) * 4, mc, kc, ldx, scratch);
      for (let p = 0; p < panels; p++) {
        const col = p * GEMM_NR;
        const cols = min(GEMM_NR, n - col);
        const wPanel = wBlock + <usize>p * kc * GEMM_NR * 4;
        const biasAt = first && bias ? bias + <usize>col * 4 : 0;
        for (let r0 = 0; r0 < mc; r0 += GEMM_MR) {
          const rows = min(GEMM_MR, mc - r0);
          const xPanel = scratch + <usize>r0 * kc * 4;
          const yTile = y + (<usize>(m0 + r0) * ldy + col) * 4;
          if (rows == GEMM_MR && cols == GEMM_NR) {
            microKernel(xPanel, wPanel, kc, yTile, <usize>ldy * 4, first, biasAt);
          } else {
            edgeKernel(xPanel, wPanel, kc, yTile, ldy, rows, cols, first, biasAt, edgeTile);
          }
        }
      }
    }
  }
}

// y rows = bias (or 0): the product with an empty depth.
function fillRows(y: usize, m: i32, n: i32, ldy: i32, bias: usize): void {
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < n; c++) {
      store<f32>(y + (<usize>r * ldy + c) * 4, bias ? load<f32>(bias + <usize>c * 4) : 0);
    }
  }
}

// Packs mc × kc of x into micro-panels of GEMM_MR rows, [kc][GEMM_MR] each, zero-padding past mc.
function packInputs(x: usize, mc: i32, kc: i32, ldx: i32, dst: usize): void {
  for (let r0 = 0; r0 < mc; r0 += GEMM_MR) {
    const panel = dst + <usize>r0 * kc * 4;
    for (let r = 0; r < GEMM_MR; r++) {
      let out = panel + r * 4;
      if (r0 + r < mc) {
        let src = x + <usize>(r0 + r) * ldx * 4;
        for (let i = 0; i < kc; i++) {
          store<f32>(out, load<f32>(src));
          src += 4;
          out += GEMM_MR * 4;
        }
      } else {
        for (let i = 0; i < kc; i++) {
          store<f32>(out, 0);
          out += GEMM_MR * 4;
        }
      }
    }
  }
}

// A full GEMM_MR × 8 tile: y = (first ? bias : y) + xPanel · wPanel over kc.
function microKernel(
  xPanel: usize,
  wPanel: usize,
  kc: i32,
  y: usize,
  rowBytes: usize,
  first: bool,
  bias: usize,
): void {
  let a0lo: v128, a0hi: v128, a1lo: v128, a1hi: v128, a2lo: v128, a2hi: v128;
  let a3lo: v128, a3hi: v128;
  if (first) {
    const lo = bias ? v128.load(bias) : f32x4.splat(0);
    const hi = bias ? v128.load(bias, 16) : f32x4.splat(0);
    a0lo = a1lo = a2lo = a3lo = lo;
    a0hi = a1hi = a2hi = a3hi = hi;
  } else {
    a0lo = v128.load(y);
    a0hi = v128.load(y, 16);
    a1lo = v128.load(y + rowBytes);
    a1hi = v128.load(y + rowBytes, 16);
    a2lo = v128.load(y + 2 * rowBytes);
    a2hi = v128.load(y + 2 * rowBytes, 16);
    a3lo = v128.load(y + 3 * rowBytes);
    a3hi = v128.load(y + 3 * rowBytes, 16);
  }
  let xp = xPanel;
  let wp = wPanel;
  const xEnd = xPanel + <usize>kc * GEMM_MR * 4;
  while (xp < xEnd) {
    const wlo = v128.load(wp);
    const whi = v128.load(wp, 16);
    let a = v128.load32_splat(xp);
    a0lo = madd(a, wlo, a0lo);
    a0hi = madd(a, whi, a0hi);
    a = v128.load32_splat(xp, 4);
    a1lo = madd(a, wlo, a1lo);
    a1hi = madd(a, whi, a1hi);
    a = v128.load32_splat(xp, 8);
    a2lo = madd(a, wlo, a2lo);
    a2hi = madd(a, whi, a2hi);
    a = v128.load32_splat(xp, 12);
    a3lo = madd(a, wlo, a3lo);
    a3hi = madd(a, whi, a3hi);
    xp += GEMM_MR * 4;
    wp += GEMM_NR * 4;
  }
  v128.store(y, a0lo);
  v128.store(y, a0hi, 16);
  v128.store(y + rowBytes, a1lo);
  v128.store(y + rowBytes, a1hi, 16);
  v128.store(y + 2 * rowBytes, a2lo);
  v128.store(y + 2 * rowBytes, a2hi, 16);
  v128.store(y + 3 * rowBytes, a3lo);
  v128.store(y + 3 * rowBytes, a3hi, 16);
}

// A tile cut by M or N: computed in edgeTile (from the valid part of y), then copied back.
function edgeKernel(
  xPanel: usize,
  wPanel: usize,
  kc: i32,
  y: usize,
  ldy: i32,
  rows: i32,
  cols: i32,
  first: bool,
  bias: usize,
  edgeTile: usize,
): void {
  const tileRow: i32 = GEMM_NR * 4;
  if (first) {
    for (let r = 0; r < GEMM_MR; r++) {
      for (let c = 0; c < GEMM_NR; c++) {
        const b: f32 = bias && c < cols ? load<f32>(bias + <usize>c * 4) : 0;
        store<f32>(edgeTile + r * tileRow + c * 4, b);
      }
    }
  } else {
    for (let r = 0; r < GEMM_MR; r++) {
      for (let c = 0; c < GEMM_NR; c++) {
        const v: f32 = r < rows && c < cols ? load<f32>(y + (<usize>r * ldy + c) * 4) : 0;
        store<f32>(edgeTile + r * tileRow + c * 4, v);
      }
    }
  }
  microKernel(xPanel, wPanel, kc, edgeTile, <usize>tileRow, false, 0);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      store<f32>(y + (<usize>r * ldy + c) * 4, load<f32>(edgeTile + r * tileRow + c * 4));
    }
  }
}

// The scalar build: y = x·Wᵀ + b with W row-major [N, K], one float at a time.
function scalarGemm(
  x: usize,
  m: i32,
  k: i32,
  ldx: i32,
  w: usize,
  n: i32,
  bias: usize,
  y: usize,
  ldy: i32,
): void {
  for (let r = 0; r < m; r++) {
    const xr = x + <usize>r * ldx * 4;
    for (let c = 0; c < n; c++) {
      const wc = w + <usize>c * k * 4;
      let sum: f32 = bias ? load<f32>(bias + <usize>c * 4) : 0;
      for (let i = 0; i < k; i++)
        sum += load<f32>(xr + <usize>i * 4) * load<f32>(wc + <usize>i * 4);
      store<f32>(y + (<usize>r * ldy + c) * 4, sum);
    }
  }
}
