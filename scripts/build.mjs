// Builds the package: the wasm kernels (asc), the JavaScript entry with the wasm inlined as base64
// (esbuild) and the type declarations (tsc). Usage: node scripts/build.mjs
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { inlineWasmPlugin } from "./inline-wasm.mjs";

// `import wasm from "./attention.wasm"` stays an import of the file next to the output.
const externalWasmModules = {
  name: "external-wasm-modules",
  setup(build) {
    build.onResolve({ filter: /\.wasm(\?module)?$/ }, (args) => ({
      path: args.path,
      external: true,
    }));
  },
};

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: "inherit" });

mkdirSync(join(root, "build"), { recursive: true });
for (const target of ["simd", "relaxed", "scalar", "simd-threads", "relaxed-threads"]) {
  run(bin("asc"), ["assembly/index.ts", "--config", "asconfig.json", "--target", target]);
}

rmSync(join(root, "dist"), { recursive: true, force: true });
// Three entries sharing one chunk: index.js (wasm inlined), workerd.js and edge-light.js (which
// import dist/attention.wasm as a module, the only way Workers and Vercel Edge accept wasm).
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["src/index.ts", "src/workerd.ts", "src/edge-light.ts"],
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  legalComments: "none",
  chunkNames: "core-[hash]",
  plugins: [inlineWasmPlugin(root), externalWasmModules],
  logLevel: "warning",
});
for (const file of [
  "attention.wasm",
  "attention-relaxed.wasm",
  "attention-scalar.wasm",
  "attention-threads.wasm",
  "attention-relaxed-threads.wasm",
]) {
  copyFileSync(join(root, "build", file), join(root, "dist", file));
}
// The command-line demo (with src/train, whose model it trains): Node only. Every import of the
// library's entry, from src/ or src/train/, becomes an import of dist/index.js next to it, so the
// demo shares the package's wasm instead of bundling a second copy.
const libraryEntry = join(root, "src", "index");
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["src/cli/cli.ts"],
  outfile: "dist/cli.js",
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node18",
  banner: { js: "#!/usr/bin/env node" },
  plugins: [
    {
      name: "library-external",
      setup: (b) =>
        b.onResolve({ filter: /^\.\.?\/(.*\/)?index(\.js|\.ts)?$/ }, (args) =>
          join(args.resolveDir, args.path).replace(/\.(js|ts)$/, "") === libraryEntry
            ? { path: "./index.js", external: true }
            : undefined,
        ),
    },
  ],
  logLevel: "warning",
});
run(bin("tsc"), ["-p", "tsconfig.build.json"]);
