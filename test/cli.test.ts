// The command line's contract, on the built dist/cli.js: it shares the library's dist/index.js;
// --version; `--name=value` as well as `--name value`; bad options and texts the demo does not take
// are one line on stderr and exit code 2, at once; a file-system failure is one line and exit code
// 1, never a stack; what it writes is bounded (at most 32 tokens a side per map, labels cut); and
// its default output directory, which `npm start` writes into the clone, is ignored by git and
// prettier, so `npm test` passes after it.
import { execFileSync, spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as prettier from "prettier";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_OUT, MAX_TOKENS } from "../src/cli/demo";

const root = resolve(import.meta.dirname, "..");
const cli = join(root, "dist", "cli.js");
const scratch = mkdtempSync(join(tmpdir(), "wasm-attention-cli-"));
let dirs = 0;
const freshDir = (): string => join(scratch, `out-${++dirs}`);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// Every run is time-bounded: a demo that hangs or grows without bound fails here, not in CI's timeout.
const cliRun = (args: string[], cwd = root) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", cwd, timeout: 60_000 });

/** Exit code `code`, and stderr one line starting with the command's name. */
function expectOneLineFailure(r: ReturnType<typeof cliRun>, code: number): void {
  expect(r.status, r.stderr).toBe(code);
  expect(r.stderr.trim().split("\n"), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(/^wasm-attention: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

const words = (n: number, word = (i: number) => `w${i}`): string =>
  Array.from({ length: n }, (_, i) => word(i)).join(" ");

describe("wasm-attention command line", () => {
  it("imports the library next to it instead of bundling a second copy", () => {
    // scripts/build.mjs marks every import of src/index.ts (from src/demo and src/train) external.
    const bundle = readFileSync(cli, "utf8");
    const imports = [...bundle.matchAll(/from "([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(imports)).toEqual(new Set(["./index.js", "node:fs", "node:path"]));
    expect(bundle).not.toContain("AGFzbQ"); // base64 of the wasm magic "\0asm"
    expect(bundle.length).toBeLessThan(64 * 1024); // measured: 35.7 KB
  });

  it("prints the package's version with --version", () => {
    const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    const r = cliRun(["--version"]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it("takes --name=value as --name value, for every option", () => {
    const spaced = freshDir();
    const joined = freshDir();
    const options = { text: "one two three", heads: "2", layers: "1", steps: "0" };
    const spacedArgs = Object.entries(options).flatMap(([k, v]) => [`--${k}`, v]);
    const joinedArgs = Object.entries(options).map(([k, v]) => `--${k}=${v}`);
    expect(cliRun(["demo", ...spacedArgs, "--out", spaced]).status).toBe(0);
    expect(cliRun(["demo", ...joinedArgs, `--out=${joined}`]).status).toBe(0);
    const svgs = (dir: string): string[] =>
      readdirSync(dir)
        .filter((f) => f.endsWith(".svg"))
        .sort()
        .map((f) => readFileSync(join(dir, f), "utf8"));
    // 7 mechanisms, 1 layer of 2 heads, the rollout; no training with --steps 0.
    expect(svgs(joined)).toHaveLength(10);
    expect(svgs(joined)).toEqual(svgs(spaced));
  });

  it("explains itself with --help and rejects bad options with one line and exit code 2", () => {
    expect(execFileSync(process.execPath, [cli, "--help"], { encoding: "utf8" })).toContain(
      "--steps <n>",
    );
    for (const args of [
      ["--bogus"],
      ["--heads", "0"],
      ["--heads=17"],
      ["--layers", "x"],
      ["--steps=-1"],
      ["--heads"],
      ["--text", "one"],
      ["--text="],
      ["--out="],
    ]) {
      expectOneLineFailure(cliRun([...args, "--out", freshDir()]), 2);
    }
  });

  it(`refuses a text over ${MAX_TOKENS} tokens at once, with one line and exit code 2`, () => {
    // 2000 tokens ran out of heap after a minute and left two 481 MB SVGs.
    const out = freshDir();
    const t0 = performance.now();
    const r = cliRun(["--text", words(2000), "--out", out]);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expectOneLineFailure(r, 2);
    expect(r.stderr).toContain(`2000 tokens; the demo takes at most ${MAX_TOKENS}`);
    expect(() => statSync(out)).toThrow(); // nothing written
  });

  it(`bounds what it writes: ${MAX_TOKENS} long tokens, maps of 32 a side`, () => {
    const out = freshDir();
    const text = words(MAX_TOKENS, (i) => `${"long".repeat(20)}${i}`);
    const r = cliRun([
      "--text",
      text,
      "--heads",
      "2",
      "--layers",
      "1",
      "--steps",
      "0",
      "--out",
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const sizes = readdirSync(out).map((f) => statSync(join(out, f)).size);
    expect(sizes).toHaveLength(10 + 1);
    // 32 × 32 cells, labels cut to 14 characters: measured 129 KB for 256 short tokens.
    for (const size of sizes) expect(size).toBeLessThan(200_000);
  });

  it("reports a file-system failure in one line with exit code 1", () => {
    // --out names an existing file (this printed a raw EEXIST stack).
    const file = join(scratch, "a-file");
    writeFileSync(file, "");
    const r = cliRun(["--text", "a b", "--steps", "0", "--out", file]);
    expectOneLineFailure(r, 1);
    expect(r.stderr).toContain(`cannot create the report directory ${file}`);
    // A file the demo must write is in the way (a directory named index.html).
    const out = freshDir();
    mkdirSync(join(out, "index.html"), { recursive: true });
    const w = cliRun(["--text", "a b", "--steps", "0", "--out", out]);
    expectOneLineFailure(w, 1);
    expect(w.stderr).toContain(`cannot write ${join(out, "index.html")}`);
  });

  it(`writes ./${DEFAULT_OUT} by default, which git and prettier ignore in this repository`, async () => {
    const cwd = freshDir();
    mkdirSync(cwd);
    const r = cliRun(["--text", "a b", "--steps", "0"], cwd);
    expect(r.status, r.stderr).toBe(0);
    const report = join(cwd, DEFAULT_OUT);
    expect(r.stdout).toContain(`to ${report}`);
    const written = readdirSync(report);
    expect(written).toContain("index.html");
    // `npm start` writes the same directory into the clone: `prettier --check .` (which reads
    // .gitignore and .prettierignore) and git must leave every file of it alone.
    for (const file of written) {
      const path = join(root, DEFAULT_OUT, file);
      const info = await prettier.getFileInfo(path, {
        ignorePath: [join(root, ".gitignore"), join(root, ".prettierignore")],
      });
      expect(info.ignored, `prettier checks ${DEFAULT_OUT}/${file}`).toBe(true);
      const git = spawnSync("git", ["check-ignore", "-q", "--no-index", path], { cwd: root });
      expect(git.status, `git tracks ${DEFAULT_OUT}/${file}`).toBe(0);
    }
  });
});
