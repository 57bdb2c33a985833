// Float64 references of the adversarial suite, in plain JavaScript so that both vitest (against
// src/) and bench/soak.mjs (against dist/) can import them: scaled dot-product attention (masks,
// causal, scale, grouped-query heads), linear, softmax along any axis and a MultiHeadAttention
// forward without rope. They follow docs/api.md; test/reference*.ts hold the full ones.

/** @typedef {{ data: ArrayLike<number>, shape: readonly number[] }} RefTensor */

/** @param {readonly number[]} shape */
export function product(shape) {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** @param {readonly number[]} shape @returns {[number, number, number, number]} */
function dims4(shape) {
  if (shape.length === 4) return [shape[0], shape[1], shape[2], shape[3]];
  if (shape.length === 3) return [1, shape[0], shape[1], shape[2]];
  return [1, 1, shape[0], shape[1]];
}

/**
 * Element strides reading `shape` broadcast (numpy rules) to `target`.
 * @param {readonly number[]} shape @param {readonly number[]} target
 */
function broadcastStrides(shape, target) {
  const strides = new Array(target.length).fill(0);
  let stride = 1;
  for (let i = 1; i <= shape.length; i++) {
    const dim = shape[shape.length - i];
    if (dim !== 1) strides[target.length - i] = stride;
    stride *= dim;
  }
  return strides;
}

/**
 * softmax(scale·q·kᵀ + mask)·v in float64. Options: mask (uint8 boolean or float32 additive,
 * broadcasting to [B,H,Nq,Nk]), causal (lower-right), scale. A row with no visible key outputs
 * zeros, zero weights and lse -Infinity.
 * @param {RefTensor} q @param {RefTensor} k @param {RefTensor} v
 * @param {{ mask?: RefTensor, causal?: boolean, scale?: number }} [options]
 */
export function referenceSdpa(q, k, v, options = {}) {
  const [B, H, Nq, D] = dims4(q.shape);
  const [, Hkv, Nk] = dims4(k.shape);
  const Dv = dims4(v.shape)[3];
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const group = H / Hkv;
  const offset = Nk - Nq;
  const output = new Float64Array(B * H * Nq * Dv);
  const weights = new Float64Array(B * H * Nq * Nk);
  const lse = new Float64Array(B * H * Nq);
  const mask = options.mask;
  const ms = mask ? broadcastStrides(mask.shape, [B, H, Nq, Nk]) : undefined;
  const boolMask = mask ? mask.data instanceof Uint8Array : false;
  const s = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < Nq; i++) {
        let max = -Infinity;
        for (let j = 0; j < Nk; j++) {
          let x = 0;
          const qo = ((b * H + h) * Nq + i) * D;
          const ko = ((b * Hkv + hk) * Nk + j) * D;
          for (let d = 0; d < D; d++) x += q.data[qo + d] * k.data[ko + d];
          x *= scale;
          if (mask && ms) {
            const m = mask.data[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]];
            if (boolMask) {
              if (!m) x = -Infinity;
            } else x += m;
          }
          if (options.causal && j > i + offset) x = -Infinity;
          s[j] = x;
          if (x > max) max = x;
        }
        const row = (b * H + h) * Nq + i;
        if (max === -Infinity) {
          lse[row] = -Infinity;
          continue;
        }
        let sum = 0;
        for (let j = 0; j < Nk; j++) sum += s[j] === -Infinity ? 0 : Math.exp(s[j] - max);
        lse[row] = max + Math.log(sum);
        for (let j = 0; j < Nk; j++) {
          const p = s[j] === -Infinity ? 0 : Math.exp(s[j] - max) / sum;
          weights[row * Nk + j] = p;
          if (p === 0) continue;
          const vo = ((b * Hkv + hk) * Nk + j) * Dv;
          for (let d = 0; d < Dv; d++) output[row * Dv + d] += p * v.data[vo + d];
        }
      }
    }
  }
  const lead = q.shape.slice(0, -1);
  return {
    output: { data: output, shape: [...lead, Dv] },
    weights: { data: weights, shape: [...lead, Nk] },
    lse: { data: lse, shape: lead },
  };
}

/**
 * y = x·Wᵀ + b: x [..., in], w [out, in] (flat), b [out].
 * @param {RefTensor} x @param {ArrayLike<number>} w @param {number} outF @param {ArrayLike<number>} [b]
 */
