// One op call's use of WASM memory: the buffers it takes from the workspace, given back when the call
// ends, whether it returns or throws, so a failed call leaks nothing.

import { AttentionError } from "./errors.js";
import { kernels, type Kernels } from "./runtime.js";
import { wasmAddress, type Tensor } from "./tensor.js";
import { formatBytes, Workspace } from "./workspace.js";

export class Call {
  readonly op: string;
  readonly kernels: Kernels;
  private readonly taken: number[] = [];

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

  /** The address of a float32 input in WASM memory: in place for a WasmTensor, else a copy. */
  inputF32(tensor: Tensor<Float32Array>, what: string): number {
    const inPlace = wasmAddress(tensor, this.workspace, `${this.op}: ${what}`);
    if (inPlace !== undefined) return inPlace;
    const ptr = this.alloc(tensor.data.byteLength, what);
    this.workspace.f32.set(tensor.data, ptr >>> 2);
    return ptr;
  }

  inputU8(tensor: Tensor<Uint8Array>, what: string): number {
    const inPlace = wasmAddress(tensor, this.workspace, `${this.op}: ${what}`);
    if (inPlace !== undefined) return inPlace;
    const ptr = this.alloc(tensor.data.byteLength, what);
    this.workspace.u8.set(tensor.data, ptr);
    return ptr;
  }

  /** Copies `length` floats at `ptr` into `out` or a fresh array. */
  outputF32(ptr: number, length: number, out?: Float32Array): Float32Array {
    const view = this.workspace.f32.subarray(ptr >>> 2, (ptr >>> 2) + length);
    if (out) {
      out.set(view);
      return out;
    }
    return view.slice();
  }

  release(): void {
    for (const ptr of this.taken) this.workspace.release(ptr);
    this.taken.length = 0;
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
  if (needed > available) {
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
