// Tensors: plain { data, shape } objects, and WasmTensor, a tensor whose data lives in WASM memory
// so that ops use it without copying.

import { AttentionError, formatShape } from "./errors.js";
import { checkKnownKeys } from "./option-keys.js";
import { geometryOf, plainView, typedArrayName } from "./typed-arrays.js";

/**
 * The brand of a WasmTensor (src/runtime/wasm-tensor.ts): its data lives in WASM memory and ops read
 * it in place, so it is not snapshotted. Not exported from the package, so no other object has it.
 */
export const IN_WASM: unique symbol = Symbol("wasm-attention WasmTensor");

/** A row-major tensor: `data.length` equals the product of `shape`. */
export interface Tensor<T extends Float32Array | Uint8Array = Float32Array> {
  data: T;
  shape: readonly number[];
}

/**
 * A tensor as ONNX Runtime writes it (`new ort.Tensor("float32", data, dims)`): `dims` instead of
 * `shape`. Accepted wherever a Tensor is.
 */
export interface DimsTensor<T extends Float32Array | Uint8Array = Float32Array> {
  readonly data: T;
  readonly dims: readonly number[];
}

/** What the ops accept as a tensor: `{ data, shape }`, or ONNX Runtime's `{ data, dims }`. */
export type TensorInput<T extends Float32Array | Uint8Array = Float32Array> =
  Tensor<T> | DimsTensor<T>;

/**
 * The `{ data, shape }` form of a tensor argument, read once: `data`, `shape` (or ONNX Runtime's
 * `dims`) are each read a single time into a snapshot the op uses from then on, so a getter that
 * answers differently on a later read cannot change what was validated. A genuine typed array is
 * re-viewed as a plain one (typed-arrays.ts), and the shape copied; with both `dims` and `shape` they
 * must agree (SHAPE_MISMATCH). A WasmTensor of this package is returned as is; anything that is not
 * an object is returned as is, for checkTensor to judge.
 */
export function asTensor<T extends Float32Array | Uint8Array>(
  op: string,
  name: string,
  value: TensorInput<T>,
): Tensor<T>;
export function asTensor(op: string, name: string, value: unknown): unknown;
export function asTensor(op: string, name: string, value: unknown): unknown {
  if (typeof value !== "object" || value === null || IN_WASM in value) return value;
  const read = (key: "data" | "shape" | "dims"): unknown => {
    try {
      return (value as Record<string, unknown>)[key];
    } catch (err) {
      // ONNX Runtime throws when the data is not on the CPU (a GPU tensor).
      const hint =
        key === "data" ? "; download the tensor first (ONNX Runtime: await tensor.getData())" : "";
      throw new AttentionError(
        "BAD_DTYPE",
        `${op}: ${name}.${key} cannot be read (${err instanceof Error ? err.message : String(err)})${hint}`,
      );
    }
  };
  const hasDims = "dims" in value;
  const hasShape = "shape" in value;
  if (!("data" in value) || (!hasDims && !hasShape)) return value;
  const dims = hasDims ? copyShape(op, `${name}.dims`, read("dims")) : undefined;
  const shape = hasShape ? copyShape(op, `${name}.shape`, read("shape")) : dims;
  if (dims !== undefined && shape !== dims) {
    const same =
      Array.isArray(shape) &&
      Array.isArray(dims) &&
      shape.length === dims.length &&
      shape.every((n, i) => n === dims[i]);
    if (!same) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: ${name} has shape ${describe(shape)} but dims ${describe(dims)}; give one, or equal ones`,
      );
    }
  }
  const data = read("data");
  const kind = typedArrayName(data);
  if (kind !== "Float32Array" && kind !== "Uint8Array") return { data, shape };
  try {
    return { data: plainView(kind, data as Float32Array | Uint8Array), shape };
  } catch {
    return { data, shape }; // a detached buffer cannot be viewed: checkTensor reports it
  }
}

/** At most this many dims; a longer "shape" is refused before it is copied. */
export const MAX_RANK = 32;
/** Every dim fits the kernels' 32-bit signed sizes. */
export const MAX_DIM = 2 ** 31 - 1;

// A frozen copy of a shape argument (holes read as undefined, for checkShape to refuse); anything
// that is not an array of reasonable length is returned as is, for checkShape to describe.
export function copyShape(op: string, name: string, shape: unknown): unknown {
  if (!Array.isArray(shape)) return shape;
  const rank: unknown = shape.length;
  if (typeof rank !== "number" || rank > MAX_RANK) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} has ${String(rank)} dims; at most ${MAX_RANK} are supported`,
    );
  }
  const copy: unknown[] = [];
  for (let i = 0; i < rank; i++) copy.push(Object.hasOwn(shape, i) ? shape[i] : undefined);
  return Object.freeze(copy);
}

