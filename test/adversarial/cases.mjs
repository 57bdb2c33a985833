// Generators of the adversarial suite: for every public op, a "base" builds a random valid call
// (and its reference check); mutators turn a base into a hostile call (bad tensors, bad options,
// bad `out`, buffers detached behind an async call). Special generators cover what no base does:
// MultiHeadAttention's lifecycle and cache, allocTensor, alibiSlopes, sparsePatterns, degenerate
// but valid inputs. Each generator's make(r, api) returns a case for harness.mjs:
//   { op?, kind?, expect: "ok" | "throw" | "either", codes?, repro, call, async?, check?,
//     watch?: typed arrays that must not change, out?, outOwned?, cleanup? }

import {
  product,
  referenceLinear,
  referenceMha,
  referenceSdpa,
  referenceSoftmax,
} from "./reference.mjs";

/** @typedef {() => number} Rng */

/** @param {Rng} r @param {number} lo @param {number} hi */
const int = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
/** @template T @param {Rng} r @param {readonly T[]} a @returns {T} */
const pick = (r, a) => a[Math.floor(r() * a.length)];

/** @param {Rng} r @param {number[]} shape */
function tensor(r, shape, lo = -1, hi = 1) {
  const data = new Float32Array(product(shape));
  for (let i = 0; i < data.length; i++) data[i] = lo + (hi - lo) * r();
  return { data, shape };
}
/** @param {Rng} r @param {number[]} shape @param {number} density */
function boolMask(r, shape, density) {
  const data = new Uint8Array(product(shape));
  for (let i = 0; i < data.length; i++) data[i] = r() < density ? 1 : 0;
  return { data, shape };
}
/** @param {Rng} r @param {number} n */
function vec(r, n) {
  return tensor(r, [n]).data;
}

/** Detaches an ArrayBuffer (transfers it away). @param {ArrayBufferLike} buf */
export function detach(buf) {
  if (typeof (/** @type {any} */ (buf).transfer) === "function") {
    /** @type {any} */ (buf).transfer();
  } else {
    structuredClone(buf, { transfer: [/** @type {ArrayBuffer} */ (buf)] });
  }
}

/** Names of hostile objects a description cannot read (proxies look like what they wrap). */
const LABELS = new WeakMap();

/** A short description of a value for reproducers (reads no getters). @param {unknown} v */
export function desc(v, depth = 0) {
  if (v === null || v === undefined) return String(v);
  if (typeof v === "object" && LABELS.has(v)) return /** @type {string} */ (LABELS.get(v));
  if (typeof v === "number") {
    if (Number.isInteger(v) && v >= 2 ** 16 && Number.isInteger(Math.log2(v))) {
      return `2**${Math.log2(v)}`;
    }
    return Object.is(v, -0) ? "-0" : String(v);
  }
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v !== "object") return String(v);
  if (ArrayBuffer.isView(v)) {
    let len;
    try {
      len = /** @type {any} */ (v).length;
    } catch {
      len = "?";
    }
    return `${v.constructor.name}(${len})`;
  }
  if (depth > 3) return "…";
  const proto = Object.getPrototypeOf(v);
  if (proto && proto !== Object.prototype && proto !== Array.prototype && !Array.isArray(v)) {
    return `Object.create(${proto.constructor?.name ?? "?"}.prototype)`;
  }
  const d = Object.getOwnPropertyDescriptors(v);
  if (Array.isArray(v)) {
    const items = [];
    for (let i = 0; i < v.length && i < 12; i++) {
      items.push(i in d ? ("get" in d[i] ? "get" : desc(d[i].value, depth + 1)) : "<hole>");
    }
    if (v.length > 12) items.push("…");
    const extra = Object.keys(d).filter((k) => k !== "length" && !/^\d+$/.test(k));
    return `[${items.join(",")}]${extra.length ? `+{${extra.join(",")}}` : ""}`;
  }
  const parts = Object.entries(d).map(([k, p]) =>
    "get" in p && p.get ? `get ${k}()` : `${k}: ${desc(p.value, depth + 1)}`,
  );
  return `{${parts.join(", ")}}`;
}

/** The data array of a tensor-ish value, if it is a real typed array. @param {any} t */
function dataOf(t) {
  if (!t || typeof t !== "object") return undefined;
  const d = Object.getOwnPropertyDescriptor(t, "data");
  return d && ArrayBuffer.isView(d.value) ? d.value : undefined;
}

/** @param {any} got @param {readonly number[]} shape @param {ArrayLike<number>} want @param {object} [tol] */
function tensorProblem(got, shape, want, tol) {
  if (!got) return "missing tensor";
  const s = Array.isArray(got.shape) ? got.shape : [];
  if (s.length !== shape.length || s.some((d, i) => d !== shape[i])) {
    return `shape [${s.join(",")}], want [${shape.join(",")}]`;
  }
  return closeTo(got.data, want, tol);
}

