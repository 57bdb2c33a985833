// Every code block of the README and the docs runs, so none can rot. ```js and ```ts blocks are
// complete programs as a user would paste them: each is written under build/snippets/ (inside the
// package, so `import ... from "wasm-attention"` resolves through the package's own `exports` to
// dist/; `npm test` builds it first), TypeScript is stripped with esbuild, and it runs in its own
// Node process, which must exit with code 0 and print nothing on stderr. ```sh blocks are commands:
// the `npm run`/`npm start`/`npm test` scripts and the files `node` runs must exist. ```text blocks
// are output. A block without a language, or with one of none of these, fails. The programs are
// also type-checked against the package's published declarations (`checkJs`, without strict null
// checks), so a misspelled option or a wrong argument fails even where the op would ignore it.
//
// A block may carry one attribute after its language:
// - `cloudflare-worker`: a Worker module (`export default { fetch }`); it is imported and sent one
//   request, in Node through the default entry (test/runtimes.test.ts runs the workerd entry).
// - `edge-route`: a route module exporting `POST(request)`, likewise.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as esbuild from "esbuild";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const outDir = join(root, "build", "snippets");
const DOCUMENTS = [
  "README.md",
  "CONTRIBUTING.md",
  "examples/README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const RUN_MS = 60_000;

interface Block {
  file: string;
  line: number;
  language: string;
  attribute: string | undefined;
  code: string;
}

/** The fenced code blocks of a markdown file (fences at the start of a line). */
function codeBlocks(file: string): Block[] {
  const lines = readFileSync(join(root, file), "utf8").split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [language = "", attribute, ...rest] = open[2].trim().split(/\s+/);
    if (rest.length > 0) throw new Error(`${file}:${i + 1}: more than one fence attribute`);
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== open[1]; i++) body.push(lines[i]);
    if (i === lines.length) throw new Error(`${file}:${start + 1}: unclosed code fence`);
    blocks.push({ file, line: start + 1, language, attribute, code: body.join("\n") + "\n" });
  }
  return blocks;
}

const blocks = DOCUMENTS.flatMap(codeBlocks);
const programs = blocks.filter((b) => b.language === "js" || b.language === "ts");
const commands = blocks.filter((b) => b.language === "sh");
const scripts = (
  JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  }
).scripts;

interface Run {
  code: number | null;
  killed: boolean;
  stdout: string;
  stderr: string;
}

function runNode(file: string, timeout: number): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [file],
      { cwd: root, timeout, killSignal: "SIGKILL", encoding: "utf8" },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        done({ code, killed: Boolean(error?.killed), stdout, stderr });
      },
    );
  });
}

// The driver that sends a Worker or route module one request, as its platform would.
function driver(module: string, attribute: string): string {
  const tensor = (shape: number[]) => ({
    data: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i)),
    shape,
  });
  const body =
    attribute === "cloudflare-worker"
      ? { q: tensor([2, 4, 8]), k: tensor([2, 4, 8]), v: tensor([2, 4, 8]) }
      : tensor([2, 4]);
  const call =
    attribute === "cloudflare-worker" ? "handler.default.fetch(request)" : "handler.POST(request)";
  return [
    `const handler = await import(${JSON.stringify(`./${module}`)});`,
    `const request = new Request("http://localhost/", { method: "POST", body: ${JSON.stringify(JSON.stringify(body))} });`,
    `const response = await ${call};`,
    `if (response.status !== 200) throw new Error("status " + response.status);`,
    `const result = await response.json();`,
    `if (!Array.isArray(result.data) || !Array.isArray(result.shape)) throw new Error("no tensor in the response");`,
    `console.log(result.shape);`,
  ].join("\n");
}

async function writeProgram(block: Block): Promise<string> {
  const name = `${block.file.replace(/[^\w]+/g, "-")}-L${block.line}`;
  const code =
    block.language === "ts"
      ? (await esbuild.transform(block.code, { loader: "ts", format: "esm", target: "es2022" }))
          .code
      : block.code;
  writeFileSync(join(outDir, `${name}.mjs`), code);
  if (block.attribute === "cloudflare-worker" || block.attribute === "edge-route") {
    writeFileSync(join(outDir, `${name}.driver.mjs`), driver(`${name}.mjs`, block.attribute));
    return join(outDir, `${name}.driver.mjs`);
  }
  return join(outDir, `${name}.mjs`);
}

beforeAll(() => {
  if (!existsSync(join(root, "dist", "index.js"))) {
    throw new Error("dist/ is missing: run `npm run build` first (npm test does)");
  }
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
});

afterAll(() => {
  rmSync(outDir, { recursive: true, force: true });
});

describe("code blocks in the README and the docs", () => {
  it("are found, and each has a language this test knows", () => {
    expect(programs.length).toBeGreaterThan(5);
    const unknown = blocks
      .filter(
        (b) =>
          !["js", "ts", "sh", "text"].includes(b.language) ||
          (b.attribute !== undefined &&
            !(
              ["js", "ts"].includes(b.language) &&
              ["cloudflare-worker", "edge-route"].includes(b.attribute)
            )),
      )
      .map((b) => `${b.file}:${b.line} \`\`\`${b.language} ${b.attribute ?? ""}`);
    expect(unknown).toEqual([]);
  });

  it.each(programs.map((b) => [`${b.file}:${b.line}`, b] as const))(
    "%s runs as pasted",
    async (_, block) => {
      const file = await writeProgram(block);
      const run = await runNode(file, RUN_MS);
      expect(run.killed, `did not exit within ${RUN_MS / 1000} s`).toBe(false);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
    },
    RUN_MS + 10_000,
  );

  it("type-check against the package's declarations", async () => {
    const files = await Promise.all(programs.map(writeProgram));
    const program = ts.createProgram(files, {
      allowJs: true,
      checkJs: true,
      noEmit: true,
      // As a JavaScript user runs them: no null checks, but every name, argument and option key.
      strict: false,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
      types: ["node"],
      skipLibCheck: true,
    });
    const errors = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file
        ? `${d.file.fileName.slice(outDir.length + 1)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}`
        : "";
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
    });
    expect(errors).toEqual([]);
  });

  it("name only npm scripts and files that exist", () => {
    const problems: string[] = [];
    for (const block of commands) {
      const named = [
        ...[...block.code.matchAll(/\bnpm run ([\w:-]+)/g)].map((m) => m[1]),
        ...[...block.code.matchAll(/\bnpm (start|test)\b/g)].map((m) => m[1]),
      ];
      for (const name of named) {
        if (!(name in scripts)) problems.push(`${block.file}:${block.line}: no script "${name}"`);
      }
      for (const [, path] of block.code.matchAll(/\bnode ((?:[\w.-]+\/)*[\w.-]+\.m?[jt]s)\b/g)) {
        if (!existsSync(join(root, path))) problems.push(`${block.file}:${block.line}: ${path}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
