// MultiHeadAttention: projections on the packed GEMM (assembly/gemm.ts) around the one attention
// kernel (runAttention). Weights are packed into WASM memory once, at construction, until dispose().
//
// Data flow of forward(), all in WASM memory: Q = query·Wqᵀ + bq [B·Nq, E], K and V likewise
// [B·Nk, E·Hkv/H]; the attention kernel reads the heads straight out of these row-major
// projections through strides (head h is columns h·hd..(h+1)·hd) and writes its output in the same
// concatenated layout, which the output projection then reads: no transposes anywhere. With
// keepForBackward, forward also copies out what backward() (src/ops/mha/backward.ts) needs.

import { type Call, stagedBytes, withCall } from "../../runtime/call.js";
import { AttentionError, formatShape } from "../../core/errors.js";
import { packedWeightsBytes, readVector, weightTensor } from "../linear.js";
import { KVCacheImpl, type KVCache, type KVCacheOptions } from "./kv-cache.js";
import { mhaBackward, type MultiHeadAttentionGradients } from "./backward.js";
import { unpackWeights } from "./packed-weights.js";
import { keep, type MhaParameters, type MhaSaved, type SavedState } from "./saved.js";
import { applyRopeInPlace, checkRopeConfig, ropeTableBytes, type RopeConfig } from "../rope.js";
import { kernels, type Kernels } from "../../runtime/runtime.js";
import { attentionBytes } from "../../engine/run.js";
import { planAttention, type AttentionPlan } from "../../engine/plan.js";
import { type AttentionOperands, type Operand } from "../../engine/params.js";
import { type AttentionOptions } from "../../engine/options.js";
import { optionKeys } from "../../core/option-keys.js";
import { optBoolean, optFloat32, optInteger, readOptions } from "../../core/option-values.js";
import { MAX_HEAD_DIM } from "../../core/shapes.js";
import { describe, MAX_DIM, readTensor, type Tensor, type TensorInput } from "../../core/tensor.js";
import { typedArrayName } from "../../core/typed-arrays.js";
import {
  runPlanned,
  runPlannedAsync,
  type Planned,
  type AttentionStep,
  type Step,
  type Steps,
} from "../../engine/steps.js";
import { formatBytes, Workspace } from "../../runtime/workspace.js";
import { mulberry32 } from "../../core/mulberry32.js";
import * as P from "../../../assembly/shared.js";

/** Weights in PyTorch `nn.MultiheadAttention`'s layout: each matrix (out_features, in_features). */
export interface MultiHeadAttentionWeights {
  /** [E, E] */
  wq: Float32Array | Tensor;
  /** [E·Hkv/H, kdim] */
  wk: Float32Array | Tensor;
  /** [E·Hkv/H, vdim] */
  wv: Float32Array | Tensor;
  /** [E, E] */
  wo: Float32Array | Tensor;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  bo?: Float32Array;
}

export interface MultiHeadAttentionOptions {
  embedDim: number;
  numHeads: number;
  /** Key/value heads for grouped-query attention (must divide numHeads); default numHeads. */
  numKvHeads?: number;
  /** Feature size of `key`; default embedDim. */
  kdim?: number;
  /** Feature size of `value`; default embedDim. */
  vdim?: number;
  /** Biases on the four projections; default true. */
  bias?: boolean;
  /** Without weights, they are initialised as PyTorch does (Xavier uniform), from `seed`. */
  weights?: MultiHeadAttentionWeights;
  /** Rotary position embedding of queries and keys after projection (positions continue from a cache). */
  rope?: { base?: number; style?: "neox" | "gptj" };
  /** Seed of the weight initialisation; default 0. */
  seed?: number;
}

export interface MultiHeadAttentionForwardOptions {
  /** [B, Nk], 1 = real token, 0 = padding. Intersects with `mask`. */
  keyMask?: Tensor<Uint8Array>;
  /** Boolean or additive, broadcasting to [B,H,Nq,Nk]; PyTorch's [B·H, Nq, Nk] is accepted too. */
  mask?: Tensor<Uint8Array> | Tensor<Float32Array>;
  causal?: boolean;
  window?: readonly [number, number];
  /** Return the attention weights (default false). */
  needWeights?: boolean;
  /** Average the weights over heads, [B,Nq,Nk] (default true, as PyTorch); else [B,H,Nq,Nk]. */
  averageWeights?: boolean;
  /** Append this call's keys and values to the cache and attend over all of it. */
  cache?: KVCache;
  /**
   * Also return `saved`, what `backward()` needs (copies in JavaScript memory). Not with `cache`.
   */
  keepForBackward?: boolean;
}

