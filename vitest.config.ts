import { existsSync } from "node:fs";
import { playwright } from "@vitest/browser-playwright";
import { defineConfig } from "vitest/config";
// @ts-expect-error: plain JavaScript build helper without type declarations
import { inlineWasmVitePlugin } from "./scripts/inline-wasm.mjs";

// The whole suite runs in Node against the SIMD128 build (project "node"), and again, but for the
// few Node-only suites, against the scalar build ("node-scalar"), on two threads ("node-threads")
// and against the relaxed-SIMD build ("node-relaxed", V8's flag). The numeric suites need no Node API and also run in a real headless
// Chromium, which picks the relaxed build ("chromium"; Debian's `chromium`, installed by .ci/run;
// without /usr/bin/chromium that project is left out).
const NUMERIC_SUITES = [
  "test/builds.test.ts",
  "test/conformance.test.ts",
  "test/sdpa.property.test.ts",
  "test/sdpa.behaviour.test.ts",
  "test/decode.test.ts",
  "test/linear.test.ts",
  "test/mha.test.ts",
  "test/async.test.ts",
  "test/family.test.ts",
  "test/sparse.test.ts",
  "test/hard.test.ts",
  "test/pooling.test.ts",
  "test/reliability.test.ts",
  "test/analysis.test.ts",
  "test/backward.test.ts",
  "test/mha.backward.test.ts",
  "test/train.test.ts",
  "test/threads.test.ts",
];
// Suites that need the real Node process or an uninitialised module run only in the "node" project;
// the pinned-build projects run every other suite.
const NODE_ONLY = [
  "test/package-exports.test.ts",
  "test/runtimes.test.ts",
  "test/bundlers.test.ts",
  "test/scalar-fallback.test.ts",
  "test/not-initialized.test.ts",
  "test/docs-snippets.test.ts",
  "test/init-options.test.ts",
  "test/demo.test.ts",
  "test/threads.browser.test.ts",
  "test/threads.pool.test.ts",
  "test/page.test.ts",
];
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const chromium = existsSync(CHROMIUM);
if (!chromium) console.warn(`vitest: ${CHROMIUM} not found, running the Node project only`);

export default defineConfig({
  plugins: [inlineWasmVitePlugin(import.meta.dirname)],
  // Cross-origin isolation (SharedArrayBuffer), as a threaded page would need.
  server: {
    headers: {
      "Cross-Origin-Opener-Policy": "same-origin",
      "Cross-Origin-Embedder-Policy": "require-corp",
    },
  },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true as const,
        test: {
          name: "node",
          include: ["test/**/*.test.ts"],
          // Bundled apps are checked in Chromium, so only where it is installed; the browser's
          // pool only in the browser.
          exclude: [
            ...(chromium ? [] : ["test/bundlers.test.ts", "test/page.test.ts"]),
            "test/threads.browser.test.ts",
            "test/threads.pool.test.ts",
          ],
        },
      },
      {
        extends: true as const,
        test: {
          name: "node-scalar",
          include: ["test/**/*.test.ts"],
          exclude: NODE_ONLY,
          env: { WASM_ATTENTION_BUILD: "scalar" },
          setupFiles: ["test/setup/force-build.ts"],
        },
      },
      {
        extends: true as const,
        test: {
          name: "node-threads",
          include: ["test/**/*.test.ts"],
          exclude: NODE_ONLY.filter((f) => f !== "test/threads.pool.test.ts"),
          env: { WASM_ATTENTION_THREADS: "2" },
          setupFiles: ["test/setup/force-build.ts"],
        },
      },
      {
        extends: true as const,
        test: {
          name: "node-relaxed",
          include: ["test/**/*.test.ts"],
          exclude: NODE_ONLY,
          execArgv: ["--experimental-wasm-relaxed-simd"],
        },
      },
      ...(chromium
        ? [
            {
              extends: true as const,
              test: {
                name: "chromium",
                include: [...NUMERIC_SUITES, "test/threads.browser.test.ts"],
                browser: {
                  enabled: true,
                  headless: true,
                  screenshotFailures: false,
                  provider: playwright({
                    launchOptions: {
                      executablePath: CHROMIUM,
                      args: [
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                      ],
                    },
                  }),
                  instances: [{ browser: "chromium" as const }],
                },
              },
            },
          ]
        : []),
    ],
  },
});
