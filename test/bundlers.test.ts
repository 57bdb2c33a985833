// A tiny app importing the package (examples/bundler-app) bundled with esbuild and with Vite, served
// from localhost and run in headless Chromium (Debian's chromium, through Playwright): the default
// entry's inlined wasm must survive both bundlers. Included only where /usr/bin/chromium exists.
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, resolve } from "node:path";
import * as esbuild from "esbuild";
import { chromium, type Browser } from "playwright";
import { build as viteBuild } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
let scratch = "";
let browser: Browser;

// Causal attention of the app's fixed data in float64: q = k = [[1,0],[0,1],[1,1]], v = [[1,2],[3,4],[5,6]].
function expected(): number[] {
  const q = [
    [1, 0],
    [0, 1],
    [1, 1],
  ];
  const v = [
    [1, 2],
    [3, 4],
    [5, 6],
  ];
  const out: number[] = [];
  for (let i = 0; i < 3; i++) {
    const s = q.slice(0, i + 1).map((k) => (q[i][0] * k[0] + q[i][1] * k[1]) / Math.SQRT2);
    const e = s.map((x) => Math.exp(x - Math.max(...s)));
    const l = e.reduce((a, b) => a + b, 0);
    for (let c = 0; c < 2; c++) out.push(e.reduce((a, p, j) => a + (p / l) * v[j][c], 0));
  }
  return out;
}

function serve(dir: string): Promise<{ server: Server; url: string }> {
  const types: Record<string, string> = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
  };
  const server = createServer((req, res) => {
    const path = join(dir, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
    try {
      const body = readFileSync(path.endsWith("/") ? join(path, "index.html") : path);
      res.writeHead(200, { "content-type": types[extname(path)] ?? "text/html" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((done) =>
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      done({ server, url: `http://127.0.0.1:${port}/` });
    }),
  );
}

async function runInChromium(dir: string): Promise<number[]> {
  const { server, url } = await serve(dir);
  const page = await browser.newPage();
  try {
    await page.goto(url);
    await page.waitForFunction(() => document.title === "done", undefined, { timeout: 30_000 });
    const text = (await page.textContent("#result")) ?? "";
    return text.split(",").map(Number);
  } finally {
    await page.close();
    server.close();
  }
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "wasm-attention-bundlers-"));
  cpSync(join(root, "examples", "bundler-app"), join(scratch, "app"), { recursive: true });
  mkdirSync(join(scratch, "app", "node_modules"));
  symlinkSync(root, join(scratch, "app", "node_modules", "wasm-attention"), "dir");
  writeFileSync(join(scratch, "app", "package.json"), JSON.stringify({ type: "module" }));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});

afterAll(async () => {
  await browser?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("a bundled app in Chromium", () => {
  it("works bundled with esbuild", async () => {
    const out = join(scratch, "esbuild-out");
    await esbuild.build({
      absWorkingDir: join(scratch, "app"),
      entryPoints: ["main.js"],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      outdir: out,
      logLevel: "silent",
    });
    cpSync(join(scratch, "app", "index.html"), join(out, "index.html"));
    const got = await runInChromium(out);
    expected().forEach((x, i) => expect(got[i]).toBeCloseTo(x, 5));
  });

  it("works bundled with Vite", async () => {
    const out = join(scratch, "vite-out");
    await viteBuild({
      root: join(scratch, "app"),
      logLevel: "silent",
      configFile: false,
      build: { outDir: out, target: "es2022", emptyOutDir: true },
    });
    const got = await runInChromium(out);
    expected().forEach((x, i) => expect(got[i]).toBeCloseTo(x, 5));
  });
});
