// Checks the package as it will be published: packs it once (without re-running the build), then
// publint and @arethetypeswrong/cli (ESM only) on the tarball, and a size budget: each .wasm at most
// 64 KiB; the minified JavaScript without the inlined wasm at most 40 KiB for the core an app using
// scaledDotProductAttention bundles, and 96 KiB for the whole API (multi-head attention and its
// backward pass, the family, the analysis helpers and the worker pool; most of it is argument checks
// whose messages name shapes). It also checks the registry metadata: no script runs when a consumer
// installs the package (npm warns about install scripts), LICENSE is packed, and every relative
// link and image of every packed markdown file (the README, docs/) resolves to a packed file.
// Run after `npm run build`; part of `npm test`.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: "inherit" });
const KiB = 1024;
const WASM_BUDGET = 64 * KiB;
// The core was 29.4 KiB before the hardening of issue 14 (arguments read once into checked
// snapshots, genuine typed arrays, checked `out`, the init rules, bounded sizes): 37.6 KiB after.
const CORE_BUDGET = 40 * KiB;
// The whole API: 67.3 KiB with training; 73.4 KiB once every op lists its option keys (unknown keys
// are errors naming the closest one), takes ONNX tensors and manages its thread pool; 90.1 KiB once
// every op and option is checked against hostile input (issue 14).
const JS_BUDGET = 96 * KiB;

const problems = [];
const INSTALL_SCRIPTS = ["preinstall", "install", "postinstall", "prepare"];
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
for (const script of INSTALL_SCRIPTS) {
  if (manifest.scripts?.[script] !== undefined) {
    problems.push(`package.json has a "${script}" script, which runs when a consumer installs it`);
  }
}

// The lock file must say what package.json says of the package itself, or `npm install` on a fresh
// clone rewrites it (a tracked file changed by the README's first command).
const lockRoot = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")).packages[""];
for (const field of [
  "name",
  "version",
  "license",
  "bin",
  "engines",
  "dependencies",
  "devDependencies",
]) {
  const [want, got] = [manifest[field], lockRoot[field]];
  const normal = (value) =>
    field === "bin" && value
      ? JSON.stringify(Object.entries(value).map(([k, v]) => [k, v.replace(/^\.\//, "")]))
      : JSON.stringify(value);
  if (normal(want) !== normal(got)) {
    problems.push(
      `package-lock.json says ${field} ${JSON.stringify(got)} but package.json ${JSON.stringify(want)}: run npm install`,
    );
  }
}

/** Relative link and image targets of a markdown text, outside code. */
function relativeTargets(markdown) {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
  return [...prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((m) => m[1])
    .filter((target) => !/^([a-z][a-z0-9+.-]*:|#|\/\/)/i.test(target));
}

const dir = mkdtempSync(join(tmpdir(), "wasm-attention-pack-"));
try {
  const packed = JSON.parse(
    execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }),
  );
  const tarball = join(dir, packed[0].filename);
  const files = new Set(packed[0].files.map((f) => f.path));
  if (!files.has("LICENSE")) problems.push("LICENSE is not in the packed files");
  for (const file of [...files].filter((f) => f.endsWith(".md"))) {
    for (const target of relativeTargets(readFileSync(join(root, file), "utf8"))) {
      const path = posix.normalize(posix.join(posix.dirname(file), target.replace(/[#?].*$/, "")));
      if (!files.has(path))
        problems.push(`${file} links to ${target}, which is not in the package`);
    }
  }
  run(bin("publint"), ["run", tarball, "--strict"]);
  run(bin("attw"), [tarball, "--profile", "esm-only"]);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

for (const file of readdirSync(join(root, "dist")).filter((f) => f.endsWith(".wasm"))) {
  const size = statSync(join(root, "dist", file)).size;
  console.log(
    `size: dist/${file} ${(size / KiB).toFixed(1)} KiB (budget ${WASM_BUDGET / KiB} KiB)`,
  );
  if (size > WASM_BUDGET) problems.push(`dist/${file} is ${size} bytes, over ${WASM_BUDGET}`);
}
// What an app pays: the core (init and scaledDotProductAttention, tree-shaken, as a bundler does
// with "sideEffects": false) and the whole API, minified, without the wasm.
for (const [what, contents, budget] of [
  [
    "core (init + scaledDotProductAttention)",
    "export { init, scaledDotProductAttention } from './workerd.js';",
    CORE_BUDGET,
  ],
  ["whole API", "export * from './workerd.js';", JS_BUDGET],
]) {
  const minified = await esbuild.build({
    stdin: { contents, resolveDir: join(root, "dist"), loader: "js" },
    bundle: true,
    minify: true,
    format: "esm",
    write: false,
    external: ["*.wasm"],
    logLevel: "silent",
  });
  const size = minified.outputFiles[0].contents.length;
  console.log(
    `size: JavaScript, ${what}, minified ${(size / KiB).toFixed(1)} KiB (budget ${budget / KiB} KiB)`,
  );
  if (size > budget)
    problems.push(`the minified JavaScript of the ${what} is ${size} bytes, over ${budget}`);
}
if (problems.length) {
  console.error(`package check failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