/** @param {ArrayLike<number>} got @param {ArrayLike<number>} want @param {any} [tol] */
function closeTo(got, want, tol = {}) {
  const atol = tol.atol ?? 2e-5;
  const rtol = tol.rtol ?? 2e-4;
  if (!got || typeof got.length !== "number") return "no data";
  if (got.length !== want.length) return `length ${got.length}, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (g === w || (Number.isNaN(g) && Number.isNaN(w))) continue;
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) {
      return `element ${i}: got ${g}, want ${w} (of ${want.length})`;
    }
  }
  return undefined;
}

/** Output rows of a family op are finite and weights rows sum to 1 (or 0). @param {any} res */
function familyProblem(res, outShape, weightsShape) {
  const p = tensorShape(res?.output, outShape) ?? finite(res.output.data);
  if (p) return p;
  if (weightsShape && res.weights) {
    const w = res.weights;
    const wp = tensorShape(w, weightsShape) ?? finite(w.data);
    if (wp) return `weights: ${wp}`;
    const n = weightsShape[weightsShape.length - 1];
    for (let row = 0; row * n < w.data.length; row++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += w.data[row * n + j];
      if (n > 0 && Math.abs(s - 1) > 1e-4 && s !== 0) return `weights row ${row} sums to ${s}`;
    }
  }
  return undefined;
}
/** @param {any} t @param {readonly number[]} shape */
function tensorShape(t, shape) {
  if (!t || !Array.isArray(t.shape)) return "missing tensor";
  if (
    t.shape.length !== shape.length ||
    t.shape.some((/** @type {number} */ d, /** @type {number} */ i) => d !== shape[i])
  ) {
    return `shape [${t.shape.join(",")}], want [${shape.join(",")}]`;
  }
  if (!t.data || t.data.length !== product(shape)) return `data length ${t.data?.length}`;
  return undefined;
}
/** @param {ArrayLike<number>} a */
function finite(a) {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return `element ${i} is ${a[i]}`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Bases: one random valid call per op.
// A base: { op, asyncOp?, args, call(api, args), callAsync?(api, args), check(res) (against
// references computed before the call), tensors: [{ name, get(args), set(args, t), ranks? }],
// optIndex?, badOptions?: { key: values[] }, overflow?: { key: values[] }, out?: { len, set(args, o) },
// detachable?: (args) => typed arrays to detach after an async call, watch(args), cleanup? }

/** @param {string} name @param {number} i @param {[number, number]} [ranks] */
const argSlot = (name, i, ranks) => ({
  name,
  ranks,
  get: (/** @type {any[]} */ a) => a[i],
  set: (/** @type {any[]} */ a, /** @type {any} */ t) => (a[i] = t),
});
/** @param {string} name @param {number} i @param {string} key */
const optSlot = (name, i, key) => ({
  name,
  get: (/** @type {any[]} */ a) => a[i]?.[key],
  set: (/** @type {any[]} */ a, /** @type {any} */ t) => (a[i] = { ...a[i], [key]: t }),
});

/** Random SDPA sizes. @param {Rng} r */
function sdpaDims(r, medium = false) {
  const rank = pick(r, [2, 3, 4, 4]);
  const B = rank === 4 ? int(r, 1, 2) : 1;
  const H = rank === 2 ? 1 : pick(r, [1, 2, 4]);
  const Hkv = rank === 4 ? pick(r, [1, H / 2 >= 1 ? H / 2 : 1, H]) : H;
  if (medium) return { rank: 4, B: 1, H: 4, Hkv: 2, Nq: 96, Nk: 80, D: 48, Dv: 40 };
  return {
    rank,
    B,
    H,
    Hkv,
    Nq: int(r, 1, 9),
    Nk: int(r, 1, 9),
    D: int(r, 1, 13),
    Dv: int(r, 1, 11),
  };
}
/** @param {number} rank @param {number} B @param {number} H @param {number} N @param {number} D */
const shapeOf = (rank, B, H, N, D) => (rank === 4 ? [B, H, N, D] : rank === 3 ? [H, N, D] : [N, D]);

const SDPA_BAD = {
  returnWeights: ["yes", 1],
  returnLse: ["no"],
  causal: ["no", 1],
  align: ["diagonal", 5],
  window: [[1], "x", [Number.NaN, 1], 3],
  scale: [Number.NaN, "2", -Infinity],
  softcap: [-1, Number.NaN, "1"],
  globalTokens: [5, [1.5], [-1], [1e9], "0"],
  alibiSlopes: [new Float32Array(99), [1, 2], 5],
  dropout: [{ p: 1.5, seed: 1 }, 0.5, { p: Number.NaN, seed: 1 }, { p: 0.1, seed: "x" }],
  mask: [5, "m", { data: new Float64Array(1), shape: [1] }],
};
const SDPA_OVERFLOW = { scale: [1e39, -1e39], softcap: [1e39, 1e-46] };

/** @param {Rng} r */
function sdpaBase(r, { medium = false, dvLeD = false } = {}) {
  const d = sdpaDims(r, medium);
  if (dvLeD) d.Dv = Math.max(1, Math.min(d.Dv, d.D));
  const q = tensor(r, shapeOf(d.rank, d.B, d.H, d.Nq, d.D));
  const k = tensor(r, shapeOf(d.rank, d.B, d.Hkv, d.Nk, d.D));
  const v = tensor(r, shapeOf(d.rank, d.B, d.Hkv, d.Nk, d.Dv));
  /** @type {any} */
  const options = {};
  if (r() < 0.3) options.causal = true;
  if (r() < 0.3) options.scale = 0.1 + r();
  if (r() < 0.4) {
    const form = pick(r, [[d.Nk], [d.Nq, d.Nk], [d.B, 1, 1, d.Nk], [d.B, d.H, d.Nq, d.Nk]]);
    const s = d.rank === 4 ? form : form.length <= d.rank ? form : [d.Nk];
    options.mask = r() < 0.6 ? boolMask(r, s, pick(r, [0.2, 0.7, 1])) : tensor(r, s, -2, 2);
  }
  if (r() < 0.4) options.returnWeights = true;
  if (r() < 0.4) options.returnLse = true;
  const ref = referenceSdpa(q, k, v, options);
  const outShape = ref.output.shape;
  const len = product(outShape);
  const base = {
    op: "scaledDotProductAttention",
    asyncOp: "scaledDotProductAttentionAsync",
    args: [q, k, v, options],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) =>
      api.scaledDotProductAttention(a[0], a[1], a[2], a[3]),
    callAsync: (/** @type {any} */ api, /** @type {any[]} */ a) =>
      api.scaledDotProductAttentionAsync(a[0], a[1], a[2], a[3]),
    /** @param {any} res */
    check(res) {
      const o = base.args[3];
      let p = tensorProblem(res?.output, outShape, ref.output.data);
      if (p) return `output: ${p}`;
      if (o && o.out && ArrayBuffer.isView(o.out) && res.output.data !== o.out) {
        p = closeTo(o.out, ref.output.data);
        if (p) return `out: ${p}`;
      }
      if (o?.returnWeights) {
        p = tensorProblem(res.weights, ref.weights.shape, ref.weights.data);
        if (p) return `weights: ${p}`;
      }
      if (o?.returnLse) {
        p = tensorProblem(res.lse, ref.lse.shape, ref.lse.data, { atol: 1e-4, rtol: 1e-5 });
        if (p) return `lse: ${p}`;
      }
      return undefined;
    },
    tensors: [
      argSlot("q", 0, [2, 4]),
      argSlot("k", 1, [2, 4]),
      argSlot("v", 2, [2, 4]),
      ...(options.mask ? [optSlot("mask", 3, "mask")] : []),
    ],
    optIndex: 3,
    badOptions: SDPA_BAD,
    overflow: SDPA_OVERFLOW,
    out: {
      len,
      set: (/** @type {any[]} */ a, /** @type {any} */ o) => (a[3] = { ...a[3], out: o }),
    },
    detachable: (/** @type {any[]} */ a) => [
      ["v.data", a[2].data],
      ["k.data", a[1].data],
      ...(a[3].mask ? [["mask.data", a[3].mask.data]] : []),
      ...(a[3].out ? [["out", a[3].out]] : []),
    ],
    emptyHuge: () => ({
      args: [
        { data: new Float32Array(0), shape: [0, 1, 1, 2 ** 22] },
        { data: new Float32Array(0), shape: [0, 1, 2 ** 31 - 1, 2 ** 22] },
        { data: new Float32Array(0), shape: [0, 1, 2 ** 31 - 1, 4] },
        { returnWeights: true },
      ],
      shape: [0, 1, 1, 4],
    }),
    hugeD: () => {
      const D = 2 ** 22;
      const hq = tensor(r, [1, 1, 1, D]);
      const hk = tensor(r, [1, 1, 1, D]);
      const hv = tensor(r, [1, 1, 1, 4]);
      return {
        args: [hq, hk, hv, {}],
        check: (/** @type {any} */ res) => tensorProblem(res?.output, [1, 1, 1, 4], hv.data),
      };
    },
  };
  return base;
}

/** @param {Rng} r */
function backwardBase(r) {
  const d = sdpaDims(r);
  const q = tensor(r, shapeOf(d.rank, d.B, d.H, d.Nq, d.D));
  const k = tensor(r, shapeOf(d.rank, d.B, d.Hkv, d.Nk, d.D));
  const v = tensor(r, shapeOf(d.rank, d.B, d.Hkv, d.Nk, d.Dv));
  const causal = r() < 0.3;
  const ref = referenceSdpa(q, k, v, { causal });
  const output = { data: Float32Array.from(ref.output.data), shape: ref.output.shape };
  const g = tensor(r, ref.output.shape);
  /** @type {any} */
  const options = causal ? { causal } : {};
  options.lse = { data: Float32Array.from(ref.lse.data), shape: ref.lse.shape }; // required
  // dv[b, hk, j] = Σ over the group's heads h and rows i of P[b,h,i,j] · g[b,h,i]
  const dv = new Float64Array(v.data.length);
  const group = d.H / d.Hkv;
  for (let b = 0; b < d.B; b++)
    for (let h = 0; h < d.H; h++)
      for (let i = 0; i < d.Nq; i++)
        for (let j = 0; j < d.Nk; j++) {
          const p = ref.weights.data[((b * d.H + h) * d.Nq + i) * d.Nk + j];
          const hk = Math.floor(h / group);
          for (let e = 0; e < d.Dv; e++) {
            dv[((b * d.Hkv + hk) * d.Nk + j) * d.Dv + e] +=
              p * g.data[((b * d.H + h) * d.Nq + i) * d.Dv + e];
          }
        }
  return {
    op: "scaledDotProductAttentionBackward",
    asyncOp: "scaledDotProductAttentionBackwardAsync",
    args: [q, k, v, output, g, options],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) =>
      api.scaledDotProductAttentionBackward(a[0], a[1], a[2], a[3], a[4], a[5]),
    callAsync: (/** @type {any} */ api, /** @type {any[]} */ a) =>
      api.scaledDotProductAttentionBackwardAsync(a[0], a[1], a[2], a[3], a[4], a[5]),
    /** @param {any} res */
    check(res) {
      const p =
        tensorShape(res?.dq, q.shape) ??
        finite(res.dq.data) ??
        tensorShape(res.dk, k.shape) ??
        finite(res.dk.data) ??
        tensorProblem(res.dv, v.shape, dv, { atol: 1e-4, rtol: 1e-3 });
      return p;
    },
    tensors: [
      argSlot("q", 0, [2, 4]),
      argSlot("k", 1, [2, 4]),
      argSlot("v", 2, [2, 4]),
      argSlot("output", 3, [2, 4]),
      argSlot("gradOutput", 4, [2, 4]),
    ],
    optIndex: 5,
    badOptions: {
      causal: ["no"],
      lse: [5, { data: new Float32Array(1), shape: [1, 1, 1, 1, 1] }],
      out: [new Float32Array(4)],
      scale: [Number.NaN],
    },
    overflow: SDPA_OVERFLOW,
    detachable: (/** @type {any[]} */ a) => [
      ["v.data", a[2].data],
      ["gradOutput.data", a[4].data],
    ],
  };
}

/** @param {Rng} r */
function linearBase(r, medium = false) {
  const inF = medium ? 64 : int(r, 1, 20);
  const outF = medium ? 96 : int(r, 1, 20);
  const lead = medium ? [256] : pick(r, [[], [int(r, 1, 5)], [int(r, 1, 3), int(r, 1, 4)]]);
  const x = tensor(r, [...lead, inF]);
  const wt = tensor(r, [outF, inF]);
  const w = r() < 0.5 ? wt.data : wt;
  const b = r() < 0.5 ? vec(r, outF) : undefined;
  const ref = referenceLinear(x, wt.data, outF, b);
  return {
    op: "linear",
    asyncOp: "linearAsync",
    args: b ? [x, w, b] : [x, w],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => api.linear(...a),
    callAsync: (/** @type {any} */ api, /** @type {any[]} */ a) => api.linearAsync(...a),
    check: (/** @type {any} */ res) => tensorProblem(res, ref.shape, ref.data, { atol: 1e-4 }),
    tensors: [argSlot("x", 0), ...(w === wt ? [argSlot("w", 1, [2, 2])] : [])],
    detachable: (/** @type {any[]} */ a) => [
      ["x.data", a[0].data],
      ["w", ArrayBuffer.isView(a[1]) ? a[1] : a[1].data],
    ],
    emptyHuge: () => ({
      args: [
        { data: new Float32Array(0), shape: [2 ** 31 - 1, 0] },
        { data: new Float32Array(0), shape: [3, 0] },
      ],
      shape: undefined, // [2**31-1, 0] → [2**31-1, out]: cannot exist, so it must throw
      throws: true,
    }),
    hugeD: () => {
      const D = 2 ** 22;
      const hx = tensor(r, [1, D]);
      const hw = tensor(r, [1, D]);
      const want = referenceLinear(hx, hw.data, 1);
      return {
        args: [hx, hw.data],
        check: (/** @type {any} */ res) =>
          tensorProblem(res, [1, 1], want.data, { atol: 1e-2, rtol: 1e-3 }),
      };
    },
  };
}

/** @param {Rng} r */
function linearBackwardBase(r) {
  const inF = int(r, 1, 12);
  const outF = int(r, 1, 12);
  const rows = int(r, 1, 6);
  const x = tensor(r, [rows, inF]);
  const w = tensor(r, [outF, inF]);
  const g = tensor(r, [rows, outF]);
  const dx = new Float64Array(rows * inF);
  const dw = new Float64Array(outF * inF);
  const db = new Float64Array(outF);
  for (let i = 0; i < rows; i++)
    for (let o = 0; o < outF; o++) {
      const go = g.data[i * outF + o];
      db[o] += go;
      for (let f = 0; f < inF; f++) {
        dx[i * inF + f] += go * w.data[o * inF + f];
        dw[o * inF + f] += go * x.data[i * inF + f];
      }
    }
  return {
    op: "linearBackward",
    args: [x, r() < 0.5 ? w.data : w, g],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => api.linearBackward(a[0], a[1], a[2]),
    /** @param {any} res */
    check: (res) =>
      tensorProblem(res?.dx, x.shape, dx, { atol: 1e-4 }) ??
      tensorProblem(res.dw, w.shape, dw, { atol: 1e-4 }) ??
      tensorProblem(res.db, [outF], db, { atol: 1e-4 }),
    tensors: [argSlot("x", 0), argSlot("gradOutput", 2)],
  };
}

/** @param {Rng} r */
function softmaxBase(r) {
  const rank = int(r, 1, 4);
  const shape = Array.from({ length: rank }, () => int(r, 1, 6));
  const x = tensor(r, shape, -4, 4);
  for (let i = 0; i < x.data.length; i++) if (r() < 0.1) x.data[i] = -Infinity;
  /** @type {any} */
  const options = {};
  if (r() < 0.5) options.axis = int(r, -rank, rank - 1);
  const ref = referenceSoftmax(x, options.axis ?? -1);
  const base = {
    op: "softmax",
    args: [x, options],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => api.softmax(a[0], a[1]),
    /** @param {any} res */
    check(res) {
      const p = tensorProblem(res, shape, ref.data);
      if (p) return p;
      const out = base.args[1]?.out;
      if (ArrayBuffer.isView(out)) return closeTo(/** @type {any} */ (out), ref.data);
      return undefined;
    },
    tensors: [argSlot("x", 0)],
    optIndex: 1,
    badOptions: { axis: [1.5, 99, "0", Number.NaN, -99] },
    out: {
      len: x.data.length,
      set: (/** @type {any[]} */ a, /** @type {any} */ o) => (a[1] = { ...a[1], out: o }),
    },
    aliasInput: (/** @type {any[]} */ a) => a[0].data,
    emptyHuge: () => ({
      args: [{ data: new Float32Array(0), shape: [0, 2 ** 31 - 1] }],
      shape: [0, 2 ** 31 - 1],
    }),
    hugeD: () => {
      const hx = tensor(r, [1, 2 ** 22]);
      const want = referenceSoftmax(hx);
      return {
        args: [hx],
        check: (/** @type {any} */ res) =>
          tensorProblem(res, hx.shape, want.data, { atol: 1e-9, rtol: 1e-3 }),
      };
    },
  };
  return base;
}

/** @param {Rng} r */
function ropeBase(r) {
  const rank = int(r, 2, 4);
  const D = 2 * int(r, 1, 6);
  const N = int(r, 1, 7);
  const shape =
    rank === 4 ? [int(r, 1, 2), int(r, 1, 3), N, D] : rank === 3 ? [int(r, 1, 3), N, D] : [N, D];
  const x = tensor(r, shape);
  /** @type {any} */
  const options = {};
  if (r() < 0.5) options.style = pick(r, ["neox", "gptj"]);
  if (r() < 0.3) options.positionOffset = int(r, 0, 1000);
  else if (r() < 0.3) options.positions = Array.from({ length: N }, () => int(r, 0, 50));
  if (r() < 0.3) options.base = 500 + r() * 1e5;
  const gptj = options.style === "gptj";
  return {
    op: "applyRope",
    args: [x, options],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => api.applyRope(a[0], a[1]),
    /** A rotation keeps the norm of every pair. @param {any} res */
    check(res) {
      const p = tensorShape(res, shape) ?? finite(res.data);
      if (p) return p;
      const rows = x.data.length / D;
      for (let row = 0; row < rows; row++)
        for (let t = 0; t < D / 2; t++) {
          const [a, b] = gptj ? [2 * t, 2 * t + 1] : [t, t + D / 2];
          const o = row * D;
          const n0 = x.data[o + a] ** 2 + x.data[o + b] ** 2;
          const n1 = res.data[o + a] ** 2 + res.data[o + b] ** 2;
          if (Math.abs(n0 - n1) > 1e-4)
            return `pair (${a},${b}) of row ${row}: norm² ${n1}, want ${n0}`;
        }
      return undefined;
    },
    tensors: [argSlot("x", 0, [2, 4])],
    optIndex: 1,
    badOptions: {
      base: [0, -1, Number.NaN, "x"],
      style: ["rot", 5],
      positions: [5, [1.5], "x"],
      positionOffset: [1.5, Number.NaN, "3"],
    },
    overflow: { base: [1e39] },
  };
}

/** Family sizes. @param {Rng} r */
function famDims(r) {
  return {
    B: int(r, 1, 2),
    Nq: int(r, 1, 7),
    Nk: int(r, 1, 7),
    Dq: int(r, 1, 9),
    Dk: int(r, 1, 9),
    Dv: int(r, 1, 8),
    A: int(r, 1, 9),
  };
}

/**
 * A 3-D family op base. kind: additive | bilinear | cosine | hybrid.
 * @param {Rng} r @param {"additive" | "bilinear" | "cosine" | "hybrid"} kind
 */
function familyBase(r, kind) {
  const d = famDims(r);
  if (kind === "cosine" || kind === "hybrid") d.Dq = d.Dk;
  const q = tensor(r, [d.B, d.Nq, d.Dq]);
  const k = tensor(r, [d.B, d.Nk, d.Dk]);
  const v = tensor(r, [d.B, d.Nk, d.Dv]);
  /** @type {any} */
  const options = {};
  if (r() < 0.4)
    options.mask = boolMask(r, pick(r, [[d.B, d.Nq, d.Nk], [d.Nk], [d.B, 1, d.Nk]]), 0.7);
  if (r() < 0.5) options.returnWeights = true;
  /** @type {any[]} */
  let args;
  /** @type {ArrayLike<number> | undefined} */
  let want;
  const name = `${kind}Attention`;
  if (kind === "additive") {
    const params = { wq: vec(r, d.A * d.Dq), wk: vec(r, d.A * d.Dk), va: vec(r, d.A) };
    args = [q, k, v, params, options];
  } else if (kind === "bilinear") {
    const w = vec(r, d.Dq * d.Dk);
    args = [q, k, v, { w }, options];
    // q·W then attention at scale 1
    const qw = new Float64Array(d.B * d.Nq * d.Dk);
    for (let i = 0; i < d.B * d.Nq; i++)
      for (let c = 0; c < d.Dk; c++)
        for (let e = 0; e < d.Dq; e++) qw[i * d.Dk + c] += q.data[i * d.Dq + e] * w[e * d.Dk + c];
    want = referenceSdpa({ data: qw, shape: [d.B, d.Nq, d.Dk] }, k, v, {
      mask: options.mask,
      scale: 1,
    }).output.data;
  } else if (kind === "cosine") {
    if (r() < 0.5) options.temperature = 0.05 + r();
    args = [q, k, v, options];
    /** @param {{ data: Float32Array }} t @param {number} D */
    const norm = (t, D) => {
      const o = new Float64Array(t.data.length);
      for (let i = 0; i < t.data.length; i += D) {
        let s = 0;
        for (let e = 0; e < D; e++) s += t.data[i + e] ** 2;
        const n = Math.max(Math.sqrt(s), 1e-8);
        for (let e = 0; e < D; e++) o[i + e] = t.data[i + e] / n;
      }
      return o;
    };
    want = referenceSdpa(
      { data: norm(q, d.Dq), shape: q.shape },
      { data: norm(k, d.Dk), shape: k.shape },
      v,
      { mask: options.mask, scale: 1 / (options.temperature ?? 1) },
    ).output.data;
  } else {
    const terms = [{ kind: "scaled-dot", weight: 0.5 + r() }];
    if (r() < 0.5) terms.push(/** @type {any} */ ({ kind: "cosine", weight: r() }));
    args = [q, k, v, { terms }, options];
  }
  const optIndex = kind === "cosine" ? 3 : 4;
  return {
    op: name,
    asyncOp: `${name}Async`,
    args,
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => api[name](...a),
    callAsync: (/** @type {any} */ api, /** @type {any[]} */ a) => api[`${name}Async`](...a),
    /** @param {any} res */
    check(res) {
      const p = familyProblem(
        res,
        [d.B, d.Nq, d.Dv],
        options.returnWeights ? [d.B, d.Nq, d.Nk] : undefined,
      );
      if (p || !want) return p;
      return closeTo(res.output.data, want, { atol: 1e-4, rtol: 1e-3 });
    },
    tensors: [
      argSlot("q", 0, [2, 3]),
      argSlot("k", 1, [2, 3]),
      argSlot("v", 2, [2, 3]),
      ...(options.mask ? [optSlot("mask", optIndex, "mask")] : []),
    ],
    optIndex,
    badOptions: {
      returnWeights: ["yes"],
      mask: [5],
      ...(kind === "cosine" ? { temperature: [0, -1, Number.NaN, "1"] } : {}),
    },
    overflow:
      kind === "cosine"
        ? { temperature: [1e-40, 1e39] }
        : kind === "hybrid"
          ? { __params: [{ terms: [{ kind: "scaled-dot", weight: 1e39 }] }] }
          : {},
    paramIndex: kind === "cosine" ? undefined : 3,
    badParams:
      kind === "additive"
        ? [
            { wq: vec(r, 3), wk: args[3].wk, va: args[3].va },
            { wq: args[3].wq, wk: args[3].wk },
            { wq: "x", wk: 1, va: null },
          ]
        : kind === "bilinear"
          ? [{ w: vec(r, d.Dq * d.Dk + 1) }, {}, { w: null }]
          : kind === "hybrid"
            ? [
                { terms: [] },
                { terms: [{ kind: "nope", weight: 1 }] },
                { terms: 5 },
                { terms: [{ kind: "scaled-dot", weight: "1" }] },
                { terms: [{ kind: "cosine", weight: 1, temperature: 1e-40 }] },
              ]
            : [],
    detachable: (/** @type {any[]} */ a) => [
      ["v.data", a[2].data],
      ...(options.mask ? [["mask.data", options.mask.data]] : []),
    ],
    emptyHuge: () => ({
      args: [
        { data: new Float32Array(0), shape: [0, 2 ** 31 - 1, d.Dq] },
        { data: new Float32Array(0), shape: [0, 2 ** 31 - 1, d.Dk] },
        { data: new Float32Array(0), shape: [0, 2 ** 31 - 1, d.Dv] },
        ...args.slice(3),
      ],
      shape: [0, 2 ** 31 - 1, d.Dv],
    }),
  };
}

/** hard and block-sparse attention (SDPA layout). @param {Rng} r @param {"hard" | "blockSparse"} kind */
function sdpaFamilyBase(r, kind) {
  const B = int(r, 1, 2);
  const H = pick(r, [1, 2]);
  const bs = pick(r, [1, 2, 4]);
  const nbq = int(r, 1, 3);
  const nbk = int(r, nbq, 4);
  const [Nq, Nk] = kind === "blockSparse" ? [nbq * bs, nbk * bs] : [int(r, 1, 8), int(r, 1, 8)];
  const D = int(r, 1, 9);
  const Dv = int(r, 1, 7);
  const q = tensor(r, [B, H, Nq, D]);
  const k = tensor(r, [B, H, Nk, D]);
  const v = tensor(r, [B, H, Nk, Dv]);
  /** @type {any} */
  const options = {};
  /** @type {ArrayLike<number> | undefined} */
  let want;
  const full = r() < 0.5;
  if (kind === "hard") {
    options.topK = full ? Nk + int(r, 0, 2) : int(r, 1, Nk);
    if (full) want = referenceSdpa(q, k, v).output.data;
  } else {
    const layout = full
      ? { data: new Uint8Array(nbq * nbk).fill(1), shape: [nbq, nbk] }
      : boolMask(r, [nbq, nbk], 0.6);
    options.layout = layout;
    options.blockSize = bs;
    if (r() < 0.3) options.causal = true;
    if (full) want = referenceSdpa(q, k, v, { causal: options.causal }).output.data;
  }
  if (r() < 0.5) options.returnWeights = true;
  const name = `${kind}Attention`;
  return {
    op: name,
    asyncOp: `${name}Async`,
    args: [q, k, v, options],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => api[name](...a),
    callAsync: (/** @type {any} */ api, /** @type {any[]} */ a) => api[`${name}Async`](...a),
    /** @param {any} res */
    check(res) {
      const p = familyProblem(
        res,
        [B, H, Nq, Dv],
        options.returnWeights ? [B, H, Nq, Nk] : undefined,
      );
      if (p || !want) return p;
      return closeTo(res.output.data, want, { atol: 1e-4, rtol: 1e-3 });
    },
    tensors: [
      argSlot("q", 0, [2, 4]),
      argSlot("k", 1, [2, 4]),
      argSlot("v", 2, [2, 4]),
      ...(kind === "blockSparse" ? [optSlot("layout", 3, "layout")] : []),
    ],
    optIndex: 3,
    badOptions:
      kind === "hard"
        ? {
            topK: [0, -1, 1.5, Number.NaN, "2", 2 ** 53],
            scale: [Number.NaN],
            returnWeights: ["yes"],
          }
        : { blockSize: [0, -1, 1.5, 3 * bs + 1, "2"], causal: ["no"], layout: [5, null] },
    overflow: { scale: [1e39] },
    detachable: (/** @type {any[]} */ a) => [
      ["v.data", a[2].data],
      ...(kind === "blockSparse" ? [["layout.data", options.layout.data]] : []),
    ],
  };
}

/** @param {Rng} r */
function poolingBase(r) {
  const B = int(r, 1, 3);
  const N = int(r, 1, 8);
  const D = int(r, 1, 9);
  const A = int(r, 1, 7);
  const h = tensor(r, [B, N, D]);
  const params = { w: vec(r, A * D), b: vec(r, A), context: vec(r, A) };
  /** @type {any} */
  const options = {};
  if (r() < 0.5) options.mask = boolMask(r, [B, N], 0.6);
  return {
    op: "attentionPooling",
    asyncOp: "attentionPoolingAsync",
    args: [h, params, options],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => api.attentionPooling(...a),
    callAsync: (/** @type {any} */ api, /** @type {any[]} */ a) => api.attentionPoolingAsync(...a),
    check: (/** @type {any} */ res) => familyProblem(res, [B, D], [B, N]),
    tensors: [argSlot("h", 0, [2, 3]), ...(options.mask ? [optSlot("mask", 2, "mask")] : [])],
    optIndex: 2,
    badOptions: { mask: [5, "x"] },
    paramIndex: 1,
    badParams: [
      { w: vec(r, A * D + 1), b: params.b, context: params.context },
      { w: params.w },
      null,
    ],
    detachable: (/** @type {any[]} */ a) => [["h.data", a[0].data]],
  };
}

/** @param {Rng} r */
function entropyBase(r) {
  const shape = [...Array.from({ length: int(r, 0, 2) }, () => int(r, 1, 3)), int(r, 1, 7)];
  const w = tensor(r, shape, 0, 1);
  const n = shape[shape.length - 1];
  const want = new Float64Array(w.data.length / n);
  for (let i = 0; i < want.length; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += w.data[i * n + j];
    for (let j = 0; j < n; j++) {
      w.data[i * n + j] /= s;
      const p = w.data[i * n + j];
      if (p > 0) want[i] -= p * Math.log(p);
    }
  }
  return {
    op: "attentionEntropy",
    args: [w],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => api.attentionEntropy(a[0]),
    check: (/** @type {any} */ res) => tensorProblem(res, shape.slice(0, -1), want, { atol: 1e-4 }),
    tensors: [argSlot("weights", 0)],
    emptyHuge: () => ({
      args: [{ data: new Float32Array(0), shape: [2 ** 31 - 1, 0] }],
      shape: [2 ** 31 - 1],
    }),
  };
}

/** @param {Rng} r */
function rolloutBase(r) {
  const B = int(r, 1, 2);
  const H = int(r, 1, 3);
  const N = int(r, 1, 6);
  const layers = Array.from({ length: int(r, 1, 3) }, () => {
    const t = tensor(r, [B, H, N, N], 0, 1);
    for (let i = 0; i < t.data.length; i += N) {
      let s = 0;
      for (let j = 0; j < N; j++) s += t.data[i + j];
      for (let j = 0; j < N; j++) t.data[i + j] /= s;
    }
    return t;
  });
  /** @type {any} */
  const options = {};
  if (r() < 0.5) options.headFusion = pick(r, ["mean", "max", "min"]);
  if (r() < 0.3) options.residual = r() < 0.5;
  return {
    op: "attentionRollout",
    args: [layers, options],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => api.attentionRollout(a[0], a[1]),
    check: (/** @type {any} */ res) =>
      familyProblem({ output: res, weights: res }, [B, N, N], [B, N, N]),
    tensors: [
      {
        name: "layers[0]",
        ranks: /** @type {[number, number]} */ ([4, 4]),
        get: (/** @type {any[]} */ a) => a[0][0],
        set: (/** @type {any[]} */ a, /** @type {any} */ t) => (a[0] = [t, ...a[0].slice(1)]),
      },
    ],
    optIndex: 1,
    badOptions: { headFusion: ["median", 5], residual: ["false", 1] },
  };
}

/** @param {Rng} r */
function heatmapBase(r) {
  const Nq = int(r, 1, 6);
  const Nk = int(r, 1, 6);
  const w = tensor(r, r() < 0.3 ? [1, Nq, Nk] : [Nq, Nk], 0, 1);
  /** @type {any} */
  const options = {};
  if (r() < 0.5) options.title = pick(r, ["head 1", "<script>alert(1)</script>", "a & b"]);
  if (r() < 0.5)
    options.rowLabels = Array.from({ length: Nq }, (_, i) => (i === 0 ? "<b>" : `r${i}`));
  if (r() < 0.3) options.colLabels = Array.from({ length: Nk }, (_, i) => `"c${i}'`);
  /** @type {any} */
  let api0;
  return {
    op: "renderHeatmapSvg",
    args: [w, options],
    call: (/** @type {any} */ api, /** @type {any[]} */ a) => (
      (api0 = api),
      api.renderHeatmapSvg(a[0], a[1])
    ),
    /** @param {any} svg */
    check(svg) {
      if (typeof svg !== "string" || !svg.startsWith("<svg"))
        return `not an SVG: ${String(svg).slice(0, 40)}`;
      if (svg.includes("<script") || svg.includes("<b>"))
        return "a label or title reached the SVG unescaped";
      if (api0.renderHeatmapSvg(w, options) !== svg) return "the same input gave different bytes";
      return undefined;
    },
    tensors: [argSlot("weights", 0, [2, 99])], // rank 3+ with leading 1s is valid
    optIndex: 1,
    badOptions: {
      title: [5, {}],
      rowLabels: ["abc", [1, 2], Array(Nq + 1).fill("x")],
      colLabels: [5],
    },
    emptyHuge: () => ({ args: [{ data: new Float32Array(0), shape: [2 ** 17, 0] }], throws: true }),
  };
}

