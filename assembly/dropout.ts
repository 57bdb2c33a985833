// Dropout of the attention probabilities from a counter-based generator: whether key j survives for
// query row i of (batch, head) bh is a hash of (seed, bh, i, j), so the backward pass regenerates
// exactly the forward pass's mask without storing it, and any split of the work (threads, tiles)
// draws the same mask. The hash is MurmurHash3's 32-bit finaliser (fmix32) applied three times:
//   x_h = fmix(seed ⊕ (bh+1)·0x9E3779B1),  x_i = fmix(x_h ⊕ (i+1)·0x85EBCA77),
//   x   = fmix(x_i ⊕ (j+1)·0xC2B2AE3D);    kept ⇔ (x >>> 8) ≥ round(p·2^24).
// test/reference-dropout.ts computes the same bits with Math.imul.

import { SDPA_DROPOUT_THRESHOLD, SDPA_DROPOUT_SCALE, SDPA_DROPOUT_SEED } from "./shared";

const HEAD_MUL: u32 = 0x9e3779b1;
const ROW_MUL: u32 = 0x85ebca77;
const KEY_MUL: u32 = 0xc2b2ae3d;

// ---- The current call and head ----
export let dropoutOn: bool = false;
let threshold: i32 = 0;
let keepScale: f32 = 0;
let seed: u32 = 0;
let headHash: u32 = 0;

export function beginDropout(params: usize): void {
  threshold = load<i32>(params + SDPA_DROPOUT_THRESHOLD);
  keepScale = load<f32>(params + SDPA_DROPOUT_SCALE);
  seed = load<u32>(params + SDPA_DROPOUT_SEED);
  dropoutOn = threshold != 0;
}

export function dropoutHead(bh: i32): void {
  headHash = fmix(seed ^ (<u32>(bh + 1) * HEAD_MUL));
}

function fmix(x: u32): u32 {
  x ^= x >> 16;
  x *= 0x85ebca6b;
  x ^= x >> 13;
  x *= 0xc2b2ae35;
  return x ^ (x >> 16);
}

function fmix4(x: v128): v128 {
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, i32x4.splat(0x85ebca6b));
  x = v128.xor(x, i32x4.shr_u(x, 13));
  x = i32x4.mul(x, i32x4.splat(0xc2b2ae35));
  return v128.xor(x, i32x4.shr_u(x, 16));
}

/** The hashes of 4 consecutive query rows from `row` of the current head: one i32 per lane. */
export function rowHashes(row: i32): v128 {
  const rows = i32x4.add(i32x4.splat(row + 1), i32x4(0, 1, 2, 3));
  return fmix4(v128.xor(i32x4.splat(headHash), i32x4.mul(rows, i32x4.splat(ROW_MUL))));
}

export function rowHash(row: i32): u32 {
  return fmix(headHash ^ (<u32>(row + 1) * ROW_MUL));
}

/** Per lane (query row, from rowHashes), 1/(1 − p) where key j survives, 0 where it is dropped. */
export function keepFactors(rows: v128, j: i32): v128 {
  const x = fmix4(v128.xor(rows, i32x4.splat(<i32>(<u32>(j + 1) * KEY_MUL))));
  const kept = i32x4.ge_s(i32x4.shr_u(x, 8), i32x4.splat(threshold));
  return v128.and(f32x4.splat(keepScale), kept);
}

/** Per lane, the factor of keys j..j+3 of one query row (rowHash). */
export function keepFactorsOfKeys(row: u32, j: i32): v128 {
  const keys = i32x4.add(i32x4.splat(j + 1), i32x4(0, 1, 2, 3));
  const x = fmix4(v128.xor(i32x4.splat(row), i32x4.mul(keys, i32x4.splat(KEY_MUL))));
  const kept = i32x4.ge_s(i32x4.shr_u(x, 8), i32x4.splat(threshold));
  return v128.and(f32x4.splat(keepScale), kept);
}

/** The factor of key j for one query row (rowHash): the scalar build's and the tails' version. */
export function keepFactor(row: u32, j: i32): f32 {
  const x = fmix(row ^ (<u32>(j + 1) * KEY_MUL));
  return <i32>(x >> 8) >= threshold ? keepScale : 0;
}
