// The dropout mask of assembly/dropout.ts, recomputed bit for bit with Math.imul: whether key j
// survives for query row i of (batch, head) bh is a hash of (seed, bh, i, j).

function fmix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** The factor of key j for row i of (batch, head) bh: 1/(1 − p) if kept, 0 if dropped. */
export type KeepFactor = (bh: number, i: number, j: number) => number;

export function dropoutFactors(dropout: { p: number; seed: number } | undefined): KeepFactor {
  if (!dropout) return () => 1;
  const threshold = Math.round(dropout.p * 2 ** 24);
  if (threshold === 0) return () => 1;
  const scale = 1 / (1 - dropout.p);
  const seed = dropout.seed >>> 0;
  return (bh, i, j) => {
    const head = fmix(seed ^ Math.imul(bh + 1, 0x9e3779b1));
    const row = fmix(head ^ Math.imul(i + 1, 0x85ebca77));
    const x = fmix(row ^ Math.imul(j + 1, 0xc2b2ae3d));
    return x >>> 8 >= threshold ? scale : 0;
  };
}