/** A small MultiHeadAttention and a forward call (no rope, so the reference applies). @param {Rng} r @param {any} api */
function mhaBase(r, api) {
  const H = pick(r, [1, 2, 4]);
  const Hkv = pick(r, [1, H]);
  const hd = int(r, 1, 4);
  const E = H * hd;
  const cross = r() < 0.4;
  const kdim = cross ? int(r, 1, 7) : E;
  const vdim = cross ? int(r, 1, 7) : E;
  const cfg = {
    embedDim: E,
    numHeads: H,
    numKvHeads: Hkv,
    kdim,
    vdim,
    bias: r() < 0.5,
    seed: int(r, 0, 99),
  };
  const mha = new api.MultiHeadAttention(cfg);
  const B = int(r, 1, 2);
  const Nq = int(r, 1, 6);
  const Nk = cross ? int(r, 1, 6) : Nq;
  const query = tensor(r, [B, Nq, E]);
  const key = cross ? tensor(r, [B, Nk, kdim]) : undefined;
  const value = cross ? tensor(r, [B, Nk, vdim]) : undefined;
  /** @type {any} */
  const options = {};
  if (r() < 0.4) options.causal = true;
  if (r() < 0.3) options.needWeights = true;
  const weights = mha.getWeights();
  const want = referenceMha(cfg, weights, query, key ?? query, value ?? query, options);
  return {
    op: "MultiHeadAttention.forward",
    asyncOp: "MultiHeadAttention.forwardAsync",
    args: [query, key, value, options],
    call: (/** @type {any} */ _api, /** @type {any[]} */ a) => mha.forward(a[0], a[1], a[2], a[3]),
    callAsync: (/** @type {any} */ _api, /** @type {any[]} */ a) =>
      mha.forwardAsync(a[0], a[1], a[2], a[3]),
    check: (/** @type {any} */ res) =>
      tensorProblem(res?.output, [B, Nq, E], want.data, { atol: 1e-4, rtol: 1e-3 }) ??
      (options.needWeights
        ? familyProblem({ output: res.weights, weights: res.weights }, [B, Nq, Nk], [B, Nq, Nk])
        : undefined),
    tensors: [
      argSlot("query", 0, [2, 3]),
      ...(cross ? [argSlot("key", 1, [2, 3]), argSlot("value", 2, [2, 3])] : []),
    ],
    optIndex: 3,
    badOptions: {
      causal: ["no"],
      needWeights: ["yes"],
      averageWeights: ["no"],
      keyMask: [5, { data: new Uint8Array(1), shape: [7, 7, 7] }],
      window: [[1]],
      cache: [{}, 5],
      keepForBackward: ["yes"],
    },
    detachable: (/** @type {any[]} */ a) => [["query.data", a[0].data]],
    cleanup: () => mha.dispose(),
  };
}

