// Enforces the one-way flow of imports `src → adapters → engine → dsl` (see DESIGN.md), keeps the
// emulators beside that pipeline, and reports import cycles between files. `npm run
// check:boundaries` runs it on the repository; `checkBoundaries(root)` is the same check as a
// function, for tests.
//
// Rules, for every .ts file under dsl/, engine/, adapters/, src/ and emulators/:
// - dsl/       imports nothing from engine/, adapters/, src/ or emulators/; no package but
//              `effect`; no Node builtin but `node:crypto`.
// - engine/    imports nothing from adapters/, src/ or emulators/; no package but `effect` and
//              `node:` builtins.
// - adapters/  imports nothing from src/ or emulators/ (an adapter talks to an emulator only
//              through the real client, at an address).
// - emulators/ import nothing from the project (dsl/, engine/, adapters/, src/): they stand in
//              for Google, not for us. Only src/ (the CLI, `taskgraph/emulators`), tests,
//              examples and benchmarks import them.
// Imports counted: `import … from`, `import "…"`, `export … from`, `import("…")` (also in type
// positions), `import x = require("…")`. Type-only imports count too, for the rules and cycles.
// The package's own name ("taskgraph") resolves through package.json `exports` (the
// `taskgraph-source` condition first: the sources, as the repository runs them), so a
// self-reference is judged by the folder it lands in.

import { existsSync } from "node:fs"
import { readdir, readFile } from "node:fs/promises"
import path from "node:path"

/** The folders the check covers: the pipeline in the order data flows through it, then the emulators beside it. */
export const LAYERS = ["dsl", "engine", "adapters", "src", "emulators"] as const
export type Layer = (typeof LAYERS)[number]

/** One import that breaks a rule. Paths are relative to the checked root, with `/`. */
export interface Violation {
  readonly file: string
  readonly specifier: string
  readonly reason: string
}

/** The outcome of one check: no violations and no cycles means the tree is clean. */
export interface BoundaryReport {
  readonly filesChecked: number
  readonly violations: ReadonlyArray<Violation>
  /** Each cycle as a path of files that starts and ends with the same file. */
  readonly cycles: ReadonlyArray<ReadonlyArray<string>>
}

interface Policy {
  readonly forbiddenLayers: ReadonlyArray<Layer>
  /** `undefined`: any package. */
  readonly packages: ReadonlyArray<string> | undefined
  /** `"any"`: every `node:` builtin. */
  readonly builtins: ReadonlyArray<string> | "any"
}

const POLICIES: Record<Layer, Policy> = {
  dsl: { forbiddenLayers: ["engine", "adapters", "src", "emulators"], packages: ["effect"], builtins: ["node:crypto"] },
  engine: { forbiddenLayers: ["adapters", "src", "emulators"], packages: ["effect"], builtins: "any" },
  adapters: { forbiddenLayers: ["src", "emulators"], packages: undefined, builtins: "any" },
  src: { forbiddenLayers: [], packages: undefined, builtins: "any" },
  emulators: { forbiddenLayers: ["dsl", "engine", "adapters", "src"], packages: undefined, builtins: "any" },
}

const SOURCE_EXTENSIONS = [".ts", ".mts", ".cts"]

/** Checks the tree under `root` (a directory holding dsl/, engine/, adapters/, src/, emulators/). */
export async function checkBoundaries(root: string): Promise<BoundaryReport> {
  const absoluteRoot = path.resolve(root)
  const files: Array<string> = []
  for (const layer of LAYERS) files.push(...(await listSourceFiles(path.join(absoluteRoot, layer))))
  files.sort()
  const self = await readSelfReference(absoluteRoot)
  const known = new Set(files)
  const edges = new Map<string, Set<string>>()
  const violations: Array<Violation> = []

  for (const file of files) {
    const layer = layerOf(absoluteRoot, file)
    if (layer === undefined) continue
    const policy = POLICIES[layer]
    const targets = new Set<string>()
    edges.set(file, targets)
    const source = await readFile(file, "utf8")
    for (const specifier of importSpecifiers(source)) {
      const violation = (reason: string) =>
        violations.push({ file: relative(absoluteRoot, file), specifier, reason })
      const target = resolveLocal(absoluteRoot, file, specifier, self)
      if (target !== undefined) {
        const resolved = resolveFile(target, known)
        if (resolved !== undefined) targets.add(resolved)
        const targetLayer = layerOf(absoluteRoot, target)
        if (targetLayer !== undefined && policy.forbiddenLayers.includes(targetLayer)) {
          violation(`${layer}/ must not import from ${targetLayer}/ (resolves to ${relative(absoluteRoot, target)})`)
        }
      } else if (specifier.startsWith("node:")) {
        if (policy.builtins !== "any" && !policy.builtins.includes(specifier)) {
          violation(`${layer}/ may use only ${policy.builtins.join(", ")} among Node builtins`)
        }
      } else if (policy.packages !== undefined) {
        const name = packageName(specifier)
        if (!policy.packages.includes(name)) {
          const hint = isBareBuiltin(name) ? ` (a Node builtin is written "node:${name}")` : ""
          violation(`${layer}/ may import only the package(s) ${policy.packages.join(", ")}, not "${name}"${hint}`)
        }
      }
    }
  }

  const cycles = findCycles(edges).map((cycle) => cycle.map((file) => relative(absoluteRoot, file)))
  return { filesChecked: files.length, violations, cycles }
}

