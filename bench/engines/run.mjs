// The command-line runner of bench/engines.mjs for Node, Deno and Bun: runs the cases and prints
// one line, the marker and the results as JSON (anything else the engine prints is ignored).
//   node bench/engines/run.mjs [--quick]      (deno run / bun run it the same way)
import { runCases } from "./cases.mjs";

const args = globalThis.Deno ? globalThis.Deno.args : globalThis.process.argv.slice(2);
const result = await runCases({ quick: args.includes("--quick") });
console.log(`@@engines ${JSON.stringify(result)}`);