const BASES = {
  scaledDotProductAttention: (/** @type {Rng} */ r) => sdpaBase(r),
  scaledDotProductAttentionBackward: backwardBase,
  linear: (/** @type {Rng} */ r) => linearBase(r),
  linearBackward: linearBackwardBase,
  softmax: softmaxBase,
  applyRope: ropeBase,
  additiveAttention: (/** @type {Rng} */ r) => familyBase(r, "additive"),
  bilinearAttention: (/** @type {Rng} */ r) => familyBase(r, "bilinear"),
  cosineAttention: (/** @type {Rng} */ r) => familyBase(r, "cosine"),
  hybridAttention: (/** @type {Rng} */ r) => familyBase(r, "hybrid"),
  hardAttention: (/** @type {Rng} */ r) => sdpaFamilyBase(r, "hard"),
  blockSparseAttention: (/** @type {Rng} */ r) => sdpaFamilyBase(r, "blockSparse"),
  attentionPooling: poolingBase,
  attentionEntropy: entropyBase,
  attentionRollout: rolloutBase,
  renderHeatmapSvg: heatmapBase,
  "MultiHeadAttention.forward": mhaBase,
};

/** The typed array a base's watch list holds: every real data array among its arguments. @param {any[]} args */
function watchOf(args) {
  /** @type {ArrayBufferView[]} */
  const out = [];
  /** @param {unknown} v @param {number} depth */
  const walk = (v, depth) => {
    if (!v || typeof v !== "object" || depth > 3) return;
    if (ArrayBuffer.isView(v)) return void out.push(v);
    if (Object.getPrototypeOf(v) !== Object.prototype && !Array.isArray(v)) return;
    for (const d of Object.values(Object.getOwnPropertyDescriptors(v))) {
      if ("value" in d) walk(d.value, depth + 1);
    }
  };
  for (const a of args) walk(a, 0);
  return out;
}

