// Database URLs (adapters/postgres/DatabaseUrl.ts): a malformed one is refused before anything
// connects, and a database that cannot be connected to is named — host, port, database, user and
// where the URL came from, never the password — by migrate() and embedded() (the CLI: cli.test.ts).
import { mkdtemp, readdir, rm } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { Effect, Schema } from "effect"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { DatabaseConnectFailed, InvalidDatabaseUrl, parseDatabaseUrl } from "../../../adapters/postgres/DatabaseUrl.ts"
import { migrate } from "../../../adapters/postgres/migrate.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { embedded } from "../../../src/embedded.ts"
import { type FreshDatabase, freshDatabase } from "../../support/db.ts"

const unreachable = "postgresql://bob:s3cret@127.0.0.1:1/shop"
const echo = task("urlEcho", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(s) })
const echoed = workflow("urlEchoed", chain(echo))

/** The rejection of `promise`, which must reject. */
const rejection = (promise: Promise<unknown>) => promise.then(() => expect.fail("expected a rejection"), (e: unknown) => e)

describe("parseDatabaseUrl", () => {
  it("reads host, port (5432 by default), database and user", () => {
    expect(parseDatabaseUrl("postgresql://bob:s3cret@db.internal:6543/shop", "DATABASE_URL")).toEqual({
      host: "db.internal",
      port: 6543,
      database: "shop",
      user: "bob",
    })
    expect(parseDatabaseUrl("postgres://127.0.0.1/app%20db", "x")).toEqual({ host: "127.0.0.1", port: 5432, database: "app db", user: "" })
  })

  it("says what is wrong, where the URL came from, and never echoes it", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["not a url with s3cret", "it cannot be parsed as a URL"],
      ["http://bob:s3cret@host/db", 'its scheme is "http:"'],
      ["postgresql://bob:s3cret@127.0.0.1:5432", "it names no database (its path is the database name)"],
      ["postgresql:///db", "it names no host"],
    ]
    for (const [url, what] of cases) {
      const error = (() => {
        try {
          parseDatabaseUrl(url, "DATABASE_URL")
        } catch (e) {
          return e
        }
      })()
      expect(error).toBeInstanceOf(InvalidDatabaseUrl)
      expect(error).toMatchObject({
        source: "DATABASE_URL",
        message: `DATABASE_URL is not a PostgreSQL URL: ${what} (expected postgresql://user:password@host:port/database)`,
      })
      expect((error as Error).message).not.toContain("s3cret")
    }
  })
})

describe("migrate()", () => {
  let db: FreshDatabase
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(() => db?.drop())

  it("an unreachable database: DatabaseConnectFailed naming host, port, database, user and source, not the password", async () => {
    const error = await rejection(migrate(unreachable, undefined, { source: "DATABASE_URL" }))
    expect(error).toBeInstanceOf(DatabaseConnectFailed)
    expect(error).toMatchObject({ _tag: "DatabaseConnectFailed", source: "DATABASE_URL", target: "127.0.0.1:1", database: "shop" })
    expect((error as Error).message).toBe(
      'cannot connect to PostgreSQL at 127.0.0.1:1 (database "shop", user "bob", from DATABASE_URL): connect ECONNREFUSED 127.0.0.1:1',
    )
    // without a source, migrate() says the URL was its argument
    expect(await rejection(migrate(unreachable))).toMatchObject({ source: "the URL given to migrate()" })
  })

  it("a server that refuses: a database that does not exist, a wrong password", async () => {
    const missing = new URL(db.url)
    missing.pathname = "/no_such_database"
    const error = await rejection(migrate(missing.toString(), undefined, { source: "--url" }))
    expect(error).toBeInstanceOf(DatabaseConnectFailed)
    expect((error as Error).message).toMatch(/^cannot connect to PostgreSQL at 127\.0\.0\.1:\d+ \(database "no_such_database", user "postgres", from --url\): .*no_such_database/)
    const wrong = new URL(db.url)
    wrong.password = "not-the-password"
    const refused = await rejection(migrate(wrong.toString(), undefined, { source: "--url" }))
    expect(refused).toBeInstanceOf(DatabaseConnectFailed)
    expect((refused as Error).message).toMatch(/password authentication failed/)
    expect((refused as Error).message).not.toContain("not-the-password")
  })

  it("a malformed URL is refused before anything connects", async () => {
    await expect(migrate("postgresql://bob:s3cret@127.0.0.1:1", undefined, { source: "DATABASE_URL" })).rejects.toMatchObject({
      _tag: "InvalidDatabaseUrl",
      message: expect.stringMatching(/^DATABASE_URL is not a PostgreSQL URL: it names no database/),
    })
  })
})

describe("embedded()", () => {
  // the data folder an embedded server would make goes to a private temporary directory
  let tmp: string
  let savedTmp: string | undefined
  let savedUrl: string | undefined
  beforeEach(async () => {
    savedTmp = process.env.TMPDIR
    savedUrl = process.env.DATABASE_URL
    tmp = await mkdtemp(path.join(os.tmpdir(), "taskgraph-url-"))
    process.env.TMPDIR = tmp
  })
  afterEach(async () => {
    for (const [name, value] of [["TMPDIR", savedTmp], ["DATABASE_URL", savedUrl]] as const) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
    await rm(tmp, { recursive: true, force: true })
  })

  it("DATABASE_URL unreachable: says so, naming DATABASE_URL; no server started", async () => {
    process.env.DATABASE_URL = unreachable
    const error = await rejection(embedded({ workflows: [echoed] }))
    expect(error).toBeInstanceOf(DatabaseConnectFailed)
    expect((error as Error).message).toBe(
      'cannot connect to PostgreSQL at 127.0.0.1:1 (database "shop", user "bob", from DATABASE_URL): connect ECONNREFUSED 127.0.0.1:1',
    )
    expect(await readdir(tmp)).toEqual([])
  })

  it("the databaseUrl option, malformed: refused naming the option, before anything starts", async () => {
    process.env.DATABASE_URL = unreachable
    const error = await rejection(embedded({ workflows: [echoed], databaseUrl: "localhost:5432/shop" }))
    expect(error).toBeInstanceOf(InvalidDatabaseUrl)
    expect((error as Error).message).toBe(
      'the databaseUrl option is not a PostgreSQL URL: its scheme is "localhost:" (expected postgresql://user:password@host:port/database)',
    )
    const unreachableOption = await rejection(embedded({ workflows: [echoed], databaseUrl: unreachable }))
    expect(unreachableOption).toMatchObject({ _tag: "DatabaseConnectFailed", source: "the databaseUrl option" })
    expect(await readdir(tmp)).toEqual([])
  })
})