/**
 * A validated snapshot of a tensor argument (asTensor, then checkTensor): the op uses only what
 * this returns, never the argument itself.
 */
export function readTensor<T extends Float32Array | Uint8Array>(
  op: string,
  name: string,
  value: TensorInput<T> | unknown,
  dtypes: ReadonlyArray<"float32" | "uint8">,
): Tensor<T> {
  const tensor = asTensor(op, name, value);
  checkTensor(op, name, tensor, dtypes);
  return tensor as Tensor<T>;
}

/**
 * Throws SHAPE_MISMATCH unless `shape` is an array (without holes) of at most MAX_RANK integers in
 * [0, MAX_DIM].
 */
export function checkShape(
  op: string,
  name: string,
  shape: unknown,
): asserts shape is readonly number[] {
  let ok = Array.isArray(shape) && shape.length <= MAX_RANK;
  for (let i = 0; ok && i < (shape as unknown[]).length; i++) {
    ok = Object.hasOwn(shape as unknown[], i) && isDim((shape as unknown[])[i]);
  }
  if (!ok) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} must be an array of at most ${MAX_RANK} integers in [0, 2^31 - 1], got ${describe(shape)}`,
    );
  }
}

function isDim(n: unknown): boolean {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= MAX_DIM;
}

/** Checks that `value` is a Tensor with the given element type and consistent length. */
export function checkTensor(
  op: string,
  name: string,
  value: unknown,
  dtypes: ReadonlyArray<"float32" | "uint8">,
): asserts value is Tensor<Float32Array | Uint8Array> {
  if (typeof value !== "object" || value === null || !("data" in value) || !("shape" in value)) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: ${name} must be a tensor { data, shape } (or ONNX Runtime's { data, dims }), got ${describe(value)}`,
    );
  }
  const { data, shape } = value as { data: unknown; shape: unknown };
  checkShape(op, `${name}.shape`, shape);
  const kind = typedArrayName(data);
  const ok =
    (dtypes.includes("float32") && kind === "Float32Array") ||
    (dtypes.includes("uint8") && kind === "Uint8Array");
  if (!ok) {
    const want = dtypes.map((d) => (d === "float32" ? "Float32Array" : "Uint8Array")).join(" or ");
    throw new AttentionError(
      "BAD_DTYPE",
      `${op}: ${name}.data must be a ${want}, got ${describe(data)}`,
    );
  }
  const { length: actual, detached } = geometryOf(data);
  if (detached) {
    throw new AttentionError(
      "BAD_DTYPE",
      `${op}: ${name}.data's buffer is detached (transferred or resized away); pass a live array`,
    );
  }
  const length = shape.reduce((a, b) => a * b, 1);
  if (actual !== length) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name}.data has ${actual} elements but shape ${formatShape(shape)} needs ${length}`,
    );
  }
}

/** A short, safe description of any value for error messages (never runs the value's own code). */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) {
    const shown = Array.from({ length: Math.min(value.length, 8) }, (_, i) =>
      Object.hasOwn(value, i) ? safeString(value[i]) : "<hole>",
    );
    return `array [${shown.join(",")}${value.length > 8 ? ",..." : ""}]`;
  }
  const kind = typedArrayName(value);
  if (kind !== undefined) return `${kind}(${geometryOf(value).length})`;
  if (typeof value === "object" || typeof value === "function") {
    return Object.prototype.toString.call(value).slice(8, -1);
  }
  return `${typeof value} ${safeString(value)}`;
}

function safeString(value: unknown): string {
  if (typeof value === "object" && value !== null) return "object";
  if (typeof value === "symbol") return value.toString();
  return String(value);
}

/**
 * Throws BAD_OPTION unless the options argument of `op` (or a nested options object, named by
 * `what`) is an object whose keys are all in `valid` (declared once per op with optionKeys, so a
 * misspelled option is an error naming the closest valid key instead of being silently ignored).
 */
export function checkOptionsObject(
  op: string,
  options: unknown,
  valid: readonly string[],
  what = "options",
): asserts options is object {
  if (typeof options !== "object" || options === null) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: ${what} must be an object, got ${describe(options)}`,
    );
  }
  checkKnownKeys(op, what, options, valid);
}
