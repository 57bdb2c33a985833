// init() / initSync(): where the wasm comes from. The default entry carries the SIMD build inline as
// base64 and compiles it only when init() runs: no work at import time, no top-level await.

import simdWasmBase64 from "inline-wasm:simd";
import { AttentionError } from "./errors";
import {
  activate,
  checkInitOptions,
  compileAsync,
  compileSync,
  isInitialized,
  type InitOptions,
  type WasmSource,
} from "./runtime";
import { describe } from "./tensor";

let pending: Promise<void> | undefined;

/**
 * Compiles and instantiates the kernels. With no `source`, uses the wasm bundled in the package
 * (works in Node, Deno, Bun, browsers and bundlers). A `WebAssembly.Module`, the bytes, a URL to
 * fetch, or a (promised) `Response` may be given instead. Calling it again returns the first call's
 * promise: the instance, and every WasmTensor in it, stays.
 */
export function init(source?: WasmSource, options?: InitOptions): Promise<void> {
  if (pending) return pending;
  pending = (async () => {
    checkInitOptions(options);
    const module = await toModule(source);
    activate(module);
  })();
  pending.catch(() => {
    pending = undefined;
  });
  return pending;
}

/**
 * Synchronous init from a `WebAssembly.Module` or the wasm bytes (the package's `./wasm/*` files).
 * Browsers refuse to compile modules above 4 KiB synchronously on the main thread; use init() there.
 */
export function initSync(source?: WebAssembly.Module | BufferSource, options?: InitOptions): void {
  if (isInitialized()) return;
  checkInitOptions(options);
  if (
    source !== undefined &&
    !(source instanceof WebAssembly.Module) &&
    !(source instanceof ArrayBuffer) &&
    !ArrayBuffer.isView(source)
  ) {
    throw badSource(source);
  }
  activate(source instanceof WebAssembly.Module ? source : compileSync(source ?? inlineBytes()));
  pending = Promise.resolve();
}

async function toModule(source: WasmSource | undefined): Promise<WebAssembly.Module> {
  if (source === undefined) return compileAsync(inlineBytes());
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return compileAsync(source);
  if (typeof source === "string" || source instanceof URL) {
    if (typeof fetch !== "function") throw badSource(source);
    return fromResponse(fetch(source));
  }
  if (typeof (source as PromiseLike<Response>).then === "function" || isResponse(source)) {
    return fromResponse(source as Response | PromiseLike<Response>);
  }
  throw badSource(source);
}

async function fromResponse(
  response: Response | PromiseLike<Response>,
): Promise<WebAssembly.Module> {
  const r = await response;
  if (!isResponse(r)) throw badSource(r);
  if (!r.ok)
    throw new AttentionError(
      "INIT_FAILED",
      `init: fetching the wasm failed: HTTP ${r.status} ${r.statusText}`,
    );
  return compileAsync(await r.arrayBuffer());
}

function isResponse(x: unknown): x is Response {
  return typeof x === "object" && x !== null && typeof (x as Response).arrayBuffer === "function";
}

function badSource(source: unknown): AttentionError {
  return new AttentionError(
    "BAD_OPTION",
    `init: source must be a WebAssembly.Module, bytes (ArrayBuffer or view), a URL, or a Response, got ${describe(source)}`,
  );
}

function inlineBytes(): Uint8Array<ArrayBuffer> {
  const text = atob(simdWasmBase64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
