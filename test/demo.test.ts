// The demo (`npm start`, `npx wasm-attention demo`): the built dist/cli.js trains the induction
// model and shows its heads learnt (measured on the probe, before and after), runs every mechanism,
// and writes one SVG per map, named after its mechanism, with one title each, and an index.html
// that links them; the same input gives the same files. In-process: the tokenizer (Intl.Segmenter)
// and the colour scale relative to uniform attention.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { renderDemoHeatmap } from "../src/cli/demo/heatmap";
import { tokenize } from "../src/cli/demo/tokenize";

const cli = resolve(import.meta.dirname, "..", "dist", "cli.js");
const out = mkdtempSync(join(tmpdir(), "wasm-attention-demo-"));

afterAll(() => rmSync(out, { recursive: true, force: true }));

const run = (args: string[]): string =>
  execFileSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 60_000 });

describe("wasm-attention demo", () => {
  it("shows trained heads beside untrained ones and every mechanism, a file per map", () => {
    const text = "one two three four five six";
    const stdout = run(["demo", "--text", text, "--heads", "2", "--layers", "3", "--out", out]);
    const mechanisms = [
      "scaled-dot-product",
      "causal",
      "local-window",
      "additive-bahdanau",
      "cosine",
      "hard-top-3",
      "block-sparse-longformer",
    ];
    for (const name of ["scaled dot-product", "local window", "additive", "hard top-3"]) {
      expect(stdout).toContain(name);
    }
    expect(stdout).toContain("6 tokens, 3 layers of 2 heads");
    // The recall model learns: its last layer looks at the token to copy, the untrained one did not.
    expect(stdout).toMatch(/100\.0% of held-out targets right/);
    const retrieval = stdout.match(/put ([\d.]+) of their attention on it \(untrained ([\d.]+)\)/);
    expect(Number(retrieval![1])).toBeGreaterThan(0.9);
    expect(Number(retrieval![2])).toBeLessThan(0.3);

    const svgs = readdirSync(out).filter((f) => f.endsWith(".svg"));
    const induction = ["untrained", "trained"].flatMap((state) =>
      [1, 2].flatMap((l) => [1, 2, 3, 4].map((h) => `induction-${state}-layer-${l}-head-${h}.svg`)),
    );
    const stack = [1, 2, 3].flatMap((l) =>
      [1, 2].map((h) => `multi-head-layer-${l}-head-${h}.svg`),
    );
    expect(svgs.sort()).toEqual(
      [
        ...mechanisms.map((m) => `${m}.svg`),
        ...induction,
        ...stack,
        "attention-rollout.svg",
      ].sort(),
    );
    for (const file of svgs) {
      const svg = readFileSync(join(out, file), "utf8");
      expect(svg.match(/font-size="14"/g), file).toHaveLength(1); // one title
    }
    expect(readFileSync(join(out, "causal.svg"), "utf8")).toContain(">causal, head 1</text>");
    // The report links each map once and draws none itself.
    const html = readFileSync(join(out, "index.html"), "utf8");
    expect(html.match(/<img /g)).toHaveLength(svgs.length);
    expect(html).not.toContain("<svg");
    // Each map of 6 tokens has 36 cells with hover text; the induction maps 12 × 12.
    expect(readFileSync(join(out, "attention-rollout.svg"), "utf8").match(/<title>/g)).toHaveLength(
      36,
    );
    expect(
      readFileSync(join(out, "induction-trained-layer-2-head-1.svg"), "utf8").match(/<title>/g),
    ).toHaveLength(144);
  });

  it("gives the same files for the same input", () => {
    const again = mkdtempSync(join(tmpdir(), "wasm-attention-demo-"));
    try {
      // Every map; index.html also holds the measured times.
      const read = (): string[] =>
        readdirSync(again)
          .filter((f) => f.endsWith(".svg"))
          .sort()
          .map((f) => readFileSync(join(again, f), "utf8"));
      run(["--text", "a b c", "--steps", "20", "--out", again]);
      const first = read();
      expect(first).toHaveLength(7 + 8 + 1 + 16);
      run(["--text", "a b c", "--steps", "20", "--out", again]);
      expect(read()).toEqual(first);
    } finally {
      rmSync(again, { recursive: true, force: true });
    }
  });
});

describe("the demo's tokenizer", () => {
  it("splits words, punctuation, emoji and Chinese words, and drops whitespace", () => {
    expect(tokenize("Hello,  world!\n👍🏽 don't 我喜欢猫")).toEqual([
      "Hello",
      ",",
      "world",
      "!",
      "👍🏽",
      "don't",
      "我",
      "喜欢",
      "猫",
    ]);
    expect(tokenize(" \t\n")).toEqual([]);
  });
});

describe("the demo's heatmap colours", () => {
  const fills = (svg: string): string[] =>
    [...svg.matchAll(/<rect [^>]*fill="(#[0-9a-f]{6})"><title>/g)].map((m) => m[1]);

  it("draws uniform attention white, whatever the largest weight", () => {
    // A 0-to-max scale would paint this map its darkest colour everywhere.
    const N = 10;
    const svg = renderDemoHeatmap({
      weights: new Float32Array(N * N).fill(1 / N),
      tokens: Array.from({ length: N }, (_, i) => `t${i}`),
      title: "uniform",
    });
    expect(new Set(fills(svg))).toEqual(new Set(["#f7f7f7"]));
    expect(svg).toContain("1: uniform (1/visible keys)");
  });

  it("compares with the keys a row may see: red above uniform, blue below, grey masked", () => {
    // Causal, 3 tokens: row 0 sees one key (always uniform), row 1 two (one at 8× uniform would
    // need 4 keys: 1.0 on one of two is 2× uniform), row 2 puts everything on key 0 (3× uniform).
    const weights = Float32Array.from([1, 0, 0, 0.5, 0.5, 0, 1, 0, 0]);
    const svg = renderDemoHeatmap({
      weights,
      tokens: ["a", "b", "c"],
      title: "causal",
      visible: (r, c) => c <= r,
    });
    const f = fills(svg);
    expect(f[0]).toBe("#f7f7f7"); // the only key it sees
    expect(f[1]).toBe("#d9d9d9"); // masked
    expect([f[3], f[4]]).toEqual(["#f7f7f7", "#f7f7f7"]); // uniform over two
    expect(f[6]).toMatch(/^#(e|f|d|c|b)/); // 3× uniform: reddish (red channel high)
    expect(parseInt(f[6].slice(1, 3), 16)).toBeGreaterThan(parseInt(f[6].slice(5, 7), 16));
    expect(f[7]).toBe("#2166ac"); // 0 where it could look: the bluest
    expect(svg).toContain("c → a: 1.000, 3.00× uniform");
  });

  it("draws at most 32 tokens a side and says so", () => {
    const N = 40;
    const svg = renderDemoHeatmap({
      weights: new Float32Array(N * N).fill(1 / N),
      tokens: Array.from({ length: N }, (_, i) => `token-number-${i}-of-forty`),
      title: "long",
    });
    expect(fills(svg)).toHaveLength(32 * 32);
    expect(svg).toContain("the first 32 of 40 tokens");
    expect(svg).toContain(">token-number-…<"); // labels cut at 14 characters
  });
});
