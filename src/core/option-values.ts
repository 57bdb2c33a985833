// Reading an options argument: once, into a snapshot (so getters cannot answer differently later),
// with each value checked for its type and for what float32 can hold. The kernels compute in
// float32: a finite option such as scale = 1e39 would become Infinity there and NaN the output, and
// softcap = 1e-46 would become 0 and silently turn softcapping off.

import { AttentionError } from "./errors.js";
import { checkKnownKeys } from "./option-keys.js";
import { describe } from "./tensor.js";

/**
 * A snapshot of an options argument: `undefined` and `null` mean no options; anything else must be
 * a plain object whose own keys are all in `valid` (BAD_OPTION naming the closest key otherwise).
 * Each value is read once; a value of `undefined` or `null` is the same as leaving the key out.
 */
export function readOptions<T extends object>(
  op: string,
  options: unknown,
  valid: readonly string[],
  what = "options",
): Partial<T> {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object" || Array.isArray(options) || ArrayBuffer.isView(options)) {
    throw new AttentionError(
      "BAD_OPTION",
      `${op}: ${what} must be an object, got ${describe(options)}`,
    );
  }
  checkKnownKeys(op, what, options, valid);
  return readKeys(op, what, options, Object.keys(options)) as Partial<T>;
}

/**
 * A snapshot of `keys` of `object`, each read once (a getter that throws is BAD_OPTION); a value of
 * `undefined` or `null` is left out.
 */
export function readKeys(
  op: string,
  what: string,
  object: object,
  keys: readonly string[],
): Record<string, unknown> {
  const snapshot: Record<string, unknown> = {};
  for (const key of keys) {
    let value: unknown;
    try {
      value = (object as Record<string, unknown>)[key];
    } catch (err) {
      throw new AttentionError(
        "BAD_OPTION",
        `${op}: ${what}.${key} cannot be read (${err instanceof Error ? err.message : String(err)})`,
      );
    }
    if (value !== undefined && value !== null) snapshot[key] = value;
  }
  return snapshot;
}

function badOption(op: string, name: string, want: string, value: unknown): AttentionError {
  return new AttentionError("BAD_OPTION", `${op}: ${name} must be ${want}, got ${describe(value)}`);
}

/** A boolean option: undefined stays undefined; anything but true or false is BAD_OPTION. */
export function optBoolean(op: string, name: string, value: unknown): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") throw badOption(op, name, "true or false", value);
  return value;
}

/** Largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

export interface Float32Bounds {
  /** The value must be > 0 (and not round to 0 in float32). */
  positive?: boolean;
  /** The kernels divide by it: its reciprocal must be finite in float32 too. */
  divisor?: boolean;
  /** Inclusive bounds, when the option has them. */
  min?: number;
  max?: number;
}

/**
 * A number option the kernels use as a float32: finite, and finite in float32 (|x| ≤ 3.4e38);
 * with `positive`, above 0 even after rounding to float32; with `divisor`, its reciprocal finite in
 * float32 too. BAD_OPTION names the range otherwise.
 */
export function optFloat32(
  op: string,
  name: string,
  value: unknown,
  bounds: Float32Bounds = {},
): number | undefined {
  if (value === undefined) return undefined;
  const { positive = false, divisor = false, min = -FLOAT32_MAX, max = FLOAT32_MAX } = bounds;
  const f = typeof value === "number" ? Math.fround(value) : NaN;
  const ok =
    Number.isFinite(f) &&
    (value as number) >= min &&
    (value as number) <= max &&
    (!positive || f > 0) &&
    (!divisor || (f !== 0 && Number.isFinite(Math.fround(1 / f))));
  if (!ok) {
    const range = positive
      ? `a positive number a float32 can hold (${divisor ? "3e-38" : "1.4e-45"} to 3.4e38)`
      : min > -FLOAT32_MAX || max < FLOAT32_MAX
        ? `a number in [${min}, ${max}]`
        : "a finite number a float32 can hold (|x| <= 3.4e38)";
    throw badOption(op, name, range, value);
  }
  return value as number;
}

/** An integer option in [min, max]. */
export function optInteger(
  op: string,
  name: string,
  value: unknown,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw badOption(op, name, `an integer in [${min}, ${max}]`, value);
  }
  return value;
}
