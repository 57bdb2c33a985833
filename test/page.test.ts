// The browser page (examples/browser, built and served by scripts/page.mjs) in headless Chromium:
// typing a sentence redraws a heatmap with one cell per token pair, and the entropies it shows are
// the library's own numbers; clearing the text clears the maps; a long text scrolls inside its maps
// instead of widening the page; its training view trains the model of src/train and draws the loss
// curve of its log. A screenshot is kept in test-results/page.png.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser } from "playwright";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: plain JavaScript script without type declarations
import { buildPage, servePage } from "../scripts/page.mjs";
import { MAX_TOKENS, runLayers, tokenize } from "../src/cli/demo";
import { attentionEntropy, init } from "../src/index";

const root = resolve(import.meta.dirname, "..");
let dir = "";
let browser: Browser;
let server: Server;
let url = "";

beforeAll(async () => {
  await init();
  dir = mkdtempSync(join(tmpdir(), "wasm-attention-page-"));
  await buildPage(dir);
  ({ server, url } = (await servePage(dir)) as { server: Server; url: string });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});

afterAll(async () => {
  await browser?.close();
  server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the browser page", () => {
  it("redraws per-head heatmaps, entropy and rollout as the user types", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    try {
      await page.goto(url);
      await page.waitForSelector("body[data-ready=true]");
      const sentence = "attention is all you need";
      await page.fill("#text", "");
      await page.type("#text", sentence);
      await page.selectOption("#layer", { value: "1" });
      await page.selectOption("#head", { value: "2" });
      const tokens = tokenize(sentence);
      const N = tokens.length;
      await page.waitForFunction(
        (n) => document.querySelectorAll("#heatmap rect title").length === n * n,
        N,
      );
      expect(await page.locator("#heatmap svg").count()).toBe(1);
      expect(await page.locator("#rollout rect title").count()).toBe(N * N);
      expect(await page.textContent("#heatmap svg text")).toContain("layer 2, head 3");
      // The page's entropies are the library's: the same layers computed here, layer 2, head 3.
      const { layers } = runLayers(tokens, 64, 4, 3);
      const weights = { data: layers[1].data.slice(2 * N * N, 3 * N * N), shape: [N, N] };
      const expected = Array.from(attentionEntropy(weights).data, (h) => h.toFixed(4));
      const shown = ((await page.textContent("#entropy")) ?? "")
        .trim()
        .split("\n")
        .map((line) => line.trim().split(/\s+/).pop());
      expect(shown).toEqual(expected);
      mkdirSync(join(root, "test-results"), { recursive: true });
      await page.screenshot({ path: join(root, "test-results", "page.png"), fullPage: true });
    } finally {
      await page.close();
    }
  });

  it("clears the maps when the text is cleared or too long", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(url);
      await page.waitForSelector("body[data-ready=true]");
      await page.waitForSelector("#heatmap svg");
      await page.fill("#text", "");
      await page.waitForFunction(() => document.querySelectorAll("svg").length === 0);
      expect(await page.textContent("#entropy")).toBe("");
      expect(await page.textContent("#status")).toBe("type at least two words");
      await page.fill("#text", "two words");
      await page.waitForFunction(
        () => document.querySelectorAll("#heatmap rect title").length === 4,
      );
      await page.fill("#text", "word ".repeat(MAX_TOKENS + 1));
      await page.waitForFunction(() => document.querySelectorAll("svg").length === 0);
      expect(await page.textContent("#status")).toContain(`${MAX_TOKENS + 1} tokens`);
    } finally {
      await page.close();
    }
  });

  it("scrolls a long text's maps inside their figures instead of widening the page", async () => {
    const page = await browser.newPage({ viewport: { width: 700, height: 800 } });
    try {
      await page.goto(url);
      await page.waitForSelector("body[data-ready=true]");
      const sentence = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ");
      await page.fill("#text", sentence);
      await page.waitForFunction(() => document.querySelectorAll("#heatmap rect title").length > 4);
      const layout = await page.evaluate(() => {
        const figure = document.getElementById("heatmap")!;
        return {
          pageWidth: document.documentElement.scrollWidth,
          viewport: window.innerWidth,
          figureScroll: figure.scrollWidth,
          figureWidth: figure.clientWidth,
        };
      });
      expect(layout.pageWidth).toBeLessThanOrEqual(layout.viewport);
      expect(layout.figureScroll).toBeGreaterThan(layout.figureWidth);
    } finally {
      await page.close();
    }
  });

  it("trains the example model in the page: the loss falls, its curve is drawn, the task is learnt", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(url);
      await page.waitForSelector("body[data-ready=true]");
      await page.selectOption("#train-task", { value: "recall" });
      await page.fill("#train-steps", "200");
      await page.click("#train");
      await page.waitForSelector("#train-log[data-accuracy]", { timeout: 60_000 });
      const accuracy = Number(await page.getAttribute("#train-log", "data-accuracy"));
      expect(accuracy).toBeGreaterThanOrEqual(0.95);
      const losses = ((await page.textContent("#train-log")) ?? "")
        .split("\n")
        .filter((line) => line.startsWith("step"))
        .map((line) => Number(line.split(/\s+/)[3]));
      // One entry per ceil(200 / 40) = 5 steps: 40 entries from step 5 to 200.
      expect(losses).toHaveLength(40);
      expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 10);
      // The curve has a point per entry, at the entry's step, and falls with the loss (SVG y grows
      // downwards): its points are ordered as the logged losses.
      const points = ((await page.getAttribute("#loss-curve polyline", "points")) ?? "")
        .trim()
        .split(" ")
        .map((p) => p.split(",").map(Number));
      expect(points).toHaveLength(losses.length);
      for (let i = 1; i < points.length; i++) {
        expect(points[i][0]).toBeGreaterThan(points[i - 1][0]);
        // (y is rounded to 0.1 px, so close losses may share it)
        if (losses[i] < losses[i - 1])
          expect(points[i][1]).toBeGreaterThanOrEqual(points[i - 1][1]);
        if (losses[i] > losses[i - 1]) expect(points[i][1]).toBeLessThanOrEqual(points[i - 1][1]);
      }
      expect(points[points.length - 1][1]).toBeGreaterThan(points[0][1] + 50);
      expect(await page.isEnabled("#train")).toBe(true);
    } finally {
      await page.close();
    }
  });
});
