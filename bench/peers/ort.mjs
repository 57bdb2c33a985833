// Peer for the benchmark: attention as ONNX graphs, run by onnxruntime-web on its WASM backend
// (single thread, no worker proxy) in Node. Three graphs:
//   createOrtSdpa    plain scaled dot-product attention softmax(q·kᵀ/√D [+ causal mask]) · v
//   createOrtMha     PyTorch nn.MultiheadAttention self-attention (batch_first, bias, no mask)
//   createOrtDecode  one decode step (Nq = 1) with the K/V cache copied in from JS on every run
//
// The ONNX model is built in code and serialized with the tiny protobuf writer below, so the
// benchmark needs no model files and no protobuf/onnx dependency.
//
// "onnxruntime-web" resolves, under Node's "node" export condition, to dist/ort.node.min.mjs:
// a Node build that registers only the "wasm" (CPU) backend and loads
// dist/ort-wasm-simd-threaded.{mjs,wasm} from the package directory itself, never the network.

import * as ort from "onnxruntime-web";

/** Version of onnxruntime-web in use (e.g. "1.30.0"). */
export const ortVersion = ort.env.versions.web ?? ort.env.versions.common;

// ---------------------------------------------------------------------------------------------
// Minimal protobuf writer (proto3 wire format): just what the ONNX messages below need.

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

const utf8 = new TextEncoder();

class PbWriter {
  constructor() {
    /** @type {Uint8Array[]} */
    this.parts = [];
  }

  /**
   * Base-128 varint of an integer (int32/int64/enum). Negative values are written as their
   * 64-bit two's complement (10 bytes), as protobuf does for int64 (e.g. Softmax axis = -1).
   */
  rawVarint(value) {
    if (!Number.isSafeInteger(value)) throw new RangeError(`not a safe integer: ${value}`);
    let v = BigInt.asUintN(64, BigInt(value));
    const out = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.parts.push(Uint8Array.from(out));
    return this;
  }

  tag(field, wireType) {
    return this.rawVarint(field * 8 + wireType);
  }

  /** int32 / int64 / enum field. */
  varint(field, value) {
    return this.tag(field, WIRE_VARINT).rawVarint(value);
  }

  /** bytes field (the array is referenced, not copied, until finish()). */
  bytes(field, data) {
    this.tag(field, WIRE_LEN).rawVarint(data.length);
    this.parts.push(data);
    return this;
  }

  /** string field (UTF-8). */
  string(field, str) {
    return this.bytes(field, utf8.encode(str));
  }

  /** Embedded message field; `msg` is another PbWriter. */
  message(field, msg) {
    return this.bytes(field, msg.finish());
  }

  /** Packed repeated varints (e.g. AttributeProto `repeated int64 ints`). */
  packedVarints(field, values) {
    const inner = new PbWriter();
    for (const v of values) inner.rawVarint(v);
    return this.message(field, inner);
  }

