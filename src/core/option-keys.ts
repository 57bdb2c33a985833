// Unknown option keys. Each op declares the keys of its options once, typed against its options
// interface (so the compiler rejects a list that misses or adds a key), and rejects any other key
// with a message naming the closest valid one: a misspelled option must not be silently ignored.

import { AttentionError } from "./errors.js";

/** One `true` per key of T, optional keys included: a missing or extra key is a compile error. */
export type KeysOf<T> = { readonly [K in keyof T]-?: true };

/** The keys of an options type as a runtime list, e.g. `optionKeys<SoftmaxOptions>({ axis: true })`. */
export function optionKeys<T>(keys: KeysOf<T>): readonly string[] {
  return Object.freeze(Object.keys(keys));
}

/**
 * Throws BAD_OPTION when `value` (an options object, or a nested one such as `weights`, named by
 * `what`) has an own key that is not in `valid`.
 */
export function checkKnownKeys(
  op: string,
  what: string,
  value: object,
  valid: readonly string[],
): void {
  for (const key of Object.keys(value)) {
    if (!valid.includes(key)) throw unknownKey(op, what, key, valid);
  }
}

/**
 * The check of parameter bags (the `params` of the family ops), which users and examples share
 * between ops (one object holding wq, wk, va and w): other keys pass, but a key that looks like a
 * misspelling of a valid key the bag lacks (`bais` for `bias`) is a BAD_OPTION error.
 */
export function checkMisspelledKeys(
  op: string,
  what: string,
  value: object,
  valid: readonly string[],
): void {
  for (const key of Object.keys(value)) {
    if (valid.includes(key)) continue;
    const closest = closestKey(key, valid);
    if (closest !== undefined && !Object.hasOwn(value, closest)) {
      throw unknownKey(op, what, key, valid);
    }
  }
}

function unknownKey(
  op: string,
  what: string,
  key: string,
  valid: readonly string[],
): AttentionError {
  const closest = closestKey(key, valid);
  const hint = closest === undefined ? "" : ` did you mean '${closest}'?`;
  return new AttentionError(
    "BAD_OPTION",
    `${op}: unknown key '${key}' in ${what};${hint} valid keys: ${valid.join(", ")}`,
  );
}

/**
 * The valid key nearest to `key`, compared case-insensitively and ignoring '_' and '-' (so
 * `need_weights` finds `needWeights`), by edit distance with transpositions (`casual` → `causal`
 * is one edit); undefined when none is near enough to be a plausible misspelling.
 */
export function closestKey(key: string, valid: readonly string[]): string | undefined {
  const normal = (s: string): string => s.toLowerCase().replace(/[_-]/g, "");
  const wanted = normal(key);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of valid) {
    const other = normal(candidate);
    const contained =
      Math.min(wanted.length, other.length) >= 3 &&
      (other.includes(wanted) || wanted.includes(other));
    const distance = Math.min(editDistance(wanted, other), contained ? 0.5 : Infinity);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return bestDistance <= Math.max(2, Math.floor(wanted.length / 3)) ? best : undefined;
}

/** Levenshtein distance where swapping two adjacent characters also costs one edit. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = Array.from({ length: rows * cols }, (_, i) =>
    i < cols ? i : i % cols === 0 ? i / cols : 0,
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        d[(i - 1) * cols + j] + 1,
        d[i * cols + j - 1] + 1,
        d[(i - 1) * cols + j - 1] + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[(i - 2) * cols + j - 2] + 1);
      }
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1];
}
