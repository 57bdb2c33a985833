// A forward call of MultiHeadAttention: its arguments checked and planned, and its steps.
//
// Data flow of forward(), all in WASM memory: Q = query·Wqᵀ + bq [B·Nq, E], K and V likewise
// [B·Nk, E·Hkv/H]; the attention kernel reads the heads straight out of these row-major
// projections through strides (head h is columns h·hd..(h+1)·hd) and writes its output in the same
// concatenated layout, which the output projection then reads: no transposes anywhere. With
// keepForBackward, forward also copies out what backward() (src/ops/mha/backward.ts) needs.

import { type Call, stagedBytes } from "../../runtime/call.js";
import { AttentionError, formatShape } from "../../core/errors.js";
import { KVCacheImpl } from "./kv-cache.js";
import { type MhaSaved } from "./saved.js";
import { applyRopeInPlace, ropeTableBytes, type RopeConfig } from "../rope.js";
import { type Kernels } from "../../runtime/runtime.js";
import { attentionBytes } from "../../engine/run.js";
import { planAttention, type AttentionPlan } from "../../engine/plan.js";
import { type AttentionOperands, type Operand } from "../../engine/params.js";
import { type AttentionOptions } from "../../engine/options.js";
import { optBoolean, readOptions } from "../../core/option-values.js";
import { describe, readTensor, type Tensor } from "../../core/tensor.js";
import { typedArrayName } from "../../core/typed-arrays.js";
import { type Planned, type AttentionStep, type Step, type Steps } from "../../engine/steps.js";
import { Workspace } from "../../runtime/workspace.js";
import * as P from "../../../assembly/shared.js";
import {
  FORWARD_KEYS,
  readWindow,
  type MultiHeadAttentionForwardOptions,
  type MultiHeadAttentionResult,
} from "./options.js";
import { type Projection, type Projections } from "./weights.js";
import { copyInputs, type KeepArgs } from "./keep.js";

/** What a forward call reads of its module (a MultiHeadAttention; its caches belong to it). */
export interface ForwardModule {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly kdim: number;
  readonly vdim: number;
  readonly rope: RopeConfig | undefined;
}

// Checks the arguments of a forward call and plans it: its workspace bytes and its steps. Every
// argument is read here, once, into a snapshot; the steps stage every input into WASM memory
// (and copy what backward keeps) before their first yield, so forwardAsync reads nothing of the
// caller's once it has returned its promise.
export function planForward(
  op: string,
  module: ForwardModule,
  projections: Projections,
  keep: (s: KeepArgs) => MhaSaved,
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
  const E = module.embedDim;
  const H = module.numHeads;
  const hd = module.headDim;
  const kvDim = module.numKvHeads * hd;
  const [B, Nq] = sequenceDims(op, query, "query", E);
  const [Bk, Nnew] = sequenceDims(op, key, "key", module.kdim);
  const [Bv, Nv] = sequenceDims(op, value, "value", module.vdim);
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
    if (!(cache instanceof KVCacheImpl) || !cache.belongsTo(module)) {
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
  if (mask !== undefined) attentionOptions.mask = mask as Tensor<Uint8Array> | Tensor<Float32Array>;
  if (causal !== undefined) attentionOptions.causal = causal;
  if (window !== undefined) attentionOptions.window = window;
  const plan: AttentionPlan = planAttention(
    op,
    { B, H, Hkv: module.numKvHeads, Nq, Nk, D: hd, Dv: hd },
    attentionOptions,
    maskShape,
  );
  const selfAttention = key === query && value === query;
  const crossSame = key === value;
  const rope = module.rope;
  const ropeRows = Math.max(Nq, Nnew);
  const block = Workspace.blockSize;
  const lead = query.shape.slice(0, -2);
  const outRows = B * Nq; // rows of Q, of the attention output and of the output
  const newRows = B * Nnew; // rows of this call's keys and values
  const { q: pq, k: pk, v: pv, o: po } = projections;
  const { kdim, vdim, numKvHeads } = module;
  const weightsShape = (): number[] =>
    average ? [...lead, Nq, Nk] : lead.length ? [B, H, Nq, Nk] : [H, Nq, Nk];

  // Nothing to compute (no output row, no key for a cache to take): an empty result at once,
  // without allocating, running a kernel or dispatching to the pool.
  if (outRows === 0 && (cache === undefined || newRows === 0)) {
    const saved =
      keepForBackward &&
      keep({
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
      if (newRows > 0) applyRopeInPlace(call, rope, newKeys, B, numKvHeads, Nnew, hd, past, table);
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
      output.saved = keep({
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
