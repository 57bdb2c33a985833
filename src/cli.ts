// The wasm-attention command: `wasm-attention demo [--text ...] [--heads n] [--layers n] [--out dir]`.
// A bad option prints one line and exits with code 2.

import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DEFAULT_TEXT, runDemo, type DemoOptions } from "./demo.js";

const HELP = `wasm-attention demo: every attention mechanism of wasm-attention on one sentence.

Usage: wasm-attention demo [options]      (npm start runs it with the defaults)

Options:
  --text <sentence>   the text to attend over (default: a sample sentence)
  --heads <n>         attention heads per layer, 1-16 (default 4; head dim 16)
  --layers <n>        self-attention layers before the mechanisms run, 1-12 (default 2)
  --out <dir>         where to write the heatmaps and index.html (default ./attention-report)
  --help              show this help

It prints, per mechanism, the time, the mean entropy of the attention rows and the key each of a
few queries attends most, and writes one SVG heatmap per mechanism, per layer and head, and the
attention rollout, plus an HTML report with all of them.`;

class UsageError extends Error {}

export function parseArgs(argv: string[]): DemoOptions | "help" {
  const args = [...argv];
  if (args[0] === "demo") args.shift();
  const options: DemoOptions = { text: DEFAULT_TEXT, heads: 4, layers: 2, out: "attention-report" };
  const count = (flag: string, value: string | undefined, max: number): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new UsageError(`${flag} needs an integer from 1 to ${max}, got ${value ?? "nothing"}`);
    }
    return n;
  };
  while (args.length > 0) {
    const flag = args.shift()!;
    if (flag === "--help" || flag === "-h") return "help";
    const value = args.shift();
    switch (flag) {
      case "--text":
        if (!value) throw new UsageError("--text needs a sentence");
        options.text = value;
        break;
      case "--heads":
        options.heads = count(flag, value, 16);
        break;
      case "--layers":
        options.layers = count(flag, value, 12);
        break;
      case "--out":
        if (!value) throw new UsageError("--out needs a directory");
        options.out = value;
        break;
      default:
        throw new UsageError(`unknown option ${flag} (try --help)`);
    }
  }
  return options;
}

function progressBar(done: number, total: number, what: string): void {
  if (!process.stderr.isTTY) return;
  const width = 24;
  const filled = Math.round((done / total) * width);
  process.stderr.write(
    `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${what}`.padEnd(70),
  );
  if (done === total) process.stderr.write("\r".padEnd(72) + "\r");
}

async function main(): Promise<void> {
  let options: DemoOptions | "help";
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`wasm-attention: ${err.message}`);
    process.exit(2);
  }
  if (options === "help") {
    console.log(HELP);
    return;
  }
  const out = resolve(options.out);
  mkdirSync(out, { recursive: true });
  try {
    await runDemo(
      { ...options, out },
      {
        log: (line) => console.log(line),
        progress: progressBar,
        write: (file, text) => writeFileSync(join(out, file), text),
      },
    );
  } catch (err) {
    console.error(`wasm-attention: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  }
}

await main();
