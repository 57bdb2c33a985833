// The kernel's parameter block (assembly/shared.ts SDPA_* offsets): the operands' addresses and
// strides and the plan's sizes and options, written into WASM memory for assembly/sdpa.ts.

import * as P from "../../assembly/shared.js";
import { type Call } from "../runtime/call.js";
import { type Tensor } from "../core/tensor.js";
import { type AttentionPlan } from "./plan.js";

/** Where an operand of the kernel lives: a byte address and element strides of batch, head, row. */
export interface Operand {
  ptr: number;
  strideB: number;
  strideH: number;
  strideRow: number;
}

/** Operand of a contiguous [B, heads, rows, dim] tensor at `ptr`. */
export function contiguousOperand(ptr: number, heads: number, rows: number, dim: number): Operand {
  return { ptr, strideB: heads * rows * dim, strideH: rows * dim, strideRow: dim };
}

/** The operands of one kernel call. `keyMask` (optional) is a uint8 [B, Nk] padding mask. */
export interface AttentionOperands {
  q: Operand;
  k: Operand;
  v: Operand;
  out: Operand;
  keyMask?: { ptr: number; strideB: number };
  /** Block-sparse layout, uint8 [Nq/block, cols] per head (strideH elements apart; 0 = shared). */
  layout?: { ptr: number; block: number; strideH: number; cols: number };
  /** A mask already in WASM memory, used instead of the plan's (kind and strides as MaskPlan). */
  mask?: { ptr: number; kind: number; strides: readonly number[] };
}

/** What setUpAttention leaves: the scratch each thread needs, the lse buffer, and the results. */
export interface AttentionSetUp {
  /** The parameter block it filled. */
  block: ParamBlock;
  scratchBytes: number;
  /** Where the kernel writes the lse [B,H,Nq] (0 when the plan does not ask for it). */
  lsePtr: number;
  results(): { weights?: Float32Array; lse?: Float32Array };
}

/**
 * The fields of the kernel's parameter block and their byte offsets (assembly/shared.ts, read by
 * assembly/sdpa.ts): the one map of the block on this side. scale, softcap and dropoutScale are
 * float32; every other field an int32 (sizes, strides in elements, addresses in bytes).
 */
export const PARAM_FIELDS = {
  q: P.SDPA_Q,
  k: P.SDPA_K,
  v: P.SDPA_V,
  out: P.SDPA_OUT,
  weights: P.SDPA_WEIGHTS,
  lse: P.SDPA_LSE,
  mask: P.SDPA_MASK,
  maskKind: P.SDPA_MASK_KIND,
  maskStrideB: P.SDPA_MASK_STRIDE_B,
  maskStrideH: P.SDPA_MASK_STRIDE_H,
  maskStrideQ: P.SDPA_MASK_STRIDE_Q,
  maskStrideK: P.SDPA_MASK_STRIDE_K,
  B: P.SDPA_B,
  H: P.SDPA_H,
  Hkv: P.SDPA_HKV,
  Nq: P.SDPA_NQ,
  Nk: P.SDPA_NK,
  D: P.SDPA_D,
  Dv: P.SDPA_DV,
  scale: P.SDPA_SCALE,
  softcap: P.SDPA_SOFTCAP,
  alibi: P.SDPA_ALIBI,
  diagOffset: P.SDPA_DIAG_OFFSET,
  structured: P.SDPA_STRUCTURED,
  windowLeft: P.SDPA_WINDOW_LEFT,
  windowRight: P.SDPA_WINDOW_RIGHT,
  globalKeys: P.SDPA_GLOBAL_KEYS,
  globalRows: P.SDPA_GLOBAL_ROWS,
  qStrideB: P.SDPA_Q_STRIDE_B,
  qStrideH: P.SDPA_Q_STRIDE_H,
  qStrideRow: P.SDPA_Q_STRIDE_ROW,
  kStrideB: P.SDPA_K_STRIDE_B,
  kStrideH: P.SDPA_K_STRIDE_H,
  kStrideRow: P.SDPA_K_STRIDE_ROW,
  vStrideB: P.SDPA_V_STRIDE_B,
  vStrideH: P.SDPA_V_STRIDE_H,
  vStrideRow: P.SDPA_V_STRIDE_ROW,
  outStrideB: P.SDPA_OUT_STRIDE_B,
  outStrideH: P.SDPA_OUT_STRIDE_H,
  outStrideRow: P.SDPA_OUT_STRIDE_ROW,
  keyMask: P.SDPA_KEY_MASK,
  keyMaskStrideB: P.SDPA_KEY_MASK_STRIDE_B,
  layout: P.SDPA_LAYOUT,
  layoutBlock: P.SDPA_LAYOUT_BLOCK,
  layoutStrideH: P.SDPA_LAYOUT_STRIDE_H,
  layoutCols: P.SDPA_LAYOUT_COLS,
  dropoutThreshold: P.SDPA_DROPOUT_THRESHOLD,
  dropoutScale: P.SDPA_DROPOUT_SCALE,
  dropoutSeed: P.SDPA_DROPOUT_SEED,
} as const;