/** What forward returns; `saved` with `keepForBackward: true`. */
export interface MultiHeadAttentionResult {
  /** [B, Nq, E] */
  output: Tensor;
  /** With `needWeights`: [B, Nq, Nk] averaged over heads, or [B, H, Nq, Nk]. */
  weights?: Tensor;
  /** With `keepForBackward`: the state to pass to `backward()`. */
  saved?: MhaSaved;
}

// The keys of each options object the module takes: any other key is a BAD_OPTION error.
const CONSTRUCTOR_KEYS = optionKeys<MultiHeadAttentionOptions>({
  embedDim: true,
  numHeads: true,
  numKvHeads: true,
  kdim: true,
  vdim: true,
  bias: true,
  weights: true,
  rope: true,
  seed: true,
});
const WEIGHT_KEYS = optionKeys<MultiHeadAttentionWeights>({
  wq: true,
  wk: true,
  wv: true,
  wo: true,
  bq: true,
  bk: true,
  bv: true,
  bo: true,
});
type RopeOptions = NonNullable<MultiHeadAttentionOptions["rope"]>;
const ROPE_KEYS = optionKeys<RopeOptions>({
  base: true,
  style: true,
});
const FORWARD_KEYS = optionKeys<MultiHeadAttentionForwardOptions>({
  keyMask: true,
  mask: true,
  causal: true,
  window: true,
  needWeights: true,
  averageWeights: true,
  cache: true,
  keepForBackward: true,
});
const CACHE_KEYS = optionKeys<KVCacheOptions>({ batch: true, maxLength: true });

/** Forward options that keep the state for backward(): forward then returns `saved`. */
export type KeepForBackward = MultiHeadAttentionForwardOptions & { keepForBackward: true };

const NAME = "MultiHeadAttention";
const FORWARD = "MultiHeadAttention.forward";
const BACKWARD = "MultiHeadAttention.backward";

