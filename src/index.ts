// wasm-attention, default entry: the wasm is inlined as base64 and compiled by init(), so the package
// needs no file access, fetch or bundler configuration. No work at import time, no top-level await.
// The SIMD128 build is in this module; the other builds (relaxed SIMD, scalar, and the shared-memory
// variants the worker pool needs) are chunks imported on demand.

import simdWasmBase64 from "inline-wasm:simd";
import { createInit } from "./runtime/init.js";

export * from "./api.js";

function decode(base64: string): Uint8Array<ArrayBuffer> {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/**
 * Compiles and instantiates the kernels. With no `source`, uses the wasm bundled in the package
 * (works in Node, Deno, Bun, browsers and bundlers). A `WebAssembly.Module`, the bytes, a URL to
 * fetch, or a (promised) `Response` may be given instead; one that cannot be loaded rejects with
 * INIT_FAILED. Calling it again once it has completed resolves at once: the instance, and every
 * WasmTensor in it, stays (after `terminateThreads()`, a call with `{ threads }` starts a new pool
 * on that instance). Concurrent calls are described in the init section of docs/api.md.
 */
export const { init, initSync } = createInit({
  // The relaxed-SIMD build is a separate chunk, fetched only where the runtime validates it.
  load: async (build, threaded) => {
    if (build === "scalar") return decode((await import("inline-wasm:scalar")).default);
    if (build === "relaxed") {
      return decode(
        threaded
          ? (await import("inline-wasm:relaxed-threads")).default
          : (await import("inline-wasm:relaxed")).default,
      );
    }
    return decode(threaded ? (await import("inline-wasm:simd-threads")).default : simdWasmBase64);
  },
  loadSync: () => decode(simdWasmBase64),
});