/**
 * A case from a base: the call (sync or async twin) on its args.
 * @param {any} base @param {any} api @param {boolean} async @param {string} what
 */
function caseOf(base, api, async, what, extra = {}) {
  const args = base.args;
  return {
    op: async ? base.asyncOp : base.op,
    async,
    repro: `${async ? base.asyncOp : base.op}(${args.map((/** @type {unknown} */ a) => desc(a)).join(", ")})${what ? ` — ${what}` : ""}`,
    call: () => (async ? base.callAsync(api, args) : base.call(api, args)),
    check: base.check,
    watch: watchOf(args),
    cleanup: base.cleanup,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------
// Mutators: a hostile variant of a base. Each returns a case, or undefined when the base has no
// slot for it (then the generator falls back to the valid call).

/** @param {Rng} r @param {any} base */
const slotOf = (r, base) => pick(r, base.tensors);

/** @type {Record<string, (r: Rng, base: any, api: any, async: boolean) => any>} */
const MUTATORS = {
  "wrong-rank"(r, base, api, async) {
    const ranked = base.tensors.filter((/** @type {any} */ s) => s.ranks);
    if (ranked.length === 0) return undefined;
    const slot = pick(r, ranked);
    const t = slot.get(base.args);
    const [min, max] = slot.ranks;
    const shape =
      max < 8 && (r() < 0.5 || min <= 1)
        ? [...Array(max + 1 - t.shape.length).fill(1), ...t.shape]
        : [product(t.shape)];
    if (shape.length >= min && shape.length <= max) return undefined;
    slot.set(base.args, { data: t.data, shape });
    return caseOf(base, api, async, `${slot.name} rank ${shape.length}`, {
      expect: "throw",
      check: undefined,
    });
  },
  "holey-shape"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    if (t.shape.length < 2) return undefined;
    const shape = [...t.shape];
    delete shape[int(r, 0, shape.length - 1)];
    slot.set(base.args, { data: t.data, shape });
    return caseOf(base, api, async, `${slot.name}.shape has a hole`, {
      expect: "throw",
      check: undefined,
    });
  },
  "bad-dim"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    const shape = [...t.shape];
    const i = int(r, 0, shape.length - 1);
    shape[i] = pick(r, [
      -1,
      1.5,
      Number.NaN,
      Infinity,
      2 ** 53,
      `${shape[i]}`,
      null,
      2 ** 32 + shape[i],
      -shape[i],
    ]);
    if (shape[i] === 0 || Object.is(shape[i], -0)) shape[i] = -1;
    slot.set(base.args, { data: t.data, shape });
    return caseOf(base, api, async, `${slot.name}.shape[${i}] = ${desc(shape[i])}`, {
      expect: "throw",
      check: undefined,
    });
  },
  "shape-extra-properties"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    const shape = Object.assign([...t.shape], {
      extra: 1,
      "-1": 5,
      [t.shape.length + 3]: undefined,
    });
    shape.length = t.shape.length;
    slot.set(base.args, { data: t.data, shape, dtype: "float64", extra: true });
    return caseOf(base, api, async, `${slot.name}.shape and the tensor carry extra properties`, {
      expect: "either",
    });
  },
  "shape-not-array"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    const shape = r() < 0.5 ? Int32Array.from(t.shape) : { length: t.shape.length, ...t.shape };
    slot.set(base.args, { data: t.data, shape });
    return caseOf(base, api, async, `${slot.name}.shape is ${desc(shape)}`, { expect: "either" });
  },
  "typed-array-lookalike"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    const data = Object.create(Object.getPrototypeOf(t.data));
    slot.set(base.args, { data, shape: t.shape });
    return caseOf(
      base,
      api,
      async,
      `${slot.name}.data = Object.create(${t.data.constructor.name}.prototype)`,
      {
        expect: "throw",
        check: undefined,
      },
    );
  },
  "proxy-data"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    const data = new Proxy(t.data, {});
    LABELS.set(data, `new Proxy(${t.data.constructor.name}(${t.data.length}), {})`);
    slot.set(base.args, { data, shape: t.shape });
    return caseOf(base, api, async, `${slot.name}.data = new Proxy(data, {})`, {
      expect: "either",
    });
  },
  "lying-length"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    const lie = pick(r, [t.data.length * 1000 + 7, 0, 2 ** 31]);
    const Ctor = t.data.constructor;
    const Liar = class extends Ctor {
      get length() {
        return lie;
      }
    };
    const data = new Liar(t.data.length);
    data.set(t.data);
    slot.set(base.args, { data, shape: t.shape });
    return caseOf(
      base,
      api,
      async,
      `${slot.name}.data is a ${Ctor.name} subclass whose length getter says ${lie}`,
      {
        expect: "either",
      },
    );
  },
  "detached-data"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    if (t.data.length === 0) return undefined;
    const data = t.data.slice();
    detach(data.buffer);
    slot.set(base.args, { data, shape: t.shape });
    return caseOf(base, api, async, `${slot.name}.data's buffer is detached`, {
      expect: "throw",
      check: undefined,
    });
  },
  "changing-getters"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    let reads = 0;
    const bigShape = [...t.shape.slice(0, -1), t.shape[t.shape.length - 1] * 1000 + 1];
    const small = t.data.subarray(0, Math.floor(t.data.length / 2));
    slot.set(base.args, {
      get shape() {
        return reads++ % 2 === 0 ? t.shape : bigShape;
      },
      get data() {
        return reads++ % 3 === 0 ? t.data : small;
      },
    });
    return caseOf(
      base,
      api,
      async,
      `${slot.name}'s shape and data getters return different values on each read`,
      {
        expect: "either",
        check: undefined,
      },
    );
  },
  "nan-infinity-data"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    const data = t.data.slice();
    if (data instanceof Uint8Array || data.length === 0) return undefined;
    for (let i = 0; i < data.length; i++)
      if (r() < 0.3) data[i] = pick(r, [Number.NaN, Infinity, -Infinity, 3e38]);
    slot.set(base.args, { data, shape: t.shape });
    return caseOf(base, api, async, `${slot.name}.data holds NaN/±Infinity/3e38`, {
      expect: "either",
      check: undefined,
    });
  },
  "wrong-dtype"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    const Ctor = pick(r, [Float64Array, Int32Array, Array, Uint8ClampedArray, Int8Array]);
    const data = Ctor === Array ? Array.from(t.data) : new Ctor(t.data);
    slot.set(base.args, { data, shape: t.shape });
    return caseOf(base, api, async, `${slot.name}.data is a ${Ctor.name}`, {
      expect: "throw",
      check: undefined,
    });
  },
  "not-a-tensor"(r, base, api, async) {
    const slot = slotOf(r, base);
    const t = slot.get(base.args);
    const value = pick(r, [
      null,
      5,
      "q",
      [],
      {},
      { data: t.data },
      { shape: t.shape },
      true,
      ...(slot.name === "w" ? [] : [t.data]), // a bare Float32Array is a valid w
    ]);
    slot.set(base.args, value);
    // null in an optional slot (an option, MultiHeadAttention's key and value) means "not given".
    return caseOf(base, api, async, `${slot.name} = ${desc(value)}`, {
      expect: value === null ? "either" : "throw",
      check: undefined,
    });
  },
  "empty-with-huge-dims"(r, base, api, async) {
    if (!base.emptyHuge) return undefined;
    const e = base.emptyHuge();
    base.args = e.args;
    const check = (/** @type {any} */ res) => {
      const t = res?.output ?? res;
      return e.shape ? tensorShape(t, e.shape) : undefined;
    };
    return caseOf(base, api, async, "empty tensors with huge other dims", {
      expect: e.throws ? "throw" : "either",
      check,
    });
  },
  "huge-head-dim"(r, base, api, async) {
    if (!base.hugeD) return undefined;
    const h = base.hugeD();
    base.args = h.args;
    // Attention head dims are at most 65536 (docs/api.md), a clear error; ops that block over the
    // dim (linear's GEMM, softmax) may compute it: then the result must be right. Never a trap.
    return caseOf(base, api, async, "a head dim of 2**22 with real data", {
      expect: "either",
      check: h.check,
    });
  },
  "options-null"(r, base, api, async) {
    if (base.optIndex === undefined) return undefined;
    base.args[base.optIndex] = null;
    // null options mean no options: the result is that of the call without them.
    return caseOf(base, api, async, "options = null", { expect: "either", check: undefined });
  },
  "options-primitive"(r, base, api, async) {
    if (base.optIndex === undefined) return undefined;
    const value = pick(r, ["causal", 5, true, Symbol("o")]);
    base.args[base.optIndex] = value;
    return caseOf(base, api, async, `options = ${String(value)}`, {
      expect: "throw",
      check: undefined,
    });
  },
  "unknown-option-key"(r, base, api, async) {
    if (base.optIndex === undefined) return undefined;
    base.args[base.optIndex] = {
      ...base.args[base.optIndex],
      [pick(r, ["casual", "return_weights", "foo"])]: true,
    };
    return caseOf(base, api, async, "an unknown option key", {
      expect: "throw",
      codes: ["BAD_OPTION"],
      check: undefined,
    });
  },
  "null-option-value"(r, base, api, async) {
    if (base.optIndex === undefined || !base.badOptions) return undefined;
    const key = pick(r, Object.keys(base.badOptions));
    base.args[base.optIndex] = { ...base.args[base.optIndex], [key]: null };
    return caseOf(base, api, async, `options.${key} = null`, {
      expect: "either",
      check: undefined,
    });
  },
  "wrong-typed-option"(r, base, api, async) {
    if (base.optIndex === undefined || !base.badOptions) return undefined;
    const key = pick(r, Object.keys(base.badOptions));
    const value = pick(r, base.badOptions[key]);
    base.args[base.optIndex] = { ...base.args[base.optIndex], [key]: value };
    return caseOf(base, api, async, `options.${key} = ${desc(value)}`, {
      expect: "throw",
      check: undefined,
    });
  },
  "float32-overflow-option"(r, base, api, async) {
    const keys = Object.keys(base.overflow ?? {});
    if (keys.length === 0) return undefined;
    const key = pick(r, keys);
    const value = pick(r, base.overflow[key]);
    if (key === "__params") base.args[base.paramIndex] = value;
    else base.args[base.optIndex] = { ...base.args[base.optIndex], [key]: value };
    return caseOf(
      base,
      api,
      async,
      key === "__params" ? `params = ${desc(value)}` : `options.${key} = ${value}`,
      {
        expect: "throw",
        check: undefined,
      },
    );
  },
  "bad-params"(r, base, api, async) {
    if (!base.badParams?.length) return undefined;
    const value = pick(r, base.badParams);
    base.args[base.paramIndex] = value;
    return caseOf(base, api, async, `params = ${desc(value)}`, {
      expect: "throw",
      check: undefined,
    });
  },
  "out-in-wasm-tensor"(r, base, api, async) {
    if (!base.out) return undefined;
    const t = api.allocTensor([Math.max(base.out.len, 1)]);
    const out = t.data.subarray(0, base.out.len);
    base.out.set(base.args, out);
    return caseOf(base, api, async, "out = allocTensor(...).data", {
      expect: "either",
      out,
      cleanup: () => (t.free(), base.cleanup?.()),
    });
  },
  "out-at-wasm-address-0"(r, base, api, async) {
    if (!base.out) return undefined;
    const probe = api.allocTensor([1]);
    const buffer = probe.data.buffer;
    probe.free();
    const out = new Float32Array(buffer, 0, base.out.len);
    base.out.set(base.args, out);
    return caseOf(base, api, async, "out = new Float32Array(wasmMemory.buffer, 0, n)", {
      expect: "either",
      out,
      outOwned: false,
    });
  },
  "out-freed-tensor-view"(r, base, api, async) {
    if (!base.out) return undefined;
    const t = api.allocTensor([Math.max(base.out.len, 1)]);
    const out = t.data.subarray(0, base.out.len);
    t.free();
    base.out.set(base.args, out);
    return caseOf(base, api, async, "out = a freed allocTensor's old data view", {
      expect: "either",
      out,
      outOwned: false,
    });
  },
  "out-overlaps-input"(r, base, api, async) {
    if (!base.out) return undefined;
    const inputs = watchOf(base.args.slice(0, base.optIndex)).filter(
      (a) => a instanceof Float32Array && a.length >= base.out.len,
    );
    if (inputs.length === 0) return undefined;
    const src = /** @type {Float32Array} */ (pick(r, inputs));
    const out = src.subarray(0, base.out.len);
    const c = caseOf(base, api, async, "out overlaps an input's data", { expect: "either" });
    base.out.set(base.args, out);
    c.out = out;
    c.watch = c.watch.filter((/** @type {any} */ a) => a !== src);
    return c;
  },
  "bad-out"(r, base, api, async) {
    if (!base.out) return undefined;
    const n = base.out.len;
    const choice = int(r, 0, 4);
    /** @type {any} */
    let out = [new Float64Array(n), new Float32Array(n + 1), Array(n).fill(0), "out"][choice];
    if (choice === 4) {
      out = new Float32Array(Math.max(n, 1));
      detach(out.buffer);
    }
    base.out.set(base.args, out);
    return caseOf(
      base,
      api,
      async,
      `out = ${choice === 4 ? "a detached Float32Array" : desc(out)}`,
      {
        expect: "throw",
        check: undefined,
      },
    );
  },
  "detach-after-async-call"(r, base, api, async) {
    if (!async || !base.detachable) return undefined;
    const out = base.out && r() < 0.4 ? new Float32Array(base.out.len) : undefined;
    if (out) base.out.set(base.args, out);
    const list = base.detachable(base.args);
    const [name, arr] = pick(r, list);
    const c = caseOf(
      base,
      api,
      true,
      `${name} detached right after the call returned its promise`,
      { expect: "either", out },
    );
    const call = c.call;
    c.call = () => {
      const p = call();
      if (arr.byteLength > 0) detach(arr.buffer);
      return p;
    };
    return c;
  },
};