interface Projection {
  packed: number; // packed weights (gemm layout)
  bias: number; // 0 = none
  outFeatures: number;
  inFeatures: number;
}

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
  readonly #projections: { q: Projection; k: Projection; v: Projection; o: Projection };
  readonly #blocks: number[] = [];
  readonly #caches = new Set<KVCacheImpl>();
  #disposed = false;
  #pending = 0; // forwardAsync calls not yet settled: they still read the weights

  constructor(options: MultiHeadAttentionOptions) {
    this.#kernels = kernels(NAME);
    if (options === undefined || options === null) {
      throw new AttentionError(
        "BAD_OPTION",
        `${NAME}: options must be an object { embedDim, numHeads, ... }, got ${describe(options)}`,
      );
    }
    const o = readOptions<MultiHeadAttentionOptions>(NAME, options, CONSTRUCTOR_KEYS);
    const E = optInteger(NAME, "embedDim", o.embedDim ?? missing("embedDim"), 1, MAX_DIM) ?? 0;
    const H = optInteger(NAME, "numHeads", o.numHeads ?? missing("numHeads"), 1, E) ?? 0;
    const Hkv = optInteger(NAME, "numKvHeads", o.numKvHeads, 1, H) ?? H;
    const kdim = optInteger(NAME, "kdim", o.kdim, 1, MAX_DIM) ?? E;
    const vdim = optInteger(NAME, "vdim", o.vdim, 1, MAX_DIM) ?? E;
    if (E % H !== 0) {
      throw new AttentionError(
        "BAD_OPTION",
        `${NAME}: embedDim ${E} is not divisible by numHeads ${H}`,
      );
    }
    if (H % Hkv !== 0) {
      throw new AttentionError(
        "BAD_OPTION",
        `${NAME}: numHeads ${H} is not divisible by numKvHeads ${Hkv}`,
      );
    }
    const hd = E / H;
    if (hd > MAX_HEAD_DIM) {
      throw new AttentionError(
        "BAD_OPTION",
        `${NAME}: the head dim embedDim / numHeads = ${E} / ${H} = ${hd} must be at most ${MAX_HEAD_DIM}`,
      );
    }
    const bias = optBoolean(NAME, "bias", o.bias) ?? true;
    const seed =
      optInteger(NAME, "seed", o.seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER) ?? 0;
    const kvDim = hd * Hkv;
    if (o.rope !== undefined) {
      const rope = readOptions<RopeOptions>(NAME, o.rope, ROPE_KEYS, "rope");
      optFloat32(NAME, "rope.base", rope.base, { positive: true });
      this.rope = checkRopeConfig(NAME, "rope", rope, hd);
    } else this.rope = undefined;
    // Everything the module keeps in WASM memory, checked before anything is allocated (or made in
    // JavaScript: initWeights makes the matrices first).
    const k = this.#kernels;
    const block = Workspace.blockSize;
    const shapes: Array<[number, number]> = [
      [E, E],
      [kvDim, kdim],
      [kvDim, vdim],
      [E, E],
    ];
    const needed =
      shapes.reduce((n, [out, inp]) => n + block(packedWeightsBytes(k, out, inp)), 0) +
      (bias ? 2 * block(E * 4) + 2 * block(kvDim * 4) : 0) +
      Math.max(...shapes.map(([out, inp]) => block(out * inp * 4)));
    const available = k.workspace.bytesAvailable();
    if (!(needed <= available)) {
      throw new AttentionError(
        "OUT_OF_MEMORY",
        `${NAME}: the weights of embedDim ${E}, kdim ${kdim}, vdim ${vdim} (${Hkv} of ${H} heads for keys ` +
          `and values) need about ${formatBytes(needed)} of WASM memory but only ` +
          `${formatBytes(available)} can be provided within the 4 GiB wasm32 limit`,
      );
    }
    const w =
      o.weights !== undefined
        ? checkWeights(o.weights, E, kvDim, kdim, vdim, bias)
        : initWeights(E, kvDim, kdim, vdim, bias, seed);
    this.embedDim = E;
    this.numHeads = H;
    this.numKvHeads = Hkv;
    this.headDim = hd;
    this.kdim = kdim;
    this.vdim = vdim;
    this.bias = bias;
    try {
      this.#projections = {
        q: this.#pack(w.wq, w.bq),
        k: this.#pack(w.wk, w.bk),
        v: this.#pack(w.wv, w.bv),
        o: this.#pack(w.wo, w.bo),
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
    const { exports, workspace } = this.#kernels;
    const p = this.#projections;
    const pairs = [
      [p.q, w.wq, w.bq],
      [p.k, w.wk, w.bk],
      [p.v, w.wv, w.bv],
      [p.o, w.wo, w.bo],
    ] as const;
    withCall(
      op,
      (k) => pairs.reduce((n, [, weight]) => n + stagedBytes(weight, k), 0),
      (call) => {
        for (const [projection, weight, bias] of pairs) {
          const raw = call.inputF32(weight, "weights");
          const { outFeatures, inFeatures, packed } = projection;
          exports.packWeights(raw, outFeatures, inFeatures, inFeatures, packed);
          if (bias) workspace.f32.set(bias.data, projection.bias >>> 2);
        }
      },
    );
  }

  // The weights and biases, read back out of WASM memory (the module keeps no other copy).
  #readWeights(): MhaParameters {
    const read = (p: Projection): Float32Array =>
      unpackWeights(this.#kernels, p.packed, p.outFeatures, p.inFeatures);
    const bias = (p: Projection): Float32Array | undefined => {
      const at = p.bias >>> 2;
      return p.bias ? this.#kernels.workspace.f32.slice(at, at + p.outFeatures) : undefined;
    };
    const { q, k, v, o } = this.#projections;
    const w: MhaParameters = { wq: read(q), wk: read(k), wv: read(v), wo: read(o) };
    if (this.bias) Object.assign(w, { bq: bias(q), bk: bias(k), bv: bias(v), bo: bias(o) });
    return w;
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

  // Packs one weight matrix (and copies its bias) into memory kept until dispose().
  #pack(weight: Tensor, bias: Tensor | undefined): Projection {
    const { exports, workspace } = this.#kernels;
    const [outFeatures, inFeatures] = weight.shape;
    const packed = this.#persistent(
      packedWeightsBytes(this.#kernels, outFeatures, inFeatures),
      "weights",
    );
    withCall(
      NAME,
      (k) => stagedBytes(weight, k),
      (call) => {
        const raw = call.inputF32(weight, "weights");
        exports.packWeights(raw, outFeatures, inFeatures, inFeatures, packed);
      },
    );
    let biasPtr = 0;
    if (bias) {
      biasPtr = this.#persistent(outFeatures * 4, "bias");
      workspace.f32.set(bias.data, biasPtr >>> 2);
    }
    return { packed, bias: biasPtr, outFeatures, inFeatures };
  }

  // Checks the arguments of a forward call and plans it: its workspace bytes and its steps. Every
  // argument is read here, once, into a snapshot; the steps stage every input into WASM memory
  // (and copy what backward keeps) before their first yield, so forwardAsync reads nothing of the
  // caller's once it has returned its promise.
  #planForward(
    op: string,
    queryIn: unknown,
    keyIn: unknown,
    valueIn: unknown,
    optionsIn: unknown,
  ): Planned<MultiHeadAttentionResult> {
    const options = readOptions<MultiHeadAttentionForwardOptions>(op, optionsIn, FORWARD_KEYS);
    // Snapshots of the { data, shape } forms (ONNX Runtime's { data, dims } accepted), keeping which
    // arguments are the same object: self-attention stages its input once.
    const query = readTensor<Float32Array>(op, "query", queryIn, ["float32"]);
    const keyGiven =
      keyIn === undefined || keyIn === null
        ? undefined
        : keyIn === queryIn
          ? query
          : readTensor<Float32Array>(op, "key", keyIn, ["float32"]);
    const valueGiven =
      valueIn === undefined || valueIn === null
        ? undefined
        : valueIn === queryIn
          ? query
          : valueIn === keyIn
            ? keyGiven
            : readTensor<Float32Array>(op, "value", valueIn, ["float32"]);
    const key = keyGiven ?? query;
    const value = valueGiven ?? query;
    const E = this.embedDim;
    const H = this.numHeads;
    const hd = this.headDim;
    const kvDim = this.numKvHeads * hd;
    const [B, Nq] = sequenceDims(op, query, "query", E);
    const [Bk, Nnew] = sequenceDims(op, key, "key", this.kdim);
    const [Bv, Nv] = sequenceDims(op, value, "value", this.vdim);
    if (Bk !== B || Bv !== B || Nv !== Nnew) {
      throw new AttentionError(
        "SHAPE_MISMATCH",
        `${op}: query ${formatShape(query.shape)}, key ${formatShape(key.shape)} and value ` +
          `${formatShape(value.shape)} must share the batch B, and key and value the length Nk`,
      );
    }
    const cache = options.cache as KVCacheImpl | undefined; // checked below
    const keepForBackward = optBoolean(op, "keepForBackward", options.keepForBackward) === true;
    const needWeights = optBoolean(op, "needWeights", options.needWeights) === true;
    const average = optBoolean(op, "averageWeights", options.averageWeights) ?? true;
    const causal = optBoolean(op, "causal", options.causal);
    const window = readWindow(op, options.window);
    if (keepForBackward && cache !== undefined) {
      throw new AttentionError(
        "BAD_OPTION",
        `${op}: keepForBackward cannot be combined with cache (no backward through a KV cache)`,
      );
    }
    let past = 0;
    if (cache !== undefined) {
      if (!(cache instanceof KVCacheImpl) || !cache.belongsTo(this)) {
        throw new AttentionError(
          "BAD_OPTION",
          `${op}: cache must come from this module's createCache(), got ${describe(cache)}`,
        );
      }
      cache.checkUsable(op, B, Nnew);
      past = cache.length;
    }
    const Nk = past + Nnew;

    let keyMask: Tensor<Uint8Array> | undefined;
    if (options.keyMask !== undefined) {
      keyMask = readTensor<Uint8Array>(op, "keyMask", options.keyMask, ["uint8"]);
      const s = keyMask.shape;
      if (s.length !== 2 || s[0] !== B || s[1] !== Nk) {
        throw new AttentionError(
          "SHAPE_MISMATCH",
          `${op}: keyMask has shape ${formatShape(s)} but must be [B, Nk] = [${B},${Nk}]`,
        );
      }
    }
    const mask =
      options.mask === undefined
        ? undefined
        : readTensor<Uint8Array | Float32Array>(op, "mask", options.mask, ["uint8", "float32"]);
    let maskShape: readonly number[] | undefined;
    if (mask !== undefined) {
      // PyTorch's [B·H, Nq, Nk] form: the same memory seen as [B, H, Nq, Nk].
      const s = mask.shape;
      if (s.length === 3 && s[0] === B * H && B > 1) maskShape = [B, H, s[1], s[2]];
    }
    const attentionOptions: AttentionOptions = {
      returnWeights: needWeights,
      returnLse: keepForBackward,
    };
    if (mask !== undefined)
      attentionOptions.mask = mask as Tensor<Uint8Array> | Tensor<Float32Array>;
    if (causal !== undefined) attentionOptions.causal = causal;
    if (window !== undefined) attentionOptions.window = window;
    const plan: AttentionPlan = planAttention(
      op,
      { B, H, Hkv: this.numKvHeads, Nq, Nk, D: hd, Dv: hd },
      attentionOptions,
      maskShape,
    );
    const selfAttention = key === query && value === query;
    const crossSame = key === value;
    const rope = this.rope;
    const ropeRows = Math.max(Nq, Nnew);
    const block = Workspace.blockSize;
    const lead = query.shape.slice(0, -2);
    const outRows = B * Nq; // rows of Q, of the attention output and of the output
    const newRows = B * Nnew; // rows of this call's keys and values
    const { q: pq, k: pk, v: pv, o: po } = this.#projections;
    const { kdim, vdim, numKvHeads } = this;
    const owner = this;
    const weightsShape = (): number[] =>
      average ? [...lead, Nq, Nk] : lead.length ? [B, H, Nq, Nk] : [H, Nq, Nk];

    // Nothing to compute (no output row, no key for a cache to take): an empty result at once,
    // without allocating, running a kernel or dispatching to the pool.
    if (outRows === 0 && (cache === undefined || newRows === 0)) {
      const saved =
        keepForBackward &&
        this.#keep({
          query,
          key,
          value,
          keyGiven,
          valueGiven,
          selfAttention,
          crossSame,
          B,
          Nq,
          Nk,
          q: new Float32Array(0),
          k: new Float32Array(0),
          v: new Float32Array(0),
          attended: new Float32Array(0),
          lse: new Float32Array(0),
          mask,
          maskShape,
          keyMask,
          causal,
          window,
        });
      return {
        bytes: () => 0,
        steps: function* (): Steps<MultiHeadAttentionResult> {
          const result: MultiHeadAttentionResult = {
            output: { data: new Float32Array(0), shape: [...lead, Nq, E] },
          };
          if (needWeights) result.weights = { data: new Float32Array(0), shape: weightsShape() };
          if (saved) result.saved = saved;
          return result;
        },
      };
    }

    const bytes = (k: Kernels): number =>
      stagedBytes(query, k) +
      (selfAttention ? 0 : stagedBytes(key, k)) +
      (selfAttention || crossSame ? 0 : stagedBytes(value, k)) +
      block(outRows * E * 4) * 3 + // Q, attention output, output
      (cache ? 0 : block(newRows * kvDim * 4) * 2) + // K, V
      (keyMask ? stagedBytes(keyMask, k) : 0) +
      (plan.mask ? stagedBytes(plan.mask.tensor, k) : 0) +
      (rope ? block(ropeTableBytes(ropeRows, hd)) : 0) +
      (k.pool?.size ?? 1) * block(k.exports.gemmScratchBytes()) * 4 +
      block(P.SDPA_PARAMS_BYTES) + // the parameter block of an asynchronous call
      (Nk > 0 ? attentionBytes(k, plan) : 0);

    // The data flow of a forward call; forward() runs each yielded step, forwardAsync() awaits it.
    const steps = function* (call: Call): Steps<MultiHeadAttentionResult> {
      // Everything read from the caller's arrays happens here, before the first yield.
      const copies = keepForBackward
        ? copyInputs(query, key, value, selfAttention, crossSame, mask, maskShape, keyMask)
        : undefined;
      const qIn = call.inputF32(query, "query");
      const kIn = selfAttention ? qIn : call.inputF32(key, "key");
      const vIn = selfAttention ? qIn : crossSame ? kIn : call.inputF32(value, "value");
      const keyMaskPtr = keyMask ? call.inputU8(keyMask, "keyMask") : 0;
      let maskOperand: AttentionOperands["mask"];
      if (plan.mask && Nk > 0) {
        const t = plan.mask.tensor;
        const ptr =
          typedArrayName(t.data) === "Uint8Array"
            ? call.inputU8(t as Tensor<Uint8Array>, "mask")
            : call.inputF32(t as Tensor<Float32Array>, "mask");
        maskOperand = { ptr, kind: plan.mask.kind, strides: plan.mask.strides };
      }

      const qPtr = call.alloc(outRows * E * 4, "Q");
      if (outRows > 0) yield project(pq, qIn, outRows, qPtr, E);
      const qOperand: Operand = { ptr: qPtr, strideB: Nq * E, strideH: hd, strideRow: E };
      // Keys and values: into the cache after its `past` tokens, or into fresh buffers.
      let kOperand: Operand;
      let vOperand: Operand;
      let kRows: number; // where this call's keys start, for RoPE
      if (cache) {
        const at = cache.appendTargets();
        for (let b = 0; b < B && Nnew > 0; b++) {
          const firstRow = b * Nnew;
          yield project(pk, kIn + firstRow * kdim * 4, Nnew, at.keys(b), kvDim);
          yield project(pv, vIn + firstRow * vdim * 4, Nnew, at.values(b), kvDim);
        }
        kOperand = {
          ptr: cache.keysPtr,
          strideB: cache.maxLength * kvDim,
          strideH: hd,
          strideRow: kvDim,
        };
        vOperand = {
          ptr: cache.valuesPtr,
          strideB: cache.maxLength * kvDim,
          strideH: hd,
          strideRow: kvDim,
        };
        kRows = past;
      } else {
        const kPtr = call.alloc(newRows * kvDim * 4, "K");
        const vPtr = call.alloc(newRows * kvDim * 4, "V");
        if (newRows > 0) {
          yield project(pk, kIn, newRows, kPtr, kvDim);
          yield project(pv, vIn, newRows, vPtr, kvDim);
        }
        kOperand = { ptr: kPtr, strideB: Nnew * kvDim, strideH: hd, strideRow: kvDim };
        vOperand = { ptr: vPtr, strideB: Nnew * kvDim, strideH: hd, strideRow: kvDim };
        kRows = 0;
      }
      if (rope) {
        // Queries sit at the last Nq positions of the Nk keys (lower-right, as the kernel's causal).
        const table = call.alloc(ropeTableBytes(ropeRows, hd), "rope table");
        if (outRows > 0) applyRopeInPlace(call, rope, qOperand, B, H, Nq, hd, Nk - Nq, table);
        const newKeys = { ...kOperand, ptr: kOperand.ptr + kRows * kvDim * 4 };
        if (newRows > 0)
          applyRopeInPlace(call, rope, newKeys, B, numKvHeads, Nnew, hd, past, table);
      }
      if (outRows === 0) {
        // A cache fed keys without queries: nothing to attend.
        if (cache) cache.commit(Nnew);
        const empty: MultiHeadAttentionResult = {
          output: { data: new Float32Array(0), shape: [...lead, Nq, E] },
        };
        if (needWeights) empty.weights = { data: new Float32Array(0), shape: weightsShape() };
        return empty;
      }
      const attended = call.alloc(outRows * E * 4, "attention output");
      let result: { weights?: Float32Array; lse?: Float32Array };
      if (Nk === 0) {
        // No key at all: every row is fully masked, so the attention output is zeros (the output
        // is then the output projection's bias) and lse −Infinity.
        call.workspace.f32.fill(0, attended >>> 2, (attended >>> 2) + outRows * E);
        result = {
          weights: needWeights ? new Float32Array(0) : undefined,
          lse: keepForBackward ? new Float32Array(B * H * Nq).fill(-Infinity) : undefined,
        };
      } else {
        const attention: AttentionStep = {
          plan,
          operands: {
            q: qOperand,
            k: kOperand,
            v: vOperand,
            out: { ...qOperand, ptr: attended },
            keyMask: keyMask ? { ptr: keyMaskPtr, strideB: Nk } : undefined,
            mask: maskOperand,
          },
        };
        yield attention;
        result = attention.result ?? {};
      }
      const yPtr = call.alloc(outRows * E * 4, "output");
      yield project(po, attended, outRows, yPtr, E);
      if (cache) cache.commit(Nnew);
      const output: MultiHeadAttentionResult = {
        output: { data: call.outputF32(yPtr, outRows * E), shape: [...lead, Nq, E] },
      };
      if (result.weights) {
        output.weights = average
          ? { data: averageHeads(result.weights, B, H, Nq * Nk), shape: weightsShape() }
          : { data: result.weights, shape: weightsShape() };
      }
      if (copies) {
        // Q and K after RoPE (no cache here, so K and V are the fresh buffers), V, the attention
        // output and lse, with the copies of the inputs and masks taken before the first step.
        output.saved = owner.#keep({
          ...copies,
          keyGiven,
          valueGiven,
          selfAttention,
          crossSame,
          B,
          Nq,
          Nk,
          q: call.outputF32(qOperand.ptr, outRows * E),
          k: call.outputF32(kOperand.ptr, B * Nk * kvDim),
          v: call.outputF32(vOperand.ptr, B * Nk * kvDim),
          attended: call.outputF32(attended, outRows * E),
          lse: result.lse ?? new Float32Array(0),
          causal,
          window,
        });
      }
      return output;
    };
    return { bytes, steps };
  }

  // The opaque `saved` handle of a forward call; the weights are a snapshot, so setWeights() after
  // the call does not change its gradients. Inputs not copied yet (`copied` false) are copied here.
  #keep(s: KeepArgs): MhaSaved {
    const copies =
      s.copied === true
        ? s
        : copyInputs(
            s.query,
            s.key,
            s.value,
            s.selfAttention,
            s.crossSame,
            s.mask,
            s.maskShape,
            s.keyMask,
          );
    const state: SavedState = {
      owner: this,
      weights: this.#readWeights(),
      query: copies.query,
      key: copies.key,
      value: copies.value,
      keyGiven: s.keyGiven !== undefined,
      valueGiven: s.valueGiven !== undefined,
      B: s.B,
      Nq: s.Nq,
      Nk: s.Nk,
      q: s.q,
      k: s.k,
      v: s.v,
      attended: s.attended,
      lse: s.lse,
      mask: copies.mask as SavedState["mask"],
      keyMask: copies.keyMask,
      causal: s.causal,
      window: s.window,
    };
    return keep(state);
  }
}

