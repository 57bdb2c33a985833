// WasmTensor: a tensor whose data lives in WASM memory, so that ops read it in place without a copy.

import { AttentionError, formatShape } from "../core/errors.js";
import { checkShape, copyShape, IN_WASM, type Tensor } from "../core/tensor.js";
import { kernels } from "./runtime.js";
import type { Workspace } from "./workspace.js";

/** A tensor stored in WASM memory. `data` is re-viewed on every access, so it stays valid across
 * memory growth, until `free()`; any use after `free()` throws. */
export interface WasmTensor<T extends Float32Array | Uint8Array = Float32Array> extends Tensor<T> {
  /** Byte address in WASM linear memory. */
  readonly byteOffset: number;
  free(): void;
}

class WasmTensorImpl<T extends Float32Array | Uint8Array> implements WasmTensor<T> {
  readonly [IN_WASM] = true;
  readonly shape: readonly number[];
  readonly #workspace: Workspace;
  readonly #ptr: number;
  readonly #length: number;
  readonly #dtype: "float32" | "uint8";
  #freed = false;

  constructor(
    workspace: Workspace,
    ptr: number,
    shape: readonly number[],
    dtype: "float32" | "uint8",
  ) {
    this.#workspace = workspace;
    this.#ptr = ptr;
    this.shape = Object.freeze([...shape]);
    this.#length = shape.reduce((a, b) => a * b, 1);
    this.#dtype = dtype;
  }

  get data(): T {
    this.#check("data");
    const buffer = this.#workspace.buffer;
    return (
      this.#dtype === "float32"
        ? new Float32Array(buffer, this.#ptr, this.#length)
        : new Uint8Array(buffer, this.#ptr, this.#length)
    ) as T;
  }

  get byteOffset(): number {
    this.#check("byteOffset");
    return this.#ptr;
  }

  get dtype(): "float32" | "uint8" {
    return this.#dtype;
  }

  /** The address, for ops that read this tensor in place. */
  pointer(what: string): number {
    this.#check(what);
    return this.#ptr;
  }

  belongsTo(workspace: Workspace): boolean {
    return this.#workspace === workspace;
  }

  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#workspace.release(this.#ptr);
  }

  #check(what: string): void {
    if (this.#freed) {
      throw new AttentionError(
        "DISPOSED",
        `${what}: this WasmTensor ${formatShape(this.shape)} was freed`,
      );
    }
  }
}

/**
 * Allocates a zero-filled tensor in WASM memory. Ops read it in place (no copy), which pays off for
 * large or repeated inputs such as a KV cache. Call `free()` when done.
 */
export function allocTensor(shape: readonly number[], dtype?: "float32"): WasmTensor<Float32Array>;
export function allocTensor(shape: readonly number[], dtype: "uint8"): WasmTensor<Uint8Array>;
export function allocTensor(
  shape: readonly number[],
  dtype: "float32" | "uint8" = "float32",
): WasmTensor<Float32Array> | WasmTensor<Uint8Array> {
  const { workspace } = kernels("allocTensor");
  shape = copyShape("allocTensor", "shape", shape) as readonly number[];
  checkShape("allocTensor", "shape", shape);
  if (dtype !== "float32" && dtype !== "uint8") {
    throw new AttentionError(
      "BAD_DTYPE",
      `allocTensor: dtype must be "float32" or "uint8", got ${String(dtype)}`,
    );
  }
  const length = shape.reduce((a, b) => a * b, 1);
  const bytes = length * (dtype === "float32" ? 4 : 1);
  const ptr = workspace.alloc(bytes, "allocTensor", true);
  workspace.u8.fill(0, ptr, ptr + bytes);
  return dtype === "float32"
    ? new WasmTensorImpl<Float32Array>(workspace, ptr, shape, dtype)
    : new WasmTensorImpl<Uint8Array>(workspace, ptr, shape, dtype);
}

/** The in-place address of a live WasmTensor of this instance, or undefined for ordinary tensors. */
export function wasmAddress(
  tensor: Tensor<Float32Array | Uint8Array>,
  workspace: Workspace,
  what: string,
): number | undefined {
  if (tensor instanceof WasmTensorImpl && tensor.belongsTo(workspace)) return tensor.pointer(what);
  return undefined;
}
