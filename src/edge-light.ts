// wasm-attention for Vercel Edge (the `edge-light` export condition), which, like Workers, refuses to
// compile WebAssembly from bytes: the .wasm is imported as a module with the `?module` suffix.

import wasmModule from "./attention.wasm?module";
import { createInit } from "./runtime/init.js";

export * from "./api.js";

/** Instantiates the packaged module; a `WebAssembly.Module` or bytes may be passed instead. */
export const { init, initSync } = createInit({
  // Only the SIMD128 module is imported: a module the runtime could not compile would stop the
  // whole Worker at startup. Pass the relaxed build's module to init() to use it.
  load: async () => wasmModule,
  loadSync: () => wasmModule,
});
