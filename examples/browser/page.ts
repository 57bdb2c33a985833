// The browser page of examples/browser: as the user types, tokens → embeddings → a stack of
// MultiHeadAttention layers, then the selected layer and head as a heatmap, its entropy per query,
// and the rollout over all layers; below, the training example (train-view.ts). Built and served by
// `npm run page` (scripts/page.mjs).
import { runLayers, tokenize } from "../../src/demo";
import {
  attentionEntropy,
  attentionRollout,
  init,
  renderHeatmapSvg,
  type Tensor,
} from "../../src/index";
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

function compute(): void {
  const tokens = tokenize(text.value);
  if (tokens.length < 2) {
    $("status").textContent = "type at least two words";
    return;
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
  const weights = {
    data: layers[layer].data.slice(head * N * N, (head + 1) * N * N),
    shape: [N, N],
  };
  const labels = { rowLabels: tokens, colLabels: tokens };
  $("heatmap").innerHTML = renderHeatmapSvg(weights, {
    ...labels,
    title: `layer ${layer + 1}, head ${head + 1}`,
  });
  const rollout = attentionRollout(layers);
  $("rollout").innerHTML = renderHeatmapSvg(
    { data: rollout.data, shape: [N, N] },
    { ...labels, title: `rollout over ${LAYERS} layers` },
  );
  const entropy = attentionEntropy(weights).data;
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
