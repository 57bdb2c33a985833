// Golden cases (test/fixtures/cases.json, a verbatim copy of shared/conformance/cases.json) and the
// comparison used by every numeric test: |actual − expected| <= atol + rtol·|expected| elementwise.

import { expect } from "vitest";
import type { Tensor } from "../../src/index";
// Imported, not read from disk, so that the same suites run in Node and in the browser.
import casesJson from "../fixtures/cases.json";

/** A tensor as stored in cases.json: little-endian row-major bytes, base64. */
export interface EncodedTensor {
  shape: number[];
  dtype: "float32" | "uint8";
  data_b64: string;
}

export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface GoldenCase {
  name: string;
  op: string;
  description?: string;
  params: Record<string, unknown>;
  tolerance: Tolerance;
  inputs: Record<string, EncodedTensor>;
  outputs: Record<string, EncodedTensor>;
}

/** Anything with numeric data and a shape: a Tensor, a reference result, a decoded golden tensor. */
export interface TensorLike {
  data: ArrayLike<number>;
  shape: readonly number[];
}

let cached: GoldenCase[] | undefined;

/** Every golden case, in file order. */
export function loadCases(): GoldenCase[] {
  if (!cached) {
    const parsed: unknown = casesJson;
    if (!Array.isArray(parsed)) throw new Error("cases.json: not a JSON array");
    cached = parsed as GoldenCase[];
  }
  return cached;
}

/** Decodes a stored tensor into a fresh, aligned Float32Array (float32) or Uint8Array (uint8). */
export function decodeTensor(t: EncodedTensor): Tensor<Float32Array> | Tensor<Uint8Array> {
  const binary = atob(t.data_b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  const itemSize = t.dtype === "uint8" ? 1 : 4;
  const length = t.shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== length * itemSize) {
    throw new Error(
      `cases.json: tensor of shape [${t.shape.join(",")}] (${t.dtype}) has ${bytes.length} bytes, expected ${length * itemSize}`,
    );
  }
  const buffer = bytes.buffer;
  if (t.dtype === "uint8") return { data: new Uint8Array(buffer), shape: t.shape };
  const view = new DataView(buffer);
  const data = new Float32Array(length);
  for (let i = 0; i < length; i++) data[i] = view.getFloat32(4 * i, true);
  return { data, shape: t.shape };
}

export function decodeFloat(t: EncodedTensor): Tensor<Float32Array> {
  const decoded = decodeTensor(t);
  if (!(decoded.data instanceof Float32Array)) throw new Error("expected a float32 tensor");
  return decoded as Tensor<Float32Array>;
}

/** Multi-index of flat index `i` in `shape`, for messages. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    index[d] = shape[d] === 0 ? 0 : i % shape[d];
    i = shape[d] === 0 ? 0 : Math.floor(i / shape[d]);
  }
  return index;
}

/**
 * The first reason `actual` does not match `expected` (shape, length, NaN, worst element beyond
 * atol + rtol·|expected|), or null when it matches. Equal values (including equal infinities) match;
 * a NaN in `actual` never does.
 */
export function closeProblem(
  actual: TensorLike | undefined,
  expected: TensorLike,
  tol: Tolerance,
): string | null {
  if (!actual) return "missing";
  const shapeA = Array.from(actual.shape);
  const shapeE = Array.from(expected.shape);
  if (shapeA.join(",") !== shapeE.join(",")) {
    return `shape [${shapeA.join(",")}] != expected [${shapeE.join(",")}]`;
  }
  if (actual.data.length !== expected.data.length) {
    return `data length ${actual.data.length} != expected ${expected.data.length}`;
  }
  let worst = -1;
  let worstRatio = 0;
  let failures = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i];
    const e = expected.data[i];
    if (a === e) continue;
    const err = Math.abs(a - e);
    const bound = tol.atol + tol.rtol * Math.abs(e);
    if (!(err <= bound)) {
      failures++;
      const ratio = Number.isNaN(err) || !Number.isFinite(err) ? Infinity : err / bound;
      if (worst < 0 || ratio > worstRatio) {
        worst = i;
        worstRatio = ratio;
      }
    }
  }
  if (worst < 0) return null;
  const at = unravel(worst, expected.shape);
  return (
    `${failures} of ${expected.data.length} elements out of tolerance (atol ${tol.atol}, rtol ${tol.rtol}); ` +
    `worst: element ${worst} [${at.join(",")}] got ${actual.data[worst]} want ${expected.data[worst]} ` +
    `(${Number.isFinite(worstRatio) ? worstRatio.toFixed(2) : "∞"}× tolerance)`
  );
}

/** Asserts closeness (see closeProblem); `what` names the tensor in the failure message. */
export function expectClose(
  actual: TensorLike | undefined,
  expected: TensorLike,
  tol: Tolerance,
  what = "tensor",
): void {
  const problem = closeProblem(actual, expected, tol);
  if (problem !== null) expect.fail(`${what}: ${problem}`);
}
