// The browser page (examples/browser, built and served by scripts/page.mjs) in headless Chromium:
// typing a sentence redraws a heatmap with one cell per token pair, and the entropies it shows are
// the library's own numbers; its training view trains the example model of examples/train. A
// screenshot is kept in test-results/page.png.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser } from "playwright";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: plain JavaScript script without type declarations
import { buildPage, servePage } from "../scripts/page.mjs";
import { runLayers, tokenize } from "../src/demo";
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

  it("trains the example model in the page: the loss falls and the task is learnt", async () => {
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
      // One entry per ceil(200 / 12) = 17 steps, and the last: 12 entries from step 17 to 200.
      expect(losses).toHaveLength(12);
      expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 10);
      expect(await page.isEnabled("#train")).toBe(true);
    } finally {
      await page.close();
    }
  });
});