export function referenceLinear(x, w, outF, b) {
  const inF = x.shape[x.shape.length - 1];
  const rows = inF === 0 ? product(x.shape.slice(0, -1)) : x.data.length / inF;
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) acc += x.data[r * inF + i] * w[o * inF + i];
      y[r * outF + o] = acc;
    }
  }
  return { data: y, shape: [...x.shape.slice(0, -1), outF] };
}

/**
 * Stable softmax along `axis`; a line of all -Infinity gives zeros.
 * @param {RefTensor} x @param {number} [axis]
 */
export function referenceSoftmax(x, axis = -1) {
  const shape = x.shape.length === 0 ? [1] : x.shape;
  const rank = shape.length;
  const a = axis < 0 ? axis + rank : axis;
  const n = shape[a];
  const inner = product(shape.slice(a + 1));
  const outer = product(shape.slice(0, a));
  const y = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let t = 0; t < inner; t++) {
      const at = (/** @type {number} */ j) => (o * n + j) * inner + t;
      let max = -Infinity;
      for (let j = 0; j < n; j++) max = Math.max(max, x.data[at(j)]);
      if (max === -Infinity) continue;
      let sum = 0;
      for (let j = 0; j < n; j++) sum += Math.exp(x.data[at(j)] - max);
      for (let j = 0; j < n; j++) y[at(j)] = Math.exp(x.data[at(j)] - max) / sum;
    }
  }
  return { data: y, shape: [...x.shape] };
}

/**
 * MultiHeadAttention.forward in float64 (no rope, no cache): projections, attention per head on
 * the [B, N, H, hd] layout, output projection.
 * @param {{ embedDim: number, numHeads: number, numKvHeads: number }} cfg
 * @param {{ wq: ArrayLike<number>, wk: ArrayLike<number>, wv: ArrayLike<number>, wo: ArrayLike<number>, bq?: ArrayLike<number>, bk?: ArrayLike<number>, bv?: ArrayLike<number>, bo?: ArrayLike<number> }} w
 * @param {RefTensor} query [B, Nq, E] @param {RefTensor} key [B, Nk, kdim] @param {RefTensor} value
 * @param {{ causal?: boolean }} [options]
 */
export function referenceMha(cfg, w, query, key, value, options = {}) {
  const E = cfg.embedDim;
  const H = cfg.numHeads;
  const Hkv = cfg.numKvHeads;
  const hd = E / H;
  const Ekv = hd * Hkv;
  const B = query.shape.length === 3 ? query.shape[0] : 1;
  const Nq = query.shape[query.shape.length - 2];
  const Nk = key.shape[key.shape.length - 2];
  const pq = referenceLinear(query, w.wq, E, w.bq).data;
  const pk = referenceLinear(key, w.wk, Ekv, w.bk).data;
  const pv = referenceLinear(value, w.wv, Ekv, w.bv).data;
  // [B, N, heads, hd] → [B, heads, N, hd]
  const heads = (
    /** @type {Float64Array} */ p,
    /** @type {number} */ n,
    /** @type {number} */ h,
  ) => {
    const t = new Float64Array(p.length);
    for (let b = 0; b < B; b++)
      for (let i = 0; i < n; i++)
        for (let g = 0; g < h; g++)
          for (let d = 0; d < hd; d++)
            t[((b * h + g) * n + i) * hd + d] = p[((b * n + i) * h + g) * hd + d];
    return t;
  };
  const att = referenceSdpa(
    { data: heads(pq, Nq, H), shape: [B, H, Nq, hd] },
    { data: heads(pk, Nk, Hkv), shape: [B, Hkv, Nk, hd] },
    { data: heads(pv, Nk, Hkv), shape: [B, Hkv, Nk, hd] },
    { causal: options.causal },
  ).output.data;
  const merged = new Float64Array(B * Nq * E);
  for (let b = 0; b < B; b++)
    for (let g = 0; g < H; g++)
      for (let i = 0; i < Nq; i++)
        for (let d = 0; d < hd; d++)
          merged[((b * Nq + i) * H + g) * hd + d] = att[((b * H + g) * Nq + i) * hd + d];
  return referenceLinear({ data: merged, shape: [B, Nq, E] }, w.wo, E, w.bo);
}