// ---------------------------------------------------------------------------------------------
// Special generators.

/** @type {{ op: string, name: string, kind: string, make: (r: Rng, api: any) => any }[]} */
const SPECIAL = [
  {
    op: "softmax",
    name: "degenerate:scalar-shape",
    kind: "degenerate",
    make(r, api) {
      const x = { data: new Float32Array([r() * 10 - 5]), shape: [] };
      const out = new Float32Array(1);
      return {
        repro: `softmax({ data: Float32Array [${x.data[0]}], shape: [] }, { out: new Float32Array(1) })`,
        call: () => api.softmax(x, { out }),
        check: (/** @type {any} */ res) =>
          res?.data?.[0] === 1 && out[0] === 1
            ? undefined
            : `got [${Array.from(res?.data ?? [])}], out [${out[0]}], want [1]`,
        out,
        watch: [x.data],
      };
    },
  },
  {
    op: "attentionEntropy",
    name: "degenerate:[3,0]",
    kind: "degenerate",
    make: (r, api) => ({
      repro: "attentionEntropy({ data: new Float32Array(0), shape: [3, 0] })",
      call: () => api.attentionEntropy({ data: new Float32Array(0), shape: [3, 0] }),
      check: (/** @type {any} */ res) =>
        tensorShape(res, [3]) ??
        (Array.from(res.data).every((x) => x === 0) ? undefined : "not zeros"),
    }),
  },
  {
    op: "attentionRollout",
    name: "degenerate:zero-heads",
    kind: "degenerate",
    make(r, api) {
      const N = int(r, 1, 4);
      const layers = [{ data: new Float32Array(0), shape: [1, 0, N, N] }];
      return {
        expect: "either",
        repro: `attentionRollout([{ data: new Float32Array(0), shape: [1, 0, ${N}, ${N}] }])`,
        call: () => api.attentionRollout(layers),
        check: (/** @type {any} */ res) => tensorShape(res, [1, N, N]) ?? finite(res.data),
      };
    },
  },
  {
    op: "scaledDotProductAttention",
    name: "degenerate:fully-masked-rows",
    kind: "degenerate",
    make(r, api) {
      const [Nq, Nk, D] = [int(r, 1, 5), int(r, 1, 5), int(r, 1, 9)];
      const q = tensor(r, [1, 1, Nq, D]);
      const k = tensor(r, [1, 1, Nk, D]);
      const v = tensor(r, [1, 1, Nk, D]);
      const mask = { data: new Uint8Array(Nq * Nk), shape: [Nq, Nk] };
      for (let j = 0; j < Nk; j++) mask.data[j] = 1; // only row 0 sees keys
      const ref = referenceSdpa(q, k, v, { mask });
      return {
        repro: `scaledDotProductAttention(q[1,1,${Nq},${D}], k, v, { mask: rows 1.. all 0, returnLse })`,
        call: () => api.scaledDotProductAttention(q, k, v, { mask, returnLse: true }),
        check: (/** @type {any} */ res) =>
          tensorProblem(res?.output, [1, 1, Nq, D], ref.output.data) ??
          tensorProblem(res.lse, [1, 1, Nq], ref.lse.data, { atol: 1e-4 }),
        watch: [q.data, k.data, v.data, mask.data],
      };
    },
  },
  {
    op: "MultiHeadAttention",
    name: "constructor:valid",
    kind: "valid",
    make(r, api) {
      const H = pick(r, [1, 2, 3]);
      const E = H * int(r, 1, 5) * (r() < 0.5 ? 2 : 1);
      const opts = {
        embedDim: E,
        numHeads: H,
        bias: r() < 0.5,
        rope: r() < 0.3 && (E / H) % 2 === 0 ? {} : undefined,
      };
      /** @type {any} */
      let mha;
      return {
        repro: `new MultiHeadAttention(${desc(opts)})`,
        call: () => (mha = new api.MultiHeadAttention(opts)),
        check: (/** @type {any} */ m) => {
          const w = m.getWeights();
          return w.wq.length === E * E && w.wo.length === E * E
            ? undefined
            : "weights have the wrong size";
        },
        cleanup: () => mha?.dispose(),
      };
    },
  },
  {
    op: "MultiHeadAttention",
    name: "constructor:hostile",
    kind: "hostile",
    make(r, api) {
      const opts = pick(r, [
        { embedDim: 2 ** 17, numHeads: 1 },
        { embedDim: 2 ** 31, numHeads: 1 },
        { embedDim: 6, numHeads: 4 },
        { embedDim: -4, numHeads: 2 },
        { embedDim: 4.5, numHeads: 1 },
        { embedDim: Number.NaN, numHeads: 1 },
        { embedDim: 8, numHeads: 0 },
        { embedDim: 8, numHeads: 4, numKvHeads: 3 },
        { embedDim: 8, numHeads: 2, bias: "false" },
        { embedDim: 8, numHeads: 2, rope: { base: -1 } },
        { embedDim: 8, numHeads: 2, rope: { style: "x" } },
        { embedDim: 8, numHeads: 2, rope: 5 },
        { embedDim: 6, numHeads: 2, rope: {} },
        { embedDim: 8, numHeads: 2, seed: "1" },
        { embedDim: 8, numHeads: 2, kdim: -1 },
        { embedDim: 8, numHeads: 2, kdim: 2 ** 31 },
        { embedDim: 8, numHeads: 2, weights: { wq: new Float32Array(3) } },
        {
          embedDim: 4,
          numHeads: 2,
          weights: {
            wq: new Float32Array(16),
            wk: new Float32Array(16),
            wv: new Float32Array(16),
            wo: new Float32Array(15),
          },
        },
        { embedDim: 8, numHeads: 2, casual: true },
        null,
        "8",
        undefined,
      ]);
      /** @type {any} */
      let mha;
      return {
        expect: "throw",
        repro: `new MultiHeadAttention(${desc(opts)})`,
        call: () => (mha = new api.MultiHeadAttention(opts)),
        cleanup: () => mha?.dispose(),
      };
    },
  },
  {
    op: "MultiHeadAttention.cache",
    name: "cache:prefill-decode",
    kind: "valid",
    make(r, api) {
      const H = pick(r, [1, 2]);
      const E = H * int(r, 1, 3) * 2;
      const cfg = { embedDim: E, numHeads: H, numKvHeads: H, seed: 3 };
      const mha = new api.MultiHeadAttention(cfg);
      const N = int(r, 2, 7);
      const x = tensor(r, [1, N, E]);
      const want = referenceMha(cfg, mha.getWeights(), x, x, x, { causal: true });
      const cache = mha.createCache({ maxLength: N + int(r, 0, 3) });
      const prefill = int(r, 1, N - 1);
      const async = r() < 0.5;
      return {
        op: async ? "MultiHeadAttention.forwardAsync+cache" : "MultiHeadAttention.forward+cache",
        async,
        repro: `cache prefill ${prefill} then decode to ${N} tokens, E ${E}, H ${H}${async ? " (forwardAsync)" : ""}`,
        async call() {
          const rows = [];
          for (let t = 0; t < N; t = t === 0 ? prefill : t + 1) {
            const n = t === 0 ? prefill : 1;
            const step = { data: x.data.slice(t * E, (t + n) * E), shape: [1, n, E] };
            const o = async
              ? await mha.forwardAsync(step, step, step, { cache, causal: true })
              : mha.forward(step, step, step, { cache, causal: true });
            rows.push(...o.output.data);
          }
          return { data: rows, length: cache.length };
        },
        check: (/** @type {any} */ res) =>
          res.length !== N
            ? `cache.length ${res.length}, want ${N}`
            : closeTo(res.data, want.data, { atol: 1e-4, rtol: 1e-3 }),
        cleanup: () => mha.dispose(),
      };
    },
  },
  {
    op: "MultiHeadAttention.cache",
    name: "cache:hostile",
    kind: "hostile",
    make(r, api) {
      const E = 4;
      const mha = new api.MultiHeadAttention({ embedDim: E, numHeads: 2 });
      const other = new api.MultiHeadAttention({ embedDim: E, numHeads: 2 });
      const x = tensor(r, [1, 3, E]);
      const which = int(r, 0, 9);
      /** @type {any} */
      let codes;
      /** @type {() => unknown} */
      let call;
      let what;
      if (which === 0) {
        const cache = mha.createCache({ maxLength: 2 });
        codes = ["CACHE_FULL"];
        what = "3 tokens into a cache of maxLength 2";
        call = () => mha.forward(x, x, x, { cache });
      } else if (which === 1) {
        const cache = other.createCache({ maxLength: 8 });
        what = "a cache of another module";
        call = () => mha.forward(x, x, x, { cache });
      } else if (which === 2) {
        const cache = mha.createCache({ maxLength: 8 });
        cache.dispose();
        codes = ["DISPOSED"];
        what = "a disposed cache";
        call = () => mha.forward(x, x, x, { cache });
      } else if (which === 3) {
        const cache = mha.createCache({ maxLength: 8 });
        what = "cache with keepForBackward";
        call = () => mha.forward(x, x, x, { cache, keepForBackward: true });
      } else if (which === 4) {
        const cache = mha.createCache({ maxLength: 8, batch: 2 });
        what = "a batch-2 cache with a batch-1 input";
        call = () => mha.forward(x, x, x, { cache });
      } else {
        const opts = pick(r, [
          { maxLength: 0 },
          { maxLength: 2 ** 40 },
          { maxLength: 1.5 },
          { maxLength: 8, batch: -1 },
          null,
          "x",
          { maxLength: 2 ** 31 - 1 },
          { maxLength: 8, batch: 2 ** 31 },
          {},
        ]);
        what = `createCache(${desc(opts)})`;
        call = () => mha.createCache(opts);
      }
      return {
        expect: "throw",
        codes,
        repro: `MultiHeadAttention({ embedDim: 4, numHeads: 2 }): ${what}`,
        call,
        cleanup: () => (mha.dispose(), other.dispose()),
      };
    },
  },
  {
    op: "MultiHeadAttention.cache",
    name: "cache:forwardAsync-overflow",
    kind: "hostile",
    make(r, api) {
      const mha = new api.MultiHeadAttention({ embedDim: 4, numHeads: 2 });
      const cache = mha.createCache({ maxLength: 2 });
      const x = tensor(r, [1, 3, 4]);
      return {
        async: true,
        expect: "throw",
        codes: ["CACHE_FULL"],
        repro: "mha.forwardAsync(3 tokens, { cache: maxLength 2 })",
        call: () => mha.forwardAsync(x, x, x, { cache }),
        cleanup: () => mha.dispose(),
      };
    },
  },
  {
    op: "MultiHeadAttention.backward",
    name: "backward:valid",
    kind: "valid",
    make(r, api) {
      const E = 2 * int(r, 1, 3);
      const mha = new api.MultiHeadAttention({
        embedDim: E,
        numHeads: 2,
        rope: r() < 0.5 && (E / 2) % 2 === 0 ? {} : undefined, // an even head dim
      });
      const x = tensor(r, [int(r, 1, 2), int(r, 1, 5), E]);
      const async = r() < 0.5;
      return {
        op: async ? "MultiHeadAttention.forwardAsync+backward" : "MultiHeadAttention.backward",
        async,
        repro: `forward${async ? "Async" : ""}(x[${x.shape}], { keepForBackward: true, causal: true }) then backward`,
        async call() {
          const f = async
            ? await mha.forwardAsync(x, undefined, undefined, {
                keepForBackward: true,
                causal: true,
              })
            : mha.forward(x, undefined, undefined, { keepForBackward: true, causal: true });
          return mha.backward(tensor(r, f.output.shape), f.saved);
        },
        check: (/** @type {any} */ g) =>
          tensorShape(g?.dQuery, x.shape) ??
          finite(g.dQuery.data) ??
          (g.grads.wq.length === E * E ? finite(g.grads.wq) : "grads.wq size"),
        watch: [x.data],
        cleanup: () => mha.dispose(),
      };
    },
  },
  {
    op: "MultiHeadAttention.backward",
    name: "backward:hostile",
    kind: "hostile",
    make(r, api) {
      const mha = new api.MultiHeadAttention({ embedDim: 4, numHeads: 2 });
      const other = new api.MultiHeadAttention({ embedDim: 4, numHeads: 2 });
      const x = tensor(r, [1, 3, 4]);
      const which = int(r, 0, 4);
      const saved = (which === 0 ? other : mha).forward(x, undefined, undefined, {
        keepForBackward: true,
      }).saved;
      const g = which === 2 ? tensor(r, [1, 2, 4]) : tensor(r, [1, 3, 4]);
      if (which === 3) mha.dispose();
      const arg =
        which === 1
          ? pick(r, [{}, null, 5, { ...saved }])
          : which === 4
            ? Object.create(saved)
            : saved;
      return {
        expect: "throw",
        codes: which === 3 ? ["DISPOSED"] : undefined,
        repro: [
          "saved of another module",
          `saved = ${desc(arg)}`,
          "gradOutput of the wrong shape",
          "after dispose()",
          "saved = Object.create(saved)",
        ][which],
        call: () => mha.backward(g, arg),
        cleanup: () => (mha.dispose(), other.dispose()),
      };
    },
  },
  {
    op: "MultiHeadAttention.setWeights",
    name: "weights:roundtrip",
    kind: "valid",
    make(r, api) {
      const E = 2 * int(r, 1, 3);
      const mha = new api.MultiHeadAttention({ embedDim: E, numHeads: 2, seed: int(r, 0, 9) });
      const x = tensor(r, [1, int(r, 1, 4), E]);
      const before = mha.forward(x).output.data;
      return {
        repro: "mha.setWeights(mha.getWeights()) keeps forward's output",
        call: () => {
          mha.setWeights(mha.getWeights());
          return mha.forward(x).output.data;
        },
        check: (/** @type {any} */ after) => closeTo(after, before, { atol: 0, rtol: 0 }),
        cleanup: () => mha.dispose(),
      };
    },
  },
  {
    op: "MultiHeadAttention.setWeights",
    name: "weights:hostile",
    kind: "hostile",
    make(r, api) {
      const mha = new api.MultiHeadAttention({ embedDim: 4, numHeads: 2 });
      const w = mha.getWeights();
      const value = pick(r, [
        null,
        {},
        5,
        { ...w, wq: new Float32Array(15) },
        { ...w, wq: { data: w.wq, shape: [2, 8] } },
        { ...w, bq: new Float32Array(5) },
        { ...w, wqq: w.wq },
        { ...w, wo: Array.from(w.wo) },
        { ...w, wk: Object.create(Float32Array.prototype) },
      ]);
      const x = tensor(r, [1, 2, 4]);
      const before = mha.forward(x).output.data;
      return {
        expect: "throw",
        repro: `mha.setWeights(${desc(value)})`,
        call: () => mha.setWeights(value),
        // a refused setWeights leaves the weights as they were
        cleanup: () => {
          const after = mha.forward(x).output.data;
          mha.dispose();
          const p = closeTo(after, before, { atol: 0, rtol: 0 });
          if (p) throw new Error(`weights changed by a refused setWeights: ${p}`);
        },
      };
    },
  },
  {
    op: "MultiHeadAttention.dispose",
    name: "dispose:use-after",
    kind: "hostile",
    make(r, api) {
      const mha = new api.MultiHeadAttention({ embedDim: 4, numHeads: 2 });
      const x = tensor(r, [1, 2, 4]);
      const which = int(r, 0, 4);
      mha.dispose();
      const calls = [
        () => mha.forward(x),
        () => mha.forwardAsync(x),
        () => mha.getWeights(),
        () => mha.createCache({ maxLength: 4 }),
        () => mha.setWeights({}),
      ];
      return {
        expect: "throw",
        codes: ["DISPOSED"],
        async: which === 1,
        repro: `after dispose(): ${["forward", "forwardAsync", "getWeights", "createCache", "setWeights"][which]}`,
        call: calls[which],
      };
    },
  },
  {
    op: "MultiHeadAttention.dispose",
    name: "dispose:while-forwardAsync-pending",
    kind: "degenerate",
    make(r, api) {
      const mha = new api.MultiHeadAttention({ embedDim: 8, numHeads: 2 });
      const x = tensor(r, [1, int(r, 1, 40), 8]);
      return {
        async: true,
        expect: "either",
        repro: "p = mha.forwardAsync(x); mha.dispose(); await p",
        call: () => {
          const p = mha.forwardAsync(x);
          mha.dispose();
          return p;
        },
      };
    },
  },
  {
    op: "allocTensor",
    name: "alloc:valid-zero-copy-input",
    kind: "valid",
    make(r, api) {
      const [Nq, Nk, D] = [int(r, 1, 6), int(r, 1, 6), int(r, 1, 8)];
      const q = api.allocTensor([1, Nq, D]);
      const k = api.allocTensor([1, Nk, D]);
      const src = tensor(r, [1, Nq, D]);
      const ks = tensor(r, [1, Nk, D]);
      q.data.set(src.data);
      k.data.set(ks.data);
      const ref = referenceSdpa(src, ks, ks).output.data;
      return {
        repro: `allocTensor q [1,${Nq},${D}], k [1,${Nk},${D}] as SDPA inputs`,
        call: () => api.scaledDotProductAttention(q, k, k),
        check: (/** @type {any} */ res) => closeTo(res.output.data, ref),
        cleanup: () => (q.free(), k.free()),
      };
    },
  },
  {
    op: "allocTensor",
    name: "alloc:use-after-free",
    kind: "hostile",
    make(r, api) {
      const t = api.allocTensor([2, 4]);
      t.free();
      const which = int(r, 0, 3);
      const x = tensor(r, [2, 4]);
      return {
        expect: which === 3 ? "either" : "throw",
        codes: which === 3 ? undefined : ["DISPOSED"],
        repro: [
          "t.free(); t.data",
          "t.free(); softmax(t)",
          "t.free(); SDPA(x, t, x)",
          "t.free(); t.free()",
        ][which],
        call: [
          () => t.data,
          () => api.softmax(t),
          () => api.scaledDotProductAttention(x, t, x),
          () => t.free(),
        ][which],
      };
    },
  },
  {
    op: "allocTensor",
    name: "alloc:hostile-shape",
    kind: "hostile",
    make(r, api) {
      const args = pick(r, [
        [[-1]],
        [[1.5]],
        [[Number.NaN]],
        [[2 ** 31, 2 ** 31]],
        [[2 ** 32]],
        [[2 ** 30, 4]],
        ["x"],
        [null],
        [[1, , 2]],
        [[2], "float64"],
        [[2], 5],
        [{ length: 1, 0: 2 }],
      ]);
      /** @type {any} */
      let t;
      return {
        expect: "throw",
        repro: `allocTensor(${args.map((/** @type {unknown} */ a) => desc(a)).join(", ")})`,
        call: () => (t = api.allocTensor(...args)),
        cleanup: () => t?.free(),
      };
    },
  },
  {
    op: "alibiSlopes",
    name: "alibi:valid",
    kind: "valid",
    make(r, api) {
      const H = pick(r, [1, 2, 4, 8, 16, 3, 5, 6, 12, 31]);
      return {
        repro: `alibiSlopes(${H})`,
        call: () => api.alibiSlopes(H),
        check: (/** @type {any} */ s) => {
          if (!(s instanceof Float32Array) || s.length !== H) return "not a Float32Array of H";
          if ((H & (H - 1)) === 0)
            return closeTo(
              s,
              Array.from({ length: H }, (_, h) => 2 ** ((-8 * (h + 1)) / H)),
            );
          return s.every((x) => x > 0 && x < 1) ? undefined : "slopes outside (0, 1)";
        },
      };
    },
  },
  {
    op: "alibiSlopes",
    name: "alibi:hostile",
    kind: "hostile",
    make(r, api) {
      const n = pick(r, [2 ** 32, 2 ** 31, -1, 1.5, Number.NaN, "8", null, Infinity, 2 ** 53]);
      return { expect: "throw", repro: `alibiSlopes(${desc(n)})`, call: () => api.alibiSlopes(n) };
    },
  },
  {
    op: "sparsePatterns",
    name: "patterns:valid",
    kind: "valid",
    make(r, api) {
      const n = int(r, 1, 9);
      const which = pick(r, ["strided", "fixed", "longformer", "bigbird"]);
      const opts = {
        strided: { stride: int(r, 1, 4), causal: r() < 0.5 },
        fixed: { stride: int(r, 1, 4), summary: 1 },
        longformer: { window: int(r, 0, 2), globalBlocks: [0] },
        bigbird: { window: int(r, 0, 2), randomBlocks: int(r, 0, 2), seed: int(r, 0, 9) },
      }[which];
      return {
        repro: `sparsePatterns.${which}(${n}, ${desc(opts)})`,
        call: () => api.sparsePatterns[which](n, opts),
        check: (/** @type {any} */ t) =>
          tensorShape(t, [n, n]) ??
          (t.data instanceof Uint8Array && t.data.every((/** @type {number} */ x) => x <= 1)
            ? undefined
            : "not a 0/1 uint8 layout"),
      };
    },
  },
  {
    op: "sparsePatterns",
    name: "patterns:hostile",
    kind: "hostile",
    make(r, api) {
      let which = pick(r, ["strided", "fixed", "longformer", "bigbird"]);
      const [n, opts] = pick(r, [
        [2 ** 32, { stride: 1, window: 1, randomBlocks: 1 }],
        [-1, { stride: 1, window: 1, randomBlocks: 1 }],
        [1.5, { stride: 1, window: 1, randomBlocks: 1 }],
        [Number.NaN, { stride: 1, window: 1, randomBlocks: 1 }],
        [4, { stride: 0, window: -1, randomBlocks: -1 }],
        [4, { stride: "2", window: "1", randomBlocks: "1" }],
        [4, null],
        [4, "x"],
        [4, { stride: 1, window: 1, randomBlocks: 1, globalBlocks: 5 }],
        [4, { stride: 1, window: 1, randomBlocks: 1, casual: true, globalBlocks: [0] }],
      ]);
      // globalBlocks is hostile only to the patterns that take it (the others never see it).
      if (opts && typeof opts === "object" && "globalBlocks" in opts && !("casual" in opts)) {
        which = pick(r, ["longformer", "bigbird"]);
      }
      /** @type {any} */
      const o = opts && typeof opts === "object" ? { ...opts } : opts;
      if (o && typeof o === "object") {
        for (const k of Object.keys(o)) {
          const own = {
            strided: ["stride", "causal"],
            fixed: ["stride", "summary", "causal"],
            longformer: ["window", "globalBlocks"],
            bigbird: ["window", "globalBlocks", "randomBlocks", "seed"],
          }[which];
          if (!own.includes(k) && k !== "casual") delete o[k];
        }
      }
      return {
        expect: "throw",
        repro: `sparsePatterns.${which}(${desc(n)}, ${desc(o)})`,
        call: () => api.sparsePatterns[which](n, o),
      };
    },
  },
  {
    op: "memoryStats",
    name: "info:valid",
    kind: "valid",
    make(r, api) {
      const junk = pick(r, [[], [5], [null, "x"]]);
      return {
        repro: `memoryStats(${junk.map((/** @type {unknown} */ a) => desc(a))}), runtimeInfo(...)`,
        call: () => [api.memoryStats(...junk), api.runtimeInfo(...junk)],
        check: ([m, i]) =>
          Number.isInteger(m.memoryBytes) &&
          Number.isInteger(m.bytesInUse) &&
          m.bytesInUse <= m.memoryBytes &&
          ["scalar", "simd128", "relaxed"].includes(i.build) &&
          i.threads >= 1
            ? undefined
            : `memoryStats ${JSON.stringify(m)}, runtimeInfo ${JSON.stringify(i)}`,
      };
    },
  },
];

