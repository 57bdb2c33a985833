// Constants shared by the AssemblyScript kernels and the TypeScript loader. This file is compiled by
// both asc and tsc, so it holds only plain integer constants: no types, no functions.

// ---- Tiling of the attention kernel (assembly/sdpa.ts) ----
// Query rows are processed in blocks of QUERY_BLOCK rows (a multiple of 4: the micro-kernels work on
// groups of 4 rows), keys in tiles of KEY_TILE keys (a multiple of 8: key panels hold 8 keys).
// 64 × 64 keeps one packed key tile, one value tile and a group's scores inside L1; sizes from 32 to 128
// changed speed by only a few percent on the development machine.
export const QUERY_BLOCK = 64;
export const KEY_TILE = 64;
export const KEY_PANEL = 8;

// ---- Blocking of the GEMM (assembly/gemm.ts) ----
// Micro-tile GEMM_MR rows × GEMM_NR columns: 8 accumulators. 6 × 8 (12 accumulators) made V8 spill
// one accumulator per step and ran at 27.5 GFLOP/s against 39 for 4 × 8 on the development
// machine. The depth is split into blocks of GEMM_KC so that one packed weight panel
// (GEMM_KC × 8 floats = 8 KiB) and one packed input micro-panel stay in L1; GEMM_MC rows of input
// are packed at a time (L2).
export const GEMM_MR = 4;
export const GEMM_NR = 8;
export const GEMM_KC = 256;
export const GEMM_MC = 96;

// ---- Memory ----
// Every workspace allocation starts on a cache line and leaves ALLOC_SLACK bytes of readable padding
// after its end: vector kernels may read (never write) up to 7 floats past a row.
export const ALLOC_ALIGN = 64;
export const ALLOC_SLACK = 64;

// ---- Mask kinds ----
export const MASK_NONE = 0;
export const MASK_BOOL = 1;
export const MASK_ADDITIVE = 2;

// ---- Parameter block of sdpaForward: byte offsets of 4-byte fields ----
// Pointers and counts are i32 (wasm32), strides are in elements, floats are f32.
export const SDPA_Q = 0;
export const SDPA_K = 4;
export const SDPA_V = 8;
export const SDPA_OUT = 12;
export const SDPA_WEIGHTS = 16; // 0: not requested
export const SDPA_LSE = 20; // 0: not requested
export const SDPA_MASK = 24; // 0: no mask
export const SDPA_MASK_KIND = 28;
export const SDPA_MASK_STRIDE_B = 32;
export const SDPA_MASK_STRIDE_H = 36;
export const SDPA_MASK_STRIDE_Q = 40;
export const SDPA_MASK_STRIDE_K = 44;
export const SDPA_B = 48;
export const SDPA_H = 52;
export const SDPA_HKV = 56;
export const SDPA_NQ = 60;
export const SDPA_NK = 64;
export const SDPA_D = 68;
export const SDPA_DV = 72;
export const SDPA_SCALE = 76; // f32
export const SDPA_SOFTCAP = 80; // f32, 0: none
export const SDPA_ALIBI = 84; // pointer to H f32 slopes, 0: none
export const SDPA_DIAG_OFFSET = 88; // the diagonal of query row i is key i + offset
export const SDPA_STRUCTURED = 92; // 1 when causal or window limit the keys
export const SDPA_WINDOW_LEFT = 96; // keys j >= i + offset - left (clamped to WINDOW_UNBOUNDED)
export const SDPA_WINDOW_RIGHT = 100; // keys j <= i + offset + right (causal makes it <= 0)
export const SDPA_GLOBAL_KEYS = 104; // pointer to Nk bytes (1 = global key), 0: none
export const SDPA_GLOBAL_ROWS = 108; // pointer to Nq bytes (1 = global query row), 0: none
export const SDPA_Q_STRIDE_B = 112;
export const SDPA_Q_STRIDE_H = 116;
export const SDPA_Q_STRIDE_ROW = 120;
export const SDPA_K_STRIDE_B = 124;
export const SDPA_K_STRIDE_H = 128;
export const SDPA_K_STRIDE_ROW = 132;
export const SDPA_V_STRIDE_B = 136;
export const SDPA_V_STRIDE_H = 140;
export const SDPA_V_STRIDE_ROW = 144;
export const SDPA_OUT_STRIDE_B = 148;
export const SDPA_OUT_STRIDE_H = 152;
export const SDPA_OUT_STRIDE_ROW = 156;
export const SDPA_KEY_MASK = 160; // pointer to uint8 [B, Nk] (1 = real key), 0: none
export const SDPA_KEY_MASK_STRIDE_B = 164;
export const SDPA_LAYOUT = 168; // block-sparse layout, uint8 [Nq/bs, Nk/bs] per head, 0: none
export const SDPA_LAYOUT_BLOCK = 172; // bs
export const SDPA_LAYOUT_STRIDE_H = 176; // elements between heads' layouts (0: shared)
export const SDPA_LAYOUT_COLS = 180; // Nk/bs
// Dropout of the attention probabilities (assembly/dropout.ts): a key survives when the top 24 bits
// of its hash are >= the threshold round(p·2^24); survivors are scaled by 1/(1 − p). Threshold 0: off.
export const SDPA_DROPOUT_THRESHOLD = 184;
export const SDPA_DROPOUT_SCALE = 188; // f32, 1/(1 − p)
export const SDPA_DROPOUT_SEED = 192; // u32
export const SDPA_PARAMS_BYTES = 196;

// A window bound of Infinity is stored as this (far beyond any sequence length wasm32 can hold).
export const WINDOW_UNBOUNDED = 0x3fffffff;