  finish() {
    let len = 0;
    for (const p of this.parts) len += p.length;
    const out = new Uint8Array(len);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// ONNX message encoders. Field numbers are from onnx/onnx.proto3.

const DT_FLOAT = 1; // TensorProto.DataType.FLOAT
const DT_INT64 = 7; // TensorProto.DataType.INT64
const ATTR_INT = 2; // AttributeProto.AttributeType.INT
const ATTR_INTS = 7; // AttributeProto.AttributeType.INTS

/** TensorProto holding float32 data as raw_data (little-endian, as the spec requires). */
function tensorProto(name, dims, data) {
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
  const t = new PbWriter();
  for (const d of dims) t.varint(1, d); // dims (unpacked repeated int64 parses fine too)
  t.varint(2, DT_FLOAT); // data_type
  t.string(8, name); // name
  t.bytes(9, raw); // raw_data
  return t;
}

/** TensorProto holding int64 data in int64_data (field 7, packed varints), e.g. Reshape's shape. */
function int64TensorProto(name, dims, values) {
  const t = new PbWriter();
  for (const d of dims) t.varint(1, d); // dims
  t.varint(2, DT_INT64); // data_type
  t.packedVarints(7, values); // int64_data
  t.string(8, name); // name
  return t;
}

/** ValueInfoProto for a float32 tensor of static shape. */
function valueInfo(name, dims) {
  const shape = new PbWriter(); // TensorShapeProto
  for (const d of dims) shape.message(1, new PbWriter().varint(1, d)); // dim { dim_value }
  const tensorType = new PbWriter().varint(1, DT_FLOAT).message(2, shape); // elem_type, shape
  const type = new PbWriter().message(1, tensorType); // TypeProto.tensor_type
  return new PbWriter().string(1, name).message(2, type); // name, type
}

/** AttributeProto: name = 1, type = 20, i = 3, ints = 8. */
function attrInt(name, value) {
  return new PbWriter().string(1, name).varint(20, ATTR_INT).varint(3, value);
}

function attrInts(name, values) {
  return new PbWriter().string(1, name).varint(20, ATTR_INTS).packedVarints(8, values);
}

/** NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5. */
function node(opType, inputs, outputs, attributes = []) {
  const n = new PbWriter();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  n.string(3, `${opType}_${outputs[0]}`);
  n.string(4, opType);
  for (const a of attributes) n.message(5, a);
  return n;
}

const IR_VERSION = 8;
const OPSET = 17; // default ("ai.onnx") domain; Softmax-13 semantics (single axis)

// Large negative (finite) additive mask value. exp(-1e9 + s) underflows to exactly 0, while a
// finite value avoids the NaNs -Infinity would produce in a fully masked row.
const MASK_NEG = -1e9;

/**
 * Causal mask [Nq, Nk], aligned bottom-right (query i sees keys j <= i + Nk - Nq), which is the
 * usual convention when the queries are the last Nq positions of the key sequence.
 */
function causalMask(Nq, Nk) {
  const m = new Float32Array(Nq * Nk);
  const shift = Nk - Nq;
  for (let i = 0; i < Nq; i++) {
    for (let j = 0; j < Nk; j++) m[i * Nk + j] = j <= i + shift ? 0 : MASK_NEG;
  }
  return m;
}

/**
 * Serialized ModelProto (Uint8Array) of one graph in the default domain. `inputs` and `outputs`
 * are [name, dims] pairs of float32 tensors; `nodes` and `initializers` are PbWriters.
 */
function buildModel({ name, nodes, initializers, inputs, outputs }) {
  const graph = new PbWriter(); // GraphProto
  for (const n of nodes) graph.message(1, n); // node
  graph.string(2, name); // name
  for (const t of initializers) graph.message(5, t); // initializer
  for (const [n, dims] of inputs) graph.message(11, valueInfo(n, dims)); // input
  for (const [n, dims] of outputs) graph.message(12, valueInfo(n, dims)); // output

  const opset = new PbWriter().string(1, "").varint(2, OPSET); // OperatorSetIdProto
  const model = new PbWriter(); // ModelProto
  model.varint(1, IR_VERSION); // ir_version
  model.string(2, "wasm-attention-bench"); // producer_name
  model.message(7, graph); // graph
  model.message(8, opset); // opset_import
  return model.finish();
}

/**
 * Nodes and initializers of softmax(q·kᵀ/√D [+ causal mask]) · v on the tensors named q, k, v
 * ([..., Nq, D], [..., Nk, D], [..., Nk, Dv]), writing the tensor named `out`. Its own tensors
 * are named kT, scores, scale, scaled, mask, masked and probs.
 */
function sdpaGraph({ q, k, v, out, Nq, Nk, D, causal = false }) {
  const nodes = [
    node("Transpose", [k], ["kT"], [attrInts("perm", [0, 1, 3, 2])]),
    node("MatMul", [q, "kT"], ["scores"]),
    node("Mul", ["scores", "scale"], ["scaled"]),
  ];
  const initializers = [tensorProto("scale", [], [1 / Math.sqrt(D)])]; // scalar
  let logits = "scaled";
  if (causal) {
    // [Nq, Nk] broadcasts over [B, H, Nq, Nk].
    initializers.push(tensorProto("mask", [Nq, Nk], causalMask(Nq, Nk)));
    nodes.push(node("Add", ["scaled", "mask"], ["masked"]));
    logits = "masked";
  }
  nodes.push(node("Softmax", [logits], ["probs"], [attrInt("axis", -1)]));
  nodes.push(node("MatMul", ["probs", v], [out]));
  return { nodes, initializers };
}

/** Serialized ModelProto (Uint8Array) for softmax(q·kᵀ/√D [+ causal mask]) · v. */
export function buildSdpaModel({ B, H, Nq, Nk, D, Dv, causal }) {
  const { nodes, initializers } = sdpaGraph({
    q: "q",
    k: "k",
    v: "v",
    out: "out",
    Nq,
    Nk,
    D,
    causal,
  });
  return buildModel({
    name: "sdpa",
    nodes,
    initializers,
    inputs: [
      ["q", [B, H, Nq, D]],
      ["k", [B, H, Nk, D]],
      ["v", [B, H, Nk, Dv]],
    ],
    outputs: [["out", [B, H, Nq, Dv]]],
  });
}

/** Wᵀ of a row-major [rows, cols] matrix, as a new Float32Array [cols, rows]. */
function transposed(w, rows, cols) {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  }
  return t;
}

/** Checks the eight nn.MultiheadAttention weights: W* Float32Array [E·E], b* Float32Array [E]. */
function checkMhaWeights(weights, E) {
  for (const name of ["wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"]) {
    const expected = name[0] === "w" ? E * E : E;
    const a = weights[name];
    if (!(a instanceof Float32Array) || a.length !== expected) {
      throw new TypeError(`${name}: expected a Float32Array of length ${expected}`);
    }
  }
}

function checkMhaShape({ B, N, E, H }) {
  for (const [name, value] of Object.entries({ B, N, E, H })) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name}: ${value}`);
  }
  if (E % H !== 0) throw new RangeError(`E = ${E} is not divisible by H = ${H}`);
}

/**
 * Serialized ModelProto (Uint8Array) for PyTorch nn.MultiheadAttention self-attention
 * (batch_first, bias, no mask) on x [B, N, E]. `weights` are in PyTorch layout: wq, wk, wv, wo
 * [E, E] (out_features, in_features) and bq, bk, bv, bo [E]; the graph holds Wᵀ as MatMul's
 * right operand, then adds the bias:
 *
 *   Q = x·Wqᵀ + bq → Reshape [B, N, H, hd] → Transpose [B, H, N, hd]   (K, V likewise)
 *   A = softmax(Q·Kᵀ/√hd) · V → Transpose [B, N, H, hd] → Reshape [B, N, E]
 *   out = A·Woᵀ + bo
 *
 * With graphOptimizationLevel "all", onnxruntime-web 1.30 runs each projection as Reshape to
 * [B·N, E] → Gemm → Reshape (MatMulAddFusion), merges K's two Transposes into one and folds the
 * scale into a FusedMatMul; its AttentionFusion does not match this pattern, so no fused
 * attention kernel is used (checked with enableProfiling on small shapes).
 */
export function buildMhaModel({ B, N, E, H }, weights) {
  checkMhaShape({ B, N, E, H });
  checkMhaWeights(weights, E);
  const hd = E / H;
  const nodes = [];
  const initializers = [
    int64TensorProto("heads_shape", [4], [B, N, H, hd]),
    int64TensorProto("embed_shape", [3], [B, N, E]),
  ];
  /** x·Wᵀ + b → `out`, with the weight and bias initializers named `${name}_wT`, `${name}_b`. */
  const linear = (input, name, w, b, out) => {
    initializers.push(tensorProto(`${name}_wT`, [E, E], transposed(w, E, E)));
    initializers.push(tensorProto(`${name}_b`, [E], b));
    nodes.push(node("MatMul", [input, `${name}_wT`], [`${name}_mm`]));
    nodes.push(node("Add", [`${name}_mm`, `${name}_b`], [out]));
  };
  for (const name of ["q", "k", "v"]) {
    linear("x", `${name}_proj`, weights[`w${name}`], weights[`b${name}`], `${name}_lin`);
    nodes.push(node("Reshape", [`${name}_lin`, "heads_shape"], [`${name}_bnhd`]));
    nodes.push(node("Transpose", [`${name}_bnhd`], [name], [attrInts("perm", [0, 2, 1, 3])]));
  }
  const sdpa = sdpaGraph({ q: "q", k: "k", v: "v", out: "attn", Nq: N, Nk: N, D: hd });
  nodes.push(...sdpa.nodes);
  initializers.push(...sdpa.initializers);
  nodes.push(node("Transpose", ["attn"], ["attn_bnhd"], [attrInts("perm", [0, 2, 1, 3])]));
  nodes.push(node("Reshape", ["attn_bnhd", "embed_shape"], ["attn_bne"]));
  linear("attn_bne", "out_proj", weights.wo, weights.bo, "out");

  return buildModel({
    name: "mha",
    nodes,
    initializers,
    inputs: [["x", [B, N, E]]],
    outputs: [["out", [B, N, E]]],
  });
}

// ---------------------------------------------------------------------------------------------
// Session wrapper.

// Threads of every session of this process: ONNX Runtime Web reads the setting once, when its wasm
// starts, so a benchmark that wants 2 threads calls setOrtThreads(2) before its first session.
let ortThreads = 1;

/** Sets the thread count of the sessions this process will create (call before the first one). */
export function setOrtThreads(n) {
  ortThreads = n;
}

/** Load a serialized model into an onnxruntime-web WASM session (no worker proxy). */
async function createSession(model) {
  // Read when the WASM module is first initialized (i.e. on the first session creation), so set
  // them before every create: 1 thread, and run on the calling thread rather than a worker.
  ort.env.wasm.numThreads = ortThreads;
  ort.env.wasm.proxy = false;
  return ort.InferenceSession.create(model, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
}

/** A float32 ort.Tensor over `data` (not copied here; session.run copies it into the heap). */
function float32Input(name, data, dims) {
  const size = dims.reduce((a, b) => a * b, 1);
  if (!(data instanceof Float32Array) || data.length !== size) {
    throw new TypeError(`${name}: expected a Float32Array of length ${size}`);
  }
  return new ort.Tensor("float32", data, dims);
}

/**
 * Build the SDPA model for fixed shapes and load it into an onnxruntime-web WASM session.
 *
 * @param {{ B: number, H: number, Nq: number, Nk: number, D: number, Dv: number,
 *   causal?: boolean }} shape
 * @returns {Promise<{ run(q: Float32Array, k: Float32Array, v: Float32Array):
 *   Promise<Float32Array>, dispose(): Promise<void> }>}
 */
export async function createOrtSdpa({ B, H, Nq, Nk, D, Dv, causal = false }) {
  const session = await createSession(buildSdpaModel({ B, H, Nq, Nk, D, Dv, causal }));
  return {
    async run(q, k, v) {
      const results = await session.run({
        q: float32Input("q", q, [B, H, Nq, D]),
        k: float32Input("k", k, [B, H, Nk, D]),
        v: float32Input("v", v, [B, H, Nk, Dv]),
      });
      // CPU-located output: its data is already a fresh copy out of the WASM heap.
      return /** @type {Float32Array} */ (results.out.data);
    },
    async dispose() {
      await session.release();
    },
  };
}

/**
 * PyTorch nn.MultiheadAttention self-attention (batch_first, bias, no mask) as one ONNX graph
 * (see buildMhaModel) in an onnxruntime-web WASM session. The weights, Float32Arrays in PyTorch
 * layout (wq, wk, wv, wo [E, E] as (out, in); bq, bk, bv, bo [E]), are transposed into the
 * model's initializers once, here; run() copies in only x.
 *
 * @param {{ B: number, N: number, E: number, H: number, wq: Float32Array, wk: Float32Array,
 *   wv: Float32Array, wo: Float32Array, bq: Float32Array, bk: Float32Array, bv: Float32Array,
 *   bo: Float32Array }} options
 * @returns {Promise<{ run(x: Float32Array): Promise<Float32Array>, dispose(): Promise<void> }>}
 */
export async function createOrtMha({ B, N, E, H, ...weights }) {
  const session = await createSession(buildMhaModel({ B, N, E, H }, weights));
  return {
    async run(x) {
      const results = await session.run({ x: float32Input("x", x, [B, N, E]) });
      return /** @type {Float32Array} */ (results.out.data);
    },
    async dispose() {
      await session.release();
    },
  };
}

/**
 * One decode step: softmax(q·kᵀ/√D) · v for a single query per head, q [1, H, 1, D], k and v
 * [1, H, Nk, D], output [1, H, 1, D]. As for a real ONNX Runtime Web user, the K/V cache lives in
 * JS and is copied into the WASM heap on every run(). (No mask: with one query, the bottom-right
 * causal mask hides nothing.) Shapes are static, so each cache length Nk needs its own session.
 *
 * @param {{ H: number, Nk: number, D: number }} shape
 * @returns {Promise<{ run(q: Float32Array, k: Float32Array, v: Float32Array):
 *   Promise<Float32Array>, dispose(): Promise<void> }>}
 */
export function createOrtDecode({ H, Nk, D }) {
  return createOrtSdpa({ B: 1, H, Nq: 1, Nk, D, Dv: D });
}

// ---------------------------------------------------------------------------------------------
// Reference implementation (float64, straightforward loops) for correctness checks.

/**
 * softmax(q·kᵀ/√D [+ causal mask]) · v in float64, same layout and mask convention as the ONNX
 * graph. A query row with no visible key (only possible when causal and Nq > Nk) gets the mean
 * of v: that is what the -1e9 additive mask yields in float32 as long as the scaled logits are
 * below 32 in magnitude (float32 spacing near 1e9 is 64, so every logit + mask rounds to -1e9).
 */
export function referenceSdpa(q, k, v, { B, H, Nq, Nk, D, Dv, causal = false }) {
  const out = new Float32Array(B * H * Nq * Dv);
  const scale = 1 / Math.sqrt(D);
  const p = new Float64Array(Nk);
  const acc = new Float64Array(Dv);
  for (let bh = 0; bh < B * H; bh++) {
    const qb = bh * Nq * D;
    const kb = bh * Nk * D;
    const vb = bh * Nk * Dv;
    for (let i = 0; i < Nq; i++) {
      let visible = causal ? Math.min(Nk, i + Nk - Nq + 1) : Nk;
      let max = -Infinity;
      for (let j = 0; j < visible; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[qb + i * D + d] * k[kb + j * D + d];
        p[j] = s * scale;
        if (p[j] > max) max = p[j];
      }
      if (visible <= 0) {
        visible = Nk;
        max = 0;
        p.fill(0);
      }
      let sum = 0;
      for (let j = 0; j < visible; j++) sum += p[j] = Math.exp(p[j] - max);
      acc.fill(0);
      for (let j = 0; j < visible; j++) {
        for (let d = 0; d < Dv; d++) acc[d] += p[j] * v[vb + j * Dv + d];
      }
      for (let d = 0; d < Dv; d++) out[(bh * Nq + i) * Dv + d] = acc[d] / sum;
    }
  }
  return out;
}

/**
 * PyTorch nn.MultiheadAttention self-attention (batch_first, bias, no mask) in float64:
 * x [B, N, E], weights { wq, wk, wv, wo: [E, E] (out, in); bq, bk, bv, bo: [E] }, result
 * [B, N, E] rounded to float32 at the end.
 */
export function referenceMha(x, weights, { B, N, E, H }) {
  checkMhaShape({ B, N, E, H });
  checkMhaWeights(weights, E);
  const hd = E / H;
  const rows = B * N;
  // y[r, o] = Σ_i a[r, i]·W[o, i] + b[o] on row-major [rows, E].
  const linear = (a, w, b) => {
    const y = new Float64Array(rows * E);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < E; o++) {
        let s = b[o];
        for (let i = 0; i < E; i++) s += a[r * E + i] * w[o * E + i];
        y[r * E + o] = s;
      }
    }
    return y;
  };
  const q = linear(x, weights.wq, weights.bq);
  const k = linear(x, weights.wk, weights.bk);
  const v = linear(x, weights.wv, weights.bv);
  // Head h of token n is columns h·hd..(h+1)·hd of row (b, n); the output is concatenated alike.
  const attn = new Float64Array(rows * E);
  const scale = 1 / Math.sqrt(hd);
  const p = new Float64Array(N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const col = h * hd;
      for (let i = 0; i < N; i++) {
        const qi = (b * N + i) * E + col;
        let max = -Infinity;
        for (let j = 0; j < N; j++) {
          const kj = (b * N + j) * E + col;
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[qi + d] * k[kj + d];
          p[j] = s * scale;
          if (p[j] > max) max = p[j];
        }
        let sum = 0;
        for (let j = 0; j < N; j++) sum += p[j] = Math.exp(p[j] - max);
        for (let j = 0; j < N; j++) {
          const vj = (b * N + j) * E + col;
          const w = p[j] / sum;
          for (let d = 0; d < hd; d++) attn[qi + d] += w * v[vj + d];
        }
      }
    }
  }
  return Float32Array.from(linear(attn, weights.wo, weights.bo));
}
