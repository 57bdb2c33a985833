// Benchmark in headless Chromium (Debian's /usr/bin/chromium, or CHROMIUM_PATH) through Playwright:
// the SIMD128 and relaxed-SIMD builds, each in its own page load, on SDPA (N = 512, 2048) and
// linear. Chromium validates relaxed SIMD without flags, unlike Node 20.
//
//   node bench/chromium.mjs     (npm run bench runs it too)
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright";
import { bundleForBrowser, servePage } from "../scripts/page.mjs";

const outdir = join(dirname(fileURLToPath(import.meta.url)), "..", "build", "bench-chromium");
await bundleForBrowser("bench/chromium/page.ts", join(outdir, "page.js"));
writeFileSync(
  join(outdir, "index.html"),
  '<!doctype html><script type="module" src="page.js"></script>',
);

const { server, url } = await servePage(outdir);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const results = {};
  for (const simd of ["simd128", "relaxed"]) {
    const page = await browser.newPage();
    await page.goto(`${url}?simd=${simd}`);
    results[simd] = await page.evaluate(() => window.benchResult);
    await page.close();
    if (results[simd].build !== simd)
      throw new Error(`asked for ${simd}, ran ${results[simd].build}`);
  }
  const version = browser.version();
  console.log(
    `# The builds in headless Chromium ${version}, one thread, ${new Date().toISOString().slice(0, 10)}\n`,
  );
  console.log("| case | SIMD128 ms | GFLOP/s | relaxed ms | GFLOP/s | relaxed × SIMD128 |");
  console.log("|---|---|---|---|---|---|");
  results.simd128.rows.forEach((a, i) => {
    const b = results.relaxed.rows[i];
    console.log(
      `| ${a.name} | ${a.ms.toFixed(2)} | ${a.gflops.toFixed(1)} | ${b.ms.toFixed(2)} | ` +
        `${b.gflops.toFixed(1)} | ${(a.ms / b.ms).toFixed(2)}× |`,
    );
  });
} finally {
  await browser.close();
  server.close();
}