interface InputCopies {
  copied: true;
  query: Tensor;
  key: Tensor;
  value: Tensor;
  mask?: Tensor<Uint8Array> | Tensor<Float32Array>;
  keyMask?: Tensor<Uint8Array>;
}

interface KeepArgs {
  copied?: boolean;
  query: Tensor;
  key: Tensor;
  value: Tensor;
  keyGiven: Tensor | undefined;
  valueGiven: Tensor | undefined;
  selfAttention: boolean;
  crossSame: boolean;
  B: number;
  Nq: number;
  Nk: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  attended: Float32Array;
  lse: Float32Array;
  mask?: Tensor<Uint8Array | Float32Array> | Tensor<Uint8Array> | Tensor<Float32Array>;
  maskShape?: readonly number[];
  keyMask?: Tensor<Uint8Array>;
  causal?: boolean;
  window?: readonly [number, number];
}

// Copies in fresh JavaScript memory of everything backward reads of the caller's: the inputs (key
// and value the same copy where they were the same tensor) and the masks.
function copyInputs(
  query: Tensor,
  key: Tensor,
  value: Tensor,
  selfAttention: boolean,
  crossSame: boolean,
  mask: Tensor<Uint8Array | Float32Array> | undefined,
  maskShape: readonly number[] | undefined,
  keyMask: Tensor<Uint8Array> | undefined,
): InputCopies {
  const queryCopy = copyTensor(query);
  const keyCopy = key === query ? queryCopy : copyTensor(key);
  return {
    copied: true,
    query: queryCopy,
    key: keyCopy,
    value: selfAttention || value === query ? queryCopy : crossSame ? keyCopy : copyTensor(value),
    mask: mask && (copyTensor(mask, maskShape) as Tensor<Uint8Array> | Tensor<Float32Array>),
    keyMask: keyMask && copyTensor(keyMask),
  };
}

