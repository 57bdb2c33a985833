// `npm run page`: builds examples/browser (esbuild, the wasm inlined) into build/page and serves it
// on http://127.0.0.1:<port>/ (default 8377, or --port n). Also exports buildPage/servePage for the
// Chromium test (test/page.test.ts).
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { inlineWasmPlugin } from "./inline-wasm.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Bundles a browser entry (path from the repository root), the wasm inlined, into `outfile`. */
export async function bundleForBrowser(entry, outfile) {
  mkdirSync(dirname(outfile), { recursive: true });
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    plugins: [inlineWasmPlugin(root)],
    logLevel: "warning",
  });
}

/** Builds the page into `outdir` (default build/page); returns the directory. */
export async function buildPage(outdir = join(root, "build", "page")) {
  await bundleForBrowser("examples/browser/page.ts", join(outdir, "page.js"));
  copyFileSync(join(root, "examples", "browser", "index.html"), join(outdir, "index.html"));
  return outdir;
}

const TYPES = { ".html": "text/html", ".js": "text/javascript" };

/** Serves `dir` on 127.0.0.1 (cross-origin isolated, so threads could run); resolves the URL. */
export function servePage(dir, port = 0) {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    try {
      const body = readFileSync(join(dir, path === "/" ? "index.html" : path));
      res.writeHead(200, {
        "content-type": TYPES[extname(path) || ".html"] ?? "application/octet-stream",
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-embedder-policy": "require-corp",
      });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) =>
    server.listen(port, "127.0.0.1", () =>
      resolve({ server, url: `http://127.0.0.1:${server.address().port}/` }),
    ),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--port");
  const port = i > 0 ? Number(process.argv[i + 1]) : 8377;
  const { url } = await servePage(await buildPage(), port);
  console.log(`wasm-attention page: ${url}  (Ctrl-C to stop)`);
}
