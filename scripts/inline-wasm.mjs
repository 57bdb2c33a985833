// Resolves `import base64 from "inline-wasm:<target>"` to the base64 text of a wasm build: "simd"
// (build/attention.wasm) or "relaxed" (build/attention-relaxed.wasm). Used by the esbuild build and by vitest, so tests run the same bytes users get.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const FILES = {
  simd: "build/attention.wasm",
  relaxed: "build/attention-relaxed.wasm",
  scalar: "build/attention-scalar.wasm",
  "simd-threads": "build/attention-threads.wasm",
  "relaxed-threads": "build/attention-relaxed-threads.wasm",
};

export function wasmBase64(root, target) {
  const file = FILES[target];
  if (!file) throw new Error(`inline-wasm: unknown target "${target}"`);
  return readFileSync(join(root, file)).toString("base64");
}

/** esbuild plugin. */
export function inlineWasmPlugin(root) {
  return {
    name: "inline-wasm",
    setup(build) {
      build.onResolve({ filter: /^inline-wasm:/ }, (args) => ({
        path: args.path,
        namespace: "inline-wasm",
      }));
      build.onLoad({ filter: /.*/, namespace: "inline-wasm" }, (args) => ({
        contents: `export default ${JSON.stringify(wasmBase64(root, args.path.slice("inline-wasm:".length)))};`,
        loader: "js",
      }));
    },
  };
}

/** Vite/vitest plugin. */
export function inlineWasmVitePlugin(root) {
  const prefix = "\0inline-wasm:";
  return {
    name: "inline-wasm",
    resolveId(id) {
      return id.startsWith("inline-wasm:") ? "\0" + id : null;
    },
    load(id) {
      if (!id.startsWith(prefix)) return null;
      return `export default ${JSON.stringify(wasmBase64(root, id.slice(prefix.length)))};`;
    },
  };
}
