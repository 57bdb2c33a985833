// The page of bench/engines.mjs in Chromium, Firefox and WebKit: runs the cases (?quick=1 for the
// few repetitions of --quick) and posts the results, or the error, to the server that served it.
import { runCases } from "./cases.mjs";

function post(path, body) {
  return fetch(path, { method: "POST", body: JSON.stringify(body) });
}

function report(error) {
  void post("/error", { message: String(error?.stack ?? error) });
}

addEventListener("error", (event) => report(event.error ?? event.message));
addEventListener("unhandledrejection", (event) => report(event.reason));

const quick = new URLSearchParams(location.search).get("quick") === "1";
// Let the page finish loading (and the browser settle) before the timing starts.
setTimeout(() => {
  document.body.textContent = "running…";
  runCases({ quick }).then(async (result) => {
    await post("/result", result);
    document.body.textContent = "done";
  }, report);
}, 100);
