// The page's training view: runs src/train (the model of examples/train, Adam and a task) in the
// page, logging the loss and drawing its curve (#loss-curve) between log entries, so the page stays
// responsive; the held-out accuracy lands in #train-log's data-accuracy when done.
import type { TaskName } from "../../src/training/task";
import { training } from "../../src/training/trainer";
import { renderLossCurve, type LossPoint } from "./loss-curve";

/** Log entries (and points of the curve) per run. */
const ENTRIES = 40;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

export function setUpTraining(): void {
  const button = $<HTMLButtonElement>("train");
  button.addEventListener("click", () => void run(button));
}

async function run(button: HTMLButtonElement): Promise<void> {
  const log = $<HTMLPreElement>("train-log");
  const curve = $<HTMLElement>("loss-curve");
  const task = $<HTMLSelectElement>("train-task").value as TaskName;
  const steps = Number($<HTMLInputElement>("train-steps").value);
  delete log.dataset.accuracy;
  if (!Number.isInteger(steps) || steps < 1) {
    log.textContent = "steps must be a positive integer";
    return;
  }
  button.disabled = true;
  log.textContent = "";
  const points: LossPoint[] = [];
  curve.innerHTML = renderLossCurve(points, steps);
  try {
    const run = training({ task, steps, logEvery: Math.max(1, Math.ceil(steps / ENTRIES)) });
    for (;;) {
      const next = run.next();
      if (next.done) {
        const r = next.value;
        log.textContent +=
          `held-out: ${(r.accuracy * 100).toFixed(1)}% of targets, ` +
          `${(r.sequenceAccuracy * 100).toFixed(1)}% of sequences entirely right ` +
          `(${r.config.layers} ${r.config.causal ? "causal" : "bidirectional"} layer(s), ` +
          `${(r.milliseconds / 1000).toFixed(1)} s)\n`;
        log.dataset.accuracy = String(r.accuracy);
        return;
      }
      const { step, loss, milliseconds } = next.value;
      log.textContent += `step ${String(step).padStart(5)}  loss ${loss.toFixed(4)}  ${(milliseconds / 1000).toFixed(1)} s\n`;
      log.scrollTop = log.scrollHeight;
      points.push({ step, loss });
      curve.innerHTML = renderLossCurve(points, steps);
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the page draw
    }
  } catch (err) {
    log.textContent += `failed: ${String(err)}\n`;
  } finally {
    button.disabled = false;
  }
}
