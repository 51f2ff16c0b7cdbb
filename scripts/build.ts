// `npm run build` (and `prepack`): a clean dist/ from tsconfig.build.json — JavaScript,
// declarations and their maps — with the CLI entry made executable.
//
// tsc rewrites the sources' relative `.ts` imports to `.js` in the JavaScript it emits, but not
// in declarations; an application's tsc would then refuse them (TS5097 without
// allowImportingTsExtensions). So relative specifiers in the emitted .d.ts files are rewritten
// here too: `from "./x.ts"` and `import("./x.ts")` become "./x.js".
//
// The dashboard's browser files (adapters/hono/dashboard/assets/: plain JavaScript, CSS, SVG) are
// no TypeScript: they are copied beside the module that serves them, which reads them from there.
import { execFileSync } from "node:child_process"
import { chmod, cp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const dist = path.join(root, "dist")
await rm(dist, { recursive: true, force: true })
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc")
execFileSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.build.json")], { cwd: root, stdio: "inherit" })

const relativeTs = /((?:from|import)\s*\(?\s*)(["'])(\.{1,2}\/[^"']*?)\.ts\2/g
let rewritten = 0
for (const entry of await readdir(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue
  const file = path.join(entry.parentPath, entry.name)
  const text = await readFile(file, "utf8")
  const fixed = text.replace(relativeTs, (_, lead: string, quote: string, specifier: string) => `${lead}${quote}${specifier}.js${quote}`)
  if (fixed !== text) {
    await writeFile(file, fixed)
    rewritten++
  }
}
await chmod(path.join(dist, "src", "bin.js"), 0o755)
const assets = path.join("adapters", "hono", "dashboard", "assets")
await cp(path.join(root, assets), path.join(dist, assets), { recursive: true })
const copied = (await readdir(path.join(dist, assets))).length
console.log(`dist/: built, relative .ts specifiers rewritten in ${rewritten} declaration files, ${copied} dashboard assets copied`)
