// Block layouts for blockSparseAttention: the patterns of the Sparse Transformer (Child et al. 2019),
// Longformer (Beltagy et al. 2020) and BigBird (Zaheer et al. 2020), at block granularity. Each
// returns a uint8 tensor [numBlocks, numBlocks], 1 = query block r attends key block c. Pure
// JavaScript: they need no WASM and work before init().

import { AttentionError } from "../../core/errors.js";
import { optionKeys } from "../../core/option-keys.js";
import { optBoolean, optInteger, readOptions } from "../../core/option-values.js";
import { describe, MAX_DIM, type Tensor } from "../../core/tensor.js";
import { geometryOf, plainView, typedArrayName } from "../../core/typed-arrays.js";
import { mulberry32 } from "../../core/mulberry32.js";

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
  globalBlocks?: readonly number[] | Int32Array;
}
interface BigBirdOptions {
  window: number;
  globalBlocks?: readonly number[] | Int32Array;
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

// A required integer option in [min, max].
function count(op: string, name: string, x: unknown, min: number, max = MAX_DIM): number {
  const n = optInteger(`sparsePatterns.${op}`, name, x, min, max);
  if (n === undefined) {
    throw new AttentionError(
      "BAD_OPTION",
      `sparsePatterns.${op}: ${name} is missing (an integer in [${min}, ${max}])`,
    );
  }
  return n;
}

/**
 * The most blocks a pattern has: layouts are numBlocks² bytes, so this bounds one at 64 MiB
 * (8192 blocks of 64 tokens is a sequence of 524,288 tokens).
 */
export const MAX_BLOCKS = 8192;

function blocks(op: string, numBlocks: unknown): number {
  if (typeof numBlocks === "number" && Number.isInteger(numBlocks) && numBlocks > MAX_BLOCKS) {
    throw new AttentionError(
      "BAD_OPTION",
      `sparsePatterns.${op}: numBlocks = ${numBlocks} would make a layout of ${numBlocks}² bytes; ` +
        `at most ${MAX_BLOCKS} blocks are supported (use larger blocks)`,
    );
  }
  return count(op, "numBlocks", numBlocks, 1, MAX_BLOCKS);
}

function build(numBlocks: number, keep: (r: number, c: number) => boolean): Tensor<Uint8Array> {
  const data = new Uint8Array(numBlocks * numBlocks);
  for (let r = 0; r < numBlocks; r++)
    for (let c = 0; c < numBlocks; c++) data[r * numBlocks + c] = keep(r, c) ? 1 : 0;
  return { data, shape: [numBlocks, numBlocks] };
}

// At most this many entries in globalBlocks (duplicates are allowed, so it may exceed numBlocks).
const MAX_GLOBAL_ENTRIES = 1 << 20;

// The global blocks (an array or Int32Array of block indices), read once.
function globalSet(op: string, blocks: unknown, numBlocks: number): Set<number> {
  if (blocks === undefined) return new Set();
  const kind = typedArrayName(blocks);
  let entries: unknown[];
  if (kind === "Int32Array") {
    const g = geometryOf(blocks);
    if (g.detached) {
      throw new AttentionError(
        "BAD_OPTION",
        `sparsePatterns.${op}: globalBlocks' buffer is detached; pass a live array`,
      );
    }
    entries = Array.from(plainView("Int32Array", blocks as Int32Array));
  } else if (kind === undefined && Array.isArray(blocks)) {
    const length: unknown = blocks.length;
    entries = [];
    if (typeof length === "number" && length <= MAX_GLOBAL_ENTRIES) {
      for (let i = 0; i < length; i++)
        entries.push(Object.hasOwn(blocks, i) ? blocks[i] : undefined);
    }
  } else {
    throw new AttentionError(
      "BAD_OPTION",
      `sparsePatterns.${op}: globalBlocks must be an array or Int32Array of block indices, got ${describe(blocks)}`,
    );
  }
  if (
    entries.length > MAX_GLOBAL_ENTRIES ||
    (Array.isArray(blocks) && entries.length !== blocks.length)
  ) {
    throw new AttentionError(
      "BAD_OPTION",
      `sparsePatterns.${op}: globalBlocks holds more than ${MAX_GLOBAL_ENTRIES} entries`,
    );
  }
  const set = new Set<number>();
  for (const g of entries) {
    if (typeof g !== "number" || !Number.isInteger(g) || g < 0 || g >= numBlocks) {
      throw new AttentionError(
        "BAD_OPTION",
        `sparsePatterns.${op}: globalBlocks holds ${describe(g)}, not a block index in [0, ${numBlocks})`,
      );
    }
    set.add(g);
  }
  return set;
}

export const sparsePatterns = {
  /**
   * Sparse Transformer "strided": block r attends the previous `stride` blocks (itself included)
   * and every block a multiple of `stride` back. `causal` (default true) drops future blocks.
   * Pure JavaScript: works before init().
   */
  strided(numBlocks: number, options: StridedOptions): Tensor<Uint8Array> {
    blocks("strided", numBlocks);
    const o = readOptions<StridedOptions>("sparsePatterns.strided", options, STRIDED_KEYS);
    const stride = count("strided", "stride", o.stride, 1);
    const causal = optBoolean("sparsePatterns.strided", "causal", o.causal) ?? true;
    return build(numBlocks, (r, c) => {
      if (causal && c > r) return false;
      const d = Math.abs(r - c);
      return d < stride || d % stride === 0;
    });
  },

  /**
   * Sparse Transformer "fixed": blocks attend within their chunk of `stride` blocks, and every block
   * attends the last `summary` (default 1) blocks of each chunk. `causal` (default true).
   * Pure JavaScript: works before init().
   */
  fixed(numBlocks: number, options: FixedOptions): Tensor<Uint8Array> {
    blocks("fixed", numBlocks);
    const o = readOptions<FixedOptions>("sparsePatterns.fixed", options, FIXED_KEYS);
    const stride = count("fixed", "stride", o.stride, 1);
    const summary = count("fixed", "summary", o.summary ?? 1, 1);
    if (summary > stride) {
      throw new AttentionError(
        "BAD_OPTION",
        `sparsePatterns.fixed: summary ${summary} is above stride ${stride}`,
      );
    }
    const causal = optBoolean("sparsePatterns.fixed", "causal", o.causal) ?? true;
    return build(numBlocks, (r, c) => {
      if (causal && c > r) return false;
      return Math.floor(r / stride) === Math.floor(c / stride) || c % stride >= stride - summary;
    });
  },

  /**
   * Longformer: a sliding window of `window` blocks on each side, plus global blocks (rows and
   * columns). Pure JavaScript: works before init().
   */
  longformer(numBlocks: number, options: LongformerOptions): Tensor<Uint8Array> {
    blocks("longformer", numBlocks);
    const o = readOptions<LongformerOptions>("sparsePatterns.longformer", options, LONGFORMER_KEYS);
    const window = count("longformer", "window", o.window, 0);
    const globals = globalSet("longformer", o.globalBlocks, numBlocks);
    return build(
      numBlocks,
      (r, c) => Math.abs(r - c) <= window || globals.has(r) || globals.has(c),
    );
  },

  /**
   * BigBird: Longformer's window and global blocks, plus `randomBlocks` random key blocks per query
   * block, drawn from `seed` (default 0), so a seed gives the same layout every time.
   * Pure JavaScript: works before init().
   */
  bigbird(numBlocks: number, options: BigBirdOptions): Tensor<Uint8Array> {
    blocks("bigbird", numBlocks);
    const o = readOptions<BigBirdOptions>("sparsePatterns.bigbird", options, BIGBIRD_KEYS);
    const window = count("bigbird", "window", o.window, 0);
    const randomBlocks = count("bigbird", "randomBlocks", o.randomBlocks, 0);
    const globals = globalSet("bigbird", o.globalBlocks, numBlocks);
    const seed = count("bigbird", "seed", o.seed ?? 0, 0, 2 ** 32 - 1);
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
