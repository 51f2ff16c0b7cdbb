// The README's "Going to production" section, checked against the code, so that a setting renamed
// in the code (or misspelt in the README) fails here:
//
// - its configuration example (the ```ts block that starts with `// taskgraph.config.ts`) is
//   loaded with the CLI's own loader (`loadConfig`) and comes back section by section as written,
//   and the sync commands accept it (`--dry-run` against the emulators); only its import
//   specifiers are rewritten, to this checkout and to a stand-in for the application's module;
// - every name in its inline code is looked up where it lives: an environment variable
//   (`ALL_CAPS_WITH_UNDERSCORES`) must be read through `process.env` by the library's code (or by
//   the third-party package listed below); a command (`taskgraph …`, also in its sh blocks) must
//   have help, with every `--flag` it shows; a lone `--flag` must be one of some command's; an
//   option, function or dotted path (`pool.max`, `syncOnStart.queues`, `close()`) must be declared,
//   each part, as an option property, a Schema field or an export of the sources (MikroORM's
//   options for the ORM's own); a `lower_case_name` must be a setting of the PostgreSQL server;
//   `taskgraph/…` must be an entry point; a file name must exist.
//   Spans that are not names of ours are left alone: `gcloud …` commands, URLs, paths, emails,
//   `<patterns>`, IAM roles (those are checked against Google's documentation, not code);
// - the Cloud SQL URL it gives connects, through a socket directory of Cloud Run's shape, for
//   `migrate` and for MikroORM, and the `?host=` spelling it warns about does not reach MikroORM.
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { existsSync } from "node:fs"
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest"
import { migrate } from "../adapters/postgres/migrate.ts"
import { startEmulators, type Emulators } from "../emulators/index.ts"
import { main } from "../src/cli.ts"
import { defaultConfigFiles, loadConfig } from "../src/ConfigFile.ts"
import { freshDatabase, type FreshDatabase } from "./support/db.ts"

const root = fileURLToPath(new URL("..", import.meta.url))
const readme = await readFile(path.join(root, "README.md"), "utf8")

/** The section: from its heading to the next `## ` heading. */
const section = (() => {
  const start = readme.indexOf("\n## Going to production\n")
  if (start < 0) throw new Error('README.md has no "## Going to production" section')
  const end = readme.indexOf("\n## ", start + 1)
  return readme.slice(start, end < 0 ? undefined : end)
})()

interface Fence {
  readonly info: string
  readonly code: string
}

const fences: ReadonlyArray<Fence> = [...section.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => ({ info: m[1]!.trim(), code: m[2]! }))
/** The section's prose: its inline code spans, whitespace folded (a span may wrap a line). */
const spans: ReadonlyArray<string> = [...section.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, "").matchAll(/`([^`]+)`/g)].map((m) =>
  m[1]!.replace(/\s+/g, " ").trim()
)

// --- where names live ------------------------------------------------------------------------

const listTs = async (dir: string): Promise<Array<string>> => {
  const entries = await readdir(path.join(root, dir), { withFileTypes: true, recursive: true })
  return entries.filter((e) => e.isFile() && e.name.endsWith(".ts")).map((e) => path.join(e.parentPath, e.name))
}
/** The library's code, file by file, comments removed (a doc comment's example is not a setting). */
const libraryFiles = await Promise.all(
  (await Promise.all(["src", "adapters", "dsl", "engine"].map(listTs))).flat().map(async (file) =>
    (await readFile(file, "utf8")).replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
  ),
)
const libraryCode = libraryFiles.join("\n")
/** MikroORM's options, for the ORM configuration the section shows. */
const mikroOrmOptions = await readFile(path.join(root, "node_modules/@mikro-orm/core/utils/Configuration.d.ts"), "utf8")
/** Variables the section names that another package reads, and the file of that package that reads them. */
const thirdPartyVariables: Readonly<Record<string, string>> = {
  METADATA_SERVER_DETECTION: "node_modules/gcp-metadata/build/src/index.js",
}
const entryPoints = Object.keys((JSON.parse(await readFile(path.join(root, "package.json"), "utf8")) as { exports: Record<string, unknown> }).exports)

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Read as `process.env.NAME`, or named as a string by a file that reads `process.env[…]` (the CLI's emulator flags). */
const isReadVariable = async (name: string): Promise<boolean> => {
  if (new RegExp(`process\\.env\\.${name}\\b`).test(libraryCode)) return true
  if (libraryFiles.some((code) => code.includes("process.env[") && new RegExp(`["'\`]${name}["'\`]`).test(code))) return true
  const file = thirdPartyVariables[name]
  return file !== undefined && (await readFile(path.join(root, file), "utf8")).includes(name)
}

