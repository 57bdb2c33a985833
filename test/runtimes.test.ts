// The built package in the other runtimes it promises: Deno and Bun (their npm packages ship the
// binaries) run test/smoke/run.mjs importing the package by name, and workerd (through Miniflare)
// runs it as a Worker through the package's `workerd` entry. Run `npm run build` first (npm test does).
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as esbuild from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const bin = (name: string): string => join(root, "node_modules", ".bin", name);
let scratch = "";

interface Report {
  sdpaError: number;
  mhaError: number;
  errorCode: string;
  afterError: number;
}

function expectGood(report: Report): void {
  expect(report.sdpaError).toBeLessThan(1e-5);
  expect(report.mhaError).toBeLessThan(1e-4);
  expect(report.errorCode).toBe("SHAPE_MISMATCH");
  expect(report.afterError).toBe(0);
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "wasm-attention-runtimes-"));
  writeFileSync(
    join(scratch, "package.json"),
    JSON.stringify({ name: "smoke", type: "module", dependencies: { "wasm-attention": "*" } }),
  );
  mkdirSync(join(scratch, "node_modules"));
  symlinkSync(root, join(scratch, "node_modules", "wasm-attention"), "dir");
  for (const file of ["smoke-core.mjs", "run.mjs", "worker.mjs"]) {
    copyFileSync(join(root, "test", "smoke", file), join(scratch, file));
  }
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("the package in other runtimes", () => {
  it("runs in Node", () => {
    const out = execFileSync(process.execPath, ["run.mjs"], { cwd: scratch, encoding: "utf8" });
    expectGood(JSON.parse(out) as Report);
  });

  it("runs in Deno", () => {
    const env = { ...process.env, DENO_NO_UPDATE_CHECK: "1", DENO_DIR: join(scratch, ".deno") };
    const out = execFileSync(bin("deno"), ["run", "--allow-read", "--allow-env", "run.mjs"], {
      cwd: scratch,
      encoding: "utf8",
      env,
    });
    expectGood(JSON.parse(out) as Report);
  });

  it("runs in Bun", () => {
    const out = execFileSync(bin("bun"), ["run.mjs"], { cwd: scratch, encoding: "utf8" });
    expectGood(JSON.parse(out) as Report);
  });

  it("runs in workerd (Miniflare) through the workerd entry", async () => {
    const outdir = join(scratch, "worker");
    await esbuild.build({
      absWorkingDir: scratch,
      entryPoints: ["worker.mjs"],
      bundle: true,
      format: "esm",
      platform: "neutral",
      conditions: ["workerd", "worker", "browser"],
      outdir,
      // The .wasm import stays a module import, which workerd compiles (CompiledWasm rule).
      loader: { ".wasm": "copy" },
      logLevel: "silent",
    });
    const mf = new Miniflare({
      cf: false, // no fetch of Cloudflare's request metadata: CI has no network
      modules: true,
      scriptPath: join(outdir, "worker.js"),
      modulesRoot: outdir, // module names relative to the bundle, not to the test's cwd
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    });
    try {
      const response = await mf.dispatchFetch("http://localhost/");
      expectGood((await response.json()) as Report);
    } finally {
      await mf.dispose();
    }
  });
});
