// KVCache: projected keys and values of past tokens, kept in WASM memory for decoding, so a decode
// step copies only its new token in. Layout per cache: keys [batch, maxLength, kvDim] and values
// likewise (kvDim = headDim · numKvHeads, heads side by side as the projections produce them).

import { AttentionError } from "../../core/errors.js";
import type { Workspace } from "../../runtime/workspace.js";

/** Options of `MultiHeadAttention.createCache`. */
export interface KVCacheOptions {
  /** Batch entries; default 1. */
  batch?: number;
  /** Tokens the cache holds per batch entry. */
  maxLength: number;
}

/**
 * A KV cache made by `MultiHeadAttention.createCache()`: pass it to that module's `forward({ cache })`
 * to append the call's keys and values and attend over every cached token.
 */
export interface KVCache {
  /** Batch entries. */
  readonly batch: number;
  /** Tokens the cache holds per batch entry. */
  readonly maxLength: number;
  /** Tokens held per batch entry. */
  readonly length: number;
  /** Forgets every token (the memory stays reserved). */
  reset(): void;
  /** Frees the cache's WASM memory; using it afterwards throws. */
  dispose(): void;
}

// The implementation: its addresses and append/commit are for the owning module only, so the public
// type above is an interface and this class is not exported from the package.
export class KVCacheImpl implements KVCache {
  readonly batch: number;
  readonly maxLength: number;
  /** Byte addresses of the key and value buffers (for the owning module). */
  readonly keysPtr: number;
  readonly valuesPtr: number;
  readonly #workspace: Workspace;
  readonly #rowBytes: number;
  readonly #owner: object;
  readonly #onDispose: (cache: KVCacheImpl) => void;
  #length = 0;
  #disposed = false;

  /** Made by MultiHeadAttention.createCache(). */
  constructor(
    workspace: Workspace,
    batch: number,
    maxLength: number,
    kvDim: number,
    owner: object,
    onDispose: (cache: KVCacheImpl) => void,
  ) {
    this.#workspace = workspace;
    this.batch = batch;
    this.maxLength = maxLength;
    this.#rowBytes = kvDim * 4;
    this.#owner = owner;
    this.#onDispose = onDispose;
    const bytes = batch * maxLength * kvDim * 4;
    this.keysPtr = workspace.alloc(bytes, "MultiHeadAttention.createCache (keys)");
    try {
      this.valuesPtr = workspace.alloc(bytes, "MultiHeadAttention.createCache (values)");
    } catch (err) {
      workspace.release(this.keysPtr);
      throw err;
    }
  }

  /** Tokens held per batch entry. */
  get length(): number {
    return this.#length;
  }

  /** Forgets every token (the memory stays reserved). */
  reset(): void {
    this.#length = 0;
  }

  /** Frees the cache's WASM memory; using it afterwards throws. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#workspace.release(this.keysPtr);
    this.#workspace.release(this.valuesPtr);
    this.#onDispose(this);
  }

  belongsTo(owner: object): boolean {
    return this.#owner === owner;
  }

  /** Throws unless `tokens` more tokens of batch `batch` fit. Changes nothing. */
  checkUsable(op: string, batch: number, tokens: number): void {
    if (this.#disposed) throw new AttentionError("DISPOSED", `${op}: the cache was disposed`);
    if (batch !== this.batch) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: the input has batch ${batch} but the cache was made for batch ${this.batch}`,
      );
    }
    if (this.#length + tokens > this.maxLength) {
      throw new AttentionError(
        "CACHE_FULL",
        `${op}: the cache holds ${this.#length} of ${this.maxLength} tokens and cannot take ${tokens} more`,
      );
    }
  }

  /** Where the next keys/values of batch entry b go (rows length.., not yet committed). */
  appendTargets(): { keys(b: number): number; values(b: number): number } {
    const at = (base: number, b: number): number =>
      base + (b * this.maxLength + this.#length) * this.#rowBytes;
    return { keys: (b) => at(this.keysPtr, b), values: (b) => at(this.valuesPtr, b) };
  }

  /** Makes the appended tokens part of the cache (after the call that wrote them succeeded). */
  commit(tokens: number): void {
    this.#length += tokens;
  }
}