// ---------------------------------------------------------------------------------------------

/** @type {{ op: string, name: string, kind: string, make: (r: Rng, api: any) => any }[]} */
export const GENERATORS = [];
const HAS_ASYNC = new Set([
  "scaledDotProductAttention",
  "scaledDotProductAttentionBackward",
  "linear",
  "additiveAttention",
  "bilinearAttention",
  "cosineAttention",
  "hybridAttention",
  "hardAttention",
  "blockSparseAttention",
  "attentionPooling",
  "MultiHeadAttention.forward",
]);

for (const [op, makeBase] of Object.entries(BASES)) {
  for (const async of HAS_ASYNC.has(op) ? [false, true] : [false]) {
    const tag = async ? ":async" : "";
    GENERATORS.push({
      op,
      name: `valid${tag}`,
      kind: "valid",
      make: (r, api) =>
        caseOf(/** @type {any} */ (makeBase)(r, api), api, async, "", {
          expect: "ok",
          kind: "valid",
        }),
    });
    for (const [mut, fn] of Object.entries(MUTATORS)) {
      if (mut === "detach-after-async-call" && !async) continue;
      GENERATORS.push({
        op,
        name: `${mut}${tag}`,
        kind: "hostile",
        make(r, api) {
          const base = /** @type {any} */ (makeBase)(r, api);
          const c = fn(r, base, api, async);
          if (c) return { kind: "hostile", ...c };
          return caseOf(base, api, async, "(mutator does not apply: the valid call)", {
            expect: "ok",
            kind: "valid",
          });
        },
      });
    }
  }
}
GENERATORS.push({
  op: "scaledDotProductAttention",
  name: "valid:pooled-size",
  kind: "valid",
  make: (r, api) =>
    caseOf(sdpaBase(r, { medium: true }), api, r() < 0.5, "", { expect: "ok", kind: "valid" }),
});
GENERATORS.push({
  op: "linear",
  name: "valid:pooled-size",
  kind: "valid",
  make: (r, api) =>
    caseOf(linearBase(r, true), api, r() < 0.5, "", { expect: "ok", kind: "valid" }),
});
GENERATORS.push(...SPECIAL);
