// The command line's arguments: `demo` (optional), then options as `--name value` or
// `--name=value`. A bad option is a UsageError: one line on stderr and exit code 2 (src/cli/cli.ts).

import {
  DEFAULT_OUT,
  DEFAULT_STEPS,
  DEFAULT_TEXT,
  textProblem,
  type DemoOptions,
} from "../demo.js";

export class UsageError extends Error {}

export type Command = DemoOptions | "help" | "version";

function count(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${flag} needs an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

export function parseArgs(argv: readonly string[]): Command {
  const args = [...argv];
  if (args[0] === "demo") args.shift();
  const options: DemoOptions = {
    text: DEFAULT_TEXT,
    heads: 4,
    layers: 2,
    steps: DEFAULT_STEPS,
    out: DEFAULT_OUT,
  };
  while (args.length > 0) {
    const arg = args.shift()!;
    if (arg === "--help" || arg === "-h") return "help";
    if (arg === "--version" || arg === "-v") return "version";
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const takeValue = (): string => {
      const value = eq > 0 && flag !== arg ? arg.slice(eq + 1) : args.shift();
      if (value === undefined) throw new UsageError(`${flag} needs a value (try --help)`);
      return value;
    };
    switch (flag) {
      case "--text": {
        options.text = takeValue();
        const problem = textProblem(options.text);
        if (problem) throw new UsageError(problem);
        break;
      }
      case "--heads":
        options.heads = count(flag, takeValue(), 1, 16);
        break;
      case "--layers":
        options.layers = count(flag, takeValue(), 1, 12);
        break;
      case "--steps":
        options.steps = count(flag, takeValue(), 0, 5000);
        break;
      case "--out":
        options.out = takeValue();
        if (options.out === "") throw new UsageError("--out needs a directory");
        break;
      default:
        throw new UsageError(`unknown option ${flag} (try --help)`);
    }
  }
  return options;
}