/** Renders a report as the lines the CLI prints. */
export function formatReport(report: BoundaryReport): Array<string> {
  if (report.violations.length === 0 && report.cycles.length === 0) {
    return [`check-boundaries: OK (${report.filesChecked} files checked)`]
  }
  return [
    ...report.violations.map((v) => `${v.file}: import "${v.specifier}": ${v.reason}`),
    ...report.cycles.map((cycle) => `import cycle: ${cycle.join(" → ")}`),
    `check-boundaries: ${report.violations.length} violation(s), ${report.cycles.length} cycle(s) in ${report.filesChecked} files`,
  ]
}

// ---------------------------------------------------------------------------------------------
// Import extraction: a small tokenizer (comments, strings, templates, regular expressions are
// skipped correctly) followed by pattern matching on the token stream.

type Token =
  | { readonly kind: "word"; readonly value: string }
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "punct"; readonly value: string }

const REGEX_AFTER_WORDS = new Set([
  "return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do",
  "else", "yield", "await",
])

/** Every module specifier imported or re-exported by a TypeScript source text. */
export function importSpecifiers(source: string): Array<string> {
  const tokens = tokenize(source)
  const found: Array<string> = []
  const at = (i: number): Token | undefined => tokens[i]
  const isPunct = (t: Token | undefined, value: string) => t?.kind === "punct" && t.value === value
  const isWord = (t: Token | undefined, value: string) => t?.kind === "word" && t.value === value
  // after `import` / `export`: skip a clause made of names, braces, commas, `*`, `as`, `type`
  // and look for `from "…"`.
  const fromClause = (start: number): string | undefined => {
    for (let i = start; i < tokens.length; i++) {
      const t = at(i)
      if (t === undefined) return undefined
      // after the closing brace of `{ … }` only `from` may follow (`export { a }` ends there)
      if (isPunct(at(i - 1), "}") && !isWord(t, "from")) return undefined
      if (t.kind === "word" && t.value === "from") {
        const next = at(i + 1)
        if (next?.kind === "string") return next.value
        continue // `from` used as a binding name
      }
      if (t.kind === "word") continue
      if (t.kind === "punct" && ["{", "}", ",", "*"].includes(t.value)) continue
      return undefined
    }
    return undefined
  }

  for (let i = 0; i < tokens.length; i++) {
    const t = at(i)
    if (t?.kind !== "word") continue
    const prev = at(i - 1)
    if (isPunct(prev, ".")) continue // a property named import/export
    if (t.value === "import") {
      const next = at(i + 1)
      if (next?.kind === "string") {
        found.push(next.value) // import "side-effect"
      } else if (isPunct(next, "(")) {
        const arg = at(i + 2)
        if (arg?.kind === "string") found.push(arg.value) // import("…"), typeof import("…")
      } else if (isPunct(next, ".")) {
        // import.meta
      } else {
        const spec = fromClause(i + 1)
        if (spec !== undefined) found.push(spec)
        else {
          // import x = require("…")
          const eq = tokens.findIndex((tok, j) => j > i && j < i + 5 && isPunct(tok, "="))
          if (eq !== -1 && isWord(at(eq + 1), "require") && isPunct(at(eq + 2), "(")) {
            const arg = at(eq + 3)
            if (arg?.kind === "string") found.push(arg.value)
          }
        }
      }
    } else if (t.value === "export") {
      const next = at(i + 1)
      const afterType = isWord(next, "type") ? at(i + 2) : next
      if (isPunct(afterType, "{") || isPunct(afterType, "*")) {
        const spec = fromClause(i + 1)
        if (spec !== undefined) found.push(spec)
      }
    }
  }
  return found.filter((specifier) => specifier !== "")
}

