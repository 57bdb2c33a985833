// The command-line demo (`npm start`, `npx wasm-attention demo`): the built dist/cli.js runs every
// mechanism, prints its table and writes the heatmaps and the HTML report; bad options exit 2.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const cli = resolve(import.meta.dirname, "..", "dist", "cli.js");
const out = mkdtempSync(join(tmpdir(), "wasm-attention-demo-"));

afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("wasm-attention demo", () => {
  it("prints a row per mechanism and writes heatmaps and a report", () => {
    const text = "one two three four five six";
    const stdout = execFileSync(
      process.execPath,
      [cli, "demo", "--text", text, "--heads", "2", "--layers", "3", "--out", out],
      {
        encoding: "utf8",
      },
    );
    for (const name of [
      "scaled dot-product",
      "causal",
      "local window",
      "additive",
      "cosine",
      "hard top-3",
      "block-sparse",
    ]) {
      expect(stdout).toContain(name);
    }
    expect(stdout).toContain("6 tokens, 3 layers of 2 heads");
    const files = readdirSync(out);
    // 7 mechanisms + 3 layers × 2 heads + rollout, and the report.
    expect(files.filter((f) => f.endsWith(".svg")).length).toBe(7 + 6 + 1);
    const html = readFileSync(join(out, "index.html"), "utf8");
    expect(html.match(/<svg/g)?.length).toBe(14);
    // Each heatmap of 6 tokens has 36 cells with hover text.
    expect(readFileSync(join(out, "rollout.svg"), "utf8").match(/<title>/g)?.length).toBe(36);
  });

  it("gives the same files for the same input", () => {
    const again = mkdtempSync(join(tmpdir(), "wasm-attention-demo-"));
    try {
      execFileSync(process.execPath, [cli, "--text", "a b c", "--out", again], {
        encoding: "utf8",
      });
      const first = readFileSync(join(again, "rollout.svg"), "utf8");
      execFileSync(process.execPath, [cli, "--text", "a b c", "--out", again], {
        encoding: "utf8",
      });
      expect(readFileSync(join(again, "rollout.svg"), "utf8")).toBe(first);
    } finally {
      rmSync(again, { recursive: true, force: true });
    }
  });

  it("explains itself with --help and rejects bad options with one line and exit code 2", () => {
    expect(execFileSync(process.execPath, [cli, "--help"], { encoding: "utf8" })).toContain(
      "--layers <n>",
    );
    for (const args of [["--bogus"], ["--heads", "0"], ["--layers", "x"], ["--text", "one"]]) {
      const r = spawnSync(process.execPath, [cli, ...args, "--out", out], { encoding: "utf8" });
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/^wasm-attention: /);
    }
  });
});
