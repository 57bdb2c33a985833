import { existsSync } from "node:fs";
import { playwright } from "@vitest/browser-playwright";
import { defineConfig, type TestProjectInlineConfiguration } from "vitest/config";
// @ts-expect-error: plain JavaScript build helper without type declarations
import { browserAvailable } from "./scripts/browsers.mjs";
// @ts-expect-error: plain JavaScript build helper without type declarations
import { inlineWasmVitePlugin } from "./scripts/inline-wasm.mjs";
// @ts-expect-error: plain JavaScript build helper without type declarations
import { relaxedSimdFlags } from "./scripts/node-flags.mjs";
// @ts-expect-error: plain JavaScript build helper without type declarations
import { launchedBrowser } from "./scripts/vitest-launch-provider.mjs";

// Every suite runs in Node against the build init() picks ("node": SIMD128 on Node 20, relaxed SIMD
// from Node 21), against the other SIMD build ("node-relaxed" under V8's flag on Node 20,
// "node-simd128" elsewhere), against the scalar build ("node-scalar") and on two threads
// ("node-threads"); and, but for the suites that need Node itself, in three real browser engines:
// Chromium (V8, through Playwright), Firefox ESR (SpiderMonkey) and WebKitGTK (JavaScriptCore),
// each where this machine has it (Debian's chromium, firefox-esr and webkit2gtk-driver + xvfb,
// installed by .ci/run). CI runs the Node projects on Node 20, 22 and 24.

// Suites that need the real Node process (child processes, the file system, other runtimes) or a
// module nobody has initialised yet: "node" runs them, no other project does.
const NODE_PROCESS_SUITES = [
  "test/package-exports.test.ts",
  "test/runtimes.test.ts",
  "test/bundlers.test.ts",
  "test/scalar-fallback.test.ts",
  "test/not-initialized.test.ts",
  "test/docs-snippets.test.ts",
  "test/docs-api.test.ts",
  "test/cli.test.ts",
  "test/process-exit.test.ts",
  "test/types-consumers.test.ts",
  "test/threads-node-builtins.test.ts",
  "test/init-options.test.ts",
  "test/demo.test.ts",
  "test/page.test.ts",
];
// The pool in a browser page, where the main thread may not block.
const BROWSER_ONLY_SUITES = ["test/threads.browser.test.ts"];
// The pool's own behaviour on worker_threads: needs a pool, so only "node-threads" runs it.
const POOLED_NODE_SUITES = ["test/threads.pool.test.ts"];

const ALL = ["test/**/*.test.ts"];
const RELAXED_FLAGS = relaxedSimdFlags() as string[];
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const browsers = {
  chromium: existsSync(CHROMIUM),
  firefox: browserAvailable("firefox") as boolean,
  webkit: browserAvailable("webkit") as boolean,
};
for (const [name, found] of Object.entries(browsers)) {
  if (!found) console.warn(`vitest: ${name} not found on this machine, its project is left out`);
}

/** A Node project running every suite but those that need a fresh module or the Node process. */
function pinnedNodeProject(
  name: string,
  test: { env?: Record<string, string>; execArgv?: string[]; exclude?: string[] },
): TestProjectInlineConfiguration {
  const env = test.env;
  return {
    extends: true,
    test: {
      name,
      include: ALL,
      exclude: [...NODE_PROCESS_SUITES, ...BROWSER_ONLY_SUITES, ...(test.exclude ?? [])],
      ...(env ? { env, setupFiles: ["test/setup/force-build.ts"] } : {}),
      ...(test.execArgv ? { execArgv: test.execArgv } : {}),
    },
  };
}

/** A browser project: every suite that needs no Node API. */
function browserProject(
  name: "chromium" | "firefox" | "webkit",
  provider: ReturnType<typeof playwright>,
): TestProjectInlineConfiguration {
  return {
    extends: true,
    test: {
      name,
      include: ALL,
      exclude: [...NODE_PROCESS_SUITES, ...POOLED_NODE_SUITES],
      browser: {
        enabled: true,
        // The launched browsers run headless (Firefox) or on a virtual display (WebKit) by
        // themselves; vitest's headless flag is Playwright's.
        headless: name === "chromium",
        // The bare test page, not vitest's UI (a Vue app that asks for web fonts, and that
        // WebKitGTK 2.50's MiniBrowser crashes on).
        ui: false,
        screenshotFailures: false,
        provider,
        instances: [{ browser: name }],
      },
    },
  };
}

const chromiumProvider = playwright({
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
});

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
        extends: true,
        test: {
          name: "node",
          include: ALL,
          // Bundled apps are checked in Chromium, so only where it is installed.
          exclude: [
            ...(browsers.chromium ? [] : ["test/bundlers.test.ts", "test/page.test.ts"]),
            ...BROWSER_ONLY_SUITES,
            ...POOLED_NODE_SUITES,
          ],
        },
      },
      // The SIMD build "node" does not pick: relaxed SIMD under V8's flag on Node 20, SIMD128
      // pinned where relaxed SIMD is on by default, so every Node runs both SIMD builds.
      RELAXED_FLAGS.length > 0
        ? pinnedNodeProject("node-relaxed", {
            execArgv: RELAXED_FLAGS,
            exclude: POOLED_NODE_SUITES,
          })
        : pinnedNodeProject("node-simd128", {
            env: { WASM_ATTENTION_BUILD: "simd128" },
            exclude: POOLED_NODE_SUITES,
          }),
      pinnedNodeProject("node-scalar", {
        env: { WASM_ATTENTION_BUILD: "scalar" },
        exclude: POOLED_NODE_SUITES,
      }),
      pinnedNodeProject("node-threads", { env: { WASM_ATTENTION_THREADS: "2" } }),
      ...(browsers.chromium ? [browserProject("chromium", chromiumProvider)] : []),
      ...(browsers.firefox ? [browserProject("firefox", launchedBrowser("firefox"))] : []),
      ...(browsers.webkit ? [browserProject("webkit", launchedBrowser("webkit"))] : []),
    ],
  },
});