/** Declared as an option or a field, or exported, by the library; or one of MikroORM's options. */
const isDeclared = (name: string): boolean => {
  const n = escapeRegExp(name)
  return [
    new RegExp(`\\breadonly ${n}\\??:`), // an interface's member
    new RegExp(`\\b${n}: Schema\\.`), // a Schema.Struct field
    new RegExp(`\\bexport (?:const|function|async function|class|type|interface) ${n}\\b`),
    new RegExp(`\\bexport (?:type )?\\{[^}]*\\b${n}\\b[^}]*\\}`),
  ].some((pattern) => pattern.test(libraryCode)) || new RegExp(`^\\s+${n}\\??:`, "m").test(mikroOrmOptions)
}

/** What `main(argv)` prints, and its exit code. */
const cli = async (argv: ReadonlyArray<string>): Promise<{ readonly code: number; readonly output: string }> => {
  const lines: Array<string> = []
  const log = vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => void lines.push(args.join(" ")))
  const error = vi.spyOn(console, "error").mockImplementation((...args: Array<unknown>) => void lines.push(args.join(" ")))
  try {
    return { code: await main(argv), output: lines.join("\n") }
  } finally {
    log.mockRestore()
    error.mockRestore()
  }
}

/** A PostgreSQL server setting (`max_connections`), asked of the test server. */
const isPostgresSetting = async (name: string): Promise<boolean> => {
  const client = new pg.Client({ connectionString: inject("postgresAdminUrl") })
  await client.connect()
  try {
    return (await client.query("select 1 from pg_settings where name = $1", [name])).rowCount === 1
  } finally {
    await client.end()
  }
}

const jsWords = new Set(["true", "false", "null", "undefined"])
const isEnvName = (span: string) => /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/.test(span)

/** What is wrong with one inline code span: "" when nothing is (or it names nothing of ours). */
const problemOf = async (span: string): Promise<string> => {
  if (/^gcloud\b/.test(span) || /^roles\//.test(span)) return ""
  if (isEnvName(span)) return (await isReadVariable(span)) ? "" : `environment variable ${span}: nothing reads it`
  // `taskgraph queues sync --dry-run`, or without `taskgraph` when its first word is a command (`pubsub sync`)
  const command = /^(?:npx )?taskgraph ((?:[a-z]+ ?)+)(.*)$/.exec(span) ??
    (/^[a-z]+ [a-z]+(?: --[a-z-]+)*$/.test(span) && (await topCommands()).includes(span.split(" ")[0]!) ? /^((?:[a-z]+ ?)+)(.*)$/.exec(span) : null)
  if (command !== null) {
    const words = command[1]!.trim().split(" ")
    const help = await cli([...words, "--help"])
    if (help.code !== 0 || !help.output.includes(`taskgraph ${words.join(" ")}`)) return `command "taskgraph ${words.join(" ")}": no such command`
    const missing = [...command[2]!.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]).filter((flag) => !help.output.includes(flag))
    return missing.length === 0 ? "" : `command "taskgraph ${words.join(" ")}" has no ${missing.join(", ")}`
  }
  if (/^[a-z]+(?:_[a-z]+)+$/.test(span)) return (await isPostgresSetting(span)) ? "" : `PostgreSQL setting ${span}: the server has none`
  if (/^--[a-z][a-z-]*$/.test(span)) return (await allHelp()).includes(span) ? "" : `flag ${span}: no command has it`
  if (/^taskgraph\/[a-z-]+$/.test(span)) return entryPoints.includes(`./${span.slice("taskgraph/".length)}`) ? "" : `entry point ${span}: not in package.json's exports`
  if (/^[\w./-]+\.(?:ts|json)$/.test(span) && !span.startsWith(".")) {
    return (defaultConfigFiles as ReadonlyArray<string>).includes(span) || existsSync(path.join(root, span)) ? "" : `file ${span}: no such file`
  }
  // code: a name, a dotted path, a call, or `key: value`
  if (!/^[A-Za-z_$][\w$.]*(?:\(.*\)!?)?$/s.test(span) && !/^[a-z]\w*: \S+$/.test(span)) return ""
  const code = span.replace(/"[^"]*"|'[^']*'/g, "")
  const problems: Array<string> = []
  for (const [, name] of code.matchAll(/process\.env\.([A-Z0-9_]+)/g)) {
    if (!(await isReadVariable(name!))) problems.push(`environment variable ${name}: nothing reads it`)
  }
  for (const name of code.replace(/process\.env\.[A-Z0-9_]+/g, " ").match(/[A-Za-z_$][\w$]*/g) ?? []) {
    if (!jsWords.has(name) && !isDeclared(name)) problems.push(`"${name}" (in \`${span}\`): not an option, field or export of the code`)
  }
  return problems.join("; ")
}

