// The loader's view of WASM linear memory: a grow-only heap above the module's static data, with a
// first-fit free list. Calls take their buffers from it and give them back when they return, so after
// the first call of a given size no call grows memory again. Nothing goes through the AssemblyScript
// runtime. Every block is ALLOC_ALIGN-aligned and followed by ALLOC_SLACK readable bytes, because
// vector kernels may read a few floats past the end of a row.

import { ALLOC_ALIGN, ALLOC_SLACK } from "../../assembly/shared.js";
import { AttentionError } from "../core/errors.js";
import type { WasmMemory } from "./host-types.js";

const PAGE_BYTES = 65536;
/** wasm32 can address 4 GiB. */
export const MAX_MEMORY_BYTES = 65536 * PAGE_BYTES;

interface FreeBlock {
  start: number;
  size: number;
}

export class Workspace {
  private readonly memory: WasmMemory;
  private readonly free: FreeBlock[] = [];
  private readonly used = new Map<number, number>();
  /** Blocks of WasmTensors (allocTensor): their requested sizes, by address. */
  private readonly tensors = new Map<number, number>();
  /** Blocks a running call reads or writes in place, with a count per call; freed only when unpinned. */
  private readonly pins = new Map<number, number>();
  private readonly releaseWhenUnpinned = new Set<number>();
  private f32View: Float32Array;
  private u8View: Uint8Array;
  private i32View: Int32Array;

  constructor(memory: WasmMemory, heapBase: number) {
    this.memory = memory;
    const start = roundUp(heapBase, ALLOC_ALIGN);
    const end = memory.buffer.byteLength;
    if (end > start) this.free.push({ start, size: end - start });
    this.f32View = new Float32Array(memory.buffer);
    this.u8View = new Uint8Array(memory.buffer);
    this.i32View = new Int32Array(memory.buffer);
  }

  /** Float32 view of all of memory, re-created after memory has grown. */
  get f32(): Float32Array {
    if (this.f32View.buffer !== this.memory.buffer) this.refreshViews();
    return this.f32View;
  }

  get u8(): Uint8Array {
    if (this.u8View.buffer !== this.memory.buffer) this.refreshViews();
    return this.u8View;
  }

  get i32(): Int32Array {
    if (this.i32View.buffer !== this.memory.buffer) this.refreshViews();
    return this.i32View;
  }

  get buffer(): ArrayBuffer {
    return this.memory.buffer as ArrayBuffer;
  }

  /** Bytes of linear memory in use by live blocks (without alignment padding). */
  get bytesInUse(): number {
    let total = 0;
    for (const size of this.used.values()) total += size;
    return total;
  }

  /** Bytes that could still be allocated: free blocks plus what memory may grow by. */
  bytesAvailable(): number {
    let free = 0;
    for (const block of this.free) free += block.size;
    return free + MAX_MEMORY_BYTES - this.memory.buffer.byteLength;
  }

  /** Size in bytes a block of `bytes` takes in the heap. */
  static blockSize(bytes: number): number {
    return roundUp(bytes + ALLOC_SLACK, ALLOC_ALIGN);
  }

