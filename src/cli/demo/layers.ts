// The demo's untrained model: deterministic token embeddings and a stack of self-attention layers
// (MultiHeadAttention, seeded weights, residual connections). Shared by the command line and the
// browser page. Its heads have learnt nothing: their maps are close to uniform, which the demo's
// colour scale shows as pale.

import { MultiHeadAttention, type Tensor } from "../../index.js";

// FNV-1a of the token, then xorshift32: the same token always gets the same embedding.
function tokenSeed(token: string): number {
  let h = 0x811c9dc5;
  for (const ch of token.toLowerCase()) h = Math.imul(h ^ ch.codePointAt(0)!, 0x01000193);
  return h >>> 0 || 1;
}

/** Embeddings [N, E]: a seeded vector per token plus sinusoidal positions (Vaswani et al.). */
export function embed(tokens: string[], E: number): Float32Array {
  const x = new Float32Array(tokens.length * E);
  tokens.forEach((token, n) => {
    let s = tokenSeed(token);
    for (let e = 0; e < E; e++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const angle = n / Math.pow(10000, (2 * Math.floor(e / 2)) / E);
      const position = e % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
      x[n * E + e] = ((s >>> 0) / 2 ** 32 - 0.5) * 2 + 0.5 * position;
    }
  });
  return x;
}

/** The layer stack: per layer, self-attention weights [1, H, N, N] and the residual update. */
export function runLayers(
  tokens: string[],
  E: number,
  H: number,
  L: number,
): { x: Float32Array; layers: Tensor[] } {
  const N = tokens.length;
  let x = embed(tokens, E);
  const layers: Tensor[] = [];
  for (let l = 0; l < L; l++) {
    const mha = new MultiHeadAttention({ embedDim: E, numHeads: H, seed: 100 + l });
    try {
      const input = { data: x, shape: [1, N, E] };
      const { output, weights } = mha.forward(input, input, input, {
        needWeights: true,
        averageWeights: false,
      });
      layers.push(weights!);
      x = x.map((v, i) => v + output.data[i]);
    } finally {
      mha.dispose();
    }
  }
  return { x, layers };
}

/** Head h of layer weights [1, H, N, N] as [N, N]. */
export function headWeights(layer: Tensor, h: number, N: number): Float32Array {
  return layer.data.slice(h * N * N, (h + 1) * N * N);
}
