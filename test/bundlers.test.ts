// A tiny app importing the package (examples/bundler-app) bundled with esbuild and with Vite, served
// from localhost and run in every browser engine here: headless Chromium (Debian's chromium,
// through Playwright), Firefox ESR and WebKitGTK (started on the page by scripts/browsers.mjs; the
// page reports its result to the server). The default entry's inlined wasm must survive both
// bundlers in all three. Included only where /usr/bin/chromium exists; Firefox and WebKit where
// they are installed.
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
// @ts-expect-error: plain JavaScript build helper without type declarations
import { browserAvailable, launchBrowser } from "../scripts/browsers.mjs";

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

// Served after the app's own page: once the app has written its result (document.title "done"),
// the page sends #result to the server, for the browsers this test cannot read a page from.
const REPORTER = `<script type="module">
const wait = () => document.title === "done"
  ? fetch("/result", { method: "POST", body: document.getElementById("result").textContent })
  : setTimeout(wait, 20);
wait();
</script>`;

interface Served {
  server: Server;
  url: string;
  /** The text the page POSTed to /result. */
  result: Promise<string>;
}

function serve(dir: string): Promise<Served> {
  const types: Record<string, string> = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
  };
  let report: (text: string) => void = () => {};
  const result = new Promise<string>((done) => (report = done));
  const server = createServer((req, res) => {
    if (req.method === "POST" && req.url === "/result") {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        report(body);
        res.end();
      });
      return;
    }
    const path = join(dir, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
    try {
      const file = path.endsWith("/") ? join(path, "index.html") : path;
      const body = readFileSync(file);
      res.writeHead(200, { "content-type": types[extname(file)] ?? "text/html" });
      res.end(extname(file) === ".html" ? body.toString() + REPORTER : body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((done) =>
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      done({ server, url: `http://127.0.0.1:${port}/`, result });
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

async function runLaunched(name: "firefox" | "webkit", dir: string): Promise<number[]> {
  const { server, url, result } = await serve(dir);
  const launched = (await launchBrowser(name, url)) as { close(): Promise<void> };
  try {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${name} reported no result in 60 s`)), 60_000),
    );
    const text = await Promise.race([result, timeout]);
    return text.split(",").map(Number);
  } finally {
    await launched.close();
    server.close();
  }
}

const run: Record<string, (dir: string) => Promise<number[]>> = {
  chromium: runInChromium,
  ...(browserAvailable("firefox") ? { firefox: (dir: string) => runLaunched("firefox", dir) } : {}),
  ...(browserAvailable("webkit") ? { webkit: (dir: string) => runLaunched("webkit", dir) } : {}),
};
const bundles: Record<string, string> = {};

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
  bundles.esbuild = join(scratch, "esbuild-out");
  await esbuild.build({
    absWorkingDir: join(scratch, "app"),
    entryPoints: ["main.js"],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outdir: bundles.esbuild,
    logLevel: "silent",
  });
  cpSync(join(scratch, "app", "index.html"), join(bundles.esbuild, "index.html"));
  bundles.Vite = join(scratch, "vite-out");
  await viteBuild({
    root: join(scratch, "app"),
    logLevel: "silent",
    configFile: false,
    build: { outDir: bundles.Vite, target: "es2022", emptyOutDir: true },
  });
});

afterAll(async () => {
  await browser?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe.each(Object.keys(run))("a bundled app in %s", (engine) => {
  it.each(["esbuild", "Vite"])("works bundled with %s", async (bundler) => {
    const got = await run[engine](bundles[bundler]);
    expected().forEach((x, i) => expect(got[i]).toBeCloseTo(x, 5));
  });
});
