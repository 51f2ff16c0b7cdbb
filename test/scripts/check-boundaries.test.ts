import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { checkBoundaries, formatReport, importSpecifiers } from "../../scripts/check-boundaries.ts"

const roots: Array<string> = []

/** Writes a fixture tree ({ "dsl/a.ts": "…" }) into a new temporary directory. */
async function fixture(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), "check-boundaries-"))
  roots.push(root)
  for (const [file, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true })
    await writeFile(path.join(root, file), content)
  }
  return root
}

afterEach(async () => {
  await Promise.all(roots.splice(0).map((root) => rm(root, { recursive: true, force: true })))
})

describe("checkBoundaries", () => {
  it("accepts a clean tree that follows src → adapters → engine → dsl", async () => {
    const root = await fixture({
      "package.json": JSON.stringify({ name: "pkg", exports: { ".": "./src/index.ts" } }),
      "dsl/Task.ts": `import { Effect } from "effect"\nimport { randomUUID } from "node:crypto"\nexport const t = 1`,
      "dsl/Chain.ts": `import type { t } from "./Task.ts"\nexport * from "./Task.ts"`,
      "engine/Engine.ts": `import { Schema } from "effect/Schema"\nimport fs from "node:fs"\nimport { t } from "../dsl/Task.ts"`,
      "adapters/pg/Store.ts": `import pg from "pg"\nimport { Engine } from "../../engine/Engine.ts"\nconst lazy = () => import("../../dsl/Chain.ts")`,
      "src/index.ts": `export * from "../dsl/Chain.ts"\nexport { Store } from "../adapters/pg/Store.ts"`,
    })
    const report = await checkBoundaries(root)
    expect(report).toEqual({ filesChecked: 5, violations: [], cycles: [] })
    expect(formatReport(report)).toEqual(["check-boundaries: OK (5 files checked)"])
  })

  it("reports dsl/ importing engine/, a forbidden package and a forbidden builtin", async () => {
    const root = await fixture({
      "dsl/Chain.ts": [
        `import { Engine } from "../engine/Engine.ts"`,
        `import { Client } from "pg"`,
        `import fs from "node:fs"`,
        `import { randomUUID } from "node:crypto"`,
        `// import { x } from "../src/index.ts" (a comment is not an import)`,
        `const s = "import { y } from '../adapters/a.ts'"`,
      ].join("\n"),
      "engine/Engine.ts": `export const Engine = 1`,
    })
    const report = await checkBoundaries(root)
    expect(report.cycles).toEqual([])
    expect(report.violations.map((v) => [v.file, v.specifier])).toEqual([
      ["dsl/Chain.ts", "../engine/Engine.ts"],
      ["dsl/Chain.ts", "pg"],
      ["dsl/Chain.ts", "node:fs"],
    ])
    expect(report.violations[0]?.reason).toContain("dsl/ must not import from engine/")
    expect(formatReport(report).at(-1)).toBe("check-boundaries: 3 violation(s), 0 cycle(s) in 2 files")
  })

  it("reports engine/ and adapters/ reaching up the flow, including through the package's own name", async () => {
    const root = await fixture({
      "package.json": JSON.stringify({ name: "pkg", exports: { ".": "./src/index.ts" } }),
      "engine/Engine.ts": `export type { Store } from "../adapters/Store.ts"\nimport { Hono } from "hono"`,
      "adapters/Store.ts": `import type { Config } from "pkg"\nexport type Store = typeof import("../src/index.ts")`,
      "src/index.ts": `export const Config = 1`,
    })
    const report = await checkBoundaries(root)
    expect(report.violations.map((v) => `${v.file} ${v.specifier}`)).toEqual([
      "adapters/Store.ts pkg",
      "adapters/Store.ts ../src/index.ts",
      "engine/Engine.ts ../adapters/Store.ts",
      "engine/Engine.ts hono",
    ])
  })

  it("keeps the emulators beside the pipeline: only src/ imports them, and they import nothing of ours", async () => {
    const root = await fixture({
      "package.json": JSON.stringify({ name: "pkg", exports: { ".": "./src/index.ts", "./emulators": "./src/emulators.ts" } }),
      "dsl/Task.ts": `import type { Clock } from "../emulators/shared/Clock.ts"`,
      "engine/Engine.ts": `const lazy = () => import("../emulators/index.ts")`,
      "adapters/tasks/Client.ts": `import { startEmulators } from "../../emulators/index.ts"`,
      "emulators/index.ts": `import * as grpc from "@grpc/grpc-js"\nimport { createHash } from "node:crypto"\nexport * from "./shared/Clock.ts"`,
      "emulators/shared/Clock.ts": `export type Clock = number`,
      "emulators/cloud-tasks/Store.ts": [
        `import { Engine } from "../../engine/Engine.ts"`,
        `import type { Client } from "../../adapters/tasks/Client.ts"`,
        `import type { Emulators } from "pkg/emulators"`,
        `import { t } from "../../dsl/Task.ts"`,
        `import type { Clock } from "../shared/Clock.ts"`,
      ].join("\n"),
      "src/emulators.ts": `export * from "../emulators/index.ts"`,
      "src/cli.ts": `const emulators = () => import("../emulators/index.ts")`,
    })
    const report = await checkBoundaries(root)
    expect(report.cycles).toEqual([])
    expect(report.violations.map((v) => `${v.file} ${v.specifier}`)).toEqual([
      "adapters/tasks/Client.ts ../../emulators/index.ts",
      "dsl/Task.ts ../emulators/shared/Clock.ts",
      "emulators/cloud-tasks/Store.ts ../../engine/Engine.ts",
      "emulators/cloud-tasks/Store.ts ../../adapters/tasks/Client.ts",
      "emulators/cloud-tasks/Store.ts pkg/emulators",
      "emulators/cloud-tasks/Store.ts ../../dsl/Task.ts",
      "engine/Engine.ts ../emulators/index.ts",
    ])
    expect(report.violations[0]?.reason).toBe("adapters/ must not import from emulators/ (resolves to emulators/index.ts)")
    expect(report.violations[4]?.reason).toBe("emulators/ must not import from src/ (resolves to src/emulators.ts)")
  })

  it("reports an import cycle with its path", async () => {
    const root = await fixture({
      "engine/A.ts": `import { b } from "./B.ts"\nexport const a = 1`,
      "engine/B.ts": `import { c } from "./C.ts"\nexport const b = 1`,
      "engine/C.ts": `export { a } from "./A.ts"\nexport const c = 1`,
      "engine/D.ts": `import { a } from "./A.ts"`,
    })
    const report = await checkBoundaries(root)
    expect(report.violations).toEqual([])
    expect(report.cycles).toEqual([["engine/A.ts", "engine/B.ts", "engine/C.ts", "engine/A.ts"]])
    expect(formatReport(report)).toContain("import cycle: engine/A.ts → engine/B.ts → engine/C.ts → engine/A.ts")
  })
})

describe("importSpecifiers", () => {
  it("finds static, re-export, type-only, side-effect and dynamic imports, and nothing else", () => {
    const source = [
      `import a from "a"`,
      `import type { B } from "b"`,
      `import * as c from "c"`,
      `import {`,
      `  d1,`,
      `  type d2,`,
      `} from "d"`,
      `import "e"`,
      `export * from "f"`,
      `export type { G } from "g"`,
      `export { h as default } from "h"`,
      `export { local }`,
      `export { other }\nimport o from "o"`,
      `const i = await import("i")`,
      `type J = typeof import("j")`,
      `const url = import.meta.url`,
      `const re = /import "k"/`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the fixture is source text with a template literal
      "const t = `import ${'x'} from \"l\"`",
      `/* import "m" */`,
      `const from = 1; const obj = { import: from }`,
      `import n = require("n")`,
    ].join("\n")
    expect(importSpecifiers(source)).toEqual(["a", "b", "c", "d", "e", "f", "g", "h", "o", "i", "j", "n"])
  })
})
