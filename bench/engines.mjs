// Benchmark: the same cases (bench/engines/cases.mjs: SDPA, MultiHeadAttention at N = 128 and 512,
// a decode step) in every engine here, one after the other, never two at once: Node 20, 22 and 24
// (scripts/nodes.mjs), Deno and Bun (devDependencies), Chromium (Playwright), Firefox and WebKit
// (scripts/browsers.mjs; their page posts its results back to the server here). One thread; each
// engine runs the build init() picks for it. Prints a Markdown table for docs/performance.md.
//
//   npm run bench:engines                         build, then every engine
//   node bench/engines.mjs --quick                few repetitions: checks the plumbing, no numbers
//   node bench/engines.mjs --engines node22,firefox
//   node bench/engines.mjs --json results.json    also writes every engine's raw results
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import os from "node:os";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FIREFOX, MINIBROWSER, browserAvailable, launchBrowser } from "../scripts/browsers.mjs";
import { relaxedSimdFlags } from "../scripts/node-flags.mjs";
import { NODE_VERSIONS, nodeBinary } from "../scripts/nodes.mjs";
import { bundleForBrowser } from "../scripts/page.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const RUNNER = join(root, "bench", "engines", "run.mjs");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const MARKER = "@@engines ";

const ENGINES = {
  node20: { label: "Node 20", kind: "node", major: 20 },
  node22: { label: "Node 22", kind: "node", major: 22 },
  node24: { label: "Node 24", kind: "node", major: 24 },
  deno: { label: "Deno", kind: "cli" },
  bun: { label: "Bun", kind: "cli" },
  chromium: { label: "Chromium", kind: "browser" },
  firefox: { label: "Firefox", kind: "browser" },
  webkit: { label: "WebKit", kind: "browser" },
};

const CASES = [
  { id: "sdpa", label: "SDPA B1 H12 N512 D64, GFLOP/s" },
  { id: "mha128", label: "MHA E768 H12 N128 (with projections), GFLOP/s" },
  { id: "mha512", label: "MHA E768 H12 N512 (with projections), GFLOP/s" },
  { id: "decode", label: "decode H32 D128, 4096 cached keys, ms (K+V GB/s)" },
];

// ---- arguments ----
const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const option = (name) => {
  const i = argv.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  return argv[i].includes("=") ? argv[i].slice(name.length + 1) : argv[i + 1];
};
const chosen = (option("--engines") ?? Object.keys(ENGINES).join(","))
  .split(",")
  .map((s) => s.trim().toLowerCase())
  .filter(Boolean);
const unknown = chosen.filter((name) => !(name in ENGINES));
if (unknown.length > 0) {
  console.error(
    `unknown engine ${unknown.join(", ")}; choose from ${Object.keys(ENGINES).join(", ")}`,
  );
  process.exit(2);
}
const jsonPath = option("--json");
// How long one engine may take before it counts as failed (a slow engine on a loaded machine).
const TIMEOUT_MS = (quick ? 5 : 20) * 60_000;

if (!existsSync(join(root, "dist", "index.js"))) {
  console.error("dist/index.js is missing: run `npm run build` first (npm run bench:engines does)");
  process.exit(1);
}

// ---- engines on the command line: Node, Deno, Bun ----

/** Runs `command args` and resolves to the results line it prints, as an object. */
function runCli(command, args, env = process.env) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split("\n").find((l) => l.startsWith(MARKER));
      if (code === 0 && line) resolve(JSON.parse(line.slice(MARKER.length)));
      else {
        const why = signal ? `killed by ${signal}` : `exit code ${code}`;
        reject(new Error(`${why}: ${(stderr || stdout).trim().split("\n").slice(-3).join(" / ")}`));
      }
    });
  });
}

async function runNode(major) {
  const node = nodeBinary(major);
  return runCli(node, [...relaxedSimdFlags(node), RUNNER, ...(quick ? ["--quick"] : [])]);
}

async function runDeno() {
  const denoDir = mkdtempSync(join(os.tmpdir(), "wasm-attention-deno-"));
  try {
    return await runCli(
      join(root, "node_modules", ".bin", "deno"),
      ["run", "--allow-read", "--allow-env", RUNNER, ...(quick ? ["--quick"] : [])],
      { ...process.env, DENO_NO_UPDATE_CHECK: "1", DENO_DIR: denoDir },
    );
  } finally {
    rmSync(denoDir, { recursive: true, force: true });
  }
}

