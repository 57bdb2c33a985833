// Block layouts for blockSparseAttention: the patterns of the Sparse Transformer (Child et al. 2019),
// Longformer (Beltagy et al. 2020) and BigBird (Zaheer et al. 2020), at block granularity. Each
// returns a uint8 tensor [numBlocks, numBlocks], 1 = query block r attends key block c.

import { AttentionError } from "../errors.js";
import { optionKeys } from "../option-keys.js";
import { checkOptionsObject, describe, type Tensor } from "../tensor.js";
import { mulberry32 } from "../mulberry32.js";

interface StridedOptions {
  stride: number;
  causal?: boolean;
}
interface FixedOptions {
  stride: number;
  summary?: number;
  causal?: boolean;
}
interface LongformerOptions {
  window: number;
  globalBlocks?: readonly number[];
}
interface BigBirdOptions {
  window: number;
  globalBlocks?: readonly number[];
  randomBlocks: number;
  seed?: number;
}

// The keys of each pattern's options: any other key is a BAD_OPTION error.
const STRIDED_KEYS = optionKeys<StridedOptions>({ stride: true, causal: true });
const FIXED_KEYS = optionKeys<FixedOptions>({ stride: true, summary: true, causal: true });
const LONGFORMER_KEYS = optionKeys<LongformerOptions>({ window: true, globalBlocks: true });
const BIGBIRD_KEYS = optionKeys<BigBirdOptions>({
  window: true,
  globalBlocks: true,
  randomBlocks: true,
  seed: true,
});

function count(op: string, name: string, x: unknown, min: number): number {
  if (typeof x !== "number" || !Number.isInteger(x) || x < min) {
    throw new AttentionError(
      "BAD_OPTION",
      `sparsePatterns.${op}: ${name} must be an integer >= ${min}, got ${describe(x)}`,
    );
  }
  return x;
}

// Layouts are numBlocks² bytes: refuse sizes no attention call could use.
const MAX_BLOCKS = 1 << 15;

function blocks(op: string, numBlocks: unknown): number {
  const n = count(op, "numBlocks", numBlocks, 1);
  if (n > MAX_BLOCKS) {
    throw new AttentionError(
      "BAD_OPTION",
      `sparsePatterns.${op}: numBlocks ${n} is above ${MAX_BLOCKS}`,
    );
  }
  return n;
}

function build(numBlocks: number, keep: (r: number, c: number) => boolean): Tensor<Uint8Array> {
  const data = new Uint8Array(numBlocks * numBlocks);
  for (let r = 0; r < numBlocks; r++)
    for (let c = 0; c < numBlocks; c++) data[r * numBlocks + c] = keep(r, c) ? 1 : 0;
  return { data, shape: [numBlocks, numBlocks] };
}

function globalSet(op: string, blocks: unknown, numBlocks: number): Set<number> {
  if (blocks === undefined) return new Set();
  if (!Array.isArray(blocks) && !(blocks instanceof Int32Array)) {
    throw new AttentionError(
      "BAD_OPTION",
      `sparsePatterns.${op}: globalBlocks must be an array of block indices, got ${describe(blocks)}`,
    );
  }
  for (const g of blocks) count(op, "each global block", g, 0);
  for (const g of blocks) {
    if (g >= numBlocks) {
      throw new AttentionError(
        "BAD_OPTION",
        `sparsePatterns.${op}: global block ${g} is not below numBlocks ${numBlocks}`,
      );
    }
  }
  return new Set(blocks);
}

export const sparsePatterns = {
  /**
   * Sparse Transformer "strided": block r attends the previous `stride` blocks (itself included)
   * and every block a multiple of `stride` back. `causal` (default true) drops future blocks.
   */
  strided(numBlocks: number, options: StridedOptions): Tensor<Uint8Array> {
    blocks("strided", numBlocks);
    checkOptionsObject("sparsePatterns.strided", options, STRIDED_KEYS);
    const stride = count("strided", "stride", options.stride, 1);
    const causal = options.causal ?? true;
    return build(numBlocks, (r, c) => {
      if (causal && c > r) return false;
      const d = Math.abs(r - c);
      return d < stride || d % stride === 0;
    });
  },

  /**
   * Sparse Transformer "fixed": blocks attend within their chunk of `stride` blocks, and every block
   * attends the last `summary` (default 1) blocks of each chunk. `causal` (default true).
   */
  fixed(numBlocks: number, options: FixedOptions): Tensor<Uint8Array> {
    blocks("fixed", numBlocks);
    checkOptionsObject("sparsePatterns.fixed", options, FIXED_KEYS);
    const stride = count("fixed", "stride", options.stride, 1);
    const summary = count("fixed", "summary", options.summary ?? 1, 1);
    if (summary > stride) {
      throw new AttentionError(
        "BAD_OPTION",
        `sparsePatterns.fixed: summary ${summary} is above stride ${stride}`,
      );
    }
    const causal = options.causal ?? true;
    return build(numBlocks, (r, c) => {
      if (causal && c > r) return false;
      return Math.floor(r / stride) === Math.floor(c / stride) || c % stride >= stride - summary;
    });
  },

  /** Longformer: a sliding window of `window` blocks on each side, plus global blocks (rows and columns). */
  longformer(numBlocks: number, options: LongformerOptions): Tensor<Uint8Array> {
    blocks("longformer", numBlocks);
    checkOptionsObject("sparsePatterns.longformer", options, LONGFORMER_KEYS);
    const window = count("longformer", "window", options.window, 0);
    const globals = globalSet("longformer", options.globalBlocks, numBlocks);
    return build(
      numBlocks,
      (r, c) => Math.abs(r - c) <= window || globals.has(r) || globals.has(c),
    );
  },

  /**
   * BigBird: Longformer's window and global blocks, plus `randomBlocks` random key blocks per query
   * block, drawn from `seed` (default 0), so a seed gives the same layout every time.
   */
  bigbird(numBlocks: number, options: BigBirdOptions): Tensor<Uint8Array> {
    blocks("bigbird", numBlocks);
    checkOptionsObject("sparsePatterns.bigbird", options, BIGBIRD_KEYS);
    const window = count("bigbird", "window", options.window, 0);
    const randomBlocks = count("bigbird", "randomBlocks", options.randomBlocks, 0);
    const globals = globalSet("bigbird", options.globalBlocks, numBlocks);
    const seed = count("bigbird", "seed", options.seed ?? 0, 0);
    if (seed >= 2 ** 32) {
      throw new AttentionError(
        "BAD_OPTION",
        `sparsePatterns.bigbird: seed must be below 2^32, got ${seed}`,
      );
    }
    const layout = build(
      numBlocks,
      (r, c) => Math.abs(r - c) <= window || globals.has(r) || globals.has(c),
    );
    const next = mulberry32(seed);
    for (let r = 0; r < numBlocks; r++) {
      // Draw among the blocks not kept yet, without repetition.
      const free: number[] = [];
      for (let c = 0; c < numBlocks; c++) if (!layout.data[r * numBlocks + c]) free.push(c);
      for (let n = 0; n < randomBlocks && free.length > 0; n++) {
        const pick = Math.floor(next() * free.length);
        layout.data[r * numBlocks + free[pick]] = 1;
        free.splice(pick, 1);
      }
    }
    return layout;
  },
};
