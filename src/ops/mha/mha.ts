// MultiHeadAttention: projections on the packed GEMM (assembly/gemm.ts) around the one attention
// kernel (runAttention). Weights are packed into WASM memory once, at construction, until dispose().
//
// Its parts, one job each: options.ts (options and their checks), weights.ts (checking, packing and
// reading back the weights), forward.ts (a forward call's plan and steps), keep.ts (what forward
// keeps for backward), backward.ts, kv-cache.ts.

import { AttentionError } from "../../core/errors.js";
import { KVCacheImpl, type KVCache, type KVCacheOptions } from "./kv-cache.js";
import { mhaBackward, type MultiHeadAttentionGradients } from "./backward.js";
import { type MhaParameters, type MhaSaved } from "./saved.js";
import { type RopeConfig } from "../rope.js";
import { kernels, type Kernels } from "../../runtime/runtime.js";
import { optInteger, readOptions } from "../../core/option-values.js";
import { MAX_DIM, type TensorInput } from "../../core/tensor.js";
import { runPlanned, runPlannedAsync, type Planned } from "../../engine/steps.js";
import { formatBytes, Workspace } from "../../runtime/workspace.js";
import {
  BACKWARD,
  CACHE_KEYS,
  checkOptions,
  FORWARD,
  NAME,
  type KeepForBackward,
  type MultiHeadAttentionForwardOptions,
  type MultiHeadAttentionOptions,
  type MultiHeadAttentionResult,
  type MultiHeadAttentionWeights,
} from "./options.js";
import {
  checkWeights,
  checkWeightsFit,
  initWeights,
  packProjection,
  readWeights,
  repackWeights,
  type Projections,
} from "./weights.js";
import { planForward } from "./forward.js";
import { keepSaved, type KeepArgs } from "./keep.js";

/**
 * Multi-head attention with its input and output projections, as PyTorch's
 * `nn.MultiheadAttention` (batch_first): self- and cross-attention, kdim/vdim, grouped-query heads,
 * masks, causal and sliding-window attention, a KV cache for decoding and rotary embeddings.
 */
export class MultiHeadAttention {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly kdim: number;
  readonly vdim: number;
  readonly bias: boolean;
  readonly rope: RopeConfig | undefined;
  readonly #kernels: Kernels;
  readonly #projections: Projections;
  readonly #blocks: number[] = [];
  readonly #caches = new Set<KVCacheImpl>();
  #disposed = false;
  #pending = 0; // forwardAsync calls not yet settled: they still read the weights

