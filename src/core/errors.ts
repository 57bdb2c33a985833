/** Machine-readable reason of an {@link AttentionError}. */
export type AttentionErrorCode =
  | "SHAPE_MISMATCH"
  | "BAD_DTYPE"
  | "BAD_OPTION"
  | "NOT_INITIALIZED"
  | "OUT_OF_MEMORY"
  | "INIT_FAILED"
  | "DISPOSED"
  | "CACHE_FULL"
  | "WORKER_FAILED";

/**
 * The one error type of wasm-attention. Every op validates its arguments before it touches WASM
 * memory and throws this, naming the function, the argument, what it got and what it expected.
 * A failed call leaves the module usable and leaks no WASM memory.
 */
export class AttentionError extends Error {
  readonly code: AttentionErrorCode;
  constructor(code: AttentionErrorCode, message: string) {
    super(message);
    this.name = "AttentionError";
    this.code = code;
  }
}

/** Formats a shape as `[2,3,4]` for error messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}
