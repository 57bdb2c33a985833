// The runtime smoke test, plain JavaScript so that Node, Deno, Bun and workerd all run it as is:
// init, scaled dot-product attention and multi-head attention against a float64 reference, and one
// error case. Returns a report; the caller checks it.

function random(seed) {
  let x = seed >>> 0 || 1;
  return (n) =>
    Float32Array.from({ length: n }, () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 2 ** 32 - 0.5;
    });
}

// softmax(q·kᵀ/√D)·v for one head, rows of q [Nq, D], k [Nk, D], v [Nk, Dv].
function attend(q, k, v, Nq, Nk, D, Dv, causal) {
  const out = new Float64Array(Nq * Dv);
  for (let i = 0; i < Nq; i++) {
    const s = [];
    for (let j = 0; j < Nk; j++) {
      let a = 0;
      for (let d = 0; d < D; d++) a += q[i * D + d] * k[j * D + d];
      s.push(causal && j > i + Nk - Nq ? -Infinity : a / Math.sqrt(D));
    }
    const m = Math.max(...s);
    const e = s.map((x) => (x === -Infinity ? 0 : Math.exp(x - m)));
    const l = e.reduce((a, b) => a + b, 0);
    for (let c = 0; c < Dv; c++) {
      let o = 0;
      for (let j = 0; j < Nk; j++) o += (e[j] / l) * v[j * Dv + c];
      out[i * Dv + c] = o;
    }
  }
  return out;
}

function linear(x, w, b, rows, inF, outF) {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let a = b[o];
      for (let i = 0; i < inF; i++) a += x[r * inF + i] * w[o * inF + i];
      y[r * outF + o] = a;
    }
  }
  return y;
}

const maxDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

export async function smoke(api) {
  await api.init();
  const rnd = random(42);
  // Scaled dot-product attention, one head, causal.
  const [N, D] = [7, 12];
  const q = rnd(N * D);
  const k = rnd(N * D);
  const v = rnd(N * D);
  const sdpa = api.scaledDotProductAttention(
    { data: q, shape: [N, D] },
    { data: k, shape: [N, D] },
    { data: v, shape: [N, D] },
    { causal: true },
  );
  const sdpaError = maxDiff(sdpa.output.data, attend(q, k, v, N, N, D, D, true));
  // Multi-head attention, self-attention, E = 8, H = 2.
  const [E, H, T] = [8, 2, 5];
  const x = rnd(T * E);
  const w = { wq: rnd(E * E), wk: rnd(E * E), wv: rnd(E * E), wo: rnd(E * E) };
  const b = { bq: rnd(E), bk: rnd(E), bv: rnd(E), bo: rnd(E) };
  const mha = new api.MultiHeadAttention({ embedDim: E, numHeads: H, weights: { ...w, ...b } });
  const got = mha.forward({ data: x, shape: [1, T, E] }).output.data;
  mha.dispose();
  const Q = linear(x, w.wq, b.bq, T, E, E);
  const K = linear(x, w.wk, b.bk, T, E, E);
  const V = linear(x, w.wv, b.bv, T, E, E);
  const hd = E / H;
  const O = new Float64Array(T * E);
  for (let h = 0; h < H; h++) {
    const cols = (M) =>
      Float64Array.from(
        { length: T * hd },
        (_, i) => M[Math.floor(i / hd) * E + h * hd + (i % hd)],
      );
    const o = attend(cols(Q), cols(K), cols(V), T, T, hd, hd, false);
    for (let i = 0; i < T * hd; i++) O[Math.floor(i / hd) * E + h * hd + (i % hd)] = o[i];
  }
  const mhaError = maxDiff(got, linear(O, w.wo, b.bo, T, E, E));
  // A bad call raises AttentionError and leaves the module working.
  let errorCode = "none";
  try {
    api.scaledDotProductAttention(
      { data: q, shape: [N, D] },
      { data: k, shape: [N, D - 1] },
      { data: v, shape: [N, D] },
    );
  } catch (err) {
    errorCode = err instanceof api.AttentionError ? err.code : String(err);
  }
  const again = api.scaledDotProductAttention(
    { data: q, shape: [N, D] },
    { data: k, shape: [N, D] },
    { data: v, shape: [N, D] },
    { causal: true },
  );
  const afterError = maxDiff(again.output.data, sdpa.output.data);
  return { sdpaError, mhaError, errorCode, afterError };
}
