// One op call's use of WASM memory: the buffers it takes from the workspace, given back when the call
// ends, whether it returns or throws, so a failed call leaks nothing.

import { AttentionError } from "../core/errors.js";
import { kernels, type Kernels } from "./runtime.js";
import { describe, type Tensor } from "../core/tensor.js";
import { wasmAddress } from "./wasm-tensor.js";
import { geometryOf, overlaps, plainView, typedArrayName } from "../core/typed-arrays.js";
import { formatBytes, Workspace } from "./workspace.js";

export class Call {
  readonly op: string;
  readonly kernels: Kernels;
  private readonly taken: number[] = [];
  private readonly pinned: number[] = [];

  constructor(op: string, kernels: Kernels) {
    this.op = op;
    this.kernels = kernels;
  }

  get workspace(): Workspace {
    return this.kernels.workspace;
  }

  /** A buffer of `bytes` for this call (contents undefined). */
  alloc(bytes: number, what: string): number {
    const ptr = this.workspace.alloc(bytes, `${this.op} (${what})`);
    this.taken.push(ptr);
    return ptr;
  }

  /**
   * The address of a float32 input in WASM memory: in place for a WasmTensor (kept allocated until
   * the call ends, even if freed meanwhile), else a copy.
   */
  inputF32(tensor: Tensor<Float32Array>, what: string): number {
    const inPlace = this.inPlace(tensor, what);
    if (inPlace !== undefined) return inPlace;
    const data = this.outsideMemory(tensor.data);
    const ptr = this.alloc(data.byteLength, what);
    this.workspace.f32.set(data, ptr >>> 2);
    return ptr;
  }

  inputU8(tensor: Tensor<Uint8Array>, what: string): number {
    const inPlace = this.inPlace(tensor, what);
    if (inPlace !== undefined) return inPlace;
    const data = this.outsideMemory(tensor.data);
    const ptr = this.alloc(data.byteLength, what);
    this.workspace.u8.set(data, ptr);
    return ptr;
  }

  // An input that views WASM memory without being a WasmTensor (a hand-made view, a freed tensor's
  // old view) is copied out first: the allocation may grow memory, which detaches such a view.
  private outsideMemory<T extends Float32Array | Uint8Array>(data: T): T {
    return data.buffer === this.workspace.buffer ? (data.slice() as T) : data;
  }

  private inPlace(tensor: Tensor<Float32Array | Uint8Array>, what: string): number | undefined {
    const ptr = wasmAddress(tensor, this.workspace, `${this.op}: ${what}`);
    if (ptr !== undefined) this.pin(ptr);
    return ptr;
  }

  /** Keeps a WasmTensor's block allocated until the call ends. */
  pin(ptr: number): void {
    this.workspace.pin(ptr);
    this.pinned.push(ptr);
  }

  /** Copies `length` floats at `ptr` into `out` (checked by checkOut) or a fresh array. */
  outputF32(ptr: number, length: number, out?: Out): Float32Array {
    const ws = this.workspace;
    const view = ws.f32.subarray(ptr >>> 2, (ptr >>> 2) + length);
    if (!out) return view.slice();
    if (out.wasmByteOffset !== undefined) {
      if (!ws.holdsTensorRange(out.wasmByteOffset, length * 4)) {
        throw new AttentionError(
          "DISPOSED",
          `${this.op}: the WasmTensor that out views was freed while the call ran`,
        );
      }
      if (out.wasmByteOffset !== ptr)
        ws.f32.copyWithin(out.wasmByteOffset >>> 2, ptr >>> 2, (ptr >>> 2) + length);
      // After memory growth the caller's view is detached: hand back a live one.
      return out.array.buffer === ws.buffer
        ? out.array
        : new Float32Array(ws.buffer, out.wasmByteOffset, length);
    }
    const now = geometryOf(out.array);
    if (now.detached || now.length !== length) {
      throw new AttentionError(
        "BAD_OPTION",
        `${this.op}: out was detached or resized while the call ran (it has ${now.length} elements, the output ${length})`,
      );
    }
    out.view.set(view);
    return out.array;
  }

  release(): void {
    for (const ptr of this.taken) this.workspace.release(ptr);
    this.taken.length = 0;
    for (const ptr of this.pinned) this.workspace.unpin(ptr);
    this.pinned.length = 0;
  }
}

