import { defineConfig } from "vitest/config";
// @ts-expect-error: plain JavaScript build helper without type declarations
import { inlineWasmVitePlugin } from "./scripts/inline-wasm.mjs";

export default defineConfig({
  plugins: [inlineWasmVitePlugin(import.meta.dirname)],
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