export type ParamField = keyof typeof PARAM_FIELDS;
/** A field's byte offset: `PARAM_FIELDS.scale`, etc. (numbers, so that every write is a plain store). */
export type ParamOffset = (typeof PARAM_FIELDS)[ParamField];
const F = PARAM_FIELDS;

function isFloat(offset: ParamOffset): boolean {
  return offset === F.scale || offset === F.softcap || offset === F.dropoutScale;
}

type OperandName = "q" | "k" | "v" | "out";
const OPERAND_OFFSETS: Record<
  OperandName,
  readonly [ParamOffset, ParamOffset, ParamOffset, ParamOffset]
> = {
  q: [F.q, F.qStrideB, F.qStrideH, F.qStrideRow],
  k: [F.k, F.kStrideB, F.kStrideH, F.kStrideRow],
  v: [F.v, F.vStrideB, F.vStrideH, F.vStrideRow],
  out: [F.out, F.outStrideB, F.outStrideH, F.outStrideRow],
};

/** A parameter block in WASM memory, read and written by field (`block.set(PARAM_FIELDS.Nk, n)`). */
export class ParamBlock {
  readonly ptr: number;
  readonly #call: Call;

  constructor(call: Call, ptr: number) {
    this.#call = call;
    this.ptr = ptr;
  }

  get(offset: ParamOffset): number {
    const ws = this.#call.workspace;
    const at = (this.ptr + offset) >>> 2;
    return isFloat(offset) ? ws.f32[at] : ws.i32[at];
  }

  /** Writes a field (a seed above 2^31 is stored as its int32 bit pattern). */
  set(offset: ParamOffset, value: number): void {
    const ws = this.#call.workspace;
    const at = (this.ptr + offset) >>> 2;
    if (isFloat(offset)) ws.f32[at] = value;
    else ws.i32[at] = value | 0;
  }

  /** An operand's address and its strides of batch, head and row. */
  setOperand(name: OperandName, o: Operand): void {
    const [ptr, strideB, strideH, strideRow] = OPERAND_OFFSETS[name];
    this.set(ptr, o.ptr);
    this.set(strideB, o.strideB);
    this.set(strideH, o.strideH);
    this.set(strideRow, o.strideRow);
  }

  /** This block as a copy of `other`. */
  copyFrom(other: ParamBlock): void {
    const i32 = this.#call.workspace.i32;
    i32.copyWithin(this.ptr >>> 2, other.ptr >>> 2, (other.ptr + P.SDPA_PARAMS_BYTES) >>> 2);
  }
}