/**
 * Runs `body` with a Call for `op`. `bytesNeeded(kernels)` (which may use `stagedBytes`) is checked
 * against what wasm32 can still provide before anything is allocated, so an impossible request
 * fails with OUT_OF_MEMORY and leaves memory untouched.
 */
export function withCall<T>(
  op: string,
  bytesNeeded: (kernels: Kernels) => number,
  body: (call: Call) => T,
): T {
  const call = openCall(op, bytesNeeded);
  try {
    return body(call);
  } finally {
    call.release();
  }
}

// A Call for `op` once `bytesNeeded` is known to fit in what wasm32 can still provide.
function openCall(op: string, bytesNeeded: (kernels: Kernels) => number): Call {
  const k = kernels(op);
  const needed = bytesNeeded(k);
  const available = k.workspace.bytesAvailable();
  // Negated so that a NaN or negative estimate (sizes past what can exist) fails too.
  if (!(needed >= 0 && needed <= available)) {
    throw new AttentionError(
      "OUT_OF_MEMORY",
      `${op}: needs about ${formatBytes(needed)} of WASM memory but only ${formatBytes(available)} ` +
        `can be provided within the 4 GiB wasm32 limit`,
    );
  }
  return new Call(op, k);
}

/** Workspace bytes an input takes: none for a WasmTensor read in place, else a copy. */
export function stagedBytes(tensor: Tensor<Float32Array | Uint8Array>, kernels: Kernels): number {
  const inPlace = wasmAddress(tensor, kernels.workspace, "stagedBytes") !== undefined;
  return inPlace ? 0 : Workspace.blockSize(tensor.data.byteLength);
}

/** A checked `out` argument: the caller's array, a plain view of it, and its WASM address if any. */
export interface Out {
  array: Float32Array;
  view: Float32Array;
  /** Set when `out` views WASM memory (inside a live WasmTensor): the byte address. */
  wasmByteOffset?: number;
}

/**
 * Checks an `out` argument before anything is allocated: a genuine Float32Array of `length`
 * elements (the output `shapeText`), overlapping none of `inputs`. A view of this instance's WASM
 * memory is accepted only inside a live WasmTensor (allocTensor): anywhere else it would overwrite
 * the module's own memory.
 */
export function checkOut(
  op: string,
  out: unknown,
  length: number,
  shapeText: string,
  inputs: ReadonlyArray<readonly [name: string, tensor: Tensor<Float32Array | Uint8Array>]>,
  kernels: Kernels,
): Out {
  if (typedArrayName(out) !== "Float32Array") {
    throw new AttentionError(
      "BAD_DTYPE",
      `${op}: out must be a Float32Array, got ${describe(out)}`,
    );
  }
  const g = geometryOf(out);
  if (g.detached || g.length !== length) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: out has ${g.length} elements${g.detached ? " (detached)" : ""} but the output ${shapeText} needs ${length}`,
    );
  }
  const ws = kernels.workspace;
  const bytes = length * 4;
  for (const [name, tensor] of inputs) {
    const ptr = wasmAddress(tensor, ws, `${op}: ${name}`);
    const t =
      ptr !== undefined
        ? { buffer: ws.buffer as ArrayBufferLike, byteOffset: ptr, bytes: tensor.data.byteLength }
        : { ...geometryOf(tensor.data), bytes: tensor.data.byteLength };
    if (overlaps({ ...g, bytes }, t)) {
      throw new AttentionError(
        "BAD_OPTION",
        `${op}: out overlaps ${name}; pass a separate array (the output would overwrite the input while it is read)`,
      );
    }
  }
  const view = plainView("Float32Array", out as Float32Array);
  if (g.buffer !== ws.buffer) return { array: out as Float32Array, view };
  if (!ws.holdsTensorRange(g.byteOffset, bytes)) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: out views WASM memory outside any live WasmTensor; pass an ordinary Float32Array or an allocTensor's data`,
    );
  }
  return { array: out as Float32Array, view, wasmByteOffset: g.byteOffset };
}

/** withCall for an asynchronous body: the call's buffers are given back when its promise settles. */
export async function withCallAsync<T>(
  op: string,
  bytesNeeded: (kernels: Kernels) => number,
  body: (call: Call) => Promise<T>,
): Promise<T> {
  const call = openCall(op, bytesNeeded);
  try {
    return await body(call);
  } finally {
    call.release();
  }
}
