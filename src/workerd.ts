// wasm-attention for Cloudflare Workers (the `workerd` export condition). Workers refuse to compile
// WebAssembly from bytes at run time, so this entry imports the .wasm file as a module (Wrangler
// and Miniflare turn it into a WebAssembly.Module) and hands it to the same init core.

import wasmModule from "./attention.wasm";
import { createInit } from "./runtime/init.js";

export * from "./api.js";

/** Instantiates the packaged module; a `WebAssembly.Module` or bytes may be passed instead. */
export const { init, initSync } = createInit({
  // Only the SIMD128 module is imported: a module the runtime could not compile would stop the
  // whole Worker at startup. Pass the relaxed build's module to init() to use it.
  load: async () => wasmModule,
  loadSync: () => wasmModule,
});