let helpText: Promise<string> | undefined
/** A help's table of subcommands (`commands:` then `  name  description` lines). */
const subcommandsOf = (help: string): Array<string> => {
  const table = /^commands:\n((?: {2}\S.*\n?)+)/m.exec(help)?.[1] ?? ""
  return [...table.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!)
}
let topLevel: Promise<Array<string>> | undefined
/** The commands `taskgraph --help` lists. */
const topCommands = () => (topLevel ??= cli(["--help"]).then((help) => subcommandsOf(help.output)))
/** Every command's help, every group's subcommands' too, for lone flags. */
const allHelp = () =>
  (helpText ??= (async () => {
    const helps: Array<string> = []
    const visit = async (path: ReadonlyArray<string>): Promise<void> => {
      const help = (await cli([...path, "--help"])).output
      helps.push(help)
      for (const name of subcommandsOf(help)) await visit([...path, name])
    }
    await visit([])
    return helps.join("\n")
  })())

// --- the tests -------------------------------------------------------------------------------

describe('README "Going to production"', () => {
  it("names nothing the code lacks", async () => {
    expect(spans.length).toBeGreaterThan(50)
    const shCommands = fences.filter((f) => f.info === "sh").flatMap((f) => [...f.code.matchAll(/^\s*(npx taskgraph [^#\n]*)/gm)].map((m) => m[1]!.trim()))
    expect(shCommands.length).toBeGreaterThan(0)
    const problems: Array<string> = []
    // one at a time: a command's help is read from the console
    for (const span of new Set([...spans, ...shCommands])) {
      const problem = await problemOf(span)
      if (problem !== "") problems.push(problem)
    }
    expect(problems).toEqual([])
  })

  it("the checks themselves refuse names the code does not have", async () => {
    for (const wrong of ["NO_SUCH_VARIABLE", "max_connexions", "queues synk", "pubsub sync --no-such-flag", "taskgraph nosuch", "taskgraph migrate --no-such-flag", "--no-such-flag", "pool.maxx", "noSuchOption: true", "syncOnStart.nosuch", "taskgraph/nosuch", "nosuch.config.ts"]) {
      expect(await problemOf(wrong), wrong).not.toBe("")
    }
    // and accept what they should, including a doc comment's variable only as code reads it
    for (const right of ["DATABASE_URL", "taskgraph pubsub sync --dry-run --prune", "schedules sync", "max_connections", "--url", "shutdownOnSignals: true", "close()", "clientUrl"]) {
      expect(await problemOf(right), right).toBe("")
    }
    expect(await problemOf("TASKGRAPH_SECRET"), "a variable only a doc comment mentions").not.toBe("")
  })

  describe("the configuration example", () => {
    const block = fences.find((f) => f.info.startsWith("ts") && f.code.startsWith("// taskgraph.config.ts"))
    let dir: string
    let file: string
    let emulators: Emulators
    beforeAll(async () => {
      if (block === undefined) throw new Error("the section has no ```ts block starting with // taskgraph.config.ts")
      dir = await mkdtemp(path.join(os.tmpdir(), "readme-production-"))
      await mkdir(path.join(dir, "src"))
      // the application's module the example imports: a topic, a subscriber and a periodic schedule
      const dsl = pathToFileURL(path.join(root, "dsl/index.ts")).href
      await writeFile(
        path.join(dir, "src/jobs.ts"),
        [
          `import { Effect, Schema } from "effect"`,
          `import { chain, periodic, subscriber, task, topic, workflow } from ${JSON.stringify(dsl)}`,
          `const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })`,
          `export const orders = topic("orders", Order)`,
          `const bill = task("billOrder", { input: Order, output: Schema.String, run: (o) => Effect.succeed(o.id) })`,
          `export const onOrder = subscriber(orders, "orders-billing", bill)`,
          `const report = task("report", { input: Schema.Null, output: Schema.Null, run: () => Effect.succeed(null) })`,
          `export const nightly = periodic("nightly", { cron: "0 2 * * *" }, workflow("nightlyReport", chain(report)), null)`,
        ].join("\n"),
      )
      const source = block.code
        .replace(/from "taskgraph\/config"/g, `from ${JSON.stringify(pathToFileURL(path.join(root, "src/config.ts")).href)}`)
        .replace(/from "\.\/src\/jobs\.ts"/g, `from "./src/jobs.ts"`)
      file = path.join(dir, "taskgraph.config.ts")
      await writeFile(file, source)
      emulators = await startEmulators()
    })
    afterAll(async () => {
      await emulators?.stop()
      if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    })

    it("loads with the CLI's loader, every section as written", async () => {
      const written = ((await import(pathToFileURL(file).href)) as { default: Record<string, unknown> }).default
      const loaded = await loadConfig(file)
      expect(Object.keys(loaded).sort()).toEqual(Object.keys(written).sort())
      for (const key of Object.keys(written)) expect((loaded as Record<string, unknown>)[key], key).toEqual(written[key])
      // the sections the prose describes are all in the example
      expect(Object.keys(loaded).sort()).toEqual(["cloudTasks", "pubsub", "scheduler", "schedules", "subscribers", "topics"])
      expect(loaded.pubsub?.subscriptions?.["orders-billing"]).toEqual({ push: true, ackDeadline: 60, maxDeliveryAttempts: 10 })
    })

    it("is refused when a key is misspelt (so loading it as written means something)", async () => {
      const misspelt = path.join(dir, "misspelt.config.ts")
      await writeFile(misspelt, (await readFile(file, "utf8")).replace("ackDeadline:", "ackDeadlin:"))
      await expect(loadConfig(misspelt)).rejects.toThrow(/ackDeadlin/)
    })

    it("is what the sync commands take: each plans against the emulators", async () => {
      for (const command of [["queues", "sync"], ["schedules", "sync"], ["pubsub", "sync"]]) {
        const result = await cli([...command, "--config", file, "--dry-run", "--emulator", emulators.address])
        expect(result, command.join(" ")).toMatchObject({ code: 0 })
        expect(result.output).toMatch(/would create/)
      }
    })
  })

  describe("the Cloud SQL URL", () => {
    let db: FreshDatabase
    let dir: string
    /** The README's URL, its user, password and database those of a test database, its /cloudsql under `dir`. */
    let url: string
    beforeAll(async () => {
      const given = /DATABASE_URL=(postgresql:\/\/\S+)/.exec(fences.filter((f) => f.info === "sh").map((f) => f.code).join("\n"))?.[1]
      if (given === undefined) throw new Error("the section gives no DATABASE_URL=postgresql://… in an sh block")
      db = await freshDatabase()
      const client = new pg.Client({ connectionString: db.url })
      await client.connect()
      const socketDir = String((await client.query("select current_setting('unix_socket_directories') as d")).rows[0].d).split(",")[0]!.trim()
      const port = String((await client.query("select current_setting('port') as p")).rows[0].p)
      await client.end()
      dir = await mkdtemp(path.join(os.tmpdir(), "readme-cloudsql-"))
      const readmeUrl = new URL(given)
      const instanceDir = decodeURIComponent(readmeUrl.hostname) // /cloudsql/<project>:<region>:<instance>
      expect(instanceDir).toMatch(/^\/cloudsql\/[^/:]+:[^/:]+:[^/:]+$/)
      await mkdir(path.join(dir, instanceDir), { recursive: true })
      await symlink(path.join(socketDir, `.s.PGSQL.${port}`), path.join(dir, instanceDir, ".s.PGSQL.5432"))
      // for the ?host= spelling on port 1, where nothing listens on TCP
      await symlink(path.join(socketDir, `.s.PGSQL.${port}`), path.join(dir, instanceDir, ".s.PGSQL.1"))
      const test = new URL(db.url)
      url = `postgresql://${test.username}:${test.password}@${encodeURIComponent(path.join(dir, instanceDir))}${test.pathname}`
    })
    afterAll(async () => {
      await db?.drop()
      if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    })

    it("reaches the database through the socket for migrate and for MikroORM", async () => {
      expect((await migrate(url, undefined, { source: "DATABASE_URL" })).length).toBeGreaterThan(0)
      const orm = await MikroORM.init(defineConfig({ clientUrl: url, entities: [], discovery: { warnWhenNoEntities: false }, ensureDatabase: false, pool: { min: 0, max: 2 } }))
      try {
        // no server address: the connection is a Unix socket
        const [row] = await orm.em.getConnection().execute<Array<{ addr: string | null; db: string }>>("select inet_server_addr() as addr, current_database() as db")
        expect(row).toEqual({ addr: null, db: new URL(db.url).pathname.slice(1) })
      } finally {
        await orm.close()
      }
    })

    it("spelt with ?host=, reaches it for migrate but not for MikroORM, as the section warns", async () => {
      const instance = decodeURIComponent(new URL(url).hostname)
      const test = new URL(db.url)
      const queryForm = `postgresql://${test.username}:${test.password}@localhost:1${test.pathname}?host=${instance}`
      expect(await migrate(queryForm, undefined, { source: "DATABASE_URL" })).toEqual([])
      const orm = await MikroORM.init(defineConfig({ clientUrl: queryForm, entities: [], discovery: { warnWhenNoEntities: false }, ensureDatabase: false }))
      try {
        await expect(orm.em.getConnection().execute("select 1")).rejects.toThrow(/ECONNREFUSED/)
      } finally {
        await orm.close()
      }
    })
  })
})