  constructor(options: MultiHeadAttentionOptions) {
    this.#kernels = kernels(NAME);
    const c = checkOptions(options);
    const { E, H, Hkv, kdim, vdim, hd, kvDim, bias, seed } = c;
    this.rope = c.rope;
    checkWeightsFit(this.#kernels, c);
    const w =
      c.weights !== undefined
        ? checkWeights(c.weights, E, kvDim, kdim, vdim, bias)
        : initWeights(E, kvDim, kdim, vdim, bias, seed);
    this.embedDim = E;
    this.numHeads = H;
    this.numKvHeads = Hkv;
    this.headDim = hd;
    this.kdim = kdim;
    this.vdim = vdim;
    this.bias = bias;
    const persistent = (bytes: number, what: string): number => this.#persistent(bytes, what);
    try {
      this.#projections = {
        q: packProjection(this.#kernels, w.wq, w.bq, persistent),
        k: packProjection(this.#kernels, w.wk, w.bk, persistent),
        v: packProjection(this.#kernels, w.wv, w.bv, persistent),
        o: packProjection(this.#kernels, w.wo, w.bo, persistent),
      };
    } catch (err) {
      this.#freeBlocks();
      throw err;
    }
  }

  /**
   * Attention of `query` [B,Nq,E] over `key` [B,Nk,kdim] and `value` [B,Nk,vdim] (both default to
   * `query`: self-attention). Rank 2 inputs [N, features] mean B = 1. Returns `output` [B,Nq,E]
   * and, with `needWeights`, `weights` [B,Nq,Nk] (averaged over heads) or [B,H,Nq,Nk]. With
   * `keepForBackward`, also `saved`, for `backward()`.
   */
  forward(
    query: TensorInput,
    key: TensorInput | undefined,
    value: TensorInput | undefined,
    options: KeepForBackward,
  ): MultiHeadAttentionResult & { saved: MhaSaved };
  forward(
    query: TensorInput,
    key?: TensorInput,
    value?: TensorInput,
    options?: MultiHeadAttentionForwardOptions,
  ): MultiHeadAttentionResult;
  forward(
    query: TensorInput,
    key?: TensorInput,
    value?: TensorInput,
    options: MultiHeadAttentionForwardOptions = {},
  ): MultiHeadAttentionResult {
    this.#checkLive(FORWARD);
    const plan = this.#planForward(FORWARD, query, key, value, options);
    return runPlanned(FORWARD, plan);
  }

  /**
   * forward() that never blocks the calling thread: with a worker pool (`init({ threads })`) the
   * projections and the attention are computed by the workers. Without a pool it computes on the
   * calling thread. A cache must not be used by another call until the promise settles; dispose()
   * while calls are pending frees the weights once they have settled.
   */
  forwardAsync(
    query: TensorInput,
    key: TensorInput | undefined,
    value: TensorInput | undefined,
    options: KeepForBackward,
  ): Promise<MultiHeadAttentionResult & { saved: MhaSaved }>;
  forwardAsync(
    query: TensorInput,
    key?: TensorInput,
    value?: TensorInput,
    options?: MultiHeadAttentionForwardOptions,
  ): Promise<MultiHeadAttentionResult>;
  async forwardAsync(
    query: TensorInput,
    key?: TensorInput,
    value?: TensorInput,
    options: MultiHeadAttentionForwardOptions = {},
  ): Promise<MultiHeadAttentionResult> {
    const op = `${FORWARD}Async`;
    this.#checkLive(op);
    const plan = this.#planForward(op, query, key, value, options);
    this.#pending++;
    try {
      return await runPlannedAsync(op, plan);
    } finally {
      if (--this.#pending === 0 && this.#disposed) this.#release();
    }
  }

  /**
   * Gradients of L = Σ output ⊙ gradOutput for the forward call that returned `saved` (called with
   * `keepForBackward: true`): dQuery, dKey and dValue (those two when key and value were passed;
   * otherwise their paths are in dQuery) and `grads` of every weight and bias, in the weights'
   * layout. Uses the weights of that forward call, even if setWeights() has run since.
   */
  backward(gradOutput: TensorInput, saved: MhaSaved): MultiHeadAttentionGradients {
    this.#checkLive(BACKWARD);
    return mhaBackward(BACKWARD, this, gradOutput, saved);
  }

  /** Copies of the weights and (with bias) biases, in PyTorch layout. */
  getWeights(): MhaParameters {
    this.#checkLive(`${NAME}.getWeights`);
    return this.#readWeights();
  }

  /**
   * Replaces the weights (e.g. after an optimiser step): the same shapes and rules as the
   * constructor's `weights` (a bias left out is zero). Keys and values already in a cache keep their
   * old projections. Not while a forwardAsync call is pending: it reads the weights.
   */
  setWeights(weights: MultiHeadAttentionWeights): void {
    const op = `${NAME}.setWeights`;
    this.#checkLive(op);
    const w = checkWeights(
      weights as unknown,
      this.embedDim,
      this.numKvHeads * this.headDim,
      this.kdim,
      this.vdim,
      this.bias,
      op,
    );
    if (this.#pending > 0) {
      throw new AttentionError(
        "BAD_OPTION",
        `${op}: ${this.#pending} forwardAsync call(s) still read the weights; await them first`,
      );
    }
    repackWeights(op, this.#kernels, this.#projections, w);
  }

  // The weights and biases, read back out of WASM memory (the module keeps no other copy).
  #readWeights(): MhaParameters {
    return readWeights(this.#kernels, this.#projections, this.bias);
  }

  /** A KV cache for decoding: keys and values of up to `maxLength` tokens per batch entry. */
  createCache(options: KVCacheOptions): KVCache {
    const op = `${NAME}.createCache`;
    this.#checkLive(op);
    const o = readOptions<KVCacheOptions>(op, options, CACHE_KEYS);
    const batch = optInteger(op, "batch", o.batch, 1, MAX_DIM) ?? 1;
    if (o.maxLength === undefined) {
      throw new AttentionError("BAD_OPTION", `${op}: maxLength is required (a positive integer)`);
    }
    const maxLength = optInteger(op, "maxLength", o.maxLength, 1, MAX_DIM) ?? 1;
    // Keys and values, each [batch, maxLength, kvDim]: checked before either is allocated.
    const each = batch * maxLength * this.numKvHeads * this.headDim * 4;
    const needed = 2 * Workspace.blockSize(each);
    const available = this.#kernels.workspace.bytesAvailable();
    if (!(needed <= available)) {
      throw new AttentionError(
        "OUT_OF_MEMORY",
        `${op}: a cache of batch ${batch} and maxLength ${maxLength} needs about ${formatBytes(needed)} ` +
          `of WASM memory but only ${formatBytes(available)} can be provided within the 4 GiB wasm32 limit`,
      );
    }
    const cache = new KVCacheImpl(
      this.#kernels.workspace,
      batch,
      maxLength,
      this.numKvHeads * this.headDim,
      this,
      (disposed) => this.#caches.delete(disposed),
    );
    this.#caches.add(cache);
    return cache;
  }

  /** Frees the weights (and every cache made by this module) from WASM memory. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#pending === 0) this.#release();
  }

  #release(): void {
    for (const cache of [...this.#caches]) cache.dispose();
    this.#caches.clear();
    this.#freeBlocks();
  }

  #checkLive(op: string): void {
    if (this.#disposed)
      throw new AttentionError("DISPOSED", `${op}: this MultiHeadAttention was disposed`);
  }

  #freeBlocks(): void {
    for (const ptr of this.#blocks) this.#kernels.workspace.release(ptr);
    this.#blocks.length = 0;
  }

  #persistent(bytes: number, what: string): number {
    const ptr = this.#kernels.workspace.alloc(bytes, `${NAME} (${what})`);
    this.#blocks.push(ptr);
    return ptr;
  }

  // A forward call's plan (forward.ts), with what it needs of this module.
  #planForward(
    op: string,
    query: unknown,
    key: unknown,
    value: unknown,
    options: unknown,
  ): Planned<MultiHeadAttentionResult> {
    return planForward(
      op,
      this,
      this.#projections,
      (s) => this.#keep(s),
      query,
      key,
      value,
      options,
    );
  }

  // The opaque `saved` handle of a forward call, with the weights of the moment.
  #keep(s: KeepArgs): MhaSaved {
    return keepSaved(this, s, () => this.#readWeights());
  }
}
