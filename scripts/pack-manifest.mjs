// The published package.json: `npm pack` / `npm publish` ship this repository's package.json
// without its `taskgraph-source` export conditions, which point at the TypeScript sources the
// repository itself runs from (Node strips no types under node_modules: an installed copy must
// resolve to dist/ only). `strip` (prepack) keeps the original beside it and rewrites the file;
// `restore` (postpack) puts the original back. A strip left behind by a failed pack is undone by
// the next one before it strips again.
import { existsSync } from "node:fs"
import { readFile, rename, writeFile } from "node:fs/promises"
import path from "node:path"

const root = path.join(import.meta.dirname, "..")
const manifest = path.join(root, "package.json")
const kept = path.join(root, "package.json.source")
const condition = "taskgraph-source"

const command = process.argv[2]
if (command === "strip") {
  if (existsSync(kept)) await rename(kept, manifest)
  const text = await readFile(manifest, "utf8")
  const pkg = JSON.parse(text)
  for (const target of Object.values(pkg.exports ?? {})) {
    if (typeof target === "object" && target !== null) delete target[condition]
  }
  const left = JSON.stringify(pkg.exports).match(/"[^"]*\.ts"/g)?.filter((t) => !t.endsWith('.d.ts"')) ?? []
  if (left.length > 0) throw new Error(`package.json exports still name TypeScript sources: ${left.join(", ")}`)
  await writeFile(kept, text)
  await writeFile(manifest, `${JSON.stringify(pkg, null, 2)}\n`)
} else if (command === "restore") {
  if (existsSync(kept)) await rename(kept, manifest)
} else {
  console.error("usage: node scripts/pack-manifest.mjs strip|restore")
  process.exit(2)
}