/** Stages what the kernel needs besides the operands and fills the parameter block at `params`. */
export function setUpAttention(
  call: Call,
  p: AttentionPlan,
  operands: AttentionOperands,
  params: number,
): AttentionSetUp {
  const { exports } = call.kernels;
  const weightsLength = p.B * p.H * p.Nq * p.Nk;
  const weightsPtr = p.returnWeights ? call.alloc(weightsLength * 4, "weights") : 0;
  const lsePtr = p.returnLse ? call.alloc(p.B * p.H * p.Nq * 4, "lse") : 0;
  let maskPtr = 0;
  const mask = operands.mask ?? p.mask;
  if (operands.mask) maskPtr = operands.mask.ptr;
  else if (p.mask) {
    const t = p.mask.tensor;
    maskPtr =
      t.data instanceof Uint8Array
        ? call.inputU8(t as Tensor<Uint8Array>, "mask")
        : call.inputF32(t as Tensor, "mask");
  }
  let alibiPtr = 0;
  if (p.alibi) alibiPtr = call.inputF32({ data: p.alibi, shape: [p.H] }, "alibiSlopes");
  let globalKeysPtr = 0;
  let globalRowsPtr = 0;
  if (p.globalKeys && p.globalRows) {
    globalKeysPtr = call.inputU8({ data: p.globalKeys, shape: [p.Nk] }, "globalTokens");
    globalRowsPtr = call.inputU8({ data: p.globalRows, shape: [p.Nq] }, "globalTokens");
  }

  const block = new ParamBlock(call, params);
  block.setOperand("q", operands.q);
  block.setOperand("k", operands.k);
  block.setOperand("v", operands.v);
  block.setOperand("out", operands.out);
  block.set(F.weights, weightsPtr);
  block.set(F.lse, lsePtr);
  block.set(F.mask, maskPtr);
  block.set(F.maskKind, mask ? mask.kind : P.MASK_NONE);
  const ms = mask ? mask.strides : [0, 0, 0, 0];
  block.set(F.maskStrideB, ms[0]);
  block.set(F.maskStrideH, ms[1]);
  block.set(F.maskStrideQ, ms[2]);
  block.set(F.maskStrideK, ms[3]);
  block.set(F.keyMask, operands.keyMask ? operands.keyMask.ptr : 0);
  block.set(F.keyMaskStrideB, operands.keyMask ? operands.keyMask.strideB : 0);
  block.set(F.layout, operands.layout ? operands.layout.ptr : 0);
  block.set(F.layoutBlock, operands.layout ? operands.layout.block : 0);
  block.set(F.layoutStrideH, operands.layout ? operands.layout.strideH : 0);
  block.set(F.layoutCols, operands.layout ? operands.layout.cols : 0);
  block.set(F.B, p.B);
  block.set(F.H, p.H);
  block.set(F.Hkv, p.Hkv);
  block.set(F.Nq, p.Nq);
  block.set(F.Nk, p.Nk);
  block.set(F.D, p.D);
  block.set(F.Dv, p.Dv);
  block.set(F.scale, p.scale);
  block.set(F.softcap, p.softcap);
  block.set(F.alibi, alibiPtr);
  block.set(F.diagOffset, p.diagOffset);
  block.set(F.structured, p.structured ? 1 : 0);
  block.set(F.windowLeft, p.windowLeft);
  block.set(F.windowRight, p.windowRight);
  block.set(F.globalKeys, globalKeysPtr);
  block.set(F.globalRows, globalRowsPtr);
  block.set(F.dropoutThreshold, p.dropout ? p.dropout.threshold : 0);
  block.set(F.dropoutScale, p.dropout ? p.dropout.scale : 0);
  block.set(F.dropoutSeed, p.dropout ? p.dropout.seed : 0);

  return {
    block,
    scratchBytes: exports.sdpaScratchBytes(p.D, p.Dv, p.Nk),
    lsePtr,
    results: () => ({
      weights: p.returnWeights ? call.outputF32(weightsPtr, weightsLength) : undefined,
      lse: p.returnLse ? call.outputF32(lsePtr, p.B * p.H * p.Nq) : undefined,
    }),
  };
}
