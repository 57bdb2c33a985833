// docs/api.md cannot drift from the code: every export of the package's public entry (values and
// types, read by the TypeScript compiler from src/index.ts) has a heading or an entry in it, and
// every option key a public function, method or constructor accepts (the properties of its
// parameters' object types, nested option objects included, as the compiler sees them) is
// mentioned in it. Adding an export or an option without documenting it fails here.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const apiDoc = readFileSync(join(root, "docs", "api.md"), "utf8");

interface Surface {
  /** Every exported name (values and types). */
  exports: string[];
  /** Option key → where it is accepted (e.g. "scaledDotProductAttention options.causal"). */
  optionKeys: Map<string, string[]>;
}

/** Reads the public surface of `entry` with the TypeScript compiler (the project's tsconfig). */
function publicSurface(entry: string): Surface {
  const config = ts.readConfigFile(join(root, "tsconfig.json"), (path) => ts.sys.readFile(path));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const program = ts.createProgram([entry], { ...parsed.options, noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  if (!source) throw new Error(`${entry} is not in the program`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  if (!moduleSymbol) throw new Error(`${entry} is not a module`);

  const optionKeys = new Map<string, string[]>();
  const record = (key: string, where: string): void => {
    const places = optionKeys.get(key) ?? [];
    if (!places.includes(where)) places.push(where);
    optionKeys.set(key, places);
  };
  // Object types the project declares in its TypeScript sources (not the typed arrays, URL,
  // Response... of lib.d.ts and @types/node).
  const isOwnObjectType = (type: ts.Type): boolean => {
    const declarations = (type.aliasSymbol ?? type.getSymbol())?.getDeclarations() ?? [];
    return declarations.some((d) => !d.getSourceFile().isDeclarationFile);
  };
  const isPublicName = (name: string): boolean => !name.startsWith("#") && !name.startsWith("__");
  const isClassInstance = (type: ts.Type): boolean =>
    ((type.getSymbol()?.getFlags() ?? 0) & ts.SymbolFlags.Class) !== 0;
  const visited = new Set<ts.Type>();

  // The keys of an argument's type: each property of an object type (unions and intersections
  // taken apart), and the keys of nested option objects (`dropout: { p, seed }`, `rope`, `weights`,
  // hybrid `terms`). Class instances (a KVCache, a WasmTensor passed as a tensor) are handles, not
  // options: their members are documented with the class.
  const collect = (type: ts.Type, where: string): void => {
    const t = checker.getNonNullableType(type);
    if (visited.has(t)) return;
    visited.add(t);
    if (t.isUnion() || t.isIntersection()) {
      for (const part of t.types) collect(part, where);
      return;
    }
    if (checker.isArrayType(t) || checker.isTupleType(t)) {
      for (const element of checker.getTypeArguments(t as ts.TypeReference))
        collect(element, where);
      return;
    }
    if (!(t.getFlags() & ts.TypeFlags.Object) || !isOwnObjectType(t) || isClassInstance(t)) return;
    if (t.getCallSignatures().length > 0) return;
    for (const property of checker.getPropertiesOfType(t)) {
      const name = property.getName();
      if (!isPublicName(name)) continue; // #private members, symbol-keyed brands (MhaSaved)
      record(name, `${where}.${name}`);
      const declaration = property.valueDeclaration ?? property.getDeclarations()?.[0];
      if (declaration) {
        collect(checker.getTypeOfSymbolAtLocation(property, declaration), `${where}.${name}`);
      }
    }
  };
  const collectSignature = (signature: ts.Signature, where: string): void => {
    for (const parameter of signature.getParameters()) {
      const declaration = parameter.valueDeclaration;
      if (!declaration) continue;
      visited.clear();
      collect(
        checker.getTypeOfSymbolAtLocation(parameter, declaration),
        `${where} ${parameter.getName()}`,
      );
    }
  };
  // Functions, a class's constructors and public methods, an object's methods (sparsePatterns).
  const collectCallable = (type: ts.Type, where: string): void => {
    for (const signature of type.getCallSignatures()) collectSignature(signature, where);
    for (const signature of type.getConstructSignatures()) {
      collectSignature(signature, `new ${where}`);
      collectMethods(signature.getReturnType(), where);
    }
    if (type.getCallSignatures().length === 0 && type.getConstructSignatures().length === 0) {
      collectMethods(type, where);
    }
  };
  const collectMethods = (type: ts.Type, where: string): void => {
    if (!isOwnObjectType(type)) return;
    for (const property of checker.getPropertiesOfType(type)) {
      const name = property.getName();
      if (!isPublicName(name) || !property.valueDeclaration) continue;
      const propertyType = checker.getTypeOfSymbolAtLocation(property, property.valueDeclaration);
      for (const signature of propertyType.getCallSignatures()) {
        collectSignature(signature, `${where}.${name}`);
      }
    }
  };

  const exports: string[] = [];
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const name = exported.getName();
    exports.push(name);
    const symbol =
      exported.getFlags() & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const declaration = symbol.valueDeclaration;
    if (declaration && symbol.getFlags() & ts.SymbolFlags.Value) {
      collectCallable(checker.getTypeOfSymbolAtLocation(symbol, declaration), name);
    }
  }
  return { exports: exports.sort(), optionKeys };
}

/** Identifiers that open an entry: a code span in a heading, or the first code span of a table
 * row or a list item (`### \`softmax(x, options?)\``, `| \`causal\` | ...`, `- \`free()\`: ...`). */
function documentedEntries(markdown: string): Set<string> {
  const entries = new Set<string>();
  const identifier = (span: string): string | undefined =>
    /^(?:new\s+|[\w$]+\.)*([\w$]+)/.exec(span)?.[1];
  for (const line of markdown.split("\n")) {
    const spans = [...line.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    if (/^#{1,6}\s/.test(line)) {
      for (const span of spans) {
        const id = identifier(span);
        if (id) entries.add(id);
      }
    } else if (/^\s*(\||[-*]\s)/.test(line)) {
      // The entry's subject: the first code span of the row's first cell or of the list item.
      const first = /^\s*(?:\|\s*|[-*]\s+)`([^`]+)`/.exec(line)?.[1];
      const id = first === undefined ? undefined : identifier(first);
      if (id) entries.add(id);
    }
  }
  return entries;
}

/** Every identifier written in code (code spans and fenced blocks) anywhere in the document. */
function mentionedInCode(markdown: string): Set<string> {
  const words = new Set<string>();
  const code = [
    ...[...markdown.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map((m) => m[1]),
    ...[...markdown.replace(/^```[\s\S]*?^```/gm, "").matchAll(/`([^`\n]+)`/g)].map((m) => m[1]),
  ];
  for (const text of code) for (const word of text.match(/[\w$]+/g) ?? []) words.add(word);
  return words;
}

const surface = publicSurface(join(root, "src", "index.ts"));

describe("docs/api.md", () => {
  it("reads the package's exports and options from the compiler", () => {
    // The reader itself must see what matters, or the checks below would pass on nothing.
    expect(surface.exports).toEqual(
      expect.arrayContaining(["init", "initSync", "scaledDotProductAttention", "Tensor"]),
    );
    expect(surface.optionKeys.get("threads")).toContain("init options.threads");
    expect([...surface.optionKeys.keys()]).toEqual(
      expect.arrayContaining(["causal", "seed", "p", "base", "terms", "temperature", "maxLength"]),
    );
  });

  it("has a heading or an entry for every export of src/index.ts", () => {
    const entries = documentedEntries(apiDoc);
    const missing = surface.exports.filter((name) => !entries.has(name));
    expect(missing, "exports without a heading or table/list entry in docs/api.md").toEqual([]);
  });

  it("mentions every option key a public function, method or constructor accepts", () => {
    const mentioned = mentionedInCode(apiDoc);
    const missing = [...surface.optionKeys]
      .filter(([key]) => !mentioned.has(key))
      .map(([key, where]) => `${key} (${where.join(", ")})`);
    expect(missing, "option keys docs/api.md never mentions in code").toEqual([]);
  });

  it("fails for an export or an option added without docs", () => {
    // A scratch entry re-exporting the package plus one new, undocumented function.
    const dir = join(root, "build", "docs-api-check");
    mkdirSync(dir, { recursive: true });
    const entry = join(dir, "entry.ts");
    writeFileSync(
      entry,
      [
        `export * from "../../src/index.js";`,
        `export function undocumentedOp(x: number, options: { undocumentedKey?: { nested: number } } = {}): number {`,
        `  return x + (options.undocumentedKey?.nested ?? 0);`,
        `}`,
      ].join("\n"),
    );
    const scratch = publicSurface(entry);
    const entries = documentedEntries(apiDoc);
    const mentioned = mentionedInCode(apiDoc);
    expect(scratch.exports.filter((name) => !entries.has(name))).toEqual(["undocumentedOp"]);
    expect([...scratch.optionKeys.keys()].filter((key) => !mentioned.has(key))).toEqual([
      "undocumentedKey",
      "nested",
    ]);
  });
});