function tokenize(source: string): Array<Token> {
  const tokens: Array<Token> = []
  // one entry per open `${`: the brace depth at which the template resumes
  const templateStack: Array<number> = []
  let braceDepth = 0
  let i = 0
  const n = source.length

  const regexAllowed = (): boolean => {
    const last = tokens[tokens.length - 1]
    if (last === undefined) return true
    if (last.kind === "string") return false
    if (last.kind === "word") return REGEX_AFTER_WORDS.has(last.value)
    return ![")", "]", "}"].includes(last.value)
  }

  // reads a template literal body from i (just after ` or }), stopping after ` or at `${`
  const readTemplate = () => {
    while (i < n) {
      const c = source[i]
      if (c === "\\") { i += 2; continue }
      if (c === "`") { i++; tokens.push({ kind: "string", value: "" }); return }
      if (c === "$" && source[i + 1] === "{") {
        i += 2
        templateStack.push(braceDepth)
        braceDepth++
        tokens.push({ kind: "punct", value: "${" })
        return
      }
      i++
    }
  }

  while (i < n) {
    const c = source[i] as string
    const d = source[i + 1]
    if (/\s/.test(c)) { i++; continue }
    if (c === "/" && d === "/") {
      while (i < n && source[i] !== "\n") i++
      continue
    }
    if (c === "/" && d === "*") {
      const end = source.indexOf("*/", i + 2)
      i = end === -1 ? n : end + 2
      continue
    }
    if (c === "'" || c === '"') {
      let value = ""
      i++
      while (i < n && source[i] !== c && source[i] !== "\n") {
        if (source[i] === "\\") { value += source[i + 1] ?? ""; i += 2; continue }
        value += source[i]
        i++
      }
      i++
      tokens.push({ kind: "string", value })
      continue
    }
    if (c === "`") { i++; readTemplate(); continue }
    if (c === "{") { braceDepth++; i++; tokens.push({ kind: "punct", value: "{" }); continue }
    if (c === "}") {
      braceDepth--
      i++
      if (templateStack.length > 0 && templateStack[templateStack.length - 1] === braceDepth) {
        templateStack.pop()
        readTemplate()
      } else {
        tokens.push({ kind: "punct", value: "}" })
      }
      continue
    }
    if (c === "/" && regexAllowed()) {
      i++
      let inClass = false
      while (i < n && source[i] !== "\n") {
        const r = source[i]
        if (r === "\\") { i += 2; continue }
        if (r === "[") inClass = true
        else if (r === "]") inClass = false
        else if (r === "/" && !inClass) break
        i++
      }
      i++
      while (i < n && /[a-z]/i.test(source[i] as string)) i++
      tokens.push({ kind: "string", value: "" })
      continue
    }
    if (/[A-Za-z_$\u0080-\uffff]/.test(c)) {
      let j = i + 1
      while (j < n && /[\w$\u0080-\uffff]/.test(source[j] as string)) j++
      tokens.push({ kind: "word", value: source.slice(i, j) })
      i = j
      continue
    }
    if (/[0-9]/.test(c)) {
      let j = i + 1
      while (j < n && /[\w.]/.test(source[j] as string)) j++
      tokens.push({ kind: "word", value: source.slice(i, j) })
      i = j
      continue
    }
    tokens.push({ kind: "punct", value: c })
    i++
  }
  return tokens
}

// ---------------------------------------------------------------------------------------------
// Resolution

interface SelfReference {
  readonly name: string
  /** subpath ("." or "./x") → target file relative to root */
  readonly exports: ReadonlyMap<string, string>
}

async function readSelfReference(root: string): Promise<SelfReference | undefined> {
  const file = path.join(root, "package.json")
  if (!existsSync(file)) return undefined
  const pkg = JSON.parse(await readFile(file, "utf8")) as { name?: unknown; exports?: unknown }
  if (typeof pkg.name !== "string") return undefined
  const exports = new Map<string, string>()
  const target = (value: unknown): string | undefined => {
    if (typeof value === "string") return value
    if (value !== null && typeof value === "object") {
      for (const key of ["taskgraph-source", "import", "node", "default"]) {
        const t = target((value as Record<string, unknown>)[key])
        if (t !== undefined) return t
      }
    }
    return undefined
  }
  const raw = pkg.exports
  if (typeof raw === "string") exports.set(".", raw)
  else if (raw !== null && typeof raw === "object") {
    const entries = Object.entries(raw as Record<string, unknown>)
    if (entries.every(([key]) => key.startsWith("."))) {
      for (const [key, value] of entries) {
        const t = target(value)
        if (t !== undefined) exports.set(key, t)
      }
    } else {
      const t = target(raw)
      if (t !== undefined) exports.set(".", t)
    }
  }
  return { name: pkg.name, exports }
}

