// Rotary position embedding (RoPE, Su et al.): applyRope, and the in-place form MultiHeadAttention
// uses on its projected queries and keys. Angles pos · base^(−2t/D) and their cos/sin are computed in
// float64 on the JavaScript side (positions can be large); the rotation runs in wasm (assembly/rope.ts).

import { type Call, stagedBytes, withCall } from "../runtime/call.js";
import { AttentionError } from "../core/errors.js";
import { type Operand } from "../engine/params.js";
import { attentionDims, checkHeadDim } from "../core/shapes.js";
import { optionKeys } from "../core/option-keys.js";
import { optFloat32, optInteger, readOptions } from "../core/option-values.js";
import { kernels } from "../runtime/runtime.js";
import { describe, readTensor, type Tensor, type TensorInput } from "../core/tensor.js";
import { plainView, typedArrayName } from "../core/typed-arrays.js";
import { Workspace } from "../runtime/workspace.js";

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

/**
 * A rope configuration `{ base?, style? }` (`name` in messages), each read once: base a positive
 * number a float32 can hold with a finite reciprocal (about 3e-38 to 3.4e38), style "neox" or
 * "gptj"; the head dim must be even. Other keys are the caller's to check.
 */
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
  const read = (key: "base" | "style"): unknown => {
    try {
      const value: unknown = options[key];
      return value === null ? undefined : value;
    } catch (err) {
      throw new AttentionError(
        "BAD_OPTION",
        `${op}: ${name}.${key} cannot be read (${err instanceof Error ? err.message : String(err)})`,
      );
    }
  };
  // Angles are pos · base^(−2t/D) with 2t/D < 1: at most pos / base, finite for such a base.
  const base =
    optFloat32(op, `${name}.base`, read("base"), { positive: true, divisor: true }) ?? 10000;
  const style = read("style") ?? "neox";
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
 * Rotates x [B,H,N,D] (rank 2–4, D even, in [2, 65536]) by the rotary embedding of each row's
 * position; returns a new tensor of the same shape.
 */
export function applyRope(x: TensorInput, options?: ApplyRopeOptions): Tensor {
  kernels(OP);
  const input = readTensor<Float32Array>(OP, "x", x, ["float32"]);
  const opts = readOptions<ApplyRopeOptions>(OP, options, APPLY_ROPE_KEYS);
  const [B, H, N, D] = attentionDims(OP, "x", input);
  checkHeadDim(OP, "x", input.shape, "head dim D", D);
  const config = checkRopeConfig(OP, "options", opts, D);
  const n = input.data.length;
  const positions = rowPositions(opts, N, n > 0);
  const shape = [...input.shape];
  if (n === 0) return { data: new Float32Array(0), shape };
  return withCall(
    OP,
    (k) =>
      stagedBytes(input, k) +
      Workspace.blockSize(n * 4) +
      Workspace.blockSize(ropeTableBytes(N, D)),
    (call) => {
      const src = call.inputF32(input, "x");
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
      return { data: call.outputF32(dst, n), shape };
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

// The position of each of the N rows: `positions` (read once into a copy) or positionOffset + 0..N−1
// (built only when there is something to rotate: an empty x may have any N).
function rowPositions(options: ApplyRopeOptions, N: number, build: boolean): ArrayLike<number> {
  // Checked even when positions make it unused: a wrong value never passes silently.
  const offset =
    optInteger(
      OP,
      "positionOffset",
      options.positionOffset,
      Number.MIN_SAFE_INTEGER,
      Number.MAX_SAFE_INTEGER - N,
    ) ?? 0;
  const p: unknown = options.positions;
  if (p !== undefined) {
    const kind = typedArrayName(p);
    let copy: Float64Array | Int32Array;
    const length =
      kind === "Int32Array"
        ? plainView("Int32Array", p as Int32Array).length
        : Array.isArray(p)
          ? p.length
          : -1;
    if (length < 0) {
      throw new AttentionError(
        typeof p === "object" && p !== null ? "BAD_DTYPE" : "BAD_OPTION",
        `${OP}: positions must be an Int32Array or number[], got ${describe(p)}`,
      );
    }
    if (length !== N) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${OP}: positions has ${length} entries but x has N = ${N} rows (one position per row)`,
      );
    }
    if (kind === "Int32Array") copy = plainView("Int32Array", p as Int32Array).slice();
    else {
      const list = p as unknown[];
      // Copied as it is checked (no array of the claimed length allocated first): a hole (a sparse
      // array) is refused at once, before any long walk or allocation.
      const checked: number[] = [];
      for (let i = 0; i < length; i++) {
        const pos: unknown = Object.hasOwn(list, i) ? list[i] : undefined;
        if (typeof pos !== "number" || !Number.isSafeInteger(pos)) {
          throw new AttentionError(
            "BAD_OPTION",
            `${OP}: positions[${i}] must be a safe integer, got ${describe(pos)}`,
          );
        }
        checked.push(pos);
      }
      copy = Float64Array.from(checked);
    }
    return copy;
  }
  if (!build) return [];
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
