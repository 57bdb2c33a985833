// Builds the package: the wasm kernels (asc), the JavaScript entry with the wasm inlined as base64
// (esbuild) and the type declarations (tsc). Usage: node scripts/build.mjs
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { inlineWasmPlugin } from "./inline-wasm.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: "inherit" });

mkdirSync(join(root, "build"), { recursive: true });
run(bin("asc"), ["assembly/index.ts", "--config", "asconfig.json", "--target", "simd"]);

rmSync(join(root, "dist"), { recursive: true, force: true });
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["src/index.ts"],
  outfile: "dist/index.js",
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2020",
  legalComments: "none",
  plugins: [inlineWasmPlugin(root)],
  logLevel: "warning",
});
run(bin("tsc"), ["-p", "tsconfig.build.json"]);