/** The absolute path an in-repository specifier points at, or undefined for a package/builtin. */
function resolveLocal(root: string, from: string, specifier: string, self: SelfReference | undefined): string | undefined {
  if (specifier.startsWith("./") || specifier.startsWith("../") || specifier === "." || specifier === "..") {
    return path.resolve(path.dirname(from), specifier)
  }
  if (specifier.startsWith("/")) return path.resolve(specifier)
  if (self !== undefined && (specifier === self.name || specifier.startsWith(`${self.name}/`))) {
    const subpath = `.${specifier.slice(self.name.length)}`
    const exact = self.exports.get(subpath)
    if (exact !== undefined) return path.resolve(root, exact)
    for (const [pattern, target] of self.exports) {
      const star = pattern.indexOf("*")
      if (star === -1) continue
      const prefix = pattern.slice(0, star)
      const suffix = pattern.slice(star + 1)
      if (subpath.startsWith(prefix) && subpath.endsWith(suffix)) {
        const matched = subpath.slice(prefix.length, subpath.length - suffix.length)
        return path.resolve(root, target.replace("*", matched))
      }
    }
    return path.resolve(root, "src") // an unexported subpath still belongs to the public face
  }
  return undefined
}

/** The checked source file a resolved path names (trying `.ts` and `index.ts` forms). */
function resolveFile(target: string, known: ReadonlySet<string>): string | undefined {
  const candidates = [target]
  if (/\.[mc]?js$/.test(target)) candidates.push(target.replace(/js$/, "ts"))
  for (const ext of SOURCE_EXTENSIONS) candidates.push(target + ext, path.join(target, `index${ext}`))
  return candidates.find((candidate) => known.has(candidate))
}

function layerOf(root: string, file: string): Layer | undefined {
  const first = path.relative(root, file).split(path.sep)[0]
  return LAYERS.find((layer) => layer === first)
}

function packageName(specifier: string): string {
  const parts = specifier.split("/")
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier)
}

const BARE_BUILTINS = new Set([
  "assert", "async_hooks", "buffer", "child_process", "cluster", "crypto", "dgram", "dns", "events",
  "fs", "http", "http2", "https", "module", "net", "os", "path", "perf_hooks", "process",
  "querystring", "readline", "stream", "string_decoder", "timers", "tls", "url", "util", "v8",
  "vm", "worker_threads", "zlib",
])
function isBareBuiltin(name: string): boolean {
  return BARE_BUILTINS.has(name)
}

function relative(root: string, file: string): string {
  return path.relative(root, file).split(path.sep).join("/")
}

async function listSourceFiles(dir: string): Promise<Array<string>> {
  if (!existsSync(dir)) return []
  const out: Array<string> = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules" && !entry.name.startsWith(".")) out.push(...(await listSourceFiles(full)))
    } else if (entry.isFile() && SOURCE_EXTENSIONS.some((ext) => entry.name.endsWith(ext))) {
      out.push(full)
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Cycles: Tarjan's strongly connected components; one concrete cycle reported per component.

function findCycles(edges: ReadonlyMap<string, ReadonlySet<string>>): Array<Array<string>> {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const onStack = new Set<string>()
  const stack: Array<string> = []
  const components: Array<Array<string>> = []
  let counter = 0

  const strongConnect = (v: string) => {
    index.set(v, counter)
    low.set(v, counter)
    counter++
    stack.push(v)
    onStack.add(v)
    for (const w of [...(edges.get(v) ?? [])].sort()) {
      if (!index.has(w)) {
        strongConnect(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number))
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: Array<string> = []
      let w: string | undefined
      do {
        w = stack.pop()
        if (w === undefined) break
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      const selfLoop = edges.get(v)?.has(v) === true
      if (component.length > 1 || selfLoop) components.push(component)
    }
  }
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) strongConnect(v)

  return components
    .map((component) => cyclePath(component, edges))
    .sort((a, b) => (a[0] ?? "").localeCompare(b[0] ?? ""))
}

/** A shortest cycle through the component's first file (breadth-first within the component). */
function cyclePath(component: ReadonlyArray<string>, edges: ReadonlyMap<string, ReadonlySet<string>>): Array<string> {
  const members = new Set(component)
  const start = [...component].sort()[0] as string
  const parent = new Map<string, string>()
  const queue: Array<string> = [start]
  while (queue.length > 0) {
    const v = queue.shift() as string
    for (const w of [...(edges.get(v) ?? [])].sort()) {
      if (!members.has(w)) continue
      if (w === start) {
        const back: Array<string> = []
        for (let u: string | undefined = v; u !== undefined && u !== start; u = parent.get(u)) back.push(u)
        return [start, ...back.reverse(), start]
      }
      if (!parent.has(w)) {
        parent.set(w, v)
        queue.push(w)
      }
    }
  }
  return [start, start]
}

// ---------------------------------------------------------------------------------------------

if (import.meta.main) {
  const root = path.resolve(import.meta.dirname, "..")
  const report = await checkBoundaries(root)
  const lines = formatReport(report)
  const failed = report.violations.length > 0 || report.cycles.length > 0
  for (const line of lines) (failed ? console.error : console.log)(line)
  if (failed) process.exitCode = 1
}
