// A vitest browser provider for the browsers Playwright cannot start here (Firefox ESR, WebKitGTK):
// it opens the test page in the real browser (scripts/browsers.mjs) and lets vitest's own page
// talk to the test runner over its WebSocket, as the "preview" provider does with a desktop
// browser. The numeric suites need nothing else: no clicks, no screenshots.
import { defineBrowserProvider } from "@vitest/browser";
import { launchBrowser } from "./browsers.mjs";

class LaunchedBrowserProvider {
  name = "launched";
  supportsParallelism = false;
  #browser;
  #project;
  #launched;

  constructor(project, browser) {
    this.#project = project;
    this.#browser = browser;
  }

  getCommandsContext() {
    return {};
  }

  async openPage(_sessionId, url) {
    await this.#launched?.close();
    this.#launched = await launchBrowser(this.#browser, url, (code, signal) => {
      if (this.#launched)
        this.#project.vitest.logger.error(
          `${this.#browser} exited (code ${code}, signal ${signal}) while tests were running`,
        );
    });
  }

  async close() {
    const launched = this.#launched;
    this.#launched = undefined;
    await launched?.close();
  }
}

/** The provider for a vitest browser project running in `browser` ("firefox" or "webkit"). */
export function launchedBrowser(browser) {
  return defineBrowserProvider({
    name: "launched",
    providerFactory(project) {
      return new LaunchedBrowserProvider(project, browser);
    },
  });
}
