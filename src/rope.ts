// Rotary position embedding (RoPE, Su et al.): applyRope, and the in-place form MultiHeadAttention
// uses on its projected queries and keys. Angles pos · base^(−2t/D) and their cos/sin are computed in
// float64 on the JavaScript side (positions can be large); the rotation runs in wasm (assembly/rope.ts).

import { type Call, stagedBytes, withCall } from "./call.js";
import { AttentionError } from "./errors.js";
import type { Operand } from "./sdpa.js";
import { attentionDims } from "./shapes.js";
import { optionKeys } from "./option-keys.js";
import {
  asTensor,
  checkOptionsObject,
  checkTensor,
  describe,
  type Tensor,
  type TensorInput,
} from "./tensor.js";
import { Workspace } from "./workspace.js";

/** A validated rope configuration. */
export interface RopeConfig {
  base: number;
  style: "neox" | "gptj";
}

export interface ApplyRopeOptions {
  /** Default 10000. */
  base?: number;
  /** "neox" (default): rotate-half pairs (t, t + D/2); "gptj": adjacent pairs (2t, 2t + 1). */
  style?: "neox" | "gptj";
  /** One position per row N; default positionOffset + 0..N−1. */
  positions?: Int32Array | readonly number[];
  positionOffset?: number;
}

const OP = "applyRope";
const APPLY_ROPE_KEYS = optionKeys<ApplyRopeOptions>({
  base: true,
  style: true,
  positions: true,
  positionOffset: true,
});
const STYLE_CODE = { neox: 0, gptj: 1 } as const;

export function checkRopeConfig(
  op: string,
  name: string,
  options: { base?: number; style?: "neox" | "gptj" },
  headDim: number,
): RopeConfig {
  if (typeof options !== "object" || options === null) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: ${name} must be an object, got ${describe(options)}`,
    );
  }
  const base = options.base ?? 10000;
  if (typeof base !== "number" || !(base > 0) || !Number.isFinite(base)) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: ${name}.base must be a positive number, got ${describe(base)}`,
    );
  }
  const style = options.style ?? "neox";
  if (style !== "neox" && style !== "gptj") {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: ${name}.style must be "neox" or "gptj", got ${describe(style)}`,
    );
  }
  if (headDim % 2 !== 0) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: rotary embedding needs an even head dim, got ${headDim}`,
    );
  }
  return { base, style };
}

/** Bytes of the cos/sin table for `rows` rows of head dim d. */
export function ropeTableBytes(rows: number, d: number): number {
  return rows * d * 8;
}

/**
 * Rotates x [B,H,N,D] (rank 2–4, D even) by the rotary embedding of each row's position; returns a
 * new tensor of the same shape.
 */
export function applyRope(x: TensorInput, options: ApplyRopeOptions = {}): Tensor {
  x = asTensor(OP, "x", x);
  checkTensor(OP, "x", x, ["float32"]);
  checkOptionsObject(OP, options, APPLY_ROPE_KEYS);
  const [B, H, N, D] = attentionDims(OP, "x", x);
  const config = checkRopeConfig(OP, "options", options, D);
  const positions = rowPositions(options, N);
  const n = x.data.length;
  return withCall(
    OP,
    (k) =>
      stagedBytes(x, k) + Workspace.blockSize(n * 4) + Workspace.blockSize(ropeTableBytes(N, D)),
    (call) => {
      const src = call.inputF32(x, "x");
      const dst = call.alloc(n * 4, "output");
      call.workspace.u8.copyWithin(dst, src, src + n * 4);
      const table = call.alloc(ropeTableBytes(N, D), "rope table");
      writeTable(call, config, positions, D, table);
      call.kernels.exports.ropeApply(
        dst,
        B,
        H,
        N,
        H * N * D,
        N * D,
        D,
        D,
        table,
        STYLE_CODE[config.style],
      );
      return { data: call.outputF32(dst, n), shape: [...x.shape] };
    },
  );
}

/** Rotates `rows` rows of each (batch, head) of an operand in place, rows at positions offset.. */
export function applyRopeInPlace(
  call: Call,
  config: RopeConfig,
  operand: Operand,
  batch: number,
  heads: number,
  rows: number,
  d: number,
  positionOffset: number,
  table: number,
): void {
  const positions = Array.from({ length: rows }, (_, i) => positionOffset + i);
  writeTable(call, config, positions, d, table);
  call.kernels.exports.ropeApply(
    operand.ptr,
    batch,
    heads,
    rows,
    operand.strideB,
    operand.strideH,
    operand.strideRow,
    d,
    table,
    STYLE_CODE[config.style],
  );
}

function rowPositions(options: ApplyRopeOptions, N: number): ArrayLike<number> {
  if (options.positions !== undefined) {
    const p = options.positions;
    if (!(p instanceof Int32Array) && !Array.isArray(p)) {
      throw new AttentionError(
        "BAD_DTYPE",
        `${OP}: positions must be an Int32Array or number[], got ${describe(p)}`,
      );
    }
    if (p.length !== N) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${OP}: positions has ${p.length} entries but x has N = ${N} rows (one position per row)`,
      );
    }
    for (const pos of p) {
      if (!Number.isInteger(pos)) {
        throw new AttentionError("BAD_OPTION", `${OP}: positions must be integers, got ${pos}`);
      }
    }
    return p;
  }
  const offset = options.positionOffset ?? 0;
  if (!Number.isInteger(offset)) {
    throw new AttentionError(
      "BAD_OPTION",
      `${OP}: positionOffset must be an integer, got ${describe(offset)}`,
    );
  }
  return Array.from({ length: N }, (_, i) => offset + i);
}

// Per row: C [D] then S [D], with out[i] = x[i]·C[i] + x[partner(i)]·S[i] (see assembly/rope.ts).
function writeTable(
  call: Call,
  config: RopeConfig,
  positions: ArrayLike<number>,
  d: number,
  table: number,
): void {
  const half = d / 2;
  const f32 = call.workspace.f32;
  const invFreq = Array.from({ length: half }, (_, t) => Math.pow(config.base, (-2 * t) / d));
  for (let r = 0; r < positions.length; r++) {
    const c = (table >>> 2) + r * 2 * d;
    const s = c + d;
    for (let t = 0; t < half; t++) {
      const angle = positions[r] * invFreq[t];
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      const [i, j] = config.style === "neox" ? [t, t + half] : [2 * t, 2 * t + 1];
      f32[c + i] = cos;
      f32[c + j] = cos;
      f32[s + i] = -sin;
      f32[s + j] = sin;
    }
  }
}
