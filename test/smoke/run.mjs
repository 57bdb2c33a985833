// Smoke test entry for Node, Deno and Bun: imports the package by name and prints the report.
import * as api from "wasm-attention";
import { smoke } from "./smoke-core.mjs";

console.log(JSON.stringify(await smoke(api)));
