// The wasm-attention command: `wasm-attention demo [options]` (src/cli/demo.ts writes what it shows
// into a directory). A bad option prints one line and exits with code 2; any other failure (a file
// that cannot be written, most often) prints one line and exits with code 1.

import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { version } from "../../package.json";
import { DEFAULT_OUT, DEFAULT_STEPS, MAX_TOKENS, runDemo, type DemoOptions } from "./demo.js";
import { parseArgs, UsageError, type Command } from "./demo/args.js";
import { MAX_DRAWN_TOKENS } from "./demo/heatmap.js";

const HELP = `wasm-attention demo: attention that has learnt something, and every mechanism of
wasm-attention on your text.

Usage: wasm-attention demo [options]      (npm start runs it with the defaults)

Options (--name value or --name=value):
  --text <sentence>   the text to attend over, 2-${MAX_TOKENS} tokens (words, punctuation, emoji;
                      default: a sample sentence)
  --heads <n>         attention heads per layer, 1-16 (default 4; head dim 16)
  --layers <n>        untrained self-attention layers, 1-12 (default 2)
  --steps <n>         training steps of the induction model, 0-5000 (default ${DEFAULT_STEPS}; 0 skips it)
  --out <dir>         where to write the heatmaps and index.html (default ./${DEFAULT_OUT})
  --version           print the version
  --help              show this help

It trains a two-layer causal model on a copy task (a few seconds) and prints how its heads attend
before and after training; runs every mechanism and a stack of untrained multi-head layers on the
text and prints, per mechanism, the time, the entropy of head 1 relative to uniform attention and
the key a few queries attend most. It writes one SVG heatmap per map (at most ${MAX_DRAWN_TOKENS} tokens a
side) and an index.html showing them all.`;

function progressBar(done: number, total: number, what: string): void {
  if (!process.stderr.isTTY) return;
  const width = 24;
  const filled = Math.round((done / total) * width);
  process.stderr.write(
    `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${what}`.padEnd(70),
  );
  if (done === total) process.stderr.write("\r".padEnd(72) + "\r");
}

/** One line on stderr, then exit: code 2 for a bad option, 1 for anything else. */
function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  console.error(`wasm-attention: ${message.replace(/\s*\n\s*/g, " ")}`);
  process.exit(err instanceof UsageError ? 2 : 1);
}

async function demo(options: DemoOptions): Promise<void> {
  const out = resolve(options.out);
  const write = (file: string, text: string): void => {
    try {
      writeFileSync(join(out, file), text);
    } catch (err) {
      fail(new Error(`cannot write ${join(out, file)}: ${(err as Error).message}`));
    }
  };
  try {
    mkdirSync(out, { recursive: true });
  } catch (err) {
    fail(new Error(`cannot create the report directory ${out}: ${(err as Error).message}`));
  }
  await runDemo(
    { ...options, out },
    { log: (line) => console.log(line), progress: progressBar, write },
  );
}

let command: Command;
try {
  command = parseArgs(process.argv.slice(2));
} catch (err) {
  fail(err);
}
if (command === "help") console.log(HELP);
else if (command === "version") console.log(version);
else await demo(command).catch(fail);
