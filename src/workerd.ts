// wasm-attention for Cloudflare Workers (the `workerd` export condition). Workers refuse to compile
// WebAssembly from bytes at run time, so this entry imports the .wasm file as a module (Wrangler
// and Miniflare turn it into a WebAssembly.Module) and hands it to the same init core.

import wasmModule from "./attention.wasm";
import { createInit } from "./init.js";

export * from "./api.js";

/** Instantiates the packaged module; a `WebAssembly.Module` or bytes may be passed instead. */
export const { init, initSync } = createInit(() => wasmModule);
