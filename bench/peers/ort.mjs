// Peer for the benchmark: plain scaled dot-product attention as an ONNX graph, run by
// onnxruntime-web on its WASM backend (single thread, no worker proxy) in Node.
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

/** Serialized ModelProto (Uint8Array) for softmax(q·kᵀ/√D [+ causal mask]) · v. */
export function buildSdpaModel({ B, H, Nq, Nk, D, Dv, causal }) {
  const nodes = [
    node("Transpose", ["k"], ["kT"], [attrInts("perm", [0, 1, 3, 2])]),
    node("MatMul", ["q", "kT"], ["scores"]),
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
  nodes.push(node("MatMul", ["probs", "v"], ["out"]));

  const graph = new PbWriter(); // GraphProto
  for (const n of nodes) graph.message(1, n); // node
  graph.string(2, "sdpa"); // name
  for (const t of initializers) graph.message(5, t); // initializer
  graph.message(11, valueInfo("q", [B, H, Nq, D])); // input
  graph.message(11, valueInfo("k", [B, H, Nk, D]));
  graph.message(11, valueInfo("v", [B, H, Nk, Dv]));
  graph.message(12, valueInfo("out", [B, H, Nq, Dv])); // output

  const opset = new PbWriter().string(1, "").varint(2, OPSET); // OperatorSetIdProto
  const model = new PbWriter(); // ModelProto
  model.varint(1, IR_VERSION); // ir_version
  model.string(2, "wasm-attention-bench"); // producer_name
  model.message(7, graph); // graph
  model.message(8, opset); // opset_import
  return model.finish();
}

// ---------------------------------------------------------------------------------------------
// Session wrapper.

/**
 * Build the SDPA model for fixed shapes and load it into an onnxruntime-web WASM session.
 *
 * @param {{ B: number, H: number, Nq: number, Nk: number, D: number, Dv: number,
 *   causal?: boolean }} shape
 * @returns {Promise<{ run(q: Float32Array, k: Float32Array, v: Float32Array):
 *   Promise<Float32Array>, dispose(): Promise<void> }>}
 */
export async function createOrtSdpa({ B, H, Nq, Nk, D, Dv, causal = false }) {
  // Read when the WASM module is first initialized (i.e. on the first session creation), so set
  // them before every create: 1 thread, and run on the calling thread rather than a worker.
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;

  const model = buildSdpaModel({ B, H, Nq, Nk, D, Dv, causal });
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });

  const dims = { q: [B, H, Nq, D], k: [B, H, Nk, D], v: [B, H, Nk, Dv] };
  const sizes = { q: B * H * Nq * D, k: B * H * Nk * D, v: B * H * Nk * Dv };
  const tensor = (name, data) => {
    if (!(data instanceof Float32Array) || data.length !== sizes[name]) {
      throw new TypeError(`${name}: expected a Float32Array of length ${sizes[name]}`);
    }
    return new ort.Tensor("float32", data, dims[name]);
  };

  return {
    async run(q, k, v) {
      const results = await session.run({
        q: tensor("q", q),
        k: tensor("k", k),
        v: tensor("v", v),
      });
      // CPU-located output: its data is already a fresh copy out of the WASM heap.
      return /** @type {Float32Array} */ (results.out.data);
    },
    async dispose() {
      await session.release();
    },
  };
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
