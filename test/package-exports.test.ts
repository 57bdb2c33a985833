// The built package as another project sees it: imported by name through the `exports` map from a
// scratch package whose node_modules links to this one (run `npm run build` first; `npm test` does).
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
let scratch = "";

function runScript(source: string): string {
  const file = join(scratch, `script-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, source);
  return execFileSync(process.execPath, [file], { cwd: scratch, encoding: "utf8" });
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "wasm-attention-consumer-"));
  writeFileSync(
    join(scratch, "package.json"),
    JSON.stringify({ name: "consumer", type: "module", dependencies: { "wasm-attention": "*" } }),
  );
  mkdirSync(join(scratch, "node_modules"));
  symlinkSync(root, join(scratch, "node_modules", "wasm-attention"), "dir");
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("the packed package", () => {
  it("installs from its tarball into a fresh project and works with no build tools", () => {
    const project = mkdtempSync(join(tmpdir(), "wasm-attention-install-"));
    try {
      const packed = JSON.parse(
        execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", project], {
          cwd: root,
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
        }),
      ) as { filename: string; files: { path: string }[] }[];
      // Only what users need is published.
      const files = packed[0].files.map((f) => f.path);
      expect(
        files.filter(
          (f) =>
            !f.startsWith("dist/") &&
            !f.startsWith("docs/") &&
            !["package.json", "README.md", "LICENSE", "CHANGELOG.md"].includes(f),
        ),
      ).toEqual([]);
      writeFileSync(
        join(project, "package.json"),
        JSON.stringify({ name: "fresh", type: "module" }),
      );
      execFileSync(
        "npm",
        ["install", "--offline", "--no-audit", "--no-fund", `./${packed[0].filename}`],
        {
          cwd: project,
          stdio: "ignore",
        },
      );
      writeFileSync(
        join(project, "main.mjs"),
        `import { init, softmax } from "wasm-attention";
         await init();
         console.log(Array.from(softmax({ data: new Float32Array([0, Math.log(3)]), shape: [2] }).data).join(","));`,
      );
      const out = execFileSync(process.execPath, ["main.mjs"], { cwd: project, encoding: "utf8" });
      const [a, b] = out.trim().split(",").map(Number);
      expect(a).toBeCloseTo(0.25, 6);
      expect(b).toBeCloseTo(0.75, 6);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("the package imported by name", () => {
  it("runs scaledDotProductAttention after init()", () => {
    const out = runScript(`
      import { init, scaledDotProductAttention } from "wasm-attention";
      await init();
      const q = { data: new Float32Array([1, 0, 0, 1]), shape: [2, 2] };
      const v = { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] };
      const { output } = scaledDotProductAttention(q, q, v, { causal: true });
      console.log(JSON.stringify({ shape: output.shape, data: Array.from(output.data) }));
    `);
    const { shape, data } = JSON.parse(out) as { shape: number[]; data: number[] };
    expect(shape).toEqual([2, 2]);
    // Row 0 sees only key 0; row 1 sees both keys with scores 0 and 1/sqrt(2).
    const p1 = 1 / (1 + Math.exp(Math.SQRT1_2));
    const expected = [1, 2, p1 * 1 + (1 - p1) * 3, p1 * 2 + (1 - p1) * 4];
    data.forEach((x, i) => expect(x).toBeCloseTo(expected[i], 5));
  });

  it("does no work at import time: ops before init() throw NOT_INITIALIZED", () => {
    const out = runScript(`
      import { scaledDotProductAttention, AttentionError } from "wasm-attention";
      try {
        const t = { data: new Float32Array(4), shape: [2, 2] };
        scaledDotProductAttention(t, t, t);
        console.log("no error");
      } catch (err) {
        console.log(err instanceof AttentionError ? err.code : String(err));
      }
    `);
    expect(out.trim()).toBe("NOT_INITIALIZED");
  });

  it("supports initSync with the packaged .wasm file from ./wasm/*", () => {
    const out = runScript(`
      import { readFileSync } from "node:fs";
      import { createRequire } from "node:module";
      import { initSync, softmax } from "wasm-attention";
      const path = createRequire(import.meta.url).resolve("wasm-attention/wasm/attention.wasm");
      initSync(readFileSync(path));
      console.log(Array.from(softmax({ data: new Float32Array([0, 0]), shape: [2] }).data).join(","));
    `);
    expect(out.trim()).toBe("0.5,0.5");
  });
});