  /**
   * Reserves `bytes` (plus slack); returns the byte address. Throws OUT_OF_MEMORY past 4 GiB, and
   * for any size that is not a safe non-negative integer (a size computed from hostile dims must
   * never become an address). `tensor` marks the block as a WasmTensor's (see holdsTensorRange).
   */
  alloc(bytes: number, what: string, tensor = false): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_MEMORY_BYTES - ALLOC_SLACK) {
      throw new AttentionError(
        "OUT_OF_MEMORY",
        `${what}: needs ${Number.isFinite(bytes) && bytes > 0 ? formatBytes(bytes) : String(bytes) + " bytes"}, ` +
          `more than the 4 GiB wasm32 can address`,
      );
    }
    const size = Workspace.blockSize(bytes);
    let index = this.free.findIndex((block) => block.size >= size);
    if (index < 0) index = this.grow(size, what);
    const block = this.free[index];
    const start = block.start;
    if (block.size === size) this.free.splice(index, 1);
    else {
      block.start += size;
      block.size -= size;
    }
    this.used.set(start, size);
    if (tensor) this.tensors.set(start, bytes);
    return start;
  }

  /** Whether [byteOffset, byteOffset + byteLength) lies inside one live WasmTensor block. */
  holdsTensorRange(byteOffset: number, byteLength: number): boolean {
    for (const [start, bytes] of this.tensors) {
      if (start <= byteOffset && byteOffset + byteLength <= start + bytes) return true;
    }
    return false;
  }

  /** Keeps the block at `ptr` allocated until unpin(): a call reads or writes it in place. */
  pin(ptr: number): void {
    this.pins.set(ptr, (this.pins.get(ptr) ?? 0) + 1);
  }

  unpin(ptr: number): void {
    const count = (this.pins.get(ptr) ?? 0) - 1;
    if (count > 0) {
      this.pins.set(ptr, count);
      return;
    }
    this.pins.delete(ptr);
    if (this.releaseWhenUnpinned.delete(ptr)) this.release(ptr);
  }

  /** Gives a block back; a pinned block (in use by a running call) is given back when unpinned. */
  release(ptr: number): void {
    if (this.pins.has(ptr)) {
      this.releaseWhenUnpinned.add(ptr);
      return;
    }
    const size = this.used.get(ptr);
    if (size === undefined) return;
    this.used.delete(ptr);
    this.tensors.delete(ptr);
    // Insert in address order and merge with neighbours.
    let index = this.free.findIndex((block) => block.start > ptr);
    if (index < 0) index = this.free.length;
    this.free.splice(index, 0, { start: ptr, size });
    const next = this.free[index + 1];
    if (next && ptr + size === next.start) {
      this.free[index].size += next.size;
      this.free.splice(index + 1, 1);
    }
    const prev = this.free[index - 1];
    if (prev && prev.start + prev.size === ptr) {
      prev.size += this.free[index].size;
      this.free.splice(index, 1);
    }
  }

  /** Grows memory so that a free block of `size` bytes exists at the end; returns its index. */
  private grow(size: number, what: string): number {
    const end = this.memory.buffer.byteLength;
    const last = this.free[this.free.length - 1];
    const tailFree = last && last.start + last.size === end ? last.size : 0;
    const needed = size - tailFree;
    // Grow a little ahead (an eighth of the current size, at most 64 MiB) so that a run of slightly
    // larger calls does not grow memory every time.
    const headroom = Math.min(end >>> 3, 64 << 20);
    let pages = Math.ceil((needed + headroom) / PAGE_BYTES);
    const maxPages = MAX_MEMORY_BYTES / PAGE_BYTES - end / PAGE_BYTES;
    if (Math.ceil(needed / PAGE_BYTES) > maxPages) {
      throw new AttentionError(
        "OUT_OF_MEMORY",
        `${what}: needs ${formatBytes(size)} of WASM memory but only ${formatBytes(maxPages * PAGE_BYTES + tailFree)} ` +
          `is left of the 4 GiB wasm32 limit (${formatBytes(this.bytesInUse)} in use)`,
      );
    }
    pages = Math.min(pages, maxPages);
    try {
      this.memory.grow(pages);
    } catch (err) {
      throw new AttentionError(
        "OUT_OF_MEMORY",
        `${what}: the runtime refused to grow WASM memory by ${formatBytes(pages * PAGE_BYTES)} ` +
          `(${err instanceof Error ? err.message : String(err)})`,
      );
    }
    this.refreshViews();
    const added = pages * PAGE_BYTES;
    if (tailFree > 0) {
      last.size += added;
      return this.free.length - 1;
    }
    this.free.push({ start: end, size: added });
    return this.free.length - 1;
  }

  private refreshViews(): void {
    this.f32View = new Float32Array(this.memory.buffer);
    this.u8View = new Uint8Array(this.memory.buffer);
    this.i32View = new Int32Array(this.memory.buffer);
  }
}

function roundUp(x: number, to: number): number {
  return Math.ceil(x / to) * to;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} KiB`;
  return `${bytes} B`;
}