function runBun() {
  return runCli(join(root, "node_modules", ".bin", "bun"), [RUNNER, ...(quick ? ["--quick"] : [])]);
}

// ---- browsers: a page that posts its results to the server here ----

const pageDir = join(root, "build", "bench-engines");
let pageServer;

/** Serves the page (cross-origin isolated, as scripts/page.mjs does) and takes its reports. */
async function startServer() {
  await bundleForBrowser("bench/engines/page.mjs", join(pageDir, "page.js"));
  writeFileSync(
    join(pageDir, "index.html"),
    '<!doctype html><meta charset="utf-8"><title>wasm-attention engines</title><body>loading…</body>' +
      '<script type="module" src="page.js"></script>\n',
  );
  const state = { waiting: undefined };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method === "POST") {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        res.writeHead(204);
        res.end();
        const waiting = state.waiting;
        if (!waiting) return;
        state.waiting = undefined;
        try {
          const message = JSON.parse(body);
          if (path === "/result") waiting.resolve(message);
          else waiting.reject(new Error(`the page failed: ${message.message}`));
        } catch (error) {
          waiting.reject(error);
        }
      });
      return;
    }
    try {
      const file = readFileSync(join(pageDir, path === "/" ? "index.html" : path.slice(1)));
      res.writeHead(200, {
        "content-type": extname(path) === ".js" ? "text/javascript" : "text/html; charset=utf-8",
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-embedder-policy": "require-corp",
        "cache-control": "no-store",
      });
      res.end(file);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/${quick ? "?quick=1" : ""}`;
  /** Resolves to the next report of the page, or rejects after the timeout. */
  const nextReport = () =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        state.waiting = undefined;
        reject(new Error(`no results within ${TIMEOUT_MS / 60_000} minutes`));
      }, TIMEOUT_MS);
      state.waiting = {
        resolve: (value) => (clearTimeout(timer), resolve(value)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
    });
  return { server, url, nextReport, fail: (error) => state.waiting?.reject(error) };
}

async function runBrowser(name) {
  pageServer ??= await startServer();
  const { url, nextReport, fail } = pageServer;
  const report = nextReport();
  report.catch(() => {}); // awaited below; a failure to launch must not leave it unhandled
  try {
    if (name === "chromium") {
      const { chromium } = await import("playwright");
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          "--no-sandbox",
          "--disable-gpu",
          "--no-first-run",
          "--disable-background-networking",
        ],
      });
      try {
        const page = await browser.newPage();
        page.on("crash", () => fail(new Error("the page crashed")));
        await page.goto(url);
        const result = await report;
        return { ...result, engine: `Chromium ${browser.version()}` };
      } finally {
        await browser.close();
      }
    }
    const browser = await launchBrowser(name, url, (code, signal) =>
      fail(new Error(`${name} exited (${signal ?? `code ${code}`}) before reporting`)),
    );
    try {
      const result = await report;
      return { ...result, engine: browserVersion(name, result.engine) };
    } finally {
      await browser.close();
    }
  } finally {
    fail(new Error("abandoned")); // a launch that failed: stop waiting (no-op once reported)
  }
}

/** Firefox from its user agent; WebKitGTK from Debian's package (its user agent is frozen). */
function browserVersion(name, userAgent) {
  if (name === "firefox") {
    const m = /Firefox\/([\d.]+)/.exec(userAgent);
    return m ? `Firefox ${m[1]}` : userAgent;
  }
  try {
    const version = execFileSync("dpkg-query", ["-W", "-f", "${Version}", "libwebkit2gtk-4.1-0"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return `WebKitGTK ${version.replace(/-.*/, "")}`;
  } catch {
    return userAgent;
  }
}

// ---- which engines are here ----

/** Why the engine cannot run on this machine, or undefined if it can. */
function missing(name) {
  const engine = ENGINES[name];
  if (engine.kind === "node") {
    try {
      console.error(
        `- ${engine.label}: finding (or installing) Node ${NODE_VERSIONS[engine.major]}…`,
      );
      nodeBinary(engine.major); // installs it from the npm registry if needed
      return undefined;
    } catch (error) {
      return `Node ${NODE_VERSIONS[engine.major]} could not be installed (${error.message.split("\n")[0]})`;
    }
  }
  if (engine.kind === "cli") {
    const bin = join(root, "node_modules", ".bin", name);
    return existsSync(bin) ? undefined : `no ${bin} (a devDependency)`;
  }
  if (name === "chromium") return existsSync(CHROMIUM) ? undefined : `no ${CHROMIUM}`;
  if (browserAvailable(name)) return undefined;
  return name === "firefox"
    ? `no ${FIREFOX} (Debian firefox-esr)`
    : `no ${MINIBROWSER} with xvfb-run and WebKitWebDriver (Debian webkit2gtk-driver, xvfb)`;
}

function run(name) {
  const engine = ENGINES[name];
  if (engine.kind === "node") return runNode(engine.major);
  if (name === "deno") return runDeno();
  if (name === "bun") return runBun();
  return runBrowser(name);
}

// ---- run each engine in turn ----

const results = {};
const notes = [];
try {
  for (const name of chosen) {
    const why = missing(name);
    if (why) {
      notes.push(`${ENGINES[name].label} skipped: ${why}.`);
      console.error(`- ${ENGINES[name].label}: skipped, ${why}`);
      continue;
    }
    const start = performance.now();
    console.error(`- ${ENGINES[name].label}: running${quick ? " (--quick)" : ""}…`);
    try {
      results[name] = await run(name);
      const seconds = ((performance.now() - start) / 1000).toFixed(0);
      console.error(`  ${results[name].engine}, ${results[name].build} build, ${seconds} s`);
    } catch (error) {
      notes.push(`${ENGINES[name].label} failed: ${error.message}`);
      console.error(`  failed: ${error.message}`);
    }
  }
} finally {
  pageServer?.server.close();
}

// ---- the table ----

const ran = Object.keys(results);
const cpu = (() => {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? "unknown CPU";
})();
const date = new Date().toISOString().slice(0, 10);

console.log(
  `# wasm-attention in every engine, one thread${quick ? " (--quick: NOT a measurement)" : ""}\n`,
);
console.log(`${cpu}, ${os.availableParallelism?.() ?? os.cpus().length} cores, ${date}.`);
if (ran.length > 0) {
  console.log(`Engines: ${ran.map((name) => results[name].engine).join("; ")}.\n`);
  console.log(`| case | ${ran.map((name) => ENGINES[name].label).join(" | ")} |`);
  console.log(`|---|${ran.map(() => "---").join("|")}|`);
  console.log(`| build | ${ran.map((name) => results[name].build).join(" | ")} |`);
  for (const c of CASES) {
    const cells = ran.map((name) => {
      const r = results[name].cases.find((x) => x.id === c.id);
      if (!r) return "n/a";
      return c.id === "decode" ? `${r.ms.toFixed(2)} (${r.gbs.toFixed(1)})` : r.gflops.toFixed(1);
    });
    console.log(`| ${c.label} | ${cells.join(" | ")} |`);
  }
  console.log(
    "\nMedians of a fixed number of repetitions after warm-up (bench/engines/cases.mjs). " +
      "SDPA GFLOP/s = 4·B·H·N²·D / time; MHA GFLOP/s = (4·2·N·E² + 4·H·N²·D) / time " +
      "(four projections, two attention products); decode: K and V resident in WASM memory, " +
      "GB/s = 2·H·Nk·D·4 bytes read / time.",
  );
  // A coarse clock (browsers round performance.now()) is worth knowing when reading the times.
  const coarse = ran.filter((name) => results[name].timerMs > 0.01);
  if (coarse.length > 0) {
    notes.push(
      `performance.now() steps: ${coarse.map((name) => `${ENGINES[name].label} ${results[name].timerMs.toFixed(3)} ms`).join(", ")}.`,
    );
  }
  // The engines compute the same outputs: a checksum far from the others means a wrong result.
  for (const c of CASES) {
    const sums = ran.map((name) => results[name].cases.find((x) => x.id === c.id)?.checksum);
    const ref = sums[0];
    ran.forEach((name, i) => {
      if (!(Math.abs(sums[i] - ref) <= 1e-3 * Math.max(1, Math.abs(ref)))) {
        notes.push(
          `${ENGINES[name].label}: the ${c.id} output sums to ${sums[i]}, ${ENGINES[ran[0]].label}'s to ${ref}.`,
        );
      }
    });
  }
}
if (notes.length > 0) console.log(`\n${notes.map((n) => `- ${n}`).join("\n")}`);
if (jsonPath) {
  writeFileSync(jsonPath, JSON.stringify({ cpu, date, quick, results, notes }, null, 2) + "\n");
}
process.exitCode = ran.length > 0 ? 0 : 1;