/**
 * The `window` option read once: a genuine array of two entries is copied (each read once) for
 * planAttention to check; anything else is passed on as is, for planAttention to refuse.
 */
function readWindow(op: string, w: unknown): readonly [number, number] | undefined {
  if (w === undefined || !Array.isArray(w)) return w as undefined;
  try {
    const length: unknown = w.length;
    if (length !== 2) return w as unknown as readonly [number, number];
    return Object.freeze([w[0], w[1]]) as unknown as readonly [number, number];
  } catch (err) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: window cannot be read (${err instanceof Error ? err.message : String(err)})`,
    );
  }
}

function missing(name: string): never {
  throw new AttentionError("BAD_OPTION", `${NAME}: ${name} is required (a positive integer)`);
}

// y [rows, outFeatures] (row stride ldy) = x [rows, inFeatures] · Wᵀ + b.
function project(p: Projection, x: number, rows: number, y: number, ldy: number): Step {
  const { inFeatures, outFeatures, packed, bias } = p;
  return {
    gemm: { x, m: rows, k: inFeatures, ldx: inFeatures, packed, n: outFeatures, bias, y, ldy },
  };
}

// [B, N] of a [B, N, features] (or [N, features]) input, checking the feature size.
function sequenceDims(op: string, t: Tensor, name: string, features: number): [number, number] {
  const s = t.shape;
  if ((s.length !== 3 && s.length !== 2) || s[s.length - 1] !== features) {
    throw new AttentionError(
      "SHAPE_MISMATCH",
      `${op}: ${name} has shape ${formatShape(s)} but must be [B, N, ${features}] (or [N, ${features}])`,
    );
  }
  return s.length === 3 ? [s[0], s[1]] : [1, s[0]];
}

/** A copy of `t` in fresh JavaScript memory (also of a WasmTensor), optionally seen as `shape`. */
function copyTensor<T extends Float32Array | Uint8Array>(
  t: Tensor<T>,
  shape: readonly number[] = t.shape,
): Tensor<T> {
  return { data: t.data.slice() as T, shape: [...shape] };
}

function averageHeads(weights: Float32Array, B: number, H: number, plane: number): Float32Array {
  const out = new Float32Array(B * plane);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const from = (b * H + h) * plane;
      for (let i = 0; i < plane; i++) out[b * plane + i] += weights[from + i];
    }
    for (let i = 0; i < plane; i++) out[b * plane + i] /= H;
  }
  return out;
}

interface CheckedWeights {
  wq: Tensor;
  wk: Tensor;
  wv: Tensor;
  wo: Tensor;
  bq?: Tensor;
  bk?: Tensor;
  bv?: Tensor;
  bo?: Tensor;
}

function checkWeights(
  weights: unknown,
  E: number,
  kvDim: number,
  kdim: number,
  vdim: number,
  bias: boolean,
  op: string = NAME,
): CheckedWeights {
  const w = readOptions<MultiHeadAttentionWeights>(op, weights, WEIGHT_KEYS, "weights");
  const matrix = (name: "wq" | "wk" | "wv" | "wo", inp: number, out: number): Tensor => {
    const m = w[name];
    if (m === undefined) {
      throw new AttentionError("BAD_OPTION", `${op}: weights.${name} [${out},${inp}] is missing`);
    }
    return weightTensor(op, `weights.${name}`, m, inp, out);
  };
  const checked: CheckedWeights = {
    wq: matrix("wq", E, E),
    wk: matrix("wk", kdim, kvDim),
    wv: matrix("wv", vdim, kvDim),
    wo: matrix("wo", E, E),
  };
  const biasSizes = { bq: E, bk: kvDim, bv: kvDim, bo: E } as const;
  for (const name of ["bq", "bk", "bv", "bo"] as const) {
    const b = w[name];
    const n = biasSizes[name];
    if (b === undefined) {
      if (bias) checked[name] = { data: new Float32Array(n), shape: [n] };
      continue;
    }
    if (!bias) {
      throw new AttentionError("BAD_OPTION", `${op}: weights.${name} is given but bias is false`);
    }
    checked[name] = readVector(
      op,
      `weights.${name}`,
      b,
      n,
      name === "bq" || name === "bo" ? "[E]" : "[E·Hkv/H]",
    );
  }
  return checked;
}

// PyTorch's initialisation: Xavier uniform on the input projections (one [3E, E] matrix when
// kdim = vdim = E and there is no grouping, as torch's in_proj_weight; separate matrices
// otherwise), the default Linear bound 1/sqrt(E) on the output projection, zero biases.
function initWeights(
  E: number,
  kvDim: number,
  kdim: number,
  vdim: number,
  bias: boolean,
  seed: number,
): CheckedWeights {
  const random = mulberry32(seed);
  const uniform = (n: number, bound: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (random() * 2 - 1) * bound;
    return a;
  };
  const packed = kdim === E && vdim === E && kvDim === E;
  const xavier = (out: number, inp: number): number =>
    Math.sqrt(6 / (packed ? E + 3 * E : inp + out));
  const w: CheckedWeights = {
    wq: { data: uniform(E * E, xavier(E, E)), shape: [E, E] },
    wk: { data: uniform(kvDim * kdim, xavier(kvDim, kdim)), shape: [kvDim, kdim] },
    wv: { data: uniform(kvDim * vdim, xavier(kvDim, vdim)), shape: [kvDim, vdim] },
    wo: { data: uniform(E * E, 1 / Math.sqrt(E)), shape: [E, E] },
  };
  if (bias) {
    const zeros = (n: number): Tensor => ({ data: new Float32Array(n), shape: [n] });
    w.bq = zeros(E);
    w.bk = zeros(kvDim);
    w.bv = zeros(kvDim);
    w.bo = zeros(E);
  }
  return w;
}
