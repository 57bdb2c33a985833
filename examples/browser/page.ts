// The browser page of examples/browser: as the user types, tokens → embeddings → a stack of
// untrained MultiHeadAttention layers, then the selected layer and head as a heatmap, its entropy
// per query, and the rollout over all layers, coloured as the command-line demo's maps (relative to
// uniform attention); below, the training view (train-view.ts). Built and served by `npm run page`
// (scripts/page.mjs).
import { renderDemoHeatmap } from "../../src/cli/demo/heatmap";
import { headWeights, runLayers } from "../../src/cli/demo/layers";
import { MAX_TOKENS, tokenize } from "../../src/cli/demo/tokenize";
import { attentionEntropy, attentionRollout, init, type Tensor } from "../../src/index";
import { setUpTraining } from "./train-view";

const LAYERS = 3;
const HEADS = 4;
const E = HEADS * 16;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const text = $<HTMLInputElement>("text");
const layerSelect = $<HTMLSelectElement>("layer");
const headSelect = $<HTMLSelectElement>("head");

function options(select: HTMLSelectElement, n: number): void {
  select.innerHTML = Array.from(
    { length: n },
    (_, i) => `<option value="${i}">${i + 1}</option>`,
  ).join("");
}

let state: { tokens: string[]; layers: Tensor[] } | undefined;

/** No maps: a message instead, and nothing left over from the previous text. */
function clear(message: string): void {
  state = undefined;
  for (const id of ["heatmap", "rollout", "entropy"]) $(id).replaceChildren();
  $("status").textContent = message;
}

function compute(): void {
  const tokens = tokenize(text.value);
  if (tokens.length < 2) return clear("type at least two words");
  if (tokens.length > MAX_TOKENS) {
    return clear(`${tokens.length} tokens: the page draws at most ${MAX_TOKENS}`);
  }
  const t0 = performance.now();
  state = { tokens, layers: runLayers(tokens, E, HEADS, LAYERS).layers };
  $("status").textContent =
    `${tokens.length} tokens, ${LAYERS} layers × ${HEADS} heads in ${(performance.now() - t0).toFixed(1)} ms`;
  draw();
}

function draw(): void {
  if (!state) return;
  const { tokens, layers } = state;
  const N = tokens.length;
  const layer = Number(layerSelect.value);
  const head = Number(headSelect.value);
  const weights = headWeights(layers[layer], head, N);
  $("heatmap").innerHTML = renderDemoHeatmap({
    weights,
    tokens,
    title: `layer ${layer + 1}, head ${head + 1}`,
  });
  $("rollout").innerHTML = renderDemoHeatmap({
    weights: attentionRollout(layers).data,
    tokens,
    title: `rollout over ${LAYERS} layers`,
  });
  const entropy = attentionEntropy({ data: weights, shape: [N, N] }).data;
  $("entropy").textContent = tokens
    .map((token, i) => `${token.padEnd(12)} ${entropy[i].toFixed(4)}`)
    .join("\n");
}

await init();
options(layerSelect, LAYERS);
options(headSelect, HEADS);
text.addEventListener("input", compute);
layerSelect.addEventListener("change", draw);
headSelect.addEventListener("change", draw);
compute();
setUpTraining();
document.body.dataset.ready = "true";
