// Starts the browsers that Playwright cannot drive here, pointed at one URL: Debian's Firefox ESR
// (headless, a fresh profile) and WebKitGTK's MiniBrowser (under xvfb-run, as it has no headless
// mode). Used by the vitest "firefox" and "webkit" projects (scripts/vitest-launch-provider.mjs)
// and by bench/engines.mjs. The page reports back to its own server; nothing here drives it.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";

export const FIREFOX = process.env.FIREFOX_PATH ?? "/usr/bin/firefox-esr";
export const MINIBROWSER =
  process.env.MINIBROWSER_PATH ?? "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";
const XVFB_RUN = "/usr/bin/xvfb-run";
const WEBKIT_WEBDRIVER = "/usr/bin/WebKitWebDriver";

/** Whether this machine can start the browser: Firefox ESR, or MiniBrowser with xvfb-run. */
export function browserAvailable(name) {
  if (name === "firefox") return existsSync(FIREFOX);
  if (name === "webkit") {
    return [MINIBROWSER, XVFB_RUN, WEBKIT_WEBDRIVER].every((path) => existsSync(path));
  }
  throw new Error(`unknown browser ${name}`);
}

// A new profile without first-run pages, telemetry, update checks or background connections (the
// machine has no network but loopback: every attempt would be refused and logged).
const FIREFOX_PREFS = {
  "browser.shell.checkDefaultBrowser": false,
  "browser.startup.page": 0,
  "browser.startup.homepage_override.mstone": "ignore",
  "browser.aboutwelcome.enabled": false,
  "datareporting.policy.dataSubmissionEnabled": false,
  "datareporting.healthreport.uploadEnabled": false,
  "toolkit.telemetry.enabled": false,
  "toolkit.telemetry.reportingpolicy.firstRun": false,
  "app.update.enabled": false,
  "app.normandy.enabled": false,
  "extensions.update.enabled": false,
  "browser.safebrowsing.malware.enabled": false,
  "browser.safebrowsing.phishing.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "browser.newtabpage.enabled": false,
  "dom.disable_open_during_load": false,
  // Background tabs and iframes are not throttled: a test page must run at full speed.
  "dom.min_background_timeout_value": 0,
  "dom.timeout.enable_budget_timer_throttling": false,
};

/**
 * Opens `url` in the browser; resolves, once the page is asked for, to `close()`, which ends the browser (and, for WebKit, its X
 * server) and removes the profile. `onExit` is told if the browser ends by itself.
 */
export async function launchBrowser(name, url, onExit = () => {}) {
  let child;
  let profile;
  if (name === "firefox") {
    profile = mkdtempSync(join(tmpdir(), "wasm-attention-firefox-"));
    const prefs = Object.entries(FIREFOX_PREFS)
      .map(([key, value]) => `user_pref(${JSON.stringify(key)}, ${JSON.stringify(value)});`)
      .join("\n");
    writeFileSync(join(profile, "user.js"), prefs + "\n");
    child = spawn(FIREFOX, ["--headless", "--no-remote", "--profile", profile, url], {
      detached: true,
      stdio: "ignore",
      env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: "1" },
    });
  } else if (name === "webkit") {
    // MiniBrowser started by hand crashes (SIGSEGV in its UI process) on vitest's page; driven
    // by WebKitWebDriver it runs in automation mode, which is how WebKit's own tests run it.
    const port = await freePort();
    child = spawn(XVFB_RUN, ["-a", WEBKIT_WEBDRIVER, `--port=${port}`], {
      detached: true,
      stdio: ["ignore", "ignore", process.env.BROWSER_STDERR ? "inherit" : "ignore"],
      // No GPU: no accelerated compositing. WebKitGTK builds leave SharedArrayBuffer off even in
      // a cross-origin isolated page, where Safari has it: JavaScriptCore's own option turns it
      // on, so the worker pool is tested in JavaScriptCore as Safari users get it.
      env: { ...process.env, WEBKIT_DISABLE_COMPOSITING_MODE: "1", JSC_useSharedArrayBuffer: "1" },
    });
    await openInWebDriver(port, url);
  } else {
    throw new Error(`unknown browser ${name}`);
  }
  let exited = false;
  child.on("exit", (code, signal) => {
    exited = true;
    onExit(code, signal);
  });
  return {
    async close() {
      if (!exited) {
        try {
          process.kill(-child.pid, "SIGTERM"); // the whole group: browser, content processes, Xvfb
        } catch {
          // already gone
        }
        await new Promise((resolve) => {
          const timer = setTimeout(() => {
            try {
              process.kill(-child.pid, "SIGKILL");
            } catch {
              // already gone
            }
            resolve();
          }, 5000);
          child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
          if (exited) resolve();
        });
      }
      if (profile) rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Asks WebKitWebDriver on `port` for a MiniBrowser session and sends it to `url`. */
async function openInWebDriver(port, url) {
  const base = `http://127.0.0.1:${port}`;
  const request = async (path, body) => {
    const response = await fetch(base + path, { method: "POST", body: JSON.stringify(body) });
    const reply = await response.json();
    if (!response.ok) throw new Error(`WebKitWebDriver ${path}: ${JSON.stringify(reply.value)}`);
    return reply.value;
  };
  // The driver needs a moment to listen on its port.
  const deadline = Date.now() + 20_000;
  let session;
  for (;;) {
    try {
      session = await request("/session", {
        capabilities: {
          alwaysMatch: {
            browserName: "MiniBrowser",
            "webkitgtk:browserOptions": { binary: MINIBROWSER, args: ["--automation"] },
          },
        },
      });
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  // Navigation answers once the page has loaded; the page then runs by itself.
  void request(`/session/${session.sessionId}/url`, { url }).catch(() => {});
}

/** A TCP port nobody listens on now, from the kernel. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
