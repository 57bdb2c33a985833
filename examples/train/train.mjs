// Entry of `npm run train`: bundles examples/train/main.ts with the library's TypeScript sources
// (esbuild, the wasm inlined as for the browser page) into build/train/main.mjs and runs it.
// Arguments pass through: node examples/train/train.mjs --steps 300 --seed 2
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import { inlineWasmPlugin } from "../../scripts/inline-wasm.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const outfile = join(root, "build", "train", "main.mjs");
if (!existsSync(join(root, "build", "attention.wasm"))) {
  console.error("examples/train: build/attention.wasm is missing; run `npm run build` first");
  process.exit(1);
}
mkdirSync(dirname(outfile), { recursive: true });
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["examples/train/main.ts"],
  outfile,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node18",
  plugins: [inlineWasmPlugin(root)],
  logLevel: "warning",
});
await import(pathToFileURL(outfile).href);
