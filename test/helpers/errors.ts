// Helpers of the error suites: wrong input typed as anything, the AttentionError a call throws, and
// a snapshot of WASM memory to prove a failed call touched nothing.
import { expect } from "vitest";
import { AttentionError } from "../../src/index";
import { kernels } from "../../src/runtime/runtime";

/** Anything, typed as whatever the API wants: the point is what it does with wrong input. */
export function bad<T>(value: unknown): T {
  return value as T;
}

/** The AttentionError `fn` throws (the assertion fails if it throws anything else, or nothing). */
export function thrown(fn: () => unknown): AttentionError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected an AttentionError, got ${String(err)}`).toBeInstanceOf(AttentionError);
  return err as AttentionError;
}

/** WASM memory as seen from outside: bytes in use, size, and a copy of every byte. */
export function snapshot(): { inUse: number; size: number; bytes: Uint8Array } {
  const { workspace, exports } = kernels("test");
  return {
    inUse: workspace.bytesInUse,
    size: exports.memory.buffer.byteLength,
    bytes: new Uint8Array(exports.memory.buffer).slice(),
  };
}

/** Memory is exactly as in `before`: nothing allocated, grown or written. */
export function expectUntouched(before: ReturnType<typeof snapshot>): void {
  const now = snapshot();
  expect(now.inUse, "bytesInUse").toBe(before.inUse);
  expect(now.size, "memory size").toBe(before.size);
  if (now.bytes.length !== before.bytes.length) return;
  let i = 0;
  while (i < now.bytes.length && now.bytes[i] === before.bytes[i]) i++;
  if (i < now.bytes.length) expect.fail(`WASM memory was written (first changed byte at ${i})`);
}
