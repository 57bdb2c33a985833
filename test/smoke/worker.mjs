// Smoke test as a Cloudflare Worker: bundled with the `workerd` condition, so the package's workerd
// entry imports the .wasm as a module, as Workers require.
import * as api from "wasm-attention";
import { smoke } from "./smoke-core.mjs";

export default {
  async fetch() {
    return Response.json(await smoke(api));
  },
};
